// conv2d kernels against the LibTorch anchors of shared/research/anchors.md (W1 S1-S4).
//
//   OPENBLAS_CORETYPE=SkylakeX ./build/benchmarks/tapegrad_bench --benchmark_filter=conv2d
//       --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
//
// (OPENBLAS_CORETYPE: Debian's OpenBLAS 0.3.21 does not know recent Xeons and otherwise runs its
// generic kernels; see ops/blas.hpp.)
//
// GFLOP/s counts 2 N K Ho Wo (C/G) kh kw per direction: forward, dX and dW (the bias is
// negligible), so fwd+bwd is 3x the forward count.
//
// fwd_bwd includes what a training step pays: fresh output and gradient buffers every iteration.
// With glibc's default malloc every buffer above the mmap threshold is a fresh mmap, so each
// iteration also pays its page faults (about a quarter of S2's time); compare with
//   GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824

#include <tapegrad/tapegrad.hpp>

#include <benchmark/benchmark.h>
#include <omp.h>

namespace tg = tapegrad;

namespace
{

struct ConvShape
{
    const char* id;
    std::size_t n, c, k, h, w, kernel;
    std::int64_t stride, padding;
    tg::Conv2dAlgorithm algorithm = tg::Conv2dAlgorithm::automatic;

    tg::Conv2dOptions options() const
    {
        return {.stride = stride, .padding = padding, .algorithm = algorithm};
    }
    std::size_t ho() const
    {
        return static_cast<std::size_t>(tg::conv2d_output_size(h, kernel, stride, padding));
    }
    std::size_t wo() const
    {
        return static_cast<std::size_t>(tg::conv2d_output_size(w, kernel, stride, padding));
    }
    double flops() const { return 2.0 * double(n * k * ho() * wo()) * double(c * kernel * kernel); }
};

const ConvShape S1{"S1", 64, 1, 32, 28, 28, 3, 1, 1};
const ConvShape S2{"S2", 64, 32, 64, 14, 14, 3, 1, 1};
const ConvShape S3{"S3", 32, 3, 6, 32, 32, 5, 1, 0};
const ConvShape S4{"S4", 16, 64, 128, 16, 16, 3, 2, 1};
// S2 and S4 on each route, to compare the two algorithms in one run.
const ConvShape S2_gemm{"S2", 64, 32, 64, 14, 14, 3, 1, 1, tg::Conv2dAlgorithm::gemm};
const ConvShape S2_winograd{"S2", 64, 32, 64, 14, 14, 3, 1, 1, tg::Conv2dAlgorithm::winograd};
const ConvShape S2_winograd_4x4{"S2", 64, 32, 64, 14, 14, 3, 1, 1, tg::Conv2dAlgorithm::winograd_4x4};
const ConvShape S2_winograd_5x5{"S2", 64, 32, 64, 14, 14, 3, 1, 1, tg::Conv2dAlgorithm::winograd_5x5};
const ConvShape S4_gemm{"S4", 16, 64, 128, 16, 16, 3, 2, 1, tg::Conv2dAlgorithm::gemm};
const ConvShape S4_winograd{"S4", 16, 64, 128, 16, 16, 3, 2, 1, tg::Conv2dAlgorithm::winograd};

/// Inputs as in the peer benchmark: x, dy uniform in [-1, 1), w and b in [-0.1, 0.1).
struct Inputs
{
    tg::Tensor x, w, b, dy;

    explicit Inputs(const ConvShape& s)
    {
        tg::Generator gen(1);
        auto uniform = [&](const tg::Shape& shape, float lo, float hi)
        {
            auto a = xt::xarray<float>::from_shape(shape);
            for (auto& v : a)
            {
                v = static_cast<float>(gen.uniform(lo, hi));
            }
            return tg::Tensor(std::move(a));
        };
        x = uniform({s.n, s.c, s.h, s.w}, -1, 1);
        w = uniform({s.k, s.c, s.kernel, s.kernel}, -0.1f, 0.1f);
        b = uniform({s.k}, -0.1f, 0.1f);
        dy = uniform({s.n, s.k, s.ho(), s.wo()}, -1, 1);
    }
};

void set_threads(benchmark::State& state)
{
    omp_set_num_threads(static_cast<int>(state.range(0)));
}

void report(benchmark::State& state, double flops)
{
    state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["threads"] = static_cast<double>(state.range(0));
}

/// Forward and backward through the tape, fresh leaves each iteration (x, w, b all need grad).
void conv2d_fwd_bwd(benchmark::State& state, const ConvShape& s)
{
    set_threads(state);
    const Inputs in(s);
    for (auto _ : state)
    {
        auto x = in.x.detach().set_requires_grad(true);
        auto w = in.w.detach().set_requires_grad(true);
        auto b = in.b.detach().set_requires_grad(true);
        auto y = tg::conv2d(x, w, b, s.options());
        y.backward(in.dy);
        benchmark::DoNotOptimize(x.grad().value().data());
    }
    report(state, 3 * s.flops());
}

void conv2d_fwd(benchmark::State& state, const ConvShape& s)
{
    set_threads(state);
    const Inputs in(s);
    for (auto _ : state)
    {
        auto y = tg::conv2d_forward(in.x.value(), in.w.value(), &in.b.value(), s.options());
        benchmark::DoNotOptimize(y.data());
    }
    report(state, s.flops());
}

void conv2d_bwd_input(benchmark::State& state, const ConvShape& s)
{
    set_threads(state);
    const Inputs in(s);
    for (auto _ : state)
    {
        auto dx = tg::conv2d_backward_input(in.dy.value(), in.w.value(), in.x.shape(), s.options());
        benchmark::DoNotOptimize(dx.data());
    }
    report(state, s.flops());
}

void conv2d_bwd_weight(benchmark::State& state, const ConvShape& s)
{
    set_threads(state);
    const Inputs in(s);
    for (auto _ : state)
    {
        auto dw = tg::conv2d_backward_weight(in.dy.value(), in.x.value(), in.w.shape(), s.options());
        benchmark::DoNotOptimize(dw.data());
    }
    report(state, s.flops());
}

void conv2d_bwd_bias(benchmark::State& state, const ConvShape& s)
{
    set_threads(state);
    const Inputs in(s);
    for (auto _ : state)
    {
        auto db = tg::conv2d_backward_bias(in.dy.value());
        benchmark::DoNotOptimize(db.data());
    }
    state.counters["GB/s"] = benchmark::Counter(double(in.dy.numel()) * sizeof(float) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void threads_1_2(benchmark::internal::Benchmark* b)
{
    b->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();
}

} // namespace

BENCHMARK_CAPTURE(conv2d_fwd_bwd, S1_N64_1to32_28x28_k3p1, S1)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S2_N64_32to64_14x14_k3p1, S2)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S3_N32_3to6_32x32_k5p0, S3)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S4_N16_64to128_16x16_k3s2p1, S4)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S2_gemm, S2_gemm)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S2_winograd, S2_winograd)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S2_winograd_4x4, S2_winograd_4x4)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S2_winograd_5x5, S2_winograd_5x5)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S4_gemm, S4_gemm)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd_bwd, S4_winograd, S4_winograd)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd, S2, S2)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_input, S2, S2)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_weight, S2, S2)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_bias, S2, S2)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd, S4, S4)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_input, S4, S4)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_weight, S4, S4)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_fwd, S4_gemm, S4_gemm)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_input, S4_gemm, S4_gemm)->Apply(threads_1_2);
BENCHMARK_CAPTURE(conv2d_bwd_weight, S4_gemm, S4_gemm)->Apply(threads_1_2);
