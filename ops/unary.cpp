#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/unary.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace tapegrad
{

using detail::shapes_equal;
using detail::sum_to;

namespace
{
// ---------------------------------------------------------------------------------------------
// Forward kernels

/// Below this many elements a loop stays on one thread (starting a parallel region costs more).
constexpr std::size_t parallel_min = std::size_t{1} << 16;

/// f of every element, computed straight into a new output for record() (new_output).
template <class T, class F>
std::shared_ptr<TensorImpl<T>> map_output(const xt::xarray<T>& x, F f)
{
    auto out = new_output<T>(x.shape());
    const T* px = x.data();
    T* o = out->new_value().data();
    const auto n = static_cast<std::ptrdiff_t>(x.size());
    if (x.size() >= parallel_min)
    {
#pragma omp parallel for schedule(static)
        for (std::ptrdiff_t i = 0; i < n; ++i)
        {
            o[i] = f(px[i]);
        }
    }
    else
    {
        for (std::ptrdiff_t i = 0; i < n; ++i)
        {
            o[i] = f(px[i]);
        }
    }
    return out;
}

/// `c ? a : b` without a branch. Compilers turn the plain ternary into a jump, which mispredicts
/// half the time on random-signed inputs and made sigmoid twice as slow.
template <class T>
T select(bool c, T a, T b)
{
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    const U mask = U(0) - U(c);
    return std::bit_cast<T>((std::bit_cast<U>(a) & mask) | (std::bit_cast<U>(b) & ~mask));
}

template <class T>
T stable_sigmoid(T x)
{
    // e = e^-|x| never overflows: 1 / (1 + e) for x >= 0, and e / (1 + e) = e^x / (1 + e^x) for x < 0.
    const T e = std::exp(-std::abs(x));
    return select(x < T(0), e, T(1)) / (T(1) + e);
}

/// `x` broadcast (numpy rules) to `shape`, materialised. `shape` must be a valid broadcast target.
template <class T>
xt::xarray<T> expand(const xt::xarray<T>& x, const Shape& shape)
{
    auto out = xt::xarray<T>::from_shape(shape);
    const std::size_t rank = shape.size();
    const std::size_t xrank = x.dimension();
    xt::svector<std::size_t, 4> stride(rank, 0); // x's step per output dimension, 0 where broadcast
    std::size_t s = 1;
    for (std::size_t k = xrank; k-- > 0;)
    {
        stride[k + rank - xrank] = x.shape()[k] == 1 ? 0 : s;
        s *= x.shape()[k];
    }
    xt::svector<std::size_t, 4> idx(rank, 0);
    const T* px = x.data();
    T* o = out.data();
    std::size_t off = 0;
    for (std::size_t i = 0, n = out.size(); i < n; ++i)
    {
        o[i] = px[off];
        for (std::size_t d = rank; d-- > 0;)
        {
            off += stride[d];
            if (++idx[d] < shape[d])
            {
                break;
            }
            off -= stride[d] * idx[d];
            idx[d] = 0;
        }
    }
    return out;
}

/// `x` itself when it already has `shape`, else its materialised broadcast (kept alive in `tmp`).
template <class T>
const xt::xarray<T>& broadcast_to(const xt::xarray<T>& x, const Shape& shape, xt::xarray<T>& tmp)
{
    if (shapes_equal(x.shape(), shape))
    {
        return x;
    }
    tmp = expand(x, shape);
    return tmp;
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

/// g[i] = f(g[i], s[i]), in place in the output gradient the VJP owns (no allocation). Returns `g`
/// itself, so that passing it on to accumulate() moves it only once.
template <class T, class F>
xt::xarray<T>&& scale_grad(xt::xarray<T>&& g, const xt::xarray<T>& s, F f)
{
    T* pg = g.data();
    const T* ps = s.data();
    const auto n = static_cast<std::ptrdiff_t>(g.size());
    if (g.size() >= parallel_min)
    {
#pragma omp parallel for schedule(static)
        for (std::ptrdiff_t i = 0; i < n; ++i)
        {
            pg[i] = f(pg[i], ps[i]);
        }
    }
    else
    {
        for (std::ptrdiff_t i = 0; i < n; ++i)
        {
            pg[i] = f(pg[i], ps[i]);
        }
    }
    return std::move(g);
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T>
BasicTensor<T> exp(const BasicTensor<T>& x)
{
    return record<T>("exp", map_output(x.value(), [](T v) { return std::exp(v); }), {x}, Saves::only_output(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d e^x/dx = e^x = y
                         ctx.accumulate(
                           0, scale_grad(ctx.take_grad_output(), ctx.output(), std::multiplies<T>()));
                     });
}

template <class T>
BasicTensor<T> log(const BasicTensor<T>& x)
{
    return record<T>("log", map_output(x.value(), [](T v) { return std::log(v); }), {x}, Saves::inputs({0}),
                     [](BackwardContext<T>& ctx)
                     {
                         // d log(x)/dx = 1/x
                         ctx.accumulate(0,
                                        scale_grad(ctx.take_grad_output(), ctx.input(0), std::divides<T>()));
                     });
}

template <class T>
BasicTensor<T> sqrt(const BasicTensor<T>& x)
{
    return record<T>("sqrt", map_output(x.value(), [](T v) { return std::sqrt(v); }), {x},
                     Saves::only_output(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d sqrt(x)/dx = 1/(2 sqrt(x)) = 1/(2y)
                         ctx.accumulate(0, scale_grad(ctx.take_grad_output(), ctx.output(),
                                                      [](T g, T y) { return g / (T(2) * y); }));
                     });
}

template <class T>
BasicTensor<T> pow(const BasicTensor<T>& x, double p)
{
    const T e = static_cast<T>(p);
    auto value = p == 2.0 ? map_output(x.value(), [](T v) { return v * v; })
                          : map_output(x.value(), [e](T v) { return std::pow(v, e); });
    return record<T>("pow", std::move(value), {x}, Saves::inputs({0}),
                     [e](BackwardContext<T>& ctx)
                     {
                         // d x^p/dx = p x^(p-1); 0 for p = 0 (x^0 = 1 everywhere, even at x = 0)
                         ctx.accumulate(0, scale_grad(ctx.take_grad_output(), ctx.input(0),
                                                      [e](T g, T v) {
                                                          return e == T(0) ? T(0)
                                                                           : g * e * std::pow(v, e - T(1));
                                                      }));
                     });
}

template <class T>
BasicTensor<T> pow(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    const auto& va = a.value();
    const auto& vb = b.value();
    const Shape sa(va.shape().begin(), va.shape().end());
    const Shape shape = shapes_equal(vb.shape(), sa)
                          ? sa
                          : broadcast_shapes(sa, Shape(vb.shape().begin(), vb.shape().end()), "pow");
    xt::xarray<T> ta, tb;
    const auto& ea = broadcast_to(va, shape, ta);
    const auto& eb = broadcast_to(vb, shape, tb);
    auto out = xt::xarray<T>::from_shape(shape);
    for (std::size_t i = 0, n = out.size(); i < n; ++i)
    {
        out.data()[i] = std::pow(ea.data()[i], eb.data()[i]);
    }
    return record<T>("pow", std::move(out), {a, b}, Saves::inputs({0, 1}).and_output(),
                     [](BackwardContext<T>& ctx)
                     {
                         const auto& y = ctx.output();
                         const Shape shape(y.shape().begin(), y.shape().end());
                         xt::xarray<T> ta, tb;
                         const auto& ea = broadcast_to(ctx.input(0), shape, ta);
                         const auto& eb = broadcast_to(ctx.input(1), shape, tb);
                         const auto& g = ctx.grad_output();
                         const std::size_t n = y.size();
                         // d a^b/da = b a^(b-1); 0 where b = 0
                         if (ctx.needs_grad(0))
                         {
                             auto da = xt::xarray<T>::from_shape(shape);
                             for (std::size_t i = 0; i < n; ++i)
                             {
                                 const T p = eb.data()[i];
                                 da.data()[i] =
                                   p == T(0) ? T(0) : g.data()[i] * p * std::pow(ea.data()[i], p - T(1));
                             }
                             ctx.accumulate(0, sum_to(std::move(da), ctx.input_shape(0)));
                         }
                         // d a^b/db = a^b log(a); 0 where a = 0 and b >= 0 (the limit of 0^b log 0)
                         if (ctx.needs_grad(1))
                         {
                             auto db = xt::xarray<T>::from_shape(shape);
                             for (std::size_t i = 0; i < n; ++i)
                             {
                                 const T base = ea.data()[i];
                                 db.data()[i] = base == T(0) && eb.data()[i] >= T(0)
                                                  ? T(0)
                                                  : g.data()[i] * y.data()[i] * std::log(base);
                             }
                             ctx.accumulate(1, sum_to(std::move(db), ctx.input_shape(1)));
                         }
                     });
}

template <class T>
BasicTensor<T> abs(const BasicTensor<T>& x)
{
    return record<T>("abs", map_output(x.value(), [](T v) { return std::abs(v); }), {x}, Saves::inputs({0}),
                     [](BackwardContext<T>& ctx)
                     {
                         // d|x|/dx = sign(x), taken as 0 at x = 0
                         ctx.accumulate(0, scale_grad(ctx.take_grad_output(), ctx.input(0),
                                                      [](T g, T v) {
                                                          return v > T(0) ? g : v < T(0) ? -g : T(0);
                                                      }));
                     });
}

template <class T>
BasicTensor<T> relu(const BasicTensor<T>& x)
{
    // Written `x < 0 ? 0 : x` so that NaN passes through (std::max / xt::maximum would return 0).
    return record<T>("relu", map_output(x.value(), [](T v) { return v < T(0) ? T(0) : v; }), {x},
                     Saves::only_output(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d relu(x)/dx = 1 where x > 0, else 0; y > 0 exactly where x > 0
                         ctx.accumulate(0, scale_grad(ctx.take_grad_output(), ctx.output(),
                                                      [](T g, T y) { return y > T(0) ? g : T(0); }));
                     });
}

template <class T>
BasicTensor<T> sigmoid(const BasicTensor<T>& x)
{
    return record<T>("sigmoid", map_output(x.value(), stable_sigmoid<T>), {x}, Saves::only_output(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d sigmoid(x)/dx = y (1 - y)
                         ctx.accumulate(0, scale_grad(ctx.take_grad_output(), ctx.output(),
                                                      [](T g, T y) { return g * y * (T(1) - y); }));
                     });
}

template <class T>
BasicTensor<T> tanh(const BasicTensor<T>& x)
{
    return record<T>("tanh", map_output(x.value(), [](T v) { return std::tanh(v); }), {x},
                     Saves::only_output(),
                     [](BackwardContext<T>& ctx)
                     {
                         // d tanh(x)/dx = 1 - y^2
                         ctx.accumulate(0, scale_grad(ctx.take_grad_output(), ctx.output(),
                                                      [](T g, T y) { return g * (T(1) - y * y); }));
                     });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> exp<T>(const BasicTensor<T>&);                                                   \
    template BasicTensor<T> log<T>(const BasicTensor<T>&);                                                   \
    template BasicTensor<T> sqrt<T>(const BasicTensor<T>&);                                                  \
    template BasicTensor<T> pow<T>(const BasicTensor<T>&, double);                                           \
    template BasicTensor<T> pow<T>(const BasicTensor<T>&, const BasicTensor<T>&);                            \
    template BasicTensor<T> abs<T>(const BasicTensor<T>&);                                                   \
    template BasicTensor<T> relu<T>(const BasicTensor<T>&);                                                  \
    template BasicTensor<T> sigmoid<T>(const BasicTensor<T>&);                                               \
    template BasicTensor<T> tanh<T>(const BasicTensor<T>&);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
