#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/autograd/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <ostream>

namespace tapegrad
{

// ---------------------------------------------------------------------------------------------
// Generator

double Generator::normal()
{
    if (has_spare_)
    {
        has_spare_ = false;
        return spare_;
    }
    double u1 = 0.0;
    do
    {
        u1 = uniform();
    } while (u1 <= 0.0);
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    constexpr double two_pi = 6.283185307179586476925286766559;
    spare_ = r * std::sin(two_pi * u2);
    has_spare_ = true;
    return r * std::cos(two_pi * u2);
}

std::uint64_t Generator::below(std::uint64_t n)
{
    if (n == 0)
    {
        throw ValueError("Generator::below: n must be > 0");
    }
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t r = 0;
    do
    {
        r = engine_();
    } while (r >= limit);
    return r % n;
}

// ---------------------------------------------------------------------------------------------
// BasicTensor

template <class T>
BasicTensor<T>::BasicTensor(xt::xarray<T> values, bool requires_grad)
  : impl_(std::make_shared<TensorImpl<T>>(std::move(values)))
{
    impl_->requires_grad = requires_grad;
}

template <class T>
TensorImpl<T>& BasicTensor<T>::checked(const char* what) const
{
    if (!impl_)
    {
        throw Error(detail::cat("Tensor::", what,
                                ": the tensor is undefined (default-constructed, or the grad() "
                                "of a tensor that no backward has reached)"));
    }
    return *impl_;
}

template <class T>
Shape BasicTensor<T>::shape() const
{
    const auto& s = checked("shape").value().shape();
    return Shape(s.begin(), s.end());
}

template <class T>
std::size_t BasicTensor<T>::dim() const
{
    return checked("dim").value().dimension();
}

template <class T>
std::size_t BasicTensor<T>::numel() const
{
    return checked("numel").value().size();
}

template <class T>
std::size_t BasicTensor<T>::size(std::ptrdiff_t d) const
{
    const auto& s = checked("size").value().shape();
    const auto rank = static_cast<std::ptrdiff_t>(s.size());
    const std::ptrdiff_t k = d < 0 ? d + rank : d;
    if (k < 0 || k >= rank)
    {
        throw IndexError(detail::cat("Tensor::size: dimension ", d, " is out of range for a tensor of shape ",
                                     shape_str(s)));
    }
    return s[static_cast<std::size_t>(k)];
}

template <class T>
const xt::xarray<T>& BasicTensor<T>::value() const
{
    return checked("value").value();
}

template <class T>
xt::xarray<T>& BasicTensor<T>::mutable_value()
{
    return checked("mutable_value").mutable_value();
}

template <class T>
std::uint32_t BasicTensor<T>::version() const
{
    return checked("version").version();
}

template <class T>
T BasicTensor<T>::item() const
{
    const auto& v = checked("item").value();
    if (v.size() != 1)
    {
        throw IndexError(detail::cat("Tensor::item: needs a one-element tensor, but the shape is ",
                                     shape_str(v.shape()), " (", v.size(),
                                     " elements); reduce it first, e.g. tg::sum or tg::mean"));
    }
    return v.data()[0];
}

template <class T>
BasicTensor<T> BasicTensor<T>::grad() const
{
    const auto& impl = checked("grad");
    return impl.grad ? BasicTensor<T>(impl.grad) : BasicTensor<T>();
}

template <class T>
bool BasicTensor<T>::requires_grad() const
{
    return checked("requires_grad").requires_grad;
}

template <class T>
BasicTensor<T>& BasicTensor<T>::set_requires_grad(bool on)
{
    auto& impl = checked("set_requires_grad");
    if (!impl.is_leaf())
    {
        throw AutogradError(
          detail::cat("Tensor::set_requires_grad: the tensor of shape ", shape_str(impl.value().shape()),
                      " was produced by a recorded op; only leaves can change requires_grad. "
                      "Use detach() to get a leaf."));
    }
    impl.requires_grad = on;
    return *this;
}

template <class T>
bool BasicTensor<T>::is_leaf() const
{
    return checked("is_leaf").is_leaf();
}

template <class T>
BasicTensor<T> BasicTensor<T>::detach() const
{
    checked("detach");
    auto d = std::make_shared<TensorImpl<T>>();
    d->alias(impl_);
    return BasicTensor<T>(std::move(d));
}

template <class T>
BasicTensor<T> BasicTensor<T>::clone() const
{
    return BasicTensor<T>(xt::xarray<T>(checked("clone").value()));
}

template <class T>
void BasicTensor<T>::zero_grad()
{
    auto& impl = checked("zero_grad");
    if (impl.grad)
    {
        auto& g = impl.grad->mutable_value();
        std::fill(g.begin(), g.end(), T(0));
    }
}

namespace
{
/// Seeds `impl` with `g` (already checked to have its shape), or with `*borrowed` when given
/// (the caller's seed, not copied unless something writes to it), and replays the tape from it.
template <class T>
void run_backward(TensorImpl<T>& impl, xt::xarray<T>&& g, const xt::xarray<T>* borrowed,
                  BackwardOptions options)
{
    const auto& shape = impl.value().shape();
    if (!impl.requires_grad)
    {
        throw AutogradError(
          detail::cat("Tensor::backward: the tensor of shape ", shape_str(shape),
                      " does not require grad and no recorded op produced it. Create the leaves "
                      "with requires_grad = true, and do not call backward under NoGradGuard."));
    }
    if (impl.is_leaf())
    {
        if (borrowed != nullptr)
        {
            g = *borrowed;
        }
        if (!impl.grad)
        {
            impl.grad = std::make_shared<TensorImpl<T>>(std::move(g));
        }
        else
        {
            impl.grad->mutable_value() += g;
        }
        return;
    }
    Tape& tape = current_tape();
    if (impl.tape_id != tape.id())
    {
        throw AutogradError(detail::cat("Tensor::backward: the tensor of shape ", shape_str(shape),
                                        " was recorded on another thread's tape (or in a TapeScope that has "
                                        "ended); call backward on the thread that ran the forward pass."));
    }
    if (!tape.holds(impl.grad_fn_seq))
    {
        throw AutogradError(detail::cat(
          "Tensor::backward: the ops that produced this tensor of shape ", shape_str(shape),
          " were already released by an earlier backward (trying to backward through the graph a second "
          "time). Pass {.retain_graph = true} to the earlier backward to keep them."));
    }
    auto* root = static_cast<Node<T>*>(impl.grad_fn);
    if (borrowed != nullptr)
    {
        root->borrow(*borrowed);
    }
    else
    {
        root->accumulate(std::move(g));
    }
    tape.replay(impl.grad_fn_seq, options.retain_graph);
}
} // namespace

template <class T>
void BasicTensor<T>::backward(BackwardOptions options) const
{
    auto& impl = checked("backward");
    const auto& v = impl.value();
    if (v.size() != 1)
    {
        throw AutogradError(detail::cat(
          "Tensor::backward: called without a seed gradient on a tensor of shape ", shape_str(v.shape()),
          "; the implicit seed 1 only exists for one-element tensors. Reduce the "
          "output (tg::sum, tg::mean) or pass a seed of shape ",
          shape_str(v.shape()), ": y.backward(seed)."));
    }
    xt::xarray<T> seed = xt::xarray<T>::from_shape(v.shape());
    seed.data()[0] = T(1);
    run_backward<T>(impl, std::move(seed), nullptr, options);
}

template <class T>
void BasicTensor<T>::backward(const BasicTensor<T>& seed, BackwardOptions options) const
{
    auto& impl = checked("backward");
    const auto& shape = impl.value().shape();
    const auto& sshape = seed.value().shape();
    if (!detail::shapes_equal(sshape, shape))
    {
        throw ShapeError(detail::cat("Tensor::backward: the seed gradient has shape ", shape_str(sshape),
                                     " but the tensor has shape ", shape_str(shape),
                                     "; a seed must have exactly the tensor's shape"));
    }
    run_backward<T>(impl, xt::xarray<T>(), &seed.value(), options);
}

namespace
{
/// Prints values with one bracket level per dimension, eliding the middle of long dimensions
/// (at most 3 + 3 shown) as PyTorch does. xtensor's own printer trips a GCC 12 false warning.
template <class T>
void print_values(std::ostream& os, const T* data, const xt::svector<std::size_t, 4>& shape, std::size_t dim,
                  std::size_t offset, std::size_t stride, std::size_t indent)
{
    if (shape.empty())
    {
        os << data[0];
        return;
    }
    const std::size_t n = shape[dim];
    const std::size_t inner = stride / std::max<std::size_t>(n, 1);
    constexpr std::size_t edge = 3;
    os << '[';
    for (std::size_t i = 0; i < n; ++i)
    {
        if (n > 2 * edge && i == edge)
        {
            os << (dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
            i = n - edge;
        }
        if (dim + 1 == shape.size())
        {
            os << data[offset + i];
        }
        else
        {
            print_values(os, data, shape, dim + 1, offset + i * inner, inner, indent + 1);
        }
        if (i + 1 < n)
        {
            os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
        }
    }
    os << ']';
}
} // namespace

template <class T>
std::ostream& operator<<(std::ostream& os, const BasicTensor<T>& t)
{
    if (!t.defined())
    {
        return os << "tensor(undefined)";
    }
    os << "tensor(shape=" << shape_str(t.value().shape())
       << ", dtype=" << (sizeof(T) == 4 ? "float32" : "float64");
    if (t.requires_grad())
    {
        os << ", requires_grad=true";
    }
    if (!t.is_leaf())
    {
        os << ", grad_fn=" << t.impl()->grad_fn_seq;
    }
    os << ")\n";
    const auto& v = t.value();
    print_values(os, v.data(), v.shape(), 0, 0, v.size(), 0);
    return os;
}

// ---------------------------------------------------------------------------------------------
// Factories

template <class T>
BasicTensor<T> full(const Shape& shape, T value, bool requires_grad)
{
    return BasicTensor<T>(
      xt::xarray<T>(typename xt::xarray<T>::shape_type(shape.begin(), shape.end()), value), requires_grad);
}

template <class T>
BasicTensor<T> zeros(const Shape& shape, bool requires_grad)
{
    return full<T>(shape, T(0), requires_grad);
}

template <class T>
BasicTensor<T> ones(const Shape& shape, bool requires_grad)
{
    return full<T>(shape, T(1), requires_grad);
}

template <class T>
BasicTensor<T> randn(const Shape& shape, Generator& gen, bool requires_grad)
{
    auto a = xt::xarray<T>::from_shape(shape);
    for (auto& v : a)
    {
        v = static_cast<T>(gen.normal());
    }
    return BasicTensor<T>(std::move(a), requires_grad);
}

template <class T>
BasicTensor<T> rand(const Shape& shape, Generator& gen, bool requires_grad)
{
    auto a = xt::xarray<T>::from_shape(shape);
    for (auto& v : a)
    {
        v = static_cast<T>(gen.uniform());
    }
    return BasicTensor<T>(std::move(a), requires_grad);
}

template <class T>
BasicTensor<T> from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad)
{
    std::size_t n = 1;
    for (auto d : shape)
    {
        n *= d;
    }
    if (n != values.size())
    {
        throw ShapeError(detail::cat("tg::from_vector: ", values.size(), " values cannot fill shape ",
                                     shape_str(shape), " (", n, " elements)"));
    }
    auto a = xt::xarray<T>::from_shape(shape);
    std::copy(values.begin(), values.end(), a.begin());
    return BasicTensor<T>(std::move(a), requires_grad);
}

template <class To, class From>
BasicTensor<To> cast(const BasicTensor<From>& t)
{
    const auto& v = t.value();
    auto a = xt::xarray<To>::from_shape(v.shape());
    std::transform(v.begin(), v.end(), a.begin(), [](From x) { return static_cast<To>(x); });
    return BasicTensor<To>(std::move(a), t.requires_grad() && t.is_leaf());
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template class BasicTensor<T>;                                                                           \
    template std::ostream& operator<<(std::ostream&, const BasicTensor<T>&);                                 \
    template BasicTensor<T> full<T>(const Shape&, T, bool);                                                  \
    template BasicTensor<T> zeros<T>(const Shape&, bool);                                                    \
    template BasicTensor<T> ones<T>(const Shape&, bool);                                                     \
    template BasicTensor<T> randn<T>(const Shape&, Generator&, bool);                                        \
    template BasicTensor<T> rand<T>(const Shape&, Generator&, bool);                                         \
    template BasicTensor<T> from_vector<T>(const std::vector<T>&, const Shape&, bool);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

template BasicTensor<float> cast<float, double>(const BasicTensor<double>&);
template BasicTensor<double> cast<double, float>(const BasicTensor<float>&);
template BasicTensor<float> cast<float, float>(const BasicTensor<float>&);
template BasicTensor<double> cast<double, double>(const BasicTensor<double>&);

} // namespace tapegrad
