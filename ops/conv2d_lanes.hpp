#pragma once
/// @file conv2d_lanes.hpp
/// Private to ops/conv2d_minimal.hpp: vectors of channels for the tile engine. A block of
/// `lanes` channels (one 64-byte vector: 16 floats or 8 doubles) of one image is packed as
/// [rows][cols][lanes], so that every addition of a tile transform is one vector operation and
/// no tile is gathered element by element; constant matrices are applied to such vectors (or to
/// scalars) with their zero coefficients dropped and +-1 turned into additions at compile time.

#include <tapegrad/ops/gemm_nt.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace tapegrad::detail::conv::minimal
{

/// The channels one transform handles at once: a 64-byte vector of T (GCC splits it into the
/// machine's registers).
template <class T>
struct Lanes
{
    static constexpr std::size_t count = 64 / sizeof(T);
    typedef T type __attribute__((vector_size(64)));
};

template <class T>
using Vec = typename Lanes<T>::type;

/// n rounded up to whole vectors of T.
template <class T>
inline std::size_t padded_channels(std::size_t n)
{
    constexpr std::size_t l = Lanes<T>::count;
    return (n + l - 1) / l * l;
}

// ---------------------------------------------------------------------------------------------
// Constant matrices, applied to scalars or to vectors of channels

/// s = sum_j c[i][j] d[j] (c transposed when `Tr`), for E = T or Vec<T>. Called with constant c
/// and, once the loops are unrolled, constant i and j, so zero coefficients vanish and +-1
/// become additions.
template <bool Tr, class T, std::size_t R, std::size_t C, class E>
[[gnu::always_inline]] inline void row_dot(const double (&c)[R][C], std::size_t i, const E* d, E& s)
{
    constexpr std::size_t cols = Tr ? R : C;
    s = E{};
#pragma GCC unroll 8
    for (std::size_t j = 0; j < cols; ++j)
    {
        const double k = Tr ? c[j][i] : c[i][j];
        if (k == 1.0)
        {
            s += d[j];
        }
        else if (k == -1.0)
        {
            s -= d[j];
        }
        else if (k != 0.0)
        {
            s += static_cast<T>(k) * d[j];
        }
    }
}

/// o[i] = (c d)[i] for every row i (c transposed when `Tr`).
template <bool Tr, class T, std::size_t R, std::size_t C, class E>
[[gnu::always_inline]] inline void apply(const double (&c)[R][C], const E* d, E* o)
{
    constexpr std::size_t rows = Tr ? C : R;
#pragma GCC unroll 8
    for (std::size_t i = 0; i < rows; ++i)
    {
        row_dot<Tr, T>(c, i, d, o[i]);
    }
}

/// The nested 2-D transform of one tile of vectors: out(r, s) = (c D c^T)[r][s] (c^T D c when
/// `Tr`), with D(a, b) read by in(a, b, vector&) and each result passed to out(r, s, vector).
/// Columns first, through a small array on the stack, then rows.
template <bool Tr, class T, std::size_t R, std::size_t C, class In, class Out>
[[gnu::always_inline]] inline void transform_tile(const double (&c)[R][C], In in, Out out)
{
    constexpr std::size_t ni = Tr ? R : C, no = Tr ? C : R;
    Vec<T> mid[no][ni];
#pragma GCC unroll 8
    for (std::size_t b = 0; b < ni; ++b)
    {
        Vec<T> col[ni], o[no];
#pragma GCC unroll 8
        for (std::size_t a = 0; a < ni; ++a)
        {
            in(a, b, col[a]);
        }
        apply<Tr, T>(c, col, o);
#pragma GCC unroll 8
        for (std::size_t r = 0; r < no; ++r)
        {
            mid[r][b] = o[r];
        }
    }
#pragma GCC unroll 8
    for (std::size_t r = 0; r < no; ++r)
    {
        Vec<T> o[no];
        apply<Tr, T>(c, mid[r], o);
#pragma GCC unroll 8
        for (std::size_t s = 0; s < no; ++s)
        {
            out(r, s, o[s]);
        }
    }
}

template <class T>
[[gnu::always_inline]] inline void load(Vec<T>& v, const T* p)
{
    std::memcpy(&v, p, sizeof v);
}

template <class T>
[[gnu::always_inline]] inline void store(T* p, const Vec<T>& v)
{
    std::memcpy(p, &v, sizeof v);
}

// ---------------------------------------------------------------------------------------------
// Packing planes into vectors of channels and back

/// dst[((r0 + r) * ld + c0 + c) * lanes + l] = src[(l * rows + r) * cols + c] for the `count`
/// consecutive rows x cols planes at src (l < count), the other lanes zero. `flat` is work space
/// for rows * cols vectors: the planes are transposed whole into it, by AVX-512 register blocks
/// where the CPU has them, and then copied row by row.
template <class T>
void pack_planes(const T* src, std::size_t count, std::size_t rows, std::size_t cols, T* dst, std::size_t ld,
                 std::size_t r0, std::size_t c0, T* flat)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    const std::size_t plane = rows * cols;
    if (count < lanes)
    {
        std::fill_n(flat, plane * lanes, T(0));
    }
    bool done = false;
#if TAPEGRAD_HAVE_AVX512_NT
    if constexpr (std::is_same_v<T, float>)
    {
        if (gemm_nt_avx512_enabled())
        {
            transpose_avx512(count, plane, src, plane, flat, lanes);
            done = true;
        }
    }
#endif
    for (std::size_t l = 0; l < count && !done; ++l)
    {
        for (std::size_t e = 0; e < plane; ++e)
        {
            flat[e * lanes + l] = src[l * plane + e];
        }
    }
    for (std::size_t r = 0; r < rows; ++r)
    {
        std::copy_n(flat + r * cols * lanes, cols * lanes, dst + ((r0 + r) * ld + c0) * lanes);
    }
}

/// The inverse of pack_planes for the lanes l < count: dst[(l * rows + r) * cols + c] =
/// src[((r0 + r) * ld + c0 + c) * lanes + l], through `flat` as there.
template <class T>
void unpack_planes(const T* src, std::size_t ld, std::size_t r0, std::size_t c0, std::size_t count,
                   std::size_t rows, std::size_t cols, T* dst, T* flat)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    const std::size_t plane = rows * cols;
    for (std::size_t r = 0; r < rows; ++r)
    {
        std::copy_n(src + ((r0 + r) * ld + c0) * lanes, cols * lanes, flat + r * cols * lanes);
    }
#if TAPEGRAD_HAVE_AVX512_NT
    if constexpr (std::is_same_v<T, float>)
    {
        if (gemm_nt_avx512_enabled())
        {
            transpose_avx512(plane, count, flat, lanes, dst, plane);
            return;
        }
    }
#endif
    for (std::size_t l = 0; l < count; ++l)
    {
        for (std::size_t e = 0; e < plane; ++e)
        {
            dst[l * plane + e] = flat[e * lanes + l];
        }
    }
}

} // namespace tapegrad::detail::conv::minimal
