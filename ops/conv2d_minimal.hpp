#pragma once
/// @file conv2d_minimal.hpp
/// Private to ops/conv2d.cpp: the machinery shared by the minimal filtering algorithms for 3x3
/// kernels that work tile by tile (conv2d_winograd_s2.hpp at stride 2, F(4x4, 3x3) and F(5x5,
/// 3x3) in conv2d_winograd_4x4.hpp and conv2d_winograd_5x5.hpp at stride 1). A `Scheme` gives the
/// 1-D algorithm
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
/// position xi: M_xi[tiles x K] = V_xi[tiles x C] * U_xi^T, U = G g G^T ([K x C]), V = B^T D B.
/// The gradients are their exact adjoints, with Z = A dY A^T:
///
///     dW = G^T [sum over tiles of Z . V] G     (P^2 GEMMs Z_xi^T * V_xi over the batch)
///     dD = B [sum over k of Z . U] B^T         (P^2 GEMMs Z_xi * U_xi, tiles added where they
///                                               overlap)
///
/// The tile transforms work on vectors of channels (conv2d_lanes.hpp): planes are packed into
/// (and out of) [rows][cols][lanes], one block of channels of one image at a time.
///
/// Layouts: U is [groups][P^2][K/G][C/G] (the P^2 matrices weight_stride() apart). V and the
/// input-gradient tiles are [P^2][tiles][Cp], M and Z are [P^2][tiles][Kp], with Cp and Kp the
/// channel counts rounded up to whole vectors and the P^2 matrices matrix_stride() apart; the
/// tiles of a block of images are numbered image by image, row-major within one.

#include <tapegrad/ops/conv2d_kernels.hpp>
#include <tapegrad/ops/conv2d_lanes.hpp>
#include <tapegrad/ops/gemm_nt.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
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
    /// The output side of the tiling: th*M x tw*M.
    std::size_t out_cols() const { return tw * S::m; }
    std::size_t out_plane() const { return th * S::m * out_cols(); }
};

/// Distance between the tile matrices of `tiles` x `cols` (16 elements of slack, so that
/// matrices a multiple of 4 KiB apart do not share L1 sets).
inline std::size_t matrix_stride(std::size_t cols, std::size_t tiles)
{
    return cols * tiles + 16;
}

/// Distance between the P^2 kernel-tile matrices of U and of dW's tiles: kg x cg, plus 16
/// elements of slack (a per-filter transform touches all P^2 of them, which kg*cg apart would
/// often share L1 sets).
inline std::size_t weight_stride(const Geometry& g)
{
    return g.kg * g.cg + 16;
}

/// Images per block of GEMMs: about `target` tiles (at least one image, at most the batch).
inline std::size_t images_per_block(const Geometry& g, std::size_t tiles, std::size_t target)
{
    const std::size_t images = (target + tiles / 2) / std::max<std::size_t>(tiles, 1);
    return std::clamp<std::size_t>(images, 1, std::max<std::size_t>(g.n, 1)); // n may be 0
}

// ---------------------------------------------------------------------------------------------
// Kernel transforms, a vector of filters (consecutive (k, c) pairs of one group) at a time

/// u[(gi * P^2 + xi) * ws + k * cg + c] = (G w[gi*kg + k][c] G^T)[xi], w as [K][C/G][3][3],
/// ws = weight_stride(g).
/// Shared among the OpenMP threads when `parallel`.
template <class S, class T>
void transform_weights(const T* w, const Geometry& g, T* u, bool parallel)
{
    constexpr std::size_t lanes = Lanes<T>::count, pp = S::p * S::p;
    const std::size_t per = g.kg * g.cg, ws = weight_stride(g);
    const std::size_t blocks = (per + lanes - 1) / lanes;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t bi = 0; bi < blocks; ++bi)
        {
            const std::size_t k0 = bi * lanes, count = std::min(lanes, per - k0);
            T taps[9][lanes] = {}; // taps[3a + b][l]: tap (a, b) of filter k0 + l
            for (std::size_t l = 0; l < count; ++l)
            {
                for (std::size_t e = 0; e < 9; ++e)
                {
                    taps[e][l] = w[(gi * per + k0 + l) * 9 + e];
                }
            }
            T* out = u + gi * pp * ws + k0;
            transform_tile<false, T>(
              S::g, [&](std::size_t a, std::size_t b, Vec<T>& e) { load(e, taps[3 * a + b]); },
              [&](std::size_t r, std::size_t s, const Vec<T>& e)
              {
                  if (count == lanes)
                  {
                      store(out + (S::p * r + s) * ws, e);
                  }
                  else
                  {
                      std::memcpy(out + (S::p * r + s) * ws, &e, count * sizeof(T));
                  }
              });
        }
    }
}

