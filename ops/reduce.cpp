#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/reduce.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace tapegrad
{

namespace
{
using Dims = xt::svector<std::size_t, 4>;

/// `axis` in [0, rank) (negative counts from the end); throws IndexError naming the op and shape.
template <class S>
std::size_t normalize_axis(std::ptrdiff_t axis, const S& shape, const char* op)
{
    const auto rank = static_cast<std::ptrdiff_t>(shape.size());
    const std::ptrdiff_t k = axis < 0 ? axis + rank : axis;
    if (k < 0 || k >= rank)
    {
        throw IndexError(detail::cat("tg::", op, ": axis ", axis, " is out of range for a tensor of shape ",
                                     shape_str(shape), " (rank ", rank, "); valid axes are ", -rank, "..",
                                     rank - 1));
    }
    return static_cast<std::size_t>(k);
}

/// Bit d set = dimension d is reduced. Throws for out-of-range or repeated axes.
template <class S>
std::uint64_t axes_mask(const Axes& axes, const S& shape, const char* op)
{
    if (shape.size() > 64)
    {
        throw ValueError(
          detail::cat("tg::", op, ": tensors of rank ", shape.size(), " > 64 are not supported"));
    }
    std::uint64_t mask = 0;
    for (std::ptrdiff_t a : axes)
    {
        const std::size_t d = normalize_axis(a, shape, op);
        if ((mask >> d) & 1u)
        {
            throw ValueError(detail::cat("tg::", op, ": axis ", a, " (dimension ", d,
                                         ") appears more than once in axes ", shape_str(axes),
                                         " for a tensor of shape ", shape_str(shape)));
        }
        mask |= std::uint64_t{1} << d;
    }
    return mask;
}

template <class S>
Dims reduced_shape(const S& shape, std::uint64_t mask, bool keepdims)
{
    Dims out;
    for (std::size_t d = 0; d < shape.size(); ++d)
    {
        if (!((mask >> d) & 1u))
        {
            out.push_back(shape[d]);
        }
        else if (keepdims)
        {
            out.push_back(1);
        }
    }
    return out;
}

/// How a reduction walks a contiguous input: adjacent dimensions of the same kind (reduced or kept)
/// merged, size-1 dimensions dropped. The last group is the contiguous inner run of length `inner`;
/// the groups before it are walked as `rows` rows by an odometer that tracks the output offset.
struct ReducePlan
{
    Dims size;
    Dims out_stride; // 0 for reduced groups
    bool inner_reduced = false;
    std::size_t inner = 1;
    std::size_t rows = 1;

    template <class S>
    ReducePlan(const S& shape, std::uint64_t mask)
    {
        Dims reduced_flag;
        for (std::size_t d = 0; d < shape.size(); ++d)
        {
            if (shape[d] == 1)
            {
                continue;
            }
            const std::size_t r = (mask >> d) & 1u;
            if (!size.empty() && reduced_flag.back() == r)
            {
                size.back() *= shape[d];
            }
            else
            {
                size.push_back(shape[d]);
                reduced_flag.push_back(r);
            }
        }
        out_stride.assign(size.size(), 0);
        std::size_t s = 1;
        for (std::size_t g = size.size(); g-- > 0;)
        {
            if (!reduced_flag[g])
            {
                out_stride[g] = s;
                s *= size[g];
            }
        }
        if (!size.empty())
        {
            inner = size.back();
            inner_reduced = reduced_flag.back() != 0;
            size.pop_back();
            out_stride.pop_back();
        }
        for (std::size_t v : size)
        {
            rows *= v;
        }
    }

    /// Calls body(row, out_offset) for each row, in memory order.
    template <class Body>
    void for_each_row(Body body) const
    {
        const std::size_t rank = size.size();
        Dims idx(rank, 0);
        std::size_t off = 0;
        for (std::size_t r = 0; r < rows; ++r)
        {
            body(r, off);
            for (std::size_t d = rank; d-- > 0;)
            {
                off += out_stride[d];
                if (++idx[d] < size[d])
                {
                    break;
                }
                off -= out_stride[d] * idx[d];
                idx[d] = 0;
            }
        }
    }
};

// ---------------------------------------------------------------------------------------------
// Forward kernels

/// Sum of n contiguous values: vectorised partial sums over blocks (omp simd allows the
/// reassociation), the block results added in double to bound the rounding error.
template <class T>
double sum_contiguous(const T* p, std::size_t n)
{
    constexpr std::size_t block = 4096;
    double total = 0.0;
    for (std::size_t b0 = 0; b0 < n; b0 += block)
    {
        const std::size_t b1 = std::min(n, b0 + block);
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (std::size_t i = b0; i < b1; ++i)
        {
            acc += p[i];
        }
        total += static_cast<double>(acc);
    }
    return total;
}

template <class T>
void sum_axes_forward(const T* x, const ReducePlan& plan, T* out, std::size_t out_size)
{
    std::fill(out, out + out_size, T(0));
    const std::size_t inner = plan.inner;
    if (plan.inner_reduced)
    {
        plan.for_each_row([&](std::size_t r, std::size_t o)
                          { out[o] += static_cast<T>(sum_contiguous(x + r * inner, inner)); });
    }
    else
    {
        plan.for_each_row(
          [&](std::size_t r, std::size_t o)
          {
              const T* row = x + r * inner;
              T* dst = out + o;
              for (std::size_t j = 0; j < inner; ++j)
              {
                  dst[j] += row[j];
              }
          });
    }
}

/// Index of the first maximum of x[0], x[step], ..., x[(n-1) step]; NaN counts as the maximum.
template <class T>
std::size_t argmax_strided(const T* x, std::size_t n, std::size_t step)
{
    std::size_t best = 0;
    T m = x[0];
    for (std::size_t r = 1; r < n && !std::isnan(m); ++r)
    {
        const T v = x[r * step];
        if (v > m || std::isnan(v))
        {
            m = v;
            best = r;
        }
    }
    return best;
}

/// Maximum along the middle dimension of [outer, n >= 1, inner]: values and first-maximum indices.
/// With inner > 1 the scan runs row by row over contiguous inner runs (cache-friendly).
template <class T>
void max_along(const T* x, std::size_t outer, std::size_t n, std::size_t inner, T* out, std::int64_t* idx)
{
    for (std::size_t o = 0; o < outer; ++o)
    {
        const T* base = x + o * n * inner;
        T* m = out + o * inner;
        std::int64_t* at = idx + o * inner;
        if (inner == 1)
        {
            const std::size_t r = argmax_strided(base, n, 1);
            *at = static_cast<std::int64_t>(r);
            *m = base[r];
            continue;
        }
        std::copy(base, base + inner, m);
        std::fill(at, at + inner, std::int64_t{0});
        for (std::size_t r = 1; r < n; ++r)
        {
            const T* row = base + r * inner;
            for (std::size_t j = 0; j < inner; ++j)
            {
                const T v = row[j];
                if (v > m[j] || (std::isnan(v) && !std::isnan(m[j])))
                {
                    m[j] = v;
                    at[j] = static_cast<std::int64_t>(r);
                }
            }
        }
    }
}

struct AxisSplit
{
    std::size_t outer = 1, n = 1, inner = 1;
};

/// [outer, n, inner] around dimension `axis`; a 0-d tensor counts as [1].
template <class S>
AxisSplit split_at(const S& shape, std::size_t axis)
{
    AxisSplit s;
    for (std::size_t d = 0; d < shape.size(); ++d)
    {
        if (d < axis)
        {
            s.outer *= shape[d];
        }
        else if (d == axis)
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

template <class T>
void check_nonempty_axis(const xt::xarray<T>& v, std::size_t n, std::ptrdiff_t axis, const char* op)
{
    if (n == 0)
    {
        throw ValueError(detail::cat("tg::", op, ": axis ", axis, " of the tensor of shape ",
                                     shape_str(v.shape()),
                                     " has size 0, and a maximum over no elements is undefined"));
    }
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

/// dx = g broadcast back over the reduced dimensions.
template <class T>
void sum_axes_backward(const T* g, const ReducePlan& plan, T* dx)
{
    const std::size_t inner = plan.inner;
    if (plan.inner_reduced)
    {
        plan.for_each_row([&](std::size_t r, std::size_t o)
                          { std::fill(dx + r * inner, dx + (r + 1) * inner, g[o]); });
    }
    else
    {
        plan.for_each_row([&](std::size_t r, std::size_t o)
                          { std::copy(g + o, g + o + inner, dx + r * inner); });
    }
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T>
BasicTensor<T> sum(const BasicTensor<T>& x)
{
    const auto& v = x.value();
    auto out = xt::xarray<T>::from_shape(Dims{});
    out.data()[0] = v.size() == 1 ? v.data()[0] : static_cast<T>(sum_contiguous(v.data(), v.size()));
    return record<T>("sum", std::move(out), {x}, Saves::nothing(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d sum(x)/dx_i = 1
                         xt::xarray<T> dx(ctx.input_shape(0), ctx.grad_output().data()[0]);
                         ctx.accumulate(0, std::move(dx));
                     });
}

template <class T>
BasicTensor<T> sum(const BasicTensor<T>& x, const Axes& axes, bool keepdims)
{
    const auto& v = x.value();
    const std::uint64_t mask = axes_mask(axes, v.shape(), "sum");
    auto out = xt::xarray<T>::from_shape(reduced_shape(v.shape(), mask, keepdims));
    if (v.size() == 1)
    {
        out.data()[0] = v.data()[0];
    }
    else if (v.size() == 0)
    {
        std::fill(out.begin(), out.end(), T(0));
    }
    else
    {
        sum_axes_forward(v.data(), ReducePlan(v.shape(), mask), out.data(), out.size());
    }
    return record<T>("sum", std::move(out), {x}, Saves::nothing(),
                     [mask](BackwardContext<T>& ctx)
                     {
                         // d sum(x)/dx_i = 1: every input element receives the gradient of its sum
                         const auto& shape = ctx.input_shape(0);
                         auto dx = xt::xarray<T>::from_shape(shape);
                         const T* g = ctx.grad_output().data();
                         if (dx.size() == 1)
                         {
                             dx.data()[0] = g[0];
                         }
                         else if (dx.size() > 0)
                         {
                             sum_axes_backward(g, ReducePlan(shape, mask), dx.data());
                         }
                         ctx.accumulate(0, std::move(dx));
                     });
}

template <class T>
BasicTensor<T> mean(const BasicTensor<T>& x)
{
    return mul_scalar(sum(x), T(1) / static_cast<T>(x.numel()));
}

template <class T>
BasicTensor<T> mean(const BasicTensor<T>& x, const Axes& axes, bool keepdims)
{
    const auto& shape = x.value().shape();
    const std::uint64_t mask = axes_mask(axes, shape, "mean");
    std::size_t n = 1;
    for (std::size_t d = 0; d < shape.size(); ++d)
    {
        n *= (mask >> d) & 1u ? shape[d] : 1;
    }
    return mul_scalar(sum(x, axes, keepdims), T(1) / static_cast<T>(n));
}

template <class T>
BasicTensor<T> max(const BasicTensor<T>& x)
{
    const auto& v = x.value();
    if (v.size() == 0)
    {
        throw ValueError(detail::cat("tg::max: the tensor of shape ", shape_str(v.shape()),
                                     " is empty, and a maximum over no elements is undefined"));
    }
    const std::size_t at = argmax_strided(v.data(), v.size(), 1);
    auto out = xt::xarray<T>::from_shape(Dims{});
    out.data()[0] = v.data()[at];
    return record<T>("max", std::move(out), {x}, Saves::nothing(),
                     [at](BackwardContext<T>& ctx)
                     {
                         // d max(x)/dx_i = 1 for the first maximum, else 0
                         xt::xarray<T> dx(ctx.input_shape(0), T(0));
                         dx.data()[at] = ctx.grad_output().data()[0];
                         ctx.accumulate(0, std::move(dx));
                     });
}

template <class T>
BasicTensor<T> max(const BasicTensor<T>& x, std::ptrdiff_t axis, bool keepdims)
{
    const auto& v = x.value();
    const bool scalar = v.dimension() == 0;
    const std::size_t d =
      scalar ? normalize_axis(axis, Shape{1}, "max") : normalize_axis(axis, v.shape(), "max");
    const AxisSplit s = scalar ? AxisSplit{} : split_at(v.shape(), d);
    check_nonempty_axis(v, s.n, axis, "max");
    auto out =
      xt::xarray<T>::from_shape(scalar ? Dims{} : reduced_shape(v.shape(), std::uint64_t{1} << d, keepdims));
    xt::svector<std::int64_t, 4> idx(s.outer * s.inner); // inline for tiny outputs: no allocation
    max_along(v.data(), s.outer, s.n, s.inner, out.data(), idx.data());
    return record<T>("max", std::move(out), {x}, Saves::nothing(),
                     [s, idx = std::move(idx)](BackwardContext<T>& ctx)
                     {
                         // d max(x)/dx = 1 at the first maximum along the axis, else 0
                         xt::xarray<T> dx(ctx.input_shape(0), T(0));
                         const T* g = ctx.grad_output().data();
                         T* px = dx.data();
                         for (std::size_t o = 0; o < s.outer; ++o)
                         {
                             for (std::size_t j = 0; j < s.inner; ++j)
                             {
                                 const auto r = static_cast<std::size_t>(idx[o * s.inner + j]);
                                 px[(o * s.n + r) * s.inner + j] = g[o * s.inner + j];
                             }
                         }
                         ctx.accumulate(0, std::move(dx));
                     });
}

template <class T>
xt::xarray<std::int64_t> argmax(const BasicTensor<T>& x, std::ptrdiff_t axis)
{
    const auto& v = x.value();
    const bool scalar = v.dimension() == 0;
    const std::size_t d =
      scalar ? normalize_axis(axis, Shape{1}, "argmax") : normalize_axis(axis, v.shape(), "argmax");
    const AxisSplit s = scalar ? AxisSplit{} : split_at(v.shape(), d);
    check_nonempty_axis(v, s.n, axis, "argmax");
    const Dims shape = scalar ? Dims{} : reduced_shape(v.shape(), std::uint64_t{1} << d, false);
    auto idx = xt::xarray<std::int64_t>::from_shape(shape);
    std::vector<T> values(idx.size());
    max_along(v.data(), s.outer, s.n, s.inner, values.data(), idx.data());
    return idx;
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> sum<T>(const BasicTensor<T>&);                                                   \
    template BasicTensor<T> sum<T>(const BasicTensor<T>&, const Axes&, bool);                                \
    template BasicTensor<T> mean<T>(const BasicTensor<T>&);                                                  \
    template BasicTensor<T> mean<T>(const BasicTensor<T>&, const Axes&, bool);                               \
    template BasicTensor<T> max<T>(const BasicTensor<T>&);                                                   \
    template BasicTensor<T> max<T>(const BasicTensor<T>&, std::ptrdiff_t, bool);                             \
    template xt::xarray<std::int64_t> argmax<T>(const BasicTensor<T>&, std::ptrdiff_t);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
