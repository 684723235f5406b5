#pragma once
/// @file peer_common.hpp
/// What the tapegrad and LibTorch peer benchmarks share, so that both sides run the same
/// workloads on the same numbers: the workload table (ids, shapes, FLOP counts), the command
/// line, the deterministic random values (inputs, initial weights, data order), Fashion-MNIST
/// loading and batching, and the JSON-lines output. Nothing here depends on either library.

#include "timing.hpp"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace peer
{

// ---------------------------------------------------------------------------------------------
// Workloads (ids and shapes are the ones in shared/research/anchors.md)

/// W1: conv2d forward + backward (input, weight and bias gradients).
struct ConvCase
{
    const char* id;
    std::int64_t n, c, k, h, w, kernel, stride, padding;

    std::int64_t out_h() const { return (h + 2 * padding - kernel) / stride + 1; }
    std::int64_t out_w() const { return (w + 2 * padding - kernel) / stride + 1; }
    /// Forward, input gradient and weight gradient each cost 2 N K Ho Wo C kh kw (bias: negligible).
    double flops() const
    {
        return 3.0 * 2.0 * double(n * k * out_h() * out_w()) * double(c * kernel * kernel);
    }
};
inline constexpr std::array<ConvCase, 4> conv_cases{{
  {"W1 S1", 64, 1, 32, 28, 28, 3, 1, 1},
  {"W1 S2", 64, 32, 64, 14, 14, 3, 1, 1},
  {"W1 S3", 32, 3, 6, 32, 32, 5, 1, 0},
  {"W1 S4", 16, 64, 128, 16, 16, 3, 2, 1},
}};

/// W2: 2x2 stride-2 pooling forward + backward on this input.
inline constexpr std::array<std::int64_t, 4> pool_input{64, 32, 28, 28};
/// Compulsory memory traffic: read x, write y (forward); read dy, write dx (backward), float32.
inline double pool_bytes()
{
    const double in = double(pool_input[0] * pool_input[1] * pool_input[2] * pool_input[3]);
    return 2.0 * 4.0 * (in + in / 4.0);
}

/// W6: forward-only matrix products [m, k] @ [k, n].
struct GemmCase
{
    const char* id;
    std::int64_t m, k, n;
    double flops() const { return 2.0 * double(m) * double(k) * double(n); }
};
inline constexpr std::array<GemmCase, 3> gemm_cases{{
  {"W6 64x3136x128", 64, 3136, 128},
  {"W6 128x3136x64", 128, 3136, 64},
  {"W6 1024^3", 1024, 1024, 1024},
}};

/// W4: length of the elementwise chain and the tensor sizes it runs on.
inline constexpr int chain_length = 1000;
inline constexpr std::array<std::int64_t, 2> chain_sizes{1, 64};
inline constexpr float chain_factor = 0.999f;

/// W3: the fashion CNN and its training setup.
inline constexpr std::int64_t batch_size = 64;
inline constexpr float learning_rate = 0.01f;
inline constexpr float momentum = 0.9f;
inline constexpr std::uint64_t seed = 42;

struct ParamSpec
{
    std::vector<std::int64_t> shape;
    /// PyTorch's default init draws weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    std::int64_t fan_in;
};
/// conv(1->32, k3) conv(32->64, k3) linear(3136->128) linear(128->10): weight, bias, weight, ...
inline std::vector<ParamSpec> fashion_cnn_params()
{
    return {{{32, 1, 3, 3}, 9},  {{32}, 9},     {{64, 32, 3, 3}, 288}, {{64}, 288},
            {{128, 3136}, 3136}, {{128}, 3136}, {{10, 128}, 128},      {{10}, 128}};
}
/// FLOPs of one training step at batch 64: the forward, the weight gradients, and the input
/// gradients of every layer except the first (the images need none).
inline double fashion_cnn_step_flops()
{
    const double n = double(batch_size);
    const double conv1 = 2.0 * n * 32 * 28 * 28 * 1 * 9;
    const double conv2 = 2.0 * n * 64 * 14 * 14 * 32 * 9;
    const double fc1 = 2.0 * n * 3136 * 128;
    const double fc2 = 2.0 * n * 128 * 10;
    return 2.0 * conv1 + 3.0 * (conv2 + fc1 + fc2);
}

/// W5: the seed-002 net. conv 1->1 k3 (w, b), linear 4->1 (w, b): 15 parameters.
inline std::vector<ParamSpec> lecture_net_params()
{
    return {{{1, 1, 3, 3}, 9}, {{1}, 9}, {{1, 4}, 4}, {{1}, 4}};
}
inline constexpr float lecture_lr = 0.01f;

// ---------------------------------------------------------------------------------------------
// Deterministic values (the same on both sides; std::mt19937_64's output is fixed by the standard)

/// n values uniform in [lo, hi) from a stream seeded with `s`.
inline std::vector<float> uniform_values(std::size_t n, float lo, float hi, std::uint64_t s)
{
    std::mt19937_64 gen(s);
    std::vector<float> v(n);
    for (auto& x : v)
    {
        const float u = static_cast<float>(gen() >> 40) * 0x1.0p-24f;
        x = lo + (hi - lo) * u;
    }
    return v;
}

inline std::size_t numel(const std::vector<std::int64_t>& shape)
{
    std::size_t n = 1;
    for (auto d : shape)
    {
        n *= static_cast<std::size_t>(d);
    }
    return n;
}

/// Initial values for each parameter, drawn in order, as PyTorch's default layer init.
inline std::vector<std::vector<float>> init_params(const std::vector<ParamSpec>& specs, std::uint64_t s)
{
    std::vector<std::vector<float>> out;
    for (std::size_t i = 0; i < specs.size(); ++i)
    {
        const float bound = 1.0f / std::sqrt(static_cast<float>(specs[i].fan_in));
        out.push_back(uniform_values(numel(specs[i].shape), -bound, bound, s + i));
    }
    return out;
}

/// Class labels in [0, classes).
inline std::vector<std::int64_t> random_labels(std::size_t n, std::int64_t classes, std::uint64_t s)
{
    std::mt19937_64 gen(s);
    std::vector<std::int64_t> v(n);
    for (auto& x : v)
    {
        x = static_cast<std::int64_t>(gen() % static_cast<std::uint64_t>(classes));
    }
    return v;
}

/// A Fisher-Yates permutation of 0..n-1.
inline std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t s)
{
    std::mt19937_64 gen(s);
    std::vector<std::size_t> idx(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        idx[i] = i;
    }
    for (std::size_t i = n; i-- > 1;)
    {
        std::swap(idx[i], idx[gen() % (i + 1)]);
    }
    return idx;
}

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST (IDX files, gzip), kept as uint8 and converted per batch

