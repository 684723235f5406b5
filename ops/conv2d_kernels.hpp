#pragma once
/// @file conv2d_kernels.hpp
/// Private to ops/conv2d.cpp: the raw loops around the conv GEMMs. The sizes of one convolution,
/// im2col and its adjoint col2im, and a direct (GEMM-free) forward for layers with few input
/// channels. Plain loops over contiguous rows, written so gcc vectorises the inner ones.

#include <cblas.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tapegrad::detail::conv
{

/// Every size of one convolution (validated by conv2d.cpp). Channels are split into `groups`
/// blocks of `cg` input and `kg` output channels; one image-group is a GEMM of
/// [kg x rows] * [rows x cols].
struct Geometry
{
    std::size_t n = 0, c = 0, h = 0, w = 0;
    std::size_t k = 0, kh = 0, kw = 0;
    std::size_t groups = 1, cg = 0, kg = 0;
    std::int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    std::size_t ho = 0, wo = 0;
    bool winograd = false;        ///< forward and dX run by F(2x2, 3x3) (conv2d_winograd.hpp)
    bool winograd_weight = false; ///< dW too
    bool winograd_4x4 = false;    ///< by F(4x4, 3x3) (conv2d_winograd_4x4.hpp)
    bool winograd_5x5 = false;    ///< by F(5x5, 3x3) (conv2d_winograd_5x5.hpp)

    std::size_t rows() const { return cg * kh * kw; }
    std::size_t cols() const { return ho * wo; }
    /// 1x1 kernel, stride 1, no padding: the input plane already is the col matrix.
    bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

// ---------------------------------------------------------------------------------------------
// Threading

/// Parallel over the batch only when there is more than one image and enough work to pay for
/// waking the threads (about 2^18 multiply-adds). Otherwise the loop runs on the calling thread
/// (and BLAS, outside a parallel region, may use its own threads).
inline bool parallel_batch(const Geometry& g)
{
    return g.n > 1 && g.n * g.k * g.cols() * g.rows() >= (std::size_t{1} << 18);
}

/// Runs body(buffers, i) for i in [0, count), where buffers = make() is one per thread. When
/// `parallel`, the indices are shared statically among the OpenMP threads; otherwise the loop
/// runs on the calling thread without entering an OpenMP region at all (even `parallel if(false)`
/// builds a team: about a microsecond, most of a tiny convolution's cost).
template <class Make, class Body>
void for_each_index(bool parallel, std::size_t count, Make make, Body body)
{
    if (!parallel)
    {
        const auto buffers = make();
        for (std::size_t i = 0; i < count; ++i)
        {
            body(buffers, i);
        }
        return;
    }
#pragma omp parallel
    {
        const auto buffers = make();
#pragma omp for schedule(static)
        for (std::size_t i = 0; i < count; ++i)
        {
            body(buffers, i);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BLAS

/// C[m x n] = A[m x k] * B[k x n] + beta C, row-major; `ta`/`tb`: the operand is stored transposed
/// (A as [k x m], B as [n x k]). Empty products are handled here, as BLAS rejects a zero leading
/// dimension.
inline void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* a,
                 std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda),
                b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

inline void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const double* a,
                 std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc)
{
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0, a, static_cast<int>(lda),
                b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

template <class T>
void checked_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda,
                  const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc)
{
    if (m == 0 || n == 0)
    {
        return;
    }
    if (k == 0) // C = beta C, with beta 0 or 1 here
    {
        for (std::size_t i = 0; i < m && beta == T(0); ++i)
        {
            std::fill(c + i * ldc, c + i * ldc + n, T(0));
        }
        return;
    }
    gemm(ta, tb, m, n, k, a, std::max<std::size_t>(lda, 1), b, std::max<std::size_t>(ldb, 1), beta, c,
         std::max<std::size_t>(ldc, 1));
}

// ---------------------------------------------------------------------------------------------
// Scratch memory and small loops

/// A per-thread buffer of at least `size` elements, reused across calls (never shrinks). Each
/// `Slot` is a buffer of its own: slot 0 holds a thread's buffers inside a parallel loop, the
/// others what the calling thread prepares before it (so the two never overlap).
template <class T, int Slot = 0>
T* scratch(std::size_t size)
{
    thread_local std::unique_ptr<T[]> buffer;
    thread_local std::size_t capacity = 0;
    if (capacity < size)
    {
        buffer.reset(new T[size]);
        capacity = size;
    }
    return buffer.get();
}

/// partial[0, stride) += each of the chunks - 1 blocks of `stride` elements after it, in order:
/// the fixed-order sum of per-chunk partial results that makes dW independent of the threads.
template <class T>
void add_chunks(T* partial, std::size_t chunks, std::size_t stride)
{
    for (std::size_t chunk = 1; chunk < chunks; ++chunk)
    {
        const T* q = partial + chunk * stride;
        for (std::size_t i = 0; i < stride; ++i)
        {
            partial[i] += q[i];
        }
    }
}

/// Sum of p[0, n) with 8 independent accumulators (so the loop vectorises without reassociating
/// by itself).
template <class T>
T sum_row(const T* p, std::size_t n)
{
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
}

/// dst[0, n) = src[0, n), inlined: blocks of 8 and a last block overlapping the one before, so
/// short rows cost a few vector moves instead of a memmove call.
template <class T>
inline void copy_short(T* __restrict dst, const T* __restrict src, std::size_t n)
{
    if (n < 8)
    {
        for (std::size_t j = 0; j < n; ++j)
        {
            dst[j] = src[j];
        }
        return;
    }
    T block[8];
    for (std::size_t j = 0; j < n; j += 8)
    {
        const std::size_t at = std::min(j, n - 8);
#pragma GCC unroll 8
        for (std::size_t u = 0; u < 8; ++u)
        {
            block[u] = src[at + u];
        }
#pragma GCC unroll 8
        for (std::size_t u = 0; u < 8; ++u)
        {
            dst[at + u] = block[u];
        }
    }
}

/// dst[j] = src[j * s] for j in [0, n).
template <class T>
inline void strided_copy(T* __restrict dst, const T* __restrict src, std::size_t n, std::size_t s)
{
    for (std::size_t j = 0; j < n; ++j)
    {
        dst[j] = src[j * s];
    }
}

/// dst[0, n) += src[0, n): blocks of 8, then of 4, then single elements.
template <class T>
inline void add_short(T* __restrict dst, const T* __restrict src, std::size_t n)
{
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8)
    {
#pragma GCC unroll 8
        for (std::size_t u = 0; u < 8; ++u)
        {
            dst[j + u] += src[j + u];
        }
    }
    if (j + 4 <= n)
    {
#pragma GCC unroll 4
        for (std::size_t u = 0; u < 4; ++u)
        {
            dst[j + u] += src[j + u];
        }
        j += 4;
    }
    for (; j < n; ++j)
    {
        dst[j] += src[j];
    }
}

/// dst[j * s] += src[j] for j in [0, n).
template <class T>
inline void strided_add(T* __restrict dst, const T* __restrict src, std::size_t n, std::size_t s)
{
    for (std::size_t j = 0; j < n; ++j)
    {
        dst[j * s] += src[j];
    }
}

/// Elements of the zero-padded copy of one image-group's cg planes that im2col builds (0 when
/// there is no padding and x is read in place).
inline std::size_t padded_size(const Geometry& g)
{
    if (g.ph == 0 && g.pw == 0)
    {
        return 0;
    }
    return g.cg * (g.h + 2 * static_cast<std::size_t>(g.ph)) * (g.w + 2 * static_cast<std::size_t>(g.pw));
}

/// col[(c*kh + a)*kw + e][i*wo + j] = x[c][i*sh - ph + a*dh][j*sw - pw + e*dw] (0 in the padding),
/// for the cg channels of one image-group starting at `x`; col rows are `ld` apart (cols(), or
/// more when several images sit side by side). With padding, the planes are first
/// copied into the interior of `xp` (padded_size(g) elements, its border already zero: see
/// ColBuffers), so every col row is ho plain (strided) copies of wo elements.
template <class T>
void im2col(const T* x, const Geometry& g, T* col, T* xp, std::size_t ld)
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    const std::size_t hp = g.h + 2 * ph, wp = g.w + 2 * pw;
    if (ph != 0 || pw != 0)
    {
        for (std::size_t c = 0; c < g.cg; ++c)
        {
            for (std::size_t r = 0; r < g.h; ++r)
            {
                copy_short(xp + (c * hp + ph + r) * wp + pw, x + (c * g.h + r) * g.w, g.w);
            }
        }
        x = xp;
    }
    const auto sh = static_cast<std::size_t>(g.sh), sw = static_cast<std::size_t>(g.sw);
    const auto dh = static_cast<std::size_t>(g.dh), dw = static_cast<std::size_t>(g.dw);
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        for (std::size_t a = 0; a < g.kh; ++a)
        {
            for (std::size_t e = 0; e < g.kw; ++e)
            {
                T* row = col + ((c * g.kh + a) * g.kw + e) * ld;
                const T* src = x + (c * hp + a * dh) * wp + e * dw;
                for (std::size_t i = 0; i < g.ho; ++i)
                {
                    const T* in = src + i * sh * wp;
                    T* out = row + i * g.wo;
                    if (sw == 1)
                    {
                        copy_short(out, in, g.wo);
                    }
                    else
                    {
                        strided_copy(out, in, g.wo, sw);
                    }
                }
            }
        }
    }
}

