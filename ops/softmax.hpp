#pragma once
/// @file softmax.hpp
/// softmax and log_softmax along one dimension, computed stably (shifted by the maximum).

#include <tapegrad/autograd/tensor.hpp>

namespace tapegrad
{

/// exp(x - max) / sum(exp(x - max)) along `dim`.
template <class T>
BasicTensor<T> softmax(const BasicTensor<T>& x, std::ptrdiff_t dim = -1);
/// x - max - log(sum(exp(x - max))) along `dim`.
template <class T>
BasicTensor<T> log_softmax(const BasicTensor<T>& x, std::ptrdiff_t dim = -1);

} // namespace tapegrad
