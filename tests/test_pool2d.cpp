#include "support/support.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace tg = tapegrad;
using Catch::Matchers::Contains;

namespace
{
enum class Kind
{
    max,
    min,
    avg
};

const char* kind_name(Kind k)
{
    return k == Kind::max ? "max" : k == Kind::min ? "min" : "avg";
}

template <class T>
tg::BasicTensor<T> pool(Kind k, const tg::BasicTensor<T>& x, const tg::Pool2dOptions& o)
{
    switch (k)
    {
        case Kind::max:
            return tg::max_pool2d(x, o);
        case Kind::min:
            return tg::min_pool2d(x, o);
        default:
            return tg::avg_pool2d(x, o);
    }
}

/// The seed-001 example: 2x2 windows (1,1,5,6), (2,4,7,8), (3,2,1,2), (1,0,3,4) in reading order.
const std::vector<double> lecture_input = {1, 1, 2, 4, //
                                           5, 6, 7, 8, //
                                           3, 2, 1, 0, //
                                           1, 2, 3, 4};

/// y = pool(x), then y.backward(seed); returns dX.
template <class T>
xt::xarray<T> input_grad(Kind k, const std::vector<T>& x, const tg::Shape& shape, const tg::Pool2dOptions& o,
                         const std::vector<T>& seed)
{
    auto xt_ = tg::from_vector<T>(x, shape, true);
    auto y = pool(k, xt_, o);
    y.backward(tg::from_vector<T>(seed, y.shape()));
    return xt_.grad().value();
}

template <class T>
void require_values(const xt::xarray<T>& got, const std::vector<double>& want)
{
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i)
    {
        INFO("element " << i);
        CHECK(static_cast<double>(got.data()[i]) == Approx(want[i]).margin(1e-12));
    }
}

/// Independent reference: visits every window position (padding included) of a padded input.
/// Max/min skip padded positions (they hold -inf/+inf and never win); ties go to the first in
/// row-major order. Average: count_include_pad counts the window positions inside the padded
/// input, otherwise those inside the input.
struct Reference
{
    xt::xarray<double> y;
    xt::xarray<double> dx;
};

Reference reference_pool(Kind kind, const xt::xarray<double>& x, const tg::Pool2dOptions& o,
                         const xt::xarray<double>& gy)
{
    const auto N = static_cast<std::int64_t>(x.shape()[0]), C = static_cast<std::int64_t>(x.shape()[1]);
    const auto H = static_cast<std::int64_t>(x.shape()[2]), W = static_cast<std::int64_t>(x.shape()[3]);
    const tg::Size2 s = o.stride.given ? o.stride : o.kernel;
    const auto Ho = tg::pool2d_output_size(H, o.kernel.h, s.h, o.padding.h, o.dilation.h, o.ceil_mode);
    const auto Wo = tg::pool2d_output_size(W, o.kernel.w, s.w, o.padding.w, o.dilation.w, o.ceil_mode);
    Reference r;
    r.y = xt::zeros<double>(std::vector<std::size_t>{x.shape()[0], x.shape()[1], static_cast<std::size_t>(Ho),
                                                     static_cast<std::size_t>(Wo)});
    r.dx = xt::zeros<double>(x.shape());
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t i = 0; i < Ho; ++i)
                for (std::int64_t j = 0; j < Wo; ++j)
                {
                    const double g = gy.data()[((n * C + c) * Ho + i) * Wo + j];
                    double best = kind == Kind::max ? -INFINITY : INFINITY;
                    std::int64_t bh = -1, bw = -1;
                    double sum = 0, inside = 0, padded = 0;
                    for (std::int64_t a = 0; a < o.kernel.h; ++a)
                        for (std::int64_t b = 0; b < o.kernel.w; ++b)
                        {
                            const std::int64_t ih = i * s.h - o.padding.h + a * o.dilation.h;
                            const std::int64_t iw = j * s.w - o.padding.w + b * o.dilation.w;
                            if (ih >= -o.padding.h && ih < H + o.padding.h && iw >= -o.padding.w &&
                                iw < W + o.padding.w)
                            {
                                padded += 1;
                            }
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                            {
                                continue;
                            }
                            const double v = x(n, c, ih, iw);
                            inside += 1;
                            sum += v;
                            if (bh < 0 || (kind == Kind::max ? v > best : v < best))
                            {
                                best = v;
                                bh = ih;
                                bw = iw;
                            }
                        }
                    if (kind == Kind::avg)
                    {
                        const double divisor = o.count_include_pad ? padded : inside;
                        r.y(n, c, i, j) = sum / divisor;
                        for (std::int64_t ih = 0; ih < H; ++ih)
                            for (std::int64_t iw = 0; iw < W; ++iw)
                            {
                                const std::int64_t a = ih - (i * s.h - o.padding.h);
                                const std::int64_t b = iw - (j * s.w - o.padding.w);
                                if (a >= 0 && a < o.kernel.h && b >= 0 && b < o.kernel.w)
                                {
                                    r.dx(n, c, ih, iw) += g / divisor;
                                }
                            }
                    }
                    else
                    {
                        r.y(n, c, i, j) = best;
                        r.dx(n, c, bh, bw) += g;
                    }
                }
    return r;
}

