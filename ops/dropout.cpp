// Inverted dropout: element i is kept when the i-th gen.uniform() draw (row-major order) is >= p,
// and kept elements are scaled by 1 / (1 - p) so the expected value is unchanged. The VJP keeps a
// one-byte-per-element mask, not a copy of the input.

#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/dropout.hpp>

#include <cstdint>
#include <vector>

namespace tapegrad
{

namespace
{
// ---------------------------------------------------------------------------------------------
// Forward kernel

/// Draws the keep mask from `gen` and writes out[i] = keep[i] ? x[i] * scale : 0.
template <class T>
xt::xarray<T> dropout_forward(const xt::xarray<T>& x, double p, T scale, Generator& gen,
                              std::vector<std::uint8_t>& keep)
{
    auto out = xt::xarray<T>::from_shape(x.shape());
    const T* px = x.data();
    T* o = out.data();
    const std::size_t n = x.size();
    keep.resize(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        keep[i] = gen.uniform() >= p;
        o[i] = keep[i] ? px[i] * scale : T(0);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Backward kernel

/// dL/dx[i] = keep[i] ? dL/dy[i] * scale : 0.
template <class T>
xt::xarray<T> dropout_backward(const xt::xarray<T>& g, const std::vector<std::uint8_t>& keep, T scale)
{
    auto out = xt::xarray<T>::from_shape(g.shape());
    const T* pg = g.data();
    T* o = out.data();
    for (std::size_t i = 0, n = g.size(); i < n; ++i)
    {
        o[i] = keep[i] ? pg[i] * scale : T(0);
    }
    return out;
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded op

template <class T>
BasicTensor<T> dropout(const BasicTensor<T>& x, double p, bool training, Generator& gen)
{
    if (!(p >= 0.0 && p < 1.0))
    {
        throw ValueError(detail::cat("tg::dropout: the drop probability p must be in [0, 1), but p = ", p));
    }
    if (!training || p == 0.0)
    {
        return x;
    }
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    std::vector<std::uint8_t> keep;
    auto value = dropout_forward(x.value(), p, scale, gen, keep);
    return record<T>("dropout", std::move(value), {x}, Saves::nothing(),
                     [keep = std::move(keep), scale](BackwardContext<T>& ctx)
                     {
                         // d(x * mask / (1 - p))/dx = mask / (1 - p)
                         ctx.accumulate(0, dropout_backward(ctx.grad_output(), keep, scale));
                     });
}

template BasicTensor<float> dropout<float>(const BasicTensor<float>&, double, bool, Generator&);
template BasicTensor<double> dropout<double>(const BasicTensor<double>&, double, bool, Generator&);

} // namespace tapegrad
