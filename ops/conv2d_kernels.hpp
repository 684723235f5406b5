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

/// dst[0, n) = src[0, n), inlined: blocks of 8 and a last block overlapping the one before, so
/// short rows cost a few vector moves instead of a memmove call.
template <class T>
inline void copy_short(T* dst, const T* src, std::size_t n)
{
    if (n < 8)
    {
        for (std::size_t j = 0; j < n; ++j)
        {
            dst[j] = src[j];
        }
        return;
    }
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8)
    {
#pragma GCC unroll 8
        for (std::size_t u = 0; u < 8; ++u)
        {
            dst[j + u] = src[j + u];
        }
    }
    if (j < n)
    {
#pragma GCC unroll 8
        for (std::size_t u = 0; u < 8; ++u)
        {
            dst[n - 8 + u] = src[n - 8 + u];
        }
    }
}

/// Elements of the zero-padded copy of one image-group's cg planes that im2col builds (0 when
/// there is no padding and x is read in place).
inline std::size_t padded_size(const Geometry& g)
{
    if (g.ph == 0 && g.pw == 0)
    {
        return 0;
    }
    return g.cg * (g.h + 2 * static_cast<std::size_t>(g.ph)) * (g.w + 2 * static_cast<std::size_t>(g.pw));
}

/// col[(c*kh + a)*kw + e][i*wo + j] = x[c][i*sh - ph + a*dh][j*sw - pw + e*dw] (0 in the padding),
/// for the cg channels of one image-group starting at `x`. With padding, the planes are first
/// copied with their zero border into `xp` (padded_size(g) elements), so every col row is ho plain
/// (strided) copies of wo elements.
template <class T>
void im2col(const T* x, const Geometry& g, T* col, T* xp)
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    const std::size_t hp = g.h + 2 * ph, wp = g.w + 2 * pw;
    if (ph != 0 || pw != 0)
    {
        for (std::size_t c = 0; c < g.cg; ++c)
        {
            T* plane = xp + c * hp * wp;
            std::fill(plane, plane + ph * wp, T(0));
            for (std::size_t r = 0; r < g.h; ++r)
            {
                T* row = plane + (ph + r) * wp;
                std::fill(row, row + pw, T(0));
                copy_short(row + pw, x + (c * g.h + r) * g.w, g.w);
                std::fill(row + pw + g.w, row + wp, T(0));
            }
            std::fill(plane + (ph + g.h) * wp, plane + hp * wp, T(0));
        }
        x = xp;
    }
    const std::size_t cols = g.cols();
    const auto sh = static_cast<std::size_t>(g.sh), sw = static_cast<std::size_t>(g.sw);
    const auto dh = static_cast<std::size_t>(g.dh), dw = static_cast<std::size_t>(g.dw);
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        for (std::size_t a = 0; a < g.kh; ++a)
        {
            for (std::size_t e = 0; e < g.kw; ++e)
            {
                T* row = col + ((c * g.kh + a) * g.kw + e) * cols;
                const T* src = x + (c * hp + a * dh) * wp + e * dw;
                for (std::size_t i = 0; i < g.ho; ++i)
                {
                    const T* in = src + i * sh * wp;
                    T* out = row + i * g.wo;
                    if (sw == 1)
                    {
                        copy_short(out, in, g.wo);
                    }
                    else
                    {
                        for (std::size_t j = 0; j < g.wo; ++j)
                        {
                            out[j] = in[j * sw];
                        }
                    }
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
