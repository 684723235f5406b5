#include "support/support.hpp"

#include <omp.h>

namespace tg = tapegrad;
using Catch::Matchers::Contains;
using tg::test::gradcheck_ok;
using tg::test::uniform;
using tg::test::vals;

namespace
{
/// Naive reference for a [B?, M?, K] @ b [B?, K, N?]: a 2-D operand is shared by every batch
/// entry, a 1-D one is a row (a) or column (b) vector. Returns the values in row-major order.
template <class T>
std::vector<double> naive_matmul(const xt::xarray<T>& a, const xt::xarray<T>& b)
{
    const std::size_t ra = a.dimension(), rb = b.dimension();
    const std::size_t m = ra == 1 ? 1 : a.shape()[ra - 2];
    const std::size_t k = a.shape()[ra - 1];
    const std::size_t n = rb == 1 ? 1 : b.shape()[rb - 1];
    const std::size_t batch = ra == 3 ? a.shape()[0] : rb == 3 ? b.shape()[0] : 1;
    std::vector<double> out;
    for (std::size_t bi = 0; bi < batch; ++bi)
    {
        const T* pa = a.data() + (ra == 3 ? bi * m * k : 0);
        const T* pb = b.data() + (rb == 3 ? bi * k * n : 0);
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                double acc = 0;
                for (std::size_t p = 0; p < k; ++p)
                {
                    acc += static_cast<double>(pa[i * k + p]) * static_cast<double>(pb[p * n + j]);
                }
                out.push_back(acc);
            }
        }
    }
    return out;
}

struct Case
{
    tg::Shape a, b, out;
};

// Tiny (plain loop, m n k <= 32) and larger (BLAS) sizes, every rank combination the rules allow.
const std::vector<Case> cases = {{{2, 3}, {3, 4}, {2, 4}},
                                 {{9, 10}, {10, 8}, {9, 8}},
                                 {{17, 33}, {33, 9}, {17, 9}},
                                 {{3, 4, 5}, {3, 5, 2}, {3, 4, 2}},
                                 {{2, 8, 9}, {2, 9, 10}, {2, 8, 10}},
                                 {{4}, {4, 3}, {3}},
                                 {{2, 4}, {4}, {2}},
                                 {{4}, {4}, {}},
                                 {{40}, {40, 30}, {30}},
                                 {{3, 4, 5}, {5, 2}, {3, 4, 2}},
                                 {{3, 9, 10}, {10, 8}, {3, 9, 8}},
                                 {{4, 5}, {3, 5, 2}, {3, 4, 2}},
                                 {{9, 10}, {3, 10, 8}, {3, 9, 8}},
                                 {{5}, {3, 5, 2}, {3, 2}},
                                 {{3, 4, 5}, {5}, {3, 4}},
                                 {{1, 1}, {1, 1}, {1, 1}}};
} // namespace

TEST_CASE("matmul of 2x2 matrices: hand-computed values and gradients", "[matmul]")
{
    auto a = tg::from_vector<double>({1, 2, 3, 4}, {2, 2}, true);
    auto b = tg::from_vector<double>({5, 6, 7, 8}, {2, 2}, true);
    auto c = tg::matmul(a, b);
    CHECK(vals(c) == std::vector<double>{19, 22, 43, 50});
    c.backward(tg::ones<double>({2, 2}));
    // dA = 1 B^T: row sums of B; dB = A^T 1: column sums of A, repeated along the row.
    CHECK(vals(a.grad()) == std::vector<double>{11, 15, 11, 15});
    CHECK(vals(b.grad()) == std::vector<double>{4, 4, 6, 6});
}

TEMPLATE_TEST_CASE("matmul matches a naive reference for every supported rank", "[matmul]", float, double)
{
    tg::Generator gen(41);
    for (const auto& c : cases)
    {
        INFO(tg::shape_str(c.a) << " @ " << tg::shape_str(c.b));
        auto a = tg::rand<TestType>(c.a, gen);
        auto b = tg::rand<TestType>(c.b, gen);
        auto y = tg::matmul(a, b);
        CHECK(y.shape() == c.out);
        CHECK_THAT(vals(y), Catch::Matchers::Approx(naive_matmul(a.value(), b.value())).epsilon(1e-5));
    }
}

