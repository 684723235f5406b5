#include <tapegrad/data/dataloader.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tapegrad::data
{

DataLoader::DataLoader(const Dataset& dataset, DataLoaderOptions options, Generator& gen)
  : DataLoader(dataset, options, &gen)
{
}

DataLoader::DataLoader(const Dataset& dataset, DataLoaderOptions options)
  : DataLoader(dataset, options, nullptr)
{
}

DataLoader::DataLoader(const Dataset& dataset, DataLoaderOptions options, Generator* gen)
  : dataset_(&dataset)
  , options_(options)
  , gen_(gen)
{
    dataset.check("tg::data::DataLoader");
    if (options_.batch_size == 0)
    {
        throw ValueError("tg::data::DataLoader: batch_size must be > 0");
    }
    if (!std::isfinite(options_.scale) || !std::isfinite(options_.mean) || !std::isfinite(options_.std) ||
        options_.std == 0.0f)
    {
        throw ValueError(
          detail::cat("tg::data::DataLoader: scale, mean and std must be finite and std != 0, got scale ",
                      options_.scale, ", mean ", options_.mean, ", std ", options_.std));
    }
    if (options_.shuffle && gen_ == nullptr)
    {
        throw ValueError(
          "tg::data::DataLoader: shuffle = true needs a Generator: DataLoader(dataset, options, gen)");
    }
    order_.resize(dataset.size());
    std::iota(order_.begin(), order_.end(), std::size_t{0});
}

DataLoader::Iterator DataLoader::begin()
{
    if (options_.shuffle)
    {
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        for (std::size_t i = order_.size(); i > 1; --i)
        {
            std::swap(order_[i - 1], order_[gen_->below(i)]);
        }
    }
    return Iterator(this, 0);
}

std::size_t DataLoader::size() const
{
    const std::size_t n = order_.size();
    const std::size_t b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
}

Batch DataLoader::batch(std::size_t i) const
{
    if (i >= size())
    {
        throw IndexError(detail::cat("tg::data::DataLoader::batch: batch ", i,
                                     " is out of range, an epoch has ", size(), " batches"));
    }
    const std::size_t first = i * options_.batch_size;
    const std::size_t count = std::min(options_.batch_size, order_.size() - first);
    const std::size_t stride = dataset_->sample_numel();

    Shape shape = dataset_->sample_shape();
    if (shape.size() == 2)
    {
        shape.insert(shape.begin(), 1);
    }
    shape.insert(shape.begin(), count);
    auto images = xt::xarray<float>::from_shape(shape);
    Batch out{Tensor(), std::vector<std::int64_t>(count)};

    const std::uint8_t* src = dataset_->images.data();
    float* dst = images.data();
    const float scale = options_.scale, mean = options_.mean, stdev = options_.std;
    for (std::size_t b = 0; b < count; ++b)
    {
        const std::size_t sample = order_[first + b];
        const std::uint8_t* s = src + sample * stride;
        if (b + 1 < count)
        {
            // Shuffled samples are scattered over the dataset: fetch the next one while converting this one.
            const std::uint8_t* next = src + order_[first + b + 1] * stride;
            for (std::size_t k = 0; k < stride; k += 64)
            {
                __builtin_prefetch(next + k);
            }
            __builtin_prefetch(next + stride - 1);
        }
        float* d = dst + b * stride;
        for (std::size_t k = 0; k < stride; ++k)
        {
            d[k] = (static_cast<float>(s[k]) * scale - mean) / stdev;
        }
        out.labels[b] = dataset_->labels[sample];
    }
    out.images = Tensor(std::move(images), false);
    return out;
}

} // namespace tapegrad::data
