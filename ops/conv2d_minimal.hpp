#pragma once
/// @file conv2d_minimal.hpp
/// Private to ops/conv2d.cpp: the machinery shared by the minimal filtering algorithms for 3x3
/// kernels that work on a plane tile by tile (conv2d_winograd_s2.hpp at stride 2,
/// conv2d_winograd_4x4.hpp's F(4x4, 3x3) at stride 1). A `Scheme` gives the 1-D algorithm
///
///     y = A^T [(G g) . (B^T d)]
///
/// as constant matrices: `bt` (P x P, on an input window of P values), `g` (P x 3, on the 3-tap
/// kernel) and `at` (M x P, to M outputs); input windows start `step` = M * stride apart. Nested
/// in 2-D, a P x P input tile D and a 3x3 kernel give an M x M output tile,
///
///     Y = A^T [(G g G^T) . (B^T D B)] A,
///
/// and summed over the input channels the P^2 elementwise products are P^2 GEMMs, one per tile
/// position xi: M_xi[K x tiles] = U_xi[K x C] * V_xi[C x tiles], U = G g G^T, V = B^T D B. The
/// gradients are their exact adjoints, with Z = A dY A^T:
///
///     dW = G^T [sum over tiles of Z . V] G     (P^2 GEMMs Z_xi * V_xi^T over the batch)
///     dD = B [sum over k of Z . U] B^T         (P^2 GEMMs U_xi^T * Z_xi, tiles added where they
///                                               overlap)
///
/// Layouts: U is [groups][P^2][K/G][C/G]; V and the input-gradient tiles are [P^2][C/G][tiles];
/// M and Z are [P^2][K/G][tiles], the P^2 matrices matrix_stride() apart; the tiles of a block of
/// images are numbered image by image, row-major within one.

