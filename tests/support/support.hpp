#pragma once
/// Shared helpers for the tests: tie-free, kink-free inputs and a gradcheck assertion.

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tapegrad::test
{

/// Values evenly spaced in [lo, hi) (spacing (hi-lo)/n >> gradcheck's eps), shuffled by `gen`,
/// then nudged away from zero by at least `min_abs`: no ties (max/min pooling), no kinks
/// (relu/abs at 0).
inline Tensor64 distinct(const Shape& shape, Generator& gen, double lo = -2.0, double hi = 2.0,
                         bool requires_grad = true, double min_abs = 1e-2)
{
    auto a = xt::xarray<double>::from_shape(shape);
    const std::size_t n = a.size();
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    for (std::size_t i = n; i > 1; --i)
    {
        std::swap(order[i - 1], order[gen.below(i)]);
    }
    const double step = (hi - lo) / static_cast<double>(std::max<std::size_t>(n, 1));
    for (std::size_t i = 0; i < n; ++i)
    {
        double v = lo + step * (static_cast<double>(order[i]) + 0.37);
        if (std::abs(v) < min_abs)
        {
            v = v < 0 ? -min_abs : min_abs;
        }
        a.data()[i] = v;
    }
    return Tensor64(std::move(a), requires_grad);
}

/// Uniform values in [lo, hi) (for inputs where ties cannot matter).
inline Tensor64 uniform(const Shape& shape, Generator& gen, double lo = -1.0, double hi = 1.0,
                        bool requires_grad = true)
{
    auto a = xt::xarray<double>::from_shape(shape);
    for (auto& v : a)
    {
        v = gen.uniform(lo, hi);
    }
    return Tensor64(std::move(a), requires_grad);
}

/// Integer values in [-3, 3]. Sums of products of a few of them are exact in float and double, so
/// kernels that only add, multiply and scale by powers of two must agree on them bit for bit.
template <class T>
xt::xarray<T> small_ints(const Shape& shape, Generator& gen)
{
    auto a = xt::xarray<T>::from_shape(shape);
    for (auto& v : a)
    {
        v = static_cast<T>(static_cast<int>(gen.below(7)) - 3);
    }
    return a;
}

/// The values of a tensor as doubles, for comparisons with Catch's vector matchers.
template <class T>
std::vector<double> vals(const BasicTensor<T>& t)
{
    return std::vector<double>(t.value().begin(), t.value().end());
}

} // namespace tapegrad::test

/// Runs tg::gradcheck and fails with its full report; also fails on kinks, since test inputs are
/// chosen tie-free and kink-free.
#define REQUIRE_GRADCHECK(fn, inputs)                                                                        \
    do                                                                                                       \
    {                                                                                                        \
        const auto tg_report_ = ::tapegrad::gradcheck((fn), (inputs));                                       \
        INFO(tg_report_.summary());                                                                          \
        REQUIRE(tg_report_.ok);                                                                              \
        REQUIRE(tg_report_.kinks.empty());                                                                   \
        REQUIRE(tg_report_.checked > 0);                                                                     \
    } while (false)

namespace tapegrad::test
{
/// REQUIRE_GRADCHECK as a function, for tables of ops.
inline void gradcheck_ok(const GradcheckFunction& f, const std::vector<Tensor64>& inputs)
{
    REQUIRE_GRADCHECK(f, inputs);
}
/// Same shape and the same values bit for bit.
template <class T>
bool same_bits(const xt::xarray<T>& a, const xt::xarray<T>& b)
{
    return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

/// max |a - b| / max(1, max |b|), for arrays of one shape.
template <class T>
double relative_gap(const xt::xarray<T>& a, const xt::xarray<T>& b)
{
    double gap = 0, scale = 1;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    {
        gap = std::max(gap, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
        scale = std::max(scale, std::abs(static_cast<double>(b.data()[i])));
    }
    return a.shape() == b.shape() ? gap / scale : std::numeric_limits<double>::infinity();
}

} // namespace tapegrad::test
