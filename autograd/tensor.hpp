#pragma once
/// @file tensor.hpp
/// tg::Tensor (float32) and tg::Tensor64 (float64): handles to a value that can take part in the
/// tape. Both are instances of BasicTensor<T> and live side by side in one build.
///
/// Every value is a materialised, contiguous, row-major xt::xarray<T>, never a lazy expression.
/// Images are NCHW.

#include <tapegrad/autograd/error.hpp>
#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/autograd/grad_mode.hpp>

#include <xtensor/xarray.hpp>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <type_traits>
#include <vector>

namespace tapegrad
{

using Shape = std::vector<std::size_t>;

class NodeBase;

template <class T>
class BasicTensor;

namespace detail
{
/// True when two shapes (any containers of sizes) are equal. A plain loop: std::equal becomes a
/// memcmp call, which costs more than comparing the handful of sizes a shape has.
template <class A, class B>
bool shapes_equal(const A& a, const B& b)
{
    if (a.size() != b.size())
    {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        if (a[i] != b[i])
        {
            return false;
        }
    }
    return true;
}
} // namespace detail

/// Values plus the version counter that detects in-place writes to tensors saved for backward.
/// Shared between a tensor and the tensors detach() makes from it.
template <class T>
struct Storage
{
    xt::xarray<T> value;
    std::uint32_t version = 0;
};

/// The shared state behind a tensor handle. Users never touch it; ops and the tape do.
template <class T>
class TensorImpl
{
  public:
    TensorImpl() = default;
    explicit TensorImpl(xt::xarray<T>&& v)
      : own_{std::move(v), 0}
    {
    }
    /// Uninitialised values of `shape`, for an op to compute its output into (new_output()).
    explicit TensorImpl(const typename xt::xarray<T>::shape_type& shape)
      : own_{xt::xarray<T>::from_shape(shape), 0}
    {
    }
    TensorImpl(const TensorImpl&) = delete;
    TensorImpl& operator=(const TensorImpl&) = delete;

    const xt::xarray<T>& value() const noexcept { return storage_->value; }
    /// Mutable values for in-place writes; bumps the version so saved copies are detected stale.
    xt::xarray<T>& mutable_value() noexcept
    {
        ++storage_->version;
        return storage_->value;
    }
    std::uint32_t version() const noexcept { return storage_->version; }
    /// Writable values without a version bump: only for the op filling the output it just created.
    xt::xarray<T>& new_value() noexcept { return storage_->value; }

    /// Makes this impl share `other`'s storage (detach).
    void alias(const std::shared_ptr<TensorImpl>& other)
    {
        storage_ = other->storage_;
        alias_owner_ = other;
    }

    /// Leaf gradient (undefined until the first backward reaches it).
    std::shared_ptr<TensorImpl> grad;
    bool requires_grad = false;

    /// Producer on the tape; only meaningful while the tape `tape_id` holds node `seq`.
    NodeBase* grad_fn = nullptr;
    std::uint64_t grad_fn_seq = 0;
    std::uint64_t tape_id = 0;

    bool is_leaf() const noexcept { return grad_fn_seq == 0; }

  private:
    Storage<T> own_;
    Storage<T>* storage_ = &own_;
    std::shared_ptr<const TensorImpl> alias_owner_;
};

/// Options for backward().
struct BackwardOptions
{
    /// Keep the recorded ops so that backward can run through them again.
    bool retain_graph = false;
};

/// A tensor handle: cheap to copy, shares its value and gradient with its copies.
/// An undefined (default-constructed) handle throws on use, except for defined().
template <class T>
class BasicTensor
{
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "tapegrad tensors are float32 or float64");

  public:
    using value_type = T;
    using array_type = xt::xarray<T>;

    BasicTensor() = default;
    /// A leaf holding `values`.
    BasicTensor(xt::xarray<T> values, bool requires_grad = false);
    /// Wraps an existing impl (ops use this).
    explicit BasicTensor(std::shared_ptr<TensorImpl<T>> impl)
      : impl_(std::move(impl))
    {
    }

