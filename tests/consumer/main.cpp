// Trains y = 2x + 1 with a Linear layer: proves the headers, the library and its dependencies
// all arrive through the consumer's CMake.
#include <tapegrad/tapegrad.hpp>

#include <iostream>

namespace tg = tapegrad;

int main()
{
    tg::Generator gen(1);
    tg::nn::Linear fit(1, 1, gen);
    tg::optim::SGD sgd(fit.parameters(), {.lr = 0.1});
    auto x = tg::from_vector<float>({-1.f, 0.f, 1.f, 2.f}, {4, 1});
    auto y = tg::from_vector<float>({-1.f, 1.f, 3.f, 5.f}, {4, 1});
    for (int i = 0; i < 300; ++i)
    {
        sgd.zero_grad();
        auto loss = tg::mse_loss(fit(x), y);
        loss.backward();
        sgd.step();
    }
    const float w = fit.weight().value()(0, 0);
    const float b = fit.bias().value()(0);
    std::cout << "w " << w << " b " << b << "\n";
    return std::abs(w - 2.f) < 1e-3f && std::abs(b - 1.f) < 1e-3f ? 0 : 1;
}
