#pragma once
/// @file conv2d_winograd_route.hpp
/// Private to ops/conv2d.cpp: the Winograd route of conv2d, whichever algorithm the stride
/// calls for: F(2x2, 3x3) at stride 1 (conv2d_winograd.hpp), the 25-product algorithm at
/// stride 2 (conv2d_winograd_s2.hpp). Geometry::winograd says the route runs the forward pass and
/// dX; the functions here take the same arguments as both algorithms' own.

#include <tapegrad/ops/conv2d_winograd.hpp>
#include <tapegrad/ops/conv2d_winograd_s2.hpp>

namespace tapegrad::detail::conv::winograd_route
{

/// One of the two algorithms applies (3x3, dilation 1, stride 1 or 2 on both axes).
inline bool applies(const Geometry& g)
{
    return winograd::applies(g) || winograd_s2::applies(g);
}

/// The automatic choice: F(2x2, 3x3) where it pays (the stride-2 algorithm is never
/// automatic, see conv2d_winograd_s2.hpp).
inline bool preferred(const Geometry& g)
{
    return winograd::preferred(g);
}

/// Elements of the transformed input that forward() keeps for backward()'s dW; 0 for none. At
/// stride 2 the backward transforms x again: V is as large as x there, and a fresh buffer of
/// it on every step cost more in page faults than the transform (S4, 2 threads).
inline std::size_t saved_input_size(const Geometry& g)
{
    return winograd_s2::applies(g) ? 0 : winograd::saved_input_size(g);
}

template <class T>
void forward(const T* x, const T* w, const T* b, const Geometry& g, T* y, T* saved_v = nullptr)
{
    if (winograd_s2::applies(g))
    {
        winograd_s2::forward(x, w, b, g, y, saved_v);
        return;
    }
    winograd::forward(x, w, b, g, y, saved_v);
}

template <class T>
void backward(const T* dy, const T* x, const T* w, const Geometry& g, T* dx, T* dw,
              const T* saved_v = nullptr, T* db = nullptr)
{
    if (winograd_s2::applies(g))
    {
        winograd_s2::backward(dy, x, w, g, dx, dw, saved_v, db);
        return;
    }
    winograd::backward(dy, x, w, g, dx, dw, saved_v, db);
}

} // namespace tapegrad::detail::conv::winograd_route
