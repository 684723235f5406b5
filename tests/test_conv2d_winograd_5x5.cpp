// conv2d by Winograd's F(5x5, 3x3) (ops/conv2d_winograd_5x5.hpp on ops/conv2d_minimal.hpp): the
// same products as im2col + GEMM up to the rounding of its transforms.
#include "support/conv_support.hpp"

#include <catch2/catch.hpp>
#include <omp.h>
#include <tapegrad/tapegrad.hpp>

#include <string>
#include <vector>

namespace tg = tapegrad;
using tg::test::distinct;
using tg::test::relative_gap;
using tg::test::same_bits;
using tg::test::small_ints;
using tg::test::with;

namespace
{

constexpr auto gemm = tg::Conv2dAlgorithm::gemm;
constexpr auto f5 = tg::Conv2dAlgorithm::winograd_5x5;

} // namespace

TEST_CASE("conv2d winograd_5x5: y, dX, dW and db equal the GEMM route to float64 rounding",
          "[conv2d][winograd_5x5]")
{
    // Integer data: the GEMM route is exact, F(5x5, 3x3) off by the rounding of 1/6 and 1/24.
    tg::Generator gen(61);
    struct Channels
    {
        std::size_t c, k;
        std::int64_t groups;
    };
    const std::vector<Channels> channels = {{1, 1, 1}, {3, 4, 1}, {4, 6, 2}};
    const std::vector<std::pair<std::size_t, std::size_t>> sizes = {{3, 3}, {4, 5},  {6, 6},
                                                                    {7, 9}, {10, 4}, {14, 14}, {11, 12}};
    const std::vector<tg::Size2> paddings = {0, 1, 2, {1, 0}, {0, 2}};
    for (std::size_t n : {1, 3})
        for (const auto& ch : channels)
            for (const auto& [h, w] : sizes)
                for (const auto& padding : paddings)
                {
                    const tg::Conv2dOptions opt{.padding = padding, .groups = ch.groups};
                    const auto cg = ch.c / static_cast<std::size_t>(ch.groups);
                    INFO("n " << n << " c " << ch.c << " k " << ch.k << " groups " << ch.groups << " " << h
                              << "x" << w << " padding {" << padding.h << ", " << padding.w << "}");
                    const auto x = small_ints<double>({n, ch.c, h, w}, gen);
                    const auto wt = small_ints<double>({ch.k, cg, 3, 3}, gen);
                    const auto b = small_ints<double>({ch.k}, gen);
                    const auto y = tg::conv2d_forward<double>(x, wt, &b, with(opt, gemm));
                    CHECK(relative_gap(tg::conv2d_forward<double>(x, wt, &b, with(opt, f5)), y) < 1e-13);

                    const tg::Shape ys(y.shape().begin(), y.shape().end());
                    const auto dy = small_ints<double>(ys, gen);
                    const tg::Shape xs{n, ch.c, h, w}, ws{ch.k, cg, 3, 3};
                    // dX against the textbook route: dY correlated with rot180(W)
                    CHECK(relative_gap(tg::conv2d_backward_input<double>(dy, wt, xs, with(opt, f5)),
                                       tg::conv2d_backward_input_full_conv<double>(dy, wt, xs, opt)) < 1e-13);
                    CHECK(relative_gap(tg::conv2d_backward_weight<double>(dy, x, ws, with(opt, f5)),
                                       tg::conv2d_backward_weight<double>(dy, x, ws, with(opt, gemm))) <
                          1e-13);

                    const auto fast = tg::test::conv2d_through_tape<double>(x, wt, b, dy, with(opt, f5));
                    const auto ref = tg::test::conv2d_through_tape<double>(x, wt, b, dy, with(opt, gemm));
                    for (std::size_t i = 0; i < fast.size(); ++i)
                    {
                        INFO("through the tape, output " << i << " (y, dx, dw, db)");
                        CHECK(relative_gap(fast[i], ref[i]) < 1e-13);
                    }
                }
}

TEST_CASE("conv2d winograd_5x5: channels over several transform vectors", "[conv2d][winograd_5x5]")
{
    tg::Generator gen(64);
    tg::test::check_channel_blocks(f5, 1, 2e-5F, gen);
}

TEST_CASE("conv2d winograd_5x5: gradcheck with paddings, groups, batch and bias", "[conv2d][winograd_5x5]")
{
    tg::Generator gen(62);
    tg::test::gradcheck_conv2d_grid({.algorithm = f5}, 7, 6, gen);
}

TEST_CASE("conv2d winograd_5x5: the seed 003 worked example", "[conv2d][winograd_5x5]")
{
    const auto x = tg::from_vector<double>(
      {0, 2, -3, 2, -3, -2, -2, -2, -1, -2, -3, -3, 2, -2, 1, -3, -2, 1, -3, 1, 0, -1, 0, 2, -3},
      {1, 1, 5, 5});
    const auto w = tg::from_vector<double>({-1, 0, -2, 1, 1, -1, -1, -1, 0}, {1, 1, 3, 3});
    const auto b = tg::from_vector<double>({-1}, {1});
    const auto y = tg::conv2d(x, w, b, {.algorithm = f5});
    const xt::xarray<double> want = {{{{9, -9, 7}, {2, 5, 6}, {-7, 9, -10}}}};
    CHECK(relative_gap(y.value(), want) < 1e-14);
}

TEST_CASE("conv2d winograd_5x5: float32 on real data, threads, and where it applies",
          "[conv2d][winograd_5x5]")
{
    tg::Generator gen(63);
    // The shape of the fashion CNN's second layer (W1 S2) on a batch of 11: blocks of images and
    // dW chunks that do not divide evenly.
    const auto x = tg::randn<float>({11, 32, 14, 14}, gen).value();
    const auto w = tg::randn<float>({64, 32, 3, 3}, gen).value();
    const auto b = tg::randn<float>({64}, gen).value();
    const auto dy = tg::randn<float>({11, 64, 14, 14}, gen).value();
    const tg::Conv2dOptions opt{.padding = 1};
    const auto fast = tg::test::conv2d_through_tape<float>(x, w, b, dy, with(opt, f5), 1);
    const auto ref = tg::test::conv2d_through_tape<float>(x, w, b, dy, with(opt, gemm), 1);
    const auto two = tg::test::conv2d_through_tape<float>(x, w, b, dy, with(opt, f5), 2);
    for (std::size_t i = 0; i < fast.size(); ++i)
    {
        INFO("output " << i << " (y, dx, dw, db)");
        CHECK(relative_gap(fast[i], ref[i]) < 2e-5);
        CHECK(same_bits(two[i], fast[i]));
    }

    auto message = [&](tg::Conv2dOptions o, const tg::Shape& ws)
    {
        o.algorithm = f5;
        try
        {
            tg::conv2d(tg::zeros<float>({1, 2, 8, 8}), tg::zeros<float>(ws), {}, o);
        }
        catch (const tg::ValueError& e)
        {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK_THAT(message({.stride = 2}, {3, 2, 3, 3}), Catch::Contains("winograd_5x5") &&
                                                       Catch::Contains("stride (2, 2)") &&
                                                       Catch::Contains("[1, 2, 8, 8]"));
    CHECK_THAT(message({}, {3, 2, 5, 5}), Catch::Contains("kernel 5x5"));
    CHECK_THAT(message({.dilation = 2}, {3, 2, 3, 3}), Catch::Contains("dilation (2, 2)"));
}