/// Requires f() to throw exactly E and returns its message.
template <class E, class F>
std::string thrown_message(F f)
{
    try
    {
        f();
    }
    catch (const E& e)
    {
        return e.what();
    }
    catch (const std::exception& e)
    {
        FAIL("threw the wrong exception type: " << e.what());
    }
    FAIL("did not throw");
    return {};
}
} // namespace

TEST_CASE("pool2d_output_size follows PyTorch's floor and ceil_mode rules", "[pool2d]")
{
    // floor((in + 2p - d(k-1) - 1) / s) + 1
    CHECK(tg::pool2d_output_size(28, 2, 2) == 14);
    CHECK(tg::pool2d_output_size(7, 2, 2) == 3);       // floor(5/2) + 1
    CHECK(tg::pool2d_output_size(7, 3, 1, 0, 2) == 3); // span 5: floor(2/1) + 1
    CHECK(tg::pool2d_output_size(6, 3, 2, 1) == 3);    // floor(5/2) + 1
    // ceil_mode keeps a last partial window that starts inside the input ...
    CHECK(tg::pool2d_output_size(5, 2, 2, 0, 1, false) == 2); // floor(3/2) + 1
    CHECK(tg::pool2d_output_size(5, 2, 2, 0, 1, true) == 3);  // ceil(3/2) + 1; window 2 starts at 4 < 5
    CHECK(tg::pool2d_output_size(6, 3, 2, 1, 1, true) == 4);  // ceil(5/2) + 1; window 3 starts at 6-1 = 5 < 6
    // ... but drops one that would start in the right padding: in 5, k 2, s 2, p 1 gives
    // ceil((5 + 2 - 1 - 1) / 2) + 1 = 4 windows starting at -1, 1, 3, 5; 5 >= in = 5 is padding.
    CHECK(tg::pool2d_output_size(5, 2, 2, 1, 1, true) == 3);
    CHECK(tg::pool2d_output_size(5, 2, 2, 1, 1, false) == 3);

    // The op agrees with the formula, axis by axis.
    tg::Generator gen(1);
    auto x = tg::rand<float>({2, 3, 5, 6}, gen);
    auto y = tg::max_pool2d(x, {.kernel = 2, .stride = 2, .padding = 1, .ceil_mode = true});
    CHECK(y.shape() == tg::Shape{2, 3, 3, 4}); // width: ceil((6 + 2 - 2) / 2) + 1 = 4, starts -1, 1, 3, 5 < 6

    CHECK_THROWS_AS(tg::pool2d_output_size(5, 3, 1, 2), tg::ValueError); // padding 2 > 3 / 2
    CHECK_THROWS_AS(tg::pool2d_output_size(4, 5, 1), tg::ShapeError);
    CHECK_THROWS_AS(tg::pool2d_output_size(4, 2, 0), tg::ValueError);
    CHECK_THROWS_AS(tg::pool2d_output_size(4, 2, 1, 0, 0), tg::ValueError);
    CHECK_THROWS_AS(tg::pool2d_output_size(4, 2, 1, -1), tg::ValueError);
}

