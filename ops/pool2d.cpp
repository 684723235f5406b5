#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/pool2d.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tapegrad
{

namespace
{
/// Argmax/argmin positions are flat indices into one H x W input plane (so H * W < 2^31).
using Index = std::int32_t;

/// Below this many input elements the planes are pooled on the calling thread only.
constexpr std::int64_t parallel_threshold = std::int64_t{1} << 15;

/// Max pooling: NaN beats everything, as in LibTorch (`val > best || isnan(val)`), so a window
/// holding NaN yields NaN and routes its gradient to the NaN (the last NaN if there are several).
/// Otherwise the comparison is strict, so ties go to the first maximum in row-major window order.
template <class T>
struct MaxOrder
{
    static constexpr T worst = -std::numeric_limits<T>::infinity();
    static bool wins(T v, T best) { return (v > best) | (v != v); } // `|`: no branch
};

/// Min pooling, the mirror image of MaxOrder (NaN wins here too).
template <class T>
struct MinOrder
{
    static constexpr T worst = std::numeric_limits<T>::infinity();
    static bool wins(T v, T best) { return (v < best) | (v != v); }
};

/// The input positions one output position reads along one axis: first, first + d, ... < end
/// (padding already clipped away), and `area`, the divisor extent of average pooling.
struct AxisWindow
{
    std::int64_t first = 0;
    std::int64_t end = 0;
    std::int64_t area = 0;
};

/// Everything the kernels need, validated once per call.
struct Geometry
{
    std::int64_t planes = 0; // N * C
    std::int64_t h = 0, w = 0;
    std::int64_t oh = 0, ow = 0;
    std::int64_t dh = 1, dw = 1;
    bool count_include_pad = true;
    bool is_2x2_stride2 = false; // no padding, no dilation, every window inside the input
    std::vector<AxisWindow> rows, cols;

    std::int64_t in_plane() const { return h * w; }
    std::int64_t out_plane() const { return oh * ow; }
};

/// What error messages say about the call; formatted only when something is thrown.
struct Call
{
    const char* op;
    const Shape& shape;
    Size2 kernel, stride, padding, dilation;

    std::string str() const
    {
        const auto pair = [](const Size2& s) { return detail::cat("(", s.h, ", ", s.w, ")"); };
        return detail::cat("tg::", op, ": input ", shape_str(shape), " with kernel ", pair(kernel),
                           ", stride ", pair(stride), ", padding ", pair(padding), ", dilation ",
                           pair(dilation));
    }
};

/// Strips window.cpp's "tg::pool2d: " so that the rule reads as part of the op's own message.
std::string_view rule_of(const char* what)
{
    std::string_view rule(what);
    constexpr std::string_view prefix = "tg::pool2d: ";
    if (rule.starts_with(prefix))
    {
        rule.remove_prefix(prefix.size());
    }
    return rule;
}

std::int64_t output_size(const Call& call, const char* axis, std::int64_t in, std::int64_t k, std::int64_t s,
                         std::int64_t p, std::int64_t d, bool ceil_mode)
{
    try
    {
        return pool2d_output_size(in, k, s, p, d, ceil_mode);
    }
    catch (const ShapeError& e)
    {
        throw ShapeError(detail::cat(call.str(), ": along the ", axis, ", ", rule_of(e.what())));
    }
    catch (const ValueError& e)
    {
        throw ValueError(detail::cat(call.str(), ": along the ", axis, ", ", rule_of(e.what())));
    }
}

std::vector<AxisWindow> axis_windows(const Call& call, const char* axis, std::int64_t in, std::int64_t out,
                                     std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d)
{
    std::vector<AxisWindow> windows(static_cast<std::size_t>(out));
    for (std::int64_t o = 0; o < out; ++o)
    {
        const std::int64_t start = o * s - p;
        AxisWindow& a = windows[static_cast<std::size_t>(o)];
        a.first = start < 0 ? start + (-start + d - 1) / d * d : start;
        a.end = std::min(start + (k - 1) * d + 1, in);
        // PyTorch's divisor extent: the window clipped to the padded input, before clipping to the input.
        a.area = std::min(start + k, in + p) - start;
        if (a.first >= a.end)
        {
            throw ShapeError(detail::cat(call.str(), ": along the ", axis, ", window ", o, " (", k,
                                         " positions starting at ", start, ", ", d,
                                         " apart) lies entirely in ", "the padding of an input of size ", in,
                                         ", so it has no element to pool"));
        }
    }
    return windows;
}

enum class Kind
{
    max,
    min,
    avg
};

Geometry make_geometry(const char* op, Kind kind, const Shape& shape, const Pool2dOptions& o)
{
    if (shape.size() != 4)
    {
        throw ShapeError(detail::cat("tg::", op, ": expected a 4-D input [N, C, H, W], got shape ",
                                     shape_str(shape), " (rank ", shape.size(), ")"));
    }
    const Size2 kernel = o.kernel;
    const Size2 stride = o.stride.given ? o.stride : kernel;
    const Size2 padding = o.padding.given ? o.padding : Size2(0);
    const Size2 dilation = o.dilation.given ? o.dilation : Size2(1);
    const Call call{op, shape, kernel, stride, padding, dilation};
    if (!kernel.given || kernel.h == 0 || kernel.w == 0)
    {
        throw ValueError(detail::cat(call.str(), ": the kernel size is required (Pool2dOptions::kernel, e.g. "
                                                 "{.kernel = 2}) and must be >= 1 along both axes"));
    }
    if (kind == Kind::avg && !(dilation == Size2(1)))
    {
        throw ValueError(detail::cat(call.str(), ": average pooling has no dilation (it must be 1)"));
    }
    Geometry g;
    const auto n = static_cast<std::int64_t>(shape[0]);
    const auto c = static_cast<std::int64_t>(shape[1]);
    g.h = static_cast<std::int64_t>(shape[2]);
    g.w = static_cast<std::int64_t>(shape[3]);
    g.oh = output_size(call, "height", g.h, kernel.h, stride.h, padding.h, dilation.h, o.ceil_mode);
    g.ow = output_size(call, "width", g.w, kernel.w, stride.w, padding.w, dilation.w, o.ceil_mode);
    if (g.h * g.w > std::numeric_limits<Index>::max())
    {
        throw ShapeError(detail::cat(call.str(), ": an input plane of ", g.h, " x ", g.w,
                                     " elements is too large (the recorded window positions are 32-bit)"));
    }
    g.planes = n * c;
    g.dh = dilation.h;
    g.dw = dilation.w;
    g.count_include_pad = o.count_include_pad;
    g.is_2x2_stride2 = kernel == Size2(2) && stride == Size2(2) && padding == Size2(0) &&
                       dilation == Size2(1) && 2 * g.oh <= g.h && 2 * g.ow <= g.w;
    if (!g.is_2x2_stride2) // the 2x2 kernels need no window tables (and without padding none can fail)
    {
        g.rows = axis_windows(call, "height", g.h, g.oh, kernel.h, stride.h, padding.h, dilation.h);
        g.cols = axis_windows(call, "width", g.w, g.ow, kernel.w, stride.w, padding.w, dilation.w);
    }
    return g;
}

/// Runs body(p) for every input plane p, in parallel when there is enough work.
template <class Body>
void for_each_plane(const Geometry& g, Body body)
{
    // A plain branch, not an `if` clause: `omp parallel if (false)` still sets up a thread team.
    if (g.planes == 1 || g.planes * g.in_plane() < parallel_threshold)
    {
        for (std::int64_t p = 0; p < g.planes; ++p)
        {
            body(p);
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (std::int64_t p = 0; p < g.planes; ++p)
    {
        body(p);
    }
}

/// Calls body(j) for j in [0, n) as vector code: in `omp simd` chunks of L, the last chunk
/// overlapping the one before. gcc would otherwise finish each short row (14 windows on a 28-wide
/// input) with a scalar tail that costs 7x the rest of the row. body(j) must be safe to repeat.
template <std::int64_t L, class Body>
void simd_chunks(std::int64_t n, Body body)
{
    for (std::int64_t j0 = 0;; j0 += L)
    {
        j0 = std::min(j0, n - L);
#pragma omp simd
        for (std::int64_t j = j0; j < j0 + L; ++j)
        {
            body(j);
        }
        if (j0 + L == n)
        {
            return;
        }
    }
}

template <class Body>
void simd_for(std::int64_t n, Body body)
{
    if (n >= 8)
    {
        simd_chunks<8>(n, body);
    }
    else if (n >= 4)
    {
        simd_chunks<4>(n, body);
    }
    else
    {
        for (std::int64_t j = 0; j < n; ++j)
        {
            body(j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward kernels, one H x W plane each. The 2x2 ones are branch-free, with 32-bit offsets, so
// that they vectorise.

/// 2x2 windows, stride 2: the window at (i, j) reads x[2i..2i+1, 2j..2j+1].
template <class T, class Order, bool Record>
void extreme_forward_2x2(const T* x, T* y, Index* at, const Geometry& g)
{
    const auto w = static_cast<Index>(g.w);
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        const T* r0 = x + 2 * i * g.w;
        const T* r1 = r0 + g.w;
        T* yo = y + i * g.ow;
        Index* ao = Record ? at + i * g.ow : nullptr;
        const auto base = static_cast<Index>(2 * i * g.w);
        simd_for(g.ow,
                 [&](std::int64_t j)
                 {
                     T best = r0[2 * j];
                     Index off = 0;
                     const T b = r0[2 * j + 1];
                     const bool tb = Order::wins(b, best);
                     best = tb ? b : best;
                     off = tb ? 1 : off;
                     const T c = r1[2 * j];
                     const bool tc = Order::wins(c, best);
                     best = tc ? c : best;
                     off = tc ? w : off;
                     const T d = r1[2 * j + 1];
                     const bool td = Order::wins(d, best);
                     best = td ? d : best;
                     off = td ? w + 1 : off;
                     yo[j] = best;
                     if constexpr (Record)
                     {
                         ao[j] = base + static_cast<Index>(2 * j) + off;
                     }
                 });
    }
}

template <class T, class Order, bool Record>
void extreme_forward_general(const T* x, T* y, Index* at, const Geometry& g)
{
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        const AxisWindow& r = g.rows[static_cast<std::size_t>(i)];
        for (std::int64_t j = 0; j < g.ow; ++j)
        {
            const AxisWindow& c = g.cols[static_cast<std::size_t>(j)];
            T best = Order::worst; // what the padding holds: it never wins
            std::int64_t best_at = r.first * g.w + c.first;
            for (std::int64_t ih = r.first; ih < r.end; ih += g.dh)
            {
                for (std::int64_t iw = c.first; iw < c.end; iw += g.dw)
                {
                    const T v = x[ih * g.w + iw];
                    if (Order::wins(v, best))
                    {
                        best = v;
                        best_at = ih * g.w + iw;
                    }
                }
            }
            y[i * g.ow + j] = best;
            if constexpr (Record)
            {
                at[i * g.ow + j] = static_cast<Index>(best_at);
            }
        }
    }
}

template <class T>
void avg_forward_2x2(const T* x, T* y, const Geometry& g)
{
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        const T* r0 = x + 2 * i * g.w;
        const T* r1 = r0 + g.w;
        T* yo = y + i * g.ow;
        simd_for(g.ow, [&](std::int64_t j)
                 { yo[j] = (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]) * T(0.25); });
    }
}

/// PyTorch's divisor: the window clipped to the padded input (count_include_pad) or to the input.
template <class T>
T avg_divisor(const AxisWindow& r, const AxisWindow& c, bool count_include_pad)
{
    return static_cast<T>(count_include_pad ? r.area * c.area : (r.end - r.first) * (c.end - c.first));
}

template <class T>
void avg_forward_general(const T* x, T* y, const Geometry& g)
{
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        const AxisWindow& r = g.rows[static_cast<std::size_t>(i)];
        for (std::int64_t j = 0; j < g.ow; ++j)
        {
            const AxisWindow& c = g.cols[static_cast<std::size_t>(j)];
            T sum = 0;
            for (std::int64_t ih = r.first; ih < r.end; ++ih)
            {
                for (std::int64_t iw = c.first; iw < c.end; ++iw)
                {
                    sum += x[ih * g.w + iw];
                }
            }
            y[i * g.ow + j] = sum / avg_divisor<T>(r, c, g.count_include_pad);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward kernels, one plane each. Every one writes each element of dx once per covering
// window and needs no zero-filled buffer: the 2x2 ones write every window element directly
// (windows do not overlap), the general ones zero their plane while it is in cache.

/// Zeroes what no 2x2 window covers: the columns from 2*ow on, and the rows from 2*oh on.
template <class T>
void zero_uncovered_2x2(T* dx, const Geometry& g)
{
    if (2 * g.ow < g.w)
    {
        for (std::int64_t ih = 0; ih < 2 * g.oh; ++ih)
        {
            std::fill(dx + ih * g.w + 2 * g.ow, dx + (ih + 1) * g.w, T(0));
        }
    }
    std::fill(dx + 2 * g.oh * g.w, dx + g.in_plane(), T(0));
}

/// The gradient at each window's winner, zeros at its other three elements.
template <class T>
void extreme_backward_2x2(const T* gy, const Index* at, T* dx, const Geometry& g)
{
    const auto w = static_cast<Index>(g.w);
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        T* d0 = dx + 2 * i * g.w;
        T* d1 = d0 + g.w;
        const T* go = gy + i * g.ow;
        const Index* ao = at + i * g.ow;
        const auto base = static_cast<Index>(2 * i * g.w);
        simd_for(g.ow,
                 [&](std::int64_t j)
                 {
                     const T v = go[j];
                     const Index off = ao[j] - base - static_cast<Index>(2 * j);
                     d0[2 * j] = off == 0 ? v : T(0);
                     d0[2 * j + 1] = off == 1 ? v : T(0);
                     d1[2 * j] = off == w ? v : T(0);
                     d1[2 * j + 1] = off == w + 1 ? v : T(0);
                 });
    }
    zero_uncovered_2x2(dx, g);
}

/// Accumulates where overlapping windows share a winner.
template <class T>
void extreme_backward_general(const T* gy, const Index* at, T* dx, const Geometry& g)
{
    std::fill(dx, dx + g.in_plane(), T(0));
    for (std::int64_t o = 0; o < g.out_plane(); ++o)
    {
        dx[at[o]] += gy[o];
    }
}

template <class T>
void avg_backward_2x2(const T* gy, T* dx, const Geometry& g)
{
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        T* d0 = dx + 2 * i * g.w;
        T* d1 = d0 + g.w;
        const T* go = gy + i * g.ow;
        simd_for(g.ow,
                 [&](std::int64_t j)
                 {
                     const T v = go[j] * T(0.25);
                     d0[2 * j] = v;
                     d0[2 * j + 1] = v;
                     d1[2 * j] = v;
                     d1[2 * j + 1] = v;
                 });
    }
    zero_uncovered_2x2(dx, g);
}

/// Each output gradient divided by its window's divisor and added to the window's input elements
/// (the padding receives nothing).
template <class T>
void avg_backward_general(const T* gy, T* dx, const Geometry& g)
{
    std::fill(dx, dx + g.in_plane(), T(0));
    for (std::int64_t i = 0; i < g.oh; ++i)
    {
        const AxisWindow& r = g.rows[static_cast<std::size_t>(i)];
        for (std::int64_t j = 0; j < g.ow; ++j)
        {
            const AxisWindow& c = g.cols[static_cast<std::size_t>(j)];
            const T v = gy[i * g.ow + j] / avg_divisor<T>(r, c, g.count_include_pad);
            for (std::int64_t ih = r.first; ih < r.end; ++ih)
            {
                for (std::int64_t iw = c.first; iw < c.end; ++iw)
                {
                    dx[ih * g.w + iw] += v;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Whole-tensor drivers: one plane per OpenMP iteration.

/// y = window max (Order = MaxOrder) or min; with Record, `at` receives each window's winner.
template <class T, class Order, bool Record>
void extreme_pool2d_forward(const xt::xarray<T>& x, xt::xarray<T>& y, Index* at, const Geometry& g)
{
    const T* px = x.data();
    T* py = y.data();
    for_each_plane(
      g,
      [&](std::int64_t p)
      {
          Index* ap = Record ? at + p * g.out_plane() : nullptr;
          if (g.is_2x2_stride2)
          {
              extreme_forward_2x2<T, Order, Record>(px + p * g.in_plane(), py + p * g.out_plane(), ap, g);
          }
          else
          {
              extreme_forward_general<T, Order, Record>(px + p * g.in_plane(), py + p * g.out_plane(), ap, g);
          }
      });
}

template <class T>
xt::xarray<T> extreme_pool2d_backward(const xt::xarray<T>& gy, const Index* at, const Geometry& g,
                                      const typename xt::xarray<T>::shape_type& x_shape)
{
    auto dx = xt::xarray<T>::from_shape(x_shape);
    const T* pg = gy.data();
    T* pdx = dx.data();
    for_each_plane(g,
                   [&](std::int64_t p)
                   {
                       const std::int64_t o = p * g.out_plane();
                       if (g.is_2x2_stride2)
                       {
                           extreme_backward_2x2(pg + o, at + o, pdx + p * g.in_plane(), g);
                       }
                       else
                       {
                           extreme_backward_general(pg + o, at + o, pdx + p * g.in_plane(), g);
                       }
                   });
    return dx;
}

template <class T>
void avg_pool2d_forward(const xt::xarray<T>& x, xt::xarray<T>& y, const Geometry& g)
{
    const T* px = x.data();
    T* py = y.data();
    for_each_plane(g,
                   [&](std::int64_t p)
                   {
                       if (g.is_2x2_stride2)
                       {
                           avg_forward_2x2(px + p * g.in_plane(), py + p * g.out_plane(), g);
                       }
                       else
                       {
                           avg_forward_general(px + p * g.in_plane(), py + p * g.out_plane(), g);
                       }
                   });
}

template <class T>
xt::xarray<T> avg_pool2d_backward(const xt::xarray<T>& gy, const Geometry& g,
                                  const typename xt::xarray<T>::shape_type& x_shape)
{
    auto dx = xt::xarray<T>::from_shape(x_shape);
    const T* pg = gy.data();
    T* pdx = dx.data();
    for_each_plane(g,
                   [&](std::int64_t p)
                   {
                       if (g.is_2x2_stride2)
                       {
                           avg_backward_2x2(pg + p * g.out_plane(), pdx + p * g.in_plane(), g);
                       }
                       else
                       {
                           avg_backward_general(pg + p * g.out_plane(), pdx + p * g.in_plane(), g);
                       }
                   });
    return dx;
}

/// The pooled output [N, C, oh, ow], uninitialised, for record() (new_output).
template <class T>
std::shared_ptr<TensorImpl<T>> output_impl(const Shape& x_shape, const Geometry& g)
{
    return new_output<T>(
      {x_shape[0], x_shape[1], static_cast<std::size_t>(g.oh), static_cast<std::size_t>(g.ow)});
}

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T, class Order>
BasicTensor<T> extreme_pool2d(const char* name, Kind kind, const BasicTensor<T>& x,
                              const Pool2dOptions& options)
{
    const Shape shape = x.shape();
    Geometry g = make_geometry(name, kind, shape, options);
    auto out = output_impl<T>(shape, g);
    xt::xarray<T>& y = out->new_value();
    if (!should_record<T>({x}))
    {
        extreme_pool2d_forward<T, Order, false>(x.value(), y, nullptr, g);
        return BasicTensor<T>(std::move(out));
    }
    auto at = std::make_unique_for_overwrite<Index[]>(y.size());
    extreme_pool2d_forward<T, Order, true>(x.value(), y, at.get(), g);
    return record<T>(
      name, std::move(out), {x}, Saves::nothing(),
      [g = std::move(g), at = std::move(at)](BackwardContext<T>& ctx)
      {
          // dy/dx = 1 at the window's recorded winner, 0 elsewhere
          if (ctx.needs_grad(0))
          {
              ctx.accumulate(0, extreme_pool2d_backward(ctx.grad_output(), at.get(), g, ctx.input_shape(0)));
          }
      });
}
} // namespace

template <class T>
BasicTensor<T> max_pool2d(const BasicTensor<T>& x, const Pool2dOptions& options)
{
    return extreme_pool2d<T, MaxOrder<T>>("max_pool2d", Kind::max, x, options);
}

template <class T>
BasicTensor<T> min_pool2d(const BasicTensor<T>& x, const Pool2dOptions& options)
{
    return extreme_pool2d<T, MinOrder<T>>("min_pool2d", Kind::min, x, options);
}

template <class T>
BasicTensor<T> avg_pool2d(const BasicTensor<T>& x, const Pool2dOptions& options)
{
    const Shape shape = x.shape();
    Geometry g = make_geometry("avg_pool2d", Kind::avg, shape, options);
    auto out = output_impl<T>(shape, g);
    avg_pool2d_forward(x.value(), out->new_value(), g);
    return record<T>("avg_pool2d", std::move(out), {x}, Saves::nothing(),
                     [g = std::move(g)](BackwardContext<T>& ctx)
                     {
                         // dy/dx = 1 / divisor for each input element of the window
                         if (ctx.needs_grad(0))
                         {
                             ctx.accumulate(0, avg_pool2d_backward(ctx.grad_output(), g, ctx.input_shape(0)));
                         }
                     });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> max_pool2d<T>(const BasicTensor<T>&, const Pool2dOptions&);                      \
    template BasicTensor<T> min_pool2d<T>(const BasicTensor<T>&, const Pool2dOptions&);                      \
    template BasicTensor<T> avg_pool2d<T>(const BasicTensor<T>&, const Pool2dOptions&);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
