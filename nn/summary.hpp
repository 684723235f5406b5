#pragma once
/// @file summary.hpp
/// nn::summary: a per-layer table of output shape, parameter count, receptive field and FLOPs,
/// computed from shapes alone (the model does not run).
///
/// Receptive field, per axis: start with r = 1 and jump j = 1; a layer with kernel k, dilation d
/// and stride s gives r += d(k - 1) * j, then j *= s. For a stack of L stride-1 k x k convolutions
/// that is 1 + L(k - 1) (seed 004). After Flatten or Linear every output sees the whole input.

#include <tapegrad/nn/module.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace tapegrad::nn
{

struct LayerSummary
{
    /// state_dict-style path ("0", "1", ...) and the layer's repr().
    std::string name;
    std::string description;
    Shape output_shape;
    std::size_t parameters = 0;
    /// Receptive field in input pixels (height, width); `global` when it is the whole input.
    std::int64_t receptive_h = 1;
    std::int64_t receptive_w = 1;
    bool global = false;
    std::uint64_t flops = 0;
};

struct ModelSummary
{
    Shape input_shape;
    std::vector<LayerSummary> layers;
    std::size_t total_parameters = 0;
    std::uint64_t total_flops = 0;

    /// The printed table.
    std::string table() const;
};

/// Summarises `model` for `input_shape` and prints the table to `os` (pass nullptr to only return
/// it). Throws ShapeError, naming the layer, if a layer rejects its input shape.
ModelSummary summary(const Module& model, const Shape& input_shape, std::ostream* os);
/// Same, printing to std::cout.
ModelSummary summary(const Module& model, const Shape& input_shape);

} // namespace tapegrad::nn
