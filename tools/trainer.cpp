#include "trainer.hpp"

#include <nlohmann/json.hpp>
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace tapegrad::train
{

namespace
{
using Clock = std::chrono::steady_clock;

// Fashion-MNIST pixel statistics (of x / 255 over the training set).
constexpr float kMean = 0.2860f;
constexpr float kStd = 0.3530f;

bool is_footwear(std::int64_t label)
{
    return label == 5 || label == 7 || label == 9;
}

/// The lecture net's input: a 4x4 average (28x28 -> 7x7), then the 6x6 crop at the top left.
data::Dataset to_lecture(const data::Dataset& d)
{
    const std::size_t n = d.size();
    data::Dataset out;
    out.images = xt::xarray<std::uint8_t>::from_shape({n, 6, 6});
    out.labels.resize(n);
    out.num_classes = 2;
    const std::uint8_t* src = d.images.data();
    std::uint8_t* dst = out.images.data();
    for (std::size_t i = 0; i < n; ++i)
    {
        const std::uint8_t* img = src + i * 28 * 28;
        for (std::size_t r = 0; r < 6; ++r)
        {
            for (std::size_t c = 0; c < 6; ++c)
            {
                unsigned sum = 0;
                for (std::size_t a = 0; a < 4; ++a)
                {
                    for (std::size_t b = 0; b < 4; ++b)
                    {
                        sum += img[(4 * r + a) * 28 + 4 * c + b];
                    }
                }
                dst[(i * 6 + r) * 6 + c] = static_cast<std::uint8_t>((sum + 8) / 16);
            }
        }
        out.labels[i] = is_footwear(d.labels[i]) ? 1 : 0;
    }
    return out;
}

std::string clock_str(double seconds)
{
    const auto s = static_cast<long>(std::lround(std::max(seconds, 0.0)));
    std::ostringstream os;
    os << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
    return os.str();
}

class Progress
{
  public:
    Progress(int epoch, int epochs, std::size_t total, bool quiet)
      : epoch_(epoch)
      , epochs_(epochs)
      , total_(total)
      , quiet_(quiet)
      , tty_(isatty(STDERR_FILENO) != 0)
      , start_(Clock::now())
      , last_(start_)
    {
    }

    void update(std::size_t done, std::size_t images, double loss)
    {
        if (quiet_)
        {
            return;
        }
        const auto now = Clock::now();
        const bool end = done == total_;
        if (tty_ ? (!end && now - last_ < std::chrono::milliseconds(200))
                 : (!end && done * 4 / total_ == (done - 1) * 4 / total_))
        {
            return;
        }
        last_ = now;
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double rate = static_cast<double>(images) / std::max(elapsed, 1e-9);
        const double eta = elapsed / static_cast<double>(done) * static_cast<double>(total_ - done);
        constexpr int width = 28;
        const int filled = static_cast<int>(width * done / total_);
        std::ostringstream os;
        os << "epoch " << epoch_ << "/" << epochs_ << " ["
           << std::string(static_cast<std::size_t>(filled), '=') << (filled < width ? ">" : "")
           << std::string(static_cast<std::size_t>(std::max(0, width - filled - 1)), ' ') << "] " << done
           << "/" << total_ << " loss " << std::fixed << std::setprecision(4) << loss << " "
           << std::setprecision(0) << rate << " img/s ETA " << clock_str(eta);
        std::cerr << (tty_ ? "\r" : "") << os.str() << (tty_ && !end ? "" : "\n") << std::flush;
    }

  private:
    int epoch_, epochs_;
    std::size_t total_;
    bool quiet_, tty_;
    Clock::time_point start_, last_;
};

std::unique_ptr<optim::Optimizer> make_optimizer(const Config& c, const nn::Module& model)
{
    if (c.optimizer == "sgd")
    {
        return std::make_unique<optim::SGD>(model.parameters(),
                                            optim::SGDOptions{.lr = c.lr > 0 ? c.lr : 0.01,
                                                              .momentum = c.momentum,
                                                              .weight_decay = c.weight_decay});
    }
    if (c.optimizer == "adam")
    {
        return std::make_unique<optim::Adam>(
          model.parameters(),
          optim::AdamOptions{.lr = c.lr > 0 ? c.lr : 1e-3, .weight_decay = c.weight_decay});
    }
    if (c.optimizer == "adamw")
    {
        return std::make_unique<optim::AdamW>(
          model.parameters(), optim::AdamOptions{.lr = c.lr > 0 ? c.lr : 1e-3,
                                                 .weight_decay = c.weight_decay > 0 ? c.weight_decay : 1e-2});
    }
    throw ValueError(
      detail::cat("tapegrad-train: unknown optimiser '", c.optimizer, "' (sgd, adam or adamw)"));
}

/// Sets the learning rate for `epoch` (0-based) from the configured schedule.
void schedule_lr(const Config& c, optim::Optimizer& opt, double base_lr, int epoch)
{
    if (c.schedule == "cosine")
    {
        opt.set_lr(base_lr * (1.0 + std::cos(M_PI * epoch / c.epochs)) / 2.0);
    }
    else if (c.schedule == "step")
    {
        opt.set_lr(base_lr * std::pow(0.1, epoch / std::max(1, c.epochs / 3)));
    }
    else if (c.schedule != "none")
    {
        throw ValueError(
          detail::cat("tapegrad-train: unknown schedule '", c.schedule, "' (none, step or cosine)"));
    }
}

Tensor loss_of(const Tensor& logits, const data::Batch& batch, bool binary)
{
    if (!binary)
    {
        return cross_entropy(logits, batch.labels);
    }
    auto t = xt::xarray<float>::from_shape({batch.labels.size()});
    for (std::size_t i = 0; i < batch.labels.size(); ++i)
    {
        t(i) = static_cast<float>(batch.labels[i]);
    }
    return binary_cross_entropy_with_logits(flatten(logits, 0), Tensor(std::move(t)));
}

data::DataLoaderOptions loader_options(int batch_size, bool shuffle)
{
    return {.batch_size = static_cast<std::size_t>(batch_size),
            .shuffle = shuffle,
            .drop_last = false,
            .scale = 1.0f / 255.0f,
            .mean = kMean,
            .std = kStd};
}
} // namespace

Prepared prepare_data(const Config& config)
{
    namespace fs = std::filesystem;
    const fs::path dir(config.data_dir);
    const fs::path files[] = {dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz",
                              dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz"};
    for (const auto& f : files)
    {
        if (!fs::exists(f))
        {
            throw IoError(
              detail::cat("Fashion-MNIST is missing: ", f.string(),
                          " does not exist.\n  Install it with:  sudo apt-get install dataset-fashion-mnist\n"
                          "  or point --data-dir at a folder holding the four *-ubyte.gz files."));
        }
    }
    Prepared p;
    p.train = data::load_idx(files[0].string(), files[1].string());
    p.test = data::load_idx(files[2].string(), files[3].string());
    if (config.limit > 0 && config.limit < p.train.size())
    {
        std::vector<std::size_t> first(config.limit);
        for (std::size_t i = 0; i < config.limit; ++i)
        {
            first[i] = i;
        }
        p.train = p.train.subset(first);
    }
    if (config.model == "lecture")
    {
        p.train = to_lecture(p.train);
        p.test = to_lecture(p.test);
        p.binary = true;
    }
    return p;
}

nn::Sequential make_model(const Config& config, Generator& gen)
{
    if (config.model == "cnn")
    {
        return nn::models::fashion_cnn(gen, config.dropout);
    }
    if (config.model == "lecture")
    {
        return nn::models::lecture_net(gen);
    }
    throw ValueError(detail::cat("tapegrad-train: unknown model '", config.model, "' (cnn or lecture)"));
}

double evaluate(nn::Sequential& model, const data::Dataset& set, bool binary)
{
    NoGradGuard no_grad;
    model.eval();
    Generator unused(0);
    std::size_t correct = 0;
    for (const auto& batch : data::DataLoader(set, loader_options(1000, false), unused))
    {
        const Tensor logits = model(batch.images);
        const auto& v = logits.value();
        if (binary)
        {
            for (std::size_t i = 0; i < batch.labels.size(); ++i)
            {
                correct += static_cast<std::size_t>((v.data()[i] > 0.0f) == (batch.labels[i] == 1));
            }
        }
        else
        {
            const auto pred = argmax(logits, 1);
            for (std::size_t i = 0; i < batch.labels.size(); ++i)
            {
                correct += static_cast<std::size_t>(pred(i) == batch.labels[i]);
            }
        }
    }
    model.train();
    return static_cast<double>(correct) / static_cast<double>(std::max<std::size_t>(set.size(), 1));
}

std::vector<EpochResult> fit(const Config& config, nn::Sequential& model, const data::Dataset& train,
                             const data::Dataset& eval, bool binary, Generator& gen, bool write_files)
{
    auto opt = make_optimizer(config, model);
    const double base_lr = opt->lr();
    int first_epoch = 1;
    if (!config.resume.empty())
    {
        const auto meta = nn::load(model, config.resume);
        const std::string optim_path = config.resume + ".optim";
        if (std::filesystem::exists(optim_path))
        {
            opt->load_state_dict(nn::load_tensors(optim_path));
        }
        const auto it = meta.find("epoch");
        first_epoch = (it == meta.end() ? 0 : std::stoi(it->second)) + 1;
        std::cerr << "resumed from " << config.resume << " after epoch " << first_epoch - 1 << "\n";
    }
    std::ofstream metrics;
    if (write_files && !config.metrics.empty())
    {
        metrics.open(config.metrics, first_epoch > 1 ? std::ios::app : std::ios::trunc);
        if (!metrics)
        {
            throw IoError(detail::cat("tapegrad-train: cannot open the metrics file ", config.metrics));
        }
    }
    std::vector<EpochResult> results;
    model.train();
    for (int epoch = first_epoch; epoch <= config.epochs; ++epoch)
    {
        schedule_lr(config, *opt, base_lr, epoch - 1);
        // One generator per epoch, derived from the seed: a resumed run shuffles exactly as an
        // uninterrupted one would.
        Generator epoch_gen(config.seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
        data::DataLoader loader(train, loader_options(config.batch_size, true), epoch_gen);
        Progress progress(epoch, config.epochs, loader.size(), config.quiet);
        const auto start = Clock::now();
        double loss_sum = 0.0;
        std::size_t seen = 0, step = 0;
        for (const auto& batch : loader)
        {
            opt->zero_grad();
            Tensor loss = loss_of(model(batch.images), batch, binary);
            loss.backward();
            opt->step();
            loss_sum += static_cast<double>(loss.item()) * static_cast<double>(batch.labels.size());
            seen += batch.labels.size();
            progress.update(++step, seen, loss_sum / static_cast<double>(seen));
        }
        EpochResult r;
        r.epoch = epoch;
        r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        r.loss = loss_sum / static_cast<double>(std::max<std::size_t>(seen, 1));
        r.images_per_second = static_cast<double>(seen) / r.seconds;
        r.accuracy = evaluate(model, eval, binary);
        results.push_back(r);
        if (!config.quiet)
        {
            std::cout << "epoch " << epoch << "/" << config.epochs << "  loss " << std::fixed
                      << std::setprecision(4) << r.loss << "  " << (write_files ? "test" : "validation")
                      << " accuracy " << std::setprecision(4) << r.accuracy << "  (" << std::setprecision(1)
                      << r.seconds << " s, " << std::setprecision(0) << r.images_per_second << " img/s, lr "
                      << std::setprecision(6) << opt->lr() << ")" << std::endl;
        }
        if (metrics.is_open())
        {
            metrics << nlohmann::json{{"epoch", epoch},
                                      {"loss", r.loss},
                                      {"accuracy", r.accuracy},
                                      {"time", r.seconds},
                                      {"lr", opt->lr()},
                                      {"model", config.model},
                                      {"optimizer", config.optimizer}}
                         .dump()
                    << "\n"
                    << std::flush;
        }
        if (write_files && !config.checkpoint.empty())
        {
            nn::save(model, config.checkpoint,
                     {{"epoch", std::to_string(epoch)},
                      {"model", config.model},
                      {"seed", std::to_string(config.seed)}});
            nn::save_tensors(opt->state_dict(), config.checkpoint + ".optim");
        }
    }
    (void)gen;
    return results;
}

} // namespace tapegrad::train
