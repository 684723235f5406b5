#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/conv2d.hpp>
#include <tapegrad/ops/conv2d_kernels.hpp>
#include <tapegrad/ops/conv2d_winograd_route.hpp>

#include <algorithm>
#include <memory>
#include <vector>

namespace tapegrad
{

namespace
{

using detail::conv::add_bias;
using detail::conv::checked_gemm;
using detail::conv::col2im;
using detail::conv::ColBuffers;
using detail::conv::for_each_index;
using detail::conv::gather_dy;
using detail::conv::Geometry;
using detail::conv::im2col;
using detail::conv::images_per_gemm;
using detail::conv::parallel_batch;
using detail::conv::sum_row;

Shape x_shape(const Geometry& g)
{
    return {g.n, g.c, g.h, g.w};
}
Shape w_shape(const Geometry& g)
{
    return {g.k, g.cg, g.kh, g.kw};
}
Shape y_shape(const Geometry& g)
{
    return {g.n, g.k, g.ho, g.wo};
}

template <class S>
Shape to_shape(const S& s)
{
    return Shape(s.begin(), s.end());
}

std::int64_t checked_output_size(const char* axis, std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                 std::int64_t padding, std::int64_t dilation, const Shape& xs,
                                 const Shape& ws)
{
    const auto where = [&]
    { return detail::cat(" (", axis, " axis of x ", shape_str(xs), " with w ", shape_str(ws), ")"); };
    try
    {
        return conv2d_output_size(in, kernel, stride, padding, dilation);
    }
    catch (const ShapeError& e)
    {
        throw ShapeError(e.what() + where());
    }
    catch (const ValueError& e)
    {
        throw ValueError(e.what() + where());
    }
}

Geometry make_geometry(const Shape& xs, const Shape& ws, const Conv2dOptions& o)
{
    if (xs.size() != 4)
    {
        throw ShapeError(detail::cat("tg::conv2d: x must be 4-D [N, C, H, W], got shape ", shape_str(xs),
                                     " (rank ", xs.size(), ") with w ", shape_str(ws)));
    }
    if (ws.size() != 4)
    {
        throw ShapeError(detail::cat("tg::conv2d: w must be 4-D [K, C/groups, kh, kw], got shape ",
                                     shape_str(ws), " (rank ", ws.size(), ") for x ", shape_str(xs)));
    }
    if (o.groups < 1)
    {
        throw ValueError(detail::cat("tg::conv2d: groups ", o.groups, " must be >= 1 (x ", shape_str(xs),
                                     ", w ", shape_str(ws), ")"));
    }
    Geometry g;
    g.n = xs[0], g.c = xs[1], g.h = xs[2], g.w = xs[3];
    g.k = ws[0], g.cg = ws[1], g.kh = ws[2], g.kw = ws[3];
    g.groups = static_cast<std::size_t>(o.groups);
    if (g.c % g.groups != 0 || g.k % g.groups != 0)
    {
        throw ShapeError(detail::cat("tg::conv2d: groups ", g.groups, " must divide both the ", g.c,
                                     " input channels of x ", shape_str(xs), " and the ", g.k,
                                     " output channels of w ", shape_str(ws)));
    }
    if (g.cg * g.groups != g.c)
    {
        throw ShapeError(detail::cat("tg::conv2d: x ", shape_str(xs), " has ", g.c, " channels but w ",
                                     shape_str(ws), " expects w.shape[1] * groups = ", g.cg, " * ", g.groups,
                                     " = ", g.cg * g.groups));
    }
    g.kg = g.k / g.groups;
    g.sh = o.stride.h, g.sw = o.stride.w;
    g.ph = o.padding.h, g.pw = o.padding.w;
    g.dh = o.dilation.h, g.dw = o.dilation.w;
    g.ho = static_cast<std::size_t>(checked_output_size(
      "height", static_cast<std::int64_t>(g.h), static_cast<std::int64_t>(g.kh), g.sh, g.ph, g.dh, xs, ws));
    g.wo = static_cast<std::size_t>(checked_output_size(
      "width", static_cast<std::int64_t>(g.w), static_cast<std::int64_t>(g.kw), g.sw, g.pw, g.dw, xs, ws));
    switch (o.algorithm)
    {
        case Conv2dAlgorithm::automatic:
            g.winograd = detail::conv::winograd_route::preferred(g);
            g.winograd_5x5 = g.winograd && detail::conv::winograd_route::prefer_5x5(g);
            g.winograd_4x4 = g.winograd && !g.winograd_5x5 && detail::conv::winograd_route::prefer_4x4(g);
            break;
        case Conv2dAlgorithm::gemm:
            break;
        case Conv2dAlgorithm::winograd:
            if (!detail::conv::winograd_route::applies(g))
            {
                throw ValueError(
                  detail::cat("tg::conv2d: algorithm winograd needs a 3x3 kernel, dilation 1 and "
                              "stride 1 (F(2x2, 3x3)) or 2 on both axes, got kernel ",
                              g.kh, "x", g.kw, ", stride (", g.sh, ", ", g.sw, "), dilation (", g.dh, ", ",
                              g.dw, ") for x ", shape_str(xs), ", w ", shape_str(ws)));
            }
            g.winograd = true;
            g.winograd_weight = true;
            break;
        case Conv2dAlgorithm::winograd_4x4:
        case Conv2dAlgorithm::winograd_5x5:
        {
            const bool four = o.algorithm == Conv2dAlgorithm::winograd_4x4;
            if (!(four ? detail::conv::winograd_4x4::applies(g) : detail::conv::winograd_5x5::applies(g)))
            {
                throw ValueError(
                  detail::cat("tg::conv2d: algorithm ", four ? "winograd_4x4 (F(4x4" : "winograd_5x5 (F(5x5",
                              ", 3x3)) needs a 3x3 kernel, stride 1 and dilation 1, got kernel ", g.kh, "x",
                              g.kw, ", stride (", g.sh, ", ", g.sw, "), dilation (", g.dh, ", ", g.dw,
                              ") for x ", shape_str(xs), ", w ", shape_str(ws)));
            }
            g.winograd = true;
            g.winograd_weight = true;
            g.winograd_4x4 = four;
            g.winograd_5x5 = !four;
            break;
        }
    }
    return g;
}

void check_bias(const Shape& bs, const Geometry& g)
{
    if (bs.size() != 1 || bs[0] != g.k)
    {
        throw ShapeError(detail::cat("tg::conv2d: b must be 1-D [K] = [", g.k, "] to match w ",
                                     shape_str(w_shape(g)), ", got shape ", shape_str(bs), " (x ",
                                     shape_str(x_shape(g)), ")"));
    }
}

void check_grad_shape(const char* what, const Shape& got, const Shape& want)
{
    if (got != want)
    {
        throw ShapeError(detail::cat("tg::conv2d: ", what, " must have the output shape ", shape_str(want),
                                     ", got ", shape_str(got)));
    }
}

// ---------------------------------------------------------------------------------------------
// Forward kernel

/// Per image and group: im2col, then Y_g[kg x cols] = W_g[kg x rows] * col[rows x cols] straight
/// into y, then the bias. Small outputs put several images side by side in one GEMM (col rows
/// nt*cols long) and copy each image's columns out.
template <class T>
void forward_kernel(const T* x, const T* w, const T* b, const Geometry& g, T* y, T* saved_v = nullptr)
{
    if (g.winograd)
    {
        detail::conv::winograd_route::forward(x, w, b, g, y, saved_v);
        return;
    }
    const std::size_t rows = g.rows(), cols = g.cols();
    const std::size_t hw = g.h * g.w;
    const std::size_t batch = images_per_gemm(g);
    const std::size_t batches = (g.n + batch - 1) / batch;
    for_each_index(
      parallel_batch(g), batches, [&] { return ColBuffers<T>(g, false, batch); },
      [&](const ColBuffers<T>& buf, std::size_t bi)
      {
          const std::size_t n0 = bi * batch, nt = std::min(batch, g.n - n0);
          const std::size_t ld = nt * cols;
          for (std::size_t gi = 0; gi < g.groups; ++gi)
          {
              const T* wg = w + gi * g.kg * rows;
              const T* bg = b != nullptr ? b + gi * g.kg : nullptr;
              const T* xg = x + (n0 * g.c + gi * g.cg) * hw;
              T* yg = y + (n0 * g.k + gi * g.kg) * cols;
              if (g.pointwise() || nt == 1)
              {
                  const T* src = xg;
                  if (!g.pointwise())
                  {
                      im2col(xg, g, buf.col, buf.padded, cols);
                      src = buf.col;
                  }
                  checked_gemm(false, false, g.kg, cols, rows, wg, rows, src, cols, T(0), yg, cols);
                  add_bias(yg, bg, g.kg, cols, cols);
                  continue;
              }
              for (std::size_t t = 0; t < nt; ++t)
              {
                  im2col(xg + t * g.c * hw, g, buf.col + t * cols, buf.padded, ld);
              }
              checked_gemm(false, false, g.kg, ld, rows, wg, rows, buf.col, ld, T(0), buf.batch_y, ld);
              for (std::size_t t = 0; t < nt; ++t)
              {
                  T* yt = yg + t * g.k * cols;
                  for (std::size_t k = 0; k < g.kg; ++k)
                  {
                      std::copy(buf.batch_y + k * ld + t * cols, buf.batch_y + k * ld + (t + 1) * cols,
                                yt + k * cols);
                  }
                  add_bias(yt, bg, g.kg, cols, cols);
              }
          }
      });
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

/// db[k] = sum over images and pixels of dY[n, k].
template <class T>
void backward_bias_kernel(const T* dy, std::size_t n, std::size_t k, std::size_t plane, T* db)
{
    std::fill(db, db + k, T(0));
    for (std::size_t i = 0; i < n; ++i)
    {
        for (std::size_t kk = 0; kk < k; ++kk)
        {
            db[kk] += sum_row(dy + (i * k + kk) * plane, plane);
        }
    }
}

/// dW_g^T[rows x kg] += col[rows x cols] * dY_g^T for every image and group (OpenBLAS packs this
/// form faster than dY_g * col^T), transposed into dW at the end. The batch is cut into a
/// fixed number of chunks, each summed into its own partial dW (and db), and the partials are
/// added in chunk order: threads never share an accumulator, and the result is the same bit for
/// bit whatever the number of threads. If `db` is given, the bias gradient is summed in the same
/// pass, while dY_n is in cache.
template <class T>
void backward_weight_kernel(const T* dy, const T* x, const Geometry& g, T* dw, T* db = nullptr)
{
    if (g.winograd_weight)
    {
        detail::conv::winograd_route::backward(dy, x, static_cast<const T*>(nullptr), g,
                                               static_cast<T*>(nullptr), dw);
        if (db != nullptr)
        {
            backward_bias_kernel(dy, g.n, g.k, g.cols(), db);
        }
        return;
    }
    const std::size_t rows = g.rows(), cols = g.cols();
    const std::size_t hw = g.h * g.w;
    const std::size_t size = g.k * rows;
    const std::size_t stride = size + g.k; // one chunk's dW partial, then its db partial
    const std::size_t chunks = parallel_batch(g) ? std::min<std::size_t>(g.n, 4) : 1;
    const std::size_t batch = images_per_gemm(g);
    std::vector<T> partial(chunks * stride, T(0));
    for_each_index(
      chunks > 1, chunks, [&] { return ColBuffers<T>(g, false, batch); },
      [&](const ColBuffers<T>& buf, std::size_t chunk)
      {
          T* acc = partial.data() + chunk * stride;
          const std::size_t end = (chunk + 1) * g.n / chunks;
          for (std::size_t n0 = chunk * g.n / chunks; n0 < end; n0 += batch)
          {
              const std::size_t nt = std::min(batch, end - n0), ld = nt * cols;
              for (std::size_t gi = 0; gi < g.groups; ++gi)
              {
                  const T* dyg = dy + (n0 * g.k + gi * g.kg) * cols;
                  for (std::size_t t = 0; db != nullptr && t < nt; ++t)
                  {
                      for (std::size_t k = 0; k < g.kg; ++k)
                      {
                          acc[size + gi * g.kg + k] += sum_row(dyg + (t * g.k + k) * cols, cols);
                      }
                  }
                  const T* src = x + (n0 * g.c + gi * g.cg) * hw;
                  if (!g.pointwise())
                  {
                      for (std::size_t t = 0; t < nt; ++t)
                      {
                          im2col(src + t * g.c * hw, g, buf.col + t * cols, buf.padded, ld);
                      }
                      src = buf.col;
                  }
                  if (nt > 1)
                  {
                      gather_dy(dy, g, n0, nt, gi, buf.batch_y, ld);
                      dyg = buf.batch_y;
                  }
                  checked_gemm(false, true, rows, g.kg, ld, src, ld, dyg, ld, T(1), acc + gi * g.kg * rows,
                               g.kg);
              }
          }
      });
    detail::conv::add_chunks(partial.data(), chunks, stride);
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        const T* src = partial.data() + gi * g.kg * rows;
        for (std::size_t k = 0; k < g.kg; ++k)
        {
            for (std::size_t r = 0; r < rows; ++r)
            {
                dw[(gi * g.kg + k) * rows + r] = src[r * g.kg + k];
            }
        }
    }
    if (db != nullptr)
    {
        std::copy(partial.data() + size, partial.data() + stride, db);
    }
}

/// dX_n = col2im(W_g^T * dY_g) per image and group, small outputs several images per GEMM as in
/// the forward; for stride 1 on wide rows (see conv2d_kernels.hpp).
template <class T>
void backward_input_kernel(const T* dy, const T* w, const Geometry& g, T* dx)
{
    if (g.winograd)
    {
        detail::conv::winograd_route::backward(dy, static_cast<const T*>(nullptr), w, g, dx,
                                               static_cast<T*>(nullptr));
        return;
    }
    using namespace detail::conv;
    const std::size_t rows = g.rows(), cols = g.cols();
    const std::size_t hw = g.h * g.w;
    const bool wide = wide_rows(g);
    const std::size_t wcols = wide ? wide_cols(g) : 0;
    const std::size_t batch = wide ? 1 : images_per_gemm(g);
    const std::size_t batches = (g.n + batch - 1) / batch;
    for_each_index(
      parallel_batch(g), batches, [&] { return ColBuffers<T>(g, wide, batch); },
      [&](const ColBuffers<T>& buf, std::size_t bi)
      {
          const std::size_t n0 = bi * batch, nt = std::min(batch, g.n - n0), ld = nt * cols;
          for (std::size_t gi = 0; gi < g.groups; ++gi)
          {
              const T* wg = w + gi * g.kg * rows;
              T* dxg = dx + (n0 * g.c + gi * g.cg) * hw;
              const T* dyg = dy + (n0 * g.k + gi * g.kg) * cols;
              if (wide)
              {
                  widen(dyg, g, buf.wide_dy);
                  checked_gemm(true, false, rows, wcols, g.kg, wg, rows, buf.wide_dy, wcols, T(0), buf.col,
                               wcols);
                  col2im_wide(buf.col, g, dxg, buf.padded);
                  continue;
              }
              if (nt > 1)
              {
                  gather_dy(dy, g, n0, nt, gi, buf.batch_y, ld);
                  dyg = buf.batch_y;
              }
              T* dst = g.pointwise() ? dxg : buf.col;
              checked_gemm(true, false, rows, ld, g.kg, wg, rows, dyg, ld, T(0), dst, ld);
              for (std::size_t t = 0; t < nt && !g.pointwise(); ++t)
              {
                  col2im(buf.col + t * cols, g, dxg + t * g.c * hw, buf.padded, ld);
              }
          }
      });
}

/// The textbook dX, see conv2d_backward_input_full_conv in the header.
template <class T>
void full_conv_kernel(const T* dy, const T* w, const Geometry& g, T* dx)
{
    // Z: dY with (s-1) zeros between elements, placed at offset d(k-1)-p (may be negative: cropped).
    const std::size_t hz = g.h + (g.kh - 1) * static_cast<std::size_t>(g.dh);
    const std::size_t wz = g.w + (g.kw - 1) * static_cast<std::size_t>(g.dw);
    const std::int64_t off_h = static_cast<std::int64_t>(g.kh - 1) * g.dh - g.ph;
    const std::int64_t off_w = static_cast<std::int64_t>(g.kw - 1) * g.dw - g.pw;
    std::vector<T> z(g.n * g.k * hz * wz, T(0));
    for (std::size_t nk = 0; nk < g.n * g.k; ++nk)
    {
        for (std::size_t i = 0; i < g.ho; ++i)
        {
            for (std::size_t j = 0; j < g.wo; ++j)
            {
                const std::int64_t t = static_cast<std::int64_t>(i) * g.sh + off_h;
                const std::int64_t u = static_cast<std::int64_t>(j) * g.sw + off_w;
                if (t >= 0 && t < static_cast<std::int64_t>(hz) && u >= 0 &&
                    u < static_cast<std::int64_t>(wz))
                {
                    z[(nk * hz + static_cast<std::size_t>(t)) * wz + static_cast<std::size_t>(u)] =
                      dy[(nk * g.ho + i) * g.wo + j];
                }
            }
        }
    }
    // W': rotated 180 degrees, channel axes swapped within each group: [C, K/G, kh, kw].
    std::vector<T> wr(g.c * g.kg * g.kh * g.kw);
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t cl = 0; cl < g.cg; ++cl)
        {
            for (std::size_t kl = 0; kl < g.kg; ++kl)
            {
                for (std::size_t a = 0; a < g.kh; ++a)
                {
                    for (std::size_t e = 0; e < g.kw; ++e)
                    {
                        wr[(((gi * g.cg + cl) * g.kg + kl) * g.kh + a) * g.kw + e] =
                          w[(((gi * g.kg + kl) * g.cg + cl) * g.kh + (g.kh - 1 - a)) * g.kw + (g.kw - 1 - e)];
                    }
                }
            }
        }
    }
    // dX = Z correlated with W' (stride 1, dilation d, no padding), group by group.
    for (std::size_t n = 0; n < g.n; ++n)
    {
        for (std::size_t c = 0; c < g.c; ++c)
        {
            const std::size_t gi = c / g.cg;
            for (std::size_t h = 0; h < g.h; ++h)
            {
                for (std::size_t x = 0; x < g.w; ++x)
                {
                    T acc = 0;
                    for (std::size_t kl = 0; kl < g.kg; ++kl)
                    {
                        const T* zp = z.data() + (n * g.k + gi * g.kg + kl) * hz * wz;
                        const T* wp = wr.data() + (c * g.kg + kl) * g.kh * g.kw;
                        for (std::size_t a = 0; a < g.kh; ++a)
                        {
                            for (std::size_t e = 0; e < g.kw; ++e)
                            {
                                acc += zp[(h + a * g.dh) * wz + x + e * g.dw] * wp[a * g.kw + e];
                            }
                        }
                    }
                    dx[((n * g.c + c) * g.h + h) * g.w + x] = acc;
                }
            }
        }
    }
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Kernel entry points

template <class T>
xt::xarray<T> conv2d_forward(const xt::xarray<T>& x, const xt::xarray<T>& w, const xt::xarray<T>* b,
                             const Conv2dOptions& options)
{
    const Geometry g = make_geometry(to_shape(x.shape()), to_shape(w.shape()), options);
    if (b != nullptr)
    {
        check_bias(to_shape(b->shape()), g);
    }
    auto y = xt::xarray<T>::from_shape(y_shape(g));
    forward_kernel(x.data(), w.data(), b != nullptr ? b->data() : nullptr, g, y.data());
    return y;
}

template <class T>
xt::xarray<T> conv2d_backward_weight(const xt::xarray<T>& dy, const xt::xarray<T>& x, const Shape& w_shape,
                                     const Conv2dOptions& options)
{
    const Geometry g = make_geometry(to_shape(x.shape()), w_shape, options);
    check_grad_shape("dy", to_shape(dy.shape()), y_shape(g));
    auto dw = xt::xarray<T>::from_shape(w_shape);
    backward_weight_kernel(dy.data(), x.data(), g, dw.data());
    return dw;
}

template <class T>
xt::xarray<T> conv2d_backward_bias(const xt::xarray<T>& dy)
{
    if (dy.dimension() != 4)
    {
        throw ShapeError(
          detail::cat("tg::conv2d: dy must be 4-D [N, K, Ho, Wo], got ", shape_str(dy.shape())));
    }
    const std::size_t k = dy.shape()[1];
    auto db = xt::xarray<T>::from_shape({k});
    backward_bias_kernel(dy.data(), dy.shape()[0], k, dy.shape()[2] * dy.shape()[3], db.data());
    return db;
}

template <class T>
xt::xarray<T> conv2d_backward_input(const xt::xarray<T>& dy, const xt::xarray<T>& w, const Shape& x_shape,
                                    const Conv2dOptions& options)
{
    const Geometry g = make_geometry(x_shape, to_shape(w.shape()), options);
    check_grad_shape("dy", to_shape(dy.shape()), y_shape(g));
    auto dx = xt::xarray<T>::from_shape(x_shape);
    backward_input_kernel(dy.data(), w.data(), g, dx.data());
    return dx;
}

template <class T>
xt::xarray<T> conv2d_backward_input_full_conv(const xt::xarray<T>& dy, const xt::xarray<T>& w,
                                              const Shape& x_shape, const Conv2dOptions& options)
{
    const Geometry g = make_geometry(x_shape, to_shape(w.shape()), options);
    check_grad_shape("dy", to_shape(dy.shape()), y_shape(g));
    auto dx = xt::xarray<T>::from_shape(x_shape);
    full_conv_kernel(dy.data(), w.data(), g, dx.data());
    return dx;
}

// ---------------------------------------------------------------------------------------------
// Recorded op

template <class T>
BasicTensor<T> conv2d(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b,
                      const Conv2dOptions& options)
{
    const auto& vx = x.value();
    const auto& vw = w.value();
    const Geometry g = make_geometry(to_shape(vx.shape()), to_shape(vw.shape()), options);
    if (b.defined())
    {
        check_bias(b.shape(), g);
    }
    // The one Winograd pass for dX and dW reuses the forward's transformed input.
    std::shared_ptr<T[]> saved_v;
    if (detail::conv::winograd::fused_backward(g) && GradMode::is_enabled() && x.requires_grad() &&
        w.requires_grad() && detail::conv::winograd_route::saved_input_size(g) > 0)
    {
        saved_v.reset(new T[detail::conv::winograd_route::saved_input_size(g)]);
    }
    auto y = xt::xarray<T>::from_shape(y_shape(g));
    forward_kernel(vx.data(), vw.data(), b.defined() ? b.value().data() : nullptr, g, y.data(),
                   saved_v.get());

    Saves saves;
    if (w.requires_grad())
    {
        saves.input_mask |= 1u; // dW reads x
    }
    if (x.requires_grad())
    {
        saves.input_mask |= 2u; // dX reads w
    }
    return record<T>("conv2d", std::move(y), {x, w, b}, saves,
                     [g, saved_v](BackwardContext<T>& ctx)
                     {
                         const auto& dy = ctx.grad_output();
                         // dL/db[k] = sum over n, i, j of dY[n, k, i, j]
                         xt::xarray<T> db;
                         if (ctx.needs_grad(2))
                         {
                             db = xt::xarray<T>::from_shape({g.k});
                         }
                         // Winograd: dX, dW and db from one pass over dY (the formulas below, by F(2x2, 3x3))
                         if (detail::conv::winograd::fused_backward(g) && ctx.needs_grad(0) &&
                             ctx.needs_grad(1))
                         {
                             auto dx = xt::xarray<T>::from_shape(x_shape(g));
                             auto dw = xt::xarray<T>::from_shape(w_shape(g));
                             detail::conv::winograd_route::backward(
                               dy.data(), ctx.input(0).data(), ctx.input(1).data(), g, dx.data(), dw.data(),
                               static_cast<const T*>(saved_v.get()), ctx.needs_grad(2) ? db.data() : nullptr);
                             if (ctx.needs_grad(2))
                             {
                                 ctx.accumulate(2, std::move(db));
                             }
                             ctx.accumulate(1, std::move(dw));
                             ctx.accumulate(0, std::move(dx));
                             return;
                         }
                         // dL/dW = X correlated with dY (db summed in the same pass over dY)
                         if (ctx.needs_grad(1))
                         {
                             auto dw = xt::xarray<T>::from_shape(w_shape(g));
                             backward_weight_kernel(dy.data(), ctx.input(0).data(), g, dw.data(),
                                                    ctx.needs_grad(2) ? db.data() : nullptr);
                             ctx.accumulate(1, std::move(dw));
                         }
                         else if (ctx.needs_grad(2))
                         {
                             backward_bias_kernel(dy.data(), g.n, g.k, g.cols(), db.data());
                         }
                         if (ctx.needs_grad(2))
                         {
                             ctx.accumulate(2, std::move(db));
                         }
                         // dL/dX = full convolution of dY (dilated by the stride) with rot180(W)
                         if (ctx.needs_grad(0))
                         {
                             auto dx = xt::xarray<T>::from_shape(x_shape(g));
                             backward_input_kernel(dy.data(), ctx.input(1).data(), g, dx.data());
                             ctx.accumulate(0, std::move(dx));
                         }
                     });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                              \
    template BasicTensor<T> conv2d<T>(const BasicTensor<T>&, const BasicTensor<T>&, const BasicTensor<T>&,   \
                                      const Conv2dOptions&);                                                 \
    template xt::xarray<T> conv2d_forward<T>(const xt::xarray<T>&, const xt::xarray<T>&,                     \
                                             const xt::xarray<T>*, const Conv2dOptions&);                    \
    template xt::xarray<T> conv2d_backward_weight<T>(const xt::xarray<T>&, const xt::xarray<T>&,             \
                                                     const Shape&, const Conv2dOptions&);                    \
    template xt::xarray<T> conv2d_backward_bias<T>(const xt::xarray<T>&);                                    \
    template xt::xarray<T> conv2d_backward_input<T>(const xt::xarray<T>&, const xt::xarray<T>&,              \
                                                    const Shape&, const Conv2dOptions&);                     \
    template xt::xarray<T> conv2d_backward_input_full_conv<T>(const xt::xarray<T>&, const xt::xarray<T>&,    \
                                                              const Shape&, const Conv2dOptions&);

TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

} // namespace tapegrad
