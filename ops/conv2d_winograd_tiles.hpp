#pragma once
/// @file conv2d_winograd_tiles.hpp
/// Private to ops/conv2d.cpp: how F(2x2, 3x3) (conv2d_winograd.hpp) cuts a plane into tiles,
/// and the transforms of the tiles: B^T d B for input tiles, A^T m A for output tiles, and
/// their adjoints A dY A^T and B q B^T for the gradients.

#include <tapegrad/ops/conv2d_kernels.hpp>

#include <algorithm>
#include <cstddef>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace tapegrad::detail::conv::winograd
{

/// The tiling of one image: th x tw output tiles of 2x2 cover Ho x Wo (the last row/column of
/// tiles is half outside when Ho/Wo is odd); the 4x4 input tiles read the zero-padded plane of
/// (2 th + 2) x (2 tw + 2) that holds x at offset (ph, pw).
///
/// Planes are kept as their four polyphase components (even/odd rows x even/odd columns), each
/// with rows w2 = tw + 1 wide, and every tile row carries one spare tile (tx = tw), so tile
/// t = ty * w2 + tx sits at index t of every component and its neighbours at t + 1 (right) and
/// t + w2 (below). Each transform is then a few passes of the 1-D kernels below over whole
/// arrays, with unit stride. The spare tiles of the output gradient are zero, so they add
/// nothing to either gradient; their forward outputs are dropped.
struct Plan
{
    std::size_t th = 0, tw = 0, w2 = 0;

    explicit Plan(const Geometry& g)
      : th((g.ho + 1) / 2)
      , tw((g.wo + 1) / 2)
      , w2(tw + 1)
    {
    }

    /// Tiles of one image, spare tiles included.
    std::size_t tiles() const { return th * w2; }
    /// Elements of one polyphase component of the padded input plane (th + 1 rows), plus one.
    std::size_t phase_size() const { return (th + 1) * w2 + 1; }
    /// Zero lanes on each side of input_grad_tiles' 16 arrays, for their shifted reads.
    std::size_t pad() const { return w2 + 1; }
    /// Elements of the transforms' work space (input_grad_tiles needs the most).
    std::size_t tmp_size() const { return 16 * tiles() + 32 * pad() + 4 * phase_size(); }
};

// ---------------------------------------------------------------------------------------------
// The 1-D transforms of one vector. The tile transforms below apply them down the columns of a
// tile and then along its rows, one tile per iteration of a loop over tiles that lie side by
// side in memory (restrict parameters, so gcc vectorises across tiles): one pass over memory
// per transform, each value read and written once.

/// o = B^T d.
template <class T>
inline void bt4(T d0, T d1, T d2, T d3, T o[4])
{
    o[0] = d0 - d2;
    o[1] = d1 + d2;
    o[2] = d2 - d1;
    o[3] = d1 - d3;
}

/// o = B q, the transpose of bt4.
template <class T>
inline void b4(T q0, T q1, T q2, T q3, T o[4])
{
    o[0] = q0;
    o[1] = q1 - q2 + q3;
    o[2] = q1 + q2 - q0;
    o[3] = -q3;
}

/// o = A^T m (4 -> 2).
template <class T>
inline void at2(T m0, T m1, T m2, T m3, T o[2])
{
    o[0] = m0 + m1 + m2;
    o[1] = m1 - m2 - m3;
}

/// o = A d (2 -> 4), the transpose of at2.
template <class T>
inline void a4(T d0, T d1, T o[4])
{
    o[0] = d0;
    o[1] = d0 + d1;
    o[2] = d0 - d1;
    o[3] = -d1;
}

/// o[i] = a[i] + b[i] + c[i] + d[i].
template <class T>
void add4(const T* __restrict a, const T* __restrict b, const T* __restrict c, const T* __restrict d,
          T* __restrict o, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i)
    {
        o[i] = (a[i] + b[i]) + (c[i] + d[i]);
    }
}

