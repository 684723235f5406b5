#include <tapegrad/nn/summary.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

namespace tapegrad::nn
{

namespace
{
struct Walker
{
    ModelSummary& out;
    Shape shape;
    std::int64_t r_h = 1, r_w = 1, j_h = 1, j_w = 1;
    bool global = false;

    void visit(const Module& m, const std::string& name)
    {
        if (!m.children().empty() && m.type_name() == "Sequential")
        {
            for (const auto& [child_name, child] : m.children())
            {
                visit(*child, name.empty() ? child_name : name + "." + child_name);
            }
            return;
        }
        LayerSummary row;
        row.name = name.empty() ? m.type_name() : name;
        row.description = m.repr();
        try
        {
            row.flops = m.flops(shape);
            row.output_shape = m.output_shape(shape);
        }
        catch (const Error& e)
        {
            throw ShapeError(detail::cat("nn::summary: layer ", row.name, " (", row.description,
                                         ") rejects input shape ", shape_str(shape), ": ", e.what()));
        }
        const Window w = m.window();
        if (w.global)
        {
            global = true;
        }
        else
        {
            r_h += w.dilation_h * (w.kernel_h - 1) * j_h;
            r_w += w.dilation_w * (w.kernel_w - 1) * j_w;
            j_h *= w.stride_h;
            j_w *= w.stride_w;
        }
        row.receptive_h = r_h;
        row.receptive_w = r_w;
        row.global = global;
        row.parameters = m.parameter_count();
        out.total_parameters += row.parameters;
        out.total_flops += row.flops;
        shape = row.output_shape;
        out.layers.push_back(std::move(row));
    }
};

std::string human(std::uint64_t n)
{
    std::ostringstream os;
    os << std::fixed << std::setprecision(2);
    if (n >= 1000000000ULL)
    {
        os << static_cast<double>(n) / 1e9 << " G";
    }
    else if (n >= 1000000ULL)
    {
        os << static_cast<double>(n) / 1e6 << " M";
    }
    else if (n >= 1000ULL)
    {
        os << static_cast<double>(n) / 1e3 << " K";
    }
    else
    {
        os << n;
    }
    return os.str();
}
} // namespace

std::string ModelSummary::table() const
{
    std::ostringstream os;
    os << "input " << shape_str(input_shape) << "\n";
    os << std::left << std::setw(6) << "layer" << std::setw(44) << "type" << std::setw(20) << "output shape"
       << std::right << std::setw(10) << "params" << std::setw(16) << "receptive field" << std::setw(12)
       << "FLOPs"
       << "\n";
    for (const auto& l : layers)
    {
        std::string rf = l.global ? "whole input" : detail::cat(l.receptive_h, "x", l.receptive_w);
        os << std::left << std::setw(6) << l.name << std::setw(44) << l.description.substr(0, 43)
           << std::setw(20) << shape_str(l.output_shape) << std::right << std::setw(10) << l.parameters
           << std::setw(16) << rf << std::setw(12) << human(l.flops) << "\n";
    }
    os << "total parameters: " << total_parameters << ", forward FLOPs: " << human(total_flops) << "\n";
    return os.str();
}

ModelSummary summary(const Module& model, const Shape& input_shape, std::ostream* os)
{
    ModelSummary out;
    out.input_shape = input_shape;
    Walker walker{out, input_shape};
    walker.visit(model, "");
    if (os != nullptr)
    {
        *os << out.table();
    }
    return out;
}

ModelSummary summary(const Module& model, const Shape& input_shape)
{
    return summary(model, input_shape, &std::cout);
}

} // namespace tapegrad::nn
