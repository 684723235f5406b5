// The test runner. Catch2's main is the slowest translation unit to compile, so it lives alone.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <tapegrad/autograd/runtime.hpp>

int main(int argc, char** argv)
{
    tapegrad::init_process(argv);
    return Catch::Session().run(argc, argv);
}
