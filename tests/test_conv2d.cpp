#include "support/support.hpp"

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include <omp.h>

#include <string>
#include <vector>

namespace tg = tapegrad;
using tg::test::distinct;
using tg::test::small_ints;

namespace
{

/// One convolution configuration for the randomised comparisons.
struct Case
{
    std::size_t n, c, k, h, w, kh, kw;
    tg::Conv2dOptions opt;
};

std::string describe(const Case& cs)
{
    return tg::detail::cat("x [", cs.n, ", ", cs.c, ", ", cs.h, ", ", cs.w, "], w [", cs.k, ", ",
                           cs.c / cs.opt.groups, ", ", cs.kh, ", ", cs.kw, "], stride {", cs.opt.stride.h,
                           ", ", cs.opt.stride.w, "}, padding {", cs.opt.padding.h, ", ", cs.opt.padding.w,
                           "}, dilation {", cs.opt.dilation.h, ", ", cs.opt.dilation.w, "}, groups ",
                           cs.opt.groups);
}

/// Shapes covering the paths of the fast kernels: 1x1 (col = x), stride and padding per axis,
/// dilation, groups, padding wider than the kernel, serial and threaded batches.
const std::vector<Case>& cases()
{
    static const std::vector<Case> all = {
      {2, 3, 4, 7, 6, 3, 3, {}},
      {1, 2, 3, 5, 5, 1, 1, {}},
      {3, 4, 6, 6, 5, 1, 1, {.groups = 2}},
      {2, 3, 2, 8, 7, 3, 2, {.stride = 2, .padding = 1}},
      {5, 2, 3, 9, 8, 3, 3, {.stride = {2, 1}, .padding = {1, 0}, .dilation = 2}},
      {2, 4, 6, 7, 9, 2, 3, {.stride = {1, 3}, .padding = {0, 2}, .dilation = {2, 1}, .groups = 2}},
      {3, 6, 3, 6, 6, 3, 3, {.stride = 2, .padding = 1, .groups = 3}},
      {1, 1, 5, 4, 4, 2, 2, {.padding = 2}},
      {2, 2, 2, 5, 5, 1, 1, {.stride = 2, .padding = 1}},
      {4, 3, 8, 10, 10, 5, 5, {.padding = 2}},
      // Large enough to run threaded (per-thread dW partials, odd batch split).
      {5, 8, 16, 12, 12, 3, 3, {.padding = 1}},
      {3, 6, 12, 11, 13, 3, 3, {.stride = 2, .padding = 1, .groups = 2}},
    };
    return all;
}

/// x index of tap (a) for output position i, or -1 in the padding.
std::ptrdiff_t tap(std::size_t i, std::size_t a, std::int64_t s, std::int64_t p, std::int64_t d,
                   std::size_t len)
{
    const std::int64_t v = static_cast<std::int64_t>(i) * s - p + static_cast<std::int64_t>(a) * d;
    return v >= 0 && v < static_cast<std::int64_t>(len) ? v : -1;
}

/// The definition, written as seven loops: y[n,k,i,j] = b[k] + sum_{c,a,e} x[n, g*C/G + c, ...] w[k,c,a,e].
template <class T>
xt::xarray<T> naive_forward(const xt::xarray<T>& x, const xt::xarray<T>& w, const xt::xarray<T>* b,
                            const tg::Conv2dOptions& o)
{
    const std::size_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const std::size_t K = w.shape()[0], Cg = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
    const auto G = static_cast<std::size_t>(o.groups);
    const auto Ho =
      static_cast<std::size_t>(tg::conv2d_output_size(H, KH, o.stride.h, o.padding.h, o.dilation.h));
    const auto Wo =
      static_cast<std::size_t>(tg::conv2d_output_size(W, KW, o.stride.w, o.padding.w, o.dilation.w));
    REQUIRE(C == Cg * G);
    xt::xarray<T> y = xt::zeros<T>({N, K, Ho, Wo});
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t k = 0; k < K; ++k)
            for (std::size_t i = 0; i < Ho; ++i)
                for (std::size_t j = 0; j < Wo; ++j)
                {
                    T acc = b != nullptr ? (*b)(k) : T(0);
                    const std::size_t g = k / (K / G);
                    for (std::size_t c = 0; c < Cg; ++c)
                        for (std::size_t a = 0; a < KH; ++a)
                            for (std::size_t e = 0; e < KW; ++e)
                            {
                                const auto ih = tap(i, a, o.stride.h, o.padding.h, o.dilation.h, H);
                                const auto iw = tap(j, e, o.stride.w, o.padding.w, o.dilation.w, W);
                                if (ih >= 0 && iw >= 0)
                                {
                                    acc += x(n, g * Cg + c, ih, iw) * w(k, c, a, e);
                                }
                            }
                    y(n, k, i, j) = acc;
                }
    return y;
}

