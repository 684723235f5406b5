#pragma once
/// @file kfold.hpp
/// k-fold cross-validation splits.
///
/// The samples are divided into k folds; run i trains on every fold but fold i and validates on
/// fold i, so each sample is validated exactly once. Averaging the k validation scores gives a
/// more reliable estimate than one train/validation split when choosing hyperparameters.
///
///     for (const auto& fold : tg::data::kfold(train.size(), 5, &gen))
///     {
///         auto fit = train.subset(fold.train), check = train.subset(fold.validation);
///         ...
///     }

#include <tapegrad/autograd/generator.hpp>

#include <cstddef>
#include <vector>

namespace tapegrad::data
{

/// One run of k-fold cross-validation: sample indices to train on and to validate on, each list
/// sorted ascending, disjoint, together [0, n).
struct Fold
{
    std::vector<std::size_t> train;
    std::vector<std::size_t> validation;
};

/// Splits [0, n) into k folds. The validation lists partition [0, n); their sizes differ by at most
/// one (the first n % k folds have one sample more). Without `gen` fold i validates on a contiguous
/// block of indices; with `gen` the indices are first permuted (Fisher-Yates with
/// Generator::below), so the folds are random but reproducible from the seed.
///
/// Throws ValueError when k < 2 or k > n.
std::vector<Fold> kfold(std::size_t n, std::size_t k, Generator* gen = nullptr);

} // namespace tapegrad::data