#include <tapegrad/ops/conv2d_kernels.hpp>
#include <tapegrad/ops/gemm_nt.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace tapegrad::detail::conv::minimal
{

/// The tiling of one image for Scheme S: th x tw tiles of M x M outputs cover Ho x Wo (partly
/// outside at the bottom and right); tile (i, j) reads rows step*i .. step*i + P - 1 (and the
/// same columns) of the zero-padded plane, which holds x at (ph, pw) and is large enough for
/// every tile and for all of x.
template <class S>
struct Plan
{
    std::size_t th = 0, tw = 0, hp = 0, wp = 0;

    explicit Plan(const Geometry& g)
      : th((g.ho + S::m - 1) / S::m)
      , tw((g.wo + S::m - 1) / S::m)
      , hp(std::max(S::step * th + S::p - S::step, g.h + static_cast<std::size_t>(g.ph)))
      , wp(std::max(S::step * tw + S::p - S::step, g.w + static_cast<std::size_t>(g.pw)))
    {
    }

    std::size_t tiles() const { return th * tw; }
    std::size_t plane() const { return hp * wp; }
};

/// Distance between the tile matrices of `rows` x `tiles` (16 elements of slack, so that
/// matrices a multiple of 4 KiB apart do not share L1 sets).
inline std::size_t matrix_stride(std::size_t rows, std::size_t tiles)
{
    return rows * tiles + 16;
}

/// Images per block of GEMMs: about `target` tiles (at least one image, at most the batch).
inline std::size_t images_per_block(const Geometry& g, std::size_t tiles, std::size_t target)
{
    const std::size_t images = (target + tiles / 2) / std::max<std::size_t>(tiles, 1);
    return std::clamp<std::size_t>(images, 1, std::max<std::size_t>(g.n, 1)); // n may be 0
}

// ---------------------------------------------------------------------------------------------
// Constant matrices, applied to one vector and to streams of vectors

/// sum_j c[i][j] d[j] (c transposed when `Tr`). Called with constant c and, once the loops are
/// unrolled, constant i and j, so zero coefficients vanish and +-1 become additions.
template <bool Tr, std::size_t R, std::size_t C, class T>
inline T row_dot(const double (&c)[R][C], std::size_t i, const T* d)
{
    constexpr std::size_t cols = Tr ? R : C;
    T s = 0;
#pragma GCC unroll 8
    for (std::size_t j = 0; j < cols; ++j)
    {
        const double k = Tr ? c[j][i] : c[i][j];
        if (k == 1.0)
        {
            s += d[j];
        }
        else if (k == -1.0)
        {
            s -= d[j];
        }
        else if (k != 0.0)
        {
            s += static_cast<T>(k) * d[j];
        }
    }
    return s;
}

/// o[i] = (c d)[i] for every row i (c transposed when `Tr`).
template <bool Tr, std::size_t R, std::size_t C, class T>
inline void apply(const double (&c)[R][C], const T* d, T* o)
{
    constexpr std::size_t rows = Tr ? C : R;
#pragma GCC unroll 8
    for (std::size_t i = 0; i < rows; ++i)
    {
        o[i] = row_dot<Tr>(c, i, d);
    }
}

/// out[i][t] = (c (in[0][t], in[1][t], ...))[i] + bias for t < n: the same transform for every
/// tile of a plane, one loop over the tiles per output row, which gcc vectorises.
template <bool Tr, std::size_t R, std::size_t C, class T>
inline void apply_streams(const double (&c)[R][C], const T* const* in, T* const* out, std::size_t n,
                          T bias = T(0))
{
    constexpr std::size_t rows = Tr ? C : R, cols = Tr ? R : C;
#pragma GCC unroll 8
    for (std::size_t i = 0; i < rows; ++i)
    {
        T* o = out[i];
#pragma GCC ivdep
        for (std::size_t t = 0; t < n; ++t)
        {
            T d[cols];
#pragma GCC unroll 8
            for (std::size_t j = 0; j < cols; ++j)
            {
                d[j] = in[j][t];
            }
            o[t] = row_dot<Tr>(c, i, d) + bias;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel transforms

/// u[((gi * P^2 + xi) * kg + k) * cg + c] = (G w[gi*kg + k][c] G^T)[xi], w as [K][C/G][3][3];
/// 16 filters at a time into a block written out 16 contiguous values per xi (writing each
/// filter's values straight into u, P^2 rows kg*cg apart, kept evicting L1 lines). Shared among
/// the OpenMP threads when `parallel`.
template <class S, class T>
void transform_weights(const T* w, const Geometry& g, T* u, bool parallel)
{
    constexpr std::size_t lanes = 16, pp = S::p * S::p;
    const std::size_t per = g.kg * g.cg;
    const std::size_t blocks = (per + lanes - 1) / lanes;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t bi = 0; bi < blocks; ++bi)
        {
            T block[lanes][pp];
            const std::size_t k0 = bi * lanes, count = std::min(lanes, per - k0);
            for (std::size_t l = 0; l < count; ++l)
            {
                const T* f = w + (gi * per + k0 + l) * 9;
                T r[S::p][3]; // G f, column by column
                for (std::size_t j = 0; j < 3; ++j)
                {
                    const T col[3] = {f[j], f[3 + j], f[6 + j]};
                    T o[S::p];
                    apply<false>(S::g, col, o);
                    for (std::size_t a = 0; a < S::p; ++a)
                    {
                        r[a][j] = o[a];
                    }
                }
                for (std::size_t a = 0; a < S::p; ++a)
                {
                    apply<false>(S::g, r[a], block[l] + a * S::p);
                }
            }
            for (std::size_t xi = 0; xi < pp; ++xi)
            {
                T* out = u + (gi * pp + xi) * per + k0;
                for (std::size_t l = 0; l < count; ++l)
                {
                    out[l] = block[l][xi];
                }
            }
        }
    }
}

/// dw[gi*kg + k][c] (3x3) = G^T q G with q[xi] = q[((gi * P^2 + xi) * kg + k) * cg + c].
template <class S, class T>
void weight_grad_from_tiles(const T* q, const Geometry& g, T* dw)
{
    constexpr std::size_t pp = S::p * S::p;
    const std::size_t per = g.kg * g.cg;
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t kc = 0; kc < per; ++kc)
        {
            const T* in = q + gi * pp * per + kc;
            T h[3][S::p]; // G^T q, column by column
            for (std::size_t b = 0; b < S::p; ++b)
            {
                T col[S::p];
                for (std::size_t a = 0; a < S::p; ++a)
                {
                    col[a] = in[(a * S::p + b) * per];
                }
                T o[3];
                apply<true>(S::g, col, o);
                for (std::size_t i = 0; i < 3; ++i)
                {
                    h[i][b] = o[i];
                }
            }
            for (std::size_t i = 0; i < 3; ++i)
            {
                apply<true>(S::g, h[i], dw + (gi * per + kc) * 9 + 3 * i);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tile transforms of one plane: a pass over the tiles that gathers from (or scatters into) the
// plane does one 1-D transform, and the other runs on streams in `tmp` (see Buffers).

/// v[xi * vs + t] = (B^T D_t B)[xi] for the p.tiles() tiles of one zero-padded plane `pad`.
template <class S, class T>
void input_tiles(const T* pad, const Plan<S>& p, T* v, std::size_t vs, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(P b + a) n + t] = (B^T row a of tile t)[b]
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t a = 0; a < S::p; ++a)
        {
            const T* row = pad + (S::step * ti + a) * p.wp;
            for (std::size_t tj = 0; tj < p.tw; ++tj)
            {
                T o[S::p];
                apply<false>(S::bt, row + S::step * tj, o);
                for (std::size_t b = 0; b < S::p; ++b)
                {
                    tmp[(S::p * b + a) * n + ti * p.tw + tj] = o[b];
                }
            }
        }
    }
    for (std::size_t b = 0; b < S::p; ++b)
    {
        const T* in[S::p];
        T* out[S::p];
        for (std::size_t a = 0; a < S::p; ++a)
        {
            in[a] = tmp + (S::p * b + a) * n;
            out[a] = v + (S::p * a + b) * vs;
        }
        apply_streams<false>(S::bt, in, out, n);
    }
}

/// y (one Ho x Wo plane) = A^T M_t A + bias for every tile t of m (m[xi * ms + t]), cropped.
template <class S, class T>
void output_plane(const T* m, std::size_t ms, const Plan<S>& p, const Geometry& g, T bias, T* y, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(M b + i) n + t] = (A^T column b of M_t)[i], then tmp[(M P + M j + i) n + t] = Y_t[i][j]
    for (std::size_t b = 0; b < S::p; ++b)
    {
        const T* in[S::p];
        T* out[S::m];
        for (std::size_t a = 0; a < S::p; ++a)
        {
            in[a] = m + (S::p * a + b) * ms;
        }
        for (std::size_t i = 0; i < S::m; ++i)
        {
            out[i] = tmp + (S::m * b + i) * n;
        }
        apply_streams<false>(S::at, in, out, n);
    }
    T* yt = tmp + S::m * S::p * n;
    for (std::size_t i = 0; i < S::m; ++i)
    {
        const T* in[S::p];
        T* out[S::m];
        for (std::size_t b = 0; b < S::p; ++b)
        {
            in[b] = tmp + (S::m * b + i) * n;
        }
        for (std::size_t j = 0; j < S::m; ++j)
        {
            out[j] = yt + (S::m * j + i) * n;
        }
        apply_streams<false>(S::at, in, out, n, bias);
    }
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t i = 0; i < S::m && S::m * ti + i < g.ho; ++i)
        {
            T* out = y + (S::m * ti + i) * g.wo;
            for (std::size_t tj = 0; tj < p.tw; ++tj)
            {
                const std::size_t t = ti * p.tw + tj;
                for (std::size_t j = 0; j < S::m && S::m * tj + j < g.wo; ++j)
                {
                    out[S::m * tj + j] = yt[(S::m * j + i) * n + t];
                }
            }
        }
    }
}

