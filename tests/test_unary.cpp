#include "support/support.hpp"

#include <cmath>
#include <limits>

namespace tg = tapegrad;
using Catch::Matchers::Contains;
using tg::test::distinct;
using tg::test::gradcheck_ok;
using tg::test::vals;

namespace
{
const std::vector<tg::Shape> shapes = {{}, {1}, {7}, {2, 3}, {2, 3, 4}};

/// y = op(x) for x holding `xs`; returns y's values and, after backward with seed 1, dy/dx.
template <class T, class Op>
std::pair<std::vector<double>, std::vector<double>> value_and_grad(Op op, const std::vector<T>& xs)
{
    auto x = tg::from_vector<T>(xs, {xs.size()}, true);
    auto y = op(x);
    y.backward(tg::ones<T>({xs.size()}));
    return {vals(y), vals(x.grad())};
}
} // namespace

TEST_CASE("unary ops pass gradcheck", "[unary]")
{
    tg::Generator gen(11);
    for (const auto& s : shapes)
    {
        INFO("shape " << tg::shape_str(s));
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::exp(in[0]); }, {distinct(s, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::log(in[0]); },
                     {distinct(s, gen, 0.2, 3.0)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::sqrt(in[0]); },
                     {distinct(s, gen, 0.2, 3.0)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::abs(in[0]); }, {distinct(s, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::relu(in[0]); }, {distinct(s, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::sigmoid(in[0]); },
                     {distinct(s, gen, -6.0, 6.0)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::tanh(in[0]); },
                     {distinct(s, gen, -3.0, 3.0)});
    }
}

TEST_CASE("pow with a constant exponent passes gradcheck", "[unary]")
{
    tg::Generator gen(12);
    for (const auto& s : shapes)
    {
        for (double p : {2.0, 3.0, 1.0, -1.0})
        {
            INFO("shape " << tg::shape_str(s) << ", p = " << p);
            gradcheck_ok([p](const std::vector<tg::Tensor64>& in) { return tg::pow(in[0], p); },
                         {distinct(s, gen)});
        }
        for (double p : {0.5, -1.5, 2.7})
        {
            INFO("shape " << tg::shape_str(s) << ", p = " << p);
            gradcheck_ok([p](const std::vector<tg::Tensor64>& in) { return tg::pow(in[0], p); },
                         {distinct(s, gen, 0.2, 3.0)});
        }
    }
}

TEST_CASE("pow of two tensors passes gradcheck, with broadcasting", "[unary]")
{
    tg::Generator gen(13);
    const std::vector<std::pair<tg::Shape, tg::Shape>> pairs = {
      {{}, {}},      {{2, 3}, {2, 3}},    {{2, 3}, {3}}, {{3}, {2, 3}},
      {{1}, {2, 3}}, {{4, 1, 3}, {2, 1}}, {{2, 3}, {}}};
    for (const auto& [a, b] : pairs)
    {
        INFO(tg::shape_str(a) << " ^ " << tg::shape_str(b));
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::pow(in[0], in[1]); },
                     {distinct(a, gen, 0.3, 2.5), distinct(b, gen, -2.0, 2.0)});
    }
}

TEST_CASE("unary ops: hand-computed values and derivatives", "[unary]")
{
    const double e = std::exp(1.0);
    auto [ey, eg] = value_and_grad<double>([](auto& x) { return tg::exp(x); }, {0.0, 1.0});
    CHECK_THAT(ey, Catch::Matchers::Approx(std::vector<double>{1.0, e}));
    CHECK_THAT(eg, Catch::Matchers::Approx(std::vector<double>{1.0, e}));

    auto [ly, lg] = value_and_grad<double>([](auto& x) { return tg::log(x); }, {1.0, 2.0, e});
    CHECK_THAT(ly, Catch::Matchers::Approx(std::vector<double>{0.0, std::log(2.0), 1.0}).margin(1e-12));
    CHECK_THAT(lg, Catch::Matchers::Approx(std::vector<double>{1.0, 0.5, 1.0 / e}));

    auto [sy, sg] = value_and_grad<double>([](auto& x) { return tg::sqrt(x); }, {4.0, 9.0});
    CHECK_THAT(sy, Catch::Matchers::Approx(std::vector<double>{2.0, 3.0}));
    CHECK_THAT(sg, Catch::Matchers::Approx(std::vector<double>{0.25, 1.0 / 6.0}));

    auto [p2y, p2g] = value_and_grad<double>([](auto& x) { return tg::pow(x, 2.0); }, {3.0, -2.0});
    CHECK_THAT(p2y, Catch::Matchers::Approx(std::vector<double>{9.0, 4.0}));
    CHECK_THAT(p2g, Catch::Matchers::Approx(std::vector<double>{6.0, -4.0}));

    auto [p3y, p3g] = value_and_grad<double>([](auto& x) { return tg::pow(x, 3.0); }, {2.0});
    CHECK(p3y[0] == Approx(8.0));
    CHECK(p3g[0] == Approx(12.0));

    // x^0 = 1 has derivative 0 everywhere, including x = 0 (not 0 * 0^-1 = NaN).
    auto [p0y, p0g] = value_and_grad<double>([](auto& x) { return tg::pow(x, 0.0); }, {0.0, 5.0});
    CHECK_THAT(p0y, Catch::Matchers::Approx(std::vector<double>{1.0, 1.0}));
    CHECK_THAT(p0g, Catch::Matchers::Approx(std::vector<double>{0.0, 0.0}));
}

