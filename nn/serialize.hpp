#pragma once
/// @file serialize.hpp
/// Checkpoints as safetensors files whose tensor names are the model's state_dict keys
/// ("0.weight", "0.bias", ...), so weights move between tapegrad and PyTorch both ways:
///
///     # PyTorch side
///     from safetensors.torch import load_file, save_file
///     model.load_state_dict(load_file("model.safetensors"))
///     save_file(model.state_dict(), "model.safetensors")

#include <tapegrad/nn/module.hpp>
#include <tapegrad/optim/optimizer.hpp>

#include <map>
#include <string>

namespace tapegrad::nn
{

using Metadata = std::map<std::string, std::string>;

/// Writes every parameter (float32) atomically: a temporary file in the same folder, then a
/// rename, so a crash never leaves a half-written checkpoint.
void save(const Module& model, const std::string& path, const Metadata& metadata = {});

/// Loads a checkpoint into `model` and returns the file's metadata. The whole file is validated
/// against the model first — every parameter present with its exact shape, no unknown tensors, a
/// float dtype — and on any problem an IoError names the file and the offending tensor and the
/// model is left untouched. F64 tensors are converted to float32.
Metadata load(Module& model, const std::string& path);

/// Writes named tensors (e.g. an optimiser's state_dict()) atomically.
void save_tensors(const optim::StateDict& tensors, const std::string& path, const Metadata& metadata = {});
/// Reads named float32 tensors in file order.
optim::StateDict load_tensors(const std::string& path);

} // namespace tapegrad::nn
