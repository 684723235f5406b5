#include "support/support.hpp"

#include <cmath>

namespace tg = tapegrad;
using Catch::Matchers::Contains;
using tg::test::gradcheck_ok;
using tg::test::uniform;
using tg::test::vals;

namespace
{
/// Naive reference: softmax of each line along `dim`, each line gathered by unravelled indices.
std::vector<double> naive_softmax(const xt::xarray<double>& x, std::size_t dim)
{
    const auto& s = x.shape();
    std::size_t stride = 1;
    for (std::size_t d = dim + 1; d < s.size(); ++d)
    {
        stride *= s[d];
    }
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const std::size_t r = (i / stride) % s[dim];
        const std::size_t first = i - r * stride;
        double denom = 0;
        for (std::size_t q = 0; q < s[dim]; ++q)
        {
            denom += std::exp(x.data()[first + q * stride]);
        }
        y[i] = std::exp(x.data()[i]) / denom;
    }
    return y;
}
} // namespace

TEST_CASE("softmax and log_softmax: hand-computed values and gradients", "[softmax]")
{
    // e^x = [1, 2, 3], so softmax = [1/6, 1/3, 1/2].
    const std::vector<double> x0 = {0.0, std::log(2.0), std::log(3.0)};
    auto x = tg::from_vector<double>(x0, {3}, true);
    auto y = tg::softmax(x);
    CHECK_THAT(vals(y), Catch::Matchers::Approx(std::vector<double>{1.0 / 6, 1.0 / 3, 0.5}));
    y.backward(tg::from_vector<double>({1, 0, 0}, {3}));
    // d y_0 / d x_j = y_0 (delta_0j - y_j)
    CHECK_THAT(vals(x.grad()), Catch::Matchers::Approx(std::vector<double>{5.0 / 36, -1.0 / 18, -1.0 / 12}));

    auto z = tg::from_vector<double>(x0, {3}, true);
    auto ly = tg::log_softmax(z);
    CHECK_THAT(vals(ly),
               Catch::Matchers::Approx(std::vector<double>{-std::log(6.0), -std::log(3.0), -std::log(2.0)}));
    ly.backward(tg::from_vector<double>({1, 0, 0}, {3}));
    // d log_softmax_0 / d x_j = delta_0j - softmax_j
    CHECK_THAT(vals(z.grad()), Catch::Matchers::Approx(std::vector<double>{5.0 / 6, -1.0 / 3, -0.5}));
}

TEST_CASE("softmax matches a naive reference along every dim", "[softmax]")
{
    tg::Generator gen(51);
    auto x = uniform({3, 4, 5}, gen, -3.0, 3.0);
    for (std::size_t d = 0; d < 3; ++d)
    {
        INFO("dim " << d);
        const auto want = naive_softmax(x.value(), d);
        CHECK_THAT(vals(tg::softmax(x, static_cast<std::ptrdiff_t>(d))), Catch::Matchers::Approx(want));
        CHECK_THAT(vals(tg::softmax(x, static_cast<std::ptrdiff_t>(d) - 3)), Catch::Matchers::Approx(want));
        std::vector<double> logs;
        for (double v : want)
        {
            logs.push_back(std::log(v));
        }
        CHECK_THAT(vals(tg::log_softmax(x, static_cast<std::ptrdiff_t>(d))), Catch::Matchers::Approx(logs));
    }
}

TEST_CASE("softmax and log_softmax pass gradcheck", "[softmax]")
{
    tg::Generator gen(52);
    const std::vector<std::pair<tg::Shape, std::ptrdiff_t>> cases = {
      {{5}, 0},       {{2, 5}, -1},    {{2, 5}, 0}, {{2, 3, 4}, 1},
      {{2, 3, 4}, 0}, {{2, 3, 4}, -1}, {{}, 0},     {{1, 1}, 1}};
    for (const auto& [shape, dim] : cases)
    {
        INFO("shape " << tg::shape_str(shape) << ", dim " << dim);
        const std::ptrdiff_t d = dim;
        gradcheck_ok([d](const std::vector<tg::Tensor64>& in) { return tg::softmax(in[0], d); },
                     {uniform(shape, gen, -2.0, 2.0)});
        gradcheck_ok([d](const std::vector<tg::Tensor64>& in) { return tg::log_softmax(in[0], d); },
                     {uniform(shape, gen, -2.0, 2.0)});
    }
}

TEMPLATE_TEST_CASE("softmax is stable for logits of +-1000", "[softmax]", float, double)
{
    auto x = tg::from_vector<TestType>({1000, -1000, 0, 1000, 1000, 1000}, {2, 3}, true);
    for (std::ptrdiff_t dim : {1, 0})
    {
        auto y = tg::softmax(x, dim);
        auto ly = tg::log_softmax(x, dim);
        for (double v : vals(y))
        {
            CHECK(std::isfinite(v));
        }
        for (double v : vals(ly))
        {
            CHECK(std::isfinite(v));
        }
        if (dim == 1)
        {
            for (std::size_t r = 0; r < 2; ++r)
            {
                CHECK(y.value()(r, 0) + y.value()(r, 1) + y.value()(r, 2) == Approx(1.0));
            }
            CHECK_THAT(vals(y),
                       Catch::Matchers::Approx(std::vector<double>{1, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3}));
            CHECK_THAT(vals(ly), Catch::Matchers::Approx(std::vector<double>{0, -2000, -1000, -std::log(3.0),
                                                                             -std::log(3.0), -std::log(3.0)})
                                   .margin(1e-4));
        }
        else
        {
            // Columns: [1000, 1000] -> 1/2 each; [-1000, 1000] -> [0, 1]; [0, 1000] -> [0, 1].
            CHECK_THAT(vals(y), Catch::Matchers::Approx(std::vector<double>{0.5, 0, 0, 0.5, 1, 1}));
        }
        y.backward(tg::ones<TestType>({2, 3}));
    }
    for (double g : vals(x.grad()))
    {
        CHECK(std::isfinite(g));
    }
}

TEST_CASE("softmax is invariant to shifting a row", "[softmax]")
{
    tg::Generator gen(53);
    auto x = uniform({4, 6}, gen, -1.0, 1.0, false);
    auto shifted = tg::add_scalar(x, 50.0);
    CHECK_THAT(vals(tg::softmax(shifted)), Catch::Matchers::Approx(vals(tg::softmax(x))));
    // Seeding with ones gives zero: the outputs along the dim always sum to 1.
    auto z = uniform({4, 6}, gen);
    tg::softmax(z, 0).backward(tg::ones<double>({4, 6}));
    for (double g : vals(z.grad()))
    {
        CHECK(g == Approx(0.0).margin(1e-12));
    }
}

TEST_CASE("softmax rejects dims out of range", "[softmax]")
{
    auto x = tg::zeros<float>({2, 3});
    REQUIRE_THROWS_AS(tg::softmax(x, 2), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::softmax(x, 2), Contains("tg::softmax") && Contains("[2, 3]"));
    REQUIRE_THROWS_AS(tg::log_softmax(x, -3), tg::IndexError);
    REQUIRE_THROWS_WITH(tg::log_softmax(x, -3), Contains("tg::log_softmax") && Contains("-3"));
}
