#include "support/support.hpp"

namespace tg = tapegrad;
using Catch::Matchers::Contains;
using tg::test::distinct;
using tg::test::gradcheck_ok;
using tg::test::vals;

namespace
{
std::vector<double> iota(std::size_t n)
{
    std::vector<double> v(n);
    std::iota(v.begin(), v.end(), 0.0);
    return v;
}

/// Naive reference: y[..i..j..] = x[..j..i..] by unravelling every output index.
std::vector<double> naive_transpose(const xt::xarray<double>& x, std::size_t d0, std::size_t d1)
{
    tg::Shape in(x.shape().begin(), x.shape().end());
    tg::Shape out = in;
    std::swap(out[d0], out[d1]);
    std::vector<double> y(x.size());
    std::vector<std::size_t> idx(out.size());
    for (std::size_t i = 0; i < y.size(); ++i)
    {
        std::size_t rem = i;
        for (std::size_t d = out.size(); d-- > 0;)
        {
            idx[d] = rem % out[d];
            rem /= out[d];
        }
        std::swap(idx[d0], idx[d1]);
        std::size_t src = 0;
        for (std::size_t d = 0; d < in.size(); ++d)
        {
            src = src * in[d] + idx[d];
        }
        y[i] = x.data()[src];
    }
    return y;
}
} // namespace

TEST_CASE("reshape keeps row-major order and infers -1", "[shape]")
{
    auto x = tg::from_vector<double>(iota(24), {2, 3, 4}, true);
    auto y = tg::reshape(x, {4, -1});
    REQUIRE(y.shape() == tg::Shape{4, 6});
    CHECK(vals(y) == iota(24));
    CHECK(tg::reshape(x, {-1}).shape() == tg::Shape{24});
    CHECK(tg::reshape(x, {2, -1, 3}).shape() == tg::Shape{2, 4, 3});
    CHECK(tg::reshape(tg::ones<double>({1}), {}).shape() == tg::Shape{});
    CHECK(tg::reshape(tg::zeros<double>({0, 4}), {-1, 2}).shape() == tg::Shape{0, 2});
    // The gradient is the output gradient read back in x's shape, element for element.
    y.backward(tg::from_vector<double>(iota(24), {4, 6}));
    REQUIRE(x.grad().shape() == tg::Shape{2, 3, 4});
    CHECK(vals(x.grad()) == iota(24));
}

TEST_CASE("reshape passes gradcheck", "[shape]")
{
    tg::Generator gen(31);
    gradcheck_ok(
      [](const std::vector<tg::Tensor64>& in) {
          return tg::reshape(in[0], {3, -1});
      },
      {distinct({2, 3, 2}, gen)});
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::reshape(in[0], {}); },
                 {distinct({1, 1}, gen)});
    gradcheck_ok(
      [](const std::vector<tg::Tensor64>& in) {
          return tg::reshape(in[0], {1, 1, 1});
      },
      {distinct({}, gen)});
    // A non-uniform function after the reshape, so a permuted gradient would be caught.
    gradcheck_ok([](const std::vector<tg::Tensor64>& in)
                 { return tg::reshape(in[0], {6}) * tg::reshape(in[1], {6}); },
                 {distinct({2, 3}, gen), distinct({3, 2}, gen)});
}

