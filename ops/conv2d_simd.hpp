#pragma once
/// @file conv2d_simd.hpp
/// Private to ops/conv2d.cpp: the raw building blocks of the conv kernels. A small GEMM
/// C (+)= A * B shaped for convolution, a transpose, the row copies of im2col, the row gather of
/// col2im and a row sum; AVX-512 versions (namespace detail::avx512) and the portable layer the
/// kernels call (namespace detail), which falls back to BLAS and plain loops.
///
/// A is read by broadcasts through two strides (element (m, p) at a[m*a_ms + p*a_ps]), so W, W^T
/// and dY are all used in place without packing; B rows are contiguous vectors (element (p, n)
/// at b[p*ldb + n]); C is row-major. A register tile is MR = 8 rows of A times up to 3 vectors of
/// B (48 floats or 24 doubles), 24 accumulators; the last vector of a row is masked, and the last
/// row block takes fewer rows, so any M, N work without padding or copies.
///
/// Why not BLAS: these GEMMs are small (tens of microseconds), called once per image, and the
/// OpenBLAS 0.3.21 build that Debian ships falls back to its SSE3 "Prescott" kernels on CPUs it
/// does not know (this machine reports model 207).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#define TAPEGRAD_HAVE_AVX512_GEMM 1
#else
#include <cblas.h>
#endif

