#pragma once
/// @file module.hpp
/// nn::Module, the base of every layer, and nn::Sequential. Modules are float32 (tg::Tensor).
///
/// Parameters are tensor handles: parameters() returns handles sharing the module's values and
/// gradients, so an optimiser holding them updates the module. Names follow PyTorch's state_dict:
/// a Sequential's children are "0", "1", ... and a parameter is "<child>.<name>", e.g. "0.weight".

#include <tapegrad/autograd/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace tapegrad::nn
{

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// How a layer moves a spatial window, for receptive-field bookkeeping in summary().
struct Window
{
    std::int64_t kernel_h = 1, kernel_w = 1;
    std::int64_t stride_h = 1, stride_w = 1;
    std::int64_t dilation_h = 1, dilation_w = 1;
    /// True for layers after which every output sees the whole input (Flatten, Linear).
    bool global = false;
};

class Module
{
  public:
    virtual ~Module() = default;

    /// The layer's computation. Records on the tape like any op.
    virtual Tensor forward(const Tensor& x) = 0;
    Tensor operator()(const Tensor& x) { return forward(x); }

    /// Short type name, e.g. "Conv2d".
    virtual std::string type_name() const = 0;
    /// Type and hyper-parameters, e.g. "Conv2d(1, 32, kernel_size=3, padding=1)".
    virtual std::string repr() const { return type_name() + "()"; }
    /// Output shape for `input`, computed without running the layer. Throws as forward would.
    virtual Shape output_shape(const Shape& input) const = 0;
    /// Floating-point operations of one forward pass on `input` (a multiply-add counts 2).
    virtual std::uint64_t flops(const Shape& input) const;
    /// Spatial window of the layer (identity for pointwise layers).
    virtual Window window() const { return {}; }

    /// Every parameter, depth first, in registration order.
    std::vector<Tensor> parameters() const;
    /// Parameters with state_dict names ("0.weight", ...).
    NamedTensors named_parameters() const;
    /// Number of parameter elements.
    std::size_t parameter_count() const;
    /// Training mode (Dropout active) or evaluation mode, for this module and its children.
    void train(bool on = true);
    void eval() { train(false); }
    bool is_training() const noexcept { return training_; }
    /// zero_grad() on every parameter.
    void zero_grad();

    using Children = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;
    const Children& children() const noexcept { return children_; }

  protected:
    /// Adds a parameter (made a leaf requiring grad) and returns the stored handle.
    Tensor& register_parameter(std::string name, Tensor t);
    void register_module(std::string name, std::shared_ptr<Module> m);

  private:
    void collect(const std::string& prefix, NamedTensors& out) const;

    NamedTensors params_;
    Children children_;
    bool training_ = true;
};

/// Runs its children in order: Sequential(Conv2d(...), ReLU(), ...).
class Sequential : public Module
{
  public:
    Sequential() = default;
    template <class... Ms>
    requires(sizeof...(Ms) > 0 &&
             (std::is_base_of_v<Module, std::decay_t<Ms>> && ...)) explicit Sequential(Ms&&... modules)
    {
        (push_back(std::forward<Ms>(modules)), ...);
    }

    /// Appends a copy (or move) of `m`; its name is its position.
    template <class M>
    requires std::is_base_of_v<Module, std::decay_t<M>> Sequential& push_back(M&& m)
    {
        return push_back(std::shared_ptr<Module>(std::make_shared<std::decay_t<M>>(std::forward<M>(m))));
    }
    Sequential& push_back(std::shared_ptr<Module> m);

    std::size_t size() const noexcept { return children().size(); }
    Module& operator[](std::size_t i) const;

    Tensor forward(const Tensor& x) override;
    std::string type_name() const override { return "Sequential"; }
    std::string repr() const override;
    Shape output_shape(const Shape& input) const override;
    std::uint64_t flops(const Shape& input) const override;
};

} // namespace tapegrad::nn
