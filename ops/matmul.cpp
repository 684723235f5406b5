#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/blas.hpp>
#include <tapegrad/ops/matmul.hpp>

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <string>
#include <vector>

namespace tapegrad
{

namespace
{
// ---------------------------------------------------------------------------------------------
// GEMM on contiguous row-major matrices

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, const float* a,
               blasint lda, const float* b, blasint ldb, float beta, float* c, blasint ldc)
{
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, const double* a,
               blasint lda, const double* b, blasint ldb, double beta, double* c, blasint ldc)
{
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

/// Below this many multiply-adds a plain loop beats the BLAS call overhead (about 40 ns).
constexpr std::size_t tiny_gemm = 32;

/// A long, thin product (k far larger than m and n, e.g. the fashion CNN's first linear layer,
/// 64 x 3136 by 3136 x 128): OpenBLAS parallelises over m and n only, so every thread packs all
/// k rows of B. Splitting k between two threads instead took that layer's forward from 0.34 to
/// 0.25 ms at 2 threads.
bool long_inner(std::size_t m, std::size_t n, std::size_t k)
{
    return k >= 8 * std::max(m, n) && m * n * k >= (std::size_t{1} << 22);
}

/// C[m, n] (+)= op(A) op(B), op(A) [m, k], op(B) [k, n]. A is stored [m, k], or [k, m] when
/// `trans_a`; B is stored [k, n], or [n, k] when `trans_b`. `accumulate` adds into C instead of
/// overwriting it. The transposes are BLAS flags: no transposed copy is ever made.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const T* a, const T* b,
          bool accumulate, T* c)
{
    blas::warn_if_slow_kernels();
    if (m == 0 || n == 0)
    {
        return;
    }
    if (k == 0)
    {
        if (!accumulate)
        {
            std::fill(c, c + m * n, T(0));
        }
        return;
    }
    if (m * n * k <= tiny_gemm)
    {
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                T acc = accumulate ? c[i * n + j] : T(0);
                for (std::size_t p = 0; p < k; ++p)
                {
                    acc += (trans_a ? a[p * m + i] : a[i * k + p]) * (trans_b ? b[j * k + p] : b[p * n + j]);
                }
                c[i * n + j] = acc;
            }
        }
        return;
    }
    const auto bm = static_cast<blasint>(m);
    const auto bn = static_cast<blasint>(n);
    const auto lda = trans_a ? bm : static_cast<blasint>(k);
    const auto ldb = trans_b ? static_cast<blasint>(k) : bn;
    // The product over inner indices [k0, k1) into `out`, with beta 0 or 1.
    auto part = [&](std::size_t k0, std::size_t k1, T beta, T* out)
    {
        blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, bm, bn,
                  static_cast<blasint>(k1 - k0), a + (trans_a ? k0 * m : k0), lda,
                  b + (trans_b ? k0 : k0 * n), ldb, beta, out, bn);
    };
    if (!long_inner(m, n, k) || omp_in_parallel())
    {
        part(0, k, accumulate ? T(1) : T(0), c);
        return;
    }
    // Two halves of k, one per thread, the second added after: always two, so the bits do not
    // depend on the number of threads.
    std::vector<T> second(m * n);
#pragma omp parallel for schedule(static) if (omp_get_max_threads() > 1)
    for (int half = 0; half < 2; ++half)
    {
        if (half == 0)
        {
            part(0, k / 2, accumulate ? T(1) : T(0), c);
        }
        else
        {
            part(k / 2, k, T(0), second.data());
        }
    }
    for (std::size_t i = 0; i < m * n; ++i)
    {
        c[i] += second[i];
    }
}

/// A batch of `count` GEMMs of the same shape; `a_step`/`b_step` are 0 for an operand shared by all.
struct Batch
{
    std::size_t count = 1;
    std::size_t m = 0, k = 0, n = 0;
    bool a_batched = false;
    bool b_batched = false;

    std::size_t a_step() const { return a_batched ? m * k : 0; }
    std::size_t b_step() const { return b_batched ? k * n : 0; }
    std::size_t c_step() const { return m * n; }
    /// Worth OpenMP threads: several GEMMs with enough work to pay for waking the team.
    bool parallel() const { return count > 1 && count * m * n * k >= (std::size_t{1} << 18); }
};

template <class Body>
void for_each_gemm(const Batch& bt, Body body)
{
    if (!bt.parallel())
    {
        for (std::size_t i = 0; i < bt.count; ++i)
        {
            body(i);
        }
        return;
    }
    const auto count = static_cast<std::ptrdiff_t>(bt.count);
#pragma omp parallel for
    for (std::ptrdiff_t i = 0; i < count; ++i)
    {
        body(static_cast<std::size_t>(i));
    }
}

