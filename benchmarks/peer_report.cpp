// Merges the JSON lines of peer_tapegrad and peer_torch into one table (Markdown, on stdout) and
// one JSON file. Several lines for the same workload and thread count (one per round of
// compare.sh) are merged: the median of their medians, the minimum of their minima, the maximum
// of their maxima.
//
//     peer_report --tapegrad tg.jsonl [--libtorch torch.jsonl] [--out results.json]
//                 [--peak-gflops-per-thread G] [--meta key=value]...

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using nlohmann::json;

namespace
{

/// FP32 FMA peak of one core of anchors.md's machine (485 GFLOP/s on 2), the default when the
/// run does not say (--peak-gflops-per-thread, which compare.sh measures with fma_peak).
constexpr double anchors_peak_gflops_per_thread = 242.5;
/// A row whose slowest round/repetition is this much slower than its fastest is marked noisy.
constexpr double noisy_ratio = 1.5;

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// All lines of one side for one (workload, threads).
struct Runs
{
    std::vector<double> ms, min_ms, max_ms;
    std::optional<double> flops, bytes;
    std::map<std::string, std::vector<double>> extra; // numeric extras, one value per round
};

struct Merged
{
    double ms, min_ms, max_ms;
    std::size_t rounds;
    std::map<std::string, double> extra;
    json to_json() const
    {
        return {{"ms", ms}, {"min_ms", min_ms}, {"max_ms", max_ms}, {"rounds", rounds}, {"extra", extra}};
    }
};

Merged merge(const Runs& r)
{
    Merged m{median(r.ms),
             *std::min_element(r.min_ms.begin(), r.min_ms.end()),
             *std::max_element(r.max_ms.begin(), r.max_ms.end()),
             r.ms.size(),
             {}};
    for (const auto& [k, v] : r.extra)
    {
        m.extra[k] = median(v);
    }
    return m;
}

using Key = std::pair<std::string, int>; // workload, threads

struct Side
{
    std::map<Key, Runs> runs;
    std::vector<std::string> order; // workloads in order of first appearance
};

void read_side(const std::string& path, Side& side, std::vector<std::string>& order)
{
    std::ifstream in(path);
    if (!in)
    {
        throw std::runtime_error("cannot read " + path);
    }
    std::string line;
    int line_no = 0;
    while (std::getline(in, line))
    {
        ++line_no;
        if (line.empty())
        {
            continue;
        }
        json j;
        try
        {
            j = json::parse(line);
        }
        catch (const json::exception& e)
        {
            throw std::runtime_error(path + ":" + std::to_string(line_no) + ": " + e.what());
        }
        const std::string w = j.at("workload");
        Runs& r = side.runs[{w, j.at("threads").get<int>()}];
        r.ms.push_back(j.at("ms"));
        r.min_ms.push_back(j.at("min_ms"));
        r.max_ms.push_back(j.at("max_ms"));
        if (!j.at("flops").is_null())
        {
            r.flops = j.at("flops").get<double>();
        }
        if (!j.at("bytes").is_null())
        {
            r.bytes = j.at("bytes").get<double>();
        }
        if (const auto extra = j.find("extra"); extra != j.end() && extra->is_object())
        {
            for (const auto& [k, v] : extra->items())
            {
                if (v.is_number() && k != "calls_per_batch" && k != "repetitions")
                {
                    r.extra[k].push_back(v.get<double>());
                }
            }
        }
        if (std::find(order.begin(), order.end(), w) == order.end())
        {
            order.push_back(w);
        }
    }
}

/// One printed row: a quantity of one workload at one thread count.
struct Row
{
    std::string workload;
    int threads;
    std::string unit;
    std::optional<double> tapegrad, libtorch;
    bool lower_is_better = true;
    std::optional<double> tg_gflops, torch_gflops;
    bool noisy = false;
};

std::string fmt(std::optional<double> v, const char* spec)
{
    if (!v)
    {
        return "–";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, spec, *v);
    return buf;
}

/// The value shown for a timing, in the row's unit.
double scaled(const std::string& workload, double ms)
{
    if (workload.rfind("W4", 0) == 0)
    {
        return ms * 1000.0 / 1000.0; // a chain of 1000 ops: µs per op
    }
    if (workload.rfind("W5", 0) == 0)
    {
        return ms * 1000.0; // µs per step
    }
    return ms;
}

std::string unit_of(const std::string& workload)
{
    if (workload.rfind("W4", 0) == 0)
    {
        return "µs/op";
    }
    if (workload.rfind("W5", 0) == 0)
    {
        return "µs/step";
    }
    return "ms";
}

bool is_noisy(const std::optional<Merged>& m)
{
    return m && m->min_ms > 0 && m->max_ms / m->min_ms > noisy_ratio;
}

} // namespace

