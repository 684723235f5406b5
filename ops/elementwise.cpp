#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>

#include <algorithm>

namespace tapegrad
{

using detail::shapes_equal;
using detail::sum_to;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op)
{
    const std::size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (std::size_t i = 0; i < rank; ++i)
    {
        const std::size_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        const std::size_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1)
        {
            throw ShapeError(
              detail::cat("tg::", op, ": shapes ", shape_str(a), " and ", shape_str(b),
                          " cannot be broadcast: aligned from the right, sizes must be equal or 1, "
                          "but dimension ",
                          i, " of the result would need ", da, " and ", db));
        }
        out[i] = da == 1 ? db : da;
    }
    return out;
}

namespace
{
using Strides = xt::svector<std::size_t, 4>;
/// xarray's own shape type: no heap allocation up to rank 4.
using Dims = xt::svector<std::size_t, 4>;

/// Row-major strides of `shape` placed in a rank-`rank` frame, with 0 where the dimension is
/// broadcast (missing or of size 1).
template <class S>
Strides broadcast_strides(const S& shape, std::size_t rank)
{
    Strides st(rank, 0);
    std::size_t stride = 1;
    for (std::size_t k = shape.size(); k-- > 0;)
    {
        const std::size_t i = k + (rank - shape.size());
        st[i] = shape[k] == 1 ? 0 : stride;
        stride *= shape[k];
    }
    return st;
}

/// Calls body(offset_a, offset_b, offset_out, n, step_a, step_b) for each innermost row of the
/// broadcast iteration over `out_shape`.
template <class S, class Body>
void for_each_row(const S& out_shape, const Strides& sa, const Strides& sb, Body body)
{
    const std::size_t rank = out_shape.size();
    if (rank == 0)
    {
        body(0, 0, 0, 1, 0, 0);
        return;
    }
    const std::size_t inner = out_shape[rank - 1];
    std::size_t rows = 1;
    for (std::size_t i = 0; i + 1 < rank; ++i)
    {
        rows *= out_shape[i];
    }
    Strides idx(rank, 0);
    std::size_t oa = 0, ob = 0;
    for (std::size_t r = 0; r < rows; ++r)
    {
        body(oa, ob, r * inner, inner, sa[rank - 1], sb[rank - 1]);
        for (std::size_t d = rank - 1; d-- > 0;)
        {
            ++idx[d];
            oa += sa[d];
            ob += sb[d];
            if (idx[d] < out_shape[d])
            {
                break;
            }
            oa -= sa[d] * idx[d];
            ob -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward kernels

/// out = f(a, b) with numpy broadcasting, into `out` already shaped like the broadcast result.
/// `out` may be `a` itself (elementwise in place): each element is read before it is written.
template <class T, class F>
void broadcast_into(xt::xarray<T>& out, const xt::xarray<T>& a, const xt::xarray<T>& b, F f)
{
    T* o = out.data();
    const T* pa = a.data();
    const T* pb = b.data();
    const std::size_t n = out.size();
    const bool a_full = shapes_equal(a.shape(), out.shape());
    if (a_full && shapes_equal(b.shape(), out.shape()))
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            o[i] = f(pa[i], pb[i]);
        }
        return;
    }
    if (b.size() == 1 && a_full)
    {
        const T s = pb[0];
        for (std::size_t i = 0; i < n; ++i)
        {
            o[i] = f(pa[i], s);
        }
        return;
    }
    if (a.size() == 1 && shapes_equal(b.shape(), out.shape()))
    {
        const T s = pa[0];
        for (std::size_t i = 0; i < n; ++i)
        {
            o[i] = f(s, pb[i]);
        }
        return;
    }
    const auto& out_shape = out.shape();
    const Strides sa = broadcast_strides(a.shape(), out_shape.size());
    const Strides sb = broadcast_strides(b.shape(), out_shape.size());
    for_each_row(
      out_shape, sa, sb,
      [&](std::size_t oa, std::size_t ob, std::size_t oo, std::size_t len, std::size_t da, std::size_t db)
      {
          for (std::size_t j = 0; j < len; ++j)
          {
              o[oo + j] = f(pa[oa + j * da], pb[ob + j * db]);
          }
      });
}

/// f(a, b) with numpy broadcasting; `out_shape` is the broadcast shape.
template <class T, class F>
xt::xarray<T> broadcast_binary(const xt::xarray<T>& a, const xt::xarray<T>& b, const Dims& out_shape, F f)
{
    auto out = xt::xarray<T>::from_shape(out_shape);
    broadcast_into(out, a, b, f);
    return out;
}

/// g = f(g, b) in place, `b` broadcast to g's shape: an input gradient built in the output
/// gradient's own buffer. Returns `g` itself so that it can be passed on without a move.
template <class T, class F>
xt::xarray<T>&& scale_in_place(xt::xarray<T>&& g, const xt::xarray<T>& b, F f)
{
    broadcast_into(g, g, b, f);
    return std::move(g);
}

/// out[i] = f(a[i]) into `out`, shaped like `a` (`out` may be `a`).
template <class T, class F>
void map_into(xt::xarray<T>& out, const xt::xarray<T>& a, F f)
{
    const T* pa = a.data();
    T* o = out.data();
    for (std::size_t i = 0, n = a.size(); i < n; ++i)
    {
        o[i] = f(pa[i]);
    }
}

template <class T, class F>
xt::xarray<T> map(const xt::xarray<T>& a, F f)
{
    auto out = xt::xarray<T>::from_shape(a.shape());
    map_into(out, a, f);
    return out;
}

/// The output of a unary forward, computed in place (new_output).
template <class T, class F>
std::shared_ptr<TensorImpl<T>> map_output(const xt::xarray<T>& a, F f)
{
    auto out = new_output<T>(a.shape());
    map_into(out->new_value(), a, f);
    return out;
}

/// The output of a binary forward f(a, b), broadcast, computed in place (new_output).
template <class T, class F>
std::shared_ptr<TensorImpl<T>> binary_output(const xt::xarray<T>& a, const xt::xarray<T>& b, const char* op,
                                             F f)
{
    std::shared_ptr<TensorImpl<T>> out;
    if (shapes_equal(a.shape(), b.shape()))
    {
        out = new_output<T>(a.shape());
    }
    else
    {
        const Shape s = broadcast_shapes(Shape(a.shape().begin(), a.shape().end()),
                                         Shape(b.shape().begin(), b.shape().end()), op);
        out = new_output<T>(Dims(s.begin(), s.end()));
    }
    broadcast_into(out->new_value(), a, b, f);
    return out;
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Backward kernels

template <class T>
xt::xarray<T> detail::sum_to(const xt::xarray<T>& g, const typename xt::xarray<T>::shape_type& shape)
{
    if (shapes_equal(g.shape(), shape))
    {
        return g;
    }
    xt::xarray<T> out(shape, T(0));
    T* o = out.data();
    const T* pg = g.data();
    const Strides so = broadcast_strides(shape, g.dimension());
    const Strides unit = broadcast_strides(g.shape(), g.dimension());
    for_each_row(
      g.shape(), so, unit,
      [&](std::size_t oo, std::size_t og, std::size_t, std::size_t len, std::size_t d, std::size_t dg)
      {
          if (d == 0)
          {
              T acc = 0;
              for (std::size_t j = 0; j < len; ++j)
              {
                  acc += pg[og + j * dg];
              }
              o[oo] += acc;
          }
          else
          {
              for (std::size_t j = 0; j < len; ++j)
              {
                  o[oo + j] += pg[og + j * dg];
              }
          }
      });
    return out;
}

template <class T>
xt::xarray<T> detail::sum_to(xt::xarray<T>&& g, const typename xt::xarray<T>::shape_type& shape)
{
    if (shapes_equal(g.shape(), shape))
    {
        return std::move(g);
    }
    return sum_to(static_cast<const xt::xarray<T>&>(g), shape);
}

namespace
{
/// Sends `g`, shaped like the op's output, to input `i` summed back to that input's shape. When no
/// sum is needed the buffer itself goes on (sum_to would add a move).
template <class T>
void accumulate_summed(BackwardContext<T>& ctx, std::size_t i, xt::xarray<T>&& g)
{
    if (shapes_equal(g.shape(), ctx.input_shape(i)))
    {
        ctx.accumulate(i, std::move(g));
    }
    else
    {
        ctx.accumulate(i, sum_to(static_cast<const xt::xarray<T>&>(g), ctx.input_shape(i)));
    }
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops
//
// Each VJP builds the gradient of the last input it serves in the output gradient's own buffer
// (take_grad_output); earlier inputs, which must leave that buffer intact, get new arrays.

template <class T>
BasicTensor<T> add(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    const auto& va = a.value();
    const auto& vb = b.value();
    return record<T>("add", binary_output(va, vb, "add", std::plus<T>()), {a, b}, Saves::nothing(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d(a+b)/db = 1, summed back to b's shape
                         if (ctx.needs_grad(1) && ctx.needs_grad(0))
                         {
                             ctx.accumulate(1, sum_to(ctx.grad_output(), ctx.input_shape(1)));
                         }
                         else if (ctx.needs_grad(1))
                         {
                             accumulate_summed(ctx, 1, ctx.take_grad_output());
                         }
                         // d(a+b)/da = 1, summed back to a's shape
                         if (ctx.needs_grad(0))
                         {
                             accumulate_summed(ctx, 0, ctx.take_grad_output());
                         }
                     });
}

template <class T>
BasicTensor<T> sub(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    const auto& va = a.value();
    const auto& vb = b.value();
    return record<T>("sub", binary_output(va, vb, "sub", std::minus<T>()), {a, b}, Saves::nothing(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d(a-b)/db = -1
                         if (ctx.needs_grad(1) && ctx.needs_grad(0))
                         {
                             accumulate_summed(ctx, 1, map(ctx.grad_output(), std::negate<T>()));
                         }
                         else if (ctx.needs_grad(1))
                         {
                             xt::xarray<T>&& g = ctx.take_grad_output();
                             map_into(g, g, std::negate<T>());
                             accumulate_summed(ctx, 1, std::move(g));
                         }
                         // d(a-b)/da = 1
                         if (ctx.needs_grad(0))
                         {
                             accumulate_summed(ctx, 0, ctx.take_grad_output());
                         }
                     });
}

template <class T>
BasicTensor<T> mul(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    const auto& va = a.value();
    const auto& vb = b.value();
    return record<T>(
      "mul", binary_output(va, vb, "mul", std::multiplies<T>()), {a, b}, Saves::inputs({0, 1}),
      [](BackwardContext<T>& ctx)
      {
          // d(a*b)/da = b
          if (ctx.needs_grad(0) && ctx.needs_grad(1))
          {
              const auto& g = ctx.grad_output();
              accumulate_summed(ctx, 0, broadcast_binary(g, ctx.input(1), g.shape(), std::multiplies<T>()));
          }
          else if (ctx.needs_grad(0))
          {
              accumulate_summed(ctx, 0,
                                scale_in_place(ctx.take_grad_output(), ctx.input(1), std::multiplies<T>()));
          }
          // d(a*b)/db = a
          if (ctx.needs_grad(1))
          {
              accumulate_summed(ctx, 1,
                                scale_in_place(ctx.take_grad_output(), ctx.input(0), std::multiplies<T>()));
          }
      });
}

template <class T>
BasicTensor<T> div(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    const auto& va = a.value();
    const auto& vb = b.value();
    return record<T>(
      "div", binary_output(va, vb, "div", std::divides<T>()), {a, b}, Saves::inputs({1}).and_output(),
      [](BackwardContext<T>& ctx)
      {
          const auto& g = ctx.grad_output();
          const Dims& gs = g.shape();
          // d(a/b)/db = -a/b^2 = -(a/b)/b
          if (ctx.needs_grad(1))
          {
              auto gq = broadcast_binary(g, ctx.output(), gs, std::multiplies<T>());
              accumulate_summed(ctx, 1,
                                scale_in_place(std::move(gq), ctx.input(1), [](T x, T y) { return -x / y; }));
          }
          // d(a/b)/da = 1/b
          if (ctx.needs_grad(0))
          {
              accumulate_summed(ctx, 0,
                                scale_in_place(ctx.take_grad_output(), ctx.input(1), std::divides<T>()));
          }
      });
}

template <class T>
BasicTensor<T> neg(const BasicTensor<T>& a)
{
    return record<T>("neg", map_output(a.value(), std::negate<T>()), {a}, Saves::nothing(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d(-a)/da = -1
                         xt::xarray<T>&& g = ctx.take_grad_output();
                         map_into(g, g, std::negate<T>());
                         ctx.accumulate(0, std::move(g));
                     });
}

template <class T>
BasicTensor<T> add_scalar(const BasicTensor<T>& a, T s)
{
    return record<T>("add_scalar", map_output(a.value(), [s](T x) { return x + s; }), {a}, Saves::nothing(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d(a+s)/da = 1
                         ctx.accumulate(0, ctx.take_grad_output());
                     });
}

template <class T>
BasicTensor<T> mul_scalar(const BasicTensor<T>& a, T s)
{
    return record<T>("mul_scalar", map_output(a.value(), [s](T x) { return x * s; }), {a}, Saves::nothing(),
                     [s](BackwardContext<T>& ctx)
                     {
                         // d(a*s)/da = s
                         xt::xarray<T>&& g = ctx.take_grad_output();
                         map_into(g, g, [s](T v) { return v * s; });
                         ctx.accumulate(0, std::move(g));
                     });
}

template <class T>
BasicTensor<T> rdiv_scalar(T s, const BasicTensor<T>& a)
{
    return record<T>(
      "rdiv_scalar", map_output(a.value(), [s](T x) { return s / x; }), {a}, Saves::inputs({0}).and_output(),
      [](BackwardContext<T>& ctx)
      {
          // d(s/a)/da = -s/a^2 = -(s/a)/a
          xt::xarray<T>&& g = scale_in_place(ctx.take_grad_output(), ctx.output(), std::multiplies<T>());
          ctx.accumulate(0, scale_in_place(std::move(g), ctx.input(0), [](T x, T y) { return -x / y; }));
      });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template xt::xarray<T> detail::sum_to<T>(xt::xarray<T>&&, const typename xt::xarray<T>::shape_type&);    \
    template xt::xarray<T> detail::sum_to<T>(const xt::xarray<T>&,                                           \
                                             const typename xt::xarray<T>::shape_type&);                     \
    template BasicTensor<T> add<T>(const BasicTensor<T>&, const BasicTensor<T>&);                            \
    template BasicTensor<T> sub<T>(const BasicTensor<T>&, const BasicTensor<T>&);                            \
    template BasicTensor<T> mul<T>(const BasicTensor<T>&, const BasicTensor<T>&);                            \
    template BasicTensor<T> div<T>(const BasicTensor<T>&, const BasicTensor<T>&);                            \
    template BasicTensor<T> neg<T>(const BasicTensor<T>&);                                                   \
    template BasicTensor<T> add_scalar<T>(const BasicTensor<T>&, T);                                         \
    template BasicTensor<T> mul_scalar<T>(const BasicTensor<T>&, T);                                         \
    template BasicTensor<T> rdiv_scalar<T>(T, const BasicTensor<T>&);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