// ---------------------------------------------------------------------------------------------
// Shape rules

const char* a_pattern(std::size_t rank)
{
    return rank == 1 ? "[K]" : rank == 2 ? "[M, K]" : "[B, M, K]";
}
const char* b_pattern(std::size_t rank)
{
    return rank == 1 ? "[K]" : rank == 2 ? "[K, N]" : "[B, K, N]";
}

template <class S>
void check_blas_size(std::size_t v, const char* op, const char* a_name, const S& as, const char* b_name,
                     const S& bs)
{
    if (v > static_cast<std::size_t>(INT_MAX))
    {
        throw ValueError(detail::cat("tg::", op, ": ", a_name, " is ", shape_str(as), ", ", b_name, " is ",
                                     shape_str(bs), ": a matrix size of ", v,
                                     " exceeds the BLAS index limit (", INT_MAX, ")"));
    }
}

/// The GEMM batch for a @ b and the result shape (see matmul.hpp for the rules).
template <class S>
Batch matmul_batch(const S& as, const S& bs, Shape& out_shape)
{
    const std::size_t ra = as.size();
    const std::size_t rb = bs.size();
    auto shapes = [&] { return detail::cat("a is ", shape_str(as), ", b is ", shape_str(bs)); };
    if (ra < 1 || ra > 3 || rb < 1 || rb > 3)
    {
        throw ShapeError(
          detail::cat("tg::matmul: ", shapes(),
                      "; each operand must be 1-D (a vector), 2-D (a matrix) or 3-D (a batch of "
                      "matrices)"));
    }
    Batch bt;
    bt.m = ra == 1 ? 1 : as[ra - 2];
    bt.k = as[ra - 1];
    const std::size_t kb = rb == 1 ? bs[0] : bs[rb - 2];
    bt.n = rb == 1 ? 1 : bs[rb - 1];
    if (bt.k != kb)
    {
        const char* b_which = rb == 3 ? "middle" : "first";
        throw ShapeError(detail::cat("tg::matmul: inner dimensions differ: ", shapes(), "; a ", a_pattern(ra),
                                     " @ b ", b_pattern(rb), " needs a's last size (", bt.k, ") = b's ",
                                     b_which, " size (", kb, ")"));
    }
    const std::size_t batch_a = ra == 3 ? as[0] : 0;
    const std::size_t batch_b = rb == 3 ? bs[0] : 0;
    if (ra == 3 && rb == 3 && batch_a != batch_b)
    {
        throw ShapeError(detail::cat("tg::matmul: batch sizes differ: ", shapes(),
                                     "; a [B, M, K] @ b [B, K, N] needs the same B (", batch_a, " vs ",
                                     batch_b, ")"));
    }
    out_shape.clear();
    if (ra == 3 || rb == 3)
    {
        out_shape.push_back(ra == 3 ? batch_a : batch_b);
    }
    if (ra > 1)
    {
        out_shape.push_back(bt.m);
    }
    if (rb > 1)
    {
        out_shape.push_back(bt.n);
    }
    if (ra == 3 && rb < 3)
    {
        // [B, M, K] @ shared [K, N] is one GEMM of [B*M, K] @ [K, N].
        bt.m *= batch_a;
    }
    else if (rb == 3)
    {
        bt.count = batch_b;
        bt.a_batched = ra == 3;
        bt.b_batched = true;
    }
    for (std::size_t v : {bt.m, bt.n, bt.k})
    {
        check_blas_size(v, "matmul", "a", as, "b", bs);
    }
    return bt;
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T>
BasicTensor<T> matmul(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    const auto& va = a.value();
    const auto& vb = b.value();
    Shape out_shape;
    const Batch bt = matmul_batch(va.shape(), vb.shape(), out_shape);
    auto out = xt::xarray<T>::from_shape(out_shape);
    const T* pa = va.data();
    const T* pb = vb.data();
    T* pc = out.data();
    for_each_gemm(bt,
                  [&](std::size_t i)
                  {
                      gemm(false, false, bt.m, bt.n, bt.k, pa + i * bt.a_step(), pb + i * bt.b_step(), false,
                           pc + i * bt.c_step());
                  });
    return record<T>(
      "matmul", std::move(out), {a, b}, Saves::inputs({0, 1}),
      [bt](BackwardContext<T>& ctx)
      {
          const T* g = ctx.grad_output().data();
          // dA = dC B^T (summed over the batch when A is shared)
          if (ctx.needs_grad(0))
          {
              auto da = xt::xarray<T>::from_shape(ctx.input_shape(0));
              const T* pb = ctx.input(1).data();
              auto one = [&](std::size_t i)
              {
                  gemm(false, true, bt.m, bt.k, bt.n, g + i * bt.c_step(), pb + i * bt.b_step(),
                       !bt.a_batched && i > 0, da.data() + i * bt.a_step());
              };
              if (bt.a_batched || bt.count == 1)
              {
                  for_each_gemm(bt, one);
              }
              else
              {
                  for (std::size_t i = 0; i < bt.count; ++i)
                  {
                      one(i);
                  }
              }
              ctx.accumulate(0, std::move(da));
          }
          // dB = A^T dC (summed over the batch when B is shared)
          if (ctx.needs_grad(1))
          {
              auto db = xt::xarray<T>::from_shape(ctx.input_shape(1));
              const T* pa = ctx.input(0).data();
              auto one = [&](std::size_t i)
              {
                  gemm(true, false, bt.k, bt.n, bt.m, pa + i * bt.a_step(), g + i * bt.c_step(),
                       !bt.b_batched && i > 0, db.data() + i * bt.b_step());
              };
              if (bt.b_batched || bt.count == 1)
              {
                  for_each_gemm(bt, one);
              }
              else
              {
                  for (std::size_t i = 0; i < bt.count; ++i)
                  {
                      one(i);
                  }
              }
              ctx.accumulate(1, std::move(db));
          }
      });
}

template <class T>
BasicTensor<T> linear(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b)
{
    const auto& vx = x.value();
    const auto& vw = w.value();
    const auto& xs = vx.shape();
    const auto& ws = vw.shape();
    if (ws.size() != 2 || xs.empty() || xs.back() != ws[1])
    {
        throw ShapeError(detail::cat(
          "tg::linear: x is ", shape_str(xs), ", w is ", shape_str(ws),
          "; x [N, in] with w [out, in] needs a 2-D w and x's last size (",
          xs.empty() ? std::string("none, x is 0-d") : std::to_string(xs.back()), ") = w's second size (",
          ws.size() == 2 ? std::to_string(ws[1]) : std::string("none, w is not 2-D"), ")"));
    }
    const std::size_t in = ws[1];
    const std::size_t out_features = ws[0];
    if (b.defined() && (b.value().dimension() != 1 || b.value().shape()[0] != out_features))
    {
        throw ShapeError(detail::cat("tg::linear: b is ", shape_str(b.value().shape()), " but w is ",
                                     shape_str(ws), "; the bias must be 1-D with w's first size (",
                                     out_features, ")"));
    }
    Shape out_shape(xs.begin(), xs.end());
    out_shape.back() = out_features;
    std::size_t rows = 1;
    for (std::size_t d = 0; d + 1 < xs.size(); ++d)
    {
        rows *= xs[d];
    }
    for (std::size_t v : {rows, in, out_features})
    {
        check_blas_size(v, "linear", "x", xs, "w", ws);
    }
    auto y = xt::xarray<T>::from_shape(out_shape);
    const bool has_bias = b.defined();
    if (has_bias)
    {
        // The bias is folded in (one op instead of linear + add): each row starts as b.
        for (std::size_t r = 0; r < rows; ++r)
        {
            std::copy_n(b.value().data(), out_features, y.data() + r * out_features);
        }
    }
    // y [rows, out] (+)= x [rows, in] W^T, W^T being W [out, in] read transposed.
    gemm(false, true, rows, out_features, in, vx.data(), vw.data(), has_bias, y.data());
    return record<T>(
      "linear", std::move(y), {x, w, b}, Saves::inputs({0, 1}),
      [rows, in, out_features](BackwardContext<T>& ctx)
      {
          const T* g = ctx.grad_output().data();
          // dx = dy W
          if (ctx.needs_grad(0))
          {
              auto dx = xt::xarray<T>::from_shape(ctx.input_shape(0));
              gemm(false, false, rows, in, out_features, g, ctx.input(1).data(), false, dx.data());
              ctx.accumulate(0, std::move(dx));
          }
          // dW = dy^T x
          if (ctx.needs_grad(1))
          {
              auto dw = xt::xarray<T>::from_shape(ctx.input_shape(1));
              gemm(true, false, out_features, in, rows, g, ctx.input(0).data(), false, dw.data());
              ctx.accumulate(1, std::move(dw));
          }
          // db = the column sums of dy
          if (ctx.needs_grad(2))
          {
              xt::xarray<T> db(ctx.input_shape(2), T(0));
              for (std::size_t r = 0; r < rows; ++r)
              {
                  for (std::size_t j = 0; j < out_features; ++j)
                  {
                      db.data()[j] += g[r * out_features + j];
                  }
              }
              ctx.accumulate(2, std::move(db));
          }
      });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> matmul<T>(const BasicTensor<T>&, const BasicTensor<T>&);                         \
    template BasicTensor<T> linear<T>(const BasicTensor<T>&, const BasicTensor<T>&, const BasicTensor<T>&);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
