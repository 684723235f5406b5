// The tapegrad side of the peer comparison (issue 5). Every workload here has a twin in
// peer_torch.cpp with the same shapes, the same values (peer_common.hpp), the same thread count
// and the same timing (timing.hpp). The fashion CNN is written with the functional ops, mirroring
// the LibTorch side line for line; the SGD-momentum update is tapegrad's optimiser, the same
// arithmetic as LibTorch's in-place tensor ops there.

#include "peer_common.hpp"

#include <tapegrad/tapegrad.hpp>

#include <omp.h>

#include <algorithm>
#include <iostream>

namespace tg = tapegrad;

namespace
{

using peer::Args;
using peer::Reporter;

tg::Tensor tensor_of(const std::vector<float>& v, const std::vector<std::int64_t>& shape,
                     bool requires_grad = false)
{
    return tg::from_vector(v, tg::Shape(shape.begin(), shape.end()), requires_grad);
}

tg::Tensor uniform(const std::vector<std::int64_t>& shape, float lo, float hi, std::uint64_t s)
{
    return tensor_of(peer::uniform_values(peer::numel(shape), lo, hi, s), shape);
}

std::vector<tg::Tensor> make_params(const std::vector<peer::ParamSpec>& specs, std::uint64_t s)
{
    const auto values = peer::init_params(specs, s);
    std::vector<tg::Tensor> p;
    for (std::size_t i = 0; i < specs.size(); ++i)
    {
        p.push_back(tensor_of(values[i], specs[i].shape, true));
    }
    return p;
}

/// A new leaf that shares x0's values and requires grad (so each timed call starts without grads).
tg::Tensor fresh_leaf(const tg::Tensor& x0)
{
    auto x = x0.detach();
    x.set_requires_grad(true);
    return x;
}

// W1 ------------------------------------------------------------------------------------------

void conv(const Args& a, Reporter& rep)
{
    for (const auto& c : peer::conv_cases)
    {
        if (!peer::selected(a, c.id, "W1"))
        {
            continue;
        }
        const auto x0 = uniform({c.n, c.c, c.h, c.w}, -1, 1, 1);
        const auto w0 = uniform({c.k, c.c, c.kernel, c.kernel}, -0.1f, 0.1f, 2);
        const auto b0 = uniform({c.k}, -0.1f, 0.1f, 3);
        const auto dy = uniform({c.n, c.k, c.out_h(), c.out_w()}, -1, 1, 4);
        const tg::Conv2dOptions opt{.stride = c.stride, .padding = c.padding};
        const auto t = peer::measure(
          [&]
          {
              auto x = fresh_leaf(x0);
              auto w = fresh_leaf(w0);
              auto b = fresh_leaf(b0);
              auto y = tg::conv2d(x, w, b, opt);
              y.backward(dy);
          },
          a.timing);
        rep.add(c.id, t, c.flops(), std::nullopt);
    }
}

// W2 ------------------------------------------------------------------------------------------

void pool(const Args& a, Reporter& rep)
{
    const auto& s = peer::pool_input;
    const auto x0 = uniform({s[0], s[1], s[2], s[3]}, -1, 1, 1);
    const auto dy = uniform({s[0], s[1], s[2] / 2, s[3] / 2}, -1, 1, 4);
    const tg::Pool2dOptions opt{.kernel = 2, .stride = 2};
    for (const bool is_max : {true, false})
    {
        const char* id = is_max ? "W2 max" : "W2 avg";
        if (!peer::selected(a, id, "W2"))
        {
            continue;
        }
        const auto t = peer::measure(
          [&]
          {
              auto x = fresh_leaf(x0);
              auto y = is_max ? tg::max_pool2d(x, opt) : tg::avg_pool2d(x, opt);
              y.backward(dy);
          },
          a.timing);
        rep.add(id, t, std::nullopt, peer::pool_bytes());
    }
}

// W3 ------------------------------------------------------------------------------------------

tg::Tensor fashion_cnn(const std::vector<tg::Tensor>& p, const tg::Tensor& x)
{
    const tg::Conv2dOptions same{.padding = 1};
    const tg::Pool2dOptions pool2{.kernel = 2, .stride = 2};
    auto h = tg::max_pool2d(tg::relu(tg::conv2d(x, p[0], p[1], same)), pool2);
    h = tg::max_pool2d(tg::relu(tg::conv2d(h, p[2], p[3], same)), pool2);
    return tg::linear(tg::relu(tg::linear(tg::flatten(h), p[4], p[5])), p[6], p[7]);
}

/// SGD with momentum (buf = momentum * buf + grad; p -= lr * buf) through tapegrad's optimiser,
/// which threads each update over the parameter's elements as ATen does LibTorch's in-place ops.
tg::optim::SGD make_sgd(const std::vector<tg::Tensor>& params)
{
    return tg::optim::SGD(params, {.lr = peer::learning_rate, .momentum = peer::momentum});
}

/// One training step; returns the loss.
float train_step(tg::optim::SGD& sgd, const std::vector<tg::Tensor>& params, const tg::Tensor& x,
                 const tg::Labels& y)
{
    sgd.zero_grad();
    auto loss = tg::cross_entropy(fashion_cnn(params, x), y);
    loss.backward();
    sgd.step();
    return loss.item();
}

void train_step_workload(const Args& a, Reporter& rep)
{
    if (!peer::selected(a, "W3a step", "W3a"))
    {
        return;
    }
    auto params = make_params(peer::fashion_cnn_params(), peer::seed);
    auto sgd = make_sgd(params);
    const auto x = uniform({peer::batch_size, 1, 28, 28}, 0, 1, 5);
    const tg::Labels y = peer::random_labels(peer::batch_size, 10, 6);
    const auto t = peer::measure([&] { train_step(sgd, params, x, y); }, a.timing);
    rep.add("W3a step", t, peer::fashion_cnn_step_flops(), std::nullopt);
}

/// Batch `first .. first+count` of `order` as a tensor and labels.
std::pair<tg::Tensor, tg::Labels> batch(const peer::Dataset& d, const std::vector<std::size_t>& order,
                                        std::size_t first, std::size_t count)
{
    auto x = xt::xarray<float>::from_shape({count, 1, d.rows, d.cols});
    tg::Labels y(count);
    peer::make_batch(d, order, first, count, x.data(), y.data());
    return {tg::Tensor(std::move(x)), std::move(y)};
}

void epoch_workload(const Args& a, Reporter& rep)
{
    if (!peer::selected(a, "W3b epoch", "W3b"))
    {
        return;
    }
    peer::Dataset train, test;
    const double load_ms = peer::wall_ms(
      [&]
      {
          train = peer::load_fashion_mnist(a.data_dir, "train");
          test = peer::load_fashion_mnist(a.data_dir, "t10k");
      });
    auto params = make_params(peer::fashion_cnn_params(), peer::seed);
    auto sgd = make_sgd(params);
    const auto order = peer::shuffled_indices(train.n, peer::seed);

    std::size_t steps = 0;
    double loss_sum = 0;
    const double train_ms = peer::wall_ms(
      [&]
      {
          for (std::size_t first = 0; first < train.n; first += peer::batch_size)
          {
              const auto [x, y] =
                batch(train, order, first, std::min<std::size_t>(peer::batch_size, train.n - first));
              loss_sum += train_step(sgd, params, x, y);
              ++steps;
          }
      });

    std::int64_t correct = 0;
    const double eval_ms = peer::wall_ms(
      [&]
      {
          tg::NoGradGuard no_grad;
          std::vector<std::size_t> identity(test.n);
          for (std::size_t i = 0; i < test.n; ++i)
          {
              identity[i] = i;
          }
          for (std::size_t first = 0; first < test.n; first += 1000)
          {
              const auto [x, y] = batch(test, identity, first, std::min<std::size_t>(1000, test.n - first));
              const auto predicted = tg::argmax(fashion_cnn(params, x), 1);
              for (std::size_t i = 0; i < y.size(); ++i)
              {
                  correct += predicted(i) == y[i] ? 1 : 0;
              }
          }
      });
    const double accuracy = static_cast<double>(correct) / static_cast<double>(test.n);
    rep.add("W3b epoch", train_ms, train_ms, train_ms, std::nullopt, std::nullopt,
            {{"wall_s", train_ms / 1000.0},
             {"steps", steps},
             {"mean_train_loss", loss_sum / static_cast<double>(steps)},
             {"test_accuracy", accuracy},
             {"peak_rss_mib", peer::peak_rss_mib()},
             {"load_s", load_ms / 1000.0},
             {"eval_s", eval_ms / 1000.0}});
}

// W4 ------------------------------------------------------------------------------------------

void tape_overhead(const Args& a, Reporter& rep)
{
    for (const auto n : peer::chain_sizes)
    {
        const std::string id = "W4 " + std::to_string(n);
        if (!peer::selected(a, id, "W4"))
        {
            continue;
        }
        const auto x0 = uniform({n}, 0.5f, 1.5f, 1);
        const auto c = tg::full({static_cast<std::size_t>(n)}, peer::chain_factor);
        const auto seed = tg::ones({static_cast<std::size_t>(n)});
        const auto t = peer::measure(
          [&]
          {
              auto x = fresh_leaf(x0);
              auto y = x;
              for (int i = 0; i < peer::chain_length; ++i)
              {
                  y = y * c;
              }
              y.backward(seed);
          },
          a.timing);
        rep.add(id, t, std::nullopt, std::nullopt,
                {{"us_per_op", t.median_ms * 1000.0 / peer::chain_length}});
    }
}

// W5 ------------------------------------------------------------------------------------------

void lecture_net(const Args& a, Reporter& rep)
{
    if (!peer::selected(a, "W5", "W5"))
    {
        return;
    }
    auto params = make_params(peer::lecture_net_params(), 7);
    const auto x = uniform({1, 1, 6, 6}, -1, 1, 8);
    const auto target = tg::ones({1, 1});
    const auto t = peer::measure(
      [&]
      {
          for (auto& q : params)
          {
              q.zero_grad();
          }
          auto z1 = tg::conv2d(x, params[0], params[1]);
          auto f = tg::flatten(tg::max_pool2d(tg::relu(z1), {.kernel = 2, .stride = 2}));
          auto p = tg::sigmoid(tg::linear(f, params[2], params[3]));
          auto loss = tg::binary_cross_entropy(p, target);
          loss.backward();
          tg::NoGradGuard no_grad;
          for (auto& q : params)
          {
              const float* g = q.grad().value().data();
              float* v = q.mutable_value().data();
              for (std::size_t j = 0; j < q.numel(); ++j)
              {
                  v[j] -= peer::lecture_lr * g[j];
              }
          }
      },
      a.timing);
    rep.add("W5", t, std::nullopt, std::nullopt, {{"us_per_step", t.median_ms * 1000.0}});
}

// W6 ------------------------------------------------------------------------------------------

void gemm(const Args& a, Reporter& rep)
{
    for (const auto& g : peer::gemm_cases)
    {
        if (!peer::selected(a, g.id, "W6"))
        {
            continue;
        }
        const auto x = uniform({g.m, g.k}, -1, 1, 1);
        const auto y = uniform({g.k, g.n}, -1, 1, 2);
        tg::NoGradGuard no_grad;
        const auto t = peer::measure([&] { auto z = tg::matmul(x, y); }, a.timing);
        rep.add(g.id, t, g.flops(), std::nullopt);
    }
}

} // namespace

int main(int argc, char** argv)
{
    tg::init_process(argv);
    try
    {
        const Args a = peer::parse_args(argc, argv);
        omp_set_num_threads(a.threads);
        const char* openblas = std::getenv("OPENBLAS_NUM_THREADS");
        std::cout << "tapegrad, OpenMP threads " << omp_get_max_threads()
                  << ", OPENBLAS_NUM_THREADS=" << (openblas ? openblas : "(unset)") << "\n";
        Reporter rep("tapegrad", a);
        conv(a, rep);
        pool(a, rep);
        train_step_workload(a, rep);
        tape_overhead(a, rep);
        lecture_net(a, rep);
        gemm(a, rep);
        epoch_workload(a, rep);
    }
    catch (const std::exception& e)
    {
        std::cerr << "peer_tapegrad: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