/// dst[i] = src[2 i] for i in [0, n).
template <class T>
void gather_even(const T* __restrict src, T* __restrict dst, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i)
    {
        dst[i] = src[2 * i];
    }
}

/// dst[2 i] = src[i] + bias for i in [0, n).
template <class T>
void scatter_even(const T* __restrict src, T bias, T* __restrict dst, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i)
    {
        dst[2 * i] = src[i] + bias;
    }
}

/// Splits the n elements of src by the parity of (first + j): even[(first + j) / 2] or
/// odd[(first + j) / 2] = src[j], first 0 or 1.
template <class T>
void deinterleave(const T* src, std::size_t n, std::size_t first, T* even, T* odd)
{
    gather_even(src, first == 0 ? even : odd, (n + 1) / 2);
    gather_even(src + 1, first == 0 ? odd : even + 1, n / 2);
}

/// The inverse of deinterleave, plus a bias: dst[j] = (even or odd)[(first + j) / 2] + bias.
template <class T>
void interleave(const T* even, const T* odd, std::size_t first, T bias, T* dst, std::size_t n)
{
    scatter_even(first == 0 ? even : odd, bias, dst, (n + 1) / 2);
    scatter_even(first == 0 ? odd : even + 1, bias, dst + 1, n / 2);
}

