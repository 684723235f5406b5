#pragma once
/// @file gradcheck.hpp
/// Gradient checking against central finite differences in float64, as a public API.
///
/// The function's output y is reduced to L = sum(w * y) with a fixed random weighting w (a plain
/// sum can hide permuted or transposed gradients). One backward gives the analytic dL/dx; each
/// input element is then perturbed by +-eps under NoGradGuard (the numeric side records nothing)
/// and compared with
///
///     |analytic - numeric| <= atol + rtol * |numeric|.
///
/// Kink awareness: where that fails, the one-sided slopes (f(x+eps) - f(x)) / eps and
/// (f(x) - f(x-eps)) / eps are compared. If they disagree, x sits within eps of a point where f is
/// not differentiable (relu at 0, a max tie); if the analytic value lies between them (a valid
/// one-sided derivative), the element is reported as a kink, not as a failure.

#include <tapegrad/autograd/tensor.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace tapegrad
{

struct GradcheckOptions
{
    double eps = 1e-6;
    double atol = 1e-5;
    double rtol = 1e-3;
    /// Seed of the output weighting.
    std::uint64_t seed = 0;
    /// Check at most this many elements per input, spread evenly (0 = all).
    std::size_t max_elements_per_input = 0;
};

/// One element where analytic and numeric gradients disagree, or that sits on a kink.
struct GradcheckMismatch
{
    std::size_t input = 0;
    std::vector<std::size_t> index;
    double analytic = 0.0;
    double numeric = 0.0;
    double abs_error = 0.0;
    double rel_error = 0.0;
    /// For kinks: the left and right one-sided slopes.
    double left_slope = 0.0;
    double right_slope = 0.0;
};

struct GradcheckReport
{
    bool ok = true;
    /// Elements compared.
    std::size_t checked = 0;
    /// Real failures (empty when ok).
    std::vector<GradcheckMismatch> failures;
    /// Elements within eps of a non-differentiable point, reported but not failed.
    std::vector<GradcheckMismatch> kinks;
    /// Notes that are not failures, e.g. an input whose gradient is zero everywhere.
    std::vector<std::string> warnings;
    /// The worst relative error seen among the elements checked.
    double max_rel_error = 0.0;

    /// A human-readable account: which input, which element, analytic vs numeric, the errors.
    std::string summary() const;
};

std::ostream& operator<<(std::ostream& os, const GradcheckReport& r);

using GradcheckFunction = std::function<Tensor64(const std::vector<Tensor64>&)>;

/// Checks the VJPs of everything `f` records, with respect to every input that requires grad.
/// The inputs are not modified and their grad() is left untouched.
GradcheckReport gradcheck(const GradcheckFunction& f, const std::vector<Tensor64>& inputs,
                          const GradcheckOptions& options = {});

} // namespace tapegrad