TEST_CASE("max_pool2d: the lecture's 2x2 stride-2 example (seed 001)", "[pool2d]")
{
    const tg::Pool2dOptions o{.kernel = 2, .stride = 2};
    auto x = tg::from_vector<double>(lecture_input, {1, 1, 4, 4}, true);
    auto y = tg::max_pool2d(x, o);
    REQUIRE(y.shape() == tg::Shape{1, 1, 2, 2});
    require_values(y.value(), {6, 8, 3, 4});

    // Each gradient goes to its window's winner: 6 at (1,1), 8 at (1,3), 3 at (2,0), 4 at (3,3).
    y.backward(tg::from_vector<double>({10, 20, 30, 40}, {1, 1, 2, 2}));
    require_values(x.grad().value(), {0, 0, 0, 0,   //
                                      0, 10, 0, 20, //
                                      30, 0, 0, 0,  //
                                      0, 0, 0, 40});

    SECTION("float32 gives the same routing")
    {
        const std::vector<float> xf(lecture_input.begin(), lecture_input.end());
        require_values(input_grad<float>(Kind::max, xf, {1, 1, 4, 4}, o, {10, 20, 30, 40}),
                       {0, 0, 0, 0, 0, 10, 0, 20, 30, 0, 0, 0, 0, 0, 0, 40});
    }
}

TEST_CASE("avg_pool2d: the lecture's example spreads g/4 over each window (seed 001)", "[pool2d]")
{
    const tg::Pool2dOptions o{.kernel = 2};
    auto x = tg::from_vector<double>(lecture_input, {1, 1, 4, 4}, true);
    auto y = tg::avg_pool2d(x, o);
    require_values(y.value(), {13.0 / 4, 21.0 / 4, 8.0 / 4, 8.0 / 4});
    y.backward(tg::from_vector<double>({10, 20, 30, 40}, {1, 1, 2, 2}));
    require_values(x.grad().value(), {2.5, 2.5, 5, 5,   //
                                      2.5, 2.5, 5, 5,   //
                                      7.5, 7.5, 10, 10, //
                                      7.5, 7.5, 10, 10});
}

TEST_CASE("min_pool2d routes to the argmin (seed 003: max, mean and min pooling)", "[pool2d]")
{
    auto x = tg::from_vector<double>(lecture_input, {1, 1, 4, 4}, true);
    auto y = tg::min_pool2d(x, {.kernel = 2});
    // Window minima: 1 (a tie at (0,0) and (0,1): the first wins), 2 at (0,2), 1 at (3,0), 0 at (2,3).
    require_values(y.value(), {1, 2, 1, 0});
    y.backward(tg::from_vector<double>({10, 20, 30, 40}, {1, 1, 2, 2}));
    require_values(x.grad().value(), {10, 0, 20, 0, //
                                      0, 0, 0, 0,   //
                                      0, 0, 0, 40,  //
                                      30, 0, 0, 0});
}

TEST_CASE("overlapping windows that share their argmax accumulate its gradient", "[pool2d]")
{
    // 2x2 windows at stride 1 over a 3x3 input whose maximum (9) sits in the centre: all four
    // windows pick it, so it receives the sum of their gradients.
    const std::vector<double> x = {1, 2, 3, //
                                   4, 9, 5, //
                                   6, 7, 8};
    const tg::Pool2dOptions o{.kernel = 2, .stride = 1};
    auto y = tg::max_pool2d(tg::from_vector<double>(x, {1, 1, 3, 3}), o);
    require_values(y.value(), {9, 9, 9, 9});
    require_values(input_grad<double>(Kind::max, x, {1, 1, 3, 3}, o, {1, 10, 100, 1000}),
                   {0, 0, 0, 0, 1111, 0, 0, 0, 0});
    // Min pooling: minima 1 (0,0), 2 (0,1), 4 (1,0), 5 (1,2).
    require_values(input_grad<double>(Kind::min, x, {1, 1, 3, 3}, o, {1, 10, 100, 1000}),
                   {1, 10, 0, 100, 0, 1000, 0, 0, 0});
}

