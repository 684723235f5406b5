#pragma once
/// @file conv2d.hpp
/// 2-D cross-correlation (what deep learning calls convolution), NCHW, as in PyTorch.

#include <tapegrad/autograd/tensor.hpp>
#include <tapegrad/ops/window.hpp>

namespace tapegrad
{

/// How conv2d computes its three products. All give the same results up to rounding.
enum class Conv2dAlgorithm
{
    /// Minimal filtering for the forward pass and dX where it applies and the layer has at
    /// least 16 input and 16 output channels per group (dW too when the tape needs dX and dW
    /// together, from the same pass): at stride 1 winograd_4x4 or winograd_5x5, whichever tiling
    /// needs fewer products, when the output is at least 4x4, winograd below that; at stride 2
    /// winograd's 25-product algorithm; gemm otherwise.
    automatic,
    /// im2col plus one GEMM per image (or a direct loop for very few input channels).
    gemm,
    /// Minimal filtering for all three products, for 3x3 kernels with dilation 1: at stride 1
    /// Winograd's F(2x2, 3x3), 16 multiplications per 2x2 output tile and channel pair instead
    /// of 36; at stride 2 (both axes) an algorithm with 25 instead of 36 and no rounding in its
    /// transforms.
    /// Asking for it elsewhere throws.
    winograd,
    /// Winograd's F(4x4, 3x3) for all three products: 36 multiplications per 4x4 output tile and
    /// channel pair, 2.25 per output against winograd's 4 and a direct sum's 9. Its transforms
    /// round (coefficients 1/6, 1/24 and up to 8), so float32 results differ from gemm by about
    /// 1e-5 relative. Only for 3x3 kernels with stride 1 and dilation 1; elsewhere it throws.
    winograd_4x4,
    /// Winograd's F(5x5, 3x3) for all three products: 49 multiplications per 5x5 output tile and
    /// channel pair, 1.96 per output; automatic takes it where its tiling needs fewer products
    /// than winograd_4x4's (14x14 outputs: 3x3 tiles of 5 against 4x4 tiles of 4). Its transforms
    /// round a little more than winograd_4x4's (coefficients up to 16). Only for 3x3 kernels with
    /// stride 1 and dilation 1; elsewhere it throws.
    winograd_5x5
};

struct Conv2dOptions
{
    Size2 stride = 1;
    Size2 padding = 0;
    Size2 dilation = 1;
    /// Input and output channels are split into `groups` independent blocks.
    std::int64_t groups = 1;
    Conv2dAlgorithm algorithm = Conv2dAlgorithm::automatic;
};

/// y[n, k, i, j] = b[k] + sum_{c, a, e} x[n, g*C/G + c, i*s_h - p_h + a*d_h, j*s_w - p_w + e*d_w] * w[k, c,
/// a, e]
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

/// @name The kernels behind conv2d, on plain values (for tests, benchmarks and teaching).
/// They validate shapes as conv2d does. Layouts as above: x [N, C, H, W], w [K, C/G, kh, kw],
/// y and dy [N, K, Ho, Wo].
/// @{

/// Forward: per image and group, im2col then one GEMM W[K/G x C/G*kh*kw] * col[C/G*kh*kw x Ho*Wo]
/// written straight into y, or Winograd's F(2x2, 3x3) as options.algorithm selects; `b` may be
/// null. The backward kernels below follow options.algorithm the same way.
template <class T>
xt::xarray<T> conv2d_forward(const xt::xarray<T>& x, const xt::xarray<T>& w, const xt::xarray<T>* b,
                             const Conv2dOptions& options = {});

/// dL/dW [K, C/G, kh, kw]: the correlation of X with dY, per image dY * col^T accumulated.
template <class T>
xt::xarray<T> conv2d_backward_weight(const xt::xarray<T>& dy, const xt::xarray<T>& x, const Shape& w_shape,
                                     const Conv2dOptions& options = {});

/// dL/db [K]: the sum of dY over N, Ho and Wo.
template <class T>
xt::xarray<T> conv2d_backward_bias(const xt::xarray<T>& dy);

/// dL/dX [N, C, H, W]: per image W^T * dY into col, then col2im (the fast route).
template <class T>
xt::xarray<T> conv2d_backward_input(const xt::xarray<T>& dy, const xt::xarray<T>& w, const Shape& x_shape,
                                    const Conv2dOptions& options = {});

/// dL/dX by the textbook route: dY dilated by the stride (s-1 zeros between elements), padded
/// by d(k-1)-p on the top/left, then correlated with the kernel rotated 180 degrees and with its
/// two channel axes swapped (a "full convolution"). Slow and direct; the oracle for
/// conv2d_backward_input.
template <class T>
xt::xarray<T> conv2d_backward_input_full_conv(const xt::xarray<T>& dy, const xt::xarray<T>& w,
                                              const Shape& x_shape, const Conv2dOptions& options = {});
/// @}

} // namespace tapegrad
