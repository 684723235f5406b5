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
/// Naive reference: walks every element, computes its output position from its multi-index.
std::vector<double> naive_sum(const xt::xarray<double>& x, const std::vector<bool>& reduced)
{
    const auto& s = x.shape();
    std::size_t out_size = 1;
    for (std::size_t d = 0; d < s.size(); ++d)
    {
        out_size *= reduced[d] ? 1 : s[d];
    }
    std::vector<double> out(out_size, 0.0);
    std::vector<std::size_t> idx(s.size(), 0);
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        std::size_t rem = i;
        for (std::size_t d = s.size(); d-- > 0;)
        {
            idx[d] = rem % s[d];
            rem /= s[d];
        }
        std::size_t o = 0;
        for (std::size_t d = 0; d < s.size(); ++d)
        {
            if (!reduced[d])
            {
                o = o * s[d] + idx[d];
            }
        }
        out[o] += x.data()[i];
    }
    return out;
}

std::vector<bool> mask_of(const tg::Axes& axes, std::size_t rank)
{
    std::vector<bool> m(rank, false);
    for (auto a : axes)
    {
        m[static_cast<std::size_t>(a < 0 ? a + static_cast<std::ptrdiff_t>(rank) : a)] = true;
    }
    return m;
}

struct AxesCase
{
    tg::Shape shape;
    tg::Axes axes;
};

const std::vector<AxesCase> axes_cases = {{{2, 3, 4}, {0}},
                                          {{2, 3, 4}, {1}},
                                          {{2, 3, 4}, {2}},
                                          {{2, 3, 4}, {-1}},
                                          {{2, 3, 4}, {0, 2}},
                                          {{2, 3, 4}, {1, 2}},
                                          {{2, 3, 4}, {2, 0, 1}},
                                          {{2, 3, 4}, {}},
                                          {{2, 3, 4, 5}, {0, 2, 3}},
                                          {{2, 3, 4, 5}, {1, 3}},
                                          {{3, 1, 4}, {1}},
                                          {{3, 1, 4}, {0, 1}},
                                          {{5}, {0}},
                                          {{1, 1}, {0}},
                                          {{40, 3}, {0}},
                                          {{3, 40}, {-1}}};
} // namespace

TEST_CASE("sum of all elements passes gradcheck and has gradient 1", "[reduce]")
{
    tg::Generator gen(21);
    for (const tg::Shape& s : std::vector<tg::Shape>{{}, {1}, {5}, {2, 3}, {2, 3, 4}})
    {
        INFO("shape " << tg::shape_str(s));
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::sum(in[0]); }, {distinct(s, gen)});
        auto x = distinct(s, gen);
        auto y = tg::sum(x);
        CHECK(y.dim() == 0);
        y.backward();
        for (double g : vals(x.grad()))
        {
            CHECK(g == 1.0);
        }
    }
}

TEST_CASE("sum over axes matches a naive reference and passes gradcheck", "[reduce]")
{
    tg::Generator gen(22);
    for (const auto& c : axes_cases)
    {
        for (bool keep : {false, true})
        {
            INFO("shape " << tg::shape_str(c.shape) << ", axes " << tg::shape_str(c.axes) << ", keepdims "
                          << keep);
            auto x = distinct(c.shape, gen);
            auto y = tg::sum(x, c.axes, keep);
            const auto reduced = mask_of(c.axes, c.shape.size());
            tg::Shape want;
            for (std::size_t d = 0; d < c.shape.size(); ++d)
            {
                if (!reduced[d] || keep)
                {
                    want.push_back(reduced[d] ? 1 : c.shape[d]);
                }
            }
            CHECK(y.shape() == want);
            CHECK_THAT(vals(y), Catch::Matchers::Approx(naive_sum(x.value(), reduced)));
            const auto& axes = c.axes;
            gradcheck_ok(
              [&axes, keep](const std::vector<tg::Tensor64>& in) { return tg::sum(in[0], axes, keep); }, {x});
        }
    }
}

