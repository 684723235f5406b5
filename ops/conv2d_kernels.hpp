#pragma once
/// @file conv2d_kernels.hpp
/// Private to ops/conv2d.cpp: the raw loops around the conv GEMMs. The sizes of one convolution,
/// im2col and its adjoint col2im, and a direct (GEMM-free) forward for layers with few input
/// channels. Plain loops over contiguous rows, written so gcc vectorises the inner ones.

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace tapegrad::detail::conv
{

/// Every size of one convolution (validated by conv2d.cpp). Channels are split into `groups`
/// blocks of `cg` input and `kg` output channels; one image-group is a GEMM of
/// [kg x rows] * [rows x cols].
struct Geometry
{
    std::size_t n = 0, c = 0, h = 0, w = 0;
    std::size_t k = 0, kh = 0, kw = 0;
    std::size_t groups = 1, cg = 0, kg = 0;
    std::int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    std::size_t ho = 0, wo = 0;

    std::size_t rows() const { return cg * kh * kw; }
    std::size_t cols() const { return ho * wo; }
    /// 1x1 kernel, stride 1, no padding: the input plane already is the col matrix.
    bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

/// One kernel tap (a, e) seen from the output: output row i reads input row i*sh + row_off, output
/// column j reads input column j*sw + col_off, and only j in [j0, j1) lands inside the input.
struct Tap
{
    std::int64_t row_off = 0, col_off = 0;
    std::size_t j0 = 0, j1 = 0;

    Tap(const Geometry& g, std::size_t a, std::size_t e)
      : row_off(static_cast<std::int64_t>(a) * g.dh - g.ph)
      , col_off(static_cast<std::int64_t>(e) * g.dw - g.pw)
    {
        const auto wo = static_cast<std::int64_t>(g.wo);
        const auto first = col_off >= 0 ? 0 : (-col_off + g.sw - 1) / g.sw;
        const auto end = static_cast<std::int64_t>(g.w) - col_off;
        const auto last = end <= 0 ? 0 : (end + g.sw - 1) / g.sw;
        j0 = static_cast<std::size_t>(std::min(first, wo));
        j1 = static_cast<std::size_t>(std::clamp(last, std::min(first, wo), wo));
    }

    /// The input column read by output column j0 (0 when no column is inside).
    std::size_t first_col(const Geometry& g) const
    {
        return j0 < j1 ? static_cast<std::size_t>(static_cast<std::int64_t>(j0) * g.sw + col_off) : 0;
    }

    /// The input row read by output row i, or -1 when it falls in the padding.
    std::int64_t input_row(const Geometry& g, std::size_t i) const
    {
        const std::int64_t ih = static_cast<std::int64_t>(i) * g.sh + row_off;
        return ih >= 0 && ih < static_cast<std::int64_t>(g.h) ? ih : -1;
    }
};

/// col[(c*kh + a)*kw + e][i*wo + j] = x[c][i*sh - ph + a*dh][j*sw - pw + e*dw] (0 in the padding),
/// for the cg channels of one image-group starting at `x`.
template <class T>
void im2col(const T* x, const Geometry& g, T* col)
{
    const std::size_t cols = g.cols();
    const auto sw = static_cast<std::size_t>(g.sw);
    for (std::size_t a = 0; a < g.kh; ++a)
    {
        for (std::size_t e = 0; e < g.kw; ++e)
        {
            const Tap tap(g, a, e);
            for (std::size_t c = 0; c < g.cg; ++c)
            {
                T* row = col + ((c * g.kh + a) * g.kw + e) * cols;
                for (std::size_t i = 0; i < g.ho; ++i)
                {
                    T* out = row + i * g.wo;
                    const std::int64_t ih = tap.input_row(g, i);
                    if (ih < 0)
                    {
                        std::fill(out, out + g.wo, T(0));
                        continue;
                    }
                    const T* src = x + (c * g.h + static_cast<std::size_t>(ih)) * g.w + tap.first_col(g);
                    std::fill(out, out + tap.j0, T(0));
                    if (sw == 1)
                    {
                        std::copy(src, src + (tap.j1 - tap.j0), out + tap.j0);
                    }
                    else
                    {
                        for (std::size_t j = tap.j0; j < tap.j1; ++j)
                        {
                            out[j] = src[(j - tap.j0) * sw];
                        }
                    }
                    std::fill(out + tap.j1, out + g.wo, T(0));
                }
            }
        }
    }
}

/// The adjoint of im2col: dx (the cg planes of one image-group, overwritten) = the sum of every
/// col entry into the input pixel it was read from. For stride 1 each col row segment is one
/// contiguous add into a dx row, and one plane stays in L1 while its kh*kw col rows stream by.
template <class T>
void col2im(const T* col, const Geometry& g, T* dx)
{
    const std::size_t cols = g.cols();
    const auto sw = static_cast<std::size_t>(g.sw);
    std::fill(dx, dx + g.cg * g.h * g.w, T(0));
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        T* plane = dx + c * g.h * g.w;
        for (std::size_t a = 0; a < g.kh; ++a)
        {
            for (std::size_t e = 0; e < g.kw; ++e)
            {
                const Tap tap(g, a, e);
                const T* row = col + ((c * g.kh + a) * g.kw + e) * cols;
                for (std::size_t i = 0; i < g.ho; ++i)
                {
                    const std::int64_t ih = tap.input_row(g, i);
                    if (ih < 0)
                    {
                        continue;
                    }
                    T* dst = plane + static_cast<std::size_t>(ih) * g.w + tap.first_col(g);
                    const T* src = row + i * g.wo + tap.j0;
                    const std::size_t len = tap.j1 - tap.j0;
                    if (sw == 1)
                    {
                        for (std::size_t j = 0; j < len; ++j)
                        {
                            dst[j] += src[j];
                        }
                    }
                    else
                    {
                        for (std::size_t j = 0; j < len; ++j)
                        {
                            dst[j * sw] += src[j];
                        }
                    }
                }
            }
        }
    }
}

} // namespace tapegrad::detail::conv
