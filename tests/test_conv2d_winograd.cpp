// conv2d by Winograd's F(2x2, 3x3) (ops/conv2d_winograd.hpp): the same products as im2col + GEMM.
#include "support/support.hpp"

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace tg = tapegrad;
using tg::test::distinct;
using tg::test::small_ints;

namespace
{

constexpr auto gemm = tg::Conv2dAlgorithm::gemm;
constexpr auto winograd = tg::Conv2dAlgorithm::winograd;
constexpr auto automatic = tg::Conv2dAlgorithm::automatic;

template <class T>
bool same_bits(const xt::xarray<T>& a, const xt::xarray<T>& b)
{
    return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

/// max |a - b| / max(1, max |b|).
template <class T>
double relative_gap(const xt::xarray<T>& a, const xt::xarray<T>& b)
{
    double gap = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        gap = std::max(gap, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
        scale = std::max(scale, std::abs(static_cast<double>(b.data()[i])));
    }
    return gap / scale;
}

tg::Conv2dOptions with(tg::Conv2dOptions o, tg::Conv2dAlgorithm algorithm)
{
    o.algorithm = algorithm;
    return o;
}

} // namespace

TEMPLATE_TEST_CASE("conv2d winograd: forward, dX and dW equal the GEMM route bit for bit on integers",
                   "[conv2d][winograd]", float, double)
{
    using T = TestType;
    tg::Generator gen(31);
    struct Channels
    {
        std::size_t c, k;
        std::int64_t groups;
    };
    const std::vector<Channels> channels = {{1, 1, 1}, {3, 4, 1}, {4, 6, 2}};
    const std::vector<std::pair<std::size_t, std::size_t>> sizes = {{3, 3}, {5, 5}, {6, 7}, {4, 9}, {8, 8}};
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
                    const auto x = small_ints<T>({n, ch.c, h, w}, gen);
                    const auto wt = small_ints<T>({ch.k, cg, 3, 3}, gen);
                    const auto b = small_ints<T>({ch.k}, gen);
                    const auto y = tg::conv2d_forward<T>(x, wt, &b, with(opt, gemm));
                    CHECK(same_bits(tg::conv2d_forward<T>(x, wt, &b, with(opt, winograd)), y));
                    CHECK(same_bits(tg::conv2d_forward<T>(x, wt, nullptr, with(opt, winograd)),
                                    tg::conv2d_forward<T>(x, wt, nullptr, with(opt, gemm))));

                    const tg::Shape ys(y.shape().begin(), y.shape().end());
                    const auto dy = small_ints<T>(ys, gen);
                    const tg::Shape xs{n, ch.c, h, w}, ws{ch.k, cg, 3, 3};
                    const auto dx = tg::conv2d_backward_input<T>(dy, wt, xs, with(opt, winograd));
                    CHECK(same_bits(dx, tg::conv2d_backward_input<T>(dy, wt, xs, with(opt, gemm))));
                    // and the textbook route: dY correlated with the kernel rotated 180 degrees
                    CHECK(same_bits(dx, tg::conv2d_backward_input_full_conv<T>(dy, wt, xs, opt)));
                    CHECK(same_bits(tg::conv2d_backward_weight<T>(dy, x, ws, with(opt, winograd)),
                                    tg::conv2d_backward_weight<T>(dy, x, ws, with(opt, gemm))));
                }
}

TEST_CASE("conv2d winograd: gradcheck with paddings, groups, batch and bias", "[conv2d][winograd]")
{
    tg::Generator gen(32);
    const std::vector<tg::Size2> paddings = {0, 1, {2, 1}};
    for (std::size_t batch : {1, 2})
        for (std::int64_t groups : {1, 2})
            for (const auto& padding : paddings)
                for (bool bias : {true, false})
                {
                    const tg::Conv2dOptions opt{.padding = padding, .groups = groups, .algorithm = winograd};
                    const std::size_t C = groups == 1 ? 3 : 4, K = groups == 1 ? 2 : 4;
                    std::vector<tg::Tensor64> in{
                      distinct({batch, C, 5, 4}, gen),
                      distinct({K, C / static_cast<std::size_t>(groups), 3, 3}, gen)};
                    if (bias)
                    {
                        in.push_back(distinct({K}, gen));
                    }
                    INFO("batch " << batch << " groups " << groups << " padding {" << padding.h << ", "
                                  << padding.w << "} bias " << bias);
                    REQUIRE_GRADCHECK(
                      [opt](const std::vector<tg::Tensor64>& v)
                      { return tg::conv2d(v[0], v[1], v.size() > 2 ? v[2] : tg::Tensor64(), opt); },
                      in);
                }
}