TEST_CASE("pow of two tensors: hand-computed gradients", "[unary]")
{
    auto a = tg::from_vector<double>({2.0, 0.0}, {2}, true);
    auto b = tg::from_vector<double>({3.0, 2.0}, {2}, true);
    auto y = tg::pow(a, b);
    CHECK_THAT(vals(y), Catch::Matchers::Approx(std::vector<double>{8.0, 0.0}));
    y.backward(tg::ones<double>({2}));
    // d/da = b a^(b-1): 3*4 = 12, 2*0 = 0.  d/db = a^b ln a: 8 ln 2, and 0 at a = 0 (not NaN).
    CHECK_THAT(vals(a.grad()), Catch::Matchers::Approx(std::vector<double>{12.0, 0.0}));
    CHECK_THAT(vals(b.grad()), Catch::Matchers::Approx(std::vector<double>{8.0 * std::log(2.0), 0.0}));

    // A [1] exponent broadcast over [3]: its gradient is the sum over the three positions.
    auto base = tg::from_vector<double>({1.0, 2.0, 4.0}, {3}, true);
    auto p = tg::from_vector<double>({2.0}, {1}, true);
    auto z = tg::pow(base, p);
    CHECK_THAT(vals(z), Catch::Matchers::Approx(std::vector<double>{1.0, 4.0, 16.0}));
    z.backward(tg::ones<double>({3}));
    CHECK_THAT(vals(base.grad()), Catch::Matchers::Approx(std::vector<double>{2.0, 4.0, 8.0}));
    CHECK(p.grad().item() == Approx(4.0 * std::log(2.0) + 16.0 * std::log(4.0)));
}

TEST_CASE("relu masks by the sign of its input and lets NaN through", "[unary]")
{
    auto [y, g] = value_and_grad<double>([](auto& x) { return tg::relu(x); }, {-2.0, -0.0, 0.0, 0.5, 3.0});
    CHECK(y == std::vector<double>{0.0, 0.0, 0.0, 0.5, 3.0});
    CHECK(g == std::vector<double>{0.0, 0.0, 0.0, 1.0, 1.0});

    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto x = tg::from_vector<float>({nan, -1.0f, 2.0f}, {3}, true);
    auto r = tg::relu(x);
    CHECK(std::isnan(r.value()(0)));
    CHECK(r.value()(1) == 0.0f);
    CHECK(r.value()(2) == 2.0f);
    r.backward(tg::ones<float>({3}));
    CHECK(x.grad().value()(0) == 0.0f);
    CHECK(x.grad().value()(2) == 1.0f);
}

TEST_CASE("abs has gradient sign(x), 0 at 0", "[unary]")
{
    auto [y, g] = value_and_grad<double>([](auto& x) { return tg::abs(x); }, {-2.0, 0.0, 3.0});
    CHECK(y == std::vector<double>{2.0, 0.0, 3.0});
    CHECK(g == std::vector<double>{-1.0, 0.0, 1.0});
}

TEST_CASE("sigmoid and tanh: known values and derivatives", "[unary]")
{
    auto [sy, sg] = value_and_grad<double>([](auto& x) { return tg::sigmoid(x); }, {0.0, std::log(3.0)});
    // sigmoid(ln 3) = 3/4, derivative 3/4 * 1/4.
    CHECK_THAT(sy, Catch::Matchers::Approx(std::vector<double>{0.5, 0.75}));
    CHECK_THAT(sg, Catch::Matchers::Approx(std::vector<double>{0.25, 3.0 / 16.0}));

    auto [ty, tgr] = value_and_grad<float>([](auto& x) { return tg::tanh(x); }, {0.0f, std::log(2.0f)});
    // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 3/5, derivative 1 - 9/25.
    CHECK_THAT(ty, Catch::Matchers::Approx(std::vector<double>{0.0, 0.6}).margin(1e-6));
    CHECK_THAT(tgr, Catch::Matchers::Approx(std::vector<double>{1.0, 16.0 / 25.0}).epsilon(1e-5));
}

TEMPLATE_TEST_CASE("sigmoid is finite for large |x|", "[unary]", float, double)
{
    auto x = tg::from_vector<TestType>({-1000, -100, 100, 1000}, {4}, true);
    auto y = tg::sigmoid(x);
    for (double v : vals(y))
    {
        CHECK(std::isfinite(v));
    }
    CHECK(y.value()(0) == TestType(0));
    CHECK(y.value()(3) == TestType(1));
    CHECK(y.value()(1) >= TestType(0));
    CHECK(y.value()(1) < TestType(1e-40));
    y.backward(tg::ones<TestType>({4}));
    for (double v : vals(x.grad()))
    {
        CHECK(std::isfinite(v));
        CHECK(v >= 0.0);
        CHECK(v < 1e-40);
    }
}

TEST_CASE("log follows IEEE at and below zero", "[unary]")
{
    auto y = tg::log(tg::from_vector<double>({0.0, -1.0}, {2}));
    CHECK(std::isinf(y.value()(0)));
    CHECK(y.value()(0) < 0);
    CHECK(std::isnan(y.value()(1)));
}

TEST_CASE("pow of incompatible shapes throws a ShapeError", "[unary]")
{
    auto a = tg::ones<double>({2, 3});
    auto b = tg::ones<double>({2});
    REQUIRE_THROWS_AS(tg::pow(a, b), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::pow(a, b), Contains("tg::pow") && Contains("[2, 3]") && Contains("[2]"));
}
