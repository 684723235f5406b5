#pragma once
/// @file conv2d.hpp
/// 2-D cross-correlation (what deep learning calls convolution), NCHW, as in PyTorch.

#include <tapegrad/autograd/tensor.hpp>
#include <tapegrad/ops/window.hpp>

namespace tapegrad
{

struct Conv2dOptions
{
    Size2 stride = 1;
    Size2 padding = 0;
    Size2 dilation = 1;
    /// Input and output channels are split into `groups` independent blocks.
    std::int64_t groups = 1;
};

/// y[n, k, i, j] = b[k] + sum_{c, a, e} x[n, g*C/G + c, i*s_h - p_h + a*d_h, j*s_w - p_w + e*d_w] * w[k, c, a, e]
///
/// - x: [N, C, H, W]
/// - w: [K, C / groups, kh, kw]
/// - b: [K], or an undefined tensor for no bias
/// - returns [N, K, Ho, Wo] with Ho, Wo from conv2d_output_size.
///
/// VJPs: dW is the correlation of X with dY; db is the sum of dY over N, Ho, Wo; dX is the full
/// convolution of dY (dilated by the stride) with the kernel rotated 180 degrees.
template <class T>
BasicTensor<T> conv2d(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b = {},
                      const Conv2dOptions& options = {});

} // namespace tapegrad
