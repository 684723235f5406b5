#pragma once
/// @file conv2d_winograd_s2.hpp
/// Private to ops/conv2d.cpp: 3x3, stride-2, dilation-1 convolution with 25 multiplications per
/// 2x2 output tile and channel pair instead of 36, for the forward pass and both gradients.
///
/// In 1-D, two outputs of a 3-tap correlation at stride 2 read five inputs d0..d4:
///
///     y0 = g0 d0 + g1 d1 + g2 d2,    y1 = g0 d2 + g1 d3 + g2 d4.
///
/// The even inputs d0, d2, d4 meet the 2-tap kernel (g0, g2) at stride 1, which Winograd's F(2, 2)
/// does with 3 multiplications instead of 4; the odd inputs d1, d3 meet g1 alone (2). So
/// y = A^T [(G g) . (B^T d)] with 5 products instead of 6, and every coefficient is 0 or +-1:
///
///     B^T = [1  0 -1  0  0]    G = [1  0  0]    A^T = [1  1  0  1  0]
///           [0  0  1  0  0]        [1  0  1]          [0  1  1  0  1]
///           [0  0 -1  0  1]        [0  0  1]
///           [0  1  0  0  0]        [0  1  0]
///           [0  0  0  1  0]        [0  1  0]
///
/// Nested in 2-D (conv2d_minimal.hpp) a 5x5 input tile, the tiles 4 apart and overlapping by one,
/// gives a 2x2 output tile from 25 products. As no transform rounds, integer data gives the same
/// values as im2col + GEMM in float64, and float32 rounds like a direct sum in another order.
///
/// The automatic choice for such layers with 16 or more channels each way: on W1 S4 (N 16,
/// 64 -> 128 channels, 16x16, k3 s2 p1), on an AMD EPYC with AVX-512, fwd+bwd takes 4.7 ms against
/// im2col + GEMM's 5.6 on one thread and 2.4 against 2.8 on two (fastest of 10 runs each), since
/// the tile engine's transforms run on vectors of channels. Before that they cost about what the
/// 36/25 fewer products saved (5.8 against 5.6-5.8 ms, 3.1-3.3 against 3.0-3.1).

#include <tapegrad/ops/conv2d_minimal.hpp>

namespace tapegrad::detail::conv::winograd_s2
{

/// The stride-2 algorithm applies: a 3x3 kernel, stride 2 and dilation 1 on both axes (any
/// padding, channels and groups).
inline bool applies(const Geometry& g)
{
    return g.kh == 3 && g.kw == 3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1;
}

/// The 1-D algorithm above, for conv2d_minimal.hpp.
struct Scheme
{
    static constexpr std::size_t p = 5, m = 2, step = 4;
    /// Images per block: about this many tiles.
    static constexpr std::size_t block_tiles = 128;
    static constexpr double bt[5][5] = {{1, 0, -1, 0, 0},
                                        {0, 0, 1, 0, 0},
                                        {0, 0, -1, 0, 1},
                                        {0, 1, 0, 0, 0},
                                        {0, 0, 0, 1, 0}};
    static constexpr double g[5][3] = {{1, 0, 0}, {1, 0, 1}, {0, 0, 1}, {0, 1, 0}, {0, 1, 0}};
    static constexpr double at[2][5] = {{1, 1, 0, 1, 0}, {0, 1, 1, 0, 1}};
};

} // namespace tapegrad::detail::conv::winograd_s2
