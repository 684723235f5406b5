// Loss functions, each one fused recorded op: the forward computes every per-element loss in a raw
// loop and reduces it in the same pass; the VJP recomputes what it needs from the saved inputs.
//
// Reductions: mean and sum give a 0-d tensor, none gives one loss per element ([N] for
// cross_entropy and nll_loss, the input shape otherwise). Mean and sum accumulate in double.
//
// PyTorch compatibility of binary_cross_entropy: each log is clamped at -100, so p = 0 or 1 gives
// a finite loss (100 for the wrong class). The gradient with respect to p is PyTorch's
// (p - t) / max((1 - p) p, 1e-12): it is the derivative of the unclamped loss wherever
// (1 - p) p >= 1e-12, and stays finite (at most 1e12 in magnitude) at p = 0 or 1, where the clamped
// loss is flat and its true derivative would be 0 on one side.

#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/loss.hpp>

#include <algorithm>
#include <cmath>

namespace tapegrad
{

namespace
{
template <class S>
Shape shape_of(const S& s)
{
    return Shape(s.begin(), s.end());
}

template <class T>
void require_same_shape(const BasicTensor<T>& a, const BasicTensor<T>& b, const char* op, const char* a_name,
                        const char* b_name)
{
    const auto& sa = a.value().shape();
    const auto& sb = b.value().shape();
    if (sa.size() != sb.size() || !std::equal(sa.begin(), sa.end(), sb.begin()))
    {
        throw ShapeError(detail::cat("tg::", op, ": ", a_name, " has shape ", shape_str(sa), " but ", b_name,
                                     " has shape ", shape_str(sb),
                                     "; they must have the same shape (no broadcasting)"));
    }
}

/// Checks that `logits` is [N, C] and every label is a class index in [0, C).
template <class T>
void check_class_inputs(const BasicTensor<T>& logits, const Labels& labels, const char* op, const char* what)
{
    const auto& s = logits.value().shape();
    if (s.size() != 2)
    {
        throw ShapeError(
          detail::cat("tg::", op, ": ", what, " must be 2-d [N, C], but has shape ", shape_str(s)));
    }
    if (labels.size() != s[0])
    {
        throw ShapeError(detail::cat("tg::", op, ": ", what, " has shape ", shape_str(s), " (N = ", s[0],
                                     ") but there are ", labels.size(),
                                     " labels; there must be one label per row"));
    }
    const auto c = static_cast<std::int64_t>(s[1]);
    for (std::size_t n = 0; n < labels.size(); ++n)
    {
        if (labels[n] < 0 || labels[n] >= c)
        {
            throw ValueError(
              detail::cat("tg::", op, ": label ", labels[n], " at index ", n,
                          " is out of range; labels must be class indices in [0, C) with C = ", c));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward kernels

/// The per-element losses loss(i), i < n, reduced: the losses themselves in `shape` for none, or
/// their mean or sum as a 0-d array.
template <class T, class F>
xt::xarray<T> reduce_losses(const Shape& shape, std::size_t n, Reduction reduction, F loss)
{
    if (reduction == Reduction::none)
    {
        auto out = xt::xarray<T>::from_shape(shape);
        T* o = out.data();
        for (std::size_t i = 0; i < n; ++i)
        {
            o[i] = loss(i);
        }
        return out;
    }
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i)
    {
        acc += static_cast<double>(loss(i));
    }
    if (reduction == Reduction::mean)
    {
        acc /= static_cast<double>(n);
    }
    auto out = xt::xarray<T>::from_shape(Shape{});
    out.data()[0] = static_cast<T>(acc);
    return out;
}

/// -(t log p + (1 - t) log(1 - p)), each log clamped at -100.
template <class T>
T bce(T p, T t)
{
    const T log_p = std::max(std::log(p), T(-100));
    const T log_1mp = std::max(std::log1p(-p), T(-100));
    return -(t * log_p + (T(1) - t) * log_1mp);
}

/// max(z, 0) - z t + log(1 + e^-|z|): never exponentiates a positive number.
template <class T>
T bce_with_logits(T z, T t)
{
    return std::max(z, T(0)) - z * t + std::log1p(std::exp(-std::abs(z)));
}

/// 1 / (1 + e^-z), exponentiating only non-positive numbers: exact 0 and 1 in the far tails.
template <class T>
T stable_sigmoid(T z)
{
    if (z >= 0)
    {
        return T(1) / (T(1) + std::exp(-z));
    }
    const T e = std::exp(z);
    return e / (T(1) + e);
}

/// log(sum_c exp(x[n, c])) for each row, with the row max subtracted first.
template <class T>
std::vector<T> row_logsumexp(const xt::xarray<T>& x)
{
    const std::size_t rows = x.shape()[0];
    const std::size_t cols = x.shape()[1];
    std::vector<T> lse(rows);
    for (std::size_t n = 0; n < rows; ++n)
    {
        const T* row = x.data() + n * cols;
        const T m = cols == 0 ? T(0) : *std::max_element(row, row + cols);
        T s = 0;
        for (std::size_t c = 0; c < cols; ++c)
        {
            s += std::exp(row[c] - m);
        }
        lse[n] = m + std::log(s);
    }
    return lse;
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

/// dL/d(loss_i): the gradient of the reduced output, spread back over the n per-element losses.
template <class T>
class LossGrad
{
  public:
    LossGrad(const xt::xarray<T>& grad_output, Reduction reduction, std::size_t n)
      : g_(grad_output.data())
      , per_element_(reduction == Reduction::none)
    {
        if (reduction == Reduction::sum)
        {
            scale_ = g_[0];
        }
        else if (reduction == Reduction::mean)
        {
            scale_ = g_[0] / static_cast<T>(n);
        }
    }
    T operator[](std::size_t i) const { return per_element_ ? g_[i] : scale_; }

  private:
    const T* g_;
    bool per_element_;
    T scale_ = 0;
};

/// out[i] = dL/d(loss_i) * dloss(i), shaped like an input of the loss.
template <class T, class S, class F>
xt::xarray<T> elementwise_grad(const S& shape, const LossGrad<T>& up, F dloss)
{
    auto out = xt::xarray<T>::from_shape(shape);
    T* o = out.data();
    for (std::size_t i = 0, n = out.size(); i < n; ++i)
    {
        o[i] = up[i] * dloss(i);
    }
    return out;
}

/// dL/dx[n, c] = dL/d(loss_n) (softmax(x)[n, c] - [c == label_n]), softmax = exp(x - logsumexp).
template <class T>
xt::xarray<T> cross_entropy_backward(const xt::xarray<T>& x, const std::vector<T>& lse, const Labels& labels,
                                     const LossGrad<T>& up)
{
    const std::size_t rows = x.shape()[0];
    const std::size_t cols = x.shape()[1];
    auto out = xt::xarray<T>::from_shape(x.shape());
    for (std::size_t n = 0; n < rows; ++n)
    {
        const T* row = x.data() + n * cols;
        T* o = out.data() + n * cols;
        const T g = up[n];
        for (std::size_t c = 0; c < cols; ++c)
        {
            o[c] = g * std::exp(row[c] - lse[n]);
        }
        o[labels[n]] -= g;
    }
    return out;
}

/// dL/dlogp[n, c] = -dL/d(loss_n) at c = label_n, 0 elsewhere.
template <class T, class S>
xt::xarray<T> nll_loss_backward(const S& shape, const Labels& labels, const LossGrad<T>& up)
{
    xt::xarray<T> out(shape, T(0));
    const std::size_t cols = shape[1];
    for (std::size_t n = 0; n < labels.size(); ++n)
    {
        out.data()[n * cols + static_cast<std::size_t>(labels[n])] = -up[n];
    }
    return out;
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T>
BasicTensor<T> binary_cross_entropy(const BasicTensor<T>& p, const BasicTensor<T>& target,
                                    Reduction reduction)
{
    require_same_shape(p, target, "binary_cross_entropy", "p", "target");
    const T* pp = p.value().data();
    const T* pt = target.value().data();
    const std::size_t n = p.numel();
    for (std::size_t i = 0; i < n; ++i)
    {
        if (!(pp[i] >= T(0) && pp[i] <= T(1)))
        {
            throw ValueError(
              detail::cat("tg::binary_cross_entropy: p must be a probability in [0, 1], but element ", i,
                          " of p is ", pp[i]));
        }
    }
    auto value = reduce_losses<T>(p.shape(), n, reduction, [&](std::size_t i) { return bce(pp[i], pt[i]); });
    return record<T>(
      "binary_cross_entropy", std::move(value), {p, target}, Saves::inputs({0, 1}),
      [reduction](BackwardContext<T>& ctx)
      {
          const T* p = ctx.input(0).data();
          const T* t = ctx.input(1).data();
          const LossGrad<T> up(ctx.grad_output(), reduction, ctx.input(0).size());
          // dl/dp = (p - t) / ((1 - p) p), the denominator clamped at 1e-12 as in PyTorch
          if (ctx.needs_grad(0))
          {
              ctx.accumulate(
                0, elementwise_grad(ctx.input_shape(0), up,
                                    [&](std::size_t i)
                                    { return (p[i] - t[i]) / std::max((T(1) - p[i]) * p[i], T(1e-12)); }));
          }
          // dl/dt = log(1 - p) - log(p), each clamped at -100 as in the forward
          if (ctx.needs_grad(1))
          {
              ctx.accumulate(1, elementwise_grad(ctx.input_shape(1), up,
                                                 [&](std::size_t i) {
                                                     return std::max(std::log1p(-p[i]), T(-100)) -
                                                            std::max(std::log(p[i]), T(-100));
                                                 }));
          }
      });
}

template <class T>
BasicTensor<T> binary_cross_entropy_with_logits(const BasicTensor<T>& z, const BasicTensor<T>& target,
                                                Reduction reduction)
{
    require_same_shape(z, target, "binary_cross_entropy_with_logits", "z", "target");
    const T* pz = z.value().data();
    const T* pt = target.value().data();
    auto value = reduce_losses<T>(z.shape(), z.numel(), reduction,
                                  [&](std::size_t i) { return bce_with_logits(pz[i], pt[i]); });
    return record<T>(
      "binary_cross_entropy_with_logits", std::move(value), {z, target}, Saves::inputs({0, 1}),
      [reduction](BackwardContext<T>& ctx)
      {
          const T* z = ctx.input(0).data();
          const T* t = ctx.input(1).data();
          const LossGrad<T> up(ctx.grad_output(), reduction, ctx.input(0).size());
          // dl/dz = sigmoid(z) - t
          if (ctx.needs_grad(0))
          {
              ctx.accumulate(0, elementwise_grad(ctx.input_shape(0), up,
                                                 [&](std::size_t i) { return stable_sigmoid(z[i]) - t[i]; }));
          }
          // dl/dt = -z
          if (ctx.needs_grad(1))
          {
              ctx.accumulate(1,
                             elementwise_grad(ctx.input_shape(1), up, [&](std::size_t i) { return -z[i]; }));
          }
      });
}

template <class T>
BasicTensor<T> cross_entropy(const BasicTensor<T>& logits, const Labels& labels, Reduction reduction)
{
    check_class_inputs(logits, labels, "cross_entropy", "logits");
    const auto& x = logits.value();
    const std::size_t cols = x.shape()[1];
    std::vector<T> lse = row_logsumexp(x);
    // loss_n = logsumexp(x[n]) - x[n, label_n] = -log_softmax(x)[n, label_n]
    auto value = reduce_losses<T>(
      Shape{labels.size()}, labels.size(), reduction,
      [&](std::size_t n) { return lse[n] - x.data()[n * cols + static_cast<std::size_t>(labels[n])]; });
    return record<T>("cross_entropy", std::move(value), {logits}, Saves::inputs({0}),
                     [lse = std::move(lse), labels, reduction](BackwardContext<T>& ctx)
                     {
                         // dl_n/dx[n] = softmax(x[n]) - onehot(label_n)
                         const LossGrad<T> up(ctx.grad_output(), reduction, labels.size());
                         ctx.accumulate(0, cross_entropy_backward(ctx.input(0), lse, labels, up));
                     });
}

template <class T>
BasicTensor<T> nll_loss(const BasicTensor<T>& logp, const Labels& labels, Reduction reduction)
{
    check_class_inputs(logp, labels, "nll_loss", "logp");
    const auto& x = logp.value();
    const std::size_t cols = x.shape()[1];
    auto value = reduce_losses<T>(Shape{labels.size()}, labels.size(), reduction,
                                  [&](std::size_t n)
                                  { return -x.data()[n * cols + static_cast<std::size_t>(labels[n])]; });
    return record<T>("nll_loss", std::move(value), {logp}, Saves::nothing(),
                     [labels, reduction](BackwardContext<T>& ctx)
                     {
                         // dl_n/dlogp[n, c] = -[c == label_n]
                         const LossGrad<T> up(ctx.grad_output(), reduction, labels.size());
                         ctx.accumulate(0, nll_loss_backward(ctx.input_shape(0), labels, up));
                     });
}

template <class T>
BasicTensor<T> mse_loss(const BasicTensor<T>& a, const BasicTensor<T>& b, Reduction reduction)
{
    require_same_shape(a, b, "mse_loss", "a", "b");
    const T* pa = a.value().data();
    const T* pb = b.value().data();
    auto value = reduce_losses<T>(a.shape(), a.numel(), reduction,
                                  [&](std::size_t i) { return (pa[i] - pb[i]) * (pa[i] - pb[i]); });
    return record<T>(
      "mse_loss", std::move(value), {a, b}, Saves::inputs({0, 1}),
      [reduction](BackwardContext<T>& ctx)
      {
          const T* a = ctx.input(0).data();
          const T* b = ctx.input(1).data();
          const LossGrad<T> up(ctx.grad_output(), reduction, ctx.input(0).size());
          // dl/da = 2 (a - b)
          if (ctx.needs_grad(0))
          {
              ctx.accumulate(0, elementwise_grad(ctx.input_shape(0), up,
                                                 [&](std::size_t i) { return T(2) * (a[i] - b[i]); }));
          }
          // dl/db = -2 (a - b)
          if (ctx.needs_grad(1))
          {
              ctx.accumulate(1, elementwise_grad(ctx.input_shape(1), up,
                                                 [&](std::size_t i) { return T(2) * (b[i] - a[i]); }));
          }
      });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> binary_cross_entropy<T>(const BasicTensor<T>&, const BasicTensor<T>&,            \
                                                    Reduction);                                              \
    template BasicTensor<T> binary_cross_entropy_with_logits<T>(const BasicTensor<T>&,                       \
                                                                const BasicTensor<T>&, Reduction);           \
    template BasicTensor<T> cross_entropy<T>(const BasicTensor<T>&, const Labels&, Reduction);               \
    template BasicTensor<T> nll_loss<T>(const BasicTensor<T>&, const Labels&, Reduction);                    \
    template BasicTensor<T> mse_loss<T>(const BasicTensor<T>&, const BasicTensor<T>&, Reduction);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