/// z[xi * zs + t] = (A dY_t A^T)[xi] for every tile of one Ho x Wo plane of dY (zero outside).
template <class S, class T>
void grad_output_tiles(const T* dy, const Plan<S>& p, const Geometry& g, T* z, std::size_t zs, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(M i + j) n + t] = dY_t[i][j]
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t i = 0; i < S::m; ++i)
        {
            const std::size_t r = S::m * ti + i;
            for (std::size_t tj = 0; tj < p.tw; ++tj)
            {
                for (std::size_t j = 0; j < S::m; ++j)
                {
                    const std::size_t c = S::m * tj + j;
                    tmp[(S::m * i + j) * n + ti * p.tw + tj] = r < g.ho && c < g.wo ? dy[r * g.wo + c] : T(0);
                }
            }
        }
    }
    // tmp[(M M + M a + j) n + t] = (A column j of dY_t)[a], then A along each row a into z
    T* cols = tmp + S::m * S::m * n;
    for (std::size_t j = 0; j < S::m; ++j)
    {
        const T* in[S::m];
        T* out[S::p];
        for (std::size_t i = 0; i < S::m; ++i)
        {
            in[i] = tmp + (S::m * i + j) * n;
        }
        for (std::size_t a = 0; a < S::p; ++a)
        {
            out[a] = cols + (S::m * a + j) * n;
        }
        apply_streams<true>(S::at, in, out, n);
    }
    for (std::size_t a = 0; a < S::p; ++a)
    {
        const T* in[S::m];
        T* out[S::p];
        for (std::size_t j = 0; j < S::m; ++j)
        {
            in[j] = cols + (S::m * a + j) * n;
        }
        for (std::size_t b = 0; b < S::p; ++b)
        {
            out[b] = z + (S::p * a + b) * zs;
        }
        apply_streams<true>(S::at, in, out, n);
    }
}

