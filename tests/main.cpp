// The test runner. Catch2's main is the slowest translation unit to compile, so it lives alone.
// It takes the fast OpenBLAS kernels but not the rest of init_process(): the tests check IEEE
// behaviour, denormals included.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <tapegrad/ops/blas.hpp>

int main(int argc, char** argv)
{
    tapegrad::blas::reexec_with_fast_kernels(argv);
    return Catch::Session().run(argc, argv);
}
