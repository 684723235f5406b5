#include <tapegrad/autograd/error.hpp>
#include <tapegrad/ops/window.hpp>

namespace tapegrad
{

namespace
{
std::int64_t window_output_size(const char* op, std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                std::int64_t padding, std::int64_t dilation, bool ceil_mode)
{
    if (in < 1)
    {
        throw ShapeError(detail::cat("tg::", op, ": input size ", in, " must be >= 1"));
    }
    if (kernel < 1)
    {
        throw ValueError(detail::cat("tg::", op, ": kernel size ", kernel, " must be >= 1"));
    }
    if (stride < 1)
    {
        throw ValueError(
          detail::cat("tg::", op, ": stride ", stride, " must be >= 1 (a stride of 0 never moves)"));
    }
    if (dilation < 1)
    {
        throw ValueError(detail::cat("tg::", op, ": dilation ", dilation, " must be >= 1"));
    }
    if (padding < 0)
    {
        throw ValueError(detail::cat("tg::", op, ": padding ", padding, " must be >= 0"));
    }
    const std::int64_t span = dilation * (kernel - 1) + 1;
    const std::int64_t room = in + 2 * padding - span;
    if (room < 0)
    {
        throw ShapeError(detail::cat("tg::", op, ": the kernel (", kernel, ", dilation ", dilation,
                                     ", spanning ", span, ") is larger than the padded input (", in, " + 2*",
                                     padding, " = ", in + 2 * padding,
                                     "): floor((H + 2p - d(k-1) - 1)/s) + 1 = floor((", in, " + 2*", padding,
                                     " - ", dilation, "*", kernel - 1, " - 1)/", stride, ") + 1 < 1"));
    }
    std::int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + padding)
    {
        --out; // the last window would start in the right padding
    }
    return out;
}
} // namespace

std::int64_t conv2d_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                std::int64_t padding, std::int64_t dilation)
{
    return window_output_size("conv2d", in, kernel, stride, padding, dilation, false);
}

std::int64_t pool2d_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                std::int64_t padding, std::int64_t dilation, bool ceil_mode)
{
    if (kernel >= 1 && padding > kernel / 2)
    {
        throw ValueError(detail::cat("tg::pool2d: padding ", padding,
                                     " must be at most half the kernel size (", kernel, " / 2 = ", kernel / 2,
                                     "), otherwise a window could lie entirely in "
                                     "the padding"));
    }
    return window_output_size("pool2d", in, kernel, stride, padding, dilation, ceil_mode);
}

} // namespace tapegrad
