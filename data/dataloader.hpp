#pragma once
/// @file dataloader.hpp
/// tg::data::DataLoader: batches of float images from a uint8 Dataset, optionally shuffled.
///
///     tg::Generator gen(42);
///     for (auto [images, labels] : tg::data::DataLoader(train, {.batch_size = 64, .shuffle = true}, gen))
///     {
///         // images: Tensor [B, 1, 28, 28] float32, labels: std::vector<std::int64_t> of size B
///     }

#include <tapegrad/autograd/generator.hpp>
#include <tapegrad/autograd/tensor.hpp>
#include <tapegrad/data/dataset.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

namespace tapegrad::data
{

struct DataLoaderOptions
{
    /// Samples per batch (> 0).
    std::size_t batch_size = 64;
    /// Reshuffle the sample order at the start of every epoch (needs a Generator).
    bool shuffle = false;
    /// Drop the last batch when it is shorter than batch_size.
    bool drop_last = false;
    /// Pixel x becomes (x * scale - mean) / std.
    float scale = 1.0f / 255.0f;
    float mean = 0.0f;
    float std = 1.0f;
};

/// One batch: `images` float32 [B, C, H, W] (C = 1 for an [N, H, W] dataset), not requiring grad;
/// `labels[b]` is the class of image b.
struct Batch
{
    Tensor images;
    std::vector<std::int64_t> labels;
};

/// Iterating a DataLoader (range-for, or begin()/end()) yields one epoch of batches. Each call to
/// begin() starts a new epoch: with `shuffle` it draws a new order from the Generator (Fisher-Yates
/// with Generator::below, so a seed gives the same orders on every machine), without it the order
/// is 0, 1, ..., N-1. Batches are converted from uint8 when an iterator is dereferenced.
///
/// The loader keeps references to the dataset and the generator: both must outlive it, and the
/// dataset must not change size while the loader is used. Starting a new epoch invalidates the
/// iterators of the previous one.
class DataLoader
{
  public:
    class Iterator
    {
      public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Batch;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Batch;

        Iterator() = default;
        /// Assembles the current batch.
        Batch operator*() const { return loader_->batch(index_); }
        Iterator& operator++()
        {
            ++index_;
            return *this;
        }
        Iterator operator++(int)
        {
            Iterator old = *this;
            ++index_;
            return old;
        }
        bool operator==(const Iterator& other) const { return index_ == other.index_; }

      private:
        friend class DataLoader;
        Iterator(const DataLoader* loader, std::size_t index)
          : loader_(loader)
          , index_(index)
        {
        }
        const DataLoader* loader_ = nullptr;
        std::size_t index_ = 0;
    };

    /// A loader that shuffles with `gen` when options.shuffle is set. Throws ValueError for
    /// batch_size 0 or std 0 (or not finite scale/mean/std), ShapeError for a malformed dataset.
    DataLoader(const Dataset& dataset, DataLoaderOptions options, Generator& gen);
    /// A loader without a generator; throws ValueError if options.shuffle is set.
    explicit DataLoader(const Dataset& dataset, DataLoaderOptions options = {});

    /// Starts a new epoch (reshuffling when options.shuffle is set).
    Iterator begin();
    Iterator end() const { return Iterator(this, size()); }

    /// Number of batches per epoch.
    std::size_t size() const;

    /// Batch `i` (< size()) of the current epoch.
    Batch batch(std::size_t i) const;

    /// Sample indices of the current epoch, in order.
    const std::vector<std::size_t>& order() const noexcept { return order_; }

    const DataLoaderOptions& options() const noexcept { return options_; }

  private:
    DataLoader(const Dataset& dataset, DataLoaderOptions options, Generator* gen);

    const Dataset* dataset_;
    DataLoaderOptions options_;
    Generator* gen_;
    std::vector<std::size_t> order_;
};

} // namespace tapegrad::data
