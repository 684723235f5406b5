// Optimisers and schedules against hand-computed updates.

#include "support/support.hpp"

namespace tg = tapegrad;

namespace
{
tg::Tensor param(std::vector<float> v)
{
    const std::size_t n = v.size();
    return tg::from_vector(v, {n}, true);
}

/// Sets p.grad() to `g` through a real backward of sum(p * g).
void set_grad(tg::Tensor& p, std::vector<float> g)
{
    p.zero_grad();
    const std::size_t n = g.size();
    auto y = p * tg::from_vector(g, {n});
    y.backward(tg::ones({n}));
}
} // namespace

TEST_CASE("optim: SGD with momentum, dampening, weight decay and nesterov follows torch.optim", "[optim]")
{
    auto p = param({1.0f, -2.0f});
    tg::optim::SGD sgd({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.5});
    set_grad(p, {1.0f, 1.0f});
    sgd.step();
    // d = g + 0.5 p = (1.5, 0); b = d; p -= 0.1 b
    REQUIRE(p.value()(0) == Approx(1.0 - 0.15));
    REQUIRE(p.value()(1) == Approx(-2.0));
    set_grad(p, {1.0f, 1.0f});
    sgd.step();
    // d = 1 + 0.5*0.85 = 1.425; b = 0.9*1.5 + 1.425 = 2.775; p = 0.85 - 0.2775
    REQUIRE(p.value()(0) == Approx(0.85 - 0.2775));

    auto q = param({1.0f});
    tg::optim::SGD nes({q}, {.lr = 0.1, .momentum = 0.5, .nesterov = true});
    set_grad(q, {2.0f});
    nes.step(); // b = 2; update = 2 + 0.5*2 = 3
    REQUIRE(q.value()(0) == Approx(1.0 - 0.3));
    REQUIRE_THROWS_AS(tg::optim::SGD({q}, {.lr = 0.1, .nesterov = true}), tg::ValueError);
}

TEST_CASE("optim: Adam's first step moves each weight by lr against its gradient's sign", "[optim]")
{
    auto p = param({1.0f, 1.0f});
    tg::optim::Adam adam({p}, {.lr = 0.01});
    set_grad(p, {3.0f, -0.5f});
    adam.step();
    REQUIRE(p.value()(0) == Approx(0.99).epsilon(1e-5));
    REQUIRE(p.value()(1) == Approx(1.01).epsilon(1e-5));
    set_grad(p, {1.0f, 1.0f});
    adam.step();
    // m = 0.9*0.1*3 ... computed by hand for element 0: m1 = 0.3, v1 = 0.009; m2 = 0.27 + 0.1 = 0.37,
    // v2 = 0.008991 + 0.001 = 0.009991; mhat = 0.37/0.19, vhat = 0.009991/0.001999
    const double mhat = 0.37 / 0.19;
    const double vhat = 0.009991 / (1.0 - 0.999 * 0.999);
    REQUIRE(p.value()(0) == Approx(0.99 - 0.01 * mhat / (std::sqrt(vhat) + 1e-8)).epsilon(1e-5));
}

TEST_CASE("optim: AdamW decays weights decoupled from the gradient", "[optim]")
{
    auto p = param({2.0f});
    tg::optim::AdamW adamw({p}, {.lr = 0.1, .weight_decay = 0.5});
    set_grad(p, {1.0f});
    adamw.step();
    // p = 2 - 0.1*0.5*2 = 1.9, then the Adam step of -0.1
    REQUIRE(p.value()(0) == Approx(1.8).epsilon(1e-5));
}

TEST_CASE("optim: steps record nothing, skip parameters without gradients, and bump versions", "[optim]")
{
    auto p = param({1.0f});
    auto untouched = param({5.0f});
    tg::optim::SGD sgd({p, untouched}, {.lr = 1.0});
    set_grad(p, {1.0f});
    const auto size = tg::current_tape().size();
    const auto version = p.version();
    sgd.step();
    REQUIRE(tg::current_tape().size() == size);
    REQUIRE(p.value()(0) == 0.0f);
    REQUIRE(untouched.value()(0) == 5.0f);
    REQUIRE(p.version() > version);
}

TEST_CASE("optim: stepping before backward is caught by the saved-version check", "[optim]")
{
    auto w = param({2.0f});
    tg::optim::SGD sgd({w}, {.lr = 0.1});
    set_grad(w, {1.0f});
    auto loss = w * w;
    sgd.step(); // modifies w, which loss's mul saved
    REQUIRE_THROWS_AS(loss.backward(tg::ones({1})), tg::AutogradError);
}

TEST_CASE("optim: state_dict round-trips momentum and rejects mismatches", "[optim]")
{
    auto p = param({1.0f, 2.0f});
    tg::optim::SGD a({p}, {.lr = 0.1, .momentum = 0.9});
    set_grad(p, {1.0f, 1.0f});
    a.step();
    auto state = a.state_dict();
    REQUIRE(state.size() == 2);
    REQUIRE(state[1].first == "0.momentum_buffer");

    auto q = param({1.0f, 2.0f});
    tg::optim::SGD b({q}, {.lr = 0.1, .momentum = 0.9});
    b.load_state_dict(state);
    REQUIRE(b.steps() == 1);
    set_grad(p, {1.0f, 1.0f});
    set_grad(q, {1.0f, 1.0f});
    q.mutable_value() = p.value();
    a.step();
    b.step();
    REQUIRE(p.value() == q.value());

    auto r = param({1.0f});
    tg::optim::SGD c({r}, {.lr = 0.1, .momentum = 0.9});
    REQUIRE_THROWS_AS(c.load_state_dict(state), tg::ValueError);
}

TEST_CASE("optim: StepLR and CosineAnnealingLR schedules", "[optim]")
{
    auto p = param({1.0f});
    tg::optim::SGD sgd({p}, {.lr = 1.0});
    tg::optim::StepLR step(sgd, 2, 0.5);
    step.step();
    REQUIRE(sgd.lr() == Approx(1.0));
    step.step();
    REQUIRE(sgd.lr() == Approx(0.5));
    step.step();
    step.step();
    REQUIRE(sgd.lr() == Approx(0.25));

    tg::optim::SGD sgd2({p}, {.lr = 1.0});
    tg::optim::CosineAnnealingLR cos(sgd2, 4, 0.0);
    cos.step();
    REQUIRE(sgd2.lr() == Approx((1.0 + std::cos(M_PI / 4)) / 2));
    cos.step();
    REQUIRE(sgd2.lr() == Approx(0.5));
    cos.step();
    cos.step();
    REQUIRE(sgd2.lr() == Approx(0.0).margin(1e-12));
    REQUIRE_THROWS_AS(tg::optim::StepLR(sgd, 0), tg::ValueError);
}
