#pragma once
// The training loop behind tapegrad-train: epochs, progress bar, evaluation, metrics, checkpoints.

#include <tapegrad/tapegrad.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace tapegrad::train
{

struct Config
{
    std::string data_dir = "/usr/share/datasets/fashion-mnist";
    std::string model = "cnn"; // "cnn" or "lecture"
    std::string optimizer = "adam";
    std::string schedule = "cosine";
    int epochs = 6;
    int batch_size = 64;
    double lr = 0.0; // 0: the optimiser's default
    double momentum = 0.9;
    double weight_decay = 0.0;
    double dropout = 0.0;
    std::uint64_t seed = 42;
    int threads = 0; // 0: all cores
    int folds = 0;
    std::size_t limit = 0; // use only the first `limit` training images (0: all)
    std::string checkpoint = "tapegrad-model.safetensors";
    std::string metrics = "tapegrad-metrics.jsonl";
    std::string resume;
    bool quiet = false;
};

/// A dataset prepared for one model: inputs as uint8 planes plus integer targets.
struct Prepared
{
    data::Dataset train;
    data::Dataset test;
    bool binary = false; // lecture model: one logit, footwear vs not
};

/// Loads Fashion-MNIST from config.data_dir, reshaped for config.model. Throws IoError with the
/// install hint when the files are missing.
Prepared prepare_data(const Config& config);

/// Builds the model config.model names.
nn::Sequential make_model(const Config& config, Generator& gen);

struct EpochResult
{
    int epoch = 0;
    double loss = 0.0;
    double accuracy = 0.0;
    double seconds = 0.0;
    double images_per_second = 0.0;
};

/// Trains on `train` and evaluates on `eval` after each epoch; writes metrics lines and
/// checkpoints as configured. `on_epoch` sees each result.
std::vector<EpochResult> fit(const Config& config, nn::Sequential& model, const data::Dataset& train,
                             const data::Dataset& eval, bool binary, Generator& gen, bool write_files);

/// Accuracy of `model` on `set` (no recording, eval mode).
double evaluate(nn::Sequential& model, const data::Dataset& set, bool binary);

} // namespace tapegrad::train
