// Loss functions: gradchecks for every reduction, hand-computed examples, PyTorch's clamping at
// p = 0 and 1, extreme logits, seed 002 (dL/dZ2 = A2 - Y) and the error messages.

#include "support/support.hpp"

#include <cmath>
#include <string>

namespace tg = tapegrad;

namespace
{
const tg::Reduction all_reductions[] = {tg::Reduction::mean, tg::Reduction::sum, tg::Reduction::none};
const tg::Shape gradcheck_shapes[] = {{1}, {5}, {2, 3}, {2, 3, 4}};

tg::Tensor64 t64(std::vector<double> values, const tg::Shape& shape, bool requires_grad = false)
{
    return tg::from_vector<double>(values, shape, requires_grad);
}

tg::Labels random_labels(std::size_t n, std::size_t classes, tg::Generator& gen)
{
    tg::Labels labels(n);
    for (auto& l : labels)
    {
        l = static_cast<std::int64_t>(gen.below(classes));
    }
    return labels;
}

void require_values(const tg::Tensor64& t, const std::vector<double>& expected, double margin = 1e-12)
{
    REQUIRE(t.numel() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
    {
        INFO("element " << i);
        REQUIRE(t.value().data()[i] == Approx(expected[i]).margin(margin));
    }
}

template <class T>
bool all_finite(const tg::BasicTensor<T>& t)
{
    return std::all_of(t.value().begin(), t.value().end(), [](T v) { return std::isfinite(v); });
}

/// Runs `f` and returns the message of the exception of type E it throws (fails if none).
template <class E, class F>
std::string message_of(F f)
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

double sigmoid(double z)
{
    return 1.0 / (1.0 + std::exp(-z));
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Gradchecks

TEST_CASE("binary_cross_entropy: gradcheck wrt p and target, every reduction", "[loss]")
{
    tg::Generator gen(1);
    for (const auto& shape : gradcheck_shapes)
    {
        for (auto r : all_reductions)
        {
            auto p = tg::test::distinct(shape, gen, 0.05, 0.95);
            auto t = tg::test::distinct(shape, gen, 0.0, 1.0);
            REQUIRE_GRADCHECK([r](const std::vector<tg::Tensor64>& in)
                              { return tg::binary_cross_entropy(in[0], in[1], r); },
                              (std::vector<tg::Tensor64>{p, t}));
        }
    }
}

TEST_CASE("binary_cross_entropy_with_logits: gradcheck wrt z and target, every reduction", "[loss]")
{
    tg::Generator gen(2);
    for (const auto& shape : gradcheck_shapes)
    {
        for (auto r : all_reductions)
        {
            auto z = tg::test::distinct(shape, gen, -4.0, 4.0);
            auto t = tg::test::distinct(shape, gen, 0.0, 1.0);
            REQUIRE_GRADCHECK([r](const std::vector<tg::Tensor64>& in)
                              { return tg::binary_cross_entropy_with_logits(in[0], in[1], r); },
                              (std::vector<tg::Tensor64>{z, t}));
        }
    }
}

TEST_CASE("cross_entropy: gradcheck wrt logits, every reduction", "[loss]")
{
    tg::Generator gen(3);
    const tg::Shape shapes[] = {{1, 2}, {4, 3}, {5, 10}};
    for (const auto& shape : shapes)
    {
        for (auto r : all_reductions)
        {
            auto x = tg::test::distinct(shape, gen, -3.0, 3.0);
            const auto labels = random_labels(shape[0], shape[1], gen);
            REQUIRE_GRADCHECK(([&labels, r](const std::vector<tg::Tensor64>& in)
                               { return tg::cross_entropy(in[0], labels, r); }),
                              std::vector<tg::Tensor64>{x});
        }
    }
}

TEST_CASE("nll_loss: gradcheck wrt logp, every reduction", "[loss]")
{
    tg::Generator gen(4);
    const tg::Shape shapes[] = {{1, 2}, {4, 3}, {5, 10}};
    for (const auto& shape : shapes)
    {
        for (auto r : all_reductions)
        {
            auto logp = tg::test::distinct(shape, gen, -5.0, -0.1);
            const auto labels = random_labels(shape[0], shape[1], gen);
            REQUIRE_GRADCHECK(
              ([&labels, r](const std::vector<tg::Tensor64>& in) { return tg::nll_loss(in[0], labels, r); }),
              std::vector<tg::Tensor64>{logp});
        }
    }
}

TEST_CASE("mse_loss: gradcheck wrt both inputs, every reduction", "[loss]")
{
    tg::Generator gen(5);
    for (const auto& shape : gradcheck_shapes)
    {
        for (auto r : all_reductions)
        {
            auto a = tg::test::distinct(shape, gen);
            auto b = tg::test::distinct(shape, gen);
            REQUIRE_GRADCHECK([r](const std::vector<tg::Tensor64>& in)
                              { return tg::mse_loss(in[0], in[1], r); },
                              (std::vector<tg::Tensor64>{a, b}));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Worked examples

TEST_CASE("binary_cross_entropy: hand-computed values and gradients", "[loss]")
{
    SECTION("BCE(0.5, 1) = log 2, dl/dp = (0.5 - 1) / 0.25 = -2")
    {
        auto p = t64({0.5}, {1}, true);
        auto loss = tg::binary_cross_entropy(p, t64({1.0}, {1}));
        REQUIRE(loss.item() == Approx(std::log(2.0)));
        loss.backward();
        REQUIRE(p.grad().item() == Approx(-2.0));
    }
    SECTION("mean over p = [0.2, 0.9], t = [1, 0]: (log 5 + log 10) / 2, dl/dp = [-1/0.2, 1/0.1] / 2")
    {
        auto p = t64({0.2, 0.9}, {2}, true);
        auto loss = tg::binary_cross_entropy(p, t64({1.0, 0.0}, {2}));
        REQUIRE(loss.item() == Approx((std::log(5.0) + std::log(10.0)) / 2));
        loss.backward();
        require_values(p.grad(), {-2.5, 5.0});
    }
    SECTION("a target that requires grad gets dl/dt = log(1 - p) - log(p)")
    {
        auto p = t64({0.2, 0.9}, {2});
        auto t = t64({1.0, 0.0}, {2}, true);
        tg::binary_cross_entropy(p, t, tg::Reduction::sum).backward();
        require_values(t.grad(), {std::log(4.0), -std::log(9.0)});
    }
}

TEST_CASE("binary_cross_entropy: p = 0 and p = 1 give PyTorch's clamped, finite loss and gradient", "[loss]")
{
    // log 0 is clamped to -100, so the wrong class costs 100; the gradient's denominator
    // (1 - p) p is clamped to 1e-12, so dl/dp = (p - t) / 1e-12.
    // (No {a, a, 0, 0} literal here: GCC 12.2 with -march=native on AVX-512 miscompiles
    // std::vector<double>{100, 100, 0, 0} into {100, 100, 100, 100}.)
    auto p = t64({0.0, 0.0, 1.0, 1.0}, {4}, true);
    auto t = t64({1.0, 0.0, 0.0, 1.0}, {4});
    auto loss = tg::binary_cross_entropy(p, t, tg::Reduction::none);
    require_values(loss, {100.0, 0.0, 100.0, 0.0});
    loss.backward(tg::ones64({4}));
    REQUIRE(all_finite(p.grad()));
    require_values(p.grad(), {-1e12, 0.0, 1e12, 0.0});

    auto pf = tg::from_vector<float>({0.0f, 1.0f}, {2}, true);
    auto lf = tg::binary_cross_entropy(pf, tg::from_vector<float>({1.0f, 0.0f}, {2}));
    REQUIRE(lf.item() == Approx(100.0f));
    lf.backward();
    REQUIRE(all_finite(pf.grad()));
    REQUIRE(pf.grad().value()(0) == Approx(-0.5e12f));
    REQUIRE(pf.grad().value()(1) == Approx(0.5e12f));
}

TEST_CASE("binary_cross_entropy_with_logits: exact and finite at logits of +-100 and +-1000", "[loss]")
{
    // l = max(z, 0) - z t + log(1 + e^-|z|), and log(1 + e^-100) = e^-100 to 44 digits.
    auto z = t64({100, -100, 1000, -1000, 100, -100, 1000, -1000}, {8}, true);
    auto t = t64({0, 0, 0, 0, 1, 1, 1, 1}, {8});
    auto loss = tg::binary_cross_entropy_with_logits(z, t, tg::Reduction::none);
    const double e100 = std::exp(-100.0);
    require_values(loss, {100.0, e100, 1000.0, 0.0, e100, 100.0, 0.0, 1000.0}, 0.0);
    REQUIRE(loss.value()(1) == Approx(e100).epsilon(1e-12));
    loss.backward(tg::ones64({8}));
    REQUIRE(all_finite(z.grad()));
    // sigmoid(z) - t, with sigmoid(100) = 1 - e^-100 and sigmoid(-100) = e^-100
    require_values(z.grad(), {1.0, e100, 1.0, 0.0, -e100, e100 - 1.0, 0.0, -1.0}, 1e-15);

    auto zf = tg::from_vector<float>({100, -100, 1000, -1000}, {4}, true);
    auto lf = tg::binary_cross_entropy_with_logits(zf, tg::from_vector<float>({0, 1, 1, 0}, {4}),
                                                   tg::Reduction::none);
    REQUIRE(all_finite(lf));
    REQUIRE(lf.value()(0) == 100.0f);
    REQUIRE(lf.value()(1) == 100.0f);
    REQUIRE(lf.value()(2) == 0.0f);
    REQUIRE(lf.value()(3) == 0.0f);
    lf.backward(tg::ones<float>({4}));
    REQUIRE(all_finite(zf.grad()));
}

TEST_CASE("binary_cross_entropy_with_logits: seed 002, dL/dZ2 = A2 - Y for sigmoid + BCE", "[loss]")
{
    auto z = t64({-1.5, 0.3, 2.0, -0.2}, {4}, true);
    const std::vector<double> y = {1.0, 0.0, 1.0, 0.0};
    auto loss = tg::binary_cross_entropy_with_logits(z, t64(y, {4}), tg::Reduction::sum);
    loss.backward();
    double expected_loss = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i)
    {
        const double a2 = sigmoid(z.value()(i));
        INFO("element " << i);
        REQUIRE(z.grad().value()(i) == Approx(a2 - y[i]));
        expected_loss += -(y[i] * std::log(a2) + (1 - y[i]) * std::log(1 - a2));
    }
    REQUIRE(loss.item() == Approx(expected_loss));
}

TEST_CASE("binary_cross_entropy_with_logits equals binary_cross_entropy of sigmoid(z)", "[loss]")
{
    tg::Generator gen(6);
    auto z = tg::test::distinct({3, 4}, gen, -5.0, 5.0, false);
    auto t = tg::test::distinct({3, 4}, gen, 0.0, 1.0, false);
    xt::xarray<double> a = 1.0 / (1.0 + xt::exp(-z.value()));
    auto with_logits = tg::binary_cross_entropy_with_logits(z, t, tg::Reduction::none);
    auto plain = tg::binary_cross_entropy(tg::Tensor64(a), t, tg::Reduction::none);
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        REQUIRE(with_logits.value().data()[i] == Approx(plain.value().data()[i]).epsilon(1e-10));
    }
}

TEST_CASE("cross_entropy: hand-computed values and gradients", "[loss]")
{
    SECTION("logits [[0, 0]], label 0: log 2, gradient [-0.5, 0.5]")
    {
        auto x = t64({0.0, 0.0}, {1, 2}, true);
        auto loss = tg::cross_entropy(x, {0});
        REQUIRE(loss.item() == Approx(std::log(2.0)));
        loss.backward();
        require_values(x.grad(), {-0.5, 0.5});
    }
    SECTION("two rows, sum: softmax - onehot per row")
    {
        auto x = t64({1, 2, 3, 1, 1, 1}, {2, 3}, true);
        auto loss = tg::cross_entropy(x, {2, 0}, tg::Reduction::sum);
        const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
        REQUIRE(loss.item() == Approx(std::log(z) - 3.0 + std::log(3.0)));
        loss.backward();
        require_values(x.grad(), {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z - 1.0,
                                  1.0 / 3 - 1.0, 1.0 / 3, 1.0 / 3});
    }
    SECTION("mean divides by N")
    {
        auto x = t64({0, 0, 0, 0}, {2, 2}, true);
        tg::cross_entropy(x, {1, 0}).backward();
        require_values(x.grad(), {0.25, -0.25, -0.25, 0.25});
    }
}

TEST_CASE("cross_entropy: finite and exact for logits of +-1000", "[loss]")
{
    auto x = t64({1000, -1000, -1000, 1000}, {2, 2}, true);
    auto loss = tg::cross_entropy(x, {0, 0}, tg::Reduction::none);
    require_values(loss, {0.0, 2000.0}, 0.0);
    loss.backward(tg::ones64({2}));
    require_values(x.grad(), {0.0, 0.0, -1.0, 1.0}, 0.0);

    auto xf = tg::from_vector<float>({1000, -1000, -1000, 1000}, {2, 2}, true);
    auto lf = tg::cross_entropy(xf, {0, 0});
    REQUIRE(lf.item() == 1000.0f);
    lf.backward();
    REQUIRE(all_finite(xf.grad()));
}

TEST_CASE("cross_entropy equals nll_loss of an independently computed log_softmax", "[loss]")
{
    tg::Generator gen(7);
    auto x = tg::test::distinct({4, 5}, gen, -3.0, 3.0, false);
    const auto labels = random_labels(4, 5, gen);
    xt::xarray<double> logp = x.value();
    for (std::size_t n = 0; n < 4; ++n)
    {
        double s = 0.0;
        for (std::size_t c = 0; c < 5; ++c)
        {
            s += std::exp(x.value()(n, c));
        }
        for (std::size_t c = 0; c < 5; ++c)
        {
            logp(n, c) -= std::log(s);
        }
    }
    auto ce = tg::cross_entropy(x, labels, tg::Reduction::none);
    auto nll = tg::nll_loss(tg::Tensor64(logp), labels, tg::Reduction::none);
    for (std::size_t n = 0; n < 4; ++n)
    {
        REQUIRE(ce.value()(n) == Approx(nll.value()(n)).epsilon(1e-12));
    }
}

TEST_CASE("nll_loss: hand-computed values and gradients", "[loss]")
{
    auto logp = t64({-1, -2, -3, -4}, {2, 2}, true);
    auto mean = tg::nll_loss(logp, {1, 0});
    REQUIRE(mean.item() == Approx(2.5));
    mean.backward();
    require_values(logp.grad(), {0.0, -0.5, -0.5, 0.0}, 0.0);

    require_values(tg::nll_loss(logp, {1, 0}, tg::Reduction::none), {2.0, 3.0}, 0.0);
    REQUIRE(tg::nll_loss(logp, {0, 1}, tg::Reduction::sum).item() == 5.0);
}

TEST_CASE("mse_loss: hand-computed values and gradients", "[loss]")
{
    auto a = t64({1, 2}, {2}, true);
    auto b = t64({0, 0}, {2}, true);
    auto mean = tg::mse_loss(a, b);
    REQUIRE(mean.item() == 2.5);
    mean.backward();
    require_values(a.grad(), {1.0, 2.0}, 0.0);
    require_values(b.grad(), {-1.0, -2.0}, 0.0);

    a.zero_grad();
    auto sum = tg::mse_loss(a, b, tg::Reduction::sum);
    REQUIRE(sum.item() == 5.0);
    sum.backward();
    require_values(a.grad(), {2.0, 4.0}, 0.0);

    require_values(tg::mse_loss(a, b, tg::Reduction::none), {1.0, 4.0}, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Reductions, grad routing, float32

TEST_CASE("loss reductions: mean and sum are 0-d, none keeps one loss per element", "[loss]")
{
    tg::Generator gen(8);
    auto p = tg::test::distinct({2, 3}, gen, 0.1, 0.9, false);
    auto t = tg::test::distinct({2, 3}, gen, 0.0, 1.0, false);
    auto logits = tg::test::distinct({4, 3}, gen, -1.0, 1.0, false);
    const tg::Labels labels = {0, 2, 1, 2};
    for (auto r : {tg::Reduction::mean, tg::Reduction::sum})
    {
        for (const auto& loss :
             {tg::binary_cross_entropy(p, t, r), tg::binary_cross_entropy_with_logits(p, t, r),
              tg::mse_loss(p, t, r), tg::cross_entropy(logits, labels, r), tg::nll_loss(logits, labels, r)})
        {
            REQUIRE(loss.dim() == 0);
            REQUIRE(loss.numel() == 1);
        }
    }
    const auto none = tg::Reduction::none;
    REQUIRE(tg::binary_cross_entropy(p, t, none).shape() == tg::Shape{2, 3});
    REQUIRE(tg::binary_cross_entropy_with_logits(p, t, none).shape() == tg::Shape{2, 3});
    REQUIRE(tg::mse_loss(p, t, none).shape() == tg::Shape{2, 3});
    REQUIRE(tg::cross_entropy(logits, labels, none).shape() == tg::Shape{4});
    REQUIRE(tg::nll_loss(logits, labels, none).shape() == tg::Shape{4});

    // mean = sum / numel, and sum = the sum of the per-element losses
    const auto per = tg::binary_cross_entropy(p, t, none);
    const double total = xt::sum(per.value())();
    REQUIRE(tg::binary_cross_entropy(p, t, tg::Reduction::sum).item() == Approx(total));
    REQUIRE(tg::binary_cross_entropy(p, t).item() == Approx(total / 6));
}

TEST_CASE("losses send no gradient to a target that does not require grad", "[loss]")
{
    auto p = t64({0.3, 0.6}, {2}, true);
    auto t = t64({1.0, 0.0}, {2});
    tg::binary_cross_entropy(p, t).backward();
    tg::binary_cross_entropy_with_logits(p, t).backward();
    tg::mse_loss(p, t).backward();
    REQUIRE(p.grad().defined());
    REQUIRE_FALSE(t.grad().defined());
}

TEST_CASE("losses in float32 agree with float64", "[loss]")
{
    tg::Generator gen(9);
    auto x64 = tg::test::distinct({3, 4}, gen, -2.0, 2.0);
    auto p64 = tg::test::distinct({3, 4}, gen, 0.1, 0.9);
    auto x = tg::cast<float>(x64).set_requires_grad();
    auto p = tg::cast<float>(p64).set_requires_grad();
    const tg::Labels labels = {3, 0, 1};

    auto ce = tg::cross_entropy(x, labels);
    auto ce64 = tg::cross_entropy(x64, labels);
    REQUIRE(ce.item() == Approx(ce64.item()).epsilon(1e-5));
    ce.backward();
    ce64.backward();
    for (std::size_t i = 0; i < 12; ++i)
    {
        REQUIRE(x.grad().value().data()[i] == Approx(x64.grad().value().data()[i]).margin(1e-6));
    }

    auto bce = tg::binary_cross_entropy(p, tg::cast<float>(p64));
    auto bce64 = tg::binary_cross_entropy(p64, p64.detach());
    REQUIRE(bce.item() == Approx(bce64.item()).epsilon(1e-5));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST_CASE("binary_cross_entropy: mismatched shapes and p outside 0..1 throw, naming the op", "[loss]")
{
    auto p = tg::full64({2, 3}, 0.5);
    const auto shape_msg = message_of<tg::ShapeError>(
      [&] {
          tg::binary_cross_entropy(p, tg::full64({3, 2}, 1.0));
      });
    REQUIRE_THAT(shape_msg, Catch::Contains("tg::binary_cross_entropy") && Catch::Contains("[2, 3]") &&
                              Catch::Contains("[3, 2]"));
    // broadcastable shapes are still rejected
    REQUIRE_THROWS_AS(tg::binary_cross_entropy(p, tg::full64({3}, 1.0)), tg::ShapeError);

    auto bad = t64({0.5, 1.5}, {2});
    const auto value_msg =
      message_of<tg::ValueError>([&] { tg::binary_cross_entropy(bad, tg::zeros64({2})); });
    REQUIRE_THAT(value_msg, Catch::Contains("tg::binary_cross_entropy") && Catch::Contains("1.5"));
    REQUIRE_THROWS_AS(tg::binary_cross_entropy(t64({-0.25}, {1}), tg::zeros64({1})), tg::ValueError);
    REQUIRE_THROWS_AS(tg::binary_cross_entropy(t64({std::nan("")}, {1}), tg::zeros64({1})), tg::ValueError);
}

TEST_CASE("binary_cross_entropy_with_logits and mse_loss: mismatched shapes throw ShapeError", "[loss]")
{
    const auto a = tg::zeros64({2, 3});
    const auto b = tg::zeros64({3});
    const auto logits_msg = message_of<tg::ShapeError>([&] { tg::binary_cross_entropy_with_logits(a, b); });
    REQUIRE_THAT(logits_msg, Catch::Contains("tg::binary_cross_entropy_with_logits") &&
                               Catch::Contains("[2, 3]") && Catch::Contains("[3]"));
    const auto mse_msg = message_of<tg::ShapeError>([&] { tg::mse_loss(a, b); });
    REQUIRE_THAT(mse_msg,
                 Catch::Contains("tg::mse_loss") && Catch::Contains("[2, 3]") && Catch::Contains("[3]"));
}

TEST_CASE("cross_entropy and nll_loss: bad labels and shapes throw, naming op, label, index and C", "[loss]")
{
    const auto x = tg::zeros64({2, 3});
    const auto msg = message_of<tg::ValueError>([&] { tg::cross_entropy(x, {0, 3}); });
    REQUIRE_THAT(msg, Catch::Contains("tg::cross_entropy") && Catch::Contains("label 3") &&
                        Catch::Contains("index 1") && Catch::Contains("C = 3"));
    REQUIRE_THROWS_AS(tg::cross_entropy(x, {-1, 0}), tg::ValueError);
    const auto nll_msg = message_of<tg::ValueError>([&] { tg::nll_loss(x, {7, 0}); });
    REQUIRE_THAT(nll_msg, Catch::Contains("tg::nll_loss") && Catch::Contains("label 7") &&
                            Catch::Contains("index 0") && Catch::Contains("C = 3"));

    const auto count_msg = message_of<tg::ShapeError>([&] { tg::cross_entropy(x, {0, 1, 2}); });
    REQUIRE_THAT(count_msg, Catch::Contains("tg::cross_entropy") && Catch::Contains("[2, 3]") &&
                              Catch::Contains("3 labels"));
    REQUIRE_THROWS_AS(tg::nll_loss(x, {0}), tg::ShapeError);

    const auto rank_msg = message_of<tg::ShapeError>([&] { tg::cross_entropy(tg::zeros64({6}), {0}); });
    REQUIRE_THAT(rank_msg, Catch::Contains("tg::cross_entropy") && Catch::Contains("[6]"));
    REQUIRE_THROWS_AS(tg::nll_loss(tg::zeros64({1, 2, 3}), {0}), tg::ShapeError);
}

TEST_CASE("cross_entropy and nll_loss: an empty batch gives an empty per-sample loss and a NaN mean",
          "[loss]")
{
    auto x = tg::zeros64({0, 3}, true);
    auto none = tg::cross_entropy(x, {}, tg::Reduction::none);
    REQUIRE(none.shape() == tg::Shape{0});
    none.backward(tg::zeros64({0}));
    REQUIRE(x.grad().shape() == tg::Shape{0, 3});
    REQUIRE(std::isnan(tg::cross_entropy(x, {}).item())); // 0 / 0, as in PyTorch
    REQUIRE(tg::nll_loss(x, {}, tg::Reduction::sum).item() == 0.0);
}
