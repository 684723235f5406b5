#pragma once
/// @file conv2d_winograd_4x4.hpp
/// Private to ops/conv2d.cpp: 3x3, stride-1, dilation-1 convolution by Winograd's F(4x4, 3x3)
/// (Lavin and Gray 2015): a 6x6 input tile and a 3x3 kernel give a 4x4 output tile with 36
/// multiplications instead of 144, 2.25 per output against F(2x2, 3x3)'s 4. In 1-D, with the
/// interpolation points 0, 1, -1, 2, -2 and infinity,
///
///     B^T = [4  0 -5  0  1  0]    G = [ 1/4     0     0 ]    A^T = [1  1  1  1  1  0]
///           [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0  1 -1  2 -2  0]
///           [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0  1  1  4  4  0]
///           [0 -2 -1  2  1  0]        [1/24  1/12   1/6 ]          [0  1 -1  8 -8  1]
///           [0  2 -1 -2  1  0]        [1/24 -1/12   1/6 ]
///           [0  4  0 -5  0  1]        [  0     0     1  ]
///
/// nested in 2-D by conv2d_minimal.hpp, which also derives both gradients as exact adjoints.
/// Unlike F(2x2, 3x3) its transforms round (1/6 has no binary form, and the coefficients up to 8
/// grow the values), so float32 results differ from im2col + GEMM by about 1e-5 relative.

#include <tapegrad/ops/conv2d_minimal.hpp>

namespace tapegrad::detail::conv::winograd_4x4
{

/// F(4x4, 3x3) applies: a 3x3 kernel, stride 1 and dilation 1 (any padding, channels, groups).
inline bool applies(const Geometry& g)
{
    return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1;
}

/// The 1-D algorithm above, for conv2d_minimal.hpp.
struct Scheme
{
    static constexpr std::size_t p = 6, m = 4, step = 4;
    /// Images per block: about this many tiles.
    static constexpr std::size_t block_tiles = 64;
    static constexpr double bt[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                        {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
    static constexpr double g[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
    static constexpr double at[4][6] = {{1, 1, 1, 1, 1, 0},
                                        {0, 1, -1, 2, -2, 0},
                                        {0, 1, 1, 4, 4, 0},
                                        {0, 1, -1, 8, -8, 1}};
};

} // namespace tapegrad::detail::conv::winograd_4x4