TEST_CASE("pooling ties go to the first winner in row-major window order", "[pool2d]")
{
    SECTION("2x2 stride 2")
    {
        // max 5 at (0,1) and (1,0); min 1 at (0,0) and (1,1)
        const std::vector<double> x = {1, 5, 5, 1};
        require_values(input_grad<double>(Kind::max, x, {1, 1, 2, 2}, {.kernel = 2}, {7}), {0, 7, 0, 0});
        require_values(input_grad<double>(Kind::min, x, {1, 1, 2, 2}, {.kernel = 2}, {7}), {7, 0, 0, 0});
    }
    SECTION("3x3 windows, stride 1, padding 1")
    {
        // Every window sees only 4s (the padding is -inf/+inf and never wins): each routes to its
        // first in-bounds element, i.e. the window's top-left input corner.
        const std::vector<double> x(9, 4.0);
        const tg::Pool2dOptions o{.kernel = 3, .stride = 1, .padding = 1};
        const std::vector<double> g = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        // Output (i, j) routes to input (max(i-1, 0), max(j-1, 0)).
        const std::vector<double> want = {1 + 2 + 4 + 5, 3 + 6, 0, 7 + 8, 9, 0, 0, 0, 0};
        require_values(input_grad<double>(Kind::max, x, {1, 1, 3, 3}, o, g), want);
        require_values(input_grad<double>(Kind::min, x, {1, 1, 3, 3}, o, g), want);
    }
    SECTION("a window of -inf still routes to its first element")
    {
        const double inf = std::numeric_limits<double>::infinity();
        auto y =
          tg::max_pool2d(tg::from_vector<double>({-inf, -inf, -inf, -inf}, {1, 1, 2, 2}), {.kernel = 2});
        CHECK(y.value().data()[0] == -inf);
        require_values(
          input_grad<double>(Kind::max, {-inf, -inf, -inf, -inf}, {1, 1, 2, 2}, {.kernel = 2}, {3}),
          {3, 0, 0, 0});
    }
}

TEST_CASE("NaN wins max and min pooling, and receives the gradient", "[pool2d]")
{
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<double> x = {1,   9, 0, //
                                   nan, 2, 3};
    for (Kind k : {Kind::max, Kind::min})
    {
        INFO(kind_name(k));
        for (const tg::Pool2dOptions& o : {tg::Pool2dOptions{.kernel = 2},               // fast path
                                           tg::Pool2dOptions{.kernel = 2, .stride = 1}}) // general
        {
            auto xt_ = tg::from_vector<double>(x, {1, 1, 2, 3}, true);
            auto y = pool(k, xt_, o);
            CHECK(std::isnan(y.value().data()[0]));
            y.backward(tg::ones64(y.shape()));
            CHECK(xt_.grad().value().data()[3] == 1.0);
        }
    }
}

TEST_CASE("max and min pooling route each window's gradient to one of its elements", "[pool2d]")
{
    tg::Generator gen(7);
    for (Kind k : {Kind::max, Kind::min})
    {
        for (const tg::Size2 kernel : {tg::Size2(2), tg::Size2(3), tg::Size2(2, 3)})
        {
            INFO(kind_name(k) << " pooling, kernel " << kernel.h << "x" << kernel.w << ", stride = kernel");
            auto x = tg::rand<float>({2, 3, 7, 9}, gen, true);
            auto y = pool(k, x, {.kernel = kernel});
            auto g = tg::rand<float>(y.shape(), gen);
            y.backward(g);
            const auto& dx = x.grad().value();
            const auto& gv = g.value();
            const auto& sh = y.shape();
            double total = 0;
            for (std::size_t n = 0; n < sh[0]; ++n)
                for (std::size_t c = 0; c < sh[1]; ++c)
                    for (std::size_t i = 0; i < sh[2]; ++i)
                        for (std::size_t j = 0; j < sh[3]; ++j)
                        {
                            double sum = 0;
                            int nonzero = 0;
                            for (std::int64_t a = 0; a < kernel.h; ++a)
                                for (std::int64_t b = 0; b < kernel.w; ++b)
                                {
                                    const float v = dx(n, c, i * kernel.h + a, j * kernel.w + b);
                                    sum += v;
                                    nonzero += v != 0.0f;
                                }
                            CHECK(sum == static_cast<double>(gv(n, c, i, j)));
                            CHECK(nonzero == 1);
                            total += gv(n, c, i, j);
                        }
            // Nothing lands outside the windows (the rows and columns left over at the edges).
            CHECK(xt::sum(dx)() == Approx(total).epsilon(1e-5));
        }
        {
            INFO(kind_name(k) << " pooling, overlapping windows conserve the total gradient");
            auto x = tg::rand<double>({2, 2, 6, 7}, gen, true);
            auto y = pool(k, x, {.kernel = 3, .stride = 1, .padding = 1});
            auto g = tg::rand<double>(y.shape(), gen);
            y.backward(g);
            CHECK(xt::sum(x.grad().value())() == Approx(xt::sum(g.value())()).epsilon(1e-12));
        }
    }
}

