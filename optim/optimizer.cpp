#include <tapegrad/autograd/grad_mode.hpp>
#include <tapegrad/optim/optimizer.hpp>

#include <cmath>

namespace tapegrad::optim
{

namespace
{
void require_non_negative(const char* opt, const char* what, double v)
{
    if (!(v >= 0.0) || !std::isfinite(v))
    {
        throw ValueError(detail::cat("optim::", opt, ": ", what, " must be a finite value >= 0, got ", v));
    }
}

std::vector<Tensor> zeros_like_all(const std::vector<Tensor>& params)
{
    std::vector<Tensor> out;
    out.reserve(params.size());
    for (const auto& p : params)
    {
        out.push_back(zeros(p.shape()));
    }
    return out;
}

/// update(j) for every j in [0, n): threaded when n is large enough to pay for an OpenMP region.
/// Small parameters skip the region entirely (even `parallel for if(false)` builds a team, about a
/// microsecond per parameter per step).
template <class Update>
void for_each_element(std::size_t n, Update update)
{
    if (n < (std::size_t{1} << 16))
    {
        for (std::size_t j = 0; j < n; ++j)
        {
            update(j);
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (std::size_t j = 0; j < n; ++j)
    {
        update(j);
    }
}
} // namespace

Optimizer::Optimizer(std::vector<Tensor> params, double lr)
  : params_(std::move(params))
  , lr_(lr)
{
    require_non_negative("Optimizer", "lr", lr);
    for (std::size_t i = 0; i < params_.size(); ++i)
    {
        if (!params_[i].defined() || !params_[i].is_leaf())
        {
            throw ValueError(detail::cat("optim: parameter ", i,
                                         " is undefined or not a leaf; optimisers update leaf tensors"));
        }
    }
}

void Optimizer::zero_grad()
{
    for (auto& p : params_)
    {
        p.zero_grad();
    }
}

void Optimizer::set_lr(double lr)
{
    require_non_negative("Optimizer", "lr", lr);
    lr_ = lr;
}

StateDict Optimizer::state_dict() const
{
    StateDict out;
    out.emplace_back("steps", full<float>({1}, static_cast<float>(steps_)));
    for (const auto& [name, buffers] : buffers_)
    {
        for (std::size_t i = 0; i < buffers->size(); ++i)
        {
            out.emplace_back(std::to_string(i) + "." + name, (*buffers)[i].clone());
        }
    }
    return out;
}

void Optimizer::load_state_dict(const StateDict& state)
{
    std::size_t expected = 1;
    for (const auto& [name, buffers] : buffers_)
    {
        expected += buffers->size();
    }
    if (state.size() != expected || state.empty() || state[0].first != "steps")
    {
        throw ValueError(
          detail::cat("optim: state has ", state.size(), " entries, this optimiser expects ", expected));
    }
    std::size_t k = 1;
    for (const auto& [name, buffers] : buffers_)
    {
        for (std::size_t i = 0; i < buffers->size(); ++i, ++k)
        {
            const std::string want = std::to_string(i) + "." + name;
            if (state[k].first != want || state[k].second.shape() != params_[i].shape())
            {
                throw ValueError(detail::cat("optim: state entry '", state[k].first, "' of shape ",
                                             shape_str(state[k].second.shape()), " does not match '", want,
                                             "' of shape ", shape_str(params_[i].shape())));
            }
        }
    }
    k = 1;
    for (const auto& [name, buffers] : buffers_)
    {
        for (std::size_t i = 0; i < buffers->size(); ++i, ++k)
        {
            (*buffers)[i] = state[k].second.clone();
        }
    }
    steps_ = static_cast<std::int64_t>(state[0].second.item());
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
  : Optimizer(std::move(params), options.lr)
  , options_(options)
{
    require_non_negative("SGD", "momentum", options.momentum);
    require_non_negative("SGD", "weight_decay", options.weight_decay);
    require_non_negative("SGD", "dampening", options.dampening);
    if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0))
    {
        throw ValueError("optim::SGD: nesterov needs momentum > 0 and dampening 0");
    }
    if (options.momentum > 0.0)
    {
        momentum_ = zeros_like_all(params_);
        started_.assign(params_.size(), false);
        buffers_.emplace_back("momentum_buffer", &momentum_);
    }
}

void SGD::step()
{
    NoGradGuard no_grad;
    const auto lr = static_cast<float>(lr_);
    const auto mu = static_cast<float>(options_.momentum);
    const auto damp = 1.0f - static_cast<float>(options_.dampening);
    const auto wd = static_cast<float>(options_.weight_decay);
    for (std::size_t i = 0; i < params_.size(); ++i)
    {
        const Tensor g = params_[i].grad();
        if (!g.defined())
        {
            continue;
        }
        float* p = params_[i].mutable_value().data();
        const float* gp = g.value().data();
        const std::size_t n = params_[i].numel();
        float* b = mu > 0.0f ? momentum_[i].mutable_value().data() : nullptr;
        const bool first = b != nullptr && !started_[i];
        const bool nesterov = options_.nesterov;
        for_each_element(n,
                         [&](std::size_t j)
                         {
                             float d = gp[j] + wd * p[j];
                             if (b != nullptr)
                             {
                                 b[j] = first ? d : mu * b[j] + damp * d;
                                 d = nesterov ? d + mu * b[j] : b[j];
                             }
                             p[j] -= lr * d;
                         });
        if (b != nullptr)
        {
            started_[i] = true;
        }
    }
    ++steps_;
}

void SGD::load_state_dict(const StateDict& state)
{
    Optimizer::load_state_dict(state);
    started_.assign(params_.size(), steps_ > 0);
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
  : Adam(std::move(params), options, false)
{
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled)
  : Optimizer(std::move(params), options.lr)
  , options_(options)
  , decoupled_(decoupled)
{
    if (!(options.beta1 >= 0.0 && options.beta1 < 1.0 && options.beta2 >= 0.0 && options.beta2 < 1.0))
    {
        throw ValueError(detail::cat("optim::Adam: betas must be in [0, 1), got (", options.beta1, ", ",
                                     options.beta2, ")"));
    }
    require_non_negative("Adam", "eps", options.eps);
    require_non_negative("Adam", "weight_decay", options.weight_decay);
    m_ = zeros_like_all(params_);
    v_ = zeros_like_all(params_);
    buffers_.emplace_back("exp_avg", &m_);
    buffers_.emplace_back("exp_avg_sq", &v_);
}

void Adam::step()
{
    NoGradGuard no_grad;
    ++steps_;
    const double t = static_cast<double>(steps_);
    const auto b1 = static_cast<float>(options_.beta1);
    const auto b2 = static_cast<float>(options_.beta2);
    const auto step_size = static_cast<float>(lr_ / (1.0 - std::pow(options_.beta1, t)));
    const auto bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t)));
    const auto eps = static_cast<float>(options_.eps);
    const auto wd = static_cast<float>(options_.weight_decay);
    const auto lr = static_cast<float>(lr_);
    const bool decoupled = decoupled_;
    for (std::size_t i = 0; i < params_.size(); ++i)
    {
        const Tensor g = params_[i].grad();
        if (!g.defined())
        {
            continue;
        }
        float* p = params_[i].mutable_value().data();
        const float* gp = g.value().data();
        float* m = m_[i].mutable_value().data();
        float* v = v_[i].mutable_value().data();
        const std::size_t n = params_[i].numel();
        for_each_element(n,
                         [&](std::size_t j)
                         {
                             float gj = gp[j];
                             if (decoupled)
                             {
                                 p[j] -= lr * wd * p[j];
                             }
                             else
                             {
                                 gj += wd * p[j];
                             }
                             m[j] = b1 * m[j] + (1.0f - b1) * gj;
                             v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
                             p[j] -= step_size * m[j] / (std::sqrt(v[j]) / bias2_sqrt + eps);
                         });
    }
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options)
  : Adam(std::move(params), options, true)
{
}

} // namespace tapegrad::optim
