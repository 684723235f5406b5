#pragma once
/// @file conv2d_winograd.hpp
/// Private to ops/conv2d.cpp: 3x3, stride-1, dilation-1 convolution by Winograd's minimal
/// filtering algorithm F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2015), for the forward pass and for both gradients.
///
/// In 1-D, F(2, 3) computes the two outputs y_i = sum_j g_j d_{i+j} of a 3-tap correlation over a
/// 4-element input d with 4 multiplications instead of 6:
///
///     y = A^T [(G g) . (B^T d)]          (. is the elementwise product)
///
///     B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
///           [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
///           [0 -1  1  0]        [1/2 -1/2  1/2]
///           [0  1  0 -1]        [ 0    0    1 ]
///
/// Nested in 2-D, a 4x4 input tile d and a 3x3 kernel g give a 2x2 output tile with 16
/// multiplications instead of 36:  Y = A^T [(G g G^T) . (B^T d B)] A.  Summed over the input
/// channels, the 16 elementwise products become 16 independent GEMMs, one per tile position xi:
/// M_xi[K x tiles] = U_xi[K x C] * V_xi[C x tiles], with U = G g G^T and V = B^T d B.
///
/// The gradients come from the same 16 products. Carry the output gradient back through A,
/// Z = A dY A^T (4x4 per tile), so that L = sum over xi of Z . U . V; then
///
///     dW = G^T [sum over tiles of Z . V] G     (16 GEMMs Z_xi * V_xi^T, summed over the batch)
///     dd = B [sum over k of Z . U] B^T         (16 GEMMs U_xi^T * Z_xi; the 4x4 tiles overlap
///                                               by 2 and are added into the input gradient)
///
/// These are exact adjoints of the forward computation, so in float64 they agree with finite
/// differences like the GEMM route does.
///
/// Layouts: U is [groups][16][K/G][C/G]; V and the input-gradient tiles are [16][C/G][tiles];
/// M and Z are [16][K/G][tiles] (the 16 matrices matrix_stride() apart); the tiles of a block of
/// images are numbered image by image, row-major within an image (Plan).

