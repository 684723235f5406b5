#include <tapegrad/nn/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <tuple>

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian values; tapegrad copies them as they are");

namespace tapegrad::nn
{

using Json = nlohmann::json;

xt::xarray<float> SafetensorsEntry::to_float() const
{
    if (dtype == "F32")
    {
        return f32;
    }
    auto out = xt::xarray<float>::from_shape(f64.shape());
    std::transform(f64.data(), f64.data() + f64.size(), out.data(),
                   [](double v) { return static_cast<float>(v); });
    return out;
}

xt::xarray<double> SafetensorsEntry::to_double() const
{
    if (dtype == "F64")
    {
        return f64;
    }
    auto out = xt::xarray<double>::from_shape(f32.shape());
    std::copy(f32.data(), f32.data() + f32.size(), out.data());
    return out;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const
{
    for (const auto& t : tensors)
    {
        if (t.name == name)
        {
            return &t;
        }
    }
    return nullptr;
}

namespace
{

constexpr const char* kMetadataKey = "__metadata__";
/// The reference implementation refuses headers above 100 MB; so do we (a corrupt length field
/// must not make us allocate gigabytes).
constexpr std::uint64_t kMaxHeader = 100'000'000;

std::size_t dtype_size(const std::string& dtype)
{
    if (dtype == "F32")
    {
        return 4;
    }
    if (dtype == "F64")
    {
        return 8;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Reading

class Reader
{
  public:
    explicit Reader(const std::string& path)
      : path_(path)
    {
    }

    [[noreturn]] void fail(const std::string& what) const
    {
        throw IoError(detail::cat("tg::nn::read_safetensors: ", path_, ": ", what));
    }
    [[noreturn]] void fail(const std::string& tensor, const std::string& what) const
    {
        fail(detail::cat("tensor \"", tensor, "\": ", what));
    }

    std::vector<char> slurp() const
    {
        std::error_code ec;
        if (std::filesystem::is_directory(path_, ec))
        {
            fail("is a directory");
        }
        errno = 0;
        std::ifstream in(path_, std::ios::binary);
        if (!in)
        {
            const int err = errno;
            fail(std::filesystem::exists(path_, ec)
                   ? detail::cat("cannot open: ", err != 0 ? std::strerror(err) : "unknown error")
                   : std::string("no such file"));
        }
        std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        if (in.bad())
        {
            fail("read error");
        }
        return bytes;
    }

    /// A non-negative integer field (shape entry or offset).
    std::uint64_t index(const Json& v, const std::string& tensor, const char* field) const
    {
        if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
        {
            fail(tensor, detail::cat("\"", field, "\" must hold non-negative integers, found ", v.dump()));
        }
        return v.get<std::uint64_t>();
    }

    SafetensorsEntry entry(const std::string& name, const Json& info, std::uint64_t& begin,
                           std::uint64_t& end, std::uint64_t buffer_size) const
    {
        if (!info.is_object())
        {
            fail(name, detail::cat("expected an object {dtype, shape, data_offsets}, found ", info.dump()));
        }
        for (const char* field : {"dtype", "shape", "data_offsets"})
        {
            if (!info.contains(field))
            {
                fail(name, detail::cat("missing field \"", field, "\""));
            }
        }
        SafetensorsEntry e;
        e.name = name;
        const Json& dtype = info["dtype"];
        if (!dtype.is_string())
        {
            fail(name, detail::cat("\"dtype\" must be a string, found ", dtype.dump()));
        }
        e.dtype = dtype.get<std::string>();
        const std::size_t elem = dtype_size(e.dtype);
        if (elem == 0)
        {
            fail(name, detail::cat("unsupported dtype \"", e.dtype, "\" (tapegrad reads F32 and F64)"));
        }
        const Json& shape = info["shape"];
        if (!shape.is_array())
        {
            fail(name, detail::cat("\"shape\" must be an array, found ", shape.dump()));
        }
        std::uint64_t bytes = elem;
        for (const Json& d : shape)
        {
            const std::uint64_t v = index(d, name, "shape");
            e.shape.push_back(static_cast<std::size_t>(v));
            if (v != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / v)
            {
                fail(name, detail::cat("shape ", shape.dump(), " overflows"));
            }
            bytes *= v;
        }
        const Json& offsets = info["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2)
        {
            fail(name, detail::cat("\"data_offsets\" must be [begin, end], found ", offsets.dump()));
        }
        begin = index(offsets[0], name, "data_offsets");
        end = index(offsets[1], name, "data_offsets");
        if (begin > end)
        {
            fail(name, detail::cat("data_offsets [", begin, ", ", end, "] end before they begin"));
        }
        if (end - begin != bytes)
        {
            fail(name,
                 detail::cat("data_offsets [", begin, ", ", end, "] span ", end - begin, " bytes but shape ",
                             shape_str(e.shape), " of ", e.dtype, " needs ", bytes));
        }
        if (end > buffer_size)
        {
            fail(name, detail::cat("data_offsets [", begin, ", ", end, "] lie outside the data buffer of ",
                                   buffer_size, " bytes"));
        }
        return e;
    }

  private:
    std::string path_;
};

struct DuplicateKey
{
};

/// Throws DuplicateKey on a repeated key in any object of the header (nlohmann::json would keep the last
/// one).
struct DuplicateKeyCheck
{
    std::vector<std::set<std::string>> open;
    std::string duplicate;

    bool operator()(int /*depth*/, Json::parse_event_t event, Json& parsed)
    {
        if (event == Json::parse_event_t::object_start)
        {
            open.emplace_back();
        }
        else if (event == Json::parse_event_t::object_end)
        {
            open.pop_back();
        }
        else if (event == Json::parse_event_t::key && !open.back().insert(parsed.get<std::string>()).second)
        {
            duplicate = parsed.get<std::string>();
            throw DuplicateKey{};
        }
        return true;
    }
};

struct Located
{
    SafetensorsEntry entry;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
};

} // namespace

SafetensorsFile read_safetensors(const std::string& path)
{
    const Reader r(path);
    const std::vector<char> bytes = r.slurp();
    if (bytes.size() < 8)
    {
        r.fail(detail::cat("truncated: the file holds ", bytes.size(),
                           " bytes, less than the 8-byte header length"));
    }
    std::uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    if (header_len > bytes.size() - 8)
    {
        r.fail(detail::cat("truncated: the header length is ", header_len, " bytes but only ",
                           bytes.size() - 8, " bytes follow it"));
    }
    if (header_len > kMaxHeader)
    {
        r.fail(detail::cat("the header length ", header_len, " exceeds the format's limit of ", kMaxHeader,
                           " bytes"));
    }
    const char* header_begin = bytes.data() + 8;
    const char* buffer = header_begin + header_len;
    const std::uint64_t buffer_size = bytes.size() - 8 - header_len;

    Json header;
    auto check = std::make_shared<DuplicateKeyCheck>();
    try
    {
        header = Json::parse(header_begin, buffer,
                             [check](int d, Json::parse_event_t e, Json& j) { return (*check)(d, e, j); });
    }
    catch (const Json::exception& e)
    {
        r.fail(detail::cat("invalid JSON header: ", e.what()));
    }
    catch (const DuplicateKey&)
    {
        r.fail(detail::cat("invalid JSON header: the key \"", check->duplicate, "\" appears twice"));
    }
    if (!header.is_object())
    {
        r.fail(detail::cat("the JSON header must be an object, found ", header.type_name()));
    }

    SafetensorsFile out;
    std::vector<Located> found;
    for (const auto& [name, info] : header.items())
    {
        if (name == kMetadataKey)
        {
            if (!info.is_object())
            {
                r.fail(detail::cat("\"__metadata__\" must be an object of strings, found ", info.dump()));
            }
            for (const auto& [key, value] : info.items())
            {
                if (!value.is_string())
                {
                    r.fail(detail::cat("\"__metadata__\" entry \"", key, "\" must be a string, found ",
                                       value.dump()));
                }
                out.metadata.emplace(key, value.get<std::string>());
            }
            continue;
        }
        Located l;
        l.entry = r.entry(name, info, l.begin, l.end, buffer_size);
        found.push_back(std::move(l));
    }

    std::sort(found.begin(), found.end(),
              [](const Located& a, const Located& b)
              { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
    std::uint64_t covered = 0;
    for (std::size_t i = 0; i < found.size(); ++i)
    {
        const Located& l = found[i];
        if (l.begin < covered)
        {
            const Located& prev = found[i - 1];
            r.fail(l.entry.name, detail::cat("data_offsets [", l.begin, ", ", l.end, "] overlap tensor \"",
                                             prev.entry.name, "\" at [", prev.begin, ", ", prev.end, "]"));
        }
        if (l.begin > covered)
        {
            r.fail(l.entry.name,
                   detail::cat("data_offsets [", l.begin, ", ", l.end, "] leave a gap: bytes [", covered,
                               ", ", l.begin, ") of the data buffer belong to no tensor"));
        }
        covered = l.end;
    }
    if (covered != buffer_size)
    {
        r.fail(detail::cat("trailing bytes: the tensors cover ", covered,
                           " bytes of the data buffer, which holds ", buffer_size, " (",
                           buffer_size - covered, " bytes belong to no tensor)"));
    }

    out.tensors.reserve(found.size());
    for (Located& l : found)
    {
        SafetensorsEntry& e = l.entry;
        void* dst = nullptr;
        if (e.dtype == "F32")
        {
            e.f32 = xt::xarray<float>::from_shape(e.shape);
            dst = e.f32.data();
        }
        else
        {
            e.f64 = xt::xarray<double>::from_shape(e.shape);
            dst = e.f64.data();
        }
        if (l.end > l.begin)
        {
            std::memcpy(dst, buffer + l.begin, l.end - l.begin);
        }
        out.tensors.push_back(std::move(e));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace
{

struct Blob
{
    const std::string* name;
    const char* dtype;
    Shape shape;
    const void* data;
    std::size_t bytes;
};

/// Removes the temporary file unless released.
class TempFile
{
  public:
    explicit TempFile(std::string path)
      : path_(std::move(path))
    {
    }
    ~TempFile()
    {
        if (fd_ >= 0)
        {
            ::close(fd_);
        }
        if (!released_)
        {
            std::remove(path_.c_str());
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    const std::string& path() const { return path_; }
    int& fd() { return fd_; }
    void release() { released_ = true; }

  private:
    std::string path_;
    int fd_ = -1;
    bool released_ = false;
};

[[noreturn]] void write_fail(const std::string& path, const std::string& what)
{
    throw IoError(detail::cat("tg::nn::write_safetensors: ", path, ": ", what,
                              " (nothing was written; an existing file at that path is unchanged)"));
}

void write_all(int fd, const void* data, std::size_t n, const std::string& path, const std::string& tmp)
{
    const char* p = static_cast<const char*>(data);
    while (n > 0)
    {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0)
        {
            if (errno == EINTR)
            {
                continue;
            }
            write_fail(path, detail::cat("cannot write ", tmp, ": ", std::strerror(errno)));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void write_blobs(const std::string& path, const std::vector<Blob>& blobs,
                 const std::map<std::string, std::string>& metadata)
{
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty())
    {
        header[kMetadataKey] = metadata;
    }
    std::uint64_t offset = 0;
    for (const Blob& b : blobs)
    {
        if (b.name->empty() || *b.name == kMetadataKey)
        {
            throw ValueError(
              detail::cat("tg::nn::write_safetensors: ", path, ": the tensor name \"", *b.name,
                          "\" is not allowed (names must be non-empty and not \"__metadata__\")"));
        }
        if (header.contains(*b.name))
        {
            throw ValueError(detail::cat("tg::nn::write_safetensors: ", path, ": the tensor name \"", *b.name,
                                         "\" appears twice"));
        }
        header[*b.name] = {
          {"dtype", b.dtype}, {"shape", b.shape}, {"data_offsets", {offset, offset + b.bytes}}};
        offset += b.bytes;
    }
    std::string text;
    try
    {
        text = header.dump();
    }
    catch (const nlohmann::ordered_json::exception& e)
    {
        throw ValueError(detail::cat("tg::nn::write_safetensors: ", path,
                                     ": a tensor name or metadata string is not valid UTF-8 (", e.what(),
                                     ")"));
    }
    // Pad with spaces so the data buffer starts on an 8-byte boundary, as the reference writer does.
    text.append((8 - text.size() % 8) % 8, ' ');
    const std::uint64_t header_len = text.size();

    TempFile tmp(detail::cat(path, ".tmp.", ::getpid()));
    tmp.fd() = ::open(tmp.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (tmp.fd() < 0)
    {
        write_fail(path, detail::cat("cannot create ", tmp.path(), ": ", std::strerror(errno)));
    }
    write_all(tmp.fd(), &header_len, 8, path, tmp.path());
    write_all(tmp.fd(), text.data(), text.size(), path, tmp.path());
    for (const Blob& b : blobs)
    {
        write_all(tmp.fd(), b.data, b.bytes, path, tmp.path());
    }
    if (::fsync(tmp.fd()) != 0)
    {
        write_fail(path, detail::cat("cannot flush ", tmp.path(), " to disk: ", std::strerror(errno)));
    }
    const int fd = tmp.fd();
    tmp.fd() = -1;
    if (::close(fd) != 0)
    {
        write_fail(path, detail::cat("cannot close ", tmp.path(), ": ", std::strerror(errno)));
    }
    if (std::rename(tmp.path().c_str(), path.c_str()) != 0)
    {
        write_fail(path, detail::cat("cannot rename ", tmp.path(), " over it: ", std::strerror(errno)));
    }
    tmp.release();
    // Make the rename itself durable. Best effort: the new file is complete either way.
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
    {
        ::fsync(dfd);
        ::close(dfd);
    }
}

template <class T>
std::vector<Blob> tensor_blobs(const std::string& path,
                               const std::vector<std::pair<std::string, BasicTensor<T>>>& tensors)
{
    std::vector<Blob> blobs;
    blobs.reserve(tensors.size());
    for (const auto& [name, t] : tensors)
    {
        if (!t.defined())
        {
            throw ValueError(
              detail::cat("tg::nn::write_safetensors: ", path, ": tensor \"", name, "\" is undefined"));
        }
        blobs.push_back({&name, std::is_same_v<T, float> ? "F32" : "F64", t.shape(), t.value().data(),
                         t.numel() * sizeof(T)});
    }
    return blobs;
}

} // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata)
{
    write_blobs(path, tensor_blobs(path, tensors), metadata);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor64>>& tensors,
                       const std::map<std::string, std::string>& metadata)
{
    write_blobs(path, tensor_blobs(path, tensors), metadata);
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata)
{
    std::vector<Blob> blobs;
    blobs.reserve(tensors.size());
    for (const SafetensorsEntry& e : tensors)
    {
        const bool f32 = e.dtype == "F32";
        if (!f32 && e.dtype != "F64")
        {
            throw ValueError(detail::cat("tg::nn::write_safetensors: ", path, ": tensor \"", e.name,
                                         "\": unsupported dtype \"", e.dtype, "\" (F32 or F64)"));
        }
        const Shape actual = f32 ? Shape(e.f32.shape().begin(), e.f32.shape().end())
                                 : Shape(e.f64.shape().begin(), e.f64.shape().end());
        if (actual != e.shape)
        {
            throw ShapeError(detail::cat("tg::nn::write_safetensors: ", path, ": tensor \"", e.name,
                                         "\": shape ", shape_str(e.shape), " but its ", e.dtype,
                                         " values have shape ", shape_str(actual)));
        }
        blobs.push_back(
          {&e.name, f32 ? "F32" : "F64", e.shape,
           f32 ? static_cast<const void*>(e.f32.data()) : static_cast<const void*>(e.f64.data()),
           f32 ? e.f32.size() * 4 : e.f64.size() * 8});
    }
    write_blobs(path, blobs, metadata);
}

} // namespace tapegrad::nn
