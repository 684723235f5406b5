// conv2d at stride 2 by the 25-product minimal filtering algorithm (ops/conv2d_winograd_s2.hpp):
// the same products as im2col + GEMM and as the textbook full convolution.
#include "support/conv_support.hpp"

#include <catch2/catch.hpp>
#include <omp.h>
#include <tapegrad/tapegrad.hpp>

#include <cmath>
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
constexpr auto winograd = tg::Conv2dAlgorithm::winograd;

} // namespace

TEMPLATE_TEST_CASE("conv2d winograd stride 2: y, dX, dW and db equal the GEMM route bit for bit on integers",
                   "[conv2d][winograd_s2]", float, double)
{
    // The transforms only add and subtract small integers, so every route is exact here.
    using T = TestType;
    tg::Generator gen(41);
    struct Channels
    {
        std::size_t c, k;
        std::int64_t groups;
    };
    const std::vector<Channels> channels = {{1, 1, 1}, {3, 4, 1}, {4, 6, 2}};
    const std::vector<std::pair<std::size_t, std::size_t>> sizes = {{3, 3}, {4, 4}, {5, 5}, {6, 7},
                                                                    {4, 9}, {8, 8}, {9, 6}};
    const std::vector<tg::Size2> paddings = {0, 1, 2, {1, 0}, {0, 2}};
    for (std::size_t n : {1, 3})
        for (const auto& ch : channels)
            for (const auto& [h, w] : sizes)
                for (const auto& padding : paddings)
                {
                    const tg::Conv2dOptions opt{.stride = 2, .padding = padding, .groups = ch.groups};
                    const auto cg = ch.c / static_cast<std::size_t>(ch.groups);
                    INFO("n " << n << " c " << ch.c << " k " << ch.k << " groups " << ch.groups << " " << h
                              << "x" << w << " padding {" << padding.h << ", " << padding.w << "}");
                    const auto x = small_ints<T>({n, ch.c, h, w}, gen);
                    const auto wt = small_ints<T>({ch.k, cg, 3, 3}, gen);
                    const auto b = small_ints<T>({ch.k}, gen);
                    const auto y = tg::conv2d_forward<T>(x, wt, &b, with(opt, gemm));
                    CHECK(same_bits(tg::conv2d_forward<T>(x, wt, &b, with(opt, winograd)), y));

                    const tg::Shape ys(y.shape().begin(), y.shape().end());
                    const auto dy = small_ints<T>(ys, gen);
                    const tg::Shape xs{n, ch.c, h, w}, ws{ch.k, cg, 3, 3};
                    const auto dx = tg::conv2d_backward_input<T>(dy, wt, xs, with(opt, winograd));
                    CHECK(same_bits(dx, tg::conv2d_backward_input<T>(dy, wt, xs, with(opt, gemm))));
                    // the textbook route: dY dilated by the stride, correlated with rot180(W)
                    CHECK(same_bits(dx, tg::conv2d_backward_input_full_conv<T>(dy, wt, xs, opt)));
                    CHECK(same_bits(tg::conv2d_backward_weight<T>(dy, x, ws, with(opt, winograd)),
                                    tg::conv2d_backward_weight<T>(dy, x, ws, with(opt, gemm))));

                    // one pass through the tape: dX, dW and db together, V kept from the forward
                    const auto fast = tg::test::conv2d_through_tape<T>(x, wt, b, dy, with(opt, winograd));
                    const auto ref = tg::test::conv2d_through_tape<T>(x, wt, b, dy, with(opt, gemm));
                    for (std::size_t i = 0; i < fast.size(); ++i)
                    {
                        INFO("through the tape, output " << i << " (y, dx, dw, db)");
                        CHECK(same_bits(fast[i], ref[i]));
                    }
                }
}

TEST_CASE("conv2d winograd stride 2: channels over several transform vectors", "[conv2d][winograd_s2]")
{
    tg::Generator gen(84);
    tg::test::check_channel_blocks(tg::Conv2dAlgorithm::winograd, 2, 1e-5F, gen);
}

TEST_CASE("conv2d winograd stride 2: gradcheck with paddings, groups, batch and bias",
          "[conv2d][winograd_s2]")
{
    tg::Generator gen(42);
    tg::test::gradcheck_conv2d_grid({.stride = 2, .algorithm = winograd}, 7, 6, gen);
}

