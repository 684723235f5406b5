#pragma once
/// @file pool2d.hpp
/// Max, average and min pooling over NCHW inputs. Pooling has no parameters: no learning takes
/// place on pooling layers.

#include <tapegrad/autograd/tensor.hpp>
#include <tapegrad/ops/window.hpp>

namespace tapegrad
{

struct Pool2dOptions
{
    /// Window size (required).
    Size2 kernel{};
    /// Defaults to the kernel size when not given.
    Size2 stride{};
    /// Implicit padding on both sides; at most kernel / 2. Max pooling pads with -inf, min pooling
    /// with +inf, average pooling with zeros.
    Size2 padding = 0;
    /// Spacing between window elements (max and min pooling only).
    Size2 dilation = 1;
    /// Use ceil instead of floor in the output-size formula (see window.hpp).
    bool ceil_mode = false;
    /// Average pooling: divide by the full window area including padding (true, PyTorch's default)
    /// or only by the number of input elements in the window.
    bool count_include_pad = true;
};

/// x [N, C, H, W] -> [N, C, Ho, Wo]. The forward pass records each window's argmax; the VJP routes
/// each output gradient to it. Ties go to the first maximum in row-major window order. NaN counts
/// as the maximum, as in LibTorch.
template <class T>
BasicTensor<T> max_pool2d(const BasicTensor<T>& x, const Pool2dOptions& options);
/// As max_pool2d with the argmin. Ties go to the first minimum in row-major window order.
template <class T>
BasicTensor<T> min_pool2d(const BasicTensor<T>& x, const Pool2dOptions& options);
/// Window mean. The VJP spreads each output gradient over its window divided by the window area
/// (which depends on count_include_pad).
template <class T>
BasicTensor<T> avg_pool2d(const BasicTensor<T>& x, const Pool2dOptions& options);

} // namespace tapegrad
