#include <tapegrad/autograd/runtime.hpp>
#include <tapegrad/ops/blas.hpp>

#include <malloc.h>

namespace tapegrad
{

void init_process(char** argv)
{
    blas::reexec_with_fast_kernels(argv);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

} // namespace tapegrad
