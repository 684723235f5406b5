// conv2d by Winograd's F(2x2, 3x3) (ops/conv2d_winograd.hpp): the same products as im2col + GEMM.
#include "support/conv_support.hpp"

#include <catch2/catch.hpp>
#include <tapegrad/ops/gemm_nt.hpp>
#include <tapegrad/tapegrad.hpp>

#include <array>
#include <cmath>
#include <string>
#include <vector>

namespace tg = tapegrad;
using tg::test::distinct;
using tg::test::GemmNtKernel;
using tg::test::relative_gap;
using tg::test::same_bits;
using tg::test::small_ints;
using tg::test::with;

namespace
{

constexpr auto gemm = tg::Conv2dAlgorithm::gemm;
constexpr auto winograd = tg::Conv2dAlgorithm::winograd;
constexpr auto automatic = tg::Conv2dAlgorithm::automatic;
constexpr auto winograd_4x4 = tg::Conv2dAlgorithm::winograd_4x4;
constexpr auto winograd_5x5 = tg::Conv2dAlgorithm::winograd_5x5;

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
    tg::test::gradcheck_conv2d_grid({.algorithm = winograd}, 5, 4, gen);
}

TEST_CASE("conv2d winograd: the seed 003 worked example", "[conv2d][winograd]")
{
    const xt::xarray<double> want = {{{{9, -9, 7}, {2, 5, 6}, {-7, 9, -10}}}};
    CHECK(same_bits(tg::test::seed003_conv(winograd), want));
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
    SECTION("16 or more channels each way: F(4x4, 3x3) for y and dX, GEMM for dW alone")
    {
        // 8x8: 4 tiles of F(4x4, 3x3) (144 products) against 4 of F(5x5, 3x3) (196)
        const auto x = tg::randn<float>({2, 16, 8, 8}, gen).value();
        const auto w = tg::randn<float>({16, 16, 3, 3}, gen).value();
        const auto dy = tg::randn<float>({2, 16, 8, 8}, gen).value();
        const tg::Shape xs{2, 16, 8, 8}, ws{16, 16, 3, 3};
        const auto y = tg::conv2d_forward<float>(x, w, nullptr, opt);
        CHECK(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd_4x4))));
        CHECK_FALSE(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd))));
        CHECK_FALSE(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, gemm))));
        CHECK(same_bits(tg::conv2d_backward_input<float>(dy, w, xs, opt),
                        tg::conv2d_backward_input<float>(dy, w, xs, with(opt, winograd_4x4))));
        CHECK(same_bits(tg::conv2d_backward_weight<float>(dy, x, ws, opt),
                        tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, gemm))));
    }
    SECTION("where its tiling needs fewer products: F(5x5, 3x3)")
    {
        // 10x10: 4 tiles of F(5x5, 3x3) (196 products) against 9 of F(4x4, 3x3) (324)
        const auto x = tg::randn<float>({2, 16, 10, 10}, gen).value();
        const auto w = tg::randn<float>({16, 16, 3, 3}, gen).value();
        const auto dy = tg::randn<float>({2, 16, 10, 10}, gen).value();
        const tg::Shape xs{2, 16, 10, 10};
        const auto y = tg::conv2d_forward<float>(x, w, nullptr, opt);
        CHECK(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd_5x5))));
        CHECK_FALSE(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd_4x4))));
        CHECK(same_bits(tg::conv2d_backward_input<float>(dy, w, xs, opt),
                        tg::conv2d_backward_input<float>(dy, w, xs, with(opt, winograd_5x5))));
    }
    SECTION("an output smaller than 4x4: F(2x2, 3x3)")
    {
        const auto x = tg::randn<float>({2, 16, 3, 5}, gen).value();
        const auto w = tg::randn<float>({16, 16, 3, 3}, gen).value();
        const auto y = tg::conv2d_forward<float>(x, w, nullptr, opt);
        CHECK(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd))));
        CHECK_FALSE(same_bits(y, tg::conv2d_forward<float>(x, w, nullptr, with(opt, winograd_4x4))));
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
        const tg::Conv2dOptions strided{.stride = 3, .padding = 1};
        CHECK(same_bits(tg::conv2d_forward<float>(x2, w2, nullptr, strided),
                        tg::conv2d_forward<float>(x2, w2, nullptr, with(strided, gemm))));
        const tg::Conv2dOptions mixed{.stride = {1, 2}, .padding = 1};
        CHECK(same_bits(tg::conv2d_forward<float>(x2, w2, nullptr, mixed),
                        tg::conv2d_forward<float>(x2, w2, nullptr, with(mixed, gemm))));
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
    const auto stride = message({3, 2, 3, 3}, {.stride = 3});
    CHECK_THAT(stride, Catch::Contains("tg::conv2d") && Catch::Contains("winograd") &&
                         Catch::Contains("stride (3, 3)") && Catch::Contains("[1, 2, 8, 8]"));
    CHECK_THAT(message({3, 2, 3, 3}, {.stride = {2, 1}}), Catch::Contains("stride (2, 1)"));
    CHECK_THAT(message({3, 2, 5, 5}, {}), Catch::Contains("kernel 5x5") && Catch::Contains("3x3 kernel"));
    CHECK_THAT(message({3, 2, 3, 3}, {.dilation = 2}), Catch::Contains("dilation (2, 2)"));
    // automatic never throws for these: it falls back to GEMM
    CHECK_NOTHROW(tg::conv2d(x, tg::zeros<float>({3, 2, 3, 3}), {}, {.stride = 3}));
}

