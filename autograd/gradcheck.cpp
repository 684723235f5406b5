#include <tapegrad/autograd/gradcheck.hpp>
#include <tapegrad/autograd/tape.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace tapegrad
{

namespace
{
std::vector<std::size_t> unravel(std::size_t flat, const Shape& shape)
{
    std::vector<std::size_t> idx(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;)
    {
        idx[d] = shape[d] == 0 ? 0 : flat % shape[d];
        flat = shape[d] == 0 ? 0 : flat / shape[d];
    }
    return idx;
}

double weighted_sum(const Tensor64& y, const xt::xarray<double>& w)
{
    const auto& v = y.value();
    double acc = 0.0;
    for (std::size_t i = 0; i < v.size(); ++i)
    {
        acc += w.data()[i] * v.data()[i];
    }
    return acc;
}

void describe(std::ostream& os, const GradcheckMismatch& m)
{
    os << "input " << m.input << " element " << shape_str(m.index) << ": analytic " << m.analytic
       << ", numeric " << m.numeric << ", abs error " << m.abs_error << ", rel error " << m.rel_error;
}
} // namespace

std::string GradcheckReport::summary() const
{
    std::ostringstream os;
    os << std::setprecision(10);
    os << "gradcheck " << (ok ? "passed" : "FAILED") << ": " << checked << " elements checked, "
       << failures.size() << " failed, " << kinks.size() << " at non-differentiable points; max rel error "
       << max_rel_error << "\n";
    for (const auto& f : failures)
    {
        os << "  mismatch: ";
        describe(os, f);
        os << "\n";
    }
    for (const auto& k : kinks)
    {
        os << "  kink (not a failure): ";
        describe(os, k);
        os << "; one-sided slopes " << k.left_slope << " (left) and " << k.right_slope
           << " (right) differ, so the input is within eps of a non-differentiable point\n";
    }
    for (const auto& w : warnings)
    {
        os << "  warning: " << w << "\n";
    }
    return os.str();
}

std::ostream& operator<<(std::ostream& os, const GradcheckReport& r)
{
    return os << r.summary();
}

GradcheckReport gradcheck(const GradcheckFunction& f, const std::vector<Tensor64>& inputs,
                          const GradcheckOptions& options)
{
    if (!(options.eps > 0.0))
    {
        throw ValueError(detail::cat("tg::gradcheck: eps must be > 0, got ", options.eps));
    }
    // Private leaf copies: the caller's tensors and their grads stay untouched, and the check runs
    // on its own tape so a graph the caller has pending is not consumed.
    std::vector<Tensor64> xs;
    xs.reserve(inputs.size());
    for (const auto& in : inputs)
    {
        xs.push_back(in.defined() ? Tensor64(xt::xarray<double>(in.value()), in.requires_grad())
                                  : Tensor64());
    }

    TapeScope scope;
    EnableGradGuard grad_on;
    Tensor64 y = f(xs);
    if (!y.defined())
    {
        throw ValueError("tg::gradcheck: the function returned an undefined tensor");
    }
    Generator gen(options.seed);
    auto w = xt::xarray<double>::from_shape(y.value().shape());
    for (auto& v : w)
    {
        // Weights in +-[0.5, 1.5): never near zero, signs mixed.
        const double mag = gen.uniform(0.5, 1.5);
        v = gen.uniform() < 0.5 ? -mag : mag;
    }
    GradcheckReport report;
    const double f0 = weighted_sum(y, w);
    if (y.requires_grad())
    {
        y.backward(Tensor64(w));
    }

    auto eval = [&]()
    {
        NoGradGuard no_grad;
        return weighted_sum(f(xs), w);
    };

    for (std::size_t k = 0; k < xs.size(); ++k)
    {
        Tensor64& x = xs[k];
        if (!x.defined() || !x.requires_grad())
        {
            continue;
        }
        const Shape shape = x.shape();
        const std::size_t n = x.numel();
        const Tensor64 g = x.grad();
        const std::size_t step =
          options.max_elements_per_input == 0 || n <= options.max_elements_per_input
            ? 1
            : (n + options.max_elements_per_input - 1) / options.max_elements_per_input;
        bool all_zero = true;
        for (std::size_t i = 0; i < n; i += step)
        {
            double& xi = x.mutable_value().data()[i];
            const double orig = xi;
            xi = orig + options.eps;
            const double fp = eval();
            xi = orig - options.eps;
            const double fm = eval();
            xi = orig;
            const double numeric = (fp - fm) / (2.0 * options.eps);
            const double analytic = g.defined() ? g.value().data()[i] : 0.0;
            const double abs_err = std::abs(analytic - numeric);
            const double rel_err = abs_err / std::max(std::abs(numeric), 1e-12);
            ++report.checked;
            if (analytic != 0.0 || std::abs(numeric) > options.atol)
            {
                all_zero = false;
            }
            GradcheckMismatch m{k, unravel(i, shape), analytic, numeric, abs_err, rel_err, 0.0, 0.0};
            m.right_slope = (fp - f0) / options.eps;
            m.left_slope = (f0 - fm) / options.eps;
            const double slope_gap = std::abs(m.right_slope - m.left_slope);
            const double slope_tol =
              options.atol + options.rtol * std::max(std::abs(m.left_slope), std::abs(m.right_slope));
            if (abs_err <= options.atol + options.rtol * std::abs(numeric))
            {
                if (std::abs(numeric) > options.atol)
                {
                    report.max_rel_error = std::max(report.max_rel_error, rel_err);
                }
                // A symmetric kink (|x| at 0) can agree by coincidence; a jump in slope far above what
                // curvature over eps explains still marks the point.
                if (slope_gap > 100.0 * slope_tol)
                {
                    report.kinks.push_back(m);
                }
                continue;
            }
            const double lo = std::min(m.left_slope, m.right_slope) - slope_tol;
            const double hi = std::max(m.left_slope, m.right_slope) + slope_tol;
            if (slope_gap > slope_tol && analytic >= lo && analytic <= hi)
            {
                report.kinks.push_back(m);
            }
            else
            {
                report.max_rel_error = std::max(report.max_rel_error, rel_err);
                report.failures.push_back(m);
                report.ok = false;
            }
        }
        if (all_zero && n > 0)
        {
            report.warnings.push_back(
              detail::cat("input ", k, " of shape ", shape_str(shape),
                          ": analytic and numeric gradients are zero everywhere checked; "
                          "the check cannot tell a right VJP from a missing one"));
        }
    }
    return report;
}

} // namespace tapegrad
