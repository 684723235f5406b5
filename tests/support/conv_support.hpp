#pragma once
/// Helpers shared by the conv2d algorithm tests (test_conv2d_winograd*.cpp).

#include "support.hpp"

#include <catch2/catch.hpp>
#include <omp.h>
#include <tapegrad/tapegrad.hpp>

#include <vector>

namespace tapegrad::test
{

/// `o` with its algorithm set to `algorithm`.
inline Conv2dOptions with(Conv2dOptions o, Conv2dAlgorithm algorithm)
{
    o.algorithm = algorithm;
    return o;
}

/// x, w and b as fresh leaves; y's value and the three gradients after y.backward(dy) through the
/// tape, on `threads` OpenMP threads (0: as they are).
template <class T>
std::vector<xt::xarray<T>> conv2d_through_tape(const xt::xarray<T>& x, const xt::xarray<T>& w,
                                               const xt::xarray<T>& b, const xt::xarray<T>& dy,
                                               const Conv2dOptions& opt, int threads = 0)
{
    const int before = omp_get_max_threads();
    if (threads > 0)
    {
        omp_set_num_threads(threads);
    }
    BasicTensor<T> tx(x, true), tw(w, true), tb(b, true);
    auto y = conv2d(tx, tw, tb, opt);
    y.backward(BasicTensor<T>(dy));
    omp_set_num_threads(before);
    return {y.value(), tx.grad().value(), tw.grad().value(), tb.grad().value()};
}

/// Gradchecks conv2d with `base`'s stride and algorithm over batch 1 and 2, groups 1 and 2,
/// paddings 0, 1 and {2, 1}, with and without bias, on h x w inputs.
inline void gradcheck_conv2d_grid(const Conv2dOptions& base, std::size_t h, std::size_t w, Generator& gen)
{
    const std::vector<Size2> paddings = {0, 1, {2, 1}};
    for (std::size_t batch : {1, 2})
        for (std::int64_t groups : {1, 2})
            for (const auto& padding : paddings)
                for (bool bias : {true, false})
                {
                    Conv2dOptions opt = base;
                    opt.padding = padding;
                    opt.groups = groups;
                    const std::size_t C = groups == 1 ? 3 : 4, K = groups == 1 ? 2 : 4;
                    std::vector<Tensor64> in{distinct({batch, C, h, w}, gen),
                                             distinct({K, C / static_cast<std::size_t>(groups), 3, 3}, gen)};
                    if (bias)
                    {
                        in.push_back(distinct({K}, gen));
                    }
                    INFO("batch " << batch << " groups " << groups << " padding {" << padding.h << ", "
                                  << padding.w << "} bias " << bias);
                    REQUIRE_GRADCHECK([opt](const std::vector<Tensor64>& v)
                                      { return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor64(), opt); },
                                      in);
                }
}

} // namespace tapegrad::test
