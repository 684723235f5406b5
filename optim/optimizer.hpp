#pragma once
/// @file optimizer.hpp
/// Optimisers. step() updates the parameters in place under NoGradGuard (nothing is recorded);
/// parameters without a gradient are skipped. Updates follow torch.optim's formulas.

#include <tapegrad/autograd/tensor.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tapegrad::optim
{

/// Named optimiser buffers (e.g. "3.momentum_buffer"), for checkpoints.
using StateDict = std::vector<std::pair<std::string, Tensor>>;

class Optimizer
{
  public:
    Optimizer(std::vector<Tensor> params, double lr);
    virtual ~Optimizer() = default;

    virtual void step() = 0;
    /// zero_grad() on every parameter.
    void zero_grad();

    double lr() const noexcept { return lr_; }
    void set_lr(double lr);
    const std::vector<Tensor>& params() const noexcept { return params_; }
    /// Number of step() calls so far.
    std::int64_t steps() const noexcept { return steps_; }

    /// Buffers (copies) and the step count, to save with a checkpoint.
    virtual StateDict state_dict() const;
    /// Restores what state_dict() returned. Throws ValueError naming the buffer on a mismatch and
    /// leaves the optimiser unchanged.
    virtual void load_state_dict(const StateDict& state);

  protected:
    /// Per-parameter buffers, registered by subclasses under a name ("momentum_buffer", ...).
    std::vector<std::pair<std::string, std::vector<Tensor>*>> buffers_;
    std::vector<Tensor> params_;
    double lr_;
    std::int64_t steps_ = 0;
};

struct SGDOptions
{
    double lr = 0.01;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

/// g = grad + wd*p; b = momentum*b + (1 - dampening)*g (b = g on the first step);
/// update = nesterov ? g + momentum*b : b; p -= lr*update.
class SGD : public Optimizer
{
  public:
    SGD(std::vector<Tensor> params, const SGDOptions& options);
    void step() override;
    void load_state_dict(const StateDict& state) override;
    const SGDOptions& options() const noexcept { return options_; }

  private:
    SGDOptions options_;
    std::vector<Tensor> momentum_;
    /// Whether each momentum buffer holds a value yet (it starts as the first gradient).
    std::vector<bool> started_;
};

struct AdamOptions
{
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    /// Adam: L2 added to the gradient; AdamW: decoupled decay p -= lr*wd*p.
    double weight_decay = 0.0;
};

/// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps).
class Adam : public Optimizer
{
  public:
    Adam(std::vector<Tensor> params, const AdamOptions& options);
    void step() override;

  protected:
    Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled);

  private:
    AdamOptions options_;
    bool decoupled_;
    std::vector<Tensor> m_, v_;
};

/// Adam with decoupled weight decay (default 0.01), as torch.optim.AdamW.
class AdamW : public Adam
{
  public:
    AdamW(std::vector<Tensor> params, AdamOptions options = {.weight_decay = 1e-2});
};

} // namespace tapegrad::optim
