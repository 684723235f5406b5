#include <tapegrad/ops/blas.hpp>

#include <tapegrad/ops/gemm_nt.hpp>

#include <cblas.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <mutex>

namespace tapegrad::blas
{

namespace
{
/// A rough order of OpenBLAS x86-64 kernel sets by the instructions they use.
int rank(const std::string& core)
{
    if (core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids")
    {
        return 3;
    }
    if (core == "Haswell" || core == "Zen")
    {
        return 2;
    }
    if (core == "Sandybridge")
    {
        return 1;
    }
    return 0;
}
} // namespace

std::string core_name()
{
    const char* name = openblas_get_corename();
    return name != nullptr ? name : "";
}

std::string better_core()
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    std::string best;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    {
        best = "SkylakeX";
    }
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    {
        best = "Haswell";
    }
    return !best.empty() && rank(best) > rank(core_name()) ? best : "";
#else
    return "";
#endif
}

void reexec_with_fast_kernels(char** argv)
{
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr)
    {
        return;
    }
    const std::string core = better_core();
    if (core.empty())
    {
        return;
    }
    setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); // exec failed: carry on with the slow kernels
}

void warn_if_slow_kernels()
{
    static std::once_flag once;
    std::call_once(once,
                   []
                   {
                       const std::string core = better_core();
                       if (!core.empty())
                       {
                           std::cerr << "tapegrad: OpenBLAS chose its generic '" << core_name()
                                     << "' kernels for this CPU; GEMMs run several times slower than with '"
                                     << core << "'. Set OPENBLAS_CORETYPE=" << core
                                     << " in the environment (tapegrad's own programs do it themselves).\n";
                       }
                   });
}

} // namespace tapegrad::blas

namespace tapegrad::detail
{

namespace
{
std::atomic<bool>& gemm_nt_avx512_flag()
{
    static std::atomic<bool> on{__builtin_cpu_supports("avx512f") != 0};
    return on;
}
} // namespace

bool gemm_nt_avx512_enabled()
{
    return gemm_nt_avx512_flag().load(std::memory_order_relaxed);
}

void set_gemm_nt_avx512(bool on)
{
    gemm_nt_avx512_flag().store(on && __builtin_cpu_supports("avx512f") != 0, std::memory_order_relaxed);
}

} // namespace tapegrad::detail
