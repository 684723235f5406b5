#include <tapegrad/optim/scheduler.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tapegrad::optim
{

StepLR::StepLR(Optimizer& opt, std::int64_t step_size, double gamma)
  : opt_(opt)
  , base_lr_(opt.lr())
  , step_size_(step_size)
  , gamma_(gamma)
{
    if (step_size < 1)
    {
        throw ValueError(detail::cat("optim::StepLR: step_size must be >= 1, got ", step_size));
    }
}

void StepLR::step()
{
    ++epoch_;
    opt_.set_lr(base_lr_ * std::pow(gamma_, static_cast<double>(epoch_ / step_size_)));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, std::int64_t t_max, double eta_min)
  : opt_(opt)
  , base_lr_(opt.lr())
  , t_max_(t_max)
  , eta_min_(eta_min)
{
    if (t_max < 1)
    {
        throw ValueError(detail::cat("optim::CosineAnnealingLR: t_max must be >= 1, got ", t_max));
    }
}

void CosineAnnealingLR::step()
{
    ++epoch_;
    const double e = static_cast<double>(std::min(epoch_, t_max_));
    opt_.set_lr(eta_min_ + (base_lr_ - eta_min_) *
                             (1.0 + std::cos(std::numbers::pi * e / static_cast<double>(t_max_))) / 2.0);
}

} // namespace tapegrad::optim
