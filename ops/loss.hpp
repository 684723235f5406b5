#pragma once
/// @file loss.hpp
/// Loss functions. Each returns a one-element tensor for Reduction::mean (the default) and
/// Reduction::sum, or per-element losses for Reduction::none.

#include <tapegrad/autograd/tensor.hpp>

#include <cstdint>
#include <vector>

namespace tapegrad
{

enum class Reduction
{
    mean,
    sum,
    none
};

/// Class indices, one per sample.
using Labels = std::vector<std::int64_t>;

/// -(t log p + (1 - t) log(1 - p)), with each log clamped at -100 as in PyTorch so p = 0 or 1
/// gives a finite loss and gradient. p and target have the same shape; p in [0, 1].
template <class T>
BasicTensor<T> binary_cross_entropy(const BasicTensor<T>& p, const BasicTensor<T>& target,
                                    Reduction reduction = Reduction::mean);
/// binary_cross_entropy(sigmoid(z), t) computed stably: max(z, 0) - z t + log(1 + e^-|z|).
template <class T>
BasicTensor<T> binary_cross_entropy_with_logits(const BasicTensor<T>& z, const BasicTensor<T>& target,
                                                Reduction reduction = Reduction::mean);
/// logits [N, C], labels N class indices in [0, C): nll_loss(log_softmax(logits, 1), labels), fused.
template <class T>
BasicTensor<T> cross_entropy(const BasicTensor<T>& logits, const Labels& labels,
                             Reduction reduction = Reduction::mean);
/// logp [N, C] log-probabilities: -logp[n, labels[n]].
template <class T>
BasicTensor<T> nll_loss(const BasicTensor<T>& logp, const Labels& labels,
                        Reduction reduction = Reduction::mean);
/// (a - b)^2, same shapes.
template <class T>
BasicTensor<T> mse_loss(const BasicTensor<T>& a, const BasicTensor<T>& b,
                        Reduction reduction = Reduction::mean);

} // namespace tapegrad
