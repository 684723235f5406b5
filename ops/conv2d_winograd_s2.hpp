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
/// Nested in 2-D, a 5x5 input tile D (the tiles overlap by one row and column, 4 apart) and a 3x3
/// kernel g give a 2x2 output tile: Y = A^T [(G g G^T) . (B^T D B)] A. Summed over the input
/// channels the 25 elementwise products become 25 GEMMs, one per tile position xi:
/// M_xi[K x tiles] = U_xi[K x C] * V_xi[C x tiles], U = G g G^T, V = B^T D B.
///
/// The gradients are the exact adjoints of the same products, with Z = A dY A^T (5x5 per tile):
///
///     dW = G^T [sum over tiles of Z . V] G     (25 GEMMs Z_xi * V_xi^T, summed over the batch)
///     dD = B [sum over k of Z . U] B^T         (25 GEMMs U_xi^T * Z_xi, the 5x5 tiles added
///                                               into the input gradient where they overlap)
///
/// As no transform rounds (the coefficients are 0 and +-1), integer data gives the same values
/// as im2col + GEMM in float64, and float32 rounds like a direct sum in another order.
///
/// Layouts as in conv2d_winograd.hpp: U is [groups][25][K/G][C/G]; V and the input-gradient
/// tiles are [25][C/G][tiles]; M and Z are [25][K/G][tiles], the 25 matrices matrix_stride()
/// apart; the tiles of a block of images are numbered image by image, row-major within one.

#include <tapegrad/ops/conv2d_kernels.hpp>
#include <tapegrad/ops/gemm_nt.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace tapegrad::detail::conv::winograd_s2
{

constexpr std::size_t positions = 25; ///< 5x5 tile positions, one GEMM each

/// The stride-2 algorithm applies: a 3x3 kernel, stride 2 and dilation 1 on both axes (any
/// padding, channels and groups).
inline bool applies(const Geometry& g)
{
    return g.kh == 3 && g.kw == 3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1;
}

/// Not the automatic choice: on W1 S4 (N 16, 64 -> 128 channels, 16x16, k3 s2 p1), on an AMD
/// EPYC with AVX-512, fwd+bwd took 5.3 ms against im2col + GEMM's 5.8 on one thread, but 3.7
/// against 3.1 on two. Its GEMMs have an inner dimension of only C/G = 64 (110-120 GFLOP/s in
/// OpenBLAS, against about 160 for im2col's 576), which takes back most of the 36/25 saved.
/// It runs when conv2d is asked for Conv2dAlgorithm::winograd.

/// The tiling of one image: th x tw tiles of 2x2 outputs cover Ho x Wo (half outside when odd);
/// tile (i, j) reads rows 4i..4i+4 and columns 4j..4j+4 of the zero-padded plane, which holds x
/// at offset (ph, pw) and is large enough for every tile and for all of x.
struct Plan
{
    std::size_t th = 0, tw = 0, hp = 0, wp = 0;

    explicit Plan(const Geometry& g)
      : th((g.ho + 1) / 2)
      , tw((g.wo + 1) / 2)
      , hp(std::max(4 * th + 1, g.h + static_cast<std::size_t>(g.ph)))
      , wp(std::max(4 * tw + 1, g.w + static_cast<std::size_t>(g.pw)))
    {
    }

    std::size_t tiles() const { return th * tw; }
    std::size_t plane() const { return hp * wp; }
};

/// Distance between the 25 tile matrices of `rows` x `tiles` (16 elements of slack, so that
/// matrices a multiple of 4 KiB apart do not share L1 sets).
inline std::size_t matrix_stride(std::size_t rows, std::size_t tiles)
{
    return rows * tiles + 16;
}

/// Images per block of GEMMs: about `target` tiles (at least one image, at most the batch).
inline std::size_t images_per_block(const Geometry& g, const Plan& p, std::size_t target = 128)
{
    const std::size_t images = (target + p.tiles() / 2) / std::max<std::size_t>(p.tiles(), 1);
    return std::clamp<std::size_t>(images, 1, std::max<std::size_t>(g.n, 1)); // n may be 0
}

// ---------------------------------------------------------------------------------------------
// The 1-D transforms (the matrices above)

/// o = B^T d.
template <class T>
inline void bt5(T d0, T d1, T d2, T d3, T d4, T o[5])
{
    o[0] = d0 - d2;
    o[1] = d2;
    o[2] = d4 - d2;
    o[3] = d1;
    o[4] = d3;
}

/// o = B q (the adjoint of bt5).
template <class T>
inline void b5(const T q[5], T o[5])
{
    o[0] = q[0];
    o[1] = q[3];
    o[2] = q[1] - q[0] - q[2];
    o[3] = q[4];
    o[4] = q[2];
}

// ---------------------------------------------------------------------------------------------
// Kernel transforms

/// u[((gi * 25 + xi) * kg + k) * cg + c] = (G w[gi*kg + k][c] G^T)[xi], w as [K][C/G][3][3].
/// 16 filters at a time into `block`, then 16 contiguous values per xi: writing each filter's 25
/// values straight into u (25 rows kg*cg apart) made this a fifth of S4's time.
/// Shared among the OpenMP threads when `parallel` (on S4, alone on one thread, it held the
/// other thread idle for a tenth of the step).
template <class T>
void transform_weights(const T* w, const Geometry& g, T* u, bool parallel)
{
    constexpr std::size_t lanes = 16;
    const std::size_t per = g.kg * g.cg;
    const std::size_t blocks = (per + lanes - 1) / lanes;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t bi = 0; bi < blocks; ++bi)
        {
            T block[lanes][positions];
            const std::size_t k0 = bi * lanes;
            const std::size_t count = std::min(lanes, per - k0);
            for (std::size_t l = 0; l < count; ++l)
            {
                const T* f = w + (gi * per + k0 + l) * 9;
                T r[5][3]; // G f
                for (std::size_t j = 0; j < 3; ++j)
                {
                    r[0][j] = f[j];
                    r[1][j] = f[j] + f[6 + j];
                    r[2][j] = f[6 + j];
                    r[3][j] = f[3 + j];
                    r[4][j] = f[3 + j];
                }
                for (std::size_t a = 0; a < 5; ++a)
                {
                    block[l][5 * a] = r[a][0];
                    block[l][5 * a + 1] = r[a][0] + r[a][2];
                    block[l][5 * a + 2] = r[a][2];
                    block[l][5 * a + 3] = r[a][1];
                    block[l][5 * a + 4] = r[a][1];
                }
            }
            for (std::size_t xi = 0; xi < positions; ++xi)
            {
                T* out = u + (gi * positions + xi) * per + k0;
                for (std::size_t l = 0; l < count; ++l)
                {
                    out[l] = block[l][xi];
                }
            }
        }
    }
}

