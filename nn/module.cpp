#include <tapegrad/nn/module.hpp>

namespace tapegrad::nn
{

std::uint64_t Module::flops(const Shape&) const
{
    return 0;
}

Tensor& Module::register_parameter(std::string name, Tensor t)
{
    t.set_requires_grad(true);
    params_.emplace_back(std::move(name), std::move(t));
    return params_.back().second;
}

void Module::register_module(std::string name, std::shared_ptr<Module> m)
{
    if (!m)
    {
        throw ValueError(detail::cat("nn::Module::register_module: child '", name, "' is null"));
    }
    m->train(training_);
    children_.emplace_back(std::move(name), std::move(m));
}

void Module::collect(const std::string& prefix, NamedTensors& out) const
{
    for (const auto& [name, t] : params_)
    {
        out.emplace_back(prefix + name, t);
    }
    for (const auto& [name, child] : children_)
    {
        child->collect(prefix + name + ".", out);
    }
}

NamedTensors Module::named_parameters() const
{
    NamedTensors out;
    collect("", out);
    return out;
}

std::vector<Tensor> Module::parameters() const
{
    std::vector<Tensor> out;
    for (auto& [name, t] : named_parameters())
    {
        out.push_back(t);
    }
    return out;
}

std::size_t Module::parameter_count() const
{
    std::size_t n = 0;
    for (const auto& t : parameters())
    {
        n += t.numel();
    }
    return n;
}

void Module::train(bool on)
{
    training_ = on;
    for (auto& [name, child] : children_)
    {
        child->train(on);
    }
}

void Module::zero_grad()
{
    for (auto& t : parameters())
    {
        t.zero_grad();
    }
}

Sequential& Sequential::push_back(std::shared_ptr<Module> m)
{
    register_module(std::to_string(size()), std::move(m));
    return *this;
}

Module& Sequential::operator[](std::size_t i) const
{
    if (i >= size())
    {
        throw IndexError(detail::cat("nn::Sequential: index ", i, " out of range for ", size(), " layers"));
    }
    return *children()[i].second;
}

Tensor Sequential::forward(const Tensor& x)
{
    Tensor h = x;
    for (const auto& [name, child] : children())
    {
        h = child->forward(h);
    }
    return h;
}

std::string Sequential::repr() const
{
    std::string s = "Sequential(\n";
    for (const auto& [name, child] : children())
    {
        s += "  (" + name + "): " + child->repr() + "\n";
    }
    return s + ")";
}

Shape Sequential::output_shape(const Shape& input) const
{
    Shape s = input;
    for (const auto& [name, child] : children())
    {
        s = child->output_shape(s);
    }
    return s;
}

std::uint64_t Sequential::flops(const Shape& input) const
{
    std::uint64_t total = 0;
    Shape s = input;
    for (const auto& [name, child] : children())
    {
        total += child->flops(s);
        s = child->output_shape(s);
    }
    return total;
}

} // namespace tapegrad::nn
