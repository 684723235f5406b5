// The LibTorch side of the peer comparison (issue 5). Every workload here has a twin in
// peer_tapegrad.cpp with the same shapes, the same values (peer_common.hpp), the same thread
// count and the same timing (timing.hpp). Written the way a LibTorch user would write it:
// functional ops with autograd, the parameter update under torch::NoGradGuard, evaluation and
// forward-only work under torch::InferenceMode.

#include "peer_common.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>

namespace
{

using peer::Args;
using peer::Reporter;

torch::Tensor tensor_of(const std::vector<float>& v, std::vector<std::int64_t> shape)
{
    return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

torch::Tensor uniform(std::vector<std::int64_t> shape, float lo, float hi, std::uint64_t s)
{
    return tensor_of(peer::uniform_values(peer::numel(shape), lo, hi, s), shape);
}

std::vector<torch::Tensor> make_params(const std::vector<peer::ParamSpec>& specs, std::uint64_t s)
{
    const auto values = peer::init_params(specs, s);
    std::vector<torch::Tensor> p;
    for (std::size_t i = 0; i < specs.size(); ++i)
    {
        p.push_back(tensor_of(values[i], specs[i].shape).requires_grad_(true));
    }
    return p;
}

void zero_grads(std::vector<torch::Tensor>& params)
{
    for (auto& p : params)
    {
        if (p.grad().defined())
        {
            p.mutable_grad().zero_();
        }
    }
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
        const auto t = peer::measure(
          [&]
          {
              auto x = x0.detach().requires_grad_(true);
              auto w = w0.detach().requires_grad_(true);
              auto b = b0.detach().requires_grad_(true);
              auto y = torch::conv2d(x, w, b, {c.stride, c.stride}, {c.padding, c.padding});
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
              auto x = x0.detach().requires_grad_(true);
              auto y = is_max ? torch::max_pool2d(x, {2, 2}, {2, 2}) : torch::avg_pool2d(x, {2, 2}, {2, 2});
              y.backward(dy);
          },
          a.timing);
        rep.add(id, t, std::nullopt, peer::pool_bytes());
    }
}

// W3 ------------------------------------------------------------------------------------------

torch::Tensor fashion_cnn(const std::vector<torch::Tensor>& p, const torch::Tensor& x)
{
    auto h = torch::max_pool2d(torch::relu(torch::conv2d(x, p[0], p[1], 1, 1)), {2, 2}, {2, 2});
    h = torch::max_pool2d(torch::relu(torch::conv2d(h, p[2], p[3], 1, 1)), {2, 2}, {2, 2});
    return torch::linear(torch::relu(torch::linear(h.flatten(1), p[4], p[5])), p[6], p[7]);
}

/// One SGD-with-momentum step; returns the loss.
float train_step(std::vector<torch::Tensor>& params, std::vector<torch::Tensor>& bufs, const torch::Tensor& x,
                 const torch::Tensor& y)
{
    zero_grads(params);
    auto loss = torch::nn::functional::cross_entropy(fashion_cnn(params, x), y);
    loss.backward();
    {
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params.size(); ++i)
        {
            bufs[i].mul_(peer::momentum).add_(params[i].grad());
            params[i].add_(bufs[i], -peer::learning_rate);
        }
    }
    return loss.item<float>();
}

std::vector<torch::Tensor> momentum_buffers(const std::vector<torch::Tensor>& params)
{
    std::vector<torch::Tensor> bufs;
    for (const auto& p : params)
    {
        bufs.push_back(torch::zeros_like(p));
    }
    return bufs;
}

void train_step_workload(const Args& a, Reporter& rep)
{
    if (!peer::selected(a, "W3a step", "W3a"))
    {
        return;
    }
    auto params = make_params(peer::fashion_cnn_params(), peer::seed);
    auto bufs = momentum_buffers(params);
    const auto x = uniform({peer::batch_size, 1, 28, 28}, 0, 1, 5);
    const auto labels = peer::random_labels(peer::batch_size, 10, 6);
    const auto y = torch::tensor(labels, torch::kInt64);
    const auto t = peer::measure([&] { train_step(params, bufs, x, y); }, a.timing);
    rep.add("W3a step", t, peer::fashion_cnn_step_flops(), std::nullopt);
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
    auto bufs = momentum_buffers(params);
    const auto order = peer::shuffled_indices(train.n, peer::seed);
    const auto h = static_cast<std::int64_t>(train.rows), w = static_cast<std::int64_t>(train.cols);

    std::size_t steps = 0;
    double loss_sum = 0;
    const double train_ms = peer::wall_ms(
      [&]
      {
          for (std::size_t first = 0; first < train.n; first += peer::batch_size)
          {
              const auto count = std::min<std::size_t>(peer::batch_size, train.n - first);
              auto x = torch::empty({static_cast<std::int64_t>(count), 1, h, w}, torch::kFloat32);
              auto y = torch::empty({static_cast<std::int64_t>(count)}, torch::kInt64);
              peer::make_batch(train, order, first, count, x.data_ptr<float>(), y.data_ptr<std::int64_t>());
              loss_sum += train_step(params, bufs, x, y);
              ++steps;
          }
      });

    std::int64_t correct = 0;
    const double eval_ms = peer::wall_ms(
      [&]
      {
          torch::InferenceMode inference;
          std::vector<std::size_t> identity(test.n);
          for (std::size_t i = 0; i < test.n; ++i)
          {
              identity[i] = i;
          }
          for (std::size_t first = 0; first < test.n; first += 1000)
          {
              const auto count = std::min<std::size_t>(1000, test.n - first);
              auto x = torch::empty({static_cast<std::int64_t>(count), 1, h, w}, torch::kFloat32);
              auto y = torch::empty({static_cast<std::int64_t>(count)}, torch::kInt64);
              peer::make_batch(test, identity, first, count, x.data_ptr<float>(), y.data_ptr<std::int64_t>());
              correct += fashion_cnn(params, x).argmax(1).eq(y).sum().item<std::int64_t>();
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
        const auto c = torch::full({n}, peer::chain_factor);
        const auto seed = torch::ones({n});
        const auto t = peer::measure(
          [&]
          {
              auto x = x0.detach().requires_grad_(true);
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
    const auto target = torch::ones({1, 1});
    const auto t = peer::measure(
      [&]
      {
          zero_grads(params);
          auto z1 = torch::conv2d(x, params[0], params[1]);
          auto f = torch::max_pool2d(torch::relu(z1), {2, 2}, {2, 2}).flatten(1);
          auto p = torch::sigmoid(torch::linear(f, params[2], params[3]));
          auto loss = torch::binary_cross_entropy(p, target);
          loss.backward();
          torch::NoGradGuard no_grad;
          for (auto& q : params)
          {
              q.add_(q.grad(), -peer::lecture_lr);
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
        torch::InferenceMode inference;
        const auto t = peer::measure([&] { auto z = torch::matmul(x, y); }, a.timing);
        rep.add(g.id, t, g.flops(), std::nullopt);
    }
}

} // namespace

int main(int argc, char** argv)
{
    try
    {
        const Args a = peer::parse_args(argc, argv);
        torch::set_num_interop_threads(1);
        torch::set_num_threads(a.threads);
        const char* openblas = std::getenv("OPENBLAS_NUM_THREADS");
        std::cout << "LibTorch " << TORCH_VERSION << ", intra-op threads " << at::get_num_threads()
                  << ", OPENBLAS_NUM_THREADS=" << (openblas ? openblas : "(unset)") << "\n";
        Reporter rep("libtorch", a);
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
        std::cerr << "peer_torch: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
