#pragma once
/// @file shape.hpp
/// Reshape, flatten and transpose. Their VJPs move the gradient back to the input's layout.

#include <tapegrad/autograd/tensor.hpp>

#include <vector>

namespace tapegrad
{

/// The same values in `shape` (row-major). One entry may be -1 and is inferred.
template <class T>
BasicTensor<T> reshape(const BasicTensor<T>& x, const std::vector<std::ptrdiff_t>& shape);
/// Merges dimensions start_dim..end_dim into one. [N, C, H, W] -> [N, C*H*W] by default.
/// The VJP is a reshape back.
template <class T>
BasicTensor<T> flatten(const BasicTensor<T>& x, std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1);
/// Swaps dimensions d0 and d1 (materialised, contiguous).
template <class T>
BasicTensor<T> transpose(const BasicTensor<T>& x, std::ptrdiff_t d0, std::ptrdiff_t d1);

} // namespace tapegrad
