#pragma once
/// @file elementwise.hpp
/// Binary arithmetic with numpy broadcasting, and negation. Shapes are aligned from the trailing
/// dimension; each pair of sizes must be equal or one of them 1. The gradient of each input is
/// summed back to that input's shape (sum_to).

#include <tapegrad/autograd/tensor.hpp>

#include <type_traits>

namespace tapegrad
{

/// The numpy broadcast of two shapes. Throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

namespace detail
{

/// Sums `g` (shape broadcast from `shape`) back down to `shape`: the unbroadcast step every binary
/// VJP ends with. Returns `g` unchanged (moved) when the shapes already agree.
template <class T>
xt::xarray<T> sum_to(xt::xarray<T>&& g, const typename xt::xarray<T>::shape_type& shape);
/// As above, leaving `g` intact (a copy when the shapes already agree).
template <class T>
xt::xarray<T> sum_to(const xt::xarray<T>& g, const typename xt::xarray<T>::shape_type& shape);
} // namespace detail

/// a + b, broadcast.
template <class T>
BasicTensor<T> add(const BasicTensor<T>& a, const BasicTensor<T>& b);
/// a - b, broadcast.
template <class T>
BasicTensor<T> sub(const BasicTensor<T>& a, const BasicTensor<T>& b);
/// a * b (elementwise), broadcast.
template <class T>
BasicTensor<T> mul(const BasicTensor<T>& a, const BasicTensor<T>& b);
/// a / b (elementwise), broadcast.
template <class T>
BasicTensor<T> div(const BasicTensor<T>& a, const BasicTensor<T>& b);
/// -a.
template <class T>
BasicTensor<T> neg(const BasicTensor<T>& a);
/// a + s.
template <class T>
BasicTensor<T> add_scalar(const BasicTensor<T>& a, T s);
/// a * s.
template <class T>
BasicTensor<T> mul_scalar(const BasicTensor<T>& a, T s);
/// s / a.
template <class T>
BasicTensor<T> rdiv_scalar(T s, const BasicTensor<T>& a);

template <class T>
BasicTensor<T> operator+(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    return add(a, b);
}
template <class T>
BasicTensor<T> operator-(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    return sub(a, b);
}
template <class T>
BasicTensor<T> operator*(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    return mul(a, b);
}
template <class T>
BasicTensor<T> operator/(const BasicTensor<T>& a, const BasicTensor<T>& b)
{
    return div(a, b);
}
template <class T>
BasicTensor<T> operator-(const BasicTensor<T>& a)
{
    return neg(a);
}
template <class T>
BasicTensor<T> operator+(const BasicTensor<T>& a, std::type_identity_t<T> s)
{
    return add_scalar(a, s);
}
template <class T>
BasicTensor<T> operator+(std::type_identity_t<T> s, const BasicTensor<T>& a)
{
    return add_scalar(a, s);
}
template <class T>
BasicTensor<T> operator-(const BasicTensor<T>& a, std::type_identity_t<T> s)
{
    return add_scalar(a, -s);
}
template <class T>
BasicTensor<T> operator-(std::type_identity_t<T> s, const BasicTensor<T>& a)
{
    return add_scalar(neg(a), s);
}
template <class T>
BasicTensor<T> operator*(const BasicTensor<T>& a, std::type_identity_t<T> s)
{
    return mul_scalar(a, s);
}
template <class T>
BasicTensor<T> operator*(std::type_identity_t<T> s, const BasicTensor<T>& a)
{
    return mul_scalar(a, s);
}
template <class T>
BasicTensor<T> operator/(const BasicTensor<T>& a, std::type_identity_t<T> s)
{
    return mul_scalar(a, T(1) / s);
}
template <class T>
BasicTensor<T> operator/(std::type_identity_t<T> s, const BasicTensor<T>& a)
{
    return rdiv_scalar(s, a);
}

} // namespace tapegrad