/// dw[gi*kg + k][c] (3x3) = G^T q G with q[xi] the sum, in chunk order, of the `chunks` partial
/// sums q[chunk * stride + (gi * P^2 + xi) * ws + k * cg + c], ws = weight_stride(g). Shared
/// among the OpenMP threads when `parallel`.
template <class S, class T>
void weight_grad_from_tiles(const T* q, std::size_t chunks, std::size_t stride, const Geometry& g, T* dw,
                            bool parallel)
{
    constexpr std::size_t lanes = Lanes<T>::count, pp = S::p * S::p;
    const std::size_t per = g.kg * g.cg, ws = weight_stride(g);
    const std::size_t blocks = (per + lanes - 1) / lanes;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t bi = 0; bi < blocks; ++bi)
        {
            const std::size_t k0 = bi * lanes, count = std::min(lanes, per - k0);
            const T* in = q + gi * pp * ws + k0;
            T sums[pp][lanes] = {}; // 0 + the first chunk is that chunk exactly
            for (std::size_t chunk = 0; chunk < chunks; ++chunk)
            {
                for (std::size_t xi = 0; xi < pp; ++xi)
                {
                    const T* from = in + chunk * stride + xi * ws;
#pragma GCC ivdep
                    for (std::size_t l = 0; l < count; ++l)
                    {
                        sums[xi][l] += from[l];
                    }
                }
            }
            T taps[9][lanes];
            transform_tile<true, T>(
              S::g, [&](std::size_t a, std::size_t b, Vec<T>& e) { load(e, sums[S::p * a + b]); },
              [&](std::size_t r, std::size_t s, const Vec<T>& e) { store(taps[3 * r + s], e); });
            for (std::size_t l = 0; l < count; ++l)
            {
                for (std::size_t e = 0; e < 9; ++e)
                {
                    dw[(gi * per + k0 + l) * 9 + e] = taps[e][l];
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tile transforms of one image and one vector of channels. `ld` is the matrices' row length
// (Cp or Kp); the matrix pointers point at the image's first tile and the vector's first channel.

/// v[xi * vs + t * ld] = (B^T D_t B)[xi] for every tile t of the packed, zero-padded input `pad`
/// ([hp][wp][lanes]).
template <class S, class T>
void input_tiles(const T* pad, const Plan<S>& p, T* v, std::size_t vs, std::size_t ld)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t tj = 0; tj < p.tw; ++tj)
        {
            const T* d = pad + (S::step * ti * p.wp + S::step * tj) * lanes;
            T* o = v + (ti * p.tw + tj) * ld;
            transform_tile<false, T>(
              S::bt, [&](std::size_t a, std::size_t b, Vec<T>& e) { load(e, d + (a * p.wp + b) * lanes); },
              [&](std::size_t r, std::size_t s, const Vec<T>& e) { store(o + (S::p * r + s) * vs, e); });
        }
    }
}