TEST_CASE("matmul passes gradcheck for every supported rank", "[matmul]")
{
    tg::Generator gen(42);
    for (const auto& c : cases)
    {
        INFO(tg::shape_str(c.a) << " @ " << tg::shape_str(c.b));
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::matmul(in[0], in[1]); },
                     {uniform(c.a, gen), uniform(c.b, gen)});
    }
}

/// Naive dA = G B^T and dB = A^T G for a [B?, M, K] @ b [B?, K, N] (shared 2-D operands summed).
std::pair<std::vector<double>, std::vector<double>> naive_matmul_grads(const xt::xarray<double>& a,
                                                                       const xt::xarray<double>& b,
                                                                       const xt::xarray<double>& g)
{
    const bool a3 = a.dimension() == 3, b3 = b.dimension() == 3;
    const std::size_t batch = g.shape()[0];
    const std::size_t m = a.shape()[a.dimension() - 2], k = a.shape()[a.dimension() - 1],
                      n = b.shape()[b.dimension() - 1];
    std::vector<double> da(a.size(), 0.0), db(b.size(), 0.0);
    for (std::size_t bi = 0; bi < batch; ++bi)
    {
        const std::size_t oa = a3 ? bi * m * k : 0, ob = b3 ? bi * k * n : 0, og = bi * m * n;
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                for (std::size_t p = 0; p < k; ++p)
                {
                    da[oa + i * k + p] += g.data()[og + i * n + j] * b.data()[ob + p * n + j];
                    db[ob + p * n + j] += a.data()[oa + i * k + p] * g.data()[og + i * n + j];
                }
            }
        }
    }
    return {da, db};
}

TEST_CASE("batched matmul gradients match a naive reference on the threaded path", "[matmul]")
{
    // Large enough batches to run the GEMMs on OpenMP threads; shared operands accumulate.
    tg::Generator gen(46);
    const std::vector<Case> big = {{{4, 48, 40}, {4, 40, 48}, {4, 48, 48}},
                                   {{48, 40}, {4, 40, 48}, {4, 48, 48}},
                                   {{4, 48, 40}, {40, 48}, {4, 48, 48}}};
    for (const auto& c : big)
    {
        INFO(tg::shape_str(c.a) << " @ " << tg::shape_str(c.b));
        auto a = uniform(c.a, gen);
        auto b = uniform(c.b, gen);
        auto y = tg::matmul(a, b);
        REQUIRE(y.shape() == c.out);
        CHECK_THAT(vals(y), Catch::Matchers::Approx(naive_matmul(a.value(), b.value())).margin(1e-12));
        auto seed = uniform(c.out, gen, -1.0, 1.0, false);
        y.backward(seed);
        const auto [da, db] = naive_matmul_grads(a.value(), b.value(), seed.value());
        CHECK_THAT(vals(a.grad()), Catch::Matchers::Approx(da).margin(1e-12));
        CHECK_THAT(vals(b.grad()), Catch::Matchers::Approx(db).margin(1e-12));
    }
}

TEST_CASE("matmul computes only the gradients that are needed", "[matmul]")
{
    tg::Generator gen(43);
    auto a = uniform({3, 4}, gen, -1.0, 1.0, true);
    auto b = uniform({4, 2}, gen, -1.0, 1.0, false);
    auto y = tg::matmul(a, b);
    y.backward(tg::ones<double>({3, 2}));
    CHECK_FALSE(b.grad().defined());
    auto x = uniform({2, 4}, gen, -1.0, 1.0, false);
    auto w = uniform({3, 4}, gen, -1.0, 1.0, true);
    tg::linear(x, w).backward(tg::ones<double>({2, 3}));
    CHECK_FALSE(x.grad().defined());
    // dW[o][p] = sum_i x[i][p]
    CHECK(w.grad().value()(2, 1) == Approx(x.value()(0, 1) + x.value()(1, 1)));
    // dA[i][p] = sum_j B[p][j]
    for (std::size_t i = 0; i < 3; ++i)
    {
        for (std::size_t p = 0; p < 4; ++p)
        {
            CHECK(a.grad().value()(i, p) == Approx(b.value()(p, 0) + b.value()(p, 1)));
        }
    }
}

