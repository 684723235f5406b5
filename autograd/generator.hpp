#pragma once
/// @file generator.hpp
/// tg::Generator: the one source of randomness (init, randn/rand, dropout, shuffling). The same
/// seed gives the same stream on every machine: the bits come from std::mt19937_64, whose output
/// the standard fixes, and the distributions are computed here rather than by the standard
/// library, whose distributions differ between implementations.

#include <cstdint>
#include <random>

namespace tapegrad
{

class Generator
{
  public:
    explicit Generator(std::uint64_t seed = 0)
      : engine_(seed)
    {
    }

    /// Restarts the stream from `seed`.
    void seed(std::uint64_t seed)
    {
        engine_.seed(seed);
        has_spare_ = false;
    }

    /// 64 random bits.
    std::uint64_t next_u64() { return engine_(); }

    /// Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

    /// Uniform in [lo, hi).
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

    /// Standard normal N(0, 1) by the Box-Muller transform.
    double normal();

    /// Uniform integer in [0, n), without modulo bias. n must be > 0.
    std::uint64_t below(std::uint64_t n);

  private:
    std::mt19937_64 engine_;
    bool has_spare_ = false;
    double spare_ = 0.0;
};

} // namespace tapegrad
