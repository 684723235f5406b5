#pragma once
/// Helpers shared by the conv2d algorithm tests (test_conv2d_winograd*.cpp).

#include "support.hpp"

#include <catch2/catch.hpp>
#include <omp.h>
#include <tapegrad/ops/gemm_nt.hpp>
#include <tapegrad/tapegrad.hpp>

#include <vector>

namespace tapegrad::test
{

/// Turns the AVX-512 kernels (gemm_nt's, and the tile engines' transposes) on or off for a
/// scope (a no-op on CPUs without AVX-512).
struct GemmNtKernel
{
    explicit GemmNtKernel(bool on) { detail::set_gemm_nt_avx512(on); }
    ~GemmNtKernel() { detail::set_gemm_nt_avx512(true); }
    GemmNtKernel(const GemmNtKernel&) = delete;
    GemmNtKernel& operator=(const GemmNtKernel&) = delete;
};

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

/// `algorithm` at `stride` against the GEMM route where the channels fill several transform
/// vectors, the last one partly (16 floats or 8 doubles per vector), with one group and two: in
/// float64 on integers to rounding, in float32 to `tolerance`, with bit-identical results on 1
/// and 2 threads and, except dW, with the AVX-512 kernels on and off.
inline void check_channel_blocks(Conv2dAlgorithm algorithm, Size2 stride, float tolerance, Generator& gen)
{
    for (std::int64_t groups : {1, 2})
    {
        INFO("groups " << groups);
        const Conv2dOptions opt{.stride = stride, .padding = 1, .groups = groups};
        const auto g = static_cast<std::size_t>(groups);
        {
            const auto x = small_ints<double>({2, 11 * g, 9, 11}, gen);
            const auto w = small_ints<double>({9 * g, 11, 3, 3}, gen);
            const auto b = small_ints<double>({9 * g}, gen);
            const auto y = conv2d_forward<double>(x, w, &b, with(opt, Conv2dAlgorithm::gemm));
            const Shape ys(y.shape().begin(), y.shape().end());
            const auto dy = small_ints<double>(ys, gen);
            const auto fast = conv2d_through_tape<double>(x, w, b, dy, with(opt, algorithm));
            const auto ref = conv2d_through_tape<double>(x, w, b, dy, with(opt, Conv2dAlgorithm::gemm));
            for (std::size_t i = 0; i < fast.size(); ++i)
            {
                INFO("float64, output " << i << " (y, dx, dw, db)");
                CHECK(relative_gap(fast[i], ref[i]) < 1e-13);
            }
        }
        const auto x = randn<float>({3, 20 * g, 9, 11}, gen).value();
        const auto w = randn<float>({37 * g, 20, 3, 3}, gen).value();
        const auto b = randn<float>({37 * g}, gen).value();
        const auto y = conv2d_forward<float>(x, w, &b, with(opt, Conv2dAlgorithm::gemm));
        const auto dy = randn<float>(Shape(y.shape().begin(), y.shape().end()), gen).value();
        const auto ref = conv2d_through_tape<float>(x, w, b, dy, with(opt, Conv2dAlgorithm::gemm), 1);
        const auto fast = conv2d_through_tape<float>(x, w, b, dy, with(opt, algorithm), 1);
        const auto two = conv2d_through_tape<float>(x, w, b, dy, with(opt, algorithm), 2);
        std::vector<xt::xarray<float>> plain;
        {
            GemmNtKernel off(false);
            plain = conv2d_through_tape<float>(x, w, b, dy, with(opt, algorithm), 1);
        }
        for (std::size_t i = 0; i < fast.size(); ++i)
        {
            INFO("float32, output " << i << " (y, dx, dw, db)");
            CHECK(relative_gap(fast[i], ref[i]) < tolerance);
            CHECK(same_bits(two[i], fast[i]));
            if (i == 2) // dW: the AVX-512 kernel and BLAS add in their own orders
            {
                CHECK(relative_gap(plain[i], fast[i]) < tolerance);
            }
            else
            {
                CHECK(same_bits(plain[i], fast[i]));
            }
        }
    }
}

} // namespace tapegrad::test