TEST_CASE("matmul with an empty inner dimension gives zeros", "[matmul]")
{
    auto a = tg::zeros<double>({2, 0}, true);
    auto b = tg::zeros<double>({0, 3}, true);
    auto y = tg::matmul(a, b);
    REQUIRE(y.shape() == tg::Shape{2, 3});
    CHECK(vals(y) == std::vector<double>(6, 0.0));
    y.backward(tg::ones<double>({2, 3}));
    CHECK(a.grad().shape() == tg::Shape{2, 0});
    CHECK(b.grad().shape() == tg::Shape{0, 3});
}

TEST_CASE("matmul rejects incompatible shapes", "[matmul]")
{
    auto a = tg::zeros<double>({2, 3});
    auto b = tg::zeros<double>({4, 5});
    REQUIRE_THROWS_AS(tg::matmul(a, b), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::matmul(a, b),
                        "tg::matmul: inner dimensions differ: a is [2, 3], b is [4, 5]; a [M, K] "
                        "@ b [K, N] needs a's last size (3) = b's first size (4)");
    REQUIRE_THROWS_WITH(tg::matmul(tg::zeros<double>({2, 2, 3}), tg::zeros<double>({2, 4, 5})),
                        Contains("inner dimensions differ") && Contains("[2, 2, 3]") &&
                          Contains("[2, 4, 5]"));
    REQUIRE_THROWS_AS(tg::matmul(tg::zeros<double>({2, 2, 3}), tg::zeros<double>({3, 3, 5})), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::matmul(tg::zeros<double>({2, 2, 3}), tg::zeros<double>({3, 3, 5})),
                        Contains("batch sizes differ") && Contains("[2, 2, 3]") && Contains("[3, 3, 5]"));
    REQUIRE_THROWS_AS(tg::matmul(tg::zeros<float>({}), tg::zeros<float>({3})), tg::ShapeError);
    REQUIRE_THROWS_AS(tg::matmul(tg::zeros<float>({1, 2, 2, 3}), tg::zeros<float>({3, 2})), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::matmul(tg::zeros<float>({3}), tg::zeros<float>({4})),
                        Contains("tg::matmul") && Contains("[3]") && Contains("[4]"));
}

TEST_CASE("linear: hand-computed values and gradients", "[matmul]")
{
    tg::TapeScope scope;
    auto x = tg::from_vector<double>({1, 2, 3, 4}, {2, 2}, true);
    auto w = tg::from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2}, true);
    auto b = tg::from_vector<double>({0.5, -1, 2}, {3}, true);
    auto y = tg::linear(x, w, b);
    // rows of x W^T: [1, 2, 3] and [3, 4, 7], plus b.
    REQUIRE(y.shape() == tg::Shape{2, 3});
    CHECK(vals(y) == std::vector<double>{1.5, 1, 5, 3.5, 3, 9});
    const auto names = tg::current_tape().op_names();
    REQUIRE(names.size() == 1); // the bias is part of the linear op
    CHECK(std::string(names[0]) == "linear");
    y.backward(tg::ones<double>({2, 3}));
    // dx = 1 W: column sums of W; dW = 1^T x: column sums of x per row; db = column sums of 1.
    CHECK(vals(x.grad()) == std::vector<double>{2, 2, 2, 2});
    CHECK(vals(w.grad()) == std::vector<double>{4, 6, 4, 6, 4, 6});
    CHECK(vals(b.grad()) == std::vector<double>{2, 2, 2});
}

TEST_CASE("linear passes gradcheck with and without bias", "[matmul]")
{
    tg::Generator gen(44);
    for (const tg::Shape& xs : std::vector<tg::Shape>{{3, 4}, {4}, {2, 3, 4}, {20, 4}})
    {
        INFO("x " << tg::shape_str(xs));
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::linear(in[0], in[1], in[2]); },
                     {uniform(xs, gen), uniform({5, 4}, gen), uniform({5}, gen)});
        gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::linear(in[0], in[1]); },
                     {uniform(xs, gen), uniform({5, 4}, gen)});
    }
    gradcheck_ok([](const std::vector<tg::Tensor64>& in) { return tg::linear(in[0], in[1], in[2]); },
                 {uniform({16, 12}, gen), uniform({10, 12}, gen), uniform({10}, gen)});
}