/// dW[k,c,a,e] = sum_{n,i,j} dY[n,k,i,j] x[n, g*C/G + c, i*s - p + a*d, j*s - p + e*d], as loops.
template <class T>
xt::xarray<T> naive_weight_grad(const xt::xarray<T>& dy, const xt::xarray<T>& x, const tg::Shape& ws,
                                const tg::Conv2dOptions& o)
{
    const std::size_t N = x.shape()[0], H = x.shape()[2], W = x.shape()[3];
    const std::size_t K = ws[0], Cg = ws[1], KH = ws[2], KW = ws[3];
    const std::size_t Ho = dy.shape()[2], Wo = dy.shape()[3];
    const std::size_t Kg = K / static_cast<std::size_t>(o.groups);
    xt::xarray<T> dw = xt::zeros<T>(ws);
    for (std::size_t k = 0; k < K; ++k)
        for (std::size_t c = 0; c < Cg; ++c)
            for (std::size_t a = 0; a < KH; ++a)
                for (std::size_t e = 0; e < KW; ++e)
                    for (std::size_t n = 0; n < N; ++n)
                        for (std::size_t i = 0; i < Ho; ++i)
                            for (std::size_t j = 0; j < Wo; ++j)
                            {
                                const auto ih = tap(i, a, o.stride.h, o.padding.h, o.dilation.h, H);
                                const auto iw = tap(j, e, o.stride.w, o.padding.w, o.dilation.w, W);
                                if (ih >= 0 && iw >= 0)
                                {
                                    dw(k, c, a, e) += dy(n, k, i, j) * x(n, (k / Kg) * Cg + c, ih, iw);
                                }
                            }
    return dw;
}

/// "" when `got` equals `want` exactly (shape and every value), else where they first differ.
template <class T>
std::string mismatch(const xt::xarray<T>& got, const xt::xarray<T>& want)
{
    if (!std::equal(got.shape().begin(), got.shape().end(), want.shape().begin(), want.shape().end()))
    {
        return tg::detail::cat("shape ", tg::shape_str(got.shape()), " != ", tg::shape_str(want.shape()));
    }
    for (std::size_t i = 0; i < got.size(); ++i)
    {
        if (got.data()[i] != want.data()[i])
        {
            return tg::detail::cat("flat index ", i, ": got ", got.data()[i], ", want ", want.data()[i]);
        }
    }
    return "";
}

/// y, dX, dW and db of conv2d(x, w, b) seeded with dy, run with `threads` OpenMP threads (the
/// caller restores the thread count).
std::vector<xt::xarray<float>> fwd_bwd_with_threads(const tg::Tensor& x, const tg::Tensor& w,
                                                    const tg::Tensor& b, const tg::Tensor& dy,
                                                    const tg::Conv2dOptions& opt, int threads)
{
    omp_set_num_threads(threads);
    auto xx = x.detach().set_requires_grad(true);
    auto ww = w.detach().set_requires_grad(true);
    auto bb = b.detach().set_requires_grad(true);
    auto y = tg::conv2d(xx, ww, bb, opt);
    y.backward(dy);
    return {y.value(), xx.grad().value(), ww.grad().value(), bb.grad().value()};
}