#include <tapegrad/ops/conv2d_kernels.hpp>
#include <tapegrad/ops/conv2d_winograd_tiles.hpp>
#include <tapegrad/ops/gemm_nt.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace tapegrad::detail::conv::winograd
{

/// F(2x2, 3x3) applies: a 3x3 kernel, stride 1, dilation 1 (any padding, channels and groups).
inline bool applies(const Geometry& g)
{
    return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1;
}

/// Whether automatic runs the forward pass and dX by Winograd (F(2x2, 3x3) or, for outputs of
/// 4x4 and more, F(4x4, 3x3): see conv2d_winograd_route.hpp): where it applies and there are
/// enough channels for the GEMMs it shrinks to outweigh its transforms (on S1, 1 -> 32 channels,
/// it was 4x slower than im2col + GEMM; 16 is a cautious threshold, not a measured crossover).
/// dW alone stays on im2col + GEMM unless Winograd is asked for: transforming dY again just for
/// dW cost more than it saved. When the tape needs dX and dW together, see fused_backward().
inline bool preferred(const Geometry& g)
{
    return applies(g) && g.cg >= 16 && g.kg >= 16;
}

/// Whether a backward pass that needs both dX and dW takes them from one Winograd pass
/// (backward()): whenever Winograd runs the forward pass and dX. It shares the transform of dY
/// and reuses the forward's transformed input, so dW costs little more than its 16 products. On
/// S2 (N 64, 32 -> 64 channels, 14x14) at 2 threads, fwd+bwd took 5.5-5.7 ms with dW by im2col
/// + GEMM, 4.9-5.1 ms from the one pass with BLAS for the dW products, and 4.5-4.7 ms with
/// gemm_nt's AVX-512 kernel.
inline bool fused_backward(const Geometry& g)
{
    return g.winograd;
}

/// Distance between the 16 tile matrices of `rows` x `tiles`: 16 elements more than they need,
/// so that the 16 rows a transform writes or reads at once are never a multiple of 4 KiB apart
/// (which would put them all in one L1 set), whatever the block size.
inline std::size_t matrix_stride(std::size_t rows, std::size_t tiles)
{
    return rows * tiles + 16;
}

/// Images whose tiles go through one set of GEMMs: about `target` tiles. Measured on S2: 128 for
/// the forward and dX (larger blocks no longer fit a thread's L2 with OpenBLAS's buffers), 256
/// for dW (whose GEMMs sum over the tiles and want them long).
inline std::size_t images_per_block(const Geometry& g, const Plan& p, std::size_t target = 128)
{
    const std::size_t images = (target + p.tiles() / 2) / std::max<std::size_t>(p.tiles(), 1);
    return std::clamp<std::size_t>(images, 1, std::max<std::size_t>(g.n, 1)); // n may be 0
}

// ---------------------------------------------------------------------------------------------
// Kernel transforms

/// u[((gi * 16 + xi) * kg + k) * cg + c] = (G w[gi*kg + k][c] G^T)[xi], w as [K][C/G][3][3].
template <class T>
void transform_weights(const T* w, const Geometry& g, T* u)
{
    // 16 filters at a time into `block`, then written out 16 contiguous values per xi: writing
    // each filter's 16 values straight into u (16 rows kg*cg apart) kept evicting L1 lines.
    constexpr std::size_t lanes = 16;
    const std::size_t per = g.kg * g.cg;
    T block[lanes][16];
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t k0 = 0; k0 < per; k0 += lanes)
        {
            const std::size_t count = std::min(lanes, per - k0);
            for (std::size_t l = 0; l < count; ++l)
            {
                const T* f = w + (gi * per + k0 + l) * 9;
                T r[4][3]; // G f, a 4x3
                for (std::size_t j = 0; j < 3; ++j)
                {
                    r[0][j] = f[j];
                    r[1][j] = T(0.5) * (f[j] + f[3 + j] + f[6 + j]);
                    r[2][j] = T(0.5) * (f[j] - f[3 + j] + f[6 + j]);
                    r[3][j] = f[6 + j];
                }
                for (std::size_t a = 0; a < 4; ++a)
                {
                    block[l][4 * a] = r[a][0];
                    block[l][4 * a + 1] = T(0.5) * (r[a][0] + r[a][1] + r[a][2]);
                    block[l][4 * a + 2] = T(0.5) * (r[a][0] - r[a][1] + r[a][2]);
                    block[l][4 * a + 3] = r[a][2];
                }
            }
            for (std::size_t xi = 0; xi < 16; ++xi)
            {
                T* out = u + (gi * 16 + xi) * per + k0;
                for (std::size_t l = 0; l < count; ++l)
                {
                    out[l] = block[l][xi];
                }
            }
        }
    }
}

