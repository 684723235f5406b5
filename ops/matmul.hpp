#pragma once
/// @file matmul.hpp
/// Matrix products on BLAS (sgemm/dgemm).

#include <tapegrad/autograd/tensor.hpp>

namespace tapegrad
{

/// Matrix product.
/// - a [M, K] and b [K, N] give [M, N];
/// - a [B, M, K] and b [B, K, N] give [B, M, N] (batched, same B);
/// - a 1-D operand is a row (left) or column (right) vector, and that dimension is dropped.
/// Throws ShapeError naming both shapes when the inner sizes differ.
template <class T>
BasicTensor<T> matmul(const BasicTensor<T>& a, const BasicTensor<T>& b);

/// x W^T + b as in PyTorch: x [N, in], w [out, in], b [out] or undefined; gives [N, out].
template <class T>
BasicTensor<T> linear(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b = {});

} // namespace tapegrad
