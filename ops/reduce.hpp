#pragma once
/// @file reduce.hpp
/// Reductions over all elements or over chosen axes. Negative axes count from the end.

#include <tapegrad/autograd/tensor.hpp>

#include <cstdint>
#include <vector>

namespace tapegrad
{

using Axes = std::vector<std::ptrdiff_t>;

/// Sum of all elements: a 0-dimensional (one-element) tensor.
template <class T>
BasicTensor<T> sum(const BasicTensor<T>& x);
/// Sum over `axes`; with keepdims the reduced axes stay with size 1.
template <class T>
BasicTensor<T> sum(const BasicTensor<T>& x, const Axes& axes, bool keepdims = false);
/// Mean of all elements (composed: sum / n).
template <class T>
BasicTensor<T> mean(const BasicTensor<T>& x);
/// Mean over `axes` (composed: sum / n).
template <class T>
BasicTensor<T> mean(const BasicTensor<T>& x, const Axes& axes, bool keepdims = false);
/// Maximum of all elements. The gradient goes to the first maximum in row-major order.
template <class T>
BasicTensor<T> max(const BasicTensor<T>& x);
/// Maximum along `axis`. The gradient goes to the first maximum along the axis. NaN is the maximum.
template <class T>
BasicTensor<T> max(const BasicTensor<T>& x, std::ptrdiff_t axis, bool keepdims = false);
/// Index of the first maximum along `axis` (not differentiable), e.g. predicted classes.
template <class T>
xt::xarray<std::int64_t> argmax(const BasicTensor<T>& x, std::ptrdiff_t axis);

} // namespace tapegrad
