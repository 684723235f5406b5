#pragma once
/// @file conv2d_winograd_route.hpp
/// Private to ops/conv2d.cpp: the Winograd route of conv2d, whichever algorithm the layer and
/// the options call for: F(2x2, 3x3) at stride 1 (conv2d_winograd.hpp), F(4x4, 3x3) at stride 1
/// when asked for (conv2d_winograd_4x4.hpp), the 25-product algorithm at stride 2
/// (conv2d_winograd_s2.hpp). Geometry::winograd says the route runs the forward pass and dX.

#include <tapegrad/ops/conv2d_minimal.hpp>
#include <tapegrad/ops/conv2d_winograd.hpp>
#include <tapegrad/ops/conv2d_winograd_4x4.hpp>
#include <tapegrad/ops/conv2d_winograd_5x5.hpp>
#include <tapegrad/ops/conv2d_winograd_s2.hpp>

namespace tapegrad::detail::conv::winograd_route
{

/// Conv2dAlgorithm::winograd applies (3x3, dilation 1, stride 1 or 2 on both axes).
inline bool applies(const Geometry& g)
{
    return winograd::applies(g) || winograd_s2::applies(g);
}

/// The automatic choice: a minimal filtering algorithm where it applies and both channel counts
/// per group are at least 16 (see winograd::preferred), at stride 1 or 2.
inline bool preferred(const Geometry& g)
{
    return winograd::preferred(g) || (winograd_s2::applies(g) && g.cg >= 16 && g.kg >= 16);
}

/// Multiplications per image and channel pair of a stride-1 tile algorithm with M x M output
/// tiles: the tiles that cover Ho x Wo times (M + 2)^2.
inline std::size_t tile_products(const Geometry& g, std::size_t m)
{
    return ((g.ho + m - 1) / m) * ((g.wo + m - 1) / m) * (m + 2) * (m + 2);
}

/// Which stride-1 algorithm automatic runs: F(2x2, 3x3) when the output is smaller than one 4x4
/// tile each way (most of a larger tile would be thrown away); otherwise F(4x4, 3x3), or F(5x5,
/// 3x3) when its tiling needs fewer multiplications (14x14: 441 against 576; 28x28: a tie, which
/// goes to F(4x4, 3x3) for its smaller rounding). On W1 S2 (N 64, 32 -> 64 channels, 14x14)
/// fwd+bwd took 10.0-10.5 ms by F(4x4, 3x3) against F(2x2, 3x3)'s 12.1 on one thread and 5.2
/// against 6.0 on two, before the transforms ran on vectors of channels; F(5x5, 3x3): see
/// conv2d_winograd_5x5.hpp.
inline bool prefer_4x4(const Geometry& g)
{
    return winograd_4x4::applies(g) && g.ho >= 4 && g.wo >= 4;
}

inline bool prefer_5x5(const Geometry& g)
{
    return prefer_4x4(g) && tile_products(g, 5) < tile_products(g, 4);
}

/// Elements of the transformed input that forward() keeps for backward()'s dW; 0 for none. The
/// tile-by-tile algorithms transform x again: a fresh buffer for V on every step cost more in
/// page faults than the transform (S4, 2 threads).
inline std::size_t saved_input_size(const Geometry& g)
{
    return winograd_s2::applies(g) || g.winograd_4x4 || g.winograd_5x5 ? 0 : winograd::saved_input_size(g);
}

template <class T>
void forward(const T* x, const T* w, const T* b, const Geometry& g, T* y, T* saved_v = nullptr)
{
    if (winograd_s2::applies(g))
    {
        minimal::forward<winograd_s2::Scheme>(x, w, b, g, y);
    }
    else if (g.winograd_5x5)
    {
        minimal::forward<winograd_5x5::Scheme>(x, w, b, g, y);
    }
    else if (g.winograd_4x4)
    {
        minimal::forward<winograd_4x4::Scheme>(x, w, b, g, y);
    }
    else
    {
        winograd::forward(x, w, b, g, y, saved_v);
    }
}

template <class T>
void backward(const T* dy, const T* x, const T* w, const Geometry& g, T* dx, T* dw,
              const T* saved_v = nullptr, T* db = nullptr)
{
    if (winograd_s2::applies(g))
    {
        minimal::backward<winograd_s2::Scheme>(dy, x, w, g, dx, dw, db);
    }
    else if (g.winograd_5x5)
    {
        minimal::backward<winograd_5x5::Scheme>(dy, x, w, g, dx, dw, db);
    }
    else if (g.winograd_4x4)
    {
        minimal::backward<winograd_4x4::Scheme>(dy, x, w, g, dx, dw, db);
    }
    else
    {
        winograd::backward(dy, x, w, g, dx, dw, saved_v, db);
    }
}

} // namespace tapegrad::detail::conv::winograd_route
