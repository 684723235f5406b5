#pragma once
/// Helpers shared by the conv2d algorithm tests (test_conv2d_winograd*.cpp).

#include "support.hpp"

#include <catch2/catch.hpp>
#include <omp.h>
#include <tapegrad/ops/gemm_nt.hpp>
#include <tapegrad/tapegrad.hpp>

#include <string>
#include <utility>
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

/// y of the seed 003 worked example (a 5x5 input, a 3x3 kernel, bias -1) by `algorithm` at
/// `stride`: {{9, -9, 7}, {2, 5, 6}, {-7, 9, -10}} at stride 1, {{9, 7}, {-7, -10}} at stride 2.
inline xt::xarray<double> seed003_conv(Conv2dAlgorithm algorithm, Size2 stride = 1)
{
    const auto x = from_vector<double>(
      {0, 2, -3, 2, -3, -2, -2, -2, -1, -2, -3, -3, 2, -2, 1, -3, -2, 1, -3, 1, 0, -1, 0, 2, -3},
      {1, 1, 5, 5});
    const auto w = from_vector<double>({-1, 0, -2, 1, 1, -1, -1, -1, 0}, {1, 1, 3, 3});
    const auto b = from_vector<double>({-1}, {1});
    return conv2d(x, w, b, {.stride = stride, .algorithm = algorithm}).value();
}

/// A stride-1 tile algorithm that rounds (F(4x4, 3x3), F(5x5, 3x3)) against the GEMM route on
/// integer data in float64, to rounding: y, dX (also against the rot180 route), dW, and all four
/// through the tape, over batch, channels, groups, sizes and paddings.
inline void check_tile_algorithm_on_integers(Conv2dAlgorithm algorithm, Generator& gen)
{
    struct Channels
    {
        std::size_t c, k;
        std::int64_t groups;
    };
    const std::vector<Channels> channels = {{1, 1, 1}, {3, 4, 1}, {4, 6, 2}};
    const std::vector<std::pair<std::size_t, std::size_t>> sizes = {{3, 3},  {4, 5},   {6, 6},  {7, 9},
                                                                    {10, 4}, {14, 14}, {11, 12}};
    const std::vector<Size2> paddings = {0, 1, 2, {1, 0}, {0, 2}};
    for (std::size_t n : {1, 3})
        for (const auto& ch : channels)
            for (const auto& [h, w] : sizes)
                for (const auto& padding : paddings)
                {
                    const Conv2dOptions opt{.padding = padding, .groups = ch.groups};
                    const auto cg = ch.c / static_cast<std::size_t>(ch.groups);
                    INFO("n " << n << " c " << ch.c << " k " << ch.k << " groups " << ch.groups << " " << h
                              << "x" << w << " padding {" << padding.h << ", " << padding.w << "}");
                    const auto x = small_ints<double>({n, ch.c, h, w}, gen);
                    const auto wt = small_ints<double>({ch.k, cg, 3, 3}, gen);
                    const auto b = small_ints<double>({ch.k}, gen);
                    const auto gemm = with(opt, Conv2dAlgorithm::gemm), fast = with(opt, algorithm);
                    const auto y = conv2d_forward<double>(x, wt, &b, gemm);
                    CHECK(relative_gap(conv2d_forward<double>(x, wt, &b, fast), y) < 1e-13);

                    const Shape ys(y.shape().begin(), y.shape().end());
                    const auto dy = small_ints<double>(ys, gen);
                    const Shape xs{n, ch.c, h, w}, ws{ch.k, cg, 3, 3};
                    // dX against the textbook route: dY correlated with rot180(W)
                    CHECK(relative_gap(conv2d_backward_input<double>(dy, wt, xs, fast),
                                       conv2d_backward_input_full_conv<double>(dy, wt, xs, opt)) < 1e-13);
                    CHECK(relative_gap(conv2d_backward_weight<double>(dy, x, ws, fast),
                                       conv2d_backward_weight<double>(dy, x, ws, gemm)) < 1e-13);

                    const auto got = conv2d_through_tape<double>(x, wt, b, dy, fast);
                    const auto ref = conv2d_through_tape<double>(x, wt, b, dy, gemm);
                    for (std::size_t i = 0; i < got.size(); ++i)
                    {
                        INFO("through the tape, output " << i << " (y, dx, dw, db)");
                        CHECK(relative_gap(got[i], ref[i]) < 1e-13);
                    }
                }
}

/// `algorithm` in float32 on the fashion CNN's second layer (W1 S2) with a batch of 11 (blocks of
/// images and dW chunks that do not divide evenly): within `tolerance` of the GEMM route, and the
/// same bits on 1 and 2 threads.
inline void check_fashion_layer_float32(Conv2dAlgorithm algorithm, double tolerance, Generator& gen)
{
    const auto x = randn<float>({11, 32, 14, 14}, gen).value();
    const auto w = randn<float>({64, 32, 3, 3}, gen).value();
    const auto b = randn<float>({64}, gen).value();
    const auto dy = randn<float>({11, 64, 14, 14}, gen).value();
    const Conv2dOptions opt{.padding = 1};
    const auto fast = conv2d_through_tape<float>(x, w, b, dy, with(opt, algorithm), 1);
    const auto ref = conv2d_through_tape<float>(x, w, b, dy, with(opt, Conv2dAlgorithm::gemm), 1);
    const auto two = conv2d_through_tape<float>(x, w, b, dy, with(opt, algorithm), 2);
    for (std::size_t i = 0; i < fast.size(); ++i)
    {
        INFO("output " << i << " (y, dx, dw, db)");
        CHECK(relative_gap(fast[i], ref[i]) < tolerance);
        CHECK(same_bits(two[i], fast[i]));
    }
}

/// The message conv2d throws for `algorithm` with options `o` and a kernel of shape `ws` on a
/// [1, 2, 8, 8] input, or "no error".
inline std::string conv2d_error(Conv2dAlgorithm algorithm, Conv2dOptions o, const Shape& ws)
{
    o.algorithm = algorithm;
    try
    {
        conv2d(zeros<float>({1, 2, 8, 8}), zeros<float>(ws), {}, o);
    }
    catch (const ValueError& e)
    {
        return e.what();
    }
    return "no error";
}

} // namespace tapegrad::test