/// dw[gi*kg + k][c] (3x3) = G^T q G with q[xi] = q[((gi * 25 + xi) * kg + k) * cg + c].
template <class T>
void weight_grad_from_tiles(const T* q, const Geometry& g, T* dw)
{
    const std::size_t per = g.kg * g.cg;
    for (std::size_t gi = 0; gi < g.groups; ++gi)
    {
        for (std::size_t kc = 0; kc < per; ++kc)
        {
            const T* in = q + gi * positions * per + kc;
            T h[3][5]; // G^T q: (q0 + q1, q3 + q4, q1 + q2) down each column
            for (std::size_t b = 0; b < 5; ++b)
            {
                const T q0 = in[b * per], q1 = in[(5 + b) * per], q2 = in[(10 + b) * per],
                        q3 = in[(15 + b) * per], q4 = in[(20 + b) * per];
                h[0][b] = q0 + q1;
                h[1][b] = q3 + q4;
                h[2][b] = q1 + q2;
            }
            T* out = dw + (gi * per + kc) * 9;
            for (std::size_t i = 0; i < 3; ++i)
            {
                out[3 * i] = h[i][0] + h[i][1];
                out[3 * i + 1] = h[i][3] + h[i][4];
                out[3 * i + 2] = h[i][1] + h[i][2];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tile transforms of one plane
//
// Each works on all p.tiles() tiles of a plane at once: a per-tile pass that gathers from (or
// scatters into) the plane does one 1-D transform, and the other runs as loops over the tiles
// between arrays laid side by side in `tmp` (25 * p.tiles() elements), five restrict streams in
// and five out, which gcc vectorises.

/// o_i[t] = (B^T (d_0[t], ..., d_4[t]))_i for t < n.
template <class T>
inline void bt5_streams(const T* __restrict d0, const T* __restrict d1, const T* __restrict d2,
                        const T* __restrict d3, const T* __restrict d4, T* __restrict o0, T* __restrict o1,
                        T* __restrict o2, T* __restrict o3, T* __restrict o4, std::size_t n)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        o0[t] = d0[t] - d2[t];
        o1[t] = d2[t];
        o2[t] = d4[t] - d2[t];
        o3[t] = d1[t];
        o4[t] = d3[t];
    }
}

/// o_i[t] = (B (q_0[t], ..., q_4[t]))_i for t < n.
template <class T>
inline void b5_streams(const T* __restrict q0, const T* __restrict q1, const T* __restrict q2,
                       const T* __restrict q3, const T* __restrict q4, T* __restrict o0, T* __restrict o1,
                       T* __restrict o2, T* __restrict o3, T* __restrict o4, std::size_t n)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        o0[t] = q0[t];
        o1[t] = q3[t];
        o2[t] = q1[t] - q0[t] - q2[t];
        o3[t] = q4[t];
        o4[t] = q2[t];
    }
}