/// dw[gi*kg + k][c] (3x3) = G^T q G with q[xi] = q[((gi * 16 + xi) * kg + k) * cg + c].
template <class T>
void weight_grad_from_tiles(const T* q, const Geometry& g, T* dw)
{
    const std::size_t per = g.kg * g.cg;
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t kc = 0; kc < per; ++kc)
        {
            const T* in = q + gi * 16 * per + kc;
            T h[3][4]; // G^T q, a 3x4
            for (std::size_t b = 0; b < 4; ++b)
            {
                const T q0 = in[b * per], q1 = in[(4 + b) * per], q2 = in[(8 + b) * per],
                        q3 = in[(12 + b) * per];
                h[0][b] = q0 + T(0.5) * (q1 + q2);
                h[1][b] = T(0.5) * (q1 - q2);
                h[2][b] = T(0.5) * (q1 + q2) + q3;
            }
            T* out = dw + (gi * per + kc) * 9;
            for (std::size_t i = 0; i < 3; ++i)
            {
                out[3 * i] = h[i][0] + T(0.5) * (h[i][1] + h[i][2]);
                out[3 * i + 1] = T(0.5) * (h[i][1] - h[i][2]);
                out[3 * i + 2] = T(0.5) * (h[i][1] + h[i][2]) + h[i][3];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers and block helpers

/// One thread's buffers for one kernel call: two tile matrices (16 x rows x block tiles), the
/// phases of the padded input plane and of the output-gradient plane (zero, and only their
/// interiors are ever written) and the transforms' work space.
template <class T>
struct Buffers
{
    T* first = nullptr;  ///< V (forward, dW) or Z (dX): 16 x first_rows x tiles
    T* second = nullptr; ///< M (forward), Z (dW) or the input-gradient tiles (dX)
    T* input_phase[4] = {};
    T* grad_phase[4] = {};
    T* tmp = nullptr;
    T* work = nullptr; ///< gemm_nt's work space (`work_size` elements; backward only)

    Buffers(const Plan& p, std::size_t block, std::size_t first_rows, std::size_t second_rows,
            std::size_t work_size = 0)
    {
        const std::size_t tiles = block * p.tiles();
        const std::size_t a = 16 * matrix_stride(first_rows, tiles),
                          b = 16 * matrix_stride(second_rows, tiles);
        const std::size_t in = p.phase_size(), gr = p.tiles();
        first = scratch<T>(a + b + 4 * in + 4 * gr + p.tmp_size() + work_size);
        work = first + a + b + 4 * in + 4 * gr + p.tmp_size();
        second = first + a;
        for (std::size_t i = 0; i < 4; ++i)
        {
            input_phase[i] = second + b + i * in;
            grad_phase[i] = second + b + 4 * in + i * gr;
        }
        tmp = grad_phase[0] + 4 * gr;
        std::fill(input_phase[0], tmp + p.tmp_size(), T(0));
    }
};

/// V of images [n0, n0 + nt), group gi.
template <class T>
void input_block(const T* x, const Geometry& g, const Plan& p, std::size_t n0, std::size_t nt, std::size_t gi,
                 const Buffers<T>& buf, T* v)
{
    const std::size_t tiles = nt * p.tiles(), xs = matrix_stride(g.cg, tiles);
    for (std::size_t t = 0; t < nt; ++t)
    {
        for (std::size_t c = 0; c < g.cg; ++c)
        {
            split_input(x + ((n0 + t) * g.c + gi * g.cg + c) * g.h * g.w, g, p, buf.input_phase);
            input_tiles(buf.input_phase, p.w2, p.tiles(), v + c * tiles + t * p.tiles(), xs);
        }
    }
}

/// Z of images [n0, n0 + nt), group gi.
template <class T>
void grad_output_block(const T* dy, const Geometry& g, const Plan& p, std::size_t n0, std::size_t nt,
                       std::size_t gi, const Buffers<T>& buf, T* z)
{
    const std::size_t tiles = nt * p.tiles(), xs = matrix_stride(g.kg, tiles);
    for (std::size_t t = 0; t < nt; ++t)
    {
        for (std::size_t k = 0; k < g.kg; ++k)
        {
            split_grad_output(dy + ((n0 + t) * g.k + gi * g.kg + k) * g.ho * g.wo, g, p, buf.grad_phase);
            grad_output_tiles(buf.grad_phase, p.tiles(), z + k * tiles + t * p.tiles(), xs);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The three products

/// Elements of the V matrices of one block and group (16 x cg x the block's tiles, as laid out
/// for the GEMMs; a shorter last block uses the front of its share).
inline std::size_t v_block_size(const Geometry& g, const Plan& p)
{
    return 16 * matrix_stride(g.cg, images_per_block(g, p) * p.tiles());
}

/// Elements of the V matrices of the whole batch, kept by forward() for backward() (dW).
inline std::size_t saved_input_size(const Geometry& g)
{
    const Plan p(g);
    const std::size_t block = images_per_block(g, p);
    return (g.n + block - 1) / block * g.groups * v_block_size(g, p);
}

/// y = conv(x, w) + b by F(2x2, 3x3), threaded over blocks of images; b may be null. With
/// `saved_v` (saved_input_size(g) elements) the transformed input V is built there, block by
/// block, for backward() to reuse.
template <class T>
void forward(const T* x, const T* w, const T* b, const Geometry& g, T* y, T* saved_v = nullptr)
{
    const Plan p(g);
    T* u = scratch<T, 1>(g.groups * 16 * g.kg * g.cg);
    transform_weights(w, g, u);
    const std::size_t block = images_per_block(g, p), blocks = (g.n + block - 1) / block;
    const std::size_t vbs = v_block_size(g, p);
    for_each_index(
      parallel_batch(g), blocks, [&] { return Buffers<T>(p, block, g.cg, g.kg); },
      [&](const Buffers<T>& buf, std::size_t bi)
      {
          const std::size_t n0 = bi * block, nt = std::min(block, g.n - n0), tiles = nt * p.tiles();
          for (std::size_t gi = 0; gi < g.groups; ++gi)
          {
              T* v = saved_v != nullptr ? saved_v + (bi * g.groups + gi) * vbs : buf.first;
              input_block(x, g, p, n0, nt, gi, buf, v);
              for (std::size_t xi = 0; xi < 16; ++xi)
              {
                  checked_gemm(false, false, g.kg, tiles, g.cg, u + (gi * 16 + xi) * g.kg * g.cg, g.cg,
                               v + xi * matrix_stride(g.cg, tiles), tiles, T(0),
                               buf.second + xi * matrix_stride(g.kg, tiles), tiles);
              }
              for (std::size_t t = 0; t < nt; ++t)
              {
                  for (std::size_t k = 0; k < g.kg; ++k)
                  {
                      const std::size_t ko = gi * g.kg + k;
                      output_plane(buf.second + k * tiles + t * p.tiles(), matrix_stride(g.kg, tiles), p, g,
                                   b != nullptr ? b[ko] : T(0), y + ((n0 + t) * g.k + ko) * g.ho * g.wo,
                                   buf.tmp);
                  }
              }
          }
      });
}

/// The gradients from one pass over dY, each computed only when its pointer is not null:
///
///     dx = B [sum over k of Z . U] B^T   (tiles added and cropped to H x W; needs w)
///     dw = G^T [sum over tiles of Z . V] G   (needs x, or the V that forward() saved)
///     db = the sum of dY over images and pixels
///
/// Z = A dY A^T is transformed once per block of images and feeds both. The blocks are the
/// forward's. For dw they are grouped into a fixed number of chunks with their own partial sums,
/// added in chunk order, so the result does not depend on the number of threads (as in the GEMM
/// route); for dx alone each block is a unit of work.
template <class T>
void backward(const T* dy, const T* x, const T* w, const Geometry& g, T* dx, T* dw,
              const T* saved_v = nullptr, T* db = nullptr)
{
    const Plan p(g);
    T* u = dx != nullptr ? scratch<T, 1>(g.groups * 16 * g.kg * g.cg) : nullptr;
    if (dx != nullptr)
    {
        transform_weights(w, g, u);
    }
    const std::size_t block = images_per_block(g, p), blocks = (g.n + block - 1) / block;
    const std::size_t vbs = v_block_size(g, p), size = g.groups * 16 * g.kg * g.cg;
    const std::size_t stride = size + g.k;            // one chunk's dW tiles, then its db
    const bool sums = dw != nullptr || db != nullptr; // over the batch, in fixed chunks
    const std::size_t chunks =
      !sums ? blocks : (parallel_batch(g) ? std::clamp<std::size_t>(blocks, 1, 4) : 1);
    // the calling thread's own buffers (scratch slots 1 and 2), reused from call to call: fresh
    // vectors cost page faults on every step
    T* partial = sums ? scratch<T, 2>(chunks * stride) : nullptr;
    if (sums)
    {
        std::fill(partial, partial + chunks * stride, T(0));
    }
    for_each_index(
      parallel_batch(g) && chunks > 1, chunks,
      [&] { return Buffers<T>(p, block, g.kg, g.cg, dw != nullptr ? block * p.tiles() * g.cg : 0); },
      [&](const Buffers<T>& buf, std::size_t chunk)
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
                  grad_output_block(dy, g, p, n0, nt, gi, buf, buf.first);
                  for (std::size_t xi = 0; dx != nullptr && xi < 16; ++xi)
                  {
                      checked_gemm(true, false, g.cg, tiles, g.kg, u + (gi * 16 + xi) * g.kg * g.cg, g.cg,
                                   buf.first + xi * zs, tiles, T(0), buf.second + xi * cs, tiles);
                  }
                  for (std::size_t t = 0; dx != nullptr && t < nt; ++t)
                  {
                      for (std::size_t c = 0; c < g.cg; ++c)
                      {
                          input_grad_tiles(buf.second + c * tiles + t * p.tiles(), cs, p, g,
                                           dx + ((n0 + t) * g.c + gi * g.cg + c) * g.h * g.w, buf.tmp);
                      }
                  }
                  if (dw != nullptr)
                  {
                      const T* v = buf.second;
                      if (saved_v != nullptr)
                      {
                          v = saved_v + (bi * g.groups + gi) * vbs;
                      }
                      else
                      {
                          input_block(x, g, p, n0, nt, gi, buf, buf.second);
                      }
                      T* acc = partial + chunk * stride + gi * 16 * g.kg * g.cg;
                      for (std::size_t xi = 0; xi < 16; ++xi)
                      {
                          gemm_nt(g.kg, g.cg, tiles, buf.first + xi * zs, tiles, v + xi * cs, tiles,
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
        weight_grad_from_tiles(partial, g, dw);
    }
    if (db != nullptr)
    {
        std::copy(partial + size, partial + stride, db);
    }
}

} // namespace tapegrad::detail::conv::winograd
