#pragma once
/// @file init.hpp
/// Weight initialisation, in place, driven by a seeded Generator (PyTorch's torch.nn.init).
/// Random initialisation breaks the symmetry between filters: filters that start equal receive
/// equal gradients and stay equal (seed 004).
///
/// Fans of a weight [out, in, kh, kw] (or [out, in]): fan_in = in*kh*kw, fan_out = out*kh*kw.

#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/autograd/tensor.hpp>

namespace tapegrad::nn::init
{

enum class FanMode
{
    fan_in,
    fan_out
};

enum class Nonlinearity
{
    linear,
    relu,
    leaky_relu,
    tanh,
    sigmoid
};

/// The recommended gain for a nonlinearity (leaky_relu uses negative slope `a`).
double calculate_gain(Nonlinearity nl, double a = 0.0);
/// fan_in and fan_out of a weight tensor of rank >= 2. Throws ValueError for rank < 2.
std::pair<double, double> fans(const Tensor& w);

/// U(lo, hi).
void uniform_(Tensor& t, double lo, double hi, Generator& gen);
/// N(mean, std^2).
void normal_(Tensor& t, double mean, double std, Generator& gen);
void zeros_(Tensor& t);
void constant_(Tensor& t, double value);
/// U(-b, b) with b = gain * sqrt(3 / fan). PyTorch's layer default is a = sqrt(5), leaky_relu.
void kaiming_uniform_(Tensor& t, Generator& gen, double a = 0.0, FanMode mode = FanMode::fan_in,
                      Nonlinearity nl = Nonlinearity::leaky_relu);
/// N(0, std^2) with std = gain / sqrt(fan).
void kaiming_normal_(Tensor& t, Generator& gen, double a = 0.0, FanMode mode = FanMode::fan_in,
                     Nonlinearity nl = Nonlinearity::leaky_relu);
/// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, Generator& gen, double gain = 1.0);
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor& t, Generator& gen, double gain = 1.0);

} // namespace tapegrad::nn::init