/// out (packed, [th*M][tw*M][lanes]) = A^T M_t A + bias at every tile t of m (m[xi * ms + t * ld]).
template <class S, class T>
void output_tiles(const T* m, std::size_t ms, std::size_t ld, const Plan<S>& p, const Vec<T>& bias, T* out)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    const std::size_t oc = p.out_cols();
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t tj = 0; tj < p.tw; ++tj)
        {
            const T* d = m + (ti * p.tw + tj) * ld;
            T* o = out + (S::m * ti * oc + S::m * tj) * lanes;
            transform_tile<false, T>(
              S::at, [&](std::size_t a, std::size_t b, Vec<T>& e) { load(e, d + (S::p * a + b) * ms); },
              [&](std::size_t r, std::size_t s, const Vec<T>& e)
              { store(o + (r * oc + s) * lanes, e + bias); });
        }
    }
}

/// z[xi * zs + t * ld] = (A dY_t A^T)[xi] for every tile t of the packed dY `dy` ([th*M][tw*M]
/// [lanes], zero outside Ho x Wo).
template <class S, class T>
void grad_output_tiles(const T* dy, const Plan<S>& p, T* z, std::size_t zs, std::size_t ld)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    const std::size_t oc = p.out_cols();
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t tj = 0; tj < p.tw; ++tj)
        {
            const T* d = dy + (S::m * ti * oc + S::m * tj) * lanes;
            T* o = z + (ti * p.tw + tj) * ld;
            transform_tile<true, T>(
              S::at, [&](std::size_t a, std::size_t b, Vec<T>& e) { load(e, d + (a * oc + b) * lanes); },
              [&](std::size_t r, std::size_t s, const Vec<T>& e) { store(o + (S::p * r + s) * zs, e); });
        }
    }
}