TEST_CASE("sum over axes in float32 on a large tensor", "[reduce]")
{
    // 0.25 is exact in binary, so every partial sum is exact: the result must be exactly right.
    auto x = tg::full<float>({3, 5000, 7}, 0.25f, true);
    auto y = tg::sum(x, {1});
    REQUIRE(y.shape() == tg::Shape{3, 7});
    for (double v : vals(y))
    {
        CHECK(v == 1250.0);
    }
    auto total = tg::sum(x);
    CHECK(total.item() == 3 * 5000 * 7 * 0.25f);
    tg::Generator gen(23);
    auto r = tg::rand<float>({64, 1000}, gen);
    auto s = tg::sum(r, {-1});
    std::vector<double> want(64, 0.0);
    for (std::size_t i = 0; i < r.numel(); ++i)
    {
        want[i / 1000] += r.value().data()[i];
    }
    CHECK_THAT(vals(s), Catch::Matchers::Approx(want).epsilon(1e-5));
    y.backward(tg::ones<float>({3, 7}));
    CHECK(x.grad().value()(2, 4999, 6) == 1.0f);
}

TEST_CASE("sum of an empty tensor is zero", "[reduce]")
{
    auto x = tg::zeros<double>({0, 3}, true);
    CHECK(tg::sum(x).item() == 0.0);
    auto y = tg::sum(x, {0});
    REQUIRE(y.shape() == tg::Shape{3});
    CHECK(vals(y) == std::vector<double>{0, 0, 0});
    y.backward(tg::ones<double>({3}));
    CHECK(x.grad().shape() == tg::Shape{0, 3});
    CHECK(tg::sum(x, {1}).shape() == tg::Shape{0});
}

TEST_CASE("mean is composed from sum and mul_scalar", "[reduce]")
{
    tg::TapeScope scope;
    auto x = tg::from_vector<double>({1, 2, 3, 4}, {4}, true);
    auto m = tg::mean(x);
    CHECK(m.item() == Approx(2.5));
    const auto names = tg::current_tape().op_names();
    REQUIRE(names.size() == 2);
    CHECK(std::string(names[0]) == "sum");
    CHECK(std::string(names[1]) == "mul_scalar");
    m.backward();
    CHECK(vals(x.grad()) == std::vector<double>{0.25, 0.25, 0.25, 0.25});

    auto a = tg::from_vector<double>({1, 2, 3, 5}, {2, 2}, true);
    auto ma = tg::mean(a, {0}, true);
    REQUIRE(ma.shape() == tg::Shape{1, 2});
    CHECK_THAT(vals(ma), Catch::Matchers::Approx(std::vector<double>{2.0, 3.5}));
    ma.backward(tg::ones<double>({1, 2}));
    CHECK(vals(a.grad()) == std::vector<double>{0.5, 0.5, 0.5, 0.5});
}

TEST_CASE("mean passes gradcheck", "[reduce]")
{
    tg::Generator gen(24);
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::mean(in[0]); },
                 {distinct({2, 3, 4}, gen)});
    for (const auto& c : axes_cases)
    {
        INFO("shape " << tg::shape_str(c.shape) << ", axes " << tg::shape_str(c.axes));
        const auto& axes = c.axes;
        gradcheck_ok([&axes](const std::vector<tg::Tensor64>& in) { return tg::mean(in[0], axes, false); },
                     {distinct(c.shape, gen)});
    }
}

TEST_CASE("max routes the gradient to the first maximum", "[reduce]")
{
    auto x = tg::from_vector<double>({1, 5, 3, 5}, {4}, true);
    auto m = tg::max(x);
    CHECK(m.item() == 5.0);
    CHECK(m.dim() == 0);
    m.backward();
    CHECK(vals(x.grad()) == std::vector<double>{0, 1, 0, 0});

    // [[1, 3, 3], [4, 2, 4]]: along axis 1 the maxima are 3 (first at column 1) and 4 (column 0).
    auto a = tg::from_vector<double>({1, 3, 3, 4, 2, 4}, {2, 3}, true);
    auto m1 = tg::max(a, 1);
    REQUIRE(m1.shape() == tg::Shape{2});
    CHECK(vals(m1) == std::vector<double>{3, 4});
    m1.backward(tg::from_vector<double>({10, 20}, {2}));
    CHECK(vals(a.grad()) == std::vector<double>{0, 10, 0, 20, 0, 0});

    // Along axis 0 (inner > 1), with a tie in column 0 that goes to row 0.
    auto b = tg::from_vector<double>({5, 1, 3, 5, 2, 4}, {2, 3}, true);
    auto m0 = tg::max(b, 0, true);
    REQUIRE(m0.shape() == tg::Shape{1, 3});
    CHECK(vals(m0) == std::vector<double>{5, 2, 4});
    m0.backward(tg::from_vector<double>({1, 2, 3}, {1, 3}));
    CHECK(vals(b.grad()) == std::vector<double>{1, 0, 0, 0, 2, 3});
}

