#include <tapegrad/nn/models.hpp>

namespace tapegrad::nn::models
{

Sequential fashion_cnn(Generator& gen, double dropout)
{
    Sequential m(Conv2d(1, 32, 3, {.padding = 1}, gen), ReLU(), MaxPool2d(2),
                 Conv2d(32, 64, 3, {.padding = 1}, gen), ReLU(), MaxPool2d(2), Flatten(),
                 Linear(64 * 7 * 7, 128, gen), ReLU());
    if (dropout > 0.0)
    {
        m.push_back(Dropout(dropout, gen));
    }
    m.push_back(Linear(128, 10, gen));
    return m;
}

Sequential lecture_net(Generator& gen)
{
    return Sequential(Conv2d(1, 1, 3, gen), ReLU(), MaxPool2d(2), Flatten(), Linear(4, 1, gen));
}

} // namespace tapegrad::nn::models
