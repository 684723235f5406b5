// Engine semantics of the tape: accumulation, release, retain_graph, grad mode, errors.

#include "support/support.hpp"

#include <thread>

namespace tg = tapegrad;

namespace
{
tg::Tensor64 scalar(double v, bool rg = true)
{
    return tg::Tensor64(xt::xarray<double>{v}, rg);
}
} // namespace

TEST_CASE("tape: fan-out accumulates into a leaf used twice", "[tape]")
{
    auto x = scalar(3.0);
    auto y = x * x + x; // dy/dx = 2x + 1
    y.backward();
    REQUIRE(x.grad().item() == Approx(7.0));
}

TEST_CASE("tape: diamond graph sums both paths", "[tape]")
{
    auto x = scalar(2.0);
    auto a = x * scalar(3.0, false); // 3x
    auto b = x * x;                  // x^2
    auto y = a * b;                  // 3x^3 -> dy/dx = 9x^2 = 36
    y.backward();
    REQUIRE(x.grad().item() == Approx(36.0));
}

TEST_CASE("tape: a 100000-op chain runs backward without recursion", "[tape]")
{
    tg::current_tape().clear(); // other test cases in this process may have left ops behind
    auto x = scalar(1.0);
    auto y = x;
    for (int i = 0; i < 100000; ++i)
    {
        y = y + scalar(1e-6, false);
    }
    REQUIRE(tg::current_tape().size() == 100000);
    y.backward();
    REQUIRE(x.grad().item() == 1.0);
    REQUIRE(tg::current_tape().size() == 0);
}

TEST_CASE("tape: the tape is empty after backward and nothing is recorded under NoGradGuard", "[tape]")
{
    tg::current_tape().clear();
    auto x = scalar(2.0);
    const auto before = tg::current_tape().size();
    {
        tg::NoGradGuard guard;
        auto y = x * x;
        REQUIRE_FALSE(y.requires_grad());
        REQUIRE(tg::current_tape().size() == before);
    }
    auto z = x * x;
    REQUIRE(tg::current_tape().size() == before + 1);
    z.backward();
    REQUIRE(tg::current_tape().size() == 0);
}

TEST_CASE("tape: nothing is recorded when no input requires grad", "[tape]")
{
    auto a = scalar(2.0, false);
    auto b = scalar(5.0, false);
    const auto before = tg::current_tape().size();
    auto c = a * b + a;
    REQUIRE_FALSE(c.requires_grad());
    REQUIRE(c.is_leaf());
    REQUIRE(tg::current_tape().size() == before);
}

TEST_CASE("tape: leaf gradients accumulate across two backward calls until zero_grad", "[tape]")
{
    auto x = scalar(3.0);
    (x * x).backward();
    (x * x).backward();
    REQUIRE(x.grad().item() == Approx(12.0));
    x.zero_grad();
    REQUIRE(x.grad().item() == 0.0);
    (x * scalar(2.0, false)).backward();
    REQUIRE(x.grad().item() == Approx(2.0));
}

TEST_CASE("tape: an input that does not take part gets no gradient", "[tape]")
{
    auto x = scalar(1.0);
    auto unused = scalar(4.0);
    auto frozen = scalar(2.0, false);
    auto y = x * frozen;
    y.backward();
    REQUIRE(x.grad().defined());
    REQUIRE_FALSE(unused.grad().defined());
    REQUIRE_FALSE(frozen.grad().defined());
}

TEST_CASE("tape: retain_graph allows a second backward, without it the second throws", "[tape]")
{
    auto x = scalar(2.0);
    auto y = x * x * x; // 3x^2 = 12
    y.backward({.retain_graph = true});
    REQUIRE(x.grad().item() == Approx(12.0));
    y.backward();
    REQUIRE(x.grad().item() == Approx(24.0));
    try
    {
        y.backward();
        FAIL("a second backward through released ops must throw");
    }
    catch (const tg::AutogradError& e)
    {
        REQUIRE_THAT(e.what(), Catch::Contains("retain_graph"));
    }
}

TEST_CASE("tape: backward through an intermediate whose producer was released throws", "[tape]")
{
    auto x = scalar(2.0);
    auto h = x * x;
    auto l1 = h * scalar(3.0, false);
    l1.backward();
    auto l2 = h * scalar(5.0, false); // h's producer is gone
    REQUIRE_THROWS_AS(l2.backward(), tg::AutogradError);
}

TEST_CASE("tape: backward on a non-scalar needs a seed of the right shape", "[tape]")
{
    auto x = tg::Tensor64(xt::xarray<double>{1.0, 2.0, 3.0}, true);
    auto y = x * x;
    REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("[3]") && Catch::Contains("seed"));
    REQUIRE_THROWS_AS(y.backward(tg::Tensor64(xt::xarray<double>{1.0, 1.0})), tg::ShapeError);
    y.backward(tg::Tensor64(xt::xarray<double>{1.0, 10.0, 100.0}));
    REQUIRE(x.grad().value() == xt::xarray<double>{2.0, 40.0, 600.0});
}