#if defined(__AVX2__)
/// Lanes [0, count) of an AVX2 mask (count may exceed 8).
inline __m256i lanes_below(std::size_t count)
{
    const auto c = static_cast<int>(std::min<std::size_t>(count, 8));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// The float deinterleave, eight pairs per step: rows are only 7-28 wide here, too short for
/// gcc's vectoriser. Loads and stores are masked at the row's ends, never past them.
inline void deinterleave(const float* src, std::size_t n, std::size_t first, float* even, float* odd)
{
    float* to0 = first == 0 ? even : odd;     // src[0], src[2], ...
    float* to1 = first == 0 ? odd : even + 1; // src[1], src[3], ...
    const std::size_t n0 = (n + 1) / 2, n1 = n / 2;
    for (std::size_t k = 0; k < n0; k += 8)
    {
        const std::size_t j = 2 * k, left = n - j;
        const __m256 a = _mm256_maskload_ps(src + j, lanes_below(left));
        const __m256 b =
          left > 8 ? _mm256_maskload_ps(src + j + 8, lanes_below(left - 8)) : _mm256_setzero_ps();
        // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6], and the same for the odd ones
        const __m256 ev = _mm256_castpd_ps(
          _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
        const __m256 od = _mm256_castpd_ps(
          _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
        _mm256_maskstore_ps(to0 + k, lanes_below(n0 - k), ev);
        if (n1 > k)
        {
            _mm256_maskstore_ps(to1 + k, lanes_below(n1 - k), od);
        }
    }
}

/// The float interleave (the inverse of deinterleave, plus a bias), eight pairs per step.
inline void interleave(const float* even, const float* odd, std::size_t first, float bias, float* dst,
                       std::size_t n)
{
    const float* from0 = first == 0 ? even : odd;     // dst[0], dst[2], ...
    const float* from1 = first == 0 ? odd : even + 1; // dst[1], dst[3], ...
    const std::size_t n0 = (n + 1) / 2, n1 = n / 2;
    const __m256 add = _mm256_set1_ps(bias);
    for (std::size_t k = 0; k < n0; k += 8)
    {
        const __m256 e = _mm256_add_ps(_mm256_maskload_ps(from0 + k, lanes_below(n0 - k)), add);
        const __m256 o = n1 > k ? _mm256_add_ps(_mm256_maskload_ps(from1 + k, lanes_below(n1 - k)), add)
                                : _mm256_setzero_ps();
        const __m256 lo = _mm256_unpacklo_ps(e, o); // [e0 o0 e1 o1 | e4 o4 e5 o5]
        const __m256 hi = _mm256_unpackhi_ps(e, o); // [e2 o2 e3 o3 | e6 o6 e7 o7]
        const std::size_t j = 2 * k, left = n - j;
        _mm256_maskstore_ps(dst + j, lanes_below(left), _mm256_permute2f128_ps(lo, hi, 0x20));
        if (left > 8)
        {
            _mm256_maskstore_ps(dst + j + 8, lanes_below(left - 8), _mm256_permute2f128_ps(lo, hi, 0x31));
        }
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// Transforms of one plane

/// The four polyphase components of the zero-padded input plane: phase[2 rp + cp] holds padded
/// rows of parity rp and columns of parity cp, w2 wide. Only the interior is written; the
/// rest stays as it was (zero).
template <class T>
void split_input(const T* x, const Geometry& g, const Plan& p, T* const phase[4])
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    for (std::size_t r = 0; r < g.h; ++r)
    {
        const std::size_t row = r + ph, at = (row / 2) * p.w2;
        T* even = phase[2 * (row % 2)] + at;
        T* odd = phase[2 * (row % 2) + 1] + at;
        deinterleave(x + r * g.w, g.w, pw % 2, even + pw / 2, odd + pw / 2);
    }
}

/// v[(4 a + b) xs + t] = (B^T d B)[a][b], b = 0..3, for the 4x4 tile d at each of the n tiles t,
/// read from the phases p[rp][cp] of the padded plane (rows of parity rp, columns of parity cp):
/// row 2 ty + r of the tile is in p[r % 2] at t + (r / 2) w2, column 2 tx + c in p[.][c % 2] at
/// + c / 2. One row a of the result per call: gcc vectorises a loop over tiles with four output
/// streams a runtime stride apart, but not with sixteen.
template <int a, class T>
void input_tiles_row(const T* __restrict p00, const T* __restrict p01, const T* __restrict p10,
                     const T* __restrict p11, std::size_t w2, std::size_t n, T* __restrict v, std::size_t xs)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        const std::size_t s = t + w2;
        T e[4]; // (B^T d)[a][c]
        if constexpr (a == 0)
        {
            e[0] = p00[t] - p00[s], e[1] = p01[t] - p01[s], e[2] = p00[t + 1] - p00[s + 1],
            e[3] = p01[t + 1] - p01[s + 1];
        }
        else if constexpr (a == 1)
        {
            e[0] = p10[t] + p00[s], e[1] = p11[t] + p01[s], e[2] = p10[t + 1] + p00[s + 1],
            e[3] = p11[t + 1] + p01[s + 1];
        }
        else if constexpr (a == 2)
        {
            e[0] = p00[s] - p10[t], e[1] = p01[s] - p11[t], e[2] = p00[s + 1] - p10[t + 1],
            e[3] = p01[s + 1] - p11[t + 1];
        }
        else
        {
            e[0] = p10[t] - p10[s], e[1] = p11[t] - p11[s], e[2] = p10[t + 1] - p10[s + 1],
            e[3] = p11[t + 1] - p11[s + 1];
        }
        T o[4];
        bt4(e[0], e[1], e[2], e[3], o);
        v[t] = o[0];
        v[xs + t] = o[1];
        v[2 * xs + t] = o[2];
        v[3 * xs + t] = o[3];
    }
}

/// v[xi * xs + t] = (B^T d B)[xi] for every tile (input_tiles_row for the four rows).
template <class T>
void input_tiles(T* const phase[4], std::size_t w2, std::size_t n, T* v, std::size_t xs)
{
    input_tiles_row<0>(phase[0], phase[1], phase[2], phase[3], w2, n, v, xs);
    input_tiles_row<1>(phase[0], phase[1], phase[2], phase[3], w2, n, v + 4 * xs, xs);
    input_tiles_row<2>(phase[0], phase[1], phase[2], phase[3], w2, n, v + 8 * xs, xs);
    input_tiles_row<3>(phase[0], phase[1], phase[2], phase[3], w2, n, v + 12 * xs, xs);
}

/// yt[(2 i + j) n + t] = (A^T m A)[i][j] for the n tiles t, m[xi] = m[xi * xs + t].
template <class T>
void output_tiles(const T* __restrict m, std::size_t xs, std::size_t n, T* __restrict yt)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        T u[2][4]; // A^T m, column by column
        for (std::size_t b = 0; b < 4; ++b)
        {
            T o[2];
            at2(m[b * xs + t], m[(4 + b) * xs + t], m[(8 + b) * xs + t], m[(12 + b) * xs + t], o);
            u[0][b] = o[0];
            u[1][b] = o[1];
        }
        for (std::size_t i = 0; i < 2; ++i) // (A^T m) A, row by row
        {
            T o[2];
            at2(u[i][0], u[i][1], u[i][2], u[i][3], o);
            yt[2 * i * n + t] = o[0];
            yt[(2 * i + 1) * n + t] = o[1];
        }
    }
}