struct Dataset
{
    std::size_t n = 0, rows = 0, cols = 0;
    std::vector<std::uint8_t> images; // n * rows * cols
    std::vector<std::uint8_t> labels; // n
};

namespace detail
{
/// An open gzip file that reads exactly the bytes asked for.
class GzReader
{
  public:
    explicit GzReader(std::string path)
      : path_(std::move(path))
      , f_(gzopen(path_.c_str(), "rb"))
    {
        if (f_ == nullptr)
        {
            throw std::runtime_error("cannot open " + path_);
        }
    }
    ~GzReader() { gzclose(f_); }
    GzReader(const GzReader&) = delete;
    GzReader& operator=(const GzReader&) = delete;

    void read(std::uint8_t* dst, std::size_t n)
    {
        while (n > 0)
        {
            const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n, 1u << 30));
            const int got = gzread(f_, dst, chunk);
            if (got <= 0)
            {
                throw std::runtime_error(path_ + ": truncated or corrupt IDX file");
            }
            dst += got;
            n -= static_cast<std::size_t>(got);
        }
    }
    /// The next big-endian 32-bit integer.
    std::uint32_t be32()
    {
        std::array<std::uint8_t, 4> b{};
        read(b.data(), 4);
        return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
               std::uint32_t(b[3]);
    }

  private:
    std::string path_;
    gzFile f_;
};
} // namespace detail

/// Reads `<dir>/<split>-images-idx3-ubyte.gz` and the matching labels (split: "train" or "t10k")
/// straight into their final buffers, so loading adds nothing to the peak RSS.
inline Dataset load_fashion_mnist(const std::string& dir, const std::string& split)
{
    detail::GzReader img(dir + "/" + split + "-images-idx3-ubyte.gz");
    detail::GzReader lab(dir + "/" + split + "-labels-idx1-ubyte.gz");
    if (img.be32() != 0x803 || lab.be32() != 0x801)
    {
        throw std::runtime_error("not an IDX image/label pair: " + dir + "/" + split);
    }
    Dataset d;
    d.n = img.be32();
    d.rows = img.be32();
    d.cols = img.be32();
    if (lab.be32() != d.n)
    {
        throw std::runtime_error("image and label counts differ in " + dir + "/" + split);
    }
    d.images.resize(d.n * d.rows * d.cols);
    d.labels.resize(d.n);
    img.read(d.images.data(), d.images.size());
    lab.read(d.labels.data(), d.labels.size());
    return d;
}

