// The README's first program, built with the examples so that it keeps compiling.
#include <tapegrad/tapegrad.hpp>
namespace tg = tapegrad;

int main()
{
    tg::Generator gen(42);
    tg::nn::Sequential model(
      tg::nn::Conv2d(1, 32, 3, {.padding = 1}, gen), tg::nn::ReLU(), tg::nn::MaxPool2d(2),
      tg::nn::Conv2d(32, 64, 3, {.padding = 1}, gen), tg::nn::ReLU(), tg::nn::MaxPool2d(2), tg::nn::Flatten(),
      tg::nn::Linear(64 * 7 * 7, 128, gen), tg::nn::ReLU(), tg::nn::Linear(128, 10, gen));
    tg::optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.9});

    auto train = tg::data::load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                                    "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
    for (auto [images, labels] : tg::data::DataLoader(train, {.batch_size = 64, .shuffle = true}, gen))
    {
        opt.zero_grad();
        tg::Tensor loss = tg::cross_entropy(model(images), labels);
        loss.backward();
        opt.step();
    }
    tg::nn::save(model, "model.safetensors");
}