TEST_CASE("avg pooling without padding conserves the total gradient", "[pool2d]")
{
    tg::Generator gen(8);
    for (const tg::Pool2dOptions& o :
         {tg::Pool2dOptions{.kernel = 2}, tg::Pool2dOptions{.kernel = {2, 3}},
          tg::Pool2dOptions{.kernel = 3, .stride = 1}, tg::Pool2dOptions{.kernel = {3, 2}, .stride = {1, 2}}})
    {
        INFO("kernel " << o.kernel.h << "x" << o.kernel.w);
        auto x = tg::rand<double>({2, 3, 6, 8}, gen, true);
        auto y = tg::avg_pool2d(x, o);
        auto g = tg::rand<double>(y.shape(), gen);
        y.backward(g);
        CHECK(xt::sum(x.grad().value())() == Approx(xt::sum(g.value())()).epsilon(1e-12));
    }
}

TEST_CASE("avg_pool2d divisors with padding and ceil_mode follow PyTorch (hand-computed)", "[pool2d]")
{
    SECTION("one row: width 6, kernel 3, stride 2, padding 1, ceil_mode")
    {
        // 4 windows over [pad, 1..6, pad] start at -1, 1, 3, 5; the last is cut at in + p = 7.
        // Divisors with padding: 3, 3, 3, 2; without: 2, 3, 3, 1.
        const std::vector<double> x = {1, 2, 3, 4, 5, 6};
        tg::Pool2dOptions o{.kernel = {1, 3}, .stride = {1, 2}, .padding = {0, 1}, .ceil_mode = true};
        const std::vector<double> g = {1, 2, 3, 4};
        auto y = tg::avg_pool2d(tg::from_vector<double>(x, {1, 1, 1, 6}), o);
        require_values(y.value(), {3.0 / 3, 9.0 / 3, 15.0 / 3, 6.0 / 2});
        require_values(input_grad<double>(Kind::avg, x, {1, 1, 1, 6}, o, g),
                       {1.0 / 3, 1.0 / 3 + 2.0 / 3, 2.0 / 3, 2.0 / 3 + 1, 1, 1 + 4.0 / 2});
        o.count_include_pad = false;
        y = tg::avg_pool2d(tg::from_vector<double>(x, {1, 1, 1, 6}), o);
        require_values(y.value(), {3.0 / 2, 9.0 / 3, 15.0 / 3, 6.0 / 1});
        require_values(input_grad<double>(Kind::avg, x, {1, 1, 1, 6}, o, g),
                       {1.0 / 2, 1.0 / 2 + 2.0 / 3, 2.0 / 3, 2.0 / 3 + 1, 1, 1 + 4.0});
    }
    SECTION("a ceil_mode window past the input without padding divides by its clipped size")
    {
        // width 4, kernel 3, stride 2: windows [0, 3) and [2, 5) -> clipped to [2, 4), divisor 2
        // even with count_include_pad.
        for (bool include : {true, false})
        {
            tg::Pool2dOptions o{
              .kernel = {1, 3}, .stride = {1, 2}, .ceil_mode = true, .count_include_pad = include};
            auto y = tg::avg_pool2d(tg::from_vector<double>({1, 2, 3, 4}, {1, 1, 1, 4}), o);
            require_values(y.value(), {6.0 / 3, 7.0 / 2});
            require_values(input_grad<double>(Kind::avg, {1, 2, 3, 4}, {1, 1, 1, 4}, o, {3, 10}),
                           {1, 1, 1 + 5, 5});
        }
    }
    SECTION("4x4 ones, kernel 3, stride 2, padding 1, ceil_mode")
    {
        // Per axis: windows start -1, 1, 3 (out = ceil(3/2) + 1 = 3); in-bounds counts 2, 3, 1;
        // padded extents 3, 3, 2 (the last is cut at in + p = 5).
        const std::vector<double> ones(16, 1.0);
        tg::Pool2dOptions o{.kernel = 3, .stride = 2, .padding = 1, .ceil_mode = true};
        auto y = tg::avg_pool2d(tg::from_vector<double>(ones, {1, 1, 4, 4}), o);
        const double r[3] = {2.0 / 3, 1.0, 1.0 / 2};
        std::vector<double> want;
        for (double a : r)
            for (double b : r)
                want.push_back(a * b);
        require_values(y.value(), want);
        o.count_include_pad = false;
        y = tg::avg_pool2d(tg::from_vector<double>(ones, {1, 1, 4, 4}), o);
        require_values(y.value(), std::vector<double>(9, 1.0));
    }
}

