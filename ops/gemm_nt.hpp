#pragma once
/// @file gemm_nt.hpp
/// Private to ops/: D[m x n] += A[m x len] * B[n x len]^T (gemm_nt) and D (+)= A^T B with A
/// [len x m], B [len x n] (gemm_tn), row-major, for the short, wide products of the Winograd
/// weight gradients (m, n = channel counts, len = a block's tiles); and the 16 x 16 register
/// transpose that conv2d_lanes.hpp packs planes with.
///
/// OpenBLAS copies (packs) both operands on every call, which on S2's shapes (64 x 32 x 280)
/// took as long as the multiplications: about 80 GFLOP/s on one core. Here B is transposed by
/// 16 x 16 register blocks into a work space, and an AVX-512 kernel keeps an 8 x 32 block of D
/// in 16 vector accumulators, adding 8 broadcast elements of A's column l times row l of B^T per
/// step: 170-210 GFLOP/s on one core, the transpose adding under a fifth (gemm_tn needs none: A^T
/// is read in place). Both are compiled for AVX-512 by a function attribute (the rest of the
/// build stays without it, see CMakeLists.txt) and chosen at run time; other CPUs, and double,
/// go through BLAS.

#include <tapegrad/ops/conv2d_kernels.hpp>

#include <cstddef>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TAPEGRAD_HAVE_AVX512_NT 1
#else
#define TAPEGRAD_HAVE_AVX512_NT 0
#endif

namespace tapegrad::detail
{

/// Whether gemm_nt may use its AVX-512 kernel: the CPU supports it and tests have not turned it
/// off (set_gemm_nt_avx512(false) exercises the BLAS route on any machine).
bool gemm_nt_avx512_enabled();
/// Turns the AVX-512 kernel off (or back on, where the CPU has it); for tests.
void set_gemm_nt_avx512(bool on);

#if TAPEGRAD_HAVE_AVX512_NT

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the unused merge source of the
// unpack and shuffle builtins, which -Wmaybe-uninitialized reports once they are inlined into a
// function compiled for AVX-512 (GCC bug 105593); nothing here reads an undefined value.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/// bt[l * ldbt + j] = b[j * ldb + l] for j < n, l < len: B [n x len] to B^T [len x n], by 16 x 16
/// blocks transposed in registers (interleave 32-bit, then 64-bit elements, then 128-bit lanes
/// twice). Rows past n repeat row n - 1 and are masked off when stored.
__attribute__((target("avx512f"))) inline void transpose_avx512(std::size_t n, std::size_t len,
                                                                const float* b, std::size_t ldb, float* bt,
                                                                std::size_t ldbt)
{
    for (std::size_t j0 = 0; j0 < n; j0 += 16)
    {
        const std::size_t cols = std::min<std::size_t>(16, n - j0);
        const __mmask16 keep = cols == 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1u);
        for (std::size_t l0 = 0; l0 < len; l0 += 16)
        {
            const std::size_t count = std::min<std::size_t>(16, len - l0);
            const __mmask16 in = count == 16 ? 0xFFFF : static_cast<__mmask16>((1u << count) - 1u);
            __m512 r[16], t[16];
            for (std::size_t i = 0; i < 16; ++i)
            {
                r[i] = _mm512_maskz_loadu_ps(in, b + (j0 + std::min(i, cols - 1)) * ldb + l0);
            }
            for (int i = 0; i < 8; ++i)
            {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            for (int i = 0; i < 4; ++i) // r[4 i + e], 128-bit lane q: rows 4i .. 4i+3 at column 4 q + e
            {
                const __m512d lo = _mm512_castps_pd(t[4 * i]), hi = _mm512_castps_pd(t[4 * i + 1]);
                const __m512d lo2 = _mm512_castps_pd(t[4 * i + 2]), hi2 = _mm512_castps_pd(t[4 * i + 3]);
                r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
                r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
                r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
                r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
            }
            for (int e = 0; e < 4; ++e)
            {
                const __m512 a0 = _mm512_shuffle_f32x4(r[e], r[4 + e], _MM_SHUFFLE(2, 0, 2, 0));
                const __m512 a1 = _mm512_shuffle_f32x4(r[e], r[4 + e], _MM_SHUFFLE(3, 1, 3, 1));
                const __m512 c0 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], _MM_SHUFFLE(2, 0, 2, 0));
                const __m512 c1 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], _MM_SHUFFLE(3, 1, 3, 1));
                const __m512 out[4] = {_mm512_shuffle_f32x4(a0, c0, _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_f32x4(a1, c1, _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_f32x4(a0, c0, _MM_SHUFFLE(3, 1, 3, 1)),
                                       _mm512_shuffle_f32x4(a1, c1, _MM_SHUFFLE(3, 1, 3, 1))};
                for (std::size_t q = 0; q < 4; ++q)
                {
                    const std::size_t l = 4 * q + static_cast<std::size_t>(e);
                    if (l < count)
                    {
                        _mm512_mask_storeu_ps(bt + (l0 + l) * ldbt + j0, keep, out[q]);
                    }
                }
            }
        }
    }
}