/// y (one Ho x Wo plane) = A^T m A + bias for every tile, m[xi] = m[xi * xs + t]; the halves of
/// tiles outside Ho x Wo are dropped.
template <class T>
void output_plane(const T* m, std::size_t xs, const Plan& p, const Geometry& g, T bias, T* y, T* tmp)
{
    const std::size_t n = p.tiles();
    T* yt = tmp; // yt[2 i + j] = output (i, j) of every tile
    output_tiles(m, xs, n, yt);
    for (std::size_t r = 0; r < g.ho; ++r)
    {
        const std::size_t at = (r / 2) * p.w2, i = r % 2;
        interleave(yt + 2 * i * n + at, yt + (2 * i + 1) * n + at, 0, bias, y + r * g.wo, g.wo);
    }
}

/// The four polyphase components (th x w2 each) of one output-gradient plane, zero past Ho x Wo.
template <class T>
void split_grad_output(const T* dy, const Geometry& g, const Plan& p, T* const phase[4])
{
    for (std::size_t r = 0; r < g.ho; ++r)
    {
        const std::size_t at = (r / 2) * p.w2;
        deinterleave(dy + r * g.wo, g.wo, 0, phase[2 * (r % 2)] + at, phase[2 * (r % 2) + 1] + at);
    }
}

/// z[(4 a + b) xs + t] = (A d A^T)[a][b], b = 0..3, for the 2x2 output-gradient tile d at each
/// of the n tiles t, d[r][c] in phase p[r][c] at t (spare tiles read zeros); one row a per call,
/// as for input_tiles_row.
template <int a, class T>
void grad_output_tiles_row(const T* __restrict p00, const T* __restrict p01, const T* __restrict p10,
                           const T* __restrict p11, std::size_t n, T* __restrict z, std::size_t xs)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        T f[2]; // (A d)[a][c]
        if constexpr (a == 0)
        {
            f[0] = p00[t], f[1] = p01[t];
        }
        else if constexpr (a == 1)
        {
            f[0] = p00[t] + p10[t], f[1] = p01[t] + p11[t];
        }
        else if constexpr (a == 2)
        {
            f[0] = p00[t] - p10[t], f[1] = p01[t] - p11[t];
        }
        else
        {
            f[0] = -p10[t], f[1] = -p11[t];
        }
        T o[4];
        a4(f[0], f[1], o);
        z[t] = o[0];
        z[xs + t] = o[1];
        z[2 * xs + t] = o[2];
        z[3 * xs + t] = o[3];
    }
}