TEST_CASE("pooling matches a naive reference and passes gradcheck over a grid of settings", "[pool2d]")
{
    tg::Generator gen(2024);
    const tg::Shape shape{2, 3, 6, 7};
    int checked = 0;
    for (Kind kind : {Kind::max, Kind::min, Kind::avg})
        for (const tg::Size2 kernel : {tg::Size2(2), tg::Size2(3), tg::Size2(2, 3)})
            for (const tg::Size2 stride : {tg::Size2(1), tg::Size2(2), tg::Size2(1, 2)})
                for (const std::int64_t padding : {0, 1})
                    for (const std::int64_t dilation : {1, 2})
                        for (const bool ceil : {false, true})
                            for (const bool include : {true, false})
                            {
                                if ((kind == Kind::avg && dilation != 1) || (kind != Kind::avg && !include))
                                {
                                    continue;
                                }
                                const tg::Pool2dOptions o{.kernel = kernel,
                                                          .stride = stride,
                                                          .padding = padding,
                                                          .dilation = dilation,
                                                          .ceil_mode = ceil,
                                                          .count_include_pad = include};
                                INFO(kind_name(kind)
                                     << " kernel " << kernel.h << "x" << kernel.w << " stride " << stride.h
                                     << "x" << stride.w << " padding " << padding << " dilation " << dilation
                                     << " ceil " << ceil << " count_include_pad " << include);
                                auto x = tg::test::distinct(shape, gen);
                                auto y = pool(kind, x, o);
                                auto g = tg::test::uniform(y.shape(), gen, -1, 1, false);
                                const auto ref = reference_pool(kind, x.value(), o, g.value());
                                REQUIRE(y.shape() == tg::Shape(ref.y.shape().begin(), ref.y.shape().end()));
                                REQUIRE(xt::allclose(y.value(), ref.y, 1e-12, 1e-12));
                                y.backward(g);
                                REQUIRE(xt::allclose(x.grad().value(), ref.dx, 1e-12, 1e-12));

                                REQUIRE_GRADCHECK([&](const std::vector<tg::Tensor64>& in)
                                                  { return pool(kind, in[0], o); },
                                                  std::vector<tg::Tensor64>{x});
                                ++checked;
                            }
    CHECK(checked == 2 * 3 * 3 * 2 * 2 * 2 + 3 * 3 * 2 * 2 * 2);
}

TEST_CASE("float32 pooling matches the reference on the 2x2 stride-2 fast path and elsewhere", "[pool2d]")
{
    tg::Generator gen(99);
    for (Kind kind : {Kind::max, Kind::min, Kind::avg})
        for (const tg::Shape& shape : {tg::Shape{3, 4, 8, 8}, tg::Shape{2, 5, 7, 9}})
            for (const bool ceil : {false, true})
            {
                INFO(kind_name(kind) << " " << tg::shape_str(shape) << " ceil " << ceil);
                const tg::Pool2dOptions o{.kernel = 2, .ceil_mode = ceil};
                auto x64 = tg::test::distinct(shape, gen, -2, 2, false);
                auto x = tg::cast<float>(x64).set_requires_grad();
                auto y = pool(kind, x, o);
                {
                    tg::NoGradGuard no_grad; // the path that records no argmax
                    REQUIRE(pool(kind, x, o).value() == y.value());
                }
                auto g64 = tg::test::uniform(y.shape(), gen, -1, 1, false);
                y.backward(tg::cast<float>(g64));
                // The reference works on the float values, so only the float arithmetic differs.
                const auto ref = reference_pool(kind, tg::cast<double>(x).value(), o,
                                                tg::cast<double>(tg::cast<float>(g64)).value());
                REQUIRE(xt::allclose(tg::cast<double>(y).value(), ref.y, 1e-6, 1e-6));
                REQUIRE(xt::allclose(tg::cast<double>(x.grad()).value(), ref.dx, 1e-6, 1e-6));
            }
}

