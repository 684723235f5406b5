#pragma once
/// @file scheduler.hpp
/// Learning-rate schedules. Call step() once per epoch, after the optimiser's steps.

#include <tapegrad/optim/optimizer.hpp>

namespace tapegrad::optim
{

/// lr = base_lr * gamma^floor(epoch / step_size).
class StepLR
{
  public:
    StepLR(Optimizer& opt, std::int64_t step_size, double gamma = 0.1);
    void step();
    std::int64_t epoch() const noexcept { return epoch_; }

  private:
    Optimizer& opt_;
    double base_lr_;
    std::int64_t step_size_;
    double gamma_;
    std::int64_t epoch_ = 0;
};

/// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2, for epoch <= t_max.
class CosineAnnealingLR
{
  public:
    CosineAnnealingLR(Optimizer& opt, std::int64_t t_max, double eta_min = 0.0);
    void step();
    std::int64_t epoch() const noexcept { return epoch_; }

  private:
    Optimizer& opt_;
    double base_lr_;
    std::int64_t t_max_;
    double eta_min_;
    std::int64_t epoch_ = 0;
};

} // namespace tapegrad::optim
