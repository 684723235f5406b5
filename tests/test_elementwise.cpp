#include "support/support.hpp"

namespace tg = tapegrad;
using Catch::Matchers::Contains;
using tg::test::distinct;
using tg::test::gradcheck_ok;
using tg::test::vals;

namespace
{
using Binary = tg::Tensor64 (*)(const tg::Tensor64&, const tg::Tensor64&);

struct NamedBinary
{
    const char* name;
    Binary op;
};

const NamedBinary binary_ops[] = {{"add", &tg::add<double>},
                                  {"sub", &tg::sub<double>},
                                  {"mul", &tg::mul<double>},
                                  {"div", &tg::div<double>}};

/// Inputs for `op`; denominators of div stay in [0.5, 2.5) so the quotient is smooth.
std::vector<tg::Tensor64> binary_inputs(const NamedBinary& op, const tg::Shape& a, const tg::Shape& b,
                                        tg::Generator& gen)
{
    const bool div = std::string(op.name) == "div";
    return {distinct(a, gen), div ? distinct(b, gen, 0.5, 2.5) : distinct(b, gen)};
}
} // namespace

TEST_CASE("binary ops pass gradcheck on equal shapes", "[elementwise]")
{
    tg::Generator gen(1);
    const std::vector<tg::Shape> shapes = {{}, {1}, {5}, {2, 3}, {2, 3, 4}};
    for (const auto& op : binary_ops)
    {
        for (const auto& s : shapes)
        {
            INFO(op.name << " on " << tg::shape_str(s));
            gradcheck_ok([&](const std::vector<tg::Tensor64>& in) { return op.op(in[0], in[1]); },
                         binary_inputs(op, s, s, gen));
        }
    }
}

TEST_CASE("binary ops pass gradcheck under broadcasting", "[elementwise]")
{
    tg::Generator gen(2);
    const std::vector<std::pair<tg::Shape, tg::Shape>> pairs = {
      {{2, 3}, {3}},       {{3}, {2, 3}}, {{4, 1, 3}, {2, 1}}, {{2, 1}, {4, 1, 3}},
      {{1}, {2, 3}},       {{2, 3}, {1}}, {{}, {2, 3}},        {{2, 3}, {}},
      {{2, 1, 4}, {3, 1}}, {{1, 1}, {1}}, {{3, 1}, {1, 4}},    {{2, 3, 4}, {2, 3, 4}}};
    for (const auto& op : binary_ops)
    {
        for (const auto& [a, b] : pairs)
        {
            INFO(op.name << " on " << tg::shape_str(a) << " and " << tg::shape_str(b));
            gradcheck_ok([&](const std::vector<tg::Tensor64>& in) { return op.op(in[0], in[1]); },
                         binary_inputs(op, a, b, gen));
        }
    }
}

TEST_CASE("unary and scalar arithmetic pass gradcheck", "[elementwise]")
{
    tg::Generator gen(3);
    for (const tg::Shape& s : std::vector<tg::Shape>{{}, {1}, {4}, {2, 3}, {2, 3, 2}})
    {
        INFO("shape " << tg::shape_str(s));
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::neg(in[0]); }, {distinct(s, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::add_scalar(in[0], 1.5); },
                     {distinct(s, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::mul_scalar(in[0], -2.5); },
                     {distinct(s, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::rdiv_scalar(3.0, in[0]); },
                     {distinct(s, gen, 0.5, 2.5)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in)
                     { return (2.0 - in[0]) * 3.0 / 4.0 + 1.0 - 7.0 / in[0]; },
                     {distinct(s, gen, 0.5, 2.5)});
    }
}

TEST_CASE("broadcast multiply: hand-computed values and gradients", "[elementwise]")
{
    // a [3] * b [2, 1] -> [2, 3]: out[i][j] = b[i] a[j].
    auto a = tg::from_vector<double>({1, 2, 3}, {3}, true);
    auto b = tg::from_vector<double>({10, 20}, {2, 1}, true);
    auto y = a * b;
    REQUIRE(y.shape() == tg::Shape{2, 3});
    CHECK_THAT(vals(y), Catch::Matchers::Approx(std::vector<double>{10, 20, 30, 20, 40, 60}));
    y.backward(tg::ones<double>({2, 3}));
    // dL/da_j = sum_i b_i = 30; dL/db_i = sum_j a_j = 6.
    CHECK_THAT(vals(a.grad()), Catch::Matchers::Approx(std::vector<double>{30, 30, 30}));
    REQUIRE(b.grad().shape() == tg::Shape{2, 1});
    CHECK_THAT(vals(b.grad()), Catch::Matchers::Approx(std::vector<double>{6, 6}));
}

TEST_CASE("add and sub sum the gradient back over broadcast dimensions", "[elementwise]")
{
    // x [2, 3] - bias [3] with seed s: dx = s, dbias = -(column sums of s).
    auto x = tg::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, true);
    auto bias = tg::from_vector<double>({1, 1, 1}, {3}, true);
    auto c = tg::full<double>({}, 2.0, true);
    auto y = (x - bias) + c;
    CHECK_THAT(vals(y), Catch::Matchers::Approx(std::vector<double>{2, 3, 4, 5, 6, 7}));
    y.backward(tg::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}));
    CHECK_THAT(vals(x.grad()), Catch::Matchers::Approx(std::vector<double>{1, 2, 3, 4, 5, 6}));
    CHECK_THAT(vals(bias.grad()), Catch::Matchers::Approx(std::vector<double>{-5, -7, -9}));
    REQUIRE(c.grad().shape() == tg::Shape{});
    CHECK(c.grad().item() == Approx(21.0));
}