TEST_CASE("pooling has no parameters: only the input is on the tape", "[pool2d]")
{
    tg::TapeScope scope;
    tg::Generator gen(3);
    for (Kind kind : {Kind::max, Kind::min, Kind::avg})
    {
        INFO(kind_name(kind));
        auto x = tg::rand<float>({2, 3, 4, 4}, gen);
        CHECK_FALSE(pool(kind, x, {.kernel = 2}).requires_grad());
        CHECK(tg::current_tape().size() == 0);
        {
            tg::NoGradGuard no_grad;
            x.set_requires_grad();
            CHECK_FALSE(pool(kind, x, {.kernel = 2}).requires_grad());
            CHECK(tg::current_tape().size() == 0);
        }
        auto y = pool(kind, x, {.kernel = 2});
        CHECK(y.requires_grad());
        REQUIRE(tg::current_tape().size() == 1);
        y.backward(tg::ones<float>(y.shape()));
        CHECK(tg::current_tape().size() == 0);
        REQUIRE(x.grad().defined());
        CHECK(x.grad().shape() == x.shape());
    }
}

TEST_CASE("pooling errors name the op, the input shape and the rule", "[pool2d]")
{
    auto x = tg::zeros<float>({1, 2, 4, 4});

    std::string m = thrown_message<tg::ShapeError>(
      [] {
          tg::max_pool2d(tg::zeros<float>({2, 4, 4}), {.kernel = 2});
      });
    CHECK_THAT(m, Contains("tg::max_pool2d") && Contains("[2, 4, 4]") && Contains("4-D"));

    m = thrown_message<tg::ShapeError>([&] { tg::avg_pool2d(x, {.kernel = 5}); });
    CHECK_THAT(m, Contains("tg::avg_pool2d") && Contains("[1, 2, 4, 4]") &&
                    Contains("larger than the padded input"));

    m = thrown_message<tg::ShapeError>([&] { tg::min_pool2d(x, {.kernel = {2, 5}}); });
    CHECK_THAT(m, Contains("tg::min_pool2d") && Contains("along the width") && Contains("[1, 2, 4, 4]"));

    m = thrown_message<tg::ValueError>([&] { tg::max_pool2d(x, {.kernel = 2, .stride = 0}); });
    CHECK_THAT(m,
               Contains("tg::max_pool2d") && Contains("[1, 2, 4, 4]") && Contains("stride 0 must be >= 1"));

    m = thrown_message<tg::ValueError>([&] { tg::max_pool2d(x, {.kernel = 2, .dilation = {1, 0}}); });
    CHECK_THAT(m, Contains("tg::max_pool2d") && Contains("dilation 0 must be >= 1"));

    m = thrown_message<tg::ValueError>([&] { tg::avg_pool2d(x, {.kernel = 2, .dilation = 2}); });
    CHECK_THAT(m, Contains("tg::avg_pool2d") && Contains("[1, 2, 4, 4]") && Contains("dilation"));

    m = thrown_message<tg::ValueError>([&] { tg::min_pool2d(x, {.kernel = 3, .padding = -1}); });
    CHECK_THAT(m, Contains("tg::min_pool2d") && Contains("padding -1 must be >= 0"));

    m = thrown_message<tg::ValueError>([&] { tg::max_pool2d(x, {.kernel = 3, .padding = 2}); });
    CHECK_THAT(m, Contains("tg::max_pool2d") && Contains("[1, 2, 4, 4]") && Contains("half the kernel"));

    m = thrown_message<tg::ValueError>([&] { tg::avg_pool2d(x, {}); });
    CHECK_THAT(m, Contains("tg::avg_pool2d") && Contains("kernel size is required"));

    m = thrown_message<tg::ValueError>([&] { tg::max_pool2d(x, {.kernel = 0}); });
    CHECK_THAT(m, Contains("tg::max_pool2d") && Contains("kernel size is required"));

    m = thrown_message<tg::ValueError>([&] { tg::max_pool2d(x, {.kernel = -2}); });
    CHECK_THAT(m, Contains("tg::max_pool2d") && Contains("kernel size -2 must be >= 1"));

    // Dilation 3 over a width-2 input padded by 1: the only window reads positions -1 and 2, both padding.
    m = thrown_message<tg::ShapeError>(
      [] {
          tg::max_pool2d(tg::zeros<float>({1, 1, 2, 2}), {.kernel = 2, .padding = 1, .dilation = 3});
      });
    CHECK_THAT(m,
               Contains("tg::max_pool2d") && Contains("[1, 1, 2, 2]") && Contains("entirely in the padding"));
}
