// Pooling on the first pooling layer of the Fashion-MNIST CNN: 64 x 32 x 28 x 28, 2x2 windows,
// stride 2 (LibTorch anchor W2 in shared/research/anchors.md). The argument is the number of
// OpenMP threads. The machine is shared: run with --benchmark_repetitions=15 and read the medians.
//
// The GB/s counter counts the bytes the kernels must move at least, in float32 (n = input size):
//   max fwd+bwd: read x (n), write y and the argmax (n/4 + n/4), read dy and the argmax
//                (n/4 + n/4), write dx (n): 3n floats.
//   avg fwd+bwd: x, y, dy, dx: 2.5n floats.
//   forward only, nothing recorded: x, y: 1.25n floats.

#include <tapegrad/tapegrad.hpp>

#include <benchmark/benchmark.h>
#include <omp.h>

namespace tg = tapegrad;

namespace
{
const tg::Shape input_shape{64, 32, 28, 28};
constexpr double input_elements = 64.0 * 32 * 28 * 28;

enum class Op
{
    max,
    avg
};

tg::Tensor pool(Op op, const tg::Tensor& x)
{
    return op == Op::max ? tg::max_pool2d(x, {.kernel = 2}) : tg::avg_pool2d(x, {.kernel = 2});
}

void set_bandwidth(benchmark::State& state, double floats_moved)
{
    state.counters["GB/s"] =
      benchmark::Counter(floats_moved * sizeof(float) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// x requires grad, y = pool(x), y.backward(seed); x's gradient is dropped each iteration so that
/// every backward writes a fresh one (as the first backward of a training step does).
void fwd_bwd(benchmark::State& state, Op op)
{
    omp_set_num_threads(static_cast<int>(state.range(0)));
    tg::Generator gen(0);
    auto x = tg::randn<float>(input_shape, gen, true);
    const auto seed = tg::randn<float>(pool(op, x.detach()).shape(), gen);
    for (auto _ : state)
    {
        auto y = pool(op, x);
        y.backward(seed);
        benchmark::DoNotOptimize(x.grad().value().data());
        x.impl()->grad.reset();
    }
    set_bandwidth(state, (op == Op::max ? 3.0 : 2.5) * input_elements);
}

void fwd_only(benchmark::State& state, Op op)
{
    omp_set_num_threads(static_cast<int>(state.range(0)));
    tg::Generator gen(0);
    const auto x = tg::randn<float>(input_shape, gen);
    for (auto _ : state)
    {
        auto y = pool(op, x);
        benchmark::DoNotOptimize(y.value().data());
    }
    set_bandwidth(state, 1.25 * input_elements);
}

void BM_max_pool2d_fwd_bwd(benchmark::State& state)
{
    fwd_bwd(state, Op::max);
}
void BM_avg_pool2d_fwd_bwd(benchmark::State& state)
{
    fwd_bwd(state, Op::avg);
}
void BM_max_pool2d_fwd(benchmark::State& state)
{
    fwd_only(state, Op::max);
}
void BM_avg_pool2d_fwd(benchmark::State& state)
{
    fwd_only(state, Op::avg);
}

} // namespace

BENCHMARK(BM_max_pool2d_fwd_bwd)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_avg_pool2d_fwd_bwd)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_max_pool2d_fwd)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_avg_pool2d_fwd)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