/// pad (packed [hp][wp][lanes], zeroed by the caller) = the sum of B Q_t B^T over the tiles of q
/// (q[xi * qs + t * ld]) at their places.
template <class S, class T>
void input_grad_tiles(const T* q, std::size_t qs, std::size_t ld, const Plan<S>& p, T* pad)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t tj = 0; tj < p.tw; ++tj)
        {
            const T* d = q + (ti * p.tw + tj) * ld;
            T* o = pad + (S::step * ti * p.wp + S::step * tj) * lanes;
            transform_tile<true, T>(
              S::bt, [&](std::size_t a, std::size_t b, Vec<T>& e) { load(e, d + (S::p * a + b) * qs); },
              [&](std::size_t r, std::size_t s, const Vec<T>& e)
              {
                  T* at = o + (r * p.wp + s) * lanes;
                  Vec<T> sum;
                  load(sum, at);
                  store(at, sum + e);
              });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers and blocks

/// One thread's buffers for one kernel call: two sets of P^2 tile matrices, the packed input
/// plane (its border zero), the packed input-gradient plane and the packed output plane (zero
/// outside Ho x Wo).
template <class S, class T>
struct Buffers
{
    T* first = nullptr;  ///< V (forward) or Z (backward): P^2 x tiles x first_cols
    T* second = nullptr; ///< M (forward), the input-gradient tiles or V (backward)
    T* pad = nullptr;
    T* grad = nullptr;
    T* out = nullptr;
    T* flat = nullptr; ///< pack_planes' work space

    /// `padded`: some channel counts are not whole vectors (the matrices are zeroed too).
    Buffers(const Geometry& g, const Plan<S>& p, std::size_t block, std::size_t first_cols,
            std::size_t second_cols, bool padded)
    {
        constexpr std::size_t pp = S::p * S::p, lanes = Lanes<T>::count;
        const std::size_t tiles = block * p.tiles();
        const std::size_t a = pp * matrix_stride(first_cols, tiles),
                          b = pp * matrix_stride(second_cols, tiles);
        const std::size_t plane = p.plane() * lanes, out_plane = p.out_plane() * lanes;
        const std::size_t flat_size = std::max(g.h * g.w, g.ho * g.wo) * lanes;
        first = scratch<T>(a + b + 2 * plane + out_plane + flat_size);
        second = first + a;
        pad = second + b;
        grad = pad + plane;
        out = grad + plane;
        flat = out + out_plane;
        // the GEMMs leave the padding channels of M and of the input-gradient tiles unwritten;
        // zero, they stay harmless in the transforms
        std::fill(padded ? first : pad, out + out_plane, T(0));
    }
};

/// V of images [n0, n0 + nt), group gi, into v (ld = Cp).
template <class S, class T>
void input_block(const T* x, const Geometry& g, const Plan<S>& p, std::size_t n0, std::size_t nt,
                 std::size_t gi, T* pad, T* flat, T* v, std::size_t vs, std::size_t ld)
{
    constexpr std::size_t lanes = Lanes<T>::count;
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    for (std::size_t t = 0; t < nt; ++t)
    {
        for (std::size_t c0 = 0; c0 < g.cg; c0 += lanes)
        {
            pack_planes(x + ((n0 + t) * g.c + gi * g.cg + c0) * g.h * g.w, std::min(lanes, g.cg - c0), g.h,
                        g.w, pad, p.wp, ph, pw, flat);
            input_tiles(pad, p, v + t * p.tiles() * ld + c0, vs, ld);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The three products

/// y = conv(x, w) + b, threaded over blocks of images; b may be null.
template <class S, class T>
void forward(const T* x, const T* w, const T* b, const Geometry& g, T* y)
{
    constexpr std::size_t pp = S::p * S::p, lanes = Lanes<T>::count;
    const Plan<S> p(g);
    const std::size_t cp = padded_channels<T>(g.cg), kp = padded_channels<T>(g.kg);
    T* u = scratch<T, 1>(g.groups * pp * weight_stride(g));
    transform_weights<S>(w, g, u, parallel_batch(g));
    const std::size_t block = images_per_block(g, p.tiles(), S::block_tiles),
                      blocks = (g.n + block - 1) / block;
    for_each_index(
      parallel_batch(g), blocks, [&] { return Buffers<S, T>(g, p, block, cp, kp, cp != g.cg || kp != g.kg); },
      [&](const Buffers<S, T>& buf, std::size_t bi)
      {
          const std::size_t n0 = bi * block, nt = std::min(block, g.n - n0), tiles = nt * p.tiles();
          const std::size_t ms = matrix_stride(kp, tiles), vs = matrix_stride(cp, tiles);
          for (std::size_t gi = 0; gi < g.groups; ++gi)
          {
              input_block(x, g, p, n0, nt, gi, buf.pad, buf.flat, buf.first, vs, cp);
              for (std::size_t xi = 0; xi < pp; ++xi)
              {
                  checked_gemm(false, true, tiles, g.kg, g.cg, buf.first + xi * vs, cp,
                               u + (gi * pp + xi) * weight_stride(g), g.cg, T(0), buf.second + xi * ms, kp);
              }
              for (std::size_t t = 0; t < nt; ++t)
              {
                  for (std::size_t k0 = 0; k0 < g.kg; k0 += lanes)
                  {
                      const std::size_t count = std::min(lanes, g.kg - k0), ko = gi * g.kg + k0;
                      Vec<T> bias{};
                      for (std::size_t l = 0; b != nullptr && l < count; ++l)
                      {
                          bias[l] = b[ko + l];
                      }
                      output_tiles(buf.second + t * p.tiles() * kp + k0, ms, kp, p, bias, buf.out);
                      unpack_planes(buf.out, p.out_cols(), 0, 0, count, g.ho, g.wo,
                                    y + ((n0 + t) * g.k + ko) * g.ho * g.wo, buf.flat);
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
    constexpr std::size_t pp = S::p * S::p, lanes = Lanes<T>::count;
    const Plan<S> p(g);
    const std::size_t cp = padded_channels<T>(g.cg), kp = padded_channels<T>(g.kg);
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    T* u = dx != nullptr ? scratch<T, 1>(g.groups * pp * weight_stride(g)) : nullptr;
    if (dx != nullptr)
    {
        transform_weights<S>(w, g, u, parallel_batch(g));
    }
    const std::size_t block = images_per_block(g, p.tiles(), S::block_tiles),
                      blocks = (g.n + block - 1) / block;
    const std::size_t size = g.groups * pp * weight_stride(g);
    const std::size_t stride = size + g.k; // one chunk's dW tiles, then its db
    const bool sums = dw != nullptr || db != nullptr;
    const std::size_t chunks =
      !sums ? blocks : (parallel_batch(g) ? std::clamp<std::size_t>(blocks, 1, 4) : 1);
    // the calling thread's own buffer, reused from call to call (a fresh 1-2 MB vector cost
    // page faults worth a tenth of S4's time); each chunk's first block writes its dW tiles
    T* partial = sums ? scratch<T, 2>(chunks * stride) : nullptr;
    for (std::size_t chunk = 0; sums && chunk < chunks; ++chunk)
    {
        T* first = partial + chunk * stride;
        std::fill(blocks == 0 || dw == nullptr ? first : first + size, first + stride, T(0));
    }
    for_each_index(
      parallel_batch(g) && chunks > 1, chunks,
      [&] { return Buffers<S, T>(g, p, block, kp, cp, cp != g.cg || kp != g.kg); },
      [&](const Buffers<S, T>& buf, std::size_t chunk)
      {
          for (std::size_t bi = chunk * blocks / chunks; bi < (chunk + 1) * blocks / chunks; ++bi)
          {
              const std::size_t n0 = bi * block, nt = std::min(block, g.n - n0), tiles = nt * p.tiles();
              const std::size_t zs = matrix_stride(kp, tiles), cs = matrix_stride(cp, tiles);
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
                      for (std::size_t k0 = 0; k0 < g.kg; k0 += lanes)
                      {
                          pack_planes(dy + ((n0 + t) * g.k + gi * g.kg + k0) * g.ho * g.wo,
                                      std::min(lanes, g.kg - k0), g.ho, g.wo, buf.out, p.out_cols(), 0, 0,
                                      buf.flat);
                          grad_output_tiles(buf.out, p, buf.first + t * p.tiles() * kp + k0, zs, kp);
                      }
                  }
                  if (dx != nullptr)
                  {
                      for (std::size_t xi = 0; xi < pp; ++xi)
                      {
                          checked_gemm(false, false, tiles, g.cg, g.kg, buf.first + xi * zs, kp,
                                       u + (gi * pp + xi) * weight_stride(g), g.cg, T(0),
                                       buf.second + xi * cs, cp);
                      }
                      for (std::size_t t = 0; t < nt; ++t)
                      {
                          for (std::size_t c0 = 0; c0 < g.cg; c0 += lanes)
                          {
                              std::fill(buf.grad, buf.grad + p.plane() * lanes, T(0));
                              input_grad_tiles(buf.second + t * p.tiles() * cp + c0, cs, cp, p, buf.grad);
                              unpack_planes(buf.grad, p.wp, ph, pw, std::min(lanes, g.cg - c0), g.h, g.w,
                                            dx + ((n0 + t) * g.c + gi * g.cg + c0) * g.h * g.w, buf.flat);
                          }
                      }
                  }
                  if (dw != nullptr)
                  {
                      input_block(x, g, p, n0, nt, gi, buf.pad, buf.flat, buf.second, cs, cp);
                      T* acc = partial + chunk * stride + gi * pp * weight_stride(g);
                      for (std::size_t xi = 0; xi < pp; ++xi)
                      {
                          gemm_tn(g.kg, g.cg, tiles, buf.first + xi * zs, kp, buf.second + xi * cs, cp,
                                  acc + xi * weight_stride(g), g.cg, bi != chunk * blocks / chunks);
                      }
                  }
              }
          }
      });
    if (!sums)
    {
        return;
    }
    if (dw != nullptr)
    {
        weight_grad_from_tiles<S>(partial, chunks, stride, g, dw, parallel_batch(g));
    }
    for (std::size_t k = 0; db != nullptr && k < g.k; ++k)
    {
        T sum = partial[size + k];
        for (std::size_t chunk = 1; chunk < chunks; ++chunk)
        {
            sum += partial[chunk * stride + size + k];
        }
        db[k] = sum;
    }
}

} // namespace tapegrad::detail::conv::minimal
