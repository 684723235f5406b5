// tg::gradcheck itself: it must pass right VJPs, catch wrong ones, and tell kinks from bugs.

#include "support/support.hpp"

namespace tg = tapegrad;

namespace
{
/// x * x with a deliberately wrong VJP (forgets the factor 2).
tg::Tensor64 bad_square(const tg::Tensor64& x)
{
    xt::xarray<double> y = x.value() * x.value();
    return tg::record<double>("bad_square", std::move(y), {x}, tg::Saves::inputs({0}),
                              [](tg::BackwardContext<double>& ctx)
                              {
                                  xt::xarray<double> g = ctx.grad_output() * ctx.input(0); // should be 2x
                                  ctx.accumulate(0, std::move(g));
                              });
}

/// Returns its input transposed in the gradient: a permutation bug a plain sum() seed cannot see.
tg::Tensor64 bad_permute(const tg::Tensor64& x)
{
    xt::xarray<double> y = 2.0 * x.value();
    return tg::record<double>("bad_permute", std::move(y), {x}, tg::Saves::nothing(),
                              [](tg::BackwardContext<double>& ctx)
                              {
                                  xt::xarray<double> g = 2.0 * ctx.grad_output();
                                  std::reverse(g.begin(), g.end());
                                  ctx.accumulate(0, std::move(g));
                              });
}

/// |x| written as a custom op whose VJP is sign(x), to exercise the kink detection.
tg::Tensor64 my_abs(const tg::Tensor64& x)
{
    xt::xarray<double> y = xt::abs(x.value());
    return tg::record<double>("my_abs", std::move(y), {x}, tg::Saves::inputs({0}),
                              [](tg::BackwardContext<double>& ctx)
                              {
                                  xt::xarray<double> g = ctx.grad_output() * xt::sign(ctx.input(0));
                                  ctx.accumulate(0, std::move(g));
                              });
}
} // namespace

TEST_CASE("gradcheck: passes a correct VJP and reports what it checked", "[gradcheck]")
{
    tg::Generator gen(1);
    auto a = tg::test::distinct({2, 3}, gen);
    auto b = tg::test::distinct({3}, gen);
    auto r = tg::gradcheck([](const std::vector<tg::Tensor64>& in) { return in[0] * in[1] + in[0]; }, {a, b});
    INFO(r.summary());
    REQUIRE(r.ok);
    REQUIRE(r.checked == 9);
    REQUIRE(r.failures.empty());
}

TEST_CASE("gradcheck: catches a deliberately wrong VJP and names input, element and values", "[gradcheck]")
{
    tg::Generator gen(2);
    auto x = tg::test::distinct({2, 2}, gen, 0.5, 2.0);
    auto r = tg::gradcheck([](const std::vector<tg::Tensor64>& in) { return bad_square(in[0]); }, {x});
    REQUIRE_FALSE(r.ok);
    REQUIRE(r.failures.size() == 4);
    const auto& f = r.failures.front();
    REQUIRE(f.input == 0);
    REQUIRE(f.index == std::vector<std::size_t>{0, 0});
    REQUIRE(f.analytic == Approx(f.numeric / 2.0));
    const auto text = r.summary();
    REQUIRE_THAT(text, Catch::Contains("FAILED") && Catch::Contains("input 0 element [0, 0]") &&
                         Catch::Contains("analytic") && Catch::Contains("numeric") &&
                         Catch::Contains("rel error"));
}

TEST_CASE("gradcheck: the random output weighting catches a permuted gradient", "[gradcheck]")
{
    tg::Generator gen(3);
    auto x = tg::test::distinct({5}, gen);
    auto r = tg::gradcheck([](const std::vector<tg::Tensor64>& in) { return bad_permute(in[0]); }, {x});
    REQUIRE_FALSE(r.ok);
}

TEST_CASE("gradcheck: an input on a kink is reported as such, not as a failure", "[gradcheck]")
{
    auto x = tg::Tensor64(xt::xarray<double>{0.0, 1.5, -2.0}, true);
    auto r = tg::gradcheck([](const std::vector<tg::Tensor64>& in) { return my_abs(in[0]); }, {x});
    INFO(r.summary());
    REQUIRE(r.ok);
    REQUIRE(r.kinks.size() == 1);
    REQUIRE(r.kinks[0].index == std::vector<std::size_t>{0});
    // The slopes of w*|x| at 0 are -|w| and +|w| for the output weight w in +-[0.5, 1.5).
    REQUIRE(r.kinks[0].left_slope == Approx(-r.kinks[0].right_slope));
    REQUIRE(std::abs(r.kinks[0].right_slope) >= 0.5);
    REQUIRE_THAT(r.summary(), Catch::Contains("non-differentiable"));
}

TEST_CASE("gradcheck: a wrong VJP at a kink is still a failure", "[gradcheck]")
{
    // At 0, |x| has one-sided slopes -1 and 1; an analytic value of 5 lies outside them.
    auto x = tg::Tensor64(xt::xarray<double>{0.0}, true);
    auto r = tg::gradcheck(
      [](const std::vector<tg::Tensor64>& in)
      {
          xt::xarray<double> y = xt::abs(in[0].value());
          return tg::record<double>("abs_wrong", std::move(y), {in[0]}, tg::Saves::nothing(),
                                    [](tg::BackwardContext<double>& ctx)
                                    { ctx.accumulate(0, xt::xarray<double>(5.0 * ctx.grad_output())); });
      },
      {x});
    REQUIRE_FALSE(r.ok);
}

TEST_CASE("gradcheck: the numeric side records nothing and the inputs stay untouched", "[gradcheck]")
{
    tg::Generator gen(4);
    auto x = tg::test::distinct({3, 2}, gen);
    auto pending = x * x; // the caller's own graph, still waiting for backward
    const auto size_before = tg::current_tape().size();
    const xt::xarray<double> values_before = x.value();
    auto r = tg::gradcheck([](const std::vector<tg::Tensor64>& in) { return in[0] * in[0] * in[0]; }, {x});
    REQUIRE(r.ok);
    REQUIRE(tg::current_tape().size() == size_before);
    REQUIRE(x.value() == values_before);
    REQUIRE_FALSE(x.grad().defined());
    pending.backward(tg::Tensor64(xt::ones<double>({3, 2})));
    REQUIRE(x.grad().value() == 2.0 * values_before);
}

TEST_CASE("gradcheck: warns when every gradient is zero", "[gradcheck]")
{
    auto x = tg::Tensor64(xt::xarray<double>{1.0, 2.0}, true);
    auto r = tg::gradcheck([](const std::vector<tg::Tensor64>& in) { return in[0] * 0.0; }, {x});
    REQUIRE(r.ok);
    REQUIRE(r.warnings.size() == 1);
}
