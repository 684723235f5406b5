#include <tapegrad/data/idx.hpp>

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <memory>
#include <new>
#include <sstream>

namespace tapegrad::data
{

namespace
{

struct GzClose
{
    void operator()(gzFile f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzClose>;

std::string hex32(std::uint32_t v)
{
    std::ostringstream os;
    os << "0x" << std::hex << std::uppercase << std::setw(8) << std::setfill('0') << v;
    return os.str();
}

/// Reads one IDX file through zlib's gz* API, which decompresses gzip streams and passes plain
/// files through unchanged.
class IdxReader
{
  public:
    explicit IdxReader(const std::string& path)
      : path_(path)
    {
        errno = 0;
        file_.reset(gzopen(path.c_str(), "rb"));
        if (!file_)
        {
            const int err = errno;
            std::error_code ec;
            if (!std::filesystem::exists(path, ec))
            {
                std::string hint;
                if (path.rfind("/usr/share/datasets/", 0) == 0)
                {
                    hint = " (the datasets under /usr/share/datasets are installed by "
                           "`apt-get install dataset-fashion-mnist`)";
                }
                fail(detail::cat("no such file", hint));
            }
            fail(detail::cat("cannot open: ", err != 0 ? std::strerror(err) : "out of memory"));
        }
        gzbuffer(file_.get(), 1u << 18);
    }

    [[noreturn]] void fail(const std::string& what) const
    {
        throw IoError(detail::cat("tg::data::load_idx: ", path_, ": ", what));
    }

    /// Reads up to n bytes; stops early only at the end of the data (or of a gzip stream cut short,
    /// which cut_short() then reports). Throws on a corrupt gzip stream or a read error.
    std::size_t read(std::uint8_t* dst, std::size_t n)
    {
        std::size_t got = 0;
        while (got < n)
        {
            const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
            const int r = gzread(file_.get(), dst + got, chunk);
            if (r < 0)
            {
                check_stream();
                fail("read error");
            }
            got += static_cast<std::size_t>(r);
            if (static_cast<unsigned>(r) < chunk)
            {
                check_stream();
                break;
            }
        }
        return got;
    }

    /// Whether the data is a gzip stream (valid after the first read).
    bool compressed() { return gzdirect(file_.get()) == 0; }

    /// Whether a gzip stream ended before its end marker and checksum.
    bool cut_short() const { return cut_short_; }

    /// " (the gzip stream is cut short)" when it is, for truncation messages.
    const char* cut_note() const { return cut_short_ ? " (the gzip stream is cut short)" : ""; }

    const std::string& path() const { return path_; }

  private:
    void check_stream()
    {
        int errnum = Z_OK;
        const char* msg = gzerror(file_.get(), &errnum);
        if (errnum == Z_BUF_ERROR)
        {
            cut_short_ = true;
            return;
        }
        if (errnum == Z_ERRNO)
        {
            fail(detail::cat("read error: ", std::strerror(errno)));
        }
        if (errnum != Z_OK)
        {
            fail(detail::cat("corrupt gzip stream (zlib: ", msg, ")"));
        }
    }

    std::string path_;
    GzHandle file_;
    bool cut_short_ = false;
};

std::uint32_t big_endian_u32(const std::uint8_t* p)
{
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

const char* rank_meaning(std::size_t rank)
{
    switch (rank)
    {
        case 1:
            return " (labels [N])";
        case 3:
            return " (images [N, H, W])";
        default:
            return "";
    }
}

xt::xarray<std::uint8_t> read_idx_file(IdxReader& in, std::size_t expected_rank, const char* elements)
{
    std::uint8_t magic[4];
    if (in.read(magic, 4) < 4)
    {
        in.fail(detail::cat("truncated: the file ends inside the 4-byte magic number", in.cut_note()));
    }
    const std::uint32_t m = big_endian_u32(magic);
    const std::string expected = expected_rank == 0
                                   ? std::string("0x000008NN")
                                   : hex32(0x0800u | static_cast<std::uint32_t>(expected_rank));
    if (magic[0] != 0 || magic[1] != 0)
    {
        in.fail(detail::cat("bad magic number ", hex32(m), ": not an IDX file (expected ", expected, ")"));
    }
    if (magic[2] != 0x08)
    {
        in.fail(detail::cat("bad magic number ", hex32(m), ": element type 0x", std::hex, std::uppercase,
                            int{magic[2]}, " is not supported, tapegrad reads 0x08 (unsigned byte)"));
    }
    const std::size_t rank = magic[3];
    if (rank == 0 || (expected_rank != 0 && rank != expected_rank))
    {
        in.fail(detail::cat("bad magic number ", hex32(m), ": ", rank, " dimension(s), expected ",
                            expected_rank == 0 ? std::string("at least 1") : std::to_string(expected_rank),
                            rank_meaning(expected_rank)));
    }

    std::vector<std::uint8_t> dims_raw(4 * rank);
    if (in.read(dims_raw.data(), dims_raw.size()) < dims_raw.size())
    {
        in.fail(detail::cat("truncated: the file ends inside the header (", rank, " dimensions need ",
                            4 + dims_raw.size(), " bytes)", in.cut_note()));
    }
    Shape shape(rank);
    std::string declared;
    std::size_t total = 1;
    for (std::size_t d = 0; d < rank; ++d)
    {
        shape[d] = big_endian_u32(&dims_raw[4 * d]);
        if (shape[d] == 0)
        {
            in.fail(
              detail::cat("dimension ", d, " of ", shape_str(shape), " is 0; every dimension must be > 0"));
        }
        declared += detail::cat(d == 0 ? "" : "x", shape[d]);
        if (total > std::numeric_limits<std::size_t>::max() / shape[d])
        {
            in.fail(detail::cat("header declares ", declared, "... elements, more than memory can hold"));
        }
        total *= shape[d];
    }
    declared += detail::cat(" = ", total, " bytes of ", elements);

    xt::xarray<std::uint8_t> out;
    try
    {
        out = xt::xarray<std::uint8_t>::from_shape(shape);
    }
    catch (const std::bad_alloc&)
    {
        in.fail(detail::cat("header declares ", declared, ", which cannot be allocated"));
    }
    const std::size_t got = in.read(out.data(), total);
    const char* holder = in.compressed() ? "the decompressed data holds " : "file holds ";
    if (got < total)
    {
        in.fail(detail::cat("truncated: header declares ", declared, ", ", holder, got, in.cut_note()));
    }
    std::size_t extra = 0;
    std::uint8_t sink[4096];
    for (std::size_t r = 0; (r = in.read(sink, sizeof sink)) > 0;)
    {
        extra += r;
    }
    if (extra > 0)
    {
        in.fail(detail::cat("trailing bytes: header declares ", declared, ", ", holder, extra,
                            " more byte(s) after them"));
    }
    if (in.cut_short())
    {
        in.fail("truncated: the gzip stream ends before its end marker and checksum");
    }
    return out;
}

} // namespace

xt::xarray<std::uint8_t> read_idx(const std::string& path, std::size_t expected_rank)
{
    IdxReader in(path);
    return read_idx_file(in, expected_rank, "elements");
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path, std::size_t num_classes)
{
    if (num_classes == 0)
    {
        throw ValueError("tg::data::load_idx: num_classes must be > 0");
    }
    Dataset ds;
    ds.num_classes = num_classes;
    {
        IdxReader in(images_path);
        ds.images = read_idx_file(in, 3, "pixels");
    }
    xt::xarray<std::uint8_t> labels;
    {
        IdxReader in(labels_path);
        labels = read_idx_file(in, 1, "labels");
    }
    const std::size_t n = ds.images.shape()[0];
    if (labels.size() != n)
    {
        throw IoError(detail::cat("tg::data::load_idx: count mismatch: ", images_path, " holds ", n,
                                  " images but ", labels_path, " holds ", labels.size(), " labels"));
    }
    ds.labels.resize(n);
    const std::uint8_t* src = labels.data();
    for (std::size_t i = 0; i < n; ++i)
    {
        if (src[i] >= num_classes)
        {
            throw IoError(detail::cat("tg::data::load_idx: ", labels_path, ": label ", int{src[i]},
                                      " at index ", i, " is out of range [0, ", num_classes, ")"));
        }
        ds.labels[i] = src[i];
    }
    return ds;
}

} // namespace tapegrad::data
