#include <tapegrad/nn/init.hpp>

#include <cmath>

namespace tapegrad::nn::init
{

double calculate_gain(Nonlinearity nl, double a)
{
    switch (nl)
    {
        case Nonlinearity::linear:
        case Nonlinearity::sigmoid:
            return 1.0;
        case Nonlinearity::relu:
            return std::sqrt(2.0);
        case Nonlinearity::leaky_relu:
            return std::sqrt(2.0 / (1.0 + a * a));
        case Nonlinearity::tanh:
            return 5.0 / 3.0;
    }
    return 1.0;
}

std::pair<double, double> fans(const Tensor& w)
{
    const Shape s = w.shape();
    if (s.size() < 2)
    {
        throw ValueError(
          detail::cat("nn::init: fan in and fan out need a tensor of rank >= 2, got shape ", shape_str(s)));
    }
    double receptive = 1.0;
    for (std::size_t i = 2; i < s.size(); ++i)
    {
        receptive *= static_cast<double>(s[i]);
    }
    return {static_cast<double>(s[1]) * receptive, static_cast<double>(s[0]) * receptive};
}

void uniform_(Tensor& t, double lo, double hi, Generator& gen)
{
    for (auto& v : t.mutable_value())
    {
        v = static_cast<float>(gen.uniform(lo, hi));
    }
}

void normal_(Tensor& t, double mean, double std, Generator& gen)
{
    for (auto& v : t.mutable_value())
    {
        v = static_cast<float>(mean + std * gen.normal());
    }
}

void zeros_(Tensor& t)
{
    constant_(t, 0.0);
}

void constant_(Tensor& t, double value)
{
    auto& v = t.mutable_value();
    std::fill(v.begin(), v.end(), static_cast<float>(value));
}

namespace
{
double fan(const Tensor& t, FanMode mode)
{
    const auto [in, out] = fans(t);
    return mode == FanMode::fan_in ? in : out;
}
} // namespace

void kaiming_uniform_(Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nl)
{
    const double bound = calculate_gain(nl, a) * std::sqrt(3.0 / fan(t, mode));
    uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nl)
{
    normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(fan(t, mode)), gen);
}

void xavier_uniform_(Tensor& t, Generator& gen, double gain)
{
    const auto [in, out] = fans(t);
    const double bound = gain * std::sqrt(6.0 / (in + out));
    uniform_(t, -bound, bound, gen);
}

void xavier_normal_(Tensor& t, Generator& gen, double gain)
{
    const auto [in, out] = fans(t);
    normal_(t, 0.0, gain * std::sqrt(2.0 / (in + out)), gen);
}

} // namespace tapegrad::nn::init