TEST_CASE("div follows the quotient rule", "[elementwise]")
{
    auto a = tg::full<double>({1}, 6.0, true);
    auto b = tg::full<double>({1}, 3.0, true);
    auto y = a / b;
    CHECK(y.item() == Approx(2.0));
    y.backward();
    CHECK(a.grad().item() == Approx(1.0 / 3.0));  // 1/b
    CHECK(b.grad().item() == Approx(-6.0 / 9.0)); // -a/b^2
}

TEST_CASE("scalar operators in float32", "[elementwise]")
{
    auto x = tg::from_vector<float>({1, 2, 4}, {3}, true);
    // y = ((3x + 2) - 1) / 2 - 8 / x + (-x)
    auto y = ((x * 3.0f + 2.0f) - 1.0f) / 2.0f - 8.0f / x + (-x);
    // x = 1: 2 - 8 - 1 = -7; x = 2: 3.5 - 4 - 2 = -2.5; x = 4: 6.5 - 2 - 4 = 0.5
    CHECK_THAT(vals(y), Catch::Matchers::Approx(std::vector<double>{-7, -2.5, 0.5}));
    y.backward(tg::ones<float>({3}));
    // dy/dx = 3/2 + 8/x^2 - 1
    CHECK_THAT(vals(x.grad()), Catch::Matchers::Approx(std::vector<double>{8.5, 2.5, 1.0}));
    auto z = 1.0f - x * 0.5f + 2.0f * x;
    CHECK_THAT(vals(z), Catch::Matchers::Approx(std::vector<double>{2.5, 4, 7}));
}

TEST_CASE("a tensor used twice receives both gradients", "[elementwise]")
{
    auto x = tg::from_vector<double>({-1.5, 2.0}, {2}, true);
    auto y = x * x + x; // dy/dx = 2x + 1
    y.backward(tg::ones<double>({2}));
    CHECK_THAT(vals(x.grad()), Catch::Matchers::Approx(std::vector<double>{-2.0, 5.0}));
    auto s = tg::from_vector<double>({4.0}, {1}, true);
    auto t = s + s; // dt/ds = 2
    t.backward();
    CHECK(s.grad().item() == Approx(2.0));
}

TEST_CASE("only inputs that require grad receive a gradient", "[elementwise]")
{
    auto a = tg::from_vector<double>({1, 2}, {2}, true);
    auto b = tg::from_vector<double>({3, 4}, {2}, false);
    auto y = a * b;
    y.backward(tg::ones<double>({2}));
    CHECK_THAT(vals(a.grad()), Catch::Matchers::Approx(std::vector<double>{3, 4}));
    CHECK_FALSE(b.grad().defined());
    // Nothing requires grad: nothing is recorded.
    tg::TapeScope scope;
    auto c = b * b + b;
    CHECK_FALSE(c.requires_grad());
    CHECK(tg::current_tape().size() == 0);
}

TEST_CASE("broadcast_shapes follows numpy's trailing alignment", "[elementwise]")
{
    CHECK(tg::broadcast_shapes({4, 1, 3}, {2, 1}, "t") == tg::Shape{4, 2, 3});
    CHECK(tg::broadcast_shapes({}, {2, 3}, "t") == tg::Shape{2, 3});
    CHECK(tg::broadcast_shapes({1}, {}, "t") == tg::Shape{1});
    CHECK(tg::broadcast_shapes({5, 1}, {1, 6}, "t") == tg::Shape{5, 6});
}

TEST_CASE("incompatible shapes throw a ShapeError naming the op and both shapes", "[elementwise]")
{
    auto a = tg::zeros<double>({2, 3});
    auto b = tg::zeros<double>({4});
    auto c = tg::zeros<double>({4, 1, 3});
    auto d = tg::zeros<double>({2, 2});
    REQUIRE_THROWS_AS(a + b, tg::ShapeError);
    REQUIRE_THROWS_WITH(a + b, Contains("tg::add") && Contains("[2, 3]") && Contains("[4]"));
    REQUIRE_THROWS_WITH(a - b, Contains("tg::sub") && Contains("[2, 3]") && Contains("[4]"));
    REQUIRE_THROWS_AS(c * d, tg::ShapeError);
    REQUIRE_THROWS_WITH(c * d, Contains("tg::mul") && Contains("[4, 1, 3]") && Contains("[2, 2]"));
    REQUIRE_THROWS_WITH(b / a, Contains("tg::div") && Contains("[4]") && Contains("[2, 3]"));
    auto f = tg::zeros<float>({3});
    auto g = tg::zeros<float>({2});
    REQUIRE_THROWS_AS(f + g, tg::ShapeError);
    REQUIRE_THROWS_AS(f + g, tg::Error);
}