TEST_CASE("linear in float32 matches x W^T + b", "[matmul]")
{
    tg::Generator gen(45);
    auto x = tg::randn<float>({64, 128}, gen);
    auto w = tg::randn<float>({10, 128}, gen);
    auto b = tg::randn<float>({10}, gen);
    auto y = tg::linear(x, w, b);
    REQUIRE(y.shape() == tg::Shape{64, 10});
    for (std::size_t i = 0; i < 64; i += 7)
    {
        for (std::size_t o = 0; o < 10; ++o)
        {
            double acc = b.value()(o);
            for (std::size_t p = 0; p < 128; ++p)
            {
                acc += static_cast<double>(x.value()(i, p)) * w.value()(o, p);
            }
            CHECK(y.value()(i, o) == Approx(acc).epsilon(1e-4).margin(1e-4));
        }
    }
}

TEST_CASE("linear rejects incompatible shapes", "[matmul]")
{
    auto x = tg::zeros<double>({2, 3});
    REQUIRE_THROWS_AS(tg::linear(x, tg::zeros<double>({4, 5})), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::linear(x, tg::zeros<double>({4, 5})),
                        Contains("tg::linear") && Contains("[2, 3]") && Contains("[4, 5]"));
    REQUIRE_THROWS_AS(tg::linear(x, tg::zeros<double>({3})), tg::ShapeError);
    REQUIRE_THROWS_AS(tg::linear(tg::zeros<double>({}), tg::zeros<double>({4, 3})), tg::ShapeError);
    REQUIRE_THROWS_AS(tg::linear(x, tg::zeros<double>({4, 3}), tg::zeros<double>({3})), tg::ShapeError);
    REQUIRE_THROWS_WITH(tg::linear(x, tg::zeros<double>({4, 3}), tg::zeros<double>({3})),
                        Contains("tg::linear") && Contains("b is [3]") && Contains("[4, 3]"));
}

TEST_CASE(
  "linear and matmul with a long inner dimension (split between threads) are exact and thread-independent",
  "[matmul]")
{
    // k = 16384 against m = n = 16: the product runs as two halves of k added afterwards. Small
    // integers make every sum exact, so the result must equal the naive one bit for bit; the
    // halves are fixed, so 1 and 2 threads must agree too.
    tg::Generator gen(46);
    const auto ints = [&](const tg::Shape& s)
    {
        auto a = xt::xarray<float>::from_shape(s);
        for (auto& v : a)
        {
            v = static_cast<float>(static_cast<int>(gen.below(5)) - 2);
        }
        return a;
    };
    const auto x = ints({16, 16384}), w = ints({16, 16384}), b = ints({16});
    const auto g = ints({16, 16});
    const int before = omp_get_max_threads();
    std::vector<std::vector<xt::xarray<float>>> runs;
    for (int threads : {1, 2})
    {
        omp_set_num_threads(threads);
        tg::Tensor tx(x, true), tw(w, true), tb(b, true);
        auto y = tg::linear(tx, tw, tb);
        y.backward(tg::Tensor(g));
        const auto prod = tg::matmul(tg::Tensor(x), tg::Tensor(xt::xarray<float>(xt::transpose(w)))).value();
        runs.push_back({y.value(), prod, tx.grad().value(), tw.grad().value()});
    }
    omp_set_num_threads(before);
    const xt::xarray<float> wt = xt::transpose(w);
    const auto want = naive_matmul(x, wt);
    for (std::size_t i = 0; i < 16; ++i)
    {
        for (std::size_t o = 0; o < 16; ++o)
        {
            const float with_bias = static_cast<float>(want[i * 16 + o] + b(o));
            CHECK(runs[0][0](i, o) == with_bias);
            CHECK(runs[0][1](i, o) == static_cast<float>(want[i * 16 + o]));
        }
    }
    for (std::size_t r = 0; r < runs[0].size(); ++r)
    {
        const bool same = runs[1][r] == runs[0][r];
        CHECK(same);
    }
}
