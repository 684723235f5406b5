// Seed 002, literally: the simple CNN's gradients are the lecture's formulas, and they agree with
// finite differences.
//
//   X -> conv(W1, B1) -> Z1 -> relu -> A1 -> maxpool 2x2/2 -> P1 -> flatten -> F
//     -> F W2^T + B2 -> Z2 -> sigmoid -> A2 -> BCE(A2, Y) -> L

#include "support/support.hpp"

namespace tg = tapegrad;

namespace
{
struct Net
{
    tg::Tensor64 x, w1, b1, w2, b2, y;
};

Net make_net()
{
    tg::Generator gen(21);
    Net n;
    // Distinct pixels (no pooling ties) and a filter with no conv output near 0 (no relu kinks).
    n.x = tg::test::distinct({1, 1, 6, 6}, gen, 0.0, 1.0, false);
    n.w1 = tg::from_vector<double>({0.5, -0.3, 0.8, -0.6, 0.9, 0.2, 0.4, -0.7, 0.6}, {1, 1, 3, 3}, true);
    n.b1 = tg::from_vector<double>({-0.35}, {1}, true);
    n.w2 = tg::from_vector<double>({0.7, -0.4, 0.3, -0.9}, {1, 4}, true);
    n.b2 = tg::from_vector<double>({0.1}, {1}, true);
    n.y = tg::from_vector<double>({1.0}, {1});
    return n;
}

/// Z1 -> L, so that dL/dZ1 can be read off a leaf.
tg::Tensor64 head(const tg::Tensor64& z1, const Net& n, tg::Tensor64* f_out = nullptr,
                  tg::Tensor64* a2_out = nullptr)
{
    auto f = tg::flatten(tg::max_pool2d(tg::relu(z1), {.kernel = 2}));
    auto a2 = tg::sigmoid(tg::flatten(tg::linear(f, n.w2, n.b2), 0));
    if (f_out != nullptr)
    {
        *f_out = f;
    }
    if (a2_out != nullptr)
    {
        *a2_out = a2;
    }
    return tg::binary_cross_entropy(a2, n.y);
}
} // namespace

TEST_CASE("seed 002: the simple CNN's gradients are the lecture's formulas", "[seed002]")
{
    Net n = make_net();
    tg::Tensor64 f, a2;
    auto z1 = tg::conv2d(n.x, n.w1, n.b1);
    REQUIRE(z1.shape() == tg::Shape{1, 1, 4, 4});
    for (double v : z1.value())
    {
        REQUIRE(std::abs(v) > 1e-3); // no relu kink in this example
    }
    auto loss = head(z1, n, &f, &a2);
    loss.backward();

    // dL/dW2 = (A2 - Y) F^T and dL/dB2 = A2 - Y
    const double delta = a2.item() - n.y.item();
    for (std::size_t j = 0; j < 4; ++j)
    {
        REQUIRE(n.w2.grad().value()(0, j) == Approx(delta * f.value()(0, j)).epsilon(1e-12));
    }
    REQUIRE(n.b2.grad().item() == Approx(delta).epsilon(1e-12));

    // dL/dZ1, read off a leaf holding Z1's values.
    tg::Tensor64 z1_leaf(xt::xarray<double>(z1.value()), true);
    head(z1_leaf, n).backward();
    const auto& dz1 = z1_leaf.grad().value();
    // Max pooling routes to one element per window and relu masks: at most 4 non-zeros.
    std::size_t nonzero = 0;
    double sum_dz1 = 0.0;
    for (double v : dz1)
    {
        nonzero += v != 0.0;
        sum_dz1 += v;
    }
    REQUIRE(nonzero <= 4);
    REQUIRE(nonzero >= 1);

    // dL/dB1 = sum of dL/dZ1
    REQUIRE(n.b1.grad().item() == Approx(sum_dz1).epsilon(1e-12));
    // dL/dW1 = conv(X, dL/dZ1): the correlation of the input with the upstream gradient
    const auto dw1 = tg::conv2d(n.x, tg::Tensor64(xt::xarray<double>(dz1)));
    REQUIRE(dw1.shape() == tg::Shape{1, 1, 3, 3});
    for (std::size_t i = 0; i < 9; ++i)
    {
        REQUIRE(n.w1.grad().value().data()[i] == Approx(dw1.value().data()[i]).epsilon(1e-12));
    }
}

TEST_CASE("seed 002: all 15 parameter gradients agree with finite differences", "[seed002]")
{
    Net n = make_net();
    REQUIRE(n.w1.numel() + n.b1.numel() + n.w2.numel() + n.b2.numel() == 15);
    REQUIRE_GRADCHECK(
      [&](const std::vector<tg::Tensor64>& in)
      {
          Net m = n;
          m.w1 = in[0];
          m.b1 = in[1];
          m.w2 = in[2];
          m.b2 = in[3];
          return head(tg::conv2d(n.x, in[0], in[1]), m);
      },
      (std::vector<tg::Tensor64>{n.w1, n.b1, n.w2, n.b2}));
}