/// z[xi * xs + t] = (A d A^T)[xi] for every tile (grad_output_tiles_row for the four rows).
template <class T>
void grad_output_tiles(T* const phase[4], std::size_t n, T* z, std::size_t xs)
{
    grad_output_tiles_row<0>(phase[0], phase[1], phase[2], phase[3], n, z, xs);
    grad_output_tiles_row<1>(phase[0], phase[1], phase[2], phase[3], n, z + 4 * xs, xs);
    grad_output_tiles_row<2>(phase[0], phase[1], phase[2], phase[3], n, z + 8 * xs, xs);
    grad_output_tiles_row<3>(phase[0], phase[1], phase[2], phase[3], n, z + 12 * xs, xs);
}

/// c[(4 i + j) cs + t] = (B q B^T)[i][j], j = 0..3, for the n tiles t, q[xi] = q[xi * xs + t];
/// one row i per call, as for input_tiles_row.
template <int i, class T>
void grad_input_tiles_row(const T* __restrict q, std::size_t xs, std::size_t n, T* __restrict c,
                          std::size_t cs)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        T r[4]; // (B q)[i][b]
        for (std::size_t b = 0; b < 4; ++b)
        {
            T o[4];
            b4(q[b * xs + t], q[(4 + b) * xs + t], q[(8 + b) * xs + t], q[(12 + b) * xs + t], o);
            r[b] = o[i];
        }
        T o[4];
        b4(r[0], r[1], r[2], r[3], o);
        c[t] = o[0];
        c[cs + t] = o[1];
        c[2 * cs + t] = o[2];
        c[3 * cs + t] = o[3];
    }
}

/// dx (one H x W plane, overwritten) = the interior of the sum over tiles of B q B^T,
/// q[xi] = q[xi * xs + t], each 4x4 result added at (2 ty, 2 tx) of the padded plane. Result
/// (i, j) of tile t lands in phase (i % 2, j % 2) at t, shifted right by one tile for j >= 2 and
/// down by one tile row for i >= 2, so each element of a phase is the sum of four results read
/// at t, t - 1, t - w2 and t - w2 - 1 (zero outside the tiles: the work space keeps pad() zero
/// lanes around each result array, never written). The spare tiles are zero, so shifts across a
/// row end add 0.
template <class T>
void input_grad_tiles(const T* q, std::size_t xs, const Plan& p, const Geometry& g, T* dx, T* tmp)
{
    const std::size_t n = p.tiles(), w2 = p.w2, size = p.phase_size(), pad = p.pad(), cs = n + 2 * pad;
    T* c = tmp + pad;           // c[(4 i + j) cs]: (B q B^T)[i][j]
    T* sum = c - pad + 16 * cs; // the four phases of the padded plane
    grad_input_tiles_row<0>(q, xs, n, c, cs);
    grad_input_tiles_row<1>(q, xs, n, c + 4 * cs, cs);
    grad_input_tiles_row<2>(q, xs, n, c + 8 * cs, cs);
    grad_input_tiles_row<3>(q, xs, n, c + 12 * cs, cs);
    for (std::size_t ip = 0; ip < 2; ++ip)
    {
        for (std::size_t jp = 0; jp < 2; ++jp)
        {
            const T* here = c + (4 * ip + jp) * cs;     // (i, j) = (ip, jp)
            const T* left = here + 2 * cs - 1;          // (ip, jp + 2), one tile to the left
            const T* up = here + 8 * cs - w2;           // (ip + 2, jp), one tile row up
            const T* up_left = here + 10 * cs - w2 - 1; // (ip + 2, jp + 2)
            add4(here, left, up, up_left, sum + (2 * ip + jp) * size, size);
        }
    }
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    for (std::size_t row = 0; row < g.h; ++row)
    {
        const std::size_t pr = row + ph, at = (pr / 2) * w2 + pw / 2;
        const T* even = sum + 2 * (pr % 2) * size + at;
        const T* odd = sum + (2 * (pr % 2) + 1) * size + at;
        interleave(even, odd, pw % 2, T(0), dx + row * g.w, g.w);
    }
}

} // namespace tapegrad::detail::conv::winograd
