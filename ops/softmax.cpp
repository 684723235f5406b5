#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/softmax.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace tapegrad
{

namespace
{
/// The input viewed as [outer, n, inner] around the softmax dimension.
struct Split
{
    std::size_t outer = 1, n = 1, inner = 1;
};

template <class S>
Split split_at_dim(const S& shape, std::ptrdiff_t dim, const char* op)
{
    // A 0-d tensor is treated as [1] (softmax of a single value is 1), as in PyTorch.
    const auto rank = static_cast<std::ptrdiff_t>(std::max<std::size_t>(shape.size(), 1));
    const std::ptrdiff_t k = dim < 0 ? dim + rank : dim;
    if (k < 0 || k >= rank)
    {
        throw IndexError(detail::cat("tg::", op, ": dim ", dim, " is out of range for a tensor of shape ",
                                     shape_str(shape), "; valid dims are ", -rank, "..", rank - 1));
    }
    Split s;
    for (std::size_t d = 0; d < shape.size(); ++d)
    {
        if (d < static_cast<std::size_t>(k))
        {
            s.outer *= shape[d];
        }
        else if (d == static_cast<std::size_t>(k))
        {
            s.n = shape[d];
        }
        else
        {
            s.inner *= shape[d];
        }
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// Forward kernels

/// One contiguous line of n values (the softmax dim is the last one, or the only non-1 one).
template <class T>
void softmax_line(const T* x, std::size_t n, T* y, bool log)
{
    T m = x[0];
    for (std::size_t r = 1; r < n; ++r)
    {
        m = x[r] > m ? x[r] : m;
    }
    T s = 0;
    for (std::size_t r = 0; r < n; ++r)
    {
        y[r] = std::exp(x[r] - m);
        s += y[r];
    }
    if (log)
    {
        // log_softmax = x - m - log(s)
        const T shift = m + std::log(s);
        for (std::size_t r = 0; r < n; ++r)
        {
            y[r] = x[r] - shift;
        }
        return;
    }
    const T inv = T(1) / s;
    for (std::size_t r = 0; r < n; ++r)
    {
        y[r] *= inv;
    }
}

/// `inner` interleaved lines of n values (stride `inner`), processed together so that every inner
/// loop runs over contiguous memory. `m` and `s` are scratch of `inner` entries each.
template <class T>
void softmax_lines(const T* x, std::size_t n, std::size_t inner, T* y, bool log, T* m, T* s)
{
    std::copy(x, x + inner, m);
    for (std::size_t r = 1; r < n; ++r)
    {
        const T* row = x + r * inner;
        for (std::size_t j = 0; j < inner; ++j)
        {
            m[j] = row[j] > m[j] ? row[j] : m[j];
        }
    }
    std::fill(s, s + inner, T(0));
    for (std::size_t r = 0; r < n; ++r)
    {
        const T* row = x + r * inner;
        T* dst = y + r * inner;
        for (std::size_t j = 0; j < inner; ++j)
        {
            dst[j] = std::exp(row[j] - m[j]);
            s[j] += dst[j];
        }
    }
    for (std::size_t j = 0; j < inner; ++j)
    {
        s[j] = log ? m[j] + std::log(s[j]) : T(1) / s[j];
    }
    for (std::size_t r = 0; r < n; ++r)
    {
        const T* row = x + r * inner;
        T* dst = y + r * inner;
        for (std::size_t j = 0; j < inner; ++j)
        {
            dst[j] = log ? row[j] - s[j] : dst[j] * s[j];
        }
    }
}

template <class T>
xt::xarray<T> softmax_forward(const xt::xarray<T>& x, const Split& sp, bool log)
{
    auto y = xt::xarray<T>::from_shape(x.shape());
    if (sp.n == 0)
    {
        return y;
    }
    const std::size_t line = sp.n * sp.inner;
    if (sp.inner == 1)
    {
        for (std::size_t o = 0; o < sp.outer; ++o)
        {
            softmax_line(x.data() + o * line, sp.n, y.data() + o * line, log);
        }
        return y;
    }
    xt::svector<T, 16> scratch(2 * sp.inner);
    for (std::size_t o = 0; o < sp.outer; ++o)
    {
        softmax_lines(x.data() + o * line, sp.n, sp.inner, y.data() + o * line, log, scratch.data(),
                      scratch.data() + sp.inner);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

/// In place on g, for `inner` interleaved lines of n values:
///   softmax      dx = y (g - sum_r g y)
///   log_softmax  dx = g - e^y sum_r g      (e^y is the softmax)
/// `dot` is scratch of `inner` entries.
template <class T>
void softmax_backward_lines(T* g, const T* y, std::size_t n, std::size_t inner, bool log, T* dot)
{
    if (inner == 1)
    {
        T d = 0;
        for (std::size_t r = 0; r < n; ++r)
        {
            d += log ? g[r] : g[r] * y[r];
        }
        for (std::size_t r = 0; r < n; ++r)
        {
            g[r] = log ? g[r] - std::exp(y[r]) * d : y[r] * (g[r] - d);
        }
        return;
    }
    std::fill(dot, dot + inner, T(0));
    for (std::size_t r = 0; r < n; ++r)
    {
        for (std::size_t j = 0; j < inner; ++j)
        {
            const std::size_t i = r * inner + j;
            dot[j] += log ? g[i] : g[i] * y[i];
        }
    }
    for (std::size_t r = 0; r < n; ++r)
    {
        for (std::size_t j = 0; j < inner; ++j)
        {
            const std::size_t i = r * inner + j;
            g[i] = log ? g[i] - std::exp(y[i]) * dot[j] : y[i] * (g[i] - dot[j]);
        }
    }
}

template <class T>
void softmax_backward(T* g, const T* y, const Split& sp, bool log)
{
    const std::size_t line = sp.n * sp.inner;
    xt::svector<T, 8> dot(sp.inner);
    for (std::size_t o = 0; o < sp.outer; ++o)
    {
        softmax_backward_lines(g + o * line, y + o * line, sp.n, sp.inner, log, dot.data());
    }
}

template <class T>
BasicTensor<T> record_softmax(const BasicTensor<T>& x, std::ptrdiff_t dim, bool log)
{
    const char* name = log ? "log_softmax" : "softmax";
    const auto& v = x.value();
    const Split sp = split_at_dim(v.shape(), dim, name);
    return record<T>(name, softmax_forward(v, sp, log), {x}, Saves::only_output(),
                     [sp, log](BackwardContext<T>& ctx)
                     {
                         auto g = ctx.take_grad_output();
                         softmax_backward(g.data(), ctx.output().data(), sp, log);
                         ctx.accumulate(0, std::move(g));
                     });
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T>
BasicTensor<T> softmax(const BasicTensor<T>& x, std::ptrdiff_t dim)
{
    // d softmax_i/dx_j = y_i (delta_ij - y_j)  =>  dx = y (g - sum(g y))
    return record_softmax(x, dim, false);
}

template <class T>
BasicTensor<T> log_softmax(const BasicTensor<T>& x, std::ptrdiff_t dim)
{
    // d log_softmax_i/dx_j = delta_ij - softmax_j  =>  dx = g - softmax sum(g)
    return record_softmax(x, dim, true);
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> softmax<T>(const BasicTensor<T>&, std::ptrdiff_t);                               \
    template BasicTensor<T> log_softmax<T>(const BasicTensor<T>&, std::ptrdiff_t);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