int main(int argc, char** argv)
{
    try
    {
        std::string tg_path, torch_path, out_path = "benchmarks/results.json";
        json meta = json::object();
        double peak_gflops_per_thread = anchors_peak_gflops_per_thread;
        bool peak_measured = false;
        for (int i = 1; i < argc; ++i)
        {
            const std::string opt = argv[i];
            if (i + 1 >= argc)
            {
                throw std::invalid_argument(opt + " needs a value");
            }
            const std::string val = argv[++i];
            if (opt == "--tapegrad")
            {
                tg_path = val;
            }
            else if (opt == "--libtorch")
            {
                torch_path = val;
            }
            else if (opt == "--out")
            {
                out_path = val;
            }
            else if (opt == "--peak-gflops-per-thread")
            {
                peak_gflops_per_thread = std::stod(val);
                peak_measured = true;
                if (!(peak_gflops_per_thread > 0))
                {
                    throw std::invalid_argument("--peak-gflops-per-thread must be positive, got " + val);
                }
            }
            else if (opt == "--meta")
            {
                const auto eq = val.find('=');
                meta[val.substr(0, eq)] = eq == std::string::npos ? "" : val.substr(eq + 1);
            }
            else
            {
                throw std::invalid_argument("unknown option " + opt);
            }
        }
        if (tg_path.empty())
        {
            throw std::invalid_argument("usage: peer_report --tapegrad FILE [--libtorch FILE] [--out FILE] "
                                        "[--peak-gflops-per-thread G] [--meta key=value]...");
        }

        Side tg, torch;
        std::vector<std::string> order;
        read_side(tg_path, tg, order);
        const bool have_torch = !torch_path.empty();
        if (have_torch)
        {
            read_side(torch_path, torch, order);
        }

        std::vector<Key> keys;
        for (const auto& w : order)
        {
            for (const auto* side : {&tg.runs, &torch.runs})
            {
                for (const auto& [k, r] : *side)
                {
                    if (k.first == w && std::find(keys.begin(), keys.end(), k) == keys.end())
                    {
                        keys.push_back(k);
                    }
                }
            }
        }
        std::stable_sort(keys.begin(), keys.end(),
                         [&](const Key& a, const Key& b)
                         {
                             const auto ia = std::find(order.begin(), order.end(), a.first) - order.begin();
                             const auto ib = std::find(order.begin(), order.end(), b.first) - order.begin();
                             return ia != ib ? ia < ib : a.second < b.second;
                         });

        std::vector<Row> rows;
        json out_rows = json::array();
        for (const auto& key : keys)
        {
            const auto& [w, threads] = key;
            std::optional<Merged> mt, mo;
            std::optional<double> flops, bytes;
            if (auto it = tg.runs.find(key); it != tg.runs.end())
            {
                mt = merge(it->second);
                flops = it->second.flops;
                bytes = it->second.bytes;
            }
            if (auto it = torch.runs.find(key); it != torch.runs.end())
            {
                mo = merge(it->second);
                flops = flops ? flops : it->second.flops;
                bytes = bytes ? bytes : it->second.bytes;
            }
            auto extra_of = [](const std::optional<Merged>& m, const char* k) -> std::optional<double>
            {
                if (!m || !m->extra.count(k))
                {
                    return std::nullopt;
                }
                return m->extra.at(k);
            };
            auto ms_of = [](const std::optional<Merged>& m) -> std::optional<double>
            { return m ? std::optional<double>(m->ms) : std::nullopt; };

            json jr{{"workload", w}, {"threads", threads}, {"unit", unit_of(w)}};
            jr["tapegrad"] = mt ? mt->to_json() : json(nullptr);
            jr["libtorch"] = mo ? mo->to_json() : json(nullptr);
            jr["flops"] = flops ? json(*flops) : json(nullptr);
            jr["bytes"] = bytes ? json(*bytes) : json(nullptr);
            jr["noisy"] = is_noisy(mt) || is_noisy(mo);
            if (w.find("epoch") == std::string::npos)
            {
                jr["tapegrad_value"] = mt ? json(scaled(w, mt->ms)) : json(nullptr);
                jr["libtorch_value"] = mo ? json(scaled(w, mo->ms)) : json(nullptr);
            }
            if (mt && mo)
            {
                jr["speedup"] = mo->ms / mt->ms;
            }
            if (flops)
            {
                jr["peak_gflops"] = peak_gflops_per_thread * threads;
                if (mt)
                {
                    jr["tapegrad_gflops"] = *flops / (mt->ms * 1e6);
                    jr["tapegrad_pct_peak"] =
                      100.0 * *flops / (mt->ms * 1e6) / (peak_gflops_per_thread * threads);
                }
                if (mo)
                {
                    jr["libtorch_gflops"] = *flops / (mo->ms * 1e6);
                }
            }
            out_rows.push_back(jr);

            if (w.find("epoch") != std::string::npos)
            {
                rows.push_back({w,
                                threads,
                                "wall s",
                                extra_of(mt, "wall_s"),
                                extra_of(mo, "wall_s"),
                                true,
                                {},
                                {},
                                false});
                rows.push_back({w,
                                threads,
                                "peak RSS MiB",
                                extra_of(mt, "peak_rss_mib"),
                                extra_of(mo, "peak_rss_mib"),
                                true,
                                {},
                                {},
                                false});
                rows.push_back({w,
                                threads,
                                "test accuracy",
                                extra_of(mt, "test_accuracy"),
                                extra_of(mo, "test_accuracy"),
                                false,
                                {},
                                {},
                                false});
                continue;
            }
            Row r{w, threads, unit_of(w), {}, {}, true, {}, {}, is_noisy(mt) || is_noisy(mo)};
            if (mt)
            {
                r.tapegrad = scaled(w, mt->ms);
            }
            if (mo)
            {
                r.libtorch = scaled(w, mo->ms);
            }
            if (flops)
            {
                r.tg_gflops = mt ? std::optional<double>(*flops / (*ms_of(mt) * 1e6)) : std::nullopt;
                r.torch_gflops = mo ? std::optional<double>(*flops / (*ms_of(mo) * 1e6)) : std::nullopt;
            }
            rows.push_back(r);
        }

        std::cout << "| workload | threads | unit | tapegrad | "
                  << (have_torch ? "LibTorch | speed-up (LibTorch/tapegrad) | " : "")
                  << "tapegrad GFLOP/s | % of peak |" << (have_torch ? " LibTorch GFLOP/s |" : "") << "\n"
                  << "|---|---|---|---|" << (have_torch ? "---|---|" : "") << "---|---|"
                  << (have_torch ? "---|" : "") << "\n";
        bool any_noisy = false;
        for (const auto& r : rows)
        {
            const bool acc = r.unit == "test accuracy";
            const char* spec = acc ? "%.4f" : (r.unit == "ms" ? "%.3f" : "%.2f");
            std::optional<double> speedup;
            if (r.tapegrad && r.libtorch && r.lower_is_better && *r.tapegrad > 0)
            {
                speedup = *r.libtorch / *r.tapegrad;
            }
            std::optional<double> pct;
            if (r.tg_gflops)
            {
                pct = 100.0 * *r.tg_gflops / (peak_gflops_per_thread * r.threads);
            }
            any_noisy = any_noisy || r.noisy;
            std::cout << "| " << r.workload << (r.noisy ? " *" : "") << " | " << r.threads << " | " << r.unit
                      << " | " << fmt(r.tapegrad, spec) << " | ";
            if (have_torch)
            {
                std::cout << fmt(r.libtorch, spec) << " | " << fmt(speedup, "%.2f×") << " | ";
            }
            std::cout << fmt(r.tg_gflops, "%.1f") << " | " << fmt(pct, "%.0f %%") << " |";
            if (have_torch)
            {
                std::cout << " " << fmt(r.torch_gflops, "%.1f") << " |";
            }
            std::cout << "\n";
        }
        char peak_line[200];
        std::snprintf(peak_line, sizeof peak_line, "Peak = %.1f GFLOP/s per thread (%s).",
                      peak_gflops_per_thread,
                      peak_measured ? "an FMA loop measured on this machine by fma_peak"
                                    : "shared/research/anchors.md's machine; not measured here");
        std::cout << "\nTimes are medians over rounds of medians over repetitions. " << peak_line << "\n";
        if (any_noisy)
        {
            std::cout << "* noisy: the slowest repetition was more than " << noisy_ratio
                      << "× the fastest on one side; rerun on an idle machine.\n";
        }
        if (!have_torch)
        {
            std::cout << "LibTorch results not given: tapegrad column only.\n";
        }

        json out{{"meta", meta},
                 {"peak_gflops_per_thread", peak_gflops_per_thread},
                 {"peak_measured", peak_measured},
                 {"libtorch", have_torch},
                 {"rows", out_rows}};
        std::ofstream f(out_path);
        if (!f)
        {
            throw std::runtime_error("cannot write " + out_path);
        }
        f << out.dump(2) << "\n";
        std::cout << "Wrote " << out_path << "\n";
    }
    catch (const std::exception& e)
    {
        std::cerr << "peer_report: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
