#pragma once
/// @file idx.hpp
/// Reading the IDX files of MNIST and Fashion-MNIST, gzip-compressed or plain.
///
/// IDX layout (all integers big-endian): a 4-byte magic number `0x00 0x00 type rank`, then `rank`
/// u32 dimensions, then the elements row-major. tapegrad reads type 0x08 (unsigned byte): images
/// are 0x00000803 ([N, H, W]) and labels 0x00000801 ([N]).

#include <tapegrad/data/dataset.hpp>

#include <cstdint>
#include <string>

namespace tapegrad::data
{

/// Reads one unsigned-byte IDX file, gzip-compressed or plain (detected from the content, not the
/// name). `expected_rank` 0 accepts any rank >= 1.
///
/// Throws IoError, with a message naming `path`, when the file is missing or unreadable, the gzip
/// stream is corrupt or cut short, the magic number is wrong (not IDX, element type other than
/// unsigned byte, rank other than `expected_rank`), a dimension is 0, or the file holds fewer
/// (truncated) or more (trailing bytes) element bytes than the header declares.
xt::xarray<std::uint8_t> read_idx(const std::string& path, std::size_t expected_rank = 0);

/// Reads an image file ([N, H, W], magic 0x00000803) and a label file ([N], magic 0x00000801)
/// into a Dataset with `num_classes` classes.
///
///     auto train = tg::data::load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
///                                     "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
///
/// Throws IoError as read_idx() does, and also when the two files disagree on N or a label is
/// >= num_classes; ValueError when num_classes is 0.
Dataset load_idx(const std::string& images_path, const std::string& labels_path,
                 std::size_t num_classes = 10);

} // namespace tapegrad::data