/// Writes images `order[first .. first+count)` as float32 in [0, 1] (NCHW, C = 1) to `x`, and their
/// labels to `y`.
inline void make_batch(const Dataset& d, const std::vector<std::size_t>& order, std::size_t first,
                       std::size_t count, float* x, std::int64_t* y)
{
    const std::size_t px = d.rows * d.cols;
    for (std::size_t b = 0; b < count; ++b)
    {
        const std::size_t i = order[first + b];
        const std::uint8_t* src = d.images.data() + i * px;
        for (std::size_t p = 0; p < px; ++p)
        {
            x[b * px + p] = static_cast<float>(src[p]) * (1.0f / 255.0f);
        }
        y[b] = d.labels[i];
    }
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Args
{
    int threads = 1;
    std::string workload = "all";
    std::string json;
    std::string data_dir = "/usr/share/datasets/fashion-mnist";
    TimingOptions timing;
};

inline constexpr const char* workload_help =
  "workloads: all (everything except the epoch), W1 W2 W3a W4 W5 W6 (groups), W3b or epoch,\n"
  "or one id with spaces written as '-' or '_' (W1-S2, W2-max, W6-1024^3); a comma list of these.";

inline Args parse_args(int argc, char** argv)
{
    Args a;
    auto value = [&](int& i) -> std::string
    {
        if (i + 1 >= argc)
        {
            throw std::invalid_argument(std::string(argv[i]) + " needs a value");
        }
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i)
    {
        const std::string opt = argv[i];
        if (opt == "--threads")
        {
            a.threads = std::stoi(value(i));
        }
        else if (opt == "--workload")
        {
            a.workload = value(i);
        }
        else if (opt == "--repetitions")
        {
            a.timing.repetitions = std::stoi(value(i));
        }
        else if (opt == "--batch-ms")
        {
            a.timing.batch_ms = std::stod(value(i));
        }
        else if (opt == "--json")
        {
            a.json = value(i);
        }
        else if (opt == "--data")
        {
            a.data_dir = value(i);
        }
        else if (opt == "--help" || opt == "-h")
        {
            std::cout << "usage: " << argv[0]
                      << " [--threads N] [--workload W] [--repetitions R] [--batch-ms MS] [--json FILE]"
                         " [--data DIR]\n"
                      << workload_help << "\nJSON lines are appended to FILE.\n";
            std::exit(0);
        }
        else
        {
            throw std::invalid_argument("unknown option " + opt + " (try --help)");
        }
    }
    if (a.threads < 1 || a.timing.repetitions < 1 || a.timing.batch_ms <= 0)
    {
        throw std::invalid_argument("--threads and --repetitions must be >= 1, --batch-ms > 0");
    }
    return a;
}

namespace detail
{
inline std::string normalise(std::string_view s)
{
    std::string out;
    for (char ch : s)
    {
        if (ch != ' ' && ch != '-' && ch != '_')
        {
            out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
        }
    }
    return out;
}
} // namespace detail

/// Whether `--workload` asks for workload `id` of `group` (W1, W2, W3a, W3b, W4, W5, W6).
inline bool selected(const Args& a, std::string_view id, std::string_view group)
{
    std::stringstream list(a.workload);
    std::string item;
    while (std::getline(list, item, ','))
    {
        const std::string w = detail::normalise(item);
        if ((w == "all" && group != "W3b") || w == detail::normalise(group) || w == detail::normalise(id) ||
            (w == "epoch" && group == "W3b"))
        {
            return true;
        }
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// Output

/// Peak resident set size of this process so far, in MiB.
inline double peak_rss_mib()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0; // ru_maxrss is in KiB on Linux
}

/// Appends one JSON line per result to the --json file and prints a readable line to stdout.
class Reporter
{
  public:
    Reporter(std::string side, const Args& a)
      : side_(std::move(side))
      , threads_(a.threads)
    {
        if (!a.json.empty())
        {
            file_.open(a.json, std::ios::app);
            if (!file_)
            {
                throw std::runtime_error("cannot open " + a.json + " for appending");
            }
        }
    }

    void add(const std::string& workload, double ms, double min_ms, double max_ms,
             std::optional<double> flops, std::optional<double> bytes, nlohmann::json extra)
    {
        nlohmann::json j{{"side", side_}, {"workload", workload}, {"threads", threads_},
                         {"ms", ms},      {"min_ms", min_ms},     {"max_ms", max_ms}};
        j["flops"] = flops ? nlohmann::json(*flops) : nlohmann::json(nullptr);
        j["bytes"] = bytes ? nlohmann::json(*bytes) : nlohmann::json(nullptr);
        j["extra"] = std::move(extra);
        if (file_.is_open())
        {
            file_ << j.dump() << '\n' << std::flush;
        }
        std::printf("%-9s %-16s t=%d %10.4f ms  [%.4f, %.4f]", side_.c_str(), workload.c_str(), threads_, ms,
                    min_ms, max_ms);
        if (flops)
        {
            std::printf("  %7.1f GFLOP/s", *flops / (ms * 1e6));
        }
        if (bytes)
        {
            std::printf("  %6.2f GB/s", *bytes / (ms * 1e6));
        }
        std::printf("\n");
        std::fflush(stdout);
    }

    void add(const std::string& workload, const Timing& t, std::optional<double> flops,
             std::optional<double> bytes, nlohmann::json extra = nlohmann::json::object())
    {
        extra["calls_per_batch"] = t.calls_per_batch;
        extra["repetitions"] = t.repetitions;
        add(workload, t.median_ms, t.min_ms, t.max_ms, flops, bytes, std::move(extra));
    }

  private:
    std::string side_;
    int threads_;
    std::ofstream file_;
};

} // namespace peer
