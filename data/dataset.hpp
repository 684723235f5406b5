#pragma once
/// @file dataset.hpp
/// tg::data::Dataset: labelled images held as bytes.
///
/// Pixels stay uint8 in memory (Fashion-MNIST's 60000 x 28 x 28 training images take 45 MiB this
/// way, against 180 MiB as float32); the DataLoader converts one batch at a time to float.

#include <tapegrad/autograd/error.hpp>
#include <tapegrad/autograd/tensor.hpp>

#include <xtensor/xarray.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

namespace tapegrad::data
{

/// Labelled images.
///
/// Layout: `images` is a contiguous row-major uint8 array of shape [N, H, W] (one channel, as in
/// the IDX files) or [N, C, H, W]; sample i occupies the bytes
/// `[i * sample_numel(), (i + 1) * sample_numel())` of `images.data()`. `labels[i]` is the class
/// index of sample i, in [0, num_classes).
struct Dataset
{
    xt::xarray<std::uint8_t> images;
    std::vector<std::int64_t> labels;
    std::size_t num_classes = 10;

    /// Number of samples N.
    std::size_t size() const noexcept { return labels.size(); }

    /// Shape of one sample: [H, W] or [C, H, W].
    Shape sample_shape() const
    {
        const auto& s = images.shape();
        return s.size() == 0 ? Shape{} : Shape(s.begin() + 1, s.end());
    }

    /// Number of bytes of one sample (H*W or C*H*W).
    std::size_t sample_numel() const
    {
        std::size_t n = 1;
        for (std::size_t d : sample_shape())
        {
            n *= d;
        }
        return n;
    }

    /// The samples at `indices`, in that order (repeats allowed). Throws IndexError for an index
    /// >= size() and ShapeError if images and labels disagree on N.
    Dataset subset(const std::vector<std::size_t>& indices) const
    {
        check("tg::data::Dataset::subset");
        Shape shape = sample_shape();
        shape.insert(shape.begin(), indices.size());
        Dataset out;
        out.images = xt::xarray<std::uint8_t>::from_shape(shape);
        out.labels.resize(indices.size());
        out.num_classes = num_classes;
        const std::size_t stride = sample_numel();
        for (std::size_t j = 0; j < indices.size(); ++j)
        {
            const std::size_t i = indices[j];
            if (i >= size())
            {
                throw IndexError(detail::cat("tg::data::Dataset::subset: index ", i, " (position ", j,
                                             ") is out of range for a dataset of ", size(), " samples"));
            }
            std::memcpy(out.images.data() + j * stride, images.data() + i * stride, stride);
            out.labels[j] = labels[i];
        }
        return out;
    }

    /// Throws ShapeError unless images is [N, H, W] or [N, C, H, W] with N == labels.size().
    void check(const char* who) const
    {
        const auto& s = images.shape();
        if (s.size() != 3 && s.size() != 4)
        {
            throw ShapeError(
              detail::cat(who, ": images must be [N, H, W] or [N, C, H, W], got ", shape_str(s)));
        }
        if (s[0] != labels.size())
        {
            throw ShapeError(detail::cat(who, ": images hold ", s[0], " samples (shape ", shape_str(s),
                                         ") but there are ", labels.size(), " labels"));
        }
    }
};

} // namespace tapegrad::data
