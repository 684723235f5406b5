#include <tapegrad/nn/init.hpp>
#include <tapegrad/nn/layers.hpp>
#include <tapegrad/ops/conv2d.hpp>
#include <tapegrad/ops/dropout.hpp>
#include <tapegrad/ops/matmul.hpp>
#include <tapegrad/ops/shape.hpp>
#include <tapegrad/ops/unary.hpp>

#include <cmath>
#include <sstream>

namespace tapegrad::nn
{

namespace
{
std::uint64_t numel(const Shape& s)
{
    std::uint64_t n = 1;
    for (auto d : s)
    {
        n *= d;
    }
    return n;
}

std::string size2_str(const Size2& s)
{
    return s.h == s.w ? std::to_string(s.h) : detail::cat("(", s.h, ", ", s.w, ")");
}

void require_positive(const char* layer, const char* what, std::int64_t v)
{
    if (v < 1)
    {
        throw ValueError(detail::cat("nn::", layer, ": ", what, " must be >= 1, got ", v));
    }
}

/// PyTorch's default: weight ~ kaiming_uniform(a = sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_init(Tensor& w, Tensor* b, Generator& gen)
{
    init::kaiming_uniform_(w, gen, std::sqrt(5.0));
    if (b != nullptr)
    {
        const double bound = 1.0 / std::sqrt(init::fans(w).first);
        init::uniform_(*b, -bound, bound, gen);
    }
}

void require_rank(const char* layer, const Shape& s, std::size_t rank, const char* layout)
{
    if (s.size() != rank)
    {
        throw ShapeError(detail::cat("nn::", layer, ": expects a rank-", rank, " input ", layout,
                                     ", got shape ", shape_str(s)));
    }
}
} // namespace

// ---------------------------------------------------------------------------------------------
// Conv2d

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
               const Conv2dOptions& options, Generator& gen)
  : in_(in_channels)
  , out_(out_channels)
  , kernel_(kernel_size)
  , options_(options)
{
    require_positive("Conv2d", "in_channels", in_);
    require_positive("Conv2d", "out_channels", out_);
    require_positive("Conv2d", "kernel height", kernel_.h);
    require_positive("Conv2d", "kernel width", kernel_.w);
    require_positive("Conv2d", "groups", options_.groups);
    if (in_ % options_.groups != 0 || out_ % options_.groups != 0)
    {
        throw ValueError(detail::cat("nn::Conv2d: groups (", options_.groups, ") must divide in_channels (",
                                     in_, ") and out_channels (", out_, ")"));
    }
    const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
    weight_ =
      register_parameter("weight", zeros({u(out_), u(in_ / options_.groups), u(kernel_.h), u(kernel_.w)}));
    if (options_.bias)
    {
        bias_ = register_parameter("bias", zeros({u(out_)}));
    }
    default_init(weight_, options_.bias ? &bias_ : nullptr, gen);
}

Tensor Conv2d::forward(const Tensor& x)
{
    return conv2d(x, weight_, bias_,
                  {.stride = options_.stride,
                   .padding = options_.padding,
                   .dilation = options_.dilation,
                   .groups = options_.groups});
}

std::string Conv2d::repr() const
{
    std::ostringstream os;
    os << "Conv2d(" << in_ << ", " << out_ << ", kernel_size=" << size2_str(kernel_);
    if (!(options_.stride == Size2(1)))
    {
        os << ", stride=" << size2_str(options_.stride);
    }
    if (!(options_.padding == Size2(0)))
    {
        os << ", padding=" << size2_str(options_.padding);
    }
    if (!(options_.dilation == Size2(1)))
    {
        os << ", dilation=" << size2_str(options_.dilation);
    }
    if (options_.groups != 1)
    {
        os << ", groups=" << options_.groups;
    }
    if (!options_.bias)
    {
        os << ", bias=false";
    }
    return os.str() + ")";
}

Shape Conv2d::output_shape(const Shape& s) const
{
    require_rank("Conv2d", s, 4, "[N, C, H, W]");
    if (static_cast<std::int64_t>(s[1]) != in_)
    {
        throw ShapeError(detail::cat("nn::Conv2d: input ", shape_str(s), " has ", s[1],
                                     " channels but the layer expects ", in_));
    }
    const auto h = conv2d_output_size(static_cast<std::int64_t>(s[2]), kernel_.h, options_.stride.h,
                                      options_.padding.h, options_.dilation.h);
    const auto w = conv2d_output_size(static_cast<std::int64_t>(s[3]), kernel_.w, options_.stride.w,
                                      options_.padding.w, options_.dilation.w);
    return {s[0], static_cast<std::size_t>(out_), static_cast<std::size_t>(h), static_cast<std::size_t>(w)};
}

std::uint64_t Conv2d::flops(const Shape& input) const
{
    const Shape o = output_shape(input);
    const std::uint64_t per_output =
      2 * static_cast<std::uint64_t>(in_ / options_.groups * kernel_.h * kernel_.w);
    return numel(o) * (per_output + (options_.bias ? 1 : 0));
}

Window Conv2d::window() const
{
    return {kernel_.h,         kernel_.w,           options_.stride.h,
            options_.stride.w, options_.dilation.h, options_.dilation.w};
}

// ---------------------------------------------------------------------------------------------
// Linear