template <class E, class F>
std::string message_of(F&& f)
{
    try
    {
        f();
    }
    catch (const E& e)
    {
        return e.what();
    }
    FAIL("expected an exception of the requested type");
    return {};
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Output sizes

TEST_CASE("conv2d_output_size: the lecture formulas and PyTorch's", "[conv2d]")
{
    // Seed 001: a 32x32 image and 5x5 filters, stride 1, padding 0: (32 - 5 + 0)/1 + 1 = 28.
    CHECK(tg::conv2d_output_size(32, 5) == 28);
    // Seed 003: 5x5 input, 3x3 kernel: 3 at stride 1, 2 at stride 2 ("drop intermediates").
    CHECK(tg::conv2d_output_size(5, 3, 1) == 3);
    CHECK(tg::conv2d_output_size(5, 3, 2) == 2);
    // Seed 003's 4x4 input with a 2x2 kernel and no padding gives 3x3.
    CHECK(tg::conv2d_output_size(4, 2) == 3);
    // Seed 003's padding slide pads a 4x4 input to 6x6 and applies a 2x2 kernel; the formula
    // (and PyTorch) give floor((4 + 2 - 2)/1) + 1 = 5, not the 4x4 Z the slide draws. The slide's
    // own claim "preserve input size" holds for a 3x3 kernel (P = (K-1)/2, seed 004): 4x4 -> 4x4.
    CHECK(tg::conv2d_output_size(4, 2, 1, 1) == 5);
    CHECK(tg::conv2d_output_size(4, 3, 1, 1) == 4);
    // Dilation: a 3-tap kernel with dilation 2 spans 5.
    CHECK(tg::conv2d_output_size(7, 3, 1, 0, 2) == 3);
    CHECK(tg::conv2d_output_size(8, 3, 2, 1, 2) == 3);
    CHECK_THROWS_AS(tg::conv2d_output_size(2, 3), tg::ShapeError);
    CHECK_THROWS_AS(tg::conv2d_output_size(5, 3, 0), tg::ValueError);
}

// ---------------------------------------------------------------------------------------------
// Worked examples from the seeds

TEMPLATE_TEST_CASE("conv2d: seed 003 worked example, stride 1 and stride 2", "[conv2d]", float, double)
{
    using T = TestType;
    const auto x = tg::from_vector<T>(
      {0, 2, -3, 2, -3, -2, -2, -2, -1, -2, -3, -3, 2, -2, 1, -3, -2, 1, -3, 1, 0, -1, 0, 2, -3},
      {1, 1, 5, 5});
    const auto w = tg::from_vector<T>({-1, 0, -2, 1, 1, -1, -1, -1, 0}, {1, 1, 3, 3});
    const auto b = tg::from_vector<T>({-1}, {1});

    const auto y1 = tg::conv2d(x, w, b);
    REQUIRE(y1.shape() == tg::Shape{1, 1, 3, 3});
    const xt::xarray<T> want1 = {{{{9, -9, 7}, {2, 5, 6}, {-7, 9, -10}}}};
    CHECK(mismatch(y1.value(), want1) == "");

    // Stride 2 keeps every other output of stride 1 ("drop intermediates").
    const auto y2 = tg::conv2d(x, w, b, {.stride = 2});
    const xt::xarray<T> want2 = {{{{9, 7}, {-7, -10}}}};
    CHECK(mismatch(y2.value(), want2) == "");
}

TEST_CASE("conv2d: seed 001, a 32x32x3 image with 6 filters of 5x5x3 gives 28x28x6", "[conv2d]")
{
    tg::Generator gen(1);
    const auto x = tg::randn<float>({1, 3, 32, 32}, gen);
    const auto w = tg::randn<float>({6, 3, 5, 5}, gen);
    CHECK(tg::conv2d(x, w).shape() == tg::Shape{1, 6, 28, 28});
}

TEST_CASE("conv2d: seed 003 padding slide, a 4x4 input padded by 1", "[conv2d]")
{
    // A = 1..16 row-major. With the 2x2 kernel [[1,2],[3,4]] the output is 5x5 (see the
    // conv2d_output_size test for why the slide's 4x4 is not what the formula gives). The corners
    // each see one input pixel under the opposite kernel tap.
    std::vector<double> a(16);
    for (int i = 0; i < 16; ++i)
    {
        a[i] = i + 1;
    }
    const auto x = tg::from_vector<double>(a, {1, 1, 4, 4});
    const auto w2 = tg::from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
    const auto y = tg::conv2d(x, w2, {}, {.padding = 1});
    REQUIRE(y.shape() == tg::Shape{1, 1, 5, 5});
    const auto& v = y.value();
    CHECK(v(0, 0, 0, 0) == 1 * 4);                         // A11 * W22
    CHECK(v(0, 0, 0, 4) == 4 * 3);                         // A14 * W21
    CHECK(v(0, 0, 4, 0) == 13 * 2);                        // A41 * W12
    CHECK(v(0, 0, 4, 4) == 16 * 1);                        // A44 * W11
    CHECK(v(0, 0, 1, 1) == 1 * 1 + 2 * 2 + 5 * 3 + 6 * 4); // fully inside
    CHECK(v(0, 0, 0, 2) == 2 * 3 + 3 * 4);                 // top row: only the lower taps
    // With a 3x3 kernel, padding 1 preserves the 4x4 size, as the slide intends.
    const auto w3 = tg::ones<double>({1, 1, 3, 3});
    const auto y3 = tg::conv2d(x, w3, {}, {.padding = 1});
    REQUIRE(y3.shape() == tg::Shape{1, 1, 4, 4});
    CHECK(y3.value()(0, 0, 0, 0) == 1 + 2 + 5 + 6);
    CHECK(y3.value()(0, 0, 3, 3) == 11 + 12 + 15 + 16);
}

TEMPLATE_TEST_CASE("conv2d: seed 003 dL/dX and dL/dF element by element, and the rot180 full convolution",
                   "[conv2d]", float, double)
{
    using T = TestType;
    // X 3x3, F 2x2, O = X * F is 2x2; dO is the loss gradient arriving from the next layer.
    const T X11 = 2, X12 = -1, X13 = 3, X21 = 0, X22 = 4, X23 = -2, X31 = 1, X32 = 5, X33 = -3;
    const T F11 = 1, F12 = -2, F21 = 3, F22 = 4;
    const T O11 = -1, O12 = 2, O21 = 3, O22 = -4; // dL/dO
    auto x = tg::from_vector<T>({X11, X12, X13, X21, X22, X23, X31, X32, X33}, {1, 1, 3, 3}, true);
    auto f = tg::from_vector<T>({F11, F12, F21, F22}, {1, 1, 2, 2}, true);
    const auto d_o = tg::from_vector<T>({O11, O12, O21, O22}, {1, 1, 2, 2});

    const auto o = tg::conv2d(x, f);
    REQUIRE(o.value()(0, 0, 0, 0) == X11 * F11 + X12 * F12 + X21 * F21 + X22 * F22);
    o.backward(d_o);

    const xt::xarray<T> dx_seed = {
      {{{O11 * F11, O11 * F12 + O12 * F11, O12 * F12},
        {O11 * F21 + O21 * F11, O11 * F22 + O12 * F21 + O21 * F12 + O22 * F11, O12 * F22 + O22 * F12},
        {O21 * F21, O21 * F22 + O22 * F21, O22 * F22}}}};
    const xt::xarray<T> df_seed = {
      {{{O11 * X11 + O12 * X12 + O21 * X21 + O22 * X22, O11 * X12 + O12 * X13 + O21 * X22 + O22 * X23},
        {O11 * X21 + O12 * X22 + O21 * X31 + O22 * X32, O11 * X22 + O12 * X23 + O21 * X32 + O22 * X33}}}};
    CHECK(mismatch(x.grad().value(), dx_seed) == "");
    CHECK(mismatch(f.grad().value(), df_seed) == "");
    // dL/dX = full convolution of dL/dO with the 180-degree rotated filter.
    CHECK(mismatch(tg::conv2d_backward_input_full_conv(d_o.value(), f.value(), x.shape()), dx_seed) == "");
    // dL/dF = Convolution(X, dL/dO): X correlated with dL/dO taken as the kernel.
    CHECK(mismatch(tg::conv2d(x.detach(), d_o).value(), df_seed) == "");
}

// ---------------------------------------------------------------------------------------------
// Fast kernels against independent references

TEMPLATE_TEST_CASE("conv2d: fast forward and dW/db kernels agree with naive loops", "[conv2d]", float, double)
{
    using T = TestType;
    tg::Generator gen(7);
    for (const Case& cs : cases())
    {
        INFO(describe(cs));
        const auto G = static_cast<std::size_t>(cs.opt.groups);
        const auto x = small_ints<T>({cs.n, cs.c, cs.h, cs.w}, gen);
        const auto w = small_ints<T>({cs.k, cs.c / G, cs.kh, cs.kw}, gen);
        const auto b = small_ints<T>({cs.k}, gen);
        const auto y = tg::conv2d_forward(x, w, &b, cs.opt);
        CHECK(mismatch(y, naive_forward(x, w, &b, cs.opt)) == "");
        CHECK(mismatch(tg::conv2d_forward<T>(x, w, nullptr, cs.opt),
                       naive_forward<T>(x, w, nullptr, cs.opt)) == "");

        const auto dy = small_ints<T>(tg::Shape(y.shape().begin(), y.shape().end()), gen);
        const tg::Shape ws(w.shape().begin(), w.shape().end());
        CHECK(mismatch(tg::conv2d_backward_weight(dy, x, ws, cs.opt), naive_weight_grad(dy, x, ws, cs.opt)) ==
              "");
        xt::xarray<T> db = xt::zeros<T>({cs.k});
        for (std::size_t n = 0; n < dy.shape()[0]; ++n)
            for (std::size_t k = 0; k < cs.k; ++k)
                for (std::size_t i = 0; i < dy.shape()[2]; ++i)
                    for (std::size_t j = 0; j < dy.shape()[3]; ++j)
                        db(k) += dy(n, k, i, j);
        CHECK(mismatch(tg::conv2d_backward_bias(dy), db) == "");
    }
}

TEMPLATE_TEST_CASE("conv2d: fast dX (W^T dY + col2im) equals the rot180 full-convolution oracle", "[conv2d]",
                   float, double)
{
    using T = TestType;
    tg::Generator gen(11);
    for (const Case& cs : cases())
    {
        INFO(describe(cs));
        const auto G = static_cast<std::size_t>(cs.opt.groups);
        const tg::Shape xs{cs.n, cs.c, cs.h, cs.w};
        const auto w = small_ints<T>({cs.k, cs.c / G, cs.kh, cs.kw}, gen);
        const auto Ho = static_cast<std::size_t>(
          tg::conv2d_output_size(cs.h, cs.kh, cs.opt.stride.h, cs.opt.padding.h, cs.opt.dilation.h));
        const auto Wo = static_cast<std::size_t>(
          tg::conv2d_output_size(cs.w, cs.kw, cs.opt.stride.w, cs.opt.padding.w, cs.opt.dilation.w));
        const auto dy = small_ints<T>({cs.n, cs.k, Ho, Wo}, gen);
        const auto fast = tg::conv2d_backward_input(dy, w, xs, cs.opt);
        CHECK(mismatch(fast, tg::conv2d_backward_input_full_conv(dy, w, xs, cs.opt)) == "");
    }
}

TEMPLATE_TEST_CASE("conv2d: stride-1 kernels (wide-row dX) on uneven paddings, dilations and kernels",
                   "[conv2d]", float, double)
{
    // Stride 1 runs dX on rows as wide as the padded input; these shapes make the unused columns
    // and the run past the last padded row as large as they get: padding differing per axis or
    // wider than the kernel, dilation per axis, 1-wide and tall kernels, no padding, groups, and
    // batches large enough to run threaded.
    using T = TestType;
    const std::vector<Case> stride1 = {
      {2, 2, 3, 6, 7, 3, 2, {.padding = {3, 1}, .dilation = {2, 3}}},
      {3, 4, 4, 5, 9, 2, 3, {.padding = {0, 4}, .dilation = {1, 2}, .groups = 2}},
      {2, 3, 2, 7, 5, 1, 4, {.padding = {2, 0}}},
      {2, 1, 3, 8, 4, 4, 1, {.padding = {1, 3}, .dilation = {2, 1}}},
      {4, 3, 5, 9, 9, 3, 3, {.dilation = 3}},
      {6, 8, 16, 10, 11, 3, 5, {.padding = {1, 2}}},
      {5, 6, 12, 9, 9, 3, 3, {.padding = 2, .dilation = 2, .groups = 3}},
    };
    tg::Generator gen(21);
    for (const Case& cs : stride1)
    {
        INFO(describe(cs));
        const auto G = static_cast<std::size_t>(cs.opt.groups);
        const tg::Shape xs{cs.n, cs.c, cs.h, cs.w};
        const auto x = small_ints<T>(xs, gen);
        const auto w = small_ints<T>({cs.k, cs.c / G, cs.kh, cs.kw}, gen);
        const tg::Shape ws(w.shape().begin(), w.shape().end());
        const auto y = tg::conv2d_forward<T>(x, w, nullptr, cs.opt);
        CHECK(mismatch(y, naive_forward<T>(x, w, nullptr, cs.opt)) == "");
        const auto dy = small_ints<T>(tg::Shape(y.shape().begin(), y.shape().end()), gen);
        CHECK(mismatch(tg::conv2d_backward_input(dy, w, xs, cs.opt),
                       tg::conv2d_backward_input_full_conv(dy, w, xs, cs.opt)) == "");
        CHECK(mismatch(tg::conv2d_backward_weight(dy, x, ws, cs.opt), naive_weight_grad(dy, x, ws, cs.opt)) ==
              "");
    }
}

TEST_CASE("conv2d: the recorded op's gradients are the kernels' and only the requested ones", "[conv2d]")
{
    tg::Generator gen(5);
    const tg::Conv2dOptions opt{.stride = 2, .padding = 1};
    auto x = tg::Tensor(small_ints<float>({3, 2, 7, 6}, gen), false);
    auto w = tg::Tensor(small_ints<float>({4, 2, 3, 3}, gen), true);
    auto b = tg::Tensor(small_ints<float>({4}, gen), false);
    const auto y = tg::conv2d(x, w, b, opt);
    const auto dy = small_ints<float>(y.shape(), gen);
    y.backward(tg::Tensor(dy));
    CHECK_FALSE(x.grad().defined());
    CHECK_FALSE(b.grad().defined());
    REQUIRE(w.grad().defined());
    CHECK(mismatch(w.grad().value(), naive_weight_grad(dy, x.value(), w.shape(), opt)) == "");

    x.set_requires_grad(true);
    b.set_requires_grad(true);
    w.zero_grad();
    const auto y2 = tg::conv2d(x, w, b, opt);
    y2.backward(tg::Tensor(dy));
    CHECK(mismatch(x.grad().value(), tg::conv2d_backward_input_full_conv(dy, w.value(), x.shape(), opt)) ==
          "");
    CHECK(mismatch(w.grad().value(), naive_weight_grad(dy, x.value(), w.shape(), opt)) == "");
    CHECK(mismatch(b.grad().value(), tg::conv2d_backward_bias(dy)) == "");
}

TEST_CASE("conv2d: gradcheck over strides, paddings, dilations, groups, batch and bias", "[conv2d]")
{
    tg::Generator gen(3);
    const std::vector<tg::Size2> strides = {1, 2, {2, 1}};
    const std::vector<tg::Size2> paddings = {0, 1, {1, 0}};
    for (std::size_t batch : {1, 2})
        for (std::int64_t groups : {1, 2})
            for (const auto& stride : strides)
                for (const auto& padding : paddings)
                    for (std::int64_t dilation : {1, 2})
                        for (bool bias : {true, false})
                        {
                            const tg::Conv2dOptions opt{stride, padding, dilation, groups};
                            const std::size_t C = groups == 1 ? 3 : 4, K = groups == 1 ? 2 : 6;
                            // H != W and a 3x2 kernel; with dilation 2 it spans 5x3, which fits.
                            auto x = distinct({batch, C, 5, 4}, gen);
                            auto w = distinct({K, C / static_cast<std::size_t>(groups), 3, 2}, gen);
                            std::vector<tg::Tensor64> in{x, w};
                            if (bias)
                            {
                                in.push_back(distinct({K}, gen));
                            }
                            INFO("batch " << batch << " groups " << groups << " stride {" << stride.h << ", "
                                          << stride.w << "} padding {" << padding.h << ", " << padding.w
                                          << "} dilation " << dilation << " bias " << bias);
                            REQUIRE_GRADCHECK(
                              [opt](const std::vector<tg::Tensor64>& v)
                              { return tg::conv2d(v[0], v[1], v.size() > 2 ? v[2] : tg::Tensor64(), opt); },
                              in);
                        }
}

TEST_CASE("conv2d: translation equivariance (seed 004)", "[conv2d]")
{
    // Shifting the input by (1, 2), zero-filled, shifts the output by (1, 2) wherever the shifted
    // window still sees only shifted content (here: every output with i >= 1 and j >= 2).
    tg::Generator gen(4);
    const std::size_t H = 9, W = 11;
    const auto x = small_ints<double>({2, 3, H, W}, gen);
    const auto w = tg::Tensor64(small_ints<double>({4, 3, 3, 3}, gen));
    const auto b = tg::Tensor64(small_ints<double>({4}, gen));
    xt::xarray<double> shifted = xt::zeros<double>({std::size_t{2}, std::size_t{3}, H, W});
    for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t h = 1; h < H; ++h)
                for (std::size_t v = 2; v < W; ++v)
                    shifted(n, c, h, v) = x(n, c, h - 1, v - 2);
    const auto y = tg::conv2d(tg::Tensor64(x), w, b).value();
    const auto ys = tg::conv2d(tg::Tensor64(shifted), w, b).value();
    std::size_t compared = 0;
    for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t k = 0; k < 4; ++k)
            for (std::size_t i = 1; i < y.shape()[2]; ++i)
                for (std::size_t j = 2; j < y.shape()[3]; ++j)
                {
                    REQUIRE(ys(n, k, i, j) == y(n, k, i - 1, j - 2));
                    ++compared;
                }
    CHECK(compared == 2 * 4 * 6 * 7);
}

