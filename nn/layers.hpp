#pragma once
/// @file layers.hpp
/// The layers: thin modules over the functional ops, with PyTorch's default initialisation
/// (weights Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in))).

#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/nn/module.hpp>
#include <tapegrad/ops/pool2d.hpp>
#include <tapegrad/ops/window.hpp>

namespace tapegrad::nn
{

struct Conv2dOptions
{
    Size2 stride = 1;
    Size2 padding = 0;
    Size2 dilation = 1;
    std::int64_t groups = 1;
    bool bias = true;
};

/// x [N, in, H, W] -> [N, out, Ho, Wo]. Parameters: weight [out, in/groups, kh, kw], bias [out].
class Conv2d : public Module
{
  public:
    Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
           const Conv2dOptions& options, Generator& gen);
    Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size, Generator& gen)
      : Conv2d(in_channels, out_channels, kernel_size, {}, gen)
    {
    }

    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Conv2d"; }
    std::string repr() const override;
    Shape output_shape(const Shape& input) const override;
    std::uint64_t flops(const Shape& input) const override;
    Window window() const override;

    /// Handles sharing the parameters' values and gradients.
    Tensor weight() const { return weight_; }
    /// Undefined when built with bias = false.
    Tensor bias() const { return bias_; }

  private:
    std::int64_t in_, out_;
    Size2 kernel_;
    Conv2dOptions options_;
    Tensor weight_;
    Tensor bias_;
};

/// x [N, in] -> [N, out] = x W^T + b. Parameters: weight [out, in], bias [out].
class Linear : public Module
{
  public:
    Linear(std::int64_t in_features, std::int64_t out_features, Generator& gen, bool bias = true);

    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Linear"; }
    std::string repr() const override;
    Shape output_shape(const Shape& input) const override;
    std::uint64_t flops(const Shape& input) const override;
    Window window() const override { return {.global = true}; }

    Tensor weight() const { return weight_; }
    Tensor bias() const { return bias_; }

  private:
    std::int64_t in_, out_;
    Tensor weight_;
    Tensor bias_;
};

/// Shared by the three pooling layers; no parameters.
class Pool2dBase : public Module
{
  public:
    Shape output_shape(const Shape& input) const override;
    std::uint64_t flops(const Shape& input) const override;
    Window window() const override;
    std::string repr() const override;

  protected:
    explicit Pool2dBase(const Pool2dOptions& options);
    Pool2dOptions options_;
};

/// Max pooling; MaxPool2d(2) is a 2x2 window with stride 2.
class MaxPool2d : public Pool2dBase
{
  public:
    explicit MaxPool2d(Size2 kernel)
      : Pool2dBase({.kernel = kernel})
    {
    }
    explicit MaxPool2d(const Pool2dOptions& options)
      : Pool2dBase(options)
    {
    }
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "MaxPool2d"; }
};

class AvgPool2d : public Pool2dBase
{
  public:
    explicit AvgPool2d(Size2 kernel)
      : Pool2dBase({.kernel = kernel})
    {
    }
    explicit AvgPool2d(const Pool2dOptions& options)
      : Pool2dBase(options)
    {
    }
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "AvgPool2d"; }
};

class MinPool2d : public Pool2dBase
{
  public:
    explicit MinPool2d(Size2 kernel)
      : Pool2dBase({.kernel = kernel})
    {
    }
    explicit MinPool2d(const Pool2dOptions& options)
      : Pool2dBase(options)
    {
    }
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "MinPool2d"; }
};

/// [N, C, H, W] -> [N, C*H*W] (dimensions start_dim..end_dim merged).
class Flatten : public Module
{
  public:
    explicit Flatten(std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1)
      : start_(start_dim)
      , end_(end_dim)
    {
    }
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Flatten"; }
    Shape output_shape(const Shape& input) const override;
    Window window() const override { return {.global = true}; }

  private:
    std::ptrdiff_t start_, end_;
};

/// Pointwise activations.
class ReLU : public Module
{
  public:
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "ReLU"; }
    Shape output_shape(const Shape& input) const override { return input; }
    std::uint64_t flops(const Shape& input) const override;
};

class Sigmoid : public Module
{
  public:
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Sigmoid"; }
    Shape output_shape(const Shape& input) const override { return input; }
    std::uint64_t flops(const Shape& input) const override;
};

class Tanh : public Module
{
  public:
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Tanh"; }
    Shape output_shape(const Shape& input) const override { return input; }
    std::uint64_t flops(const Shape& input) const override;
};

/// Inverted dropout with probability p while training; identity in eval(). Draws its masks from
/// its own generator, seeded from `gen` at construction.
class Dropout : public Module
{
  public:
    Dropout(double p, Generator& gen);
    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Dropout"; }
    std::string repr() const override;
    Shape output_shape(const Shape& input) const override { return input; }

  private:
    double p_;
    Generator gen_;
};

} // namespace tapegrad::nn