#if defined(TAPEGRAD_HAVE_AVX512_GEMM)
namespace tapegrad::detail::avx512
{

template <class T>
struct Avx512;

template <>
struct Avx512<float>
{
    using vec = __m512;
    using mask = __mmask16;
    static constexpr std::size_t lanes = 16;
    static vec zero() { return _mm512_setzero_ps(); }
    static vec set1(float v) { return _mm512_set1_ps(v); }
    static vec load(const float* p) { return _mm512_loadu_ps(p); }
    static vec load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
    static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
    static void store(float* p, mask m, vec v) { _mm512_mask_storeu_ps(p, m, v); }
    static mask first(std::size_t n) { return static_cast<mask>(n >= 16 ? 0xFFFFu : (1u << n) - 1u); }
    static vec expand(mask m, vec v) { return _mm512_maskz_expand_ps(m, v); }
    static vec compress(mask m, vec v) { return _mm512_maskz_compress_ps(m, v); }
    static void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
};

template <>
struct Avx512<double>
{
    using vec = __m512d;
    using mask = __mmask8;
    static constexpr std::size_t lanes = 8;
    static vec zero() { return _mm512_setzero_pd(); }
    static vec set1(double v) { return _mm512_set1_pd(v); }
    static vec load(const double* p) { return _mm512_loadu_pd(p); }
    static vec load(mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
    static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
    static vec add(vec a, vec b) { return _mm512_add_pd(a, b); }
    static void store(double* p, mask m, vec v) { _mm512_mask_storeu_pd(p, m, v); }
    static mask first(std::size_t n) { return static_cast<mask>(n >= 8 ? 0xFFu : (1u << n) - 1u); }
    static vec expand(mask m, vec v) { return _mm512_maskz_expand_pd(m, v); }
    static vec compress(mask m, vec v) { return _mm512_maskz_compress_pd(m, v); }
    static void store(double* p, vec v) { _mm512_storeu_pd(p, v); }
};

inline constexpr std::size_t gemm_mr = 8;
inline constexpr std::size_t gemm_nv = 3;

/// One register tile: C[M x V vectors] (+)= A[M x kd] * B[kd x V vectors]; `tail` masks the last
/// vector.
template <class T, std::size_t M, std::size_t V>
void gemm_tile(const T* a, std::size_t a_ms, std::size_t a_ps, const T* b, std::size_t ldb, std::size_t kd,
               T* c, std::size_t ldc, typename Avx512<T>::mask tail, bool accumulate)
{
    using S = Avx512<T>;
    typename S::vec acc[M][V];
#pragma GCC unroll 8
    for (std::size_t m = 0; m < M; ++m)
    {
#pragma GCC unroll 3
        for (std::size_t v = 0; v < V; ++v)
        {
            acc[m][v] = S::zero();
        }
    }
    for (std::size_t p = 0; p < kd; ++p)
    {
        const T* bp = b + p * ldb;
        typename S::vec bv[V];
#pragma GCC unroll 3
        for (std::size_t v = 0; v + 1 < V; ++v)
        {
            bv[v] = S::load(bp + v * S::lanes);
        }
        bv[V - 1] = S::load(tail, bp + (V - 1) * S::lanes);
        const T* ap = a + p * a_ps;
#pragma GCC unroll 8
        for (std::size_t m = 0; m < M; ++m)
        {
            const typename S::vec s = S::set1(ap[m * a_ms]);
#pragma GCC unroll 3
            for (std::size_t v = 0; v < V; ++v)
            {
                acc[m][v] = S::fma(s, bv[v], acc[m][v]);
            }
        }
    }
#pragma GCC unroll 8
    for (std::size_t m = 0; m < M; ++m)
    {
#pragma GCC unroll 3
        for (std::size_t v = 0; v < V; ++v)
        {
            T* cp = c + m * ldc + v * S::lanes;
            const typename S::mask mk = v + 1 == V ? tail : static_cast<typename S::mask>(~0u);
            S::store(cp, mk, accumulate ? S::add(acc[m][v], S::load(mk, cp)) : acc[m][v]);
        }
    }
}

template <class T>
using GemmTile = void (*)(const T*, std::size_t, std::size_t, const T*, std::size_t, std::size_t, T*,
                          std::size_t, typename Avx512<T>::mask, bool);

template <class T, std::size_t... I>
constexpr auto gemm_tiles(std::index_sequence<I...>)
{
    // Entry (m - 1) * gemm_nv + (v - 1) handles m rows and v vectors.
    return std::array<GemmTile<T>, sizeof...(I)>{&gemm_tile<T, I / gemm_nv + 1, I % gemm_nv + 1>...};
}

/// C[M x N] (+)= A[M x kd] * B[kd x N], see the file comment for the layouts.
template <class T>
void gemm(std::size_t M, std::size_t N, std::size_t kd, const T* a, std::size_t a_ms, std::size_t a_ps,
          const T* b, std::size_t ldb, T* c, std::size_t ldc, bool accumulate)
{
    using S = Avx512<T>;
    static constexpr auto tiles = gemm_tiles<T>(std::make_index_sequence<gemm_mr * gemm_nv>());
    // Blocks of up to 3 vectors, as even as possible (4 vectors: 2 + 2, not 3 + 1).
    const std::size_t vectors = (N + S::lanes - 1) / S::lanes;
    const std::size_t blocks = (vectors + gemm_nv - 1) / gemm_nv;
    for (std::size_t blk = 0, v0 = 0; blk < blocks; ++blk)
    {
        const std::size_t v1 = vectors * (blk + 1) / blocks;
        const std::size_t n0 = v0 * S::lanes;
        const std::size_t v = v1 - v0;
        const auto tail = S::first(std::min(N, v1 * S::lanes) - (v1 - 1) * S::lanes);
        for (std::size_t m0 = 0; m0 < M; m0 += gemm_mr)
        {
            const std::size_t m = std::min(gemm_mr, M - m0);
            tiles[(m - 1) * gemm_nv + (v - 1)](a + m0 * a_ms, a_ms, a_ps, b + n0, ldb, kd, c + m0 * ldc + n0,
                                               ldc, tail, accumulate);
        }
        v0 = v1;
    }
}

/// row[0, n) = 0 except row[first, last) = src[0, last - first): one im2col row with its padding.
template <class T>
void copy_row(T* row, std::size_t n, const T* src, std::size_t first, std::size_t last)
{
    using S = Avx512<T>;
    const auto zero = S::zero();
    for (std::size_t j = 0; j < first; j += S::lanes)
    {
        S::store(row + j, S::first(first - j), zero);
    }
    for (std::size_t j = first; j < last; j += S::lanes)
    {
        const auto m = S::first(last - j);
        S::store(row + j, m, S::load(m, src + (j - first)));
    }
    for (std::size_t j = last; j < n; j += S::lanes)
    {
        S::store(row + j, S::first(n - j), zero);
    }
}

/// residue_bits[s][r]: the bits l < 16 with l % s == r, for strides s in 1..16.
inline constexpr auto residue_bits = []
{
    std::array<std::array<std::uint16_t, 16>, 17> t{};
    for (std::size_t s = 1; s <= 16; ++s)
    {
        for (std::size_t l = 0; l < 16; ++l)
        {
            t[s][l % s] = static_cast<std::uint16_t>(t[s][l % s] | (1u << l));
        }
    }
    return t;
}();

/// Lanes l of a vector with l % s == r (s >= 1, r < s).
template <class T>
typename Avx512<T>::mask residue_mask(std::size_t s, std::size_t r)
{
    const unsigned bits = s <= 16 ? residue_bits[s][r] : (r < 16 ? 1u << r : 0u);
    return static_cast<typename Avx512<T>::mask>(bits);
}

/// out[0, w) = sum over taps t of src[t][j] where iw + off[t] = j * S, terms with j outside
/// [0, len) (or iw + off[t] not a multiple of S) being zero: one row of dX in col2im, summed in
/// registers (adding col rows one by one into dX in memory stalls on store-to-load forwarding,
/// as the taps overlap at unaligned offsets). Stride 0 means "given at run time in `s`".
template <std::size_t Stride, class T>
void gather_row(T* out, std::size_t w, const T* const* src, const std::int64_t* off, std::size_t taps,
                std::size_t len, std::size_t s)
{
    using S = Avx512<T>;
    const auto L = static_cast<std::int64_t>(S::lanes);
    const auto st = static_cast<std::int64_t>(Stride == 0 ? s : Stride);
    const std::int64_t span = st * static_cast<std::int64_t>(len);
    for (std::size_t iw0 = 0; iw0 < w; iw0 += S::lanes)
    {
        const std::int64_t n = std::min(L, static_cast<std::int64_t>(w - iw0));
        auto acc = S::zero();
        for (std::size_t t = 0; t < taps; ++t)
        {
            // lane l reads j = (base + l) / st when base + l is a multiple of st in [0, st*len)
            const std::int64_t base = static_cast<std::int64_t>(iw0) + off[t];
            std::int64_t l0 = std::max<std::int64_t>(0, -base);
            if constexpr (Stride != 1)
            {
                l0 += (st - (base + l0) % st) % st;
            }
            const std::int64_t l1 = std::min(n, span - base);
            if (l1 <= l0)
            {
                continue;
            }
            const std::int64_t count = Stride == 1 ? l1 - l0 : (l1 - l0 + st - 1) / st;
            auto v = S::load(S::first(static_cast<std::size_t>(count)),
                             src[t] + (Stride == 1 ? base + l0 : (base + l0) / st));
            if (Stride != 1 || l0 > 0)
            {
                auto lanes = static_cast<typename S::mask>(S::first(static_cast<std::size_t>(l1)) &
                                                           ~S::first(static_cast<std::size_t>(l0)));
                if constexpr (Stride != 1)
                {
                    lanes &= residue_mask<T>(static_cast<std::size_t>(st), static_cast<std::size_t>(l0 % st));
                }
                v = S::expand(lanes, v);
            }
            acc = S::add(acc, v);
        }
        S::store(out + iw0, S::first(static_cast<std::size_t>(n)), acc);
    }
}

/// dst[j] = src[j * s] for j in [0, n): a col row read from the padded image. For s > 1 each
/// vector load is compressed to its every s-th lane. Stride 0 means "given at run time in `s`".
template <std::size_t Stride, class T>
void strided_copy(T* dst, const T* src, std::size_t n, std::size_t s)
{
    using S = Avx512<T>;
    if constexpr (Stride == 1)
    {
        for (std::size_t j = 0; j < n; j += S::lanes)
        {
            const auto m = S::first(n - j);
            S::store(dst + j, m, S::load(m, src + j));
        }
    }
    else
    {
        if constexpr (Stride != 0)
        {
            s = Stride;
        }
        const auto pick = residue_mask<T>(s, 0);
        const std::size_t per_load = (S::lanes + s - 1) / s;
        for (std::size_t j = 0; j < n; j += per_load)
        {
            const std::size_t m = std::min(per_load, n - j);
            const auto v = S::load(S::first((m - 1) * s + 1), src + j * s);
            S::store(dst + j, S::first(m), S::compress(pick, v));
        }
    }
}

/// sum of p[0, n) with four vector accumulators.
template <class T>
T sum_row(const T* p, std::size_t n)
{
    using S = Avx512<T>;
    typename S::vec acc[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
    std::size_t j = 0;
    for (; j + 4 * S::lanes <= n; j += 4 * S::lanes)
    {
        for (std::size_t u = 0; u < 4; ++u)
        {
            acc[u] = S::add(acc[u], S::load(p + j + u * S::lanes));
        }
    }
    for (std::size_t u = 0; j < n; j += S::lanes, ++u)
    {
        acc[u] = S::add(acc[u], S::load(S::first(n - j), p + j));
    }
    T lanes[S::lanes];
    S::store(lanes, S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3])));
    T sum = 0;
    for (T v : lanes)
    {
        sum += v;
    }
    return sum;
}

} // namespace tapegrad::detail::avx512
#endif