TEST_CASE("conv2d: float results on random real data match the naive loops closely", "[conv2d]")
{
    // Non-integer data: rounding differs between GEMM and loops, so a tolerance applies here.
    tg::Generator gen(9);
    const tg::Conv2dOptions opt{.stride = 1, .padding = 1};
    const auto x = tg::randn<float>({4, 8, 12, 12}, gen);
    const auto w = tg::randn<float>({16, 8, 3, 3}, gen);
    const auto y = tg::conv2d_forward<float>(x.value(), w.value(), nullptr, opt);
    const auto ref = naive_forward<float>(x.value(), w.value(), nullptr, opt);
    for (std::size_t i = 0; i < y.size(); ++i)
    {
        REQUIRE(y.data()[i] == Approx(ref.data()[i]).margin(1e-4));
    }
}

TEST_CASE("conv2d: results are bit for bit the same with 1 and 2 threads", "[conv2d]")
{
    // dW is summed over the batch in fixed chunks added in a fixed order, and the forward and dX
    // work on fixed blocks of images, so real-valued data (where the summation order matters)
    // gives identical results whatever the thread count, on both routes.
    tg::Generator gen(12);
    const auto x = tg::randn<float>({7, 16, 12, 11}, gen);
    const auto w = tg::randn<float>({24, 16, 3, 3}, gen);
    const auto b = tg::randn<float>({24}, gen);
    const auto dy = tg::randn<float>({7, 24, 12, 11}, gen);
    const int before = omp_get_max_threads();
    for (auto algorithm : {tg::Conv2dAlgorithm::gemm, tg::Conv2dAlgorithm::winograd})
    {
        const tg::Conv2dOptions opt{.padding = 1, .algorithm = algorithm};
        const auto one = fwd_bwd_with_threads(x, w, b, dy, opt, 1);
        const auto two = fwd_bwd_with_threads(x, w, b, dy, opt, 2);
        for (std::size_t i = 0; i < one.size(); ++i)
        {
            INFO("algorithm " << (algorithm == tg::Conv2dAlgorithm::gemm ? "gemm" : "winograd") << ", output "
                              << i << " (y, dx, dw, db)");
            CHECK(mismatch(two[i], one[i]) == "");
        }
    }
    omp_set_num_threads(before);
}

