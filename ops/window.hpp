#pragma once
/// @file window.hpp
/// What conv2d and the pooling ops share: per-axis sizes and the output-size formula
///
///     out = floor((in + 2p - d(k - 1) - 1) / s) + 1      (ceil instead of floor with ceil_mode)
///
/// With ceil_mode, as in PyTorch, a last window that would start in the right padding is dropped:
/// if (out - 1) * s >= in + p then out -= 1.

#include <cstdint>

namespace tapegrad
{

/// A size given once for both axes (`2`) or per axis (`{2, 1}` = height 2, width 1).
struct Size2
{
    std::int64_t h = 0;
    std::int64_t w = 0;
    /// False for a default-constructed Size2 ("not given", e.g. a pooling stride).
    bool given = false;

    constexpr Size2() = default;
    constexpr Size2(std::int64_t v)
      : h(v)
      , w(v)
      , given(true)
    {
    }
    constexpr Size2(std::int64_t h_, std::int64_t w_)
      : h(h_)
      , w(w_)
      , given(true)
    {
    }
    constexpr bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
};

/// Output length of a convolution along one axis. Throws ValueError for kernel/stride/dilation < 1
/// or negative padding, and ShapeError when the dilated kernel does not fit the padded input; the
/// message shows the formula with the numbers filled in.
std::int64_t conv2d_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride = 1,
                                std::int64_t padding = 0, std::int64_t dilation = 1);

/// Output length of a pooling window along one axis, with PyTorch's ceil_mode rule. Also requires
/// padding <= kernel / 2 (as PyTorch does). Throws as conv2d_output_size does.
std::int64_t pool2d_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                std::int64_t padding = 0, std::int64_t dilation = 1, bool ceil_mode = false);

} // namespace tapegrad