    bool defined() const noexcept { return impl_ != nullptr; }
    Shape shape() const;
    std::size_t dim() const;
    std::size_t numel() const;
    /// Size of dimension `d` (negative counts from the end).
    std::size_t size(std::ptrdiff_t d) const;

    const xt::xarray<T>& value() const;
    /// Mutable access for in-place writes. Bumps the version counter: a tensor saved for backward
    /// and written through this before backward makes backward throw.
    xt::xarray<T>& mutable_value();
    /// Version counter (number of in-place writes).
    std::uint32_t version() const;

    /// The single value of a one-element tensor. Throws IndexError otherwise.
    T item() const;

    /// The accumulated gradient (same shape), or an undefined tensor before any backward.
    BasicTensor grad() const;
    bool requires_grad() const;
    /// Leaves only: whether backward accumulates into this tensor's grad().
    BasicTensor& set_requires_grad(bool on = true);
    /// True for tensors that no recorded op produced.
    bool is_leaf() const;
    /// A leaf sharing this tensor's values (and version counter) but cut off from the tape.
    BasicTensor detach() const;
    /// A leaf with a copy of the values.
    BasicTensor clone() const;
    /// Sets the accumulated gradient to zeros (keeping its buffer), if there is one.
    void zero_grad();

    /// Replays the tape backwards from this one-element tensor, accumulating into every leaf that
    /// requires grad. Without retain_graph the replayed ops are released.
    void backward(BackwardOptions options = {}) const;
    /// As above with an explicit seed gradient of this tensor's shape (for non-scalar tensors).
    void backward(const BasicTensor& seed, BackwardOptions options = {}) const;

    const std::shared_ptr<TensorImpl<T>>& impl() const noexcept { return impl_; }

  private:
    TensorImpl<T>& checked(const char* what) const;
    std::shared_ptr<TensorImpl<T>> impl_;
};

using Tensor = BasicTensor<float>;
using Tensor64 = BasicTensor<double>;

/// Prints shape, dtype, requires_grad and the values.
template <class T>
std::ostream& operator<<(std::ostream& os, const BasicTensor<T>& t);

/// @name Factories. The element type defaults to float; pass <double> for Tensor64.
/// @{
template <class T = float>
BasicTensor<T> zeros(const Shape& shape, bool requires_grad = false);
template <class T = float>
BasicTensor<T> ones(const Shape& shape, bool requires_grad = false);
template <class T = float>
BasicTensor<T> full(const Shape& shape, T value, bool requires_grad = false);
/// Standard normal values drawn from `gen`.
template <class T = float>
BasicTensor<T> randn(const Shape& shape, Generator& gen, bool requires_grad = false);
/// Uniform values in [0, 1) drawn from `gen`.
template <class T = float>
BasicTensor<T> rand(const Shape& shape, Generator& gen, bool requires_grad = false);
/// `values` laid out row-major in `shape`; throws ShapeError if the sizes differ.
template <class T>
BasicTensor<T> from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad = false);
/// @}

/// float64 spellings of the factories.
inline Tensor64 zeros64(const Shape& s, bool rg = false)
{
    return zeros<double>(s, rg);
}
inline Tensor64 ones64(const Shape& s, bool rg = false)
{
    return ones<double>(s, rg);
}
inline Tensor64 full64(const Shape& s, double v, bool rg = false)
{
    return full<double>(s, v, rg);
}
inline Tensor64 randn64(const Shape& s, Generator& g, bool rg = false)
{
    return randn<double>(s, g, rg);
}
inline Tensor64 rand64(const Shape& s, Generator& g, bool rg = false)
{
    return rand<double>(s, g, rg);
}

/// Converts between float32 and float64 as a new leaf (no tape link).
template <class To, class From>
BasicTensor<To> cast(const BasicTensor<From>& t);

} // namespace tapegrad