TEST_CASE("conv2d winograd: the seed 003 worked example", "[conv2d][winograd]")
{
    const auto x = tg::from_vector<double>(
      {0, 2, -3, 2, -3, -2, -2, -2, -1, -2, -3, -3, 2, -2, 1, -3, -2, 1, -3, 1, 0, -1, 0, 2, -3},
      {1, 1, 5, 5});
    const auto w = tg::from_vector<double>({-1, 0, -2, 1, 1, -1, -1, -1, 0}, {1, 1, 3, 3});
    const auto b = tg::from_vector<double>({-1}, {1});
    const auto y = tg::conv2d(x, w, b, {.algorithm = winograd});
    const xt::xarray<double> want = {{{{9, -9, 7}, {2, 5, 6}, {-7, 9, -10}}}};
    CHECK(same_bits(y.value(), want));
}

TEST_CASE("conv2d winograd: float32 on real data stays within rounding of the GEMM route",
          "[conv2d][winograd]")
{
    tg::Generator gen(33);
    // The shape of the fashion CNN's second layer, on a small batch.
    const auto x = tg::randn<float>({3, 32, 14, 14}, gen).value();
    const auto w = tg::randn<float>({64, 32, 3, 3}, gen).value();
    const auto dy = tg::randn<float>({3, 64, 14, 14}, gen).value();
    const tg::Conv2dOptions opt{.padding = 1};
    const tg::Shape xs{3, 32, 14, 14}, ws{64, 32, 3, 3};
    CHECK(relative_gap(tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd)),
                       tg::conv2d_forward<float>(x, w, nullptr, with(opt, gemm))) < 1e-5);
    CHECK(relative_gap(tg::conv2d_backward_input<float>(dy, w, xs, with(opt, winograd)),
                       tg::conv2d_backward_input<float>(dy, w, xs, with(opt, gemm))) < 1e-5);
    CHECK(relative_gap(tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, winograd)),
                       tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, gemm))) < 1e-5);
}

TEST_CASE("conv2d winograd: the automatic choice", "[conv2d][winograd]")
{
    // Real-valued data, so the two routes round differently and the bits show which one ran.
    tg::Generator gen(34);
    const tg::Conv2dOptions opt{.padding = 1};
    SECTION("16 or more channels each way: Winograd for y and dX, GEMM for dW")
    {
        const auto x = tg::randn<float>({2, 16, 9, 8}, gen).value();
        const auto w = tg::randn<float>({16, 16, 3, 3}, gen).value();
        const auto dy = tg::randn<float>({2, 16, 9, 8}, gen).value();
        const tg::Shape xs{2, 16, 9, 8}, ws{16, 16, 3, 3};
        const auto y = tg::conv2d_forward<float>(x, w, nullptr, opt);
        CHECK(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd))));
        CHECK_FALSE(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, gemm))));
        CHECK(same_bits(tg::conv2d_backward_input<float>(dy, w, xs, opt),
                        tg::conv2d_backward_input<float>(dy, w, xs, with(opt, winograd))));
        CHECK(same_bits(tg::conv2d_backward_weight<float>(dy, x, ws, opt),
                        tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, gemm))));
    }
    SECTION("fewer channels, or a stride: GEMM")
    {
        const auto x = tg::randn<float>({2, 8, 9, 8}, gen).value();
        const auto w = tg::randn<float>({16, 8, 3, 3}, gen).value();
        const auto y = tg::conv2d_forward<float>(x, w, nullptr, opt);
        CHECK(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, gemm))));
        CHECK_FALSE(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd))));
        const auto x2 = tg::randn<float>({2, 16, 9, 8}, gen).value();
        const auto w2 = tg::randn<float>({16, 16, 3, 3}, gen).value();
        const tg::Conv2dOptions strided{.stride = 2, .padding = 1};
        CHECK(same_bits(tg::conv2d_forward<float>(x2, w2, nullptr, strided),
                        tg::conv2d_forward<float>(x2, w2, nullptr, with(strided, gemm))));
    }
}

TEST_CASE("conv2d winograd: asked for where it does not apply, it says why", "[conv2d][winograd]")
{
    const auto x = tg::zeros<float>({1, 2, 8, 8});
    auto message = [&](const tg::Shape& ws, tg::Conv2dOptions o) -> std::string
    {
        o.algorithm = winograd;
        try
        {
            tg::conv2d(x, tg::zeros<float>(ws), {}, o);
        }
        catch (const tg::ValueError& e)
        {
            return e.what();
        }
        return "no error";
    };
    const auto stride = message({3, 2, 3, 3}, {.stride = 2});
    CHECK_THAT(stride, Catch::Contains("tg::conv2d") && Catch::Contains("winograd") &&
                         Catch::Contains("stride (2, 2)") && Catch::Contains("[1, 2, 8, 8]"));
    CHECK_THAT(message({3, 2, 5, 5}, {}), Catch::Contains("kernel 5x5") && Catch::Contains("3x3 kernel"));
    CHECK_THAT(message({3, 2, 3, 3}, {.dilation = 2}), Catch::Contains("dilation (2, 2)"));
    // automatic never throws for these: it falls back to GEMM
    CHECK_NOTHROW(tg::conv2d(x, tg::zeros<float>({3, 2, 3, 3}), {}, {.stride = 2}));
}