TEST_CASE("gemm_nt: D += A B^T, kernel and BLAS, equal the plain sum on integers", "[conv2d][winograd]")
{
    tg::Generator gen(35);
    // rows past a multiple of 8, columns past a multiple of 16 and 32, lengths past a multiple of 16
    for (std::size_t m : {1, 7, 8, 20})
        for (std::size_t n : {1, 3, 16, 35})
            for (std::size_t len : {1, 15, 16, 57})
                for (bool kernel : {true, false})
                {
                    INFO("m " << m << " n " << n << " len " << len << " avx512 kernel " << kernel);
                    GemmNtKernel use(kernel);
                    // rows further apart than they are long, as in the Winograd buffers
                    const std::size_t lda = len + 3, ldb = len + 5, ldd = n + 2;
                    const auto a = small_ints<float>({m * lda}, gen);
                    const auto b = small_ints<float>({n * ldb}, gen);
                    auto d = small_ints<float>({m * ldd}, gen);
                    auto want = d;
                    for (std::size_t i = 0; i < m; ++i)
                        for (std::size_t j = 0; j < n; ++j)
                            for (std::size_t l = 0; l < len; ++l)
                            {
                                want(i * ldd + j) += a(i * lda + l) * b(j * ldb + l);
                            }
                    std::vector<float> work(len * n);
                    tg::detail::gemm_nt(m, n, len, a.data(), lda, b.data(), ldb, d.data(), ldd, work.data());
                    CHECK(same_bits(d, want)); // the padding between rows of D is untouched too
                }
}

TEST_CASE("conv2d winograd: dX and dW from one pass through the tape equal the GEMM route on integers",
          "[conv2d][winograd]")
{
    tg::Generator gen(36);
    // 20 filters and 35 channels: full and partial blocks of the AVX-512 dW kernel; 12 images of
    // 9x8: three blocks of images (5, 5, 2), so three dW chunks and a short last block, with the
    // forward's V reused block by block
    for (const auto& [n, c, k, h, w] :
         std::vector<std::array<std::size_t, 5>>{{3, 35, 20, 6, 7}, {12, 16, 16, 9, 8}})
        for (bool kernel : {true, false})
        {
            INFO("n " << n << " c " << c << " k " << k << " " << h << "x" << w << " avx512 kernel "
                      << kernel);
            GemmNtKernel use(kernel);
            const tg::Conv2dOptions opt{.padding = 1};
            const auto x = small_ints<float>({n, c, h, w}, gen);
            const auto wt = small_ints<float>({k, c, 3, 3}, gen);
            const auto b = small_ints<float>({k}, gen);
            const auto dy = small_ints<float>({n, k, h, w}, gen);
            const auto want = tg::test::conv2d_through_tape<float>(x, wt, b, dy, with(opt, gemm));
            const auto got = tg::test::conv2d_through_tape<float>(x, wt, b, dy, with(opt, winograd));
            // automatic runs F(4x4, 3x3) here, whose transforms round (1/6, 1/24)
            const auto got_automatic =
              tg::test::conv2d_through_tape<float>(x, wt, b, dy, with(opt, automatic));
            for (std::size_t i = 0; i < want.size(); ++i)
            {
                CHECK(same_bits(got[i], want[i]));
                CHECK(relative_gap(got_automatic[i], want[i]) < 1e-5);
            }
        }
}

TEST_CASE("conv2d winograd: automatic takes dW from the Winograd pass when dX is needed too",
          "[conv2d][winograd]")
{
    // Real-valued data: the bits show which route ran.
    tg::Generator gen(37);
    const auto x = tg::randn<float>({2, 16, 8, 8}, gen).value();
    const auto w = tg::randn<float>({16, 16, 3, 3}, gen).value();
    const auto b = tg::randn<float>({16}, gen).value();
    const auto dy = tg::randn<float>({2, 16, 8, 8}, gen).value();
    const tg::Conv2dOptions opt{.padding = 1};
    const tg::Shape ws{16, 16, 3, 3};
    for (bool kernel : {true, false})
    {
        INFO("avx512 kernel " << kernel);
        GemmNtKernel use(kernel);
        const auto got = tg::test::conv2d_through_tape<float>(x, w, b, dy, opt);
        CHECK(same_bits(got[2], tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, winograd_4x4))));
        CHECK_FALSE(same_bits(got[2], tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, gemm))));
        CHECK(relative_gap(got[2], tg::conv2d_backward_weight<float>(dy, x, ws, with(opt, gemm))) < 2e-5);
    }
}