TEST_CASE("reshape rejects shapes of another size", "[shape]")
{
    auto x = tg::zeros<double>({2, 3});
    REQUIRE_THROWS_AS(tg::reshape(x, {4, 2}), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::reshape(x, {4, 2}),
                        Contains("tg::reshape") && Contains("[2, 3]") && Contains("[4, 2]"));
    REQUIRE_THROWS_AS(tg::reshape(x, {4, -1}), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::reshape(x, {4, -1}), Contains("[2, 3]") && Contains("[4, -1]"));
    REQUIRE_THROWS_AS(tg::reshape(x, {0, -1}), tg::ShapeError);
    // With no elements, a -1 next to a 0 could be any size.
    REQUIRE_THROWS_AS(tg::reshape(tg::zeros<double>({0, 4}), {2, 0, -1}), tg::ShapeError);
    REQUIRE_THROWS_AS(tg::reshape(x, {-1, -1}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::reshape(x, {-2, -3}), tg::ValueError);
}

TEST_CASE("flatten merges a range of dimensions through reshape", "[shape]")
{
    tg::TapeScope scope;
    auto x = tg::from_vector<float>(std::vector<float>(120, 1.0f), {2, 3, 4, 5}, true);
    CHECK(tg::flatten(x).shape() == tg::Shape{2, 60});
    CHECK(tg::flatten(x, 0).shape() == tg::Shape{120});
    CHECK(tg::flatten(x, 1, 2).shape() == tg::Shape{2, 12, 5});
    CHECK(tg::flatten(x, -3, -2).shape() == tg::Shape{2, 12, 5});
    CHECK(tg::flatten(x, 3, 3).shape() == tg::Shape{2, 3, 4, 5});
    CHECK(tg::flatten(tg::ones<float>({}), 0).shape() == tg::Shape{1});
    for (const char* name : tg::current_tape().op_names())
    {
        CHECK(std::string(name) == "reshape");
    }
    auto y = tg::flatten(x);
    y.backward(tg::full<float>({2, 60}, 2.0f));
    REQUIRE(x.grad().shape() == tg::Shape{2, 3, 4, 5});
    CHECK(x.grad().value()(1, 2, 3, 4) == 2.0f);
}

TEST_CASE("flatten passes gradcheck and rejects bad dims", "[shape]")
{
    tg::Generator gen(32);
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::flatten(in[0]); },
                 {distinct({2, 3, 2, 2}, gen)});
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::flatten(in[0], 0, 1); },
                 {distinct({2, 3, 2}, gen)});
    auto x = tg::zeros<double>({2, 3, 4});
    REQUIRE_THROWS_AS(tg::flatten(x, 2, 1), tg::ValueError);
    REQUIRE_THROWS_WITH(tg::flatten(x, 2, 1), Contains("tg::flatten") && Contains("[2, 3, 4]"));
    REQUIRE_THROWS_AS(tg::flatten(x, 3), tg::IndexError);
    REQUIRE_THROWS_AS(tg::flatten(x, 0, -4), tg::IndexError);
    REQUIRE_THROWS_AS(tg::flatten(tg::zeros<double>({5})), tg::IndexError);
}

TEST_CASE("transpose swaps two dimensions", "[shape]")
{
    auto m = tg::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, true);
    auto t = tg::transpose(m, 0, 1);
    REQUIRE(t.shape() == tg::Shape{3, 2});
    CHECK(vals(t) == std::vector<double>{1, 4, 2, 5, 3, 6});
    t.backward(tg::from_vector<double>({10, 40, 20, 50, 30, 60}, {3, 2}));
    CHECK(vals(m.grad()) == std::vector<double>{10, 20, 30, 40, 50, 60});
    CHECK(vals(tg::transpose(m, -1, -1)) == std::vector<double>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("transpose matches a naive reference for every pair of dims", "[shape]")
{
    tg::Generator gen(33);
    for (const tg::Shape& s : std::vector<tg::Shape>{{2, 3, 4, 5}, {70, 45}, {3, 33, 2, 40}, {1, 7, 1}})
    {
        auto x = distinct(s, gen);
        for (std::size_t d0 = 0; d0 < s.size(); ++d0)
        {
            for (std::size_t d1 = 0; d1 < s.size(); ++d1)
            {
                INFO("shape " << tg::shape_str(s) << ", dims " << d0 << ", " << d1);
                auto y = tg::transpose(x, static_cast<std::ptrdiff_t>(d0), static_cast<std::ptrdiff_t>(d1));
                CHECK(vals(y) == naive_transpose(x.value(), std::min(d0, d1), std::max(d0, d1)));
            }
        }
    }
    auto f = tg::from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 2, 3});
    CHECK(vals(tg::transpose(f, 2, -2)) == std::vector<double>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("transpose passes gradcheck", "[shape]")
{
    tg::Generator gen(34);
    for (auto [d0, d1] :
         std::vector<std::pair<std::ptrdiff_t, std::ptrdiff_t>>{{0, 1}, {1, 0}, {0, 2}, {-1, 1}, {2, 2}})
    {
        INFO("dims " << d0 << ", " << d1);
        gradcheck_ok([d0 = d0, d1 = d1](const std::vector<tg::Tensor64>& in)
                     { return tg::transpose(in[0], d0, d1); },
                     {distinct({2, 3, 4}, gen)});
    }
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::transpose(in[0], 0, 1); },
                 {distinct({40, 37}, gen)});
}

TEST_CASE("transpose rejects dims out of range", "[shape]")
{
    auto x = tg::zeros<double>({2, 3});
    REQUIRE_THROWS_AS(tg::transpose(x, 0, 2), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::transpose(x, 0, 2),
                        Contains("tg::transpose") && Contains("2") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::transpose(x, -3, 0), tg::IndexError);
    REQUIRE_THROWS_AS(tg::transpose(tg::zeros<double>({}), 0, 0), tg::IndexError);
}
