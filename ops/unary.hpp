#pragma once
/// @file unary.hpp
/// Elementwise math and activations. Output shape = input shape.

#include <tapegrad/autograd/tensor.hpp>

namespace tapegrad
{

/// e^x.
template <class T>
BasicTensor<T> exp(const BasicTensor<T>& x);
/// Natural log; values <= 0 give -inf/NaN as in IEEE arithmetic (no clamping).
template <class T>
BasicTensor<T> log(const BasicTensor<T>& x);
/// Square root.
template <class T>
BasicTensor<T> sqrt(const BasicTensor<T>& x);
/// x^p for a constant exponent p.
template <class T>
BasicTensor<T> pow(const BasicTensor<T>& x, double p);
/// a^b elementwise with broadcasting; the gradient wrt b uses log(a), so needs a > 0.
template <class T>
BasicTensor<T> pow(const BasicTensor<T>& a, const BasicTensor<T>& b);
/// |x|; the gradient at 0 is 0.
template <class T>
BasicTensor<T> abs(const BasicTensor<T>& x);
/// max(x, 0); NaN propagates as in LibTorch; the gradient at 0 is 0.
template <class T>
BasicTensor<T> relu(const BasicTensor<T>& x);
/// 1 / (1 + e^-x), computed without overflow for large |x|.
template <class T>
BasicTensor<T> sigmoid(const BasicTensor<T>& x);
/// Hyperbolic tangent.
template <class T>
BasicTensor<T> tanh(const BasicTensor<T>& x);

} // namespace tapegrad
