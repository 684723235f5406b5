#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/shape.hpp>

#include <algorithm>

namespace tapegrad
{

namespace
{
/// `d` in [0, rank) (negative counts from the end); throws IndexError naming the op and shape.
template <class S>
std::size_t normalize_dim(std::ptrdiff_t d, const S& shape, const char* op, const char* what)
{
    const auto rank = static_cast<std::ptrdiff_t>(shape.size());
    const std::ptrdiff_t k = d < 0 ? d + rank : d;
    if (k < 0 || k >= rank)
    {
        throw IndexError(detail::cat("tg::", op, ": ", what, " ", d,
                                     " is out of range for a tensor of shape ", shape_str(shape), " (rank ",
                                     rank, "); valid dimensions are ", -rank, "..", rank - 1));
    }
    return static_cast<std::size_t>(k);
}

/// The requested shape with its -1 entry inferred; throws if it cannot hold `numel` values.
template <class S>
Shape resolve_shape(const std::vector<std::ptrdiff_t>& requested, const S& from, std::size_t numel)
{
    Shape shape(requested.size());
    std::size_t known = 1;
    std::size_t infer = requested.size();
    for (std::size_t i = 0; i < requested.size(); ++i)
    {
        const std::ptrdiff_t r = requested[i];
        if (r == -1)
        {
            if (infer != requested.size())
            {
                throw ValueError(detail::cat("tg::reshape: the shape ", shape_str(requested),
                                             " has more than one -1; only one size can be inferred"));
            }
            infer = i;
        }
        else if (r < 0)
        {
            throw ValueError(detail::cat("tg::reshape: the shape ", shape_str(requested), " has the size ", r,
                                         "; sizes must be >= 0, or -1 for the one inferred size"));
        }
        else
        {
            shape[i] = static_cast<std::size_t>(r);
            known *= shape[i];
        }
    }
    if (infer != requested.size())
    {
        if (known == 0 || numel % known != 0)
        {
            throw ShapeError(detail::cat("tg::reshape: cannot reshape a tensor of shape ", shape_str(from),
                                         " (", numel, " elements) to ", shape_str(requested),
                                         ": the other sizes multiply to ", known,
                                         ", which does not determine the -1 size"));
        }
        shape[infer] = numel / known;
        known = numel;
    }
    if (known != numel)
    {
        throw ShapeError(detail::cat("tg::reshape: cannot reshape a tensor of shape ", shape_str(from), " (",
                                     numel, " elements) to ", shape_str(requested), " (", known,
                                     " elements); the sizes must multiply to the same count"));
    }
    return shape;
}

// ---------------------------------------------------------------------------------------------
// Forward (and backward) kernel

/// y = x with dimensions d0 < d1 swapped. x is viewed as [A, P, B, Q, C] (P = size d0, Q = size d1),
/// y as [A, Q, B, P, C].
template <class T>
void transpose_kernel(const T* x, T* y, const Shape& shape, std::size_t d0, std::size_t d1)
{
    std::size_t a_size = 1, b_size = 1, c_size = 1;
    for (std::size_t d = 0; d < shape.size(); ++d)
    {
        if (d < d0)
        {
            a_size *= shape[d];
        }
        else if (d > d0 && d < d1)
        {
            b_size *= shape[d];
        }
        else if (d > d1)
        {
            c_size *= shape[d];
        }
    }
    const std::size_t p_size = shape[d0];
    const std::size_t q_size = shape[d1];
    constexpr std::size_t tile = 32;
    for (std::size_t a = 0; a < a_size; ++a)
    {
        for (std::size_t b = 0; b < b_size; ++b)
        {
            // in(a, p, b, q, c) = (((a P + p) B + b) Q + q) C + c;  out(a, q, b, p, c) likewise.
            const T* src = x + (a * p_size * b_size + b) * q_size * c_size;
            T* dst = y + (a * q_size * b_size + b) * p_size * c_size;
            const std::size_t src_p = b_size * q_size * c_size;
            const std::size_t dst_q = b_size * p_size * c_size;
            if (c_size == 1)
            {
                // Tiles keep both the strided reads and the strided writes in cache.
                for (std::size_t p0 = 0; p0 < p_size; p0 += tile)
                {
                    for (std::size_t q0 = 0; q0 < q_size; q0 += tile)
                    {
                        const std::size_t p1 = std::min(p_size, p0 + tile);
                        const std::size_t q1 = std::min(q_size, q0 + tile);
                        for (std::size_t p = p0; p < p1; ++p)
                        {
                            for (std::size_t q = q0; q < q1; ++q)
                            {
                                dst[q * dst_q + p] = src[p * src_p + q];
                            }
                        }
                    }
                }
                continue;
            }
            for (std::size_t p = 0; p < p_size; ++p)
            {
                for (std::size_t q = 0; q < q_size; ++q)
                {
                    std::copy_n(src + p * src_p + q * c_size, c_size, dst + q * dst_q + p * c_size);
                }
            }
        }
    }
}

template <class S>
Shape swapped(const S& shape, std::size_t d0, std::size_t d1)
{
    Shape out(shape.begin(), shape.end());
    std::swap(out[d0], out[d1]);
    return out;
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Recorded ops

template <class T>
BasicTensor<T> reshape(const BasicTensor<T>& x, const std::vector<std::ptrdiff_t>& shape)
{
    const auto& v = x.value();
    auto out = xt::xarray<T>::from_shape(resolve_shape(shape, v.shape(), v.size()));
    std::copy_n(v.data(), v.size(), out.data());
    return record<T>("reshape", std::move(out), {x}, Saves::nothing(),
                     [](BackwardContext<T>& ctx)
                     {
                         // reshape only relabels positions: dx is g read back in x's shape (no copy)
                         auto g = ctx.take_grad_output();
                         g.reshape(ctx.input_shape(0));
                         ctx.accumulate(0, std::move(g));
                     });
}

template <class T>
BasicTensor<T> flatten(const BasicTensor<T>& x, std::ptrdiff_t start_dim, std::ptrdiff_t end_dim)
{
    const auto& s = x.value().shape();
    if (s.empty())
    {
        // A 0-d tensor flattens to [1], as in PyTorch; only dims 0 and -1 name its single position.
        normalize_dim(start_dim, Shape{1}, "flatten", "start_dim");
        normalize_dim(end_dim, Shape{1}, "flatten", "end_dim");
        return reshape(x, {1});
    }
    const std::size_t d0 = normalize_dim(start_dim, s, "flatten", "start_dim");
    const std::size_t d1 = normalize_dim(end_dim, s, "flatten", "end_dim");
    if (d0 > d1)
    {
        throw ValueError(detail::cat("tg::flatten: start_dim ", start_dim, " (dimension ", d0,
                                     ") comes after end_dim ", end_dim, " (dimension ", d1,
                                     ") for a tensor of shape ", shape_str(s)));
    }
    std::vector<std::ptrdiff_t> shape;
    shape.reserve(s.size() - (d1 - d0));
    std::size_t merged = 1;
    for (std::size_t d = 0; d < s.size(); ++d)
    {
        if (d < d0 || d > d1)
        {
            shape.push_back(static_cast<std::ptrdiff_t>(s[d]));
        }
        else
        {
            merged *= s[d];
            if (d == d1)
            {
                shape.push_back(static_cast<std::ptrdiff_t>(merged));
            }
        }
    }
    return reshape(x, shape);
}

template <class T>
BasicTensor<T> transpose(const BasicTensor<T>& x, std::ptrdiff_t d0, std::ptrdiff_t d1)
{
    const auto& v = x.value();
    std::size_t a = normalize_dim(d0, v.shape(), "transpose", "dimension");
    std::size_t b = normalize_dim(d1, v.shape(), "transpose", "dimension");
    if (a > b)
    {
        std::swap(a, b);
    }
    const Shape in_shape(v.shape().begin(), v.shape().end());
    auto out = xt::xarray<T>::from_shape(swapped(in_shape, a, b));
    if (a == b)
    {
        std::copy_n(v.data(), v.size(), out.data());
    }
    else
    {
        transpose_kernel(v.data(), out.data(), in_shape, a, b);
    }
    return record<T>("transpose", std::move(out), {x}, Saves::nothing(),
                     [a, b](BackwardContext<T>& ctx)
                     {
                         // transpose is a permutation: dx = transpose(g) back, with the same two dims
                         const auto& g = ctx.grad_output();
                         auto dx = xt::xarray<T>::from_shape(ctx.input_shape(0));
                         if (a == b)
                         {
                             std::copy_n(g.data(), g.size(), dx.data());
                         }
                         else
                         {
                             transpose_kernel(g.data(), dx.data(), Shape(g.shape().begin(), g.shape().end()),
                                              a, b);
                         }
                         ctx.accumulate(0, std::move(dx));
                     });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> reshape<T>(const BasicTensor<T>&, const std::vector<std::ptrdiff_t>&);           \
    template BasicTensor<T> flatten<T>(const BasicTensor<T>&, std::ptrdiff_t, std::ptrdiff_t);               \
    template BasicTensor<T> transpose<T>(const BasicTensor<T>&, std::ptrdiff_t, std::ptrdiff_t);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