/// o_i[t] = (A (d_0[t], d_1[t]))_i = (d0, d0 + d1, d1, d0, d1)_i for t < n.
template <class T>
inline void a5_streams(const T* __restrict d0, const T* __restrict d1, T* __restrict o0, T* __restrict o1,
                       T* __restrict o2, T* __restrict o3, T* __restrict o4, std::size_t n)
{
    for (std::size_t t = 0; t < n; ++t)
    {
        o0[t] = d0[t];
        o1[t] = d0[t] + d1[t];
        o2[t] = d1[t];
        o3[t] = d0[t];
        o4[t] = d1[t];
    }
}

/// o_0[t] = m_0 + m_1 + m_3, o_1[t] = m_1 + m_2 + m_4 (A^T m) for t < n, plus `bias`.
template <class T>
inline void at5_streams(const T* __restrict m0, const T* __restrict m1, const T* __restrict m2,
                        const T* __restrict m3, const T* __restrict m4, T* __restrict o0, T* __restrict o1,
                        std::size_t n, T bias = T(0))
{
    for (std::size_t t = 0; t < n; ++t)
    {
        o0[t] = m0[t] + m1[t] + m3[t] + bias;
        o1[t] = m1[t] + m2[t] + m4[t] + bias;
    }
}

/// v[xi * vs + t] = (B^T D_t B)[xi] for the p.tiles() tiles of one zero-padded plane `pad`.
template <class T>
void input_tiles(const T* pad, const Plan& p, T* v, std::size_t vs, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(5 b + a) n + t] = (B^T row a of tile t)[b]
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t a = 0; a < 5; ++a)
        {
            const T* row = pad + (4 * ti + a) * p.wp;
            for (std::size_t tj = 0; tj < p.tw; ++tj)
            {
                const T* d = row + 4 * tj;
                T o[5];
                bt5(d[0], d[1], d[2], d[3], d[4], o);
                for (std::size_t b = 0; b < 5; ++b)
                {
                    tmp[(5 * b + a) * n + ti * p.tw + tj] = o[b];
                }
            }
        }
    }
    for (std::size_t b = 0; b < 5; ++b)
    {
        const T* c = tmp + 5 * b * n;
        bt5_streams(c, c + n, c + 2 * n, c + 3 * n, c + 4 * n, v + b * vs, v + (5 + b) * vs,
                    v + (10 + b) * vs, v + (15 + b) * vs, v + (20 + b) * vs, n);
    }
}

/// y (one Ho x Wo plane) = A^T M_t A + bias for every tile t of m (m[xi * ms + t]), cropped.
template <class T>
void output_plane(const T* m, std::size_t ms, const Plan& p, const Geometry& g, T bias, T* y, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(2 b + i) n + t] = (A^T column b of M_t)[i], then tmp[(10 + 2 j + i) n + t] = Y_t[i][j]
    for (std::size_t b = 0; b < 5; ++b)
    {
        at5_streams(m + b * ms, m + (5 + b) * ms, m + (10 + b) * ms, m + (15 + b) * ms, m + (20 + b) * ms,
                    tmp + 2 * b * n, tmp + (2 * b + 1) * n, n);
    }
    for (std::size_t i = 0; i < 2; ++i)
    {
        at5_streams(tmp + i * n, tmp + (2 + i) * n, tmp + (4 + i) * n, tmp + (6 + i) * n, tmp + (8 + i) * n,
                    tmp + (10 + i) * n, tmp + (12 + i) * n, n, bias);
    }
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t i = 0; i < 2 && 2 * ti + i < g.ho; ++i)
        {
            T* out = y + (2 * ti + i) * g.wo;
            const T* y0 = tmp + (10 + i) * n + ti * p.tw;
            const T* y1 = tmp + (12 + i) * n + ti * p.tw;
            for (std::size_t tj = 0; tj < g.wo / 2; ++tj)
            {
                out[2 * tj] = y0[tj];
                out[2 * tj + 1] = y1[tj];
            }
            if (g.wo % 2 != 0)
            {
                out[g.wo - 1] = y0[p.tw - 1];
            }
        }
    }
}

