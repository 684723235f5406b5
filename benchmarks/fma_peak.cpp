// The FP32 multiply-add peak of this machine, per thread: every OpenMP thread runs independent
// chains of fused multiply-adds on registers (AVX-512 where the CPU has it, else AVX2 + FMA) for
// about 0.3 s, and the slowest thread's rate is printed in GFLOP/s. compare.sh passes it to
// peer_report for the "% of peak" column, so the column is about the machine that ran.
//
//     fma_peak [threads]      (default: OpenMP's default)

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace
{

constexpr long steps = 20'000'000;

/// 12 independent accumulators: more than the FMA latency times the number of FMA units on
/// current x86 cores, so the chains never wait on each other.
__attribute__((target("avx512f"))) float chains_avx512()
{
    // distinct starting values, or the compiler merges the chains into one
    __m512 a0 = _mm512_set1_ps(1.00f), a1 = _mm512_set1_ps(1.01f), a2 = _mm512_set1_ps(1.02f),
           a3 = _mm512_set1_ps(1.03f), a4 = _mm512_set1_ps(1.04f), a5 = _mm512_set1_ps(1.05f),
           a6 = _mm512_set1_ps(1.06f), a7 = _mm512_set1_ps(1.07f), a8 = _mm512_set1_ps(1.08f),
           a9 = _mm512_set1_ps(1.09f), a10 = _mm512_set1_ps(1.10f), a11 = _mm512_set1_ps(1.11f);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
    for (long i = 0; i < steps; ++i)
    {
        a0 = _mm512_fmadd_ps(a0, m, c), a1 = _mm512_fmadd_ps(a1, m, c), a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c), a4 = _mm512_fmadd_ps(a4, m, c), a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c), a7 = _mm512_fmadd_ps(a7, m, c), a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c), a10 = _mm512_fmadd_ps(a10, m, c), a11 = _mm512_fmadd_ps(a11, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    alignas(64) float v[16];
    _mm512_store_ps(v, s);
    return v[0] + v[15];
}

__attribute__((target("avx2,fma"))) float chains_avx2()
{
    __m256 a0 = _mm256_set1_ps(1.00f), a1 = _mm256_set1_ps(1.01f), a2 = _mm256_set1_ps(1.02f),
           a3 = _mm256_set1_ps(1.03f), a4 = _mm256_set1_ps(1.04f), a5 = _mm256_set1_ps(1.05f),
           a6 = _mm256_set1_ps(1.06f), a7 = _mm256_set1_ps(1.07f), a8 = _mm256_set1_ps(1.08f),
           a9 = _mm256_set1_ps(1.09f), a10 = _mm256_set1_ps(1.10f), a11 = _mm256_set1_ps(1.11f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
    for (long i = 0; i < steps; ++i)
    {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c), a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c), a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c), a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c), a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    alignas(32) float v[8];
    _mm256_store_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

} // namespace

int main(int argc, char** argv)
{
    if (argc > 1)
    {
        omp_set_num_threads(std::max(1, std::atoi(argv[1])));
    }
    const bool avx512 = __builtin_cpu_supports("avx512f") != 0;
    if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
    {
        std::fprintf(stderr, "fma_peak: this CPU has neither AVX-512 nor AVX2 + FMA\n");
        return 1;
    }
    const double flops = 2.0 * 12 * (avx512 ? 16 : 8) * static_cast<double>(steps);
    double slowest = 1e300;
    float sink = 0;
#pragma omp parallel reduction(min : slowest) reduction(+ : sink)
    {
        (void)(avx512 ? chains_avx512() : chains_avx2()); // warm-up: clocks up, code in cache
#pragma omp barrier
        const auto t0 = std::chrono::steady_clock::now();
        sink += avx512 ? chains_avx512() : chains_avx2();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        slowest = std::min(slowest, flops / s * 1e-9);
    }
    std::printf("%.1f\n", slowest);
    return sink == 12345.0f ? 2 : 0; // keeps the chains' results alive
}
