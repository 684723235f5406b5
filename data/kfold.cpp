#include <tapegrad/autograd/error.hpp>
#include <tapegrad/data/kfold.hpp>

#include <algorithm>
#include <numeric>

namespace tapegrad::data
{

std::vector<Fold> kfold(std::size_t n, std::size_t k, Generator* gen)
{
    if (k < 2 || k > n)
    {
        throw ValueError(
          detail::cat("tg::data::kfold: k = ", k, " folds of n = ", n,
                      " samples: need 2 <= k <= n (every fold must validate at least one sample)"));
    }
    std::vector<std::size_t> perm(n);
    std::iota(perm.begin(), perm.end(), std::size_t{0});
    if (gen != nullptr)
    {
        for (std::size_t i = n; i > 1; --i)
        {
            std::swap(perm[i - 1], perm[gen->below(i)]);
        }
    }

    // fold_of[sample] = the fold that validates it.
    std::vector<std::size_t> fold_of(n);
    std::vector<Fold> folds(k);
    std::size_t start = 0;
    for (std::size_t f = 0; f < k; ++f)
    {
        const std::size_t count = n / k + (f < n % k ? 1 : 0);
        for (std::size_t j = start; j < start + count; ++j)
        {
            fold_of[perm[j]] = f;
        }
        folds[f].validation.reserve(count);
        folds[f].train.reserve(n - count);
        start += count;
    }
    for (std::size_t i = 0; i < n; ++i)
    {
        for (std::size_t f = 0; f < k; ++f)
        {
            (fold_of[i] == f ? folds[f].validation : folds[f].train).push_back(i);
        }
    }
    return folds;
}

} // namespace tapegrad::data
