// conv2d by Winograd's F(5x5, 3x3) (ops/conv2d_winograd_5x5.hpp on ops/conv2d_minimal.hpp): the
// same products as im2col + GEMM up to the rounding of its transforms.
#include "support/conv_support.hpp"

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::test::conv2d_error;

namespace
{

constexpr auto algorithm = tg::Conv2dAlgorithm::winograd_5x5;

} // namespace

TEST_CASE("conv2d winograd_5x5: y, dX, dW and db equal the GEMM route to float64 rounding",
          "[conv2d][winograd_5x5]")
{
    // Integer data: the GEMM route is exact, F(5x5, 3x3) off by the rounding of its transforms.
    tg::Generator gen(61);
    tg::test::check_tile_algorithm_on_integers(algorithm, gen);
}

TEST_CASE("conv2d winograd_5x5: channels over several transform vectors", "[conv2d][winograd_5x5]")
{
    tg::Generator gen(64);
    tg::test::check_channel_blocks(algorithm, 1, 2e-5F, gen);
}

TEST_CASE("conv2d winograd_5x5: gradcheck with paddings, groups, batch and bias", "[conv2d][winograd_5x5]")
{
    tg::Generator gen(62);
    tg::test::gradcheck_conv2d_grid({.algorithm = algorithm}, 7, 6, gen);
}

TEST_CASE("conv2d winograd_5x5: the seed 003 worked example", "[conv2d][winograd_5x5]")
{
    const xt::xarray<double> want = {{{{9, -9, 7}, {2, 5, 6}, {-7, 9, -10}}}};
    CHECK(tg::test::relative_gap(tg::test::seed003_conv(algorithm), want) < 1e-14);
}

TEST_CASE("conv2d winograd_5x5: float32 on real data, threads, and its error messages",
          "[conv2d][winograd_5x5]")
{
    tg::Generator gen(63);
    tg::test::check_fashion_layer_float32(algorithm, 2e-5, gen);
    CHECK_THAT(conv2d_error(algorithm, {.stride = 2}, {3, 2, 3, 3}), Catch::Contains("winograd_5x5") &&
                                                                       Catch::Contains("stride (2, 2)") &&
                                                                       Catch::Contains("[1, 2, 8, 8]"));
    CHECK_THAT(conv2d_error(algorithm, {}, {3, 2, 5, 5}), Catch::Contains("kernel 5x5"));
    CHECK_THAT(conv2d_error(algorithm, {.dilation = 2}, {3, 2, 3, 3}), Catch::Contains("dilation (2, 2)"));
}
