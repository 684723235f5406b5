// k-fold cross-validation splits (seed 004: with 5 folds, train on 4 and validate on the 5th, once
// per fold).

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include <algorithm>
#include <numeric>

namespace tg = tapegrad;

namespace
{

/// Checks the properties every split must have and returns the validation sizes.
std::vector<std::size_t> check_partition(const std::vector<tg::data::Fold>& folds, std::size_t n,
                                         std::size_t k)
{
    REQUIRE(folds.size() == k);
    std::vector<int> validated(n, 0);
    std::vector<std::size_t> sizes;
    for (const auto& f : folds)
    {
        REQUIRE(std::is_sorted(f.train.begin(), f.train.end()));
        REQUIRE(std::is_sorted(f.validation.begin(), f.validation.end()));
        REQUIRE(f.train.size() + f.validation.size() == n);
        std::vector<std::size_t> all;
        std::merge(f.train.begin(), f.train.end(), f.validation.begin(), f.validation.end(),
                   std::back_inserter(all));
        std::vector<std::size_t> expected(n);
        std::iota(expected.begin(), expected.end(), std::size_t{0});
        REQUIRE(all == expected); // train and validation are disjoint and cover [0, n)
        for (auto i : f.validation)
        {
            ++validated[i];
        }
        sizes.push_back(f.validation.size());
    }
    REQUIRE(std::all_of(validated.begin(), validated.end(), [](int c) { return c == 1; }));
    const auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
    REQUIRE(*hi - *lo <= 1);
    return sizes;
}

} // namespace

TEST_CASE("kfold without a generator validates on contiguous blocks", "[data][kfold]")
{
    const auto folds = tg::data::kfold(10, 3);
    REQUIRE(check_partition(folds, 10, 3) == std::vector<std::size_t>{4, 3, 3});
    REQUIRE(folds[0].validation == std::vector<std::size_t>{0, 1, 2, 3});
    REQUIRE(folds[1].validation == std::vector<std::size_t>{4, 5, 6});
    REQUIRE(folds[2].validation == std::vector<std::size_t>{7, 8, 9});
    REQUIRE(folds[1].train == std::vector<std::size_t>{0, 1, 2, 3, 7, 8, 9});
}

TEST_CASE("kfold with 5 folds trains on four and validates on the fifth (seed 004)", "[data][kfold]")
{
    const auto folds = tg::data::kfold(25, 5);
    check_partition(folds, 25, 5);
    for (std::size_t f = 0; f < 5; ++f)
    {
        std::vector<std::size_t> validation(5), train;
        std::iota(validation.begin(), validation.end(), 5 * f);
        for (std::size_t g = 0; g < 5; ++g)
        {
            for (std::size_t i = 5 * g; g != f && i < 5 * g + 5; ++i)
            {
                train.push_back(i);
            }
        }
        REQUIRE(folds[f].validation == validation);
        REQUIRE(folds[f].train == train);
    }
}

TEST_CASE("kfold with a generator shuffles reproducibly", "[data][kfold]")
{
    for (std::size_t n : {2u, 7u, 100u, 101u})
    {
        for (std::size_t k : {2u, 5u, 7u})
        {
            if (k > n)
            {
                continue;
            }
            tg::Generator g1(11), g2(11);
            const auto a = tg::data::kfold(n, k, &g1);
            const auto b = tg::data::kfold(n, k, &g2);
            const auto sizes = check_partition(a, n, k);
            REQUIRE(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}) == n);
            for (std::size_t f = 0; f < k; ++f)
            {
                REQUIRE(a[f].validation == b[f].validation);
            }
        }
    }
    tg::Generator g1(11), g2(12);
    const auto a = tg::data::kfold(100, 5, &g1);
    const auto b = tg::data::kfold(100, 5, &g2);
    const auto plain = tg::data::kfold(100, 5);
    REQUIRE(a[0].validation != b[0].validation);
    REQUIRE(a[0].validation != plain[0].validation);
}

TEST_CASE("kfold leave-one-out and errors", "[data][kfold]")
{
    const auto loo = tg::data::kfold(4, 4);
    check_partition(loo, 4, 4);
    REQUIRE(loo[2].validation == std::vector<std::size_t>{2});

    REQUIRE_THROWS_AS(tg::data::kfold(10, 1), tg::ValueError);
    REQUIRE_THROWS_AS(tg::data::kfold(10, 0), tg::ValueError);
    REQUIRE_THROWS_AS(tg::data::kfold(3, 4), tg::ValueError);
    REQUIRE_THROWS_AS(tg::data::kfold(0, 2), tg::ValueError);
    REQUIRE_THROWS_WITH(tg::data::kfold(3, 4),
                        Catch::Matchers::Contains("k = 4") && Catch::Matchers::Contains("n = 3"));
}
