// Inverted dropout: reproducible masks, drop rate, eval-mode identity, gradient = mask / (1 - p).

#include "support/support.hpp"

#include <cmath>

namespace tg = tapegrad;

namespace
{
std::size_t count_zeros(const tg::Tensor64& t)
{
    return static_cast<std::size_t>(std::count(t.value().begin(), t.value().end(), 0.0));
}
} // namespace

TEST_CASE("dropout: the same seed gives the same mask, another seed a different one", "[dropout]")
{
    auto x = tg::ones64({50, 20});
    tg::Generator g1(42), g2(42), g3(43);
    auto a = tg::dropout(x, 0.5, true, g1);
    auto b = tg::dropout(x, 0.5, true, g2);
    auto c = tg::dropout(x, 0.5, true, g3);
    REQUIRE(a.value() == b.value());
    REQUIRE(a.value() != c.value());
    // the generator advances: a second call from the same generator draws a new mask
    REQUIRE(tg::dropout(x, 0.5, true, g1).value() != a.value());
}

TEST_CASE("dropout: zeroes a fraction p of a large tensor and scales the rest by 1 / (1 - p)", "[dropout]")
{
    tg::Generator gen(7);
    auto x = tg::test::distinct({100, 100}, gen, 1.0, 2.0, false);
    for (double p : {0.1, 0.5, 0.8})
    {
        auto y = tg::dropout(x, p, true, gen);
        const double frac = static_cast<double>(count_zeros(y)) / 10000.0;
        INFO("p = " << p << ", zero fraction = " << frac);
        REQUIRE(std::abs(frac - p) < 0.03);
        for (std::size_t i = 0; i < x.numel(); ++i)
        {
            const double v = y.value().data()[i];
            if (v != 0.0)
            {
                REQUIRE(v == Approx(x.value().data()[i] / (1.0 - p)).epsilon(1e-14));
            }
        }
    }
}

TEST_CASE("dropout: eval mode and p = 0 return the input itself and record nothing", "[dropout]")
{
    tg::Generator gen(1);
    auto x = tg::test::distinct({3, 4}, gen);
    const auto before = tg::current_tape().size();
    auto eval = tg::dropout(x, 0.5, false, gen);
    auto p0 = tg::dropout(x, 0.0, true, gen);
    REQUIRE(eval.impl() == x.impl());
    REQUIRE(p0.impl() == x.impl());
    REQUIRE(tg::current_tape().size() == before);
    // no randomness consumed either
    tg::Generator fresh(1);
    tg::test::distinct({3, 4}, fresh);
    REQUIRE(gen.next_u64() == fresh.next_u64());
}

TEST_CASE("dropout: the gradient is mask / (1 - p), with the mask read off the output", "[dropout]")
{
    tg::Generator gen(3);
    auto x = tg::test::distinct({6, 7}, gen, 0.5, 1.5);
    auto w = tg::test::distinct({6, 7}, gen, -1.0, 1.0, false);
    const double p = 0.3;
    auto y = tg::dropout(x, p, true, gen);
    y.backward(w);
    std::size_t dropped = 0;
    for (std::size_t i = 0; i < x.numel(); ++i)
    {
        const double mask = y.value().data()[i] / x.value().data()[i] * (1.0 - p); // 0 or 1
        REQUIRE((mask == Approx(0.0).margin(1e-15) || mask == Approx(1.0)));
        dropped += mask < 0.5;
        REQUIRE(x.grad().value().data()[i] == Approx(w.value().data()[i] * mask / (1.0 - p)));
    }
    REQUIRE(dropped > 0);
    REQUIRE(dropped < x.numel());
}

TEST_CASE("dropout: gradcheck with a fixed mask", "[dropout]")
{
    tg::Generator mask_gen;
    const tg::Shape shapes[] = {{10}, {3, 4, 5}};
    for (const auto& shape : shapes)
    {
        tg::Generator gen(5);
        auto x = tg::test::distinct(shape, gen);
        REQUIRE_GRADCHECK((
                            [&mask_gen](const std::vector<tg::Tensor64>& in)
                            {
                                mask_gen.seed(11);
                                return tg::dropout(in[0], 0.4, true, mask_gen);
                            }),
                          std::vector<tg::Tensor64>{x});
    }
}

TEST_CASE("dropout: float32 keeps the same mask as float64 for the same seed", "[dropout]")
{
    tg::Generator g64(9), g32(9);
    auto y64 = tg::dropout(tg::ones64({200}), 0.25, true, g64);
    auto y32 = tg::dropout(tg::ones<float>({200}), 0.25, true, g32);
    for (std::size_t i = 0; i < 200; ++i)
    {
        REQUIRE((y32.value()(i) == 0.0f) == (y64.value()(i) == 0.0));
        if (y64.value()(i) != 0.0)
        {
            REQUIRE(y32.value()(i) == Approx(1.0 / 0.75));
        }
    }
}

TEST_CASE("dropout: p outside 0 <= p < 1 throws ValueError naming the op", "[dropout]")
{
    tg::Generator gen;
    auto x = tg::ones64({4});
    for (double p : {-0.1, 1.0, 1.5, std::nan("")})
    {
        INFO("p = " << p);
        REQUIRE_THROWS_WITH(tg::dropout(x, p, true, gen),
                            Catch::Contains("tg::dropout") && Catch::Contains("[0, 1)"));
        REQUIRE_THROWS_AS(tg::dropout(x, p, false, gen), tg::ValueError);
    }
}