/// The adjoint of im2col: dx (the cg planes of one image-group, overwritten) = the sum of every
/// col entry (rows `ld` apart) into the input pixel it was read from. With padding the sums go into the
/// zero-padded planes `xp` (padded_size(g) elements, L1-sized for typical layers), whose interior is then
/// copied out, so every col row segment is added whole, with no bounds logic.
template <class T>
void col2im(const T* col, const Geometry& g, T* dx, T* xp, std::size_t ld)
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    const std::size_t hp = g.h + 2 * ph, wp = g.w + 2 * pw;
    const bool padded = ph != 0 || pw != 0;
    T* acc = padded ? xp : dx;
    const auto sh = static_cast<std::size_t>(g.sh), sw = static_cast<std::size_t>(g.sw);
    const auto dh = static_cast<std::size_t>(g.dh), dw = static_cast<std::size_t>(g.dw);
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        T* plane = acc + c * hp * wp;
        std::fill(plane, plane + hp * wp, T(0));
        for (std::size_t a = 0; a < g.kh; ++a)
        {
            for (std::size_t e = 0; e < g.kw; ++e)
            {
                const T* row = col + ((c * g.kh + a) * g.kw + e) * ld;
                T* dst = plane + a * dh * wp + e * dw;
                for (std::size_t i = 0; i < g.ho; ++i)
                {
                    if (sw == 1)
                    {
                        add_short(dst + i * sh * wp, row + i * g.wo, g.wo);
                    }
                    else
                    {
                        strided_add(dst + i * sh * wp, row + i * g.wo, g.wo, sw);
                    }
                }
            }
        }
        if (padded)
        {
            for (std::size_t r = 0; r < g.h; ++r)
            {
                copy_short(dx + (c * g.h + r) * g.w, plane + (ph + r) * wp + pw, g.w);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Several images per GEMM

/// Images side by side in one GEMM: enough that its N = images * cols reaches about 256 (small
/// outputs, e.g. after a stride 2, make thin GEMMs that BLAS runs slowly). 1 for pointwise.
inline std::size_t images_per_gemm(const Geometry& g)
{
    if (g.pointwise() || g.cols() == 0 || g.cols() >= 256)
    {
        return 1;
    }
    return std::max<std::size_t>(1, std::min(g.n, 256 / g.cols()));
}

/// y[k][0, cols) += b[k] for kg rows `ld` apart; nothing when b is null.
template <class T>
void add_bias(T* y, const T* b, std::size_t kg, std::size_t cols, std::size_t ld)
{
    for (std::size_t k = 0; b != nullptr && k < kg; ++k)
    {
        T* p = y + k * ld;
        for (std::size_t j = 0; j < cols; ++j)
        {
            p[j] += b[k];
        }
    }
}

/// out[k][t*cols + j] = dy[n0 + t][gi*kg + k][j]: the dY of nt images side by side, rows ld apart.
template <class T>
void gather_dy(const T* dy, const Geometry& g, std::size_t n0, std::size_t nt, std::size_t gi, T* out,
               std::size_t ld)
{
    const std::size_t cols = g.cols();
    for (std::size_t t = 0; t < nt; ++t)
    {
        const T* src = dy + ((n0 + t) * g.k + gi * g.kg) * cols;
        for (std::size_t k = 0; k < g.kg; ++k)
        {
            std::copy(src + k * cols, src + (k + 1) * cols, out + k * ld + t * cols);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dX for stride 1 on "wide" rows
//
// With stride 1, let every output row run over the full padded width wp instead of wo (the last
// wp - wo entries of each row are unused). Then col row (c, a, e) of W^T * dY_wide is added into
// the padded plane c at the single offset a*dh*wp + e*dw, as one contiguous run of ho*wp elements:
// no short row segments. dY_wide has zeros in the unused columns, so their col entries are zero
// (for finite W) and add nothing wherever they land (at most (kw-1)*dw past the plane: slack).

/// Stride 1 (and not pointwise): the wide route applies.
inline bool wide_rows(const Geometry& g)
{
    return g.sh == 1 && g.sw == 1 && !g.pointwise();
}

/// Columns of the wide matrices: ho * wp.
inline std::size_t wide_cols(const Geometry& g)
{
    return g.ho * (g.w + 2 * static_cast<std::size_t>(g.pw));
}

/// Elements of one padded plane with the slack the wide adds run into.
inline std::size_t wide_plane_size(const Geometry& g)
{
    return (g.h + 2 * static_cast<std::size_t>(g.ph)) * (g.w + 2 * static_cast<std::size_t>(g.pw)) +
           (g.kw - 1) * static_cast<std::size_t>(g.dw);
}

/// out[k][i*wp + j] = dy[k][i*wo + j] for j < wo; kg rows. The columns wo <= j < wp are left
/// alone: the caller zeroes `out` once and reuses it.
template <class T>
void widen(const T* dy, const Geometry& g, T* out)
{
    const std::size_t wp = g.w + 2 * static_cast<std::size_t>(g.pw);
    for (std::size_t r = 0; r < g.kg * g.ho; ++r)
    {
        copy_short(out + r * wp, dy + r * g.wo, g.wo);
    }
}

/// dx (the cg planes of one image-group, overwritten) from the wide col [rows x ho*wp], summed in
/// `plane` (wide_plane_size(g) elements) one channel at a time.
template <class T>
void col2im_wide(const T* col, const Geometry& g, T* dx, T* plane)
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    const std::size_t wp = g.w + 2 * pw;
    const std::size_t cols = wide_cols(g), size = wide_plane_size(g);
    const auto dh = static_cast<std::size_t>(g.dh), dw = static_cast<std::size_t>(g.dw);
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        std::fill(plane, plane + size, T(0));
        for (std::size_t a = 0; a < g.kh; ++a)
        {
            for (std::size_t e = 0; e < g.kw; ++e)
            {
                add_short(plane + a * dh * wp + e * dw, col + ((c * g.kh + a) * g.kw + e) * cols, cols);
            }
        }
        for (std::size_t r = 0; r < g.h; ++r)
        {
            copy_short(dx + (c * g.h + r) * g.w, plane + (ph + r) * wp + pw, g.w);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers

/// One thread's buffers, in its scratch memory, for one kernel call: for im2col/col2im the col
/// matrix and the padded image (zeroed here: im2col writes only its interior; col2im zeroes what
/// it sums into); for dX on wide rows (`wide`) the wide col, the wide dY (zeroed here, see
/// widen()) and one padded plane. None for a pointwise convolution.
template <class T>
struct ColBuffers
{
    T* col = nullptr;
    T* padded = nullptr;
    T* wide_dy = nullptr;

    T* batch_y = nullptr; ///< Y or dY of `batch` images side by side (batch > 1)

    explicit ColBuffers(const Geometry& g, bool wide = false, std::size_t batch = 1)
    {
        if (g.pointwise())
        {
            return;
        }
        if (!wide)
        {
            const std::size_t col_size = g.rows() * g.cols() * batch;
            const std::size_t y_size = batch > 1 ? g.kg * g.cols() * batch : 0;
            col = scratch<T>(col_size + y_size + padded_size(g));
            batch_y = col + col_size;
            padded = batch_y + y_size;
            std::fill(padded, padded + padded_size(g), T(0));
            return;
        }
        const std::size_t wcols = wide_cols(g);
        col = scratch<T>(g.rows() * wcols + g.kg * wcols + wide_plane_size(g));
        wide_dy = col + g.rows() * wcols;
        padded = wide_dy + g.kg * wcols;
        std::fill(wide_dy, padded, T(0));
    }
};

} // namespace tapegrad::detail::conv
