#pragma once
/// @file safetensors.hpp
/// Reading and writing safetensors files, the checkpoint format shared with PyTorch.
///
/// Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header, then the data
/// buffer. The header is an object mapping each tensor name to
/// `{"dtype": "F32" | "F64", "shape": [d0, d1, ...], "data_offsets": [begin, end]}`, plus an
/// optional `"__metadata__": {string: string}`. Offsets are byte positions relative to the start
/// of the data buffer; the tensors' byte ranges tile the buffer exactly (no gap, no overlap, no
/// trailing byte), and each holds the values row-major, little-endian.
///
/// Names are free strings: a Sequential's PyTorch state_dict keys ("0.weight", "0.bias", ...) are
/// used as they are, so checkpoints move between PyTorch and tapegrad.

#include <tapegrad/autograd/tensor.hpp>

#include <xtensor/xarray.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tapegrad::nn
{

/// One tensor of a safetensors file. Exactly one of `f32` / `f64` holds the values (of shape
/// `shape`), chosen by `dtype`; the other is empty (shape [0]).
struct SafetensorsEntry
{
    std::string name;
    /// "F32" or "F64".
    std::string dtype;
    Shape shape;
    xt::xarray<float> f32 = xt::xarray<float>::from_shape({0});
    xt::xarray<double> f64 = xt::xarray<double>::from_shape({0});

    /// The values as float32 (F64 values are rounded).
    xt::xarray<float> to_float() const;
    /// The values as float64 (exact for both dtypes).
    xt::xarray<double> to_double() const;
};

/// The contents of a safetensors file.
struct SafetensorsFile
{
    /// In the order of their bytes in the data buffer (the order in which they were written).
    std::vector<SafetensorsEntry> tensors;
    /// The "__metadata__" strings (empty when the file has none).
    std::map<std::string, std::string> metadata;

    /// The tensor called `name`, or nullptr.
    const SafetensorsEntry* find(const std::string& name) const;
};

/// Reads and fully validates a safetensors file holding F32 and F64 tensors; nothing is returned
/// unless the whole file is valid.
///
/// Throws IoError naming the file (and the tensor, when one is at fault) when the file cannot be
/// read, is shorter than 8 bytes, its header length exceeds the file, the header is not valid JSON
/// or has a repeated key, a field is missing or ill-typed, a dtype is not F32/F64, a tensor's
/// data_offsets span differs from shape x dtype size or leaves the buffer, two tensors overlap,
/// bytes lie between or after the tensors, or "__metadata__" is not a string-to-string object.
SafetensorsFile read_safetensors(const std::string& path);

/// Writes `tensors` (name, tensor) in the given order, with optional metadata strings.
///
/// The write is atomic: the bytes go to `path + ".tmp.<pid>"` in the same directory, are flushed
/// to disk (fsync), and the temporary file is then renamed over `path`. A crash leaves either the
/// old file or the new one, never a mixture. On any failure the temporary file is removed, the
/// existing file at `path` is untouched, and IoError naming `path` is thrown.
///
/// Throws ValueError for an undefined tensor, an empty, repeated or reserved ("__metadata__")
/// name, or a name or metadata string that is not valid UTF-8.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
/// As above for float64 tensors (dtype F64).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor64>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
/// As above for entries of either dtype (e.g. a file read by read_safetensors()). Each entry's
/// values are taken from `f32` or `f64` according to `dtype`; `shape` must match them.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

} // namespace tapegrad::nn
