// tapegrad-train: trains a CNN on Fashion-MNIST (the project's main job).
//
//   tapegrad-train                      # the default CNN, Adam + cosine schedule
//   tapegrad-train --model lecture      # the seed-002 15-parameter net on 6x6 crops, footwear vs not
//   tapegrad-train --folds 5 --epochs 2 # 5-fold cross-validation on the training set
//   tapegrad-train --resume tapegrad-model.safetensors --epochs 8

#include "trainer.hpp"

#include <CLI/CLI.hpp>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <iostream>

namespace tg = tapegrad;

namespace
{
int cross_validate(const tg::train::Config& config)
{
    const auto data = tg::train::prepare_data(config);
    tg::Generator fold_gen(config.seed);
    const auto folds = tg::data::kfold(data.train.size(), static_cast<std::size_t>(config.folds), &fold_gen);
    double sum = 0.0, sum_sq = 0.0;
    for (std::size_t k = 0; k < folds.size(); ++k)
    {
        std::cout << "fold " << k + 1 << "/" << folds.size() << ": training on " << folds[k].train.size()
                  << " images, validating on " << folds[k].validation.size() << std::endl;
        tg::Generator gen(config.seed);
        auto model = tg::train::make_model(config, gen);
        const auto results = tg::train::fit(config, model, data.train.subset(folds[k].train),
                                            data.train.subset(folds[k].validation), data.binary, gen, false);
        const double acc = results.back().accuracy;
        sum += acc;
        sum_sq += acc * acc;
    }
    const double n = static_cast<double>(folds.size());
    const double mean = sum / n;
    const double sd = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
    std::cout << folds.size() << "-fold cross-validation accuracy: " << mean << " +- " << sd << std::endl;
    return 0;
}
} // namespace

int main(int argc, char** argv)
{
    tg::init_process(argv);
    tg::train::Config config;
    CLI::App app{"tapegrad-train: train a CNN on Fashion-MNIST with tapegrad"};
    app.add_option("--data-dir", config.data_dir, "folder with the four Fashion-MNIST *-ubyte.gz files")
      ->capture_default_str();
    app
      .add_option("--model", config.model,
                  "cnn (2 conv + pooling) or lecture (the seed-002 net on 6x6 crops)")
      ->check(CLI::IsMember({"cnn", "lecture"}))
      ->capture_default_str();
    app.add_option("-e,--epochs", config.epochs, "number of epochs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
    app.add_option("-b,--batch-size", config.batch_size, "mini-batch size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
    app.add_option("--optimizer", config.optimizer, "sgd, adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
    app.add_option("--lr", config.lr, "learning rate (default: 0.01 for sgd, 0.001 for adam/adamw)");
    app.add_option("--momentum", config.momentum, "SGD momentum")->capture_default_str();
    app.add_option("--weight-decay", config.weight_decay, "weight decay")->capture_default_str();
    app.add_option("--schedule", config.schedule, "learning-rate schedule: none, step or cosine")
      ->check(CLI::IsMember({"none", "step", "cosine"}))
      ->capture_default_str();
    app.add_option("--dropout", config.dropout, "dropout before the last layer of the CNN (0 = none)")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
    app.add_option("--seed", config.seed, "seed for initialisation and shuffling")->capture_default_str();
    app.add_option("-t,--threads", config.threads, "OpenMP threads (0 = all cores)")->capture_default_str();
    app
      .add_option("--folds", config.folds,
                  "k-fold cross-validation on the training set instead of the test run")
      ->check(CLI::Range(2, 100));
    app.add_option("--limit", config.limit, "train on the first N training images only (0 = all)");
    app.add_option("--checkpoint", config.checkpoint, "checkpoint written after each epoch (safetensors)")
      ->capture_default_str();
    app.add_option("--metrics", config.metrics, "metrics file, one JSON line per epoch")
      ->capture_default_str();
    app.add_option("--resume", config.resume, "continue from a checkpoint written by an earlier run");
    app.add_flag("-q,--quiet", config.quiet, "no progress bar or per-epoch lines");
    CLI11_PARSE(app, argc, argv);

    try
    {
        if (config.threads > 0)
        {
            omp_set_num_threads(config.threads);
        }
        if (config.folds > 0)
        {
            return cross_validate(config);
        }
        const auto start = std::chrono::steady_clock::now();
        const auto data = tg::train::prepare_data(config);
        tg::Generator gen(config.seed);
        auto model = tg::train::make_model(config, gen);
        std::cout << "tapegrad-train: " << config.model << " on " << data.train.size() << " training images, "
                  << data.test.size() << " test images, " << omp_get_max_threads() << " threads, seed "
                  << config.seed << "\n";
        const tg::Shape input = config.model == "lecture" ? tg::Shape{1, 1, 6, 6} : tg::Shape{1, 1, 28, 28};
        if (!config.quiet)
        {
            tg::nn::summary(model, input);
        }
        const auto results = tg::train::fit(config, model, data.train, data.test, data.binary, gen, true);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!results.empty())
        {
            std::cout << "final test accuracy " << results.back().accuracy << " after "
                      << results.back().epoch << " epochs; wall time " << wall << " s; checkpoint "
                      << config.checkpoint << ", metrics " << config.metrics << std::endl;
        }
        return 0;
    }
    catch (const tg::Error& e)
    {
        std::cerr << "tapegrad-train: " << e.what() << std::endl;
        return 1;
    }
}