/// z[xi * zs + t] = (A dY_t A^T)[xi] for every tile of one Ho x Wo plane of dY (zero outside).
template <class T>
void grad_output_tiles(const T* dy, const Plan& p, const Geometry& g, T* z, std::size_t zs, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(2 i + j) n + t] = dY_t[i][j]
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t i = 0; i < 2; ++i)
        {
            T* d0 = tmp + 2 * i * n + ti * p.tw;
            T* d1 = tmp + (2 * i + 1) * n + ti * p.tw;
            if (2 * ti + i >= g.ho)
            {
                std::fill(d0, d0 + p.tw, T(0));
                std::fill(d1, d1 + p.tw, T(0));
                continue;
            }
            const T* row = dy + (2 * ti + i) * g.wo;
            for (std::size_t tj = 0; tj < g.wo / 2; ++tj)
            {
                d0[tj] = row[2 * tj];
                d1[tj] = row[2 * tj + 1];
            }
            if (g.wo % 2 != 0)
            {
                d0[p.tw - 1] = row[g.wo - 1];
                d1[p.tw - 1] = T(0);
            }
        }
    }
    // tmp[(4 + 2 a + j) n + t] = (A column j of dY_t)[a], then A along each row a into z
    for (std::size_t j = 0; j < 2; ++j)
    {
        a5_streams(tmp + j * n, tmp + (2 + j) * n, tmp + (4 + j) * n, tmp + (6 + j) * n, tmp + (8 + j) * n,
                   tmp + (10 + j) * n, tmp + (12 + j) * n, n);
    }
    for (std::size_t a = 0; a < 5; ++a)
    {
        T* out = z + 5 * a * zs;
        a5_streams(tmp + (4 + 2 * a) * n, tmp + (5 + 2 * a) * n, out, out + zs, out + 2 * zs, out + 3 * zs,
                   out + 4 * zs, n);
    }
}