/// dx (one H x W plane, overwritten) = the sum of B Q_t B^T over the tiles of q (q[xi * qs + t])
/// at their places in the zero-padded plane `pad` (p.plane() elements, work space), cropped.
template <class S, class T>
void input_grad_plane(const T* q, std::size_t qs, const Plan<S>& p, const Geometry& g, T* pad, T* dx, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(P a + b) n + t] = (B column b of Q_t)[a]
    for (std::size_t b = 0; b < S::p; ++b)
    {
        const T* in[S::p];
        T* out[S::p];
        for (std::size_t a = 0; a < S::p; ++a)
        {
            in[a] = q + (S::p * a + b) * qs;
            out[a] = tmp + (S::p * a + b) * n;
        }
        apply_streams<true>(S::bt, in, out, n);
    }
    std::fill(pad, pad + p.plane(), T(0));
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t a = 0; a < S::p; ++a)
        {
            T* row = pad + (S::step * ti + a) * p.wp;
            const T* c = tmp + S::p * a * n + ti * p.tw;
            for (std::size_t tj = 0; tj < p.tw; ++tj)
            {
                T r[S::p], o[S::p];
                for (std::size_t b = 0; b < S::p; ++b)
                {
                    r[b] = c[b * n + tj];
                }
                apply<true>(S::bt, r, o);
                T* d = row + S::step * tj;
                for (std::size_t b = 0; b < S::p; ++b)
                {
                    d[b] += o[b];
                }
            }
        }
    }
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    for (std::size_t r = 0; r < g.h; ++r)
    {
        copy_short(dx + r * g.w, pad + (ph + r) * p.wp + pw, g.w);
    }
}