Linear::Linear(std::int64_t in_features, std::int64_t out_features, Generator& gen, bool bias)
  : in_(in_features)
  , out_(out_features)
{
    require_positive("Linear", "in_features", in_);
    require_positive("Linear", "out_features", out_);
    weight_ =
      register_parameter("weight", zeros({static_cast<std::size_t>(out_), static_cast<std::size_t>(in_)}));
    if (bias)
    {
        bias_ = register_parameter("bias", zeros({static_cast<std::size_t>(out_)}));
    }
    default_init(weight_, bias ? &bias_ : nullptr, gen);
}

Tensor Linear::forward(const Tensor& x)
{
    return linear(x, weight_, bias_);
}

std::string Linear::repr() const
{
    return detail::cat("Linear(in_features=", in_, ", out_features=", out_,
                       bias_.defined() ? "" : ", bias=false", ")");
}

Shape Linear::output_shape(const Shape& s) const
{
    require_rank("Linear", s, 2, "[N, in_features]");
    if (static_cast<std::int64_t>(s[1]) != in_)
    {
        throw ShapeError(detail::cat("nn::Linear: input ", shape_str(s), " has ", s[1],
                                     " features but the layer expects ", in_,
                                     " (check the Flatten before it: C*H*W must equal in_features)"));
    }
    return {s[0], static_cast<std::size_t>(out_)};
}

std::uint64_t Linear::flops(const Shape& input) const
{
    return numel(output_shape(input)) * (2 * static_cast<std::uint64_t>(in_) + (bias_.defined() ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Pooling

Pool2dBase::Pool2dBase(const Pool2dOptions& options)
  : options_(options)
{
    if (!options_.stride.given)
    {
        options_.stride = options_.kernel;
    }
}

Shape Pool2dBase::output_shape(const Shape& s) const
{
    require_rank(type_name().c_str(), s, 4, "[N, C, H, W]");
    const auto h = pool2d_output_size(static_cast<std::int64_t>(s[2]), options_.kernel.h, options_.stride.h,
                                      options_.padding.h, options_.dilation.h, options_.ceil_mode);
    const auto w = pool2d_output_size(static_cast<std::int64_t>(s[3]), options_.kernel.w, options_.stride.w,
                                      options_.padding.w, options_.dilation.w, options_.ceil_mode);
    return {s[0], s[1], static_cast<std::size_t>(h), static_cast<std::size_t>(w)};
}

std::uint64_t Pool2dBase::flops(const Shape& input) const
{
    return numel(output_shape(input)) * static_cast<std::uint64_t>(options_.kernel.h * options_.kernel.w);
}

Window Pool2dBase::window() const
{
    return {options_.kernel.h, options_.kernel.w,   options_.stride.h,
            options_.stride.w, options_.dilation.h, options_.dilation.w};
}

std::string Pool2dBase::repr() const
{
    std::ostringstream os;
    os << type_name() << "(kernel_size=" << size2_str(options_.kernel)
       << ", stride=" << size2_str(options_.stride);
    if (!(options_.padding == Size2(0)))
    {
        os << ", padding=" << size2_str(options_.padding);
    }
    if (options_.ceil_mode)
    {
        os << ", ceil_mode=true";
    }
    return os.str() + ")";
}

Tensor MaxPool2d::forward(const Tensor& x)
{
    return max_pool2d(x, options_);
}
Tensor AvgPool2d::forward(const Tensor& x)
{
    return avg_pool2d(x, options_);
}
Tensor MinPool2d::forward(const Tensor& x)
{
    return min_pool2d(x, options_);
}

// ---------------------------------------------------------------------------------------------
// Flatten and activations

Tensor Flatten::forward(const Tensor& x)
{
    return flatten(x, start_, end_);
}

Shape Flatten::output_shape(const Shape& s) const
{
    const auto rank = static_cast<std::ptrdiff_t>(s.size());
    const std::ptrdiff_t a = start_ < 0 ? start_ + rank : start_;
    const std::ptrdiff_t b = end_ < 0 ? end_ + rank : end_;
    if (a < 0 || b >= rank || a > b)
    {
        throw ShapeError(
          detail::cat("nn::Flatten: dimensions ", start_, "..", end_, " do not fit shape ", shape_str(s)));
    }
    Shape out(s.begin(), s.begin() + a);
    std::size_t merged = 1;
    for (std::ptrdiff_t i = a; i <= b; ++i)
    {
        merged *= s[static_cast<std::size_t>(i)];
    }
    out.push_back(merged);
    out.insert(out.end(), s.begin() + b + 1, s.end());
    return out;
}

Tensor ReLU::forward(const Tensor& x)
{
    return relu(x);
}
std::uint64_t ReLU::flops(const Shape& input) const
{
    return numel(input);
}
Tensor Sigmoid::forward(const Tensor& x)
{
    return sigmoid(x);
}
std::uint64_t Sigmoid::flops(const Shape& input) const
{
    return 4 * numel(input);
}
Tensor Tanh::forward(const Tensor& x)
{
    return tanh(x);
}
std::uint64_t Tanh::flops(const Shape& input) const
{
    return 4 * numel(input);
}

Dropout::Dropout(double p, Generator& gen)
  : p_(p)
  , gen_(gen.next_u64())
{
    if (!(p >= 0.0 && p < 1.0))
    {
        throw ValueError(detail::cat("nn::Dropout: p must be in [0, 1), got ", p));
    }
}

Tensor Dropout::forward(const Tensor& x)
{
    return dropout(x, p_, is_training(), gen_);
}

std::string Dropout::repr() const
{
    return detail::cat("Dropout(p=", p_, ")");
}

} // namespace tapegrad::nn