TEST_CASE("tape: backward on a tensor that requires no grad throws", "[tape]")
{
    auto c = scalar(1.0, false) * scalar(2.0, false);
    REQUIRE_THROWS_AS(c.backward(), tg::AutogradError);
}

TEST_CASE("tape: item() on a multi-element tensor throws IndexError naming the shape", "[tape]")
{
    auto t = tg::zeros<float>({2, 3});
    REQUIRE_THROWS_AS(t.item(), tg::IndexError);
    REQUIRE_THROWS_WITH(t.item(), Catch::Contains("[2, 3]"));
}

TEST_CASE("tape: detach shares values and cuts the graph", "[tape]")
{
    auto x = scalar(3.0);
    auto y = x * x;
    auto d = y.detach();
    REQUIRE(d.is_leaf());
    REQUIRE_FALSE(d.requires_grad());
    REQUIRE(d.item() == 9.0);
    auto z = d * x; // gradient flows to x only through the second factor: dz/dx = d = 9
    z.backward();
    REQUIRE(x.grad().item() == Approx(9.0));
    d.mutable_value()(0) = 7.0; // shares storage with y, as in PyTorch
    REQUIRE(y.item() == 7.0);
}

TEST_CASE("tape: a saved tensor modified in place before backward is detected", "[tape]")
{
    auto w = scalar(2.0);
    auto x = scalar(5.0);
    auto y = w * x; // mul saves both inputs
    x.mutable_value()(0) = 100.0;
    try
    {
        y.backward();
        FAIL("backward must refuse to use the modified values");
    }
    catch (const tg::AutogradError& e)
    {
        REQUIRE_THAT(e.what(), Catch::Contains("mul") && Catch::Contains("modified in place"));
    }
    // An op that saves nothing does not care.
    auto a = scalar(1.0);
    auto b = scalar(2.0);
    auto s = a + b;
    b.mutable_value()(0) = 4.0;
    s.backward();
    REQUIRE(a.grad().item() == 1.0);
}

TEST_CASE("tape: recording is thread-local", "[tape]")
{
    auto x = scalar(2.0);
    const auto main_size = tg::current_tape().size();
    std::size_t worker_size = 0;
    double worker_grad = 0.0;
    std::thread worker(
      [&]
      {
          auto xw = scalar(4.0);
          auto y = xw * xw;
          worker_size = tg::current_tape().size();
          y.backward();
          worker_grad = xw.grad().item();
      });
    worker.join();
    REQUIRE(worker_size == 1);
    REQUIRE(worker_grad == Approx(8.0));
    REQUIRE(tg::current_tape().size() == main_size);
}

TEST_CASE("tape: NoGradGuard is thread-local and nests", "[tape]")
{
    REQUIRE(tg::GradMode::is_enabled());
    {
        tg::NoGradGuard outer;
        {
            tg::NoGradGuard inner;
            REQUIRE_FALSE(tg::GradMode::is_enabled());
            bool other_thread_enabled = false;
            std::thread t([&] { other_thread_enabled = tg::GradMode::is_enabled(); });
            t.join();
            REQUIRE(other_thread_enabled);
        }
        REQUIRE_FALSE(tg::GradMode::is_enabled());
        tg::EnableGradGuard on;
        REQUIRE(tg::GradMode::is_enabled());
    }
    REQUIRE(tg::GradMode::is_enabled());
}

TEST_CASE("tape: ops recorded after the root survive its backward", "[tape]")
{
    tg::current_tape().clear();
    auto x = scalar(2.0);
    auto l1 = x * x;
    auto later = x * scalar(3.0, false);
    l1.backward();
    REQUIRE(tg::current_tape().size() == 1);
    later.backward();
    REQUIRE(x.grad().item() == Approx(4.0 + 3.0));
}

TEST_CASE("tape: ops recorded after the root survive its backward across many node-memory chunks", "[tape]")
{
    // Thousands of nodes span several arena chunks; the chunk shared by the released and the
    // surviving ops must not be reused by ops recorded in between.
    tg::current_tape().clear();
    auto x = scalar(1.0);
    const auto one = scalar(1.0, false);
    const auto two = scalar(2.0, false);
    auto a = x;
    for (int i = 0; i < 3000; ++i)
    {
        a = a + one;
    }
    auto b = x;
    for (int i = 0; i < 3000; ++i)
    {
        b = b * one;
    }
    auto h = b * two;
    auto later = h * h; // an intermediate used twice: d(4x^2)/dx = 8x = 8
    a.backward();
    REQUIRE(tg::current_tape().size() == 3002);
    REQUIRE(x.grad().item() == 1.0);
    auto c = x;
    for (int i = 0; i < 3000; ++i)
    {
        c = c + one;
    }
    later.backward();
    REQUIRE(x.grad().item() == Approx(1.0 + 8.0));
    REQUIRE(tg::current_tape().size() == 3000);
    c.backward();
    REQUIRE(x.grad().item() == Approx(1.0 + 8.0 + 1.0));
    REQUIRE(tg::current_tape().size() == 0);
}