/// Copies one H x W plane of x into the interior of the zero-padded plane `pad`, whose border
/// stays zero (it is zeroed once per buffer and only the interior is ever written).
template <class S, class T>
void pad_plane(const T* x, const Geometry& g, const Plan<S>& p, T* pad)
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    for (std::size_t r = 0; r < g.h; ++r)
    {
        copy_short(pad + (ph + r) * p.wp + pw, x + r * g.w, g.w);
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers and blocks

/// One thread's buffers for one kernel call: two sets of P^2 tile matrices, a zero-padded plane
/// (its border zero), the tile transforms' work space and gemm_nt's.
template <class S, class T>
struct Buffers
{
    T* first = nullptr;  ///< V (forward) or Z (backward): P^2 x first_rows x tiles
    T* second = nullptr; ///< M (forward), the input-gradient tiles or V (backward)
    T* pad = nullptr;
    T* tmp = nullptr; ///< the tile transforms' work space: max(P^2, M P + M^2) x p.tiles()
    T* work = nullptr;

    Buffers(const Plan<S>& p, std::size_t block, std::size_t first_rows, std::size_t second_rows,
            std::size_t work_size = 0)
    {
        constexpr std::size_t pp = S::p * S::p;
        const std::size_t tiles = block * p.tiles();
        const std::size_t a = pp * matrix_stride(first_rows, tiles),
                          b = pp * matrix_stride(second_rows, tiles);
        // output_plane and grad_output_tiles keep M x P and M x M streams, the others P x P
        const std::size_t tmp_size = std::max(pp, S::m * S::p + S::m * S::m) * p.tiles();
        first = scratch<T>(a + b + p.plane() + tmp_size + work_size);
        second = first + a;
        pad = second + b;
        tmp = pad + p.plane();
        work = tmp + tmp_size;
        std::fill(pad, pad + p.plane(), T(0));
    }
};

/// V of images [n0, n0 + nt), group gi.
template <class S, class T>
void input_block(const T* x, const Geometry& g, const Plan<S>& p, std::size_t n0, std::size_t nt,
                 std::size_t gi, T* pad, T* v, T* tmp)
{
    const std::size_t tiles = nt * p.tiles(), vs = matrix_stride(g.cg, tiles);
    for (std::size_t t = 0; t < nt; ++t)
    {
        for (std::size_t c = 0; c < g.cg; ++c)
        {
            pad_plane(x + ((n0 + t) * g.c + gi * g.cg + c) * g.h * g.w, g, p, pad);
            input_tiles(pad, p, v + c * tiles + t * p.tiles(), vs, tmp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The three products

/// y = conv(x, w) + b, threaded over blocks of images; b may be null.
template <class S, class T>
void forward(const T* x, const T* w, const T* b, const Geometry& g, T* y)
{
    constexpr std::size_t pp = S::p * S::p;
    const Plan<S> p(g);
    T* u = scratch<T, 1>(g.groups * pp * g.kg * g.cg);
    transform_weights<S>(w, g, u, parallel_batch(g));
    const std::size_t block = images_per_block(g, p.tiles(), S::block_tiles),
                      blocks = (g.n + block - 1) / block;
    for_each_index(
      parallel_batch(g), blocks, [&] { return Buffers<S, T>(p, block, g.cg, g.kg); },
      [&](const Buffers<S, T>& buf, std::size_t bi)
      {
          const std::size_t n0 = bi * block, nt = std::min(block, g.n - n0), tiles = nt * p.tiles();
          const std::size_t ms = matrix_stride(g.kg, tiles), vs = matrix_stride(g.cg, tiles);
          for (std::size_t gi = 0; gi < g.groups; ++gi)
          {
              input_block(x, g, p, n0, nt, gi, buf.pad, buf.first, buf.tmp);
              for (std::size_t xi = 0; xi < pp; ++xi)
              {
                  checked_gemm(false, false, g.kg, tiles, g.cg, u + (gi * pp + xi) * g.kg * g.cg, g.cg,
                               buf.first + xi * vs, tiles, T(0), buf.second + xi * ms, tiles);
              }
              for (std::size_t t = 0; t < nt; ++t)
              {
                  for (std::size_t k = 0; k < g.kg; ++k)
                  {
                      const std::size_t ko = gi * g.kg + k;
                      output_plane(buf.second + k * tiles + t * p.tiles(), ms, p, g,
                                   b != nullptr ? b[ko] : T(0), y + ((n0 + t) * g.k + ko) * g.ho * g.wo,
                                   buf.tmp);
                  }
              }
          }
      });
}

/// The gradients from one pass over dY, each only when its pointer is not null:
///
///     dx = B [sum over k of Z . U] B^T   (tiles added, cropped to H x W; needs w)
///     dw = G^T [sum over tiles of Z . V] G   (needs x: V is transformed again)
///     db = the sum of dY over images and pixels
///
/// Z = A dY A^T is built once per block and feeds both. dw and db are summed in a fixed number of
/// chunks and added in chunk order, so they do not depend on the number of threads.
template <class S, class T>
void backward(const T* dy, const T* x, const T* w, const Geometry& g, T* dx, T* dw, T* db = nullptr)
{
    constexpr std::size_t pp = S::p * S::p;
    const Plan<S> p(g);
    T* u = dx != nullptr ? scratch<T, 1>(g.groups * pp * g.kg * g.cg) : nullptr;
    if (dx != nullptr)
    {
        transform_weights<S>(w, g, u, parallel_batch(g));
    }
    const std::size_t block = images_per_block(g, p.tiles(), S::block_tiles),
                      blocks = (g.n + block - 1) / block;
    const std::size_t size = g.groups * pp * g.kg * g.cg;
    const std::size_t stride = size + g.k; // one chunk's dW tiles, then its db
    const bool sums = dw != nullptr || db != nullptr;
    const std::size_t chunks =
      !sums ? blocks : (parallel_batch(g) ? std::clamp<std::size_t>(blocks, 1, 4) : 1);
    // the calling thread's own buffer, reused from call to call (a fresh 1-2 MB vector cost
    // page faults worth a tenth of S4's time)
    T* partial = sums ? scratch<T, 2>(chunks * stride) : nullptr;
    if (sums)
    {
        std::fill(partial, partial + chunks * stride, T(0));
    }
    for_each_index(
      parallel_batch(g) && chunks > 1, chunks,
      [&] { return Buffers<S, T>(p, block, g.kg, g.cg, dw != nullptr ? block * p.tiles() * g.cg : 0); },
      [&](const Buffers<S, T>& buf, std::size_t chunk)
      {
          for (std::size_t bi = chunk * blocks / chunks; bi < (chunk + 1) * blocks / chunks; ++bi)
          {
              const std::size_t n0 = bi * block, nt = std::min(block, g.n - n0), tiles = nt * p.tiles();
              const std::size_t zs = matrix_stride(g.kg, tiles), cs = matrix_stride(g.cg, tiles);
              for (std::size_t t = 0; db != nullptr && t < nt; ++t)
              {
                  T* acc = partial + chunk * stride + size;
                  for (std::size_t k = 0; k < g.k; ++k)
                  {
                      acc[k] += sum_row(dy + ((n0 + t) * g.k + k) * g.ho * g.wo, g.ho * g.wo);
                  }
              }
              for (std::size_t gi = 0; gi < g.groups; ++gi)
              {
                  for (std::size_t t = 0; t < nt; ++t)
                  {
                      for (std::size_t k = 0; k < g.kg; ++k)
                      {
                          grad_output_tiles(dy + ((n0 + t) * g.k + gi * g.kg + k) * g.ho * g.wo, p, g,
                                            buf.first + k * tiles + t * p.tiles(), zs, buf.tmp);
                      }
                  }
                  if (dx != nullptr)
                  {
                      for (std::size_t xi = 0; xi < pp; ++xi)
                      {
                          checked_gemm(true, false, g.cg, tiles, g.kg, u + (gi * pp + xi) * g.kg * g.cg, g.cg,
                                       buf.first + xi * zs, tiles, T(0), buf.second + xi * cs, tiles);
                      }
                      for (std::size_t t = 0; t < nt; ++t)
                      {
                          for (std::size_t c = 0; c < g.cg; ++c)
                          {
                              input_grad_plane(buf.second + c * tiles + t * p.tiles(), cs, p, g, buf.pad,
                                               dx + ((n0 + t) * g.c + gi * g.cg + c) * g.h * g.w, buf.tmp);
                          }
                      }
                  }
                  if (dw != nullptr)
                  {
                      // the pad's border must be zero again after input_grad_plane used it whole
                      std::fill(buf.pad, buf.pad + p.plane(), T(0));
                      input_block(x, g, p, n0, nt, gi, buf.pad, buf.second, buf.tmp);
                      T* acc = partial + chunk * stride + gi * pp * g.kg * g.cg;
                      for (std::size_t xi = 0; xi < pp; ++xi)
                      {
                          gemm_nt(g.kg, g.cg, tiles, buf.first + xi * zs, tiles, buf.second + xi * cs, tiles,
                                  acc + xi * g.kg * g.cg, g.cg, buf.work);
                      }
                  }
              }
          }
      });
    if (!sums)
    {
        return;
    }
    add_chunks(partial, chunks, stride);
    if (dw != nullptr)
    {
        weight_grad_from_tiles<S>(partial, g, dw);
    }
    if (db != nullptr)
    {
        std::copy(partial + size, partial + stride, db);
    }
}

} // namespace tapegrad::detail::conv::minimal
