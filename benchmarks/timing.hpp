#pragma once
/// @file timing.hpp
/// The one timing method both peer benchmarks use, so tapegrad and LibTorch are measured by
/// literally the same code:
///
/// 1. warm-up: call the body at least `warmup_calls` times and for at least `warmup_ms`;
/// 2. batch size: as many calls as make one batch last about `batch_ms` (from the warm-up's
///    mean time per call), at least 1;
/// 3. `repetitions` batches, each timed as a whole with std::chrono::steady_clock.
///
/// Each batch gives one "ms per call" sample; the result is their median, minimum and maximum.
/// Timing a batch rather than each call keeps the clock's own cost (~20 ns) out of µs-scale bodies.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

namespace peer
{

struct TimingOptions
{
    int repetitions = 7;
    double batch_ms = 40.0;
    int warmup_calls = 3;
    double warmup_ms = 100.0;
};

struct Timing
{
    double median_ms = 0;
    double min_ms = 0;
    double max_ms = 0;
    /// Calls per timed batch.
    std::int64_t calls_per_batch = 0;
    int repetitions = 0;
};

namespace detail
{
using Clock = std::chrono::steady_clock;

inline double elapsed_ms(Clock::time_point t0, Clock::time_point t1)
{
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

inline double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
} // namespace detail

/// Times `body` (a callable taking no arguments) as described in the file comment.
template <class F>
Timing measure(F&& body, const TimingOptions& opt = {})
{
    using detail::Clock;
    std::int64_t warm_calls = 0;
    const auto w0 = Clock::now();
    double warm_ms = 0;
    while (warm_calls < opt.warmup_calls || warm_ms < opt.warmup_ms)
    {
        body();
        ++warm_calls;
        warm_ms = detail::elapsed_ms(w0, Clock::now());
    }
    const double per_call = warm_ms / static_cast<double>(warm_calls);
    const auto calls = std::max<std::int64_t>(1, std::llround(opt.batch_ms / std::max(per_call, 1e-6)));

    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(opt.repetitions));
    for (int r = 0; r < opt.repetitions; ++r)
    {
        const auto t0 = Clock::now();
        for (std::int64_t i = 0; i < calls; ++i)
        {
            body();
        }
        samples.push_back(detail::elapsed_ms(t0, Clock::now()) / static_cast<double>(calls));
    }
    Timing t;
    t.median_ms = detail::median(samples);
    t.min_ms = *std::min_element(samples.begin(), samples.end());
    t.max_ms = *std::max_element(samples.begin(), samples.end());
    t.calls_per_batch = calls;
    t.repetitions = opt.repetitions;
    return t;
}

/// Wall time of one call of `body`, in ms (for runs too long to repeat, such as an epoch).
template <class F>
double wall_ms(F&& body)
{
    const auto t0 = detail::Clock::now();
    body();
    return detail::elapsed_ms(t0, detail::Clock::now());
}

} // namespace peer