TEST_CASE("tape: a failing VJP leaves the tape usable", "[tape]")
{
    tg::current_tape().clear();
    auto x = scalar(2.0);
    auto y = x * scalar(3.0, false);
    x.mutable_value()(0) = 1.0; // invalidates y's saved input
    REQUIRE_THROWS_AS(y.backward(), tg::AutogradError);
    REQUIRE(tg::current_tape().size() == 0);
    auto z = x * x;
    z.backward();
    REQUIRE(x.grad().item() == Approx(2.0));
}

TEST_CASE("tape: float32 and float64 tensors coexist in one program", "[tape]")
{
    tg::Tensor a(xt::xarray<float>{1.5f}, true);
    tg::Tensor64 b(xt::xarray<double>{2.5}, true);
    (a * a).backward();
    (b * b).backward();
    REQUIRE(a.grad().item() == Approx(3.0f));
    REQUIRE(b.grad().item() == Approx(5.0));
    auto c = tg::cast<double>(a);
    REQUIRE(c.item() == 1.5);
}

TEST_CASE("tensor: factories, accessors and printing", "[tensor]")
{
    tg::Generator gen(7);
    auto z = tg::zeros({2, 3});
    REQUIRE(z.shape() == tg::Shape{2, 3});
    REQUIRE(z.numel() == 6);
    REQUIRE(z.dim() == 2);
    REQUIRE(z.size(-1) == 3);
    REQUIRE_THROWS_AS(z.size(2), tg::IndexError);
    REQUIRE(tg::ones<double>({4}).value() == xt::xarray<double>{1, 1, 1, 1});
    REQUIRE(tg::full({1}, 2.5f).item() == 2.5f);
    auto v = tg::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(v.value()(1, 0) == 4.0f);
    REQUIRE_THROWS_AS(tg::from_vector<float>({1, 2, 3}, {2, 2}), tg::ShapeError);
    auto r1 = tg::randn({1000}, gen);
    tg::Generator gen2(7);
    auto r2 = tg::randn({1000}, gen2);
    REQUIRE(r1.value() == r2.value());
    double mean = 0.0;
    for (float f : r1.value())
    {
        mean += f;
    }
    REQUIRE(std::abs(mean / 1000.0) < 0.1);
    auto u = tg::rand64({100}, gen);
    REQUIRE(xt::amin(u.value())() >= 0.0);
    REQUIRE(xt::amax(u.value())() < 1.0);
    std::ostringstream os;
    os << tg::Tensor(xt::xarray<float>{1.f, 2.f}, true);
    REQUIRE_THAT(os.str(), Catch::Contains("shape=[2]") && Catch::Contains("float32") &&
                             Catch::Contains("requires_grad=true"));
    tg::Tensor undefined;
    REQUIRE_FALSE(undefined.defined());
    REQUIRE_THROWS_AS(undefined.value(), tg::Error);
    REQUIRE_FALSE(tg::Tensor(xt::xarray<float>{1.f}, true).grad().defined());
}

TEST_CASE("tensor: set_requires_grad only on leaves", "[tensor]")
{
    auto x = scalar(1.0);
    auto y = x * x;
    REQUIRE_THROWS_AS(y.set_requires_grad(false), tg::AutogradError);
    auto c = scalar(1.0, false);
    c.set_requires_grad(true);
    (c * c).backward();
    REQUIRE(c.grad().item() == Approx(2.0));
}

TEST_CASE("tape: backward(seed) reads the seed without copying it and never writes to it", "[tape]")
{
    // The seed becomes the root's output gradient by reference; a VJP that would overwrite its
    // output gradient in place (relu, mul) gets a copy first.
    const xt::xarray<double> seed_values = {{1.0, -2.0, 3.0}, {-4.0, 5.0, -6.0}};
    SECTION("an in-place VJP at the root, run twice with retain_graph")
    {
        auto x = tg::from_vector<double>({-1, 2, -3, 4, -5, 6}, {2, 3}, true);
        const tg::Tensor64 seed(seed_values);
        auto y = tg::relu(x) * 2.0;
        y.backward(seed, {.retain_graph = true});
        y.backward(seed);
        CHECK(seed.value() == seed_values);
        const xt::xarray<double> want = {{0.0, -8.0, 0.0}, {-16.0, 0.0, -24.0}}; // 2 * 2 * seed * (x > 0)
        CHECK(x.grad().value() == want);
    }
    SECTION("the seed is the output itself")
    {
        auto x = tg::from_vector<double>({0.5, -1, 2}, {3}, true);
        auto y = tg::exp(x);
        const xt::xarray<double> before = y.value();
        y.backward(y); // dL/dx = y * exp(x) = exp(2x)
        CHECK(y.value() == before);
        for (std::size_t i = 0; i < 3; ++i)
        {
            CHECK(x.grad().value()(i) == Approx(std::exp(2.0 * x.value()(i))));
        }
    }
    SECTION("a leaf seeded directly gets its own copy")
    {
        auto x = tg::Tensor64(seed_values, true);
        const tg::Tensor64 seed(seed_values);
        x.backward(seed);
        x.grad().mutable_value() *= 3.0;
        CHECK(seed.value() == seed_values);
    }
}