/// D[m x n] += A[m x len] * BT[len x n], A's element (r, l) at a[r * ars + l * als] (so A or
/// A^T row-major): 8 rows of D by 32 columns at a time in 16 vector accumulators; each step
/// broadcasts 8 elements of A's column l and multiplies them by row l of BT. Edge rows repeat
/// the last row of A (their sums are dropped); edge columns are masked. D = A * BT instead when
/// not `accumulate`.
__attribute__((target("avx512f"))) inline void gemm_nt_avx512(std::size_t m, std::size_t n, std::size_t len,
                                                              const float* a, std::size_t ars,
                                                              std::size_t als, const float* bt,
                                                              std::size_t ldbt, float* d, std::size_t ldd,
                                                              bool accumulate = true)
{
    for (std::size_t c0 = 0; c0 < n; c0 += 32)
    {
        const std::size_t left = n - c0;
        const __mmask16 k0 = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1u);
        const __mmask16 k1 =
          left >= 32 ? 0xFFFF : (left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1u));
        for (std::size_t r0 = 0; r0 < m; r0 += 8)
        {
            const std::size_t rows = std::min<std::size_t>(8, m - r0);
            const float* ar[8];
            for (std::size_t r = 0; r < 8; ++r)
            {
                ar[r] = a + std::min(r0 + r, m - 1) * ars;
            }
            __m512 acc0[8], acc1[8];
            for (int r = 0; r < 8; ++r)
            {
                acc0[r] = _mm512_setzero_ps();
                acc1[r] = _mm512_setzero_ps();
            }
            const float* row = bt + c0;
            for (std::size_t l = 0; l < len; ++l, row += ldbt)
            {
                const __m512 v0 = _mm512_maskz_loadu_ps(k0, row);
                const __m512 v1 = _mm512_maskz_loadu_ps(k1, row + 16);
                for (int r = 0; r < 8; ++r)
                {
                    const __m512 s = _mm512_set1_ps(ar[r][l * als]);
                    acc0[r] = _mm512_fmadd_ps(s, v0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(s, v1, acc1[r]);
                }
            }
            // Spilled with a fixed count first: a loop over `rows` reading acc0/acc1 made gcc keep
            // a memory copy of all 16 accumulators, stored on every step.
            alignas(64) float sums[8][32];
            for (int r = 0; r < 8; ++r)
            {
                _mm512_store_ps(sums[r], acc0[r]);
                _mm512_store_ps(sums[r] + 16, acc1[r]);
            }
            const __mmask16 l0 = accumulate ? k0 : 0, l1 = accumulate ? k1 : 0;
            for (std::size_t r = 0; r < rows; ++r)
            {
                float* out = d + (r0 + r) * ldd + c0;
                _mm512_mask_storeu_ps(out, k0,
                                      _mm512_add_ps(_mm512_maskz_loadu_ps(l0, out), _mm512_load_ps(sums[r])));
                _mm512_mask_storeu_ps(
                  out + 16, k1,
                  _mm512_add_ps(_mm512_maskz_loadu_ps(l1, out + 16), _mm512_load_ps(sums[r] + 16)));
            }
        }
    }
}

#pragma GCC diagnostic pop

#endif

/// D[m x n] += A[m x len] * B[n x len]^T (rows lda, ldb, ldd apart); `work` holds len * n
/// elements (B^T for the AVX-512 kernel).
inline void gemm_nt(std::size_t m, std::size_t n, std::size_t len, const float* a, std::size_t lda,
                    const float* b, std::size_t ldb, float* d, std::size_t ldd, float* work)
{
#if TAPEGRAD_HAVE_AVX512_NT
    if (gemm_nt_avx512_enabled())
    {
        transpose_avx512(n, len, b, ldb, work, n);
        gemm_nt_avx512(m, n, len, a, lda, 1, work, n, d, ldd);
        return;
    }
#endif
    conv::checked_gemm(false, true, m, n, len, a, lda, b, ldb, 1.0f, d, ldd);
}

/// D[m x n] = A^T B, or D += A^T B when `accumulate`, with A [len x m] and B [len x n] (rows
/// lda, ldb, ldd apart): the product of two tile-major matrices, which the AVX-512 kernel takes
/// as they are.
inline void gemm_tn(std::size_t m, std::size_t n, std::size_t len, const float* a, std::size_t lda,
                    const float* b, std::size_t ldb, float* d, std::size_t ldd, bool accumulate)
{
#if TAPEGRAD_HAVE_AVX512_NT
    if (gemm_nt_avx512_enabled())
    {
        gemm_nt_avx512(m, n, len, a, 1, lda, b, ldb, d, ldd, accumulate);
        return;
    }
#endif
    conv::checked_gemm(true, false, m, n, len, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, d, ldd);
}

/// The double form: always BLAS.
inline void gemm_tn(std::size_t m, std::size_t n, std::size_t len, const double* a, std::size_t lda,
                    const double* b, std::size_t ldb, double* d, std::size_t ldd, bool accumulate)
{
    conv::checked_gemm(true, false, m, n, len, a, lda, b, ldb, accumulate ? 1.0 : 0.0, d, ldd);
}

/// The double form: always BLAS.
inline void gemm_nt(std::size_t m, std::size_t n, std::size_t len, const double* a, std::size_t lda,
                    const double* b, std::size_t ldb, double* d, std::size_t ldd, double*)
{
    conv::checked_gemm(false, true, m, n, len, a, lda, b, ldb, 1.0, d, ldd);
}

} // namespace tapegrad::detail