TEST_CASE("conv2d: several images per GEMM (small outputs) give the same bits with 1 and 2 threads",
          "[conv2d]")
{
    // An 8x8 output puts several images side by side in one GEMM; the batches and the dW chunks
    // are fixed by the shape alone, so the thread count must not change a bit. Checked against
    // the naive loops too.
    tg::Generator gen(13);
    const tg::Conv2dOptions opt{.stride = 2, .padding = 1};
    const auto x = tg::randn<float>({11, 6, 16, 16}, gen);
    const auto w = tg::randn<float>({10, 6, 3, 3}, gen);
    const auto b = tg::randn<float>({10}, gen);
    const auto dy = tg::randn<float>({11, 10, 8, 8}, gen);
    const int before = omp_get_max_threads();
    const auto one = fwd_bwd_with_threads(x, w, b, dy, opt, 1);
    const auto two = fwd_bwd_with_threads(x, w, b, dy, opt, 2);
    omp_set_num_threads(before);
    for (std::size_t i = 0; i < one.size(); ++i)
    {
        INFO("output " << i << " (y, dx, dw, db)");
        CHECK(mismatch(two[i], one[i]) == "");
    }
    const auto ref_y = naive_forward<float>(x.value(), w.value(), &b.value(), opt);
    const tg::Shape ws{10, 6, 3, 3};
    const auto ref_dw = naive_weight_grad<float>(dy.value(), x.value(), ws, opt);
    for (std::size_t i = 0; i < ref_y.size(); ++i)
    {
        REQUIRE(one[0].data()[i] == Approx(ref_y.data()[i]).margin(1e-4));
    }
    for (std::size_t i = 0; i < ref_dw.size(); ++i)
    {
        REQUIRE(one[2].data()[i] == Approx(ref_dw.data()[i]).margin(1e-3));
    }
}

