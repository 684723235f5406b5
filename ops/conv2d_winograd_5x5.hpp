#pragma once
/// @file conv2d_winograd_5x5.hpp
/// Private to ops/conv2d.cpp: 3x3, stride-1, dilation-1 convolution by Winograd's F(5x5, 3x3): a
/// 7x7 input tile and a 3x3 kernel give a 5x5 output tile with 49 multiplications instead of
/// 225, 1.96 per output against F(4x4, 3x3)'s 2.25. Its use is the tiling: a 14x14 output (the
/// fashion CNN's second layer) takes 3x3 tiles of 5 (15x15) against 4x4 tiles of 4 (16x16), so
/// its GEMMs and transforms carry 23 % fewer values. In 1-D, with the interpolation points 0, 1,
/// -1, 2, -2, 1/2 and infinity (B^T solved from A^T and G so that the identity holds for every
/// input and kernel; checked symbolically),
///
///     B^T = [-2  4  5/2  -5  -1/2  1  0]     G = [ -1/2     0      0  ]
///           [ 0  2  -2  -9/2  1/2  1  0]         [ -1/3   -1/3   -1/3 ]
///           [ 0 -2   6  -7/2 -3/2  1  0]         [  1/9   -1/9    1/9 ]
///           [ 0  1 -3/2  -2   3/2  1  0]         [  1/36   1/18   1/9 ]
///           [ 0 -1  5/2   0  -5/2  1  0]         [ -1/60   1/30  -1/15]
///           [ 0  4   0   -5    0   1  0]         [ 32/45  16/45   8/45]
///           [ 0 -2   4   5/2  -5  -1/2 1]        [   0      0      1  ]
///
///     A^T = [1  1  1   1   1    1    0]
///           [0  1 -1   2  -2   1/2   0]
///           [0  1  1   4   4   1/4   0]
///           [0  1 -1   8  -8   1/8   0]
///           [0  1  1  16  16   1/16  1]
///
/// nested in 2-D by conv2d_minimal.hpp, which also derives both gradients as exact adjoints.
/// B^T and A^T are dyadic, G rounds (1/3, 1/9, 1/45 ...); the coefficients up to 16 grow the
/// values more than F(4x4, 3x3)'s up to 8, so float32 results differ from im2col + GEMM by a few
/// 1e-5 relative.

#include <tapegrad/ops/conv2d_minimal.hpp>

namespace tapegrad::detail::conv::winograd_5x5
{

/// F(5x5, 3x3) applies: a 3x3 kernel, stride 1 and dilation 1 (any padding, channels, groups).
inline bool applies(const Geometry& g)
{
    return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1;
}

/// The 1-D algorithm above, for conv2d_minimal.hpp.
struct Scheme
{
    static constexpr std::size_t p = 7, m = 5, step = 5;
    /// Images per block: about this many tiles.
    static constexpr std::size_t block_tiles = 64;
    static constexpr double bt[7][7] = {{-2, 4, 2.5, -5, -0.5, 1, 0}, {0, 2, -2, -4.5, 0.5, 1, 0},
                                        {0, -2, 6, -3.5, -1.5, 1, 0}, {0, 1, -1.5, -2, 1.5, 1, 0},
                                        {0, -1, 2.5, 0, -2.5, 1, 0},  {0, 4, 0, -5, 0, 1, 0},
                                        {0, -2, 4, 2.5, -5, -0.5, 1}};
    static constexpr double g[7][3] = {{-1.0 / 2, 0, 0},
                                       {-1.0 / 3, -1.0 / 3, -1.0 / 3},
                                       {1.0 / 9, -1.0 / 9, 1.0 / 9},
                                       {1.0 / 36, 1.0 / 18, 1.0 / 9},
                                       {-1.0 / 60, 1.0 / 30, -1.0 / 15},
                                       {32.0 / 45, 16.0 / 45, 8.0 / 45},
                                       {0, 0, 1}};
    static constexpr double at[5][7] = {{1, 1, 1, 1, 1, 1, 0},
                                        {0, 1, -1, 2, -2, 0.5, 0},
                                        {0, 1, 1, 4, 4, 0.25, 0},
                                        {0, 1, -1, 8, -8, 0.125, 0},
                                        {0, 1, 1, 16, 16, 0.0625, 1}};
};

} // namespace tapegrad::detail::conv::winograd_5x5