// ---------------------------------------------------------------------------------------------
// The portable layer conv2d.cpp calls: AVX-512 above when compiled for it, BLAS and plain loops
// otherwise.

namespace tapegrad::detail
{

#if !defined(TAPEGRAD_HAVE_AVX512_GEMM)
inline void blas_gemm(bool ta, std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda,
                      const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

inline void blas_gemm(bool ta, std::size_t m, std::size_t n, std::size_t k, const double* a, std::size_t lda,
                      const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc)
{
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), 1.0, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

#endif

/// C[M x N] (+)= A[M x kd] * B[kd x N] with A(m, p) = a[m*a_ms + p*a_ps] (either stride may be
/// the unit one: A or A^T in place), B and C row-major.
template <class T>
void gemm(std::size_t M, std::size_t N, std::size_t kd, const T* a, std::size_t a_ms, std::size_t a_ps,
          const T* b, std::size_t ldb, T* c, std::size_t ldc, bool accumulate)
{
    if (M == 0 || N == 0)
    {
        return;
    }
    if (kd == 0)
    {
        for (std::size_t m = 0; m < M && !accumulate; ++m)
        {
            std::fill(c + m * ldc, c + m * ldc + N, T(0));
        }
        return;
    }
#if defined(TAPEGRAD_HAVE_AVX512_GEMM)
    avx512::gemm(M, N, kd, a, a_ms, a_ps, b, ldb, c, ldc, accumulate);
#else
    const bool trans = a_ps != 1;
    blas_gemm(trans, M, N, kd, a, trans ? a_ps : a_ms, b, ldb, accumulate ? T(1) : T(0), c, ldc);
#endif
}

/// dst[c][r] = src[r][c] for a [rows x cols] matrix, in cache-sized tiles.
template <class T>
void transpose(const T* src, std::size_t rows, std::size_t cols, T* dst)
{
    constexpr std::size_t tile = 16;
    for (std::size_t r0 = 0; r0 < rows; r0 += tile)
    {
        const std::size_t r1 = std::min(rows, r0 + tile);
        for (std::size_t c0 = 0; c0 < cols; c0 += tile)
        {
            const std::size_t c1 = std::min(cols, c0 + tile);
            for (std::size_t r = r0; r < r1; ++r)
            {
                for (std::size_t c = c0; c < c1; ++c)
                {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// row[0, n) = 0 except row[first, last) = src[0, last - first).
template <class T>
void copy_row(T* row, std::size_t n, const T* src, std::size_t first, std::size_t last)
{
#if defined(TAPEGRAD_HAVE_AVX512_GEMM)
    avx512::copy_row(row, n, src, first, last);
#else
    std::fill(row, row + first, T(0));
    std::copy(src, src + (last - first), row + first);
    std::fill(row + last, row + n, T(0));
#endif
}

/// dst[j] = src[j * s] for j in [0, n).
template <class T>
void strided_copy(T* dst, const T* src, std::size_t n, std::size_t s)
{
#if defined(TAPEGRAD_HAVE_AVX512_GEMM)
    if (s == 1)
    {
        avx512::strided_copy<1>(dst, src, n, 1);
    }
    else if (s == 2)
    {
        avx512::strided_copy<2>(dst, src, n, 2);
    }
    else
    {
        avx512::strided_copy<0>(dst, src, n, s);
    }
#else
    for (std::size_t j = 0; j < n; ++j)
    {
        dst[j] = src[j * s];
    }
#endif
}

/// Sum of p[0, n) with several independent accumulators.
template <class T>
T sum_row(const T* p, std::size_t n)
{
#if defined(TAPEGRAD_HAVE_AVX512_GEMM)
    return avx512::sum_row(p, n);
#else
    T acc[8] = {};
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8)
    {
        for (std::size_t u = 0; u < 8; ++u)
        {
            acc[u] += p[j + u];
        }
    }
    T tail = 0;
    for (; j < n; ++j)
    {
        tail += p[j];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
#endif
}

/// out[0, w) = sum over taps t of src[t][j] where iw + off[t] = j * s (j in [0, len)): one row
/// of dX in col2im.
template <class T>
void gather_row(T* out, std::size_t w, const T* const* src, const std::int64_t* off, std::size_t taps,
                std::size_t len, std::size_t s)
{
#if defined(TAPEGRAD_HAVE_AVX512_GEMM)
    if (s == 1)
    {
        avx512::gather_row<1>(out, w, src, off, taps, len, 1);
    }
    else if (s == 2)
    {
        avx512::gather_row<2>(out, w, src, off, taps, len, 2);
    }
    else
    {
        avx512::gather_row<0>(out, w, src, off, taps, len, s);
    }
#else
    const auto st = static_cast<std::int64_t>(s);
    for (std::size_t iw = 0; iw < w; ++iw)
    {
        T acc = 0;
        for (std::size_t t = 0; t < taps; ++t)
        {
            const std::int64_t v = static_cast<std::int64_t>(iw) + off[t];
            if (v >= 0 && v % st == 0 && v / st < static_cast<std::int64_t>(len))
            {
                acc += src[t][v / st];
            }
        }
        out[iw] = acc;
    }
#endif
}

} // namespace tapegrad::detail
