// The lecture's simple CNN (seed 002), step by step, in float64:
//
//   X [1,1,6,6] -> conv 3x3 (W1, B1) -> Z1 -> ReLU -> A1 -> maxpool 2x2/2 -> P1 -> flatten -> F
//     -> linear (W2 [1,4], B2) -> Z2 -> sigmoid -> A2 -> binary cross-entropy with Y -> L
//
// It prints every intermediate, runs backward on the tape, checks the gradients against the
// lecture's formulas, and then trains the 15 parameters with SGD, printing loss and gradients.

#include <tapegrad/tapegrad.hpp>

#include <iomanip>
#include <iostream>

namespace tg = tapegrad;

namespace
{
void show(const char* name, const tg::Tensor64& t)
{
    std::cout << name << ": " << t << "\n\n";
}
} // namespace

int main(int, char** argv)
{
    tg::init_process(argv); // picks OpenBLAS's kernels for this CPU (see the README's build notes)
    std::cout << std::setprecision(6);
    tg::Generator gen(2);
    auto x = tg::from_vector<double>({0.1, 0.9, 0.2, 0.8, 0.0, 0.3, //
                                      0.7, 0.2, 0.6, 0.1, 0.5, 0.4, //
                                      0.3, 0.8, 0.1, 0.9, 0.2, 0.6, //
                                      0.9, 0.0, 0.7, 0.3, 0.8, 0.1, //
                                      0.2, 0.6, 0.4, 0.5, 0.1, 0.7, //
                                      0.5, 0.3, 0.9, 0.2, 0.6, 0.0},
                                     {1, 1, 6, 6});
    auto w1 = tg::randn64({1, 1, 3, 3}, gen, true);
    auto b1 = tg::full64({1}, 0.1, true);
    auto w2 = tg::randn64({1, 4}, gen, true);
    auto b2 = tg::zeros64({1}, true);
    auto y = tg::full64({1}, 1.0);

    auto z1 = tg::conv2d(x, w1, b1);
    auto a1 = tg::relu(z1);
    auto p1 = tg::max_pool2d(a1, {.kernel = 2});
    auto f = tg::flatten(p1);
    auto z2 = tg::linear(f, w2, b2);
    auto a2 = tg::sigmoid(tg::flatten(z2, 0));
    auto loss = tg::binary_cross_entropy(a2, y);
    show("Z1 = conv(X, W1) + B1", z1);
    show("A1 = relu(Z1)", a1);
    show("P1 = maxpool(A1)", p1);
    show("F = flatten(P1)", f);
    show("A2 = sigmoid(F W2^T + B2)", a2);
    std::cout << "L = BCE(A2, Y=1) = " << loss.item() << "\n";
    std::cout << "ops on the tape: ";
    for (const char* op : tg::current_tape().op_names())
    {
        std::cout << op << " ";
    }
    std::cout << "\n\n";

    loss.backward();
    const double delta = a2.item() - y.item(); // dL/dZ2 = A2 - Y
    show("dL/dW2 from the tape", w2.grad());
    show("(A2 - Y) F^T from the lecture", tg::Tensor64(xt::xarray<double>(delta * f.value())));
    std::cout << "dL/dB2 (tape) " << b2.grad().item() << "   A2 - Y (lecture) " << delta << "\n";
    show("dL/dW1 from the tape", w1.grad());
    std::cout << "dL/dB1 (tape) " << b1.grad().item() << "  = the sum of dL/dZ1\n\n";

    for (int step = 1; step <= 20; ++step)
    {
        for (auto* p : {&w1, &b1, &w2, &b2})
        {
            p->zero_grad();
        }
        auto a = tg::sigmoid(tg::flatten(
          tg::linear(tg::flatten(tg::max_pool2d(tg::relu(tg::conv2d(x, w1, b1)), {.kernel = 2})), w2, b2),
          0));
        auto l = tg::binary_cross_entropy(a, y);
        l.backward();
        if (step % 4 == 0 || step == 1)
        {
            std::cout << "step " << std::setw(2) << step << "  loss " << l.item() << "  |dL/dW1| "
                      << std::sqrt(xt::sum(w1.grad().value() * w1.grad().value())()) << "  dL/dB2 "
                      << b2.grad().item() << "\n";
        }
        // tg::optim works on float32 parameters; these float64 leaves are stepped by hand.
        tg::NoGradGuard no_grad;
        for (auto* p : {&w1, &b1, &w2, &b2})
        {
            p->mutable_value() -= 0.5 * p->grad().value();
        }
    }
    return 0;
}