TEST_CASE("conv2d winograd stride 2: the seed 003 worked example at stride 2", "[conv2d][winograd_s2]")
{
    const xt::xarray<double> want = {{{{9, 7}, {-7, -10}}}};
    CHECK(same_bits(tg::test::seed003_conv(winograd, 2), want));
}

TEST_CASE("conv2d winograd stride 2: float32 on real data, threads and the automatic choice",
          "[conv2d][winograd_s2]")
{
    tg::Generator gen(43);
    // The shape of W1 S4 (64 -> 128 channels, 16x16, k3 s2 p1) on a batch of 5: three blocks of
    // images, so the dW chunks and the saved V span blocks.
    const auto x = tg::randn<float>({5, 64, 16, 16}, gen).value();
    const auto w = tg::randn<float>({128, 64, 3, 3}, gen).value();
    const auto b = tg::randn<float>({128}, gen).value();
    const auto dy = tg::randn<float>({5, 128, 8, 8}, gen).value();
    const tg::Conv2dOptions opt{.stride = 2, .padding = 1};
    const auto fast = tg::test::conv2d_through_tape<float>(x, w, b, dy, with(opt, winograd), 1);
    const auto ref = tg::test::conv2d_through_tape<float>(x, w, b, dy, with(opt, gemm), 1);
    for (std::size_t i = 0; i < fast.size(); ++i)
    {
        INFO("output " << i << " (y, dx, dw, db)");
        CHECK(relative_gap(fast[i], ref[i]) < 1e-5);
        // blocks of images and dW chunks are fixed by the shape: 2 threads give the same bits
        CHECK(
          same_bits(tg::test::conv2d_through_tape<float>(x, w, b, dy, with(opt, winograd), 2)[i], fast[i]));
    }
    // automatic takes the stride-2 algorithm here (64 and 128 channels) ...
    const auto automatic = tg::test::conv2d_through_tape<float>(x, w, b, dy, opt, 1);
    for (std::size_t i = 0; i < 3; ++i)
    {
        INFO("output " << i << " (y, dx, dw)");
        CHECK(same_bits(automatic[i], fast[i]));
        CHECK_FALSE(same_bits(automatic[i], ref[i]));
    }
    // ... but not with fewer than 16 channels each way, where GEMM stays
    const auto xs = tg::randn<float>({5, 8, 16, 16}, gen).value();
    const auto ws = tg::randn<float>({128, 8, 3, 3}, gen).value();
    const auto few = tg::test::conv2d_through_tape<float>(xs, ws, b, dy, opt, 1);
    const auto few_gemm = tg::test::conv2d_through_tape<float>(xs, ws, b, dy, with(opt, gemm), 1);
    for (std::size_t i = 0; i < 3; ++i)
    {
        INFO("8 input channels, output " << i << " (y, dx, dw)");
        CHECK(same_bits(few[i], few_gemm[i]));
    }
}

TEST_CASE("conv2d winograd stride 2: empty batch and no channels", "[conv2d][winograd_s2]")
{
    const tg::Conv2dOptions opt{.stride = 2, .padding = 1, .algorithm = winograd};
    auto x0 = tg::Tensor(xt::xarray<float>::from_shape({0, 2, 6, 6}), true);
    auto w = tg::ones<float>({3, 2, 3, 3}, true);
    auto y0 = tg::conv2d(x0, w, {}, opt);
    CHECK(y0.shape() == tg::Shape{0, 3, 3, 3});
    y0.backward(tg::Tensor(xt::xarray<float>::from_shape({0, 3, 3, 3})));
    CHECK(w.grad().value() == xt::xarray<float>(xt::zeros<float>({3, 2, 3, 3})));

    auto x = tg::ones<float>({2, 0, 6, 6}, true);
    auto w0 = tg::ones<float>({3, 0, 3, 3}, true);
    auto b = tg::from_vector<float>({1, 2, 3}, {3}, true);
    auto y = tg::conv2d(x, w0, b, opt);
    REQUIRE(y.shape() == tg::Shape{2, 3, 3, 3});
    CHECK(y.value()(1, 2, 2, 2) == 3.0f);
    y.backward(tg::ones<float>(y.shape()));
    CHECK(b.grad().value()(0) == 2 * 9);
    CHECK(tg::conv2d(tg::ones<float>({2, 2, 6, 6}), tg::ones<float>({0, 2, 3, 3}), {}, opt).shape() ==
          tg::Shape{2, 0, 3, 3});
}