/// dx (one H x W plane, overwritten) = the sum of B Q_t B^T over the tiles of q (q[xi * qs + t])
/// at their places in the zero-padded plane `pad` (p.plane() elements, used as work space),
/// cropped to x.
template <class T>
void input_grad_plane(const T* q, std::size_t qs, const Plan& p, const Geometry& g, T* pad, T* dx, T* tmp)
{
    const std::size_t n = p.tiles();
    // tmp[(5 a + b) n + t] = (B column b of Q_t)[a]
    for (std::size_t b = 0; b < 5; ++b)
    {
        b5_streams(q + b * qs, q + (5 + b) * qs, q + (10 + b) * qs, q + (15 + b) * qs, q + (20 + b) * qs,
                   tmp + b * n, tmp + (5 + b) * n, tmp + (10 + b) * n, tmp + (15 + b) * n, tmp + (20 + b) * n,
                   n);
    }
    std::fill(pad, pad + p.plane(), T(0));
    for (std::size_t ti = 0; ti < p.th; ++ti)
    {
        for (std::size_t a = 0; a < 5; ++a)
        {
            T* row = pad + (4 * ti + a) * p.wp;
            const T* c = tmp + 5 * a * n + ti * p.tw;
            for (std::size_t tj = 0; tj < p.tw; ++tj)
            {
                const T r[5] = {c[tj], c[n + tj], c[2 * n + tj], c[3 * n + tj], c[4 * n + tj]};
                T o[5];
                b5(r, o);
                T* d = row + 4 * tj;
                for (std::size_t b = 0; b < 5; ++b)
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
template <class T>
void pad_plane(const T* x, const Geometry& g, const Plan& p, T* pad)
{
    const auto ph = static_cast<std::size_t>(g.ph), pw = static_cast<std::size_t>(g.pw);
    for (std::size_t r = 0; r < g.h; ++r)
    {
        copy_short(pad + (ph + r) * p.wp + pw, x + r * g.w, g.w);
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers and blocks

/// One thread's buffers for one kernel call: two sets of 25 tile matrices, a zero-padded plane
/// (its border zero), the tile transforms' work space and gemm_nt's.
template <class T>
struct Buffers
{
    T* first = nullptr;  ///< V (forward) or Z (backward): 25 x first_rows x tiles
    T* second = nullptr; ///< M (forward), the input-gradient tiles or V (backward)
    T* pad = nullptr;
    T* tmp = nullptr; ///< the tile transforms' work space: 25 x p.tiles()
    T* work = nullptr;

    Buffers(const Plan& p, std::size_t block, std::size_t first_rows, std::size_t second_rows,
            std::size_t work_size = 0)
    {
        const std::size_t tiles = block * p.tiles();
        const std::size_t a = positions * matrix_stride(first_rows, tiles),
                          b = positions * matrix_stride(second_rows, tiles);
        first = scratch<T>(a + b + p.plane() + positions * p.tiles() + work_size);
        second = first + a;
        pad = second + b;
        tmp = pad + p.plane();
        work = tmp + positions * p.tiles();
        std::fill(pad, pad + p.plane(), T(0));
    }
};

/// V of images [n0, n0 + nt), group gi.
template <class T>
void input_block(const T* x, const Geometry& g, const Plan& p, std::size_t n0, std::size_t nt, std::size_t gi,
                 T* pad, T* v, T* tmp)
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

/// Elements of the V matrices of one block and group.
inline std::size_t v_block_size(const Geometry& g, const Plan& p)
{
    return positions * matrix_stride(g.cg, images_per_block(g, p) * p.tiles());
}

/// Elements of the V matrices of the whole batch, kept by forward() for backward() (dW).
inline std::size_t saved_input_size(const Geometry& g)
{
    const Plan p(g);
    const std::size_t block = images_per_block(g, p);
    return (g.n + block - 1) / block * g.groups * v_block_size(g, p);
}

// ---------------------------------------------------------------------------------------------
// The three products

/// y = conv(x, w) + b, threaded over blocks of images; b may be null. With `saved_v`
/// (saved_input_size(g) elements) V is built there for backward() to reuse.
template <class T>
void forward(const T* x, const T* w, const T* b, const Geometry& g, T* y, T* saved_v = nullptr)
{
    const Plan p(g);
    T* u = scratch<T, 1>(g.groups * positions * g.kg * g.cg);
    transform_weights(w, g, u, parallel_batch(g));
    const std::size_t block = images_per_block(g, p), blocks = (g.n + block - 1) / block;
    const std::size_t vbs = v_block_size(g, p);
    for_each_index(
      parallel_batch(g), blocks, [&] { return Buffers<T>(p, block, g.cg, g.kg); },
      [&](const Buffers<T>& buf, std::size_t bi)
      {
          const std::size_t n0 = bi * block, nt = std::min(block, g.n - n0), tiles = nt * p.tiles();
          const std::size_t ms = matrix_stride(g.kg, tiles);
          for (std::size_t gi = 0; gi < g.groups; ++gi)
          {
              T* v = saved_v != nullptr ? saved_v + (bi * g.groups + gi) * vbs : buf.first;
              input_block(x, g, p, n0, nt, gi, buf.pad, v, buf.tmp);
              for (std::size_t xi = 0; xi < positions; ++xi)
              {
                  checked_gemm(false, false, g.kg, tiles, g.cg, u + (gi * positions + xi) * g.kg * g.cg, g.cg,
                               v + xi * matrix_stride(g.cg, tiles), tiles, T(0), buf.second + xi * ms, tiles);
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
///     dw = G^T [sum over tiles of Z . V] G   (needs x, or the V that forward() saved)
///     db = the sum of dY over images and pixels
///
/// Z = A dY A^T is built once per block and feeds both. dw and db are summed in a fixed number of
/// chunks and added in chunk order, so they do not depend on the number of threads.
template <class T>
void backward(const T* dy, const T* x, const T* w, const Geometry& g, T* dx, T* dw,
              const T* saved_v = nullptr, T* db = nullptr)
{
    const Plan p(g);
    T* u = dx != nullptr ? scratch<T, 1>(g.groups * positions * g.kg * g.cg) : nullptr;
    if (dx != nullptr)
    {
        transform_weights(w, g, u, parallel_batch(g));
    }
    const std::size_t block = images_per_block(g, p), blocks = (g.n + block - 1) / block;
    const std::size_t vbs = v_block_size(g, p), size = g.groups * positions * g.kg * g.cg;
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
                      for (std::size_t xi = 0; xi < positions; ++xi)
                      {
                          checked_gemm(true, false, g.cg, tiles, g.kg,
                                       u + (gi * positions + xi) * g.kg * g.cg, g.cg, buf.first + xi * zs,
                                       tiles, T(0), buf.second + xi * cs, tiles);
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
                      const T* v = buf.second;
                      if (saved_v != nullptr)
                      {
                          v = saved_v + (bi * g.groups + gi) * vbs;
                      }
                      else
                      {
                          // the pad's border must be zero again after input_grad_plane used it whole
                          std::fill(buf.pad, buf.pad + p.plane(), T(0));
                          input_block(x, g, p, n0, nt, gi, buf.pad, buf.second, buf.tmp);
                      }
                      T* acc = partial + chunk * stride + gi * positions * g.kg * g.cg;
                      for (std::size_t xi = 0; xi < positions; ++xi)
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

} // namespace tapegrad::detail::conv::winograd_s2
