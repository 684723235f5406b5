#include <tapegrad/autograd/tape.hpp>
#include <tapegrad/ops/conv2d.hpp>
#include <tapegrad/ops/conv2d_simd.hpp>

#include <algorithm>
#include <memory>
#include <vector>

namespace tapegrad
{

namespace
{

using detail::copy_row;
using detail::gather_row;
using detail::gemm;
using detail::strided_copy;
using detail::sum_row;
using detail::transpose;

/// Every size of one convolution, validated. Channels are split into `groups` blocks of `cg`
/// input and `kg` output channels; one image-group is a GEMM of [kg x rows] * [rows x cols].
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
    Shape x_shape() const { return {n, c, h, w}; }
    Shape w_shape() const { return {k, cg, kh, kw}; }
    Shape y_shape() const { return {n, k, ho, wo}; }
};

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
    return g;
}

void check_bias(const Shape& bs, const Geometry& g)
{
    if (bs.size() != 1 || bs[0] != g.k)
    {
        throw ShapeError(detail::cat("tg::conv2d: b must be 1-D [K] = [", g.k, "] to match w ",
                                     shape_str(g.w_shape()), ", got shape ", shape_str(bs), " (x ",
                                     shape_str(g.x_shape()), ")"));
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
// Scratch memory and threading

/// A per-thread buffer of at least `size` elements, reused across calls (never shrinks); `slot`
/// tells apart buffers needed at the same time.
template <class T>
T* scratch(std::size_t slot, std::size_t size)
{
    thread_local std::unique_ptr<T[]> buffer[3];
    thread_local std::size_t capacity[3] = {0, 0, 0};
    if (capacity[slot] < size)
    {
        buffer[slot].reset(new T[size]);
        capacity[slot] = size;
    }
    return buffer[slot].get();
}

/// Parallel over the batch only when there is more than one image and enough work to pay for
/// waking the threads (about 2^18 multiply-adds). A single image runs on one thread (the BLAS
/// fallback, outside a parallel region, may use its own).
inline bool parallel_batch(const Geometry& g)
{
    return g.n > 1 && g.n * g.k * g.cols() * g.rows() >= (std::size_t{1} << 18);
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im

/// col[(c*kh + a)*kw + e][i*wo + j] = x[c][i*sh - ph + a*dh][j*sw - pw + e*dw] (0 in the padding),
/// for the cg channels of one image-group starting at `x`. The image is first copied with its
/// zero border (a small per-thread buffer), so every col row is a plain strided read of it.
template <class T>
void im2col(const T* x, const Geometry& g, T* col)
{
    const std::size_t hp = g.h + 2 * static_cast<std::size_t>(g.ph);
    const std::size_t wp = g.w + 2 * static_cast<std::size_t>(g.pw);
    const auto pw = static_cast<std::size_t>(g.pw);
    T* xp = scratch<T>(2, g.cg * hp * wp);
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        for (std::size_t r = 0; r < hp; ++r)
        {
            const std::int64_t ih = static_cast<std::int64_t>(r) - g.ph;
            const bool inside = ih >= 0 && ih < static_cast<std::int64_t>(g.h);
            copy_row(xp + (c * hp + r) * wp, wp,
                     inside ? x + (c * g.h + static_cast<std::size_t>(ih)) * g.w : x, inside ? pw : 0,
                     inside ? pw + g.w : 0);
        }
    }
    const std::size_t cols = g.cols();
    const auto sh = static_cast<std::size_t>(g.sh), sw = static_cast<std::size_t>(g.sw);
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        for (std::size_t a = 0; a < g.kh; ++a)
        {
            for (std::size_t e = 0; e < g.kw; ++e)
            {
                T* row = col + ((c * g.kh + a) * g.kw + e) * cols;
                const T* src = xp + (c * hp + a * static_cast<std::size_t>(g.dh)) * wp +
                               e * static_cast<std::size_t>(g.dw);
                for (std::size_t i = 0; i < g.ho; ++i)
                {
                    strided_copy(row + i * g.wo, src + i * sh * wp, g.wo, sw);
                }
            }
        }
    }
}

/// Which col entries feed each dX row, worked out once per call (no division per row): dX row ih
/// takes taps start[ih] .. start[ih + 1], tap t reading col row block offset col_off[t] (within
/// one channel's kh*kw rows) at width offset w_off[t].
struct Col2imPlan
{
    std::vector<std::size_t> start, col_off;
    std::vector<std::int64_t> w_off;

    explicit Col2imPlan(const Geometry& g)
    {
        start.push_back(0);
        for (std::size_t ih = 0; ih < g.h; ++ih)
        {
            for (std::size_t a = 0; a < g.kh; ++a)
            {
                const std::int64_t num =
                  static_cast<std::int64_t>(ih) + g.ph - static_cast<std::int64_t>(a) * g.dh;
                if (num < 0 || num % g.sh != 0 || num / g.sh >= static_cast<std::int64_t>(g.ho))
                {
                    continue;
                }
                const auto i = static_cast<std::size_t>(num / g.sh);
                for (std::size_t e = 0; e < g.kw; ++e)
                {
                    col_off.push_back((a * g.kw + e) * g.cols() + i * g.wo);
                    w_off.push_back(g.pw - static_cast<std::int64_t>(e) * g.dw);
                }
            }
            start.push_back(col_off.size());
        }
    }
};

/// The adjoint of im2col: each dX row gathers its taps (at most kh*kw col rows, each read at
/// width stride sw) and is written once, so dX needs no zeroing. `taps` has room for kh*kw.
template <class T>
void col2im(const T* col, const Geometry& g, const Col2imPlan& plan, T* dx, const T** taps)
{
    const std::size_t block = g.kh * g.kw * g.cols();
    for (std::size_t c = 0; c < g.cg; ++c)
    {
        for (std::size_t ih = 0; ih < g.h; ++ih)
        {
            const std::size_t t0 = plan.start[ih], t1 = plan.start[ih + 1];
            for (std::size_t t = t0; t < t1; ++t)
            {
                taps[t - t0] = col + c * block + plan.col_off[t];
            }
            gather_row(dx + (c * g.h + ih) * g.w, g.w, taps, plan.w_off.data() + t0, t1 - t0, g.wo,
                       static_cast<std::size_t>(g.sw));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward kernel

template <class T>
void forward_kernel(const T* x, const T* w, const T* b, const Geometry& g, T* y)
{
    const std::size_t rows = g.rows(), cols = g.cols();
    const std::size_t hw = g.h * g.w;
#pragma omp parallel if (parallel_batch(g))
    {
        T* col = g.pointwise() ? nullptr : scratch<T>(0, rows * cols);
#pragma omp for schedule(dynamic)
        for (std::size_t n = 0; n < g.n; ++n)
        {
            for (std::size_t gi = 0; gi < g.groups; ++gi)
            {
                const T* xg = x + (n * g.c + gi * g.cg) * hw;
                T* yg = y + (n * g.k + gi * g.kg) * cols;
                const T* src = xg;
                if (!g.pointwise())
                {
                    im2col(xg, g, col);
                    src = col;
                }
                gemm(g.kg, cols, rows, w + gi * g.kg * rows, rows, 1, src, cols, yg, cols, false);
                if (b != nullptr)
                {
                    for (std::size_t k = 0; k < g.kg; ++k)
                    {
                        const T bk = b[gi * g.kg + k];
                        T* p = yg + k * cols;
                        for (std::size_t j = 0; j < cols; ++j)
                        {
                            p[j] += bk;
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

/// dW += dY_n * col_n^T for every image. The batch is cut into a fixed number of chunks, each
/// summed into its own partial dW, and the partials are added in chunk order: threads never share
/// an accumulator, and the result is the same bit for bit whatever the number of threads.
/// The GEMM wants its B operand row-contiguous, so the smaller of col [rows x cols] and
/// dY_n [kg x cols] is transposed: dW = dY_n * (col^T) or dW^T = col * (dY_n^T).
/// If `db` is given, the bias gradient is summed in the same pass, while dY_n is in cache.
template <class T>
void backward_weight_kernel(const T* dy, const T* x, const Geometry& g, T* dw, T* db = nullptr)
{
    const std::size_t rows = g.rows(), cols = g.cols();
    const std::size_t hw = g.h * g.w;
    const std::size_t size = g.k * rows;
    const std::size_t stride = size + g.k; // one chunk's dW partial, then its db partial
    const bool transpose_col = rows <= g.kg;
    const std::size_t chunks = parallel_batch(g) ? std::min<std::size_t>(g.n, 4) : 1;
    std::vector<T> partial(chunks * stride, T(0));
#pragma omp parallel if (chunks > 1)
    {
        T* col = g.pointwise() ? nullptr : scratch<T>(0, rows * cols);
        T* bt = scratch<T>(1, cols * (transpose_col ? rows : g.kg));
#pragma omp for schedule(dynamic)
        for (std::size_t chunk = 0; chunk < chunks; ++chunk)
        {
            T* acc = partial.data() + chunk * stride;
            for (std::size_t n = chunk * g.n / chunks; n < (chunk + 1) * g.n / chunks; ++n)
            {
                for (std::size_t gi = 0; gi < g.groups; ++gi)
                {
                    const T* dyg = dy + (n * g.k + gi * g.kg) * cols;
                    for (std::size_t k = 0; db != nullptr && k < g.kg; ++k)
                    {
                        acc[size + gi * g.kg + k] += sum_row(dyg + k * cols, cols);
                    }
                    if (size == 0 || cols == 0)
                    {
                        continue;
                    }
                    const T* src = x + (n * g.c + gi * g.cg) * hw;
                    if (!g.pointwise())
                    {
                        im2col(src, g, col);
                        src = col;
                    }
                    T* accg = acc + gi * g.kg * rows;
                    if (transpose_col)
                    {
                        transpose(src, rows, cols, bt);
                        gemm(g.kg, rows, cols, dyg, cols, 1, bt, rows, accg, rows, true);
                    }
                    else
                    {
                        transpose(dyg, g.kg, cols, bt);
                        gemm(rows, g.kg, cols, src, cols, 1, bt, g.kg, accg, g.kg, true);
                    }
                }
            }
        }
    }
    for (std::size_t chunk = 1; chunk < chunks; ++chunk)
    {
        const T* p = partial.data() + chunk * stride;
        for (std::size_t i = 0; i < stride; ++i)
        {
            partial[i] += p[i];
        }
    }
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        const T* src = partial.data() + gi * g.kg * rows;
        if (transpose_col)
        {
            std::copy(src, src + g.kg * rows, dw + gi * g.kg * rows);
        }
        else
        {
            transpose(src, rows, g.kg, dw + gi * g.kg * rows);
        }
    }
    if (db != nullptr)
    {
        std::copy(partial.data() + size, partial.data() + stride, db);
    }
}

/// dX_n = col2im(W^T * dY_n) per image.
template <class T>
void backward_input_kernel(const T* dy, const T* w, const Geometry& g, T* dx)
{
    const std::size_t rows = g.rows(), cols = g.cols();
    const std::size_t hw = g.h * g.w;
    const Col2imPlan plan(g);
#pragma omp parallel if (parallel_batch(g))
    {
        T* col = g.pointwise() ? nullptr : scratch<T>(0, rows * cols);
        std::vector<const T*> taps(g.kh * g.kw);
#pragma omp for schedule(dynamic)
        for (std::size_t n = 0; n < g.n; ++n)
        {
            for (std::size_t gi = 0; gi < g.groups; ++gi)
            {
                T* dxg = dx + (n * g.c + gi * g.cg) * hw;
                const T* dyg = dy + (n * g.k + gi * g.kg) * cols;
                const T* wg = w + gi * g.kg * rows;
                if (g.pointwise())
                {
                    gemm(rows, cols, g.kg, wg, 1, rows, dyg, cols, dxg, cols, false);
                    continue;
                }
                gemm(rows, cols, g.kg, wg, 1, rows, dyg, cols, col, cols, false);
                col2im(col, g, plan, dxg, taps.data());
            }
        }
    }
}

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
    auto y = xt::xarray<T>::from_shape(g.y_shape());
    forward_kernel(x.data(), w.data(), b != nullptr ? b->data() : nullptr, g, y.data());
    return y;
}

template <class T>
xt::xarray<T> conv2d_backward_weight(const xt::xarray<T>& dy, const xt::xarray<T>& x, const Shape& w_shape,
                                     const Conv2dOptions& options)
{
    const Geometry g = make_geometry(to_shape(x.shape()), w_shape, options);
    check_grad_shape("dy", to_shape(dy.shape()), g.y_shape());
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
    check_grad_shape("dy", to_shape(dy.shape()), g.y_shape());
    auto dx = xt::xarray<T>::from_shape(x_shape);
    backward_input_kernel(dy.data(), w.data(), g, dx.data());
    return dx;
}

template <class T>
xt::xarray<T> conv2d_backward_input_full_conv(const xt::xarray<T>& dy, const xt::xarray<T>& w,
                                              const Shape& x_shape, const Conv2dOptions& options)
{
    const Geometry g = make_geometry(x_shape, to_shape(w.shape()), options);
    check_grad_shape("dy", to_shape(dy.shape()), g.y_shape());
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
    auto y = xt::xarray<T>::from_shape(g.y_shape());
    forward_kernel(vx.data(), vw.data(), b.defined() ? b.value().data() : nullptr, g, y.data());

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
                     [g](BackwardContext<T>& ctx)
                     {
                         const auto& dy = ctx.grad_output();
                         // dL/db[k] = sum over n, i, j of dY[n, k, i, j]
                         xt::xarray<T> db;
                         if (ctx.needs_grad(2))
                         {
                             db = xt::xarray<T>::from_shape({g.k});
                         }
                         // dL/dW = X correlated with dY (db summed in the same pass over dY)
                         if (ctx.needs_grad(1))
                         {
                             auto dw = xt::xarray<T>::from_shape(g.w_shape());
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
                             auto dx = xt::xarray<T>::from_shape(g.x_shape());
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
