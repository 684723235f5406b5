#pragma once
/// @file dropout.hpp
/// Inverted dropout.

#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/autograd/tensor.hpp>

namespace tapegrad
{

/// While training, zeroes each element with probability p (drawn from `gen`) and scales the rest
/// by 1 / (1 - p); otherwise returns x unchanged. p must be in [0, 1).
template <class T>
BasicTensor<T> dropout(const BasicTensor<T>& x, double p, bool training, Generator& gen);

} // namespace tapegrad