TEMPLATE_TEST_CASE("max treats NaN as the maximum", "[reduce]", float, double)
{
    const TestType nan = std::numeric_limits<TestType>::quiet_NaN();
    auto x = tg::from_vector<TestType>({1, nan, 3, nan}, {4}, true);
    auto m = tg::max(x);
    CHECK(std::isnan(m.item()));
    m.backward();
    CHECK(vals(x.grad()) == std::vector<double>{0, 1, 0, 0});
    // Both scan directions: rows of a [2, 3] (inner = 1) and columns (inner = 3).
    auto a = tg::from_vector<TestType>({1, nan, 3, 7, 2, nan}, {2, 3});
    auto rows = tg::max(a, 1);
    CHECK(std::isnan(rows.value()(0)));
    CHECK(std::isnan(rows.value()(1)));
    auto cols = tg::max(a, 0);
    CHECK(cols.value()(0) == 7);
    CHECK(std::isnan(cols.value()(1)));
    CHECK(std::isnan(cols.value()(2)));
    auto at = tg::argmax(a, 0);
    CHECK(at(0) == 1);
    CHECK(at(1) == 0);
    CHECK(at(2) == 1);
    CHECK(tg::argmax(a, 1)(1) == 2);
}

TEST_CASE("max passes gradcheck", "[reduce]")
{
    tg::Generator gen(25);
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::max(in[0]); },
                 {distinct({2, 3, 4}, gen)});
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::max(in[0]); }, {distinct({}, gen)});
    for (std::ptrdiff_t axis : {0, 1, 2, -1, -3})
    {
        for (bool keep : {false, true})
        {
            INFO("axis " << axis << ", keepdims " << keep);
            gradcheck_ok([axis, keep](const std::vector<tg::Tensor64>& in)
                         { return tg::max(in[0], axis, keep); },
                         {distinct({2, 3, 4}, gen)});
        }
    }
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::max(in[0], 0, false); },
                 {distinct({}, gen)});
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::max(in[0], -1, false); },
                 {distinct({9}, gen)});
}

TEST_CASE("argmax returns first-maximum indices and records nothing", "[reduce]")
{
    tg::TapeScope scope;
    auto a = tg::from_vector<float>({1, 3, 3, 4, 2, 4}, {2, 3}, true);
    xt::xarray<std::int64_t> i1 = tg::argmax(a, 1);
    REQUIRE(i1.shape().size() == 1);
    CHECK(i1(0) == 1);
    CHECK(i1(1) == 0);
    xt::xarray<std::int64_t> i0 = tg::argmax(a, -2);
    REQUIRE(i0.size() == 3);
    CHECK(i0(0) == 1);
    CHECK(i0(1) == 0);
    CHECK(i0(2) == 1);
    CHECK(tg::current_tape().size() == 0);
    auto fm = tg::max(a, 1);
    CHECK(vals(fm) == std::vector<double>{3, 4});
}

TEST_CASE("reductions reject bad axes with typed errors", "[reduce]")
{
    auto x = tg::zeros<double>({2, 3});
    REQUIRE_THROWS_AS(tg::sum(x, {2}), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::sum(x, {2}), Contains("tg::sum") && Contains("axis 2") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::sum(x, {-3}), tg::IndexError);
    REQUIRE_THROWS_AS(tg::sum(x, {1, -1}), tg::ValueError);
    REQUIRE_THROWS_WITH(tg::sum(x, {1, -1}),
                        Contains("tg::sum") && Contains("axis -1") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::mean(x, {5}), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::mean(x, {5}), Contains("tg::mean") && Contains("axis 5") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::mean(x, {0, 0}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::max(x, 2), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::max(x, -3), Contains("tg::max") && Contains("axis -3") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::argmax(x, 7), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::argmax(x, 7), Contains("tg::argmax") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::max(tg::zeros<double>({0})), tg::ValueError);
    REQUIRE_THROWS_AS(tg::max(tg::zeros<double>({2, 0}), 1), tg::ValueError);
    REQUIRE_THROWS_AS(tg::argmax(tg::zeros<float>({0, 2}), 0), tg::ValueError);
}
