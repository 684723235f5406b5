#include <tapegrad/autograd/runtime.hpp>
#include <tapegrad/ops/blas.hpp>

#include <malloc.h>

#if defined(__SSE3__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

namespace tapegrad
{

void init_process(char** argv)
{
    blas::reexec_with_fast_kernels(argv);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#if defined(__SSE3__)
    // Threads created later (OpenMP's pool) inherit this floating-point environment.
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
}

} // namespace tapegrad