TEST_CASE("conv2d: empty batch, no input channels, no output channels", "[conv2d]")
{
    for (auto algorithm : {tg::Conv2dAlgorithm::gemm, tg::Conv2dAlgorithm::winograd})
    {
        INFO("algorithm " << (algorithm == tg::Conv2dAlgorithm::gemm ? "gemm" : "winograd"));
        const tg::Conv2dOptions opt{.algorithm = algorithm};
        // An empty batch gives an empty output (and empty gradients).
        auto x0 = tg::Tensor(xt::xarray<float>::from_shape({0, 2, 5, 5}), true);
        auto w = tg::ones<float>({3, 2, 3, 3}, true);
        auto y0 = tg::conv2d(x0, w, {}, opt);
        CHECK(y0.shape() == tg::Shape{0, 3, 3, 3});
        y0.backward(tg::Tensor(xt::xarray<float>::from_shape({0, 3, 3, 3})));
        CHECK(x0.grad().shape() == x0.shape());
        CHECK(w.grad().value() == xt::xarray<float>(xt::zeros<float>({3, 2, 3, 3})));

        // With no input channels the output is the bias.
        auto x = tg::ones<float>({2, 0, 5, 5}, true);
        auto w0 = tg::ones<float>({3, 0, 3, 3}, true);
        auto b = tg::from_vector<float>({1, 2, 3}, {3}, true);
        auto y = tg::conv2d(x, w0, b, opt);
        REQUIRE(y.shape() == tg::Shape{2, 3, 3, 3});
        CHECK(y.value()(1, 2, 2, 2) == 3.0f);
        y.backward(tg::ones<float>(y.shape()));
        CHECK(b.grad().value()(0) == 2 * 9);
        CHECK(x.grad().shape() == x.shape());
        CHECK(w0.grad().shape() == w0.shape());

        auto wk = tg::ones<float>({0, 2, 3, 3});
        CHECK(tg::conv2d(tg::ones<float>({2, 2, 5, 5}), wk, {}, opt).shape() == tg::Shape{2, 0, 3, 3});
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST_CASE("conv2d: errors name the op, the shapes and the rule", "[conv2d]")
{
    const auto x = tg::zeros<float>({1, 3, 5, 5});
    const auto w = tg::zeros<float>({2, 3, 3, 3});

    SECTION("x of rank 3")
    {
        const auto m = message_of<tg::ShapeError>([&] { tg::conv2d(tg::zeros<float>({3, 5, 5}), w); });
        CHECK_THAT(m,
                   Catch::Contains("tg::conv2d") && Catch::Contains("[3, 5, 5]") && Catch::Contains("4-D"));
    }
    SECTION("w of rank 5")
    {
        const auto m = message_of<tg::ShapeError>([&] { tg::conv2d(x, tg::zeros<float>({2, 3, 3, 3, 1})); });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") && Catch::Contains("[2, 3, 3, 3, 1]") &&
                        Catch::Contains("[1, 3, 5, 5]"));
    }
    SECTION("channel mismatch")
    {
        const auto m = message_of<tg::ShapeError>([&] { tg::conv2d(x, tg::zeros<float>({2, 2, 3, 3})); });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") && Catch::Contains("[1, 3, 5, 5]") &&
                        Catch::Contains("[2, 2, 3, 3]") && Catch::Contains("3 channels") &&
                        Catch::Contains("2 * 1 = 2"));
    }
    SECTION("groups not dividing the input channels")
    {
        const auto m = message_of<tg::ShapeError>(
          [&] {
              tg::conv2d(x, tg::zeros<float>({2, 1, 3, 3}), {}, {.groups = 2});
          });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") && Catch::Contains("groups 2 must divide") &&
                        Catch::Contains("[1, 3, 5, 5]") && Catch::Contains("[2, 1, 3, 3]"));
    }
    SECTION("groups not dividing the output channels")
    {
        const auto m = message_of<tg::ShapeError>(
          [&] {
              tg::conv2d(tg::zeros<float>({1, 4, 5, 5}), tg::zeros<float>({3, 2, 3, 3}), {}, {.groups = 2});
          });
        CHECK_THAT(m, Catch::Contains("groups 2 must divide") && Catch::Contains("[3, 2, 3, 3]"));
    }
    SECTION("groups 0")
    {
        const auto m = message_of<tg::ValueError>([&] { tg::conv2d(x, w, {}, {.groups = 0}); });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") && Catch::Contains("groups 0"));
    }
    SECTION("bias of the wrong length or rank")
    {
        const auto m = message_of<tg::ShapeError>([&] { tg::conv2d(x, w, tg::zeros<float>({3})); });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") && Catch::Contains("[3]") &&
                        Catch::Contains("[2, 3, 3, 3]") && Catch::Contains("[K] = [2]"));
        CHECK_THROWS_AS(tg::conv2d(x, w, tg::zeros<float>({2, 1})), tg::ShapeError);
    }
    SECTION("kernel larger than the padded input")
    {
        const auto m = message_of<tg::ShapeError>([&] { tg::conv2d(tg::zeros<float>({1, 3, 2, 5}), w); });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") &&
                        Catch::Contains("floor((H + 2p - d(k-1) - 1)/s) + 1") &&
                        Catch::Contains("[1, 3, 2, 5]") && Catch::Contains("[2, 3, 3, 3]") &&
                        Catch::Contains("height"));
        // Padding can make it fit.
        CHECK(tg::conv2d(tg::zeros<float>({1, 3, 2, 5}), w, {}, {.padding = 1}).shape() ==
              tg::Shape{1, 2, 2, 5});
    }
    SECTION("stride or dilation 0, negative padding")
    {
        auto m = message_of<tg::ValueError>([&] { tg::conv2d(x, w, {}, {.stride = {1, 0}}); });
        CHECK_THAT(m, Catch::Contains("tg::conv2d") && Catch::Contains("stride 0") &&
                        Catch::Contains("width") && Catch::Contains("[1, 3, 5, 5]"));
        m = message_of<tg::ValueError>([&] { tg::conv2d(x, w, {}, {.dilation = 0}); });
        CHECK_THAT(m, Catch::Contains("dilation 0") && Catch::Contains("[2, 3, 3, 3]"));
        m = message_of<tg::ValueError>([&] { tg::conv2d(x, w, {}, {.padding = -1}); });
        CHECK_THAT(m, Catch::Contains("padding -1") && Catch::Contains("[1, 3, 5, 5]"));
    }
    SECTION("the kernels check dy's shape")
    {
        const auto dy = xt::xarray<float>::from_shape({1, 2, 4, 4});
        CHECK_THROWS_AS(tg::conv2d_backward_input(dy, w.value(), x.shape()), tg::ShapeError);
        CHECK_THROWS_AS(tg::conv2d_backward_weight(dy, x.value(), w.shape()), tg::ShapeError);
    }
}
