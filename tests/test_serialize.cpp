// Checkpoints: bit-exact round trip, PyTorch names, and rejection that leaves the model untouched.

#include "support/support.hpp"
#include "support/temp_dir.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace tg = tapegrad;
using tapegrad::test::TempDir;
namespace fs = std::filesystem;

namespace
{
std::vector<xt::xarray<float>> snapshot(const tg::nn::Module& m)
{
    std::vector<xt::xarray<float>> out;
    for (const auto& p : m.parameters())
    {
        out.push_back(p.value());
    }
    return out;
}

bool bit_equal(const xt::xarray<float>& a, const xt::xarray<float>& b)
{
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
} // namespace

TEST_CASE("serialize: a checkpoint round-trips bit-exactly with state_dict names and metadata",
          "[nn][serialize]")
{
    TempDir dir;
    tg::Generator g1(1), g2(2);
    auto a = tg::nn::models::fashion_cnn(g1);
    auto b = tg::nn::models::fashion_cnn(g2);
    const auto path = (dir.path / "model.safetensors").string();
    tg::nn::save(a, path, {{"epoch", "3"}});
    const auto meta = tg::nn::load(b, path);
    REQUIRE(meta.at("epoch") == "3");
    const auto sa = snapshot(a), sb = snapshot(b);
    for (std::size_t i = 0; i < sa.size(); ++i)
    {
        REQUIRE(bit_equal(sa[i], sb[i]));
    }
    const auto file = tg::nn::read_safetensors(path);
    REQUIRE(file.tensors.front().name == "0.weight");
    REQUIRE(file.tensors.front().dtype == "F32");
    REQUIRE(file.find("9.bias") != nullptr);
    REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors"}); // no temporary left behind
}

TEST_CASE("serialize: corrupt, truncated or mismatched checkpoints are rejected and the model is unchanged",
          "[nn][serialize]")
{
    TempDir dir;
    tg::Generator gen(5);
    auto model = tg::nn::models::lecture_net(gen);
    const auto good = (dir.path / "good.safetensors").string();
    tg::nn::save(model, good);
    const auto before = snapshot(model);
    auto unchanged = [&]
    {
        const auto now = snapshot(model);
        for (std::size_t i = 0; i < now.size(); ++i)
        {
            if (!bit_equal(now[i], before[i]))
            {
                return false;
            }
        }
        return true;
    };

    // Truncated: the last bytes of the data buffer are gone.
    const auto truncated = (dir.path / "truncated.safetensors").string();
    fs::copy_file(good, truncated);
    fs::resize_file(truncated, fs::file_size(good) - 3);
    REQUIRE_THROWS_WITH(tg::nn::load(model, truncated), Catch::Contains("truncated.safetensors"));
    REQUIRE(unchanged());

    // Corrupt header JSON.
    const auto corrupt = (dir.path / "corrupt.safetensors").string();
    fs::copy_file(good, corrupt);
    {
        std::fstream f(corrupt, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(9);
        f.write("#", 1);
    }
    REQUIRE_THROWS_AS(tg::nn::load(model, corrupt), tg::IoError);
    REQUIRE(unchanged());

    // A different architecture: shape mismatch names the tensor.
    tg::Generator g2(6);
    tg::nn::Sequential other(tg::nn::Conv2d(1, 2, 3, g2), tg::nn::ReLU(), tg::nn::MaxPool2d(2),
                             tg::nn::Flatten(), tg::nn::Linear(8, 1, g2));
    const auto wrong = (dir.path / "wrong.safetensors").string();
    tg::nn::save(other, wrong);
    REQUIRE_THROWS_WITH(tg::nn::load(model, wrong),
                        Catch::Contains("wrong.safetensors") && Catch::Contains("0.weight"));
    REQUIRE(unchanged());

    // Missing and unknown tensors.
    tg::nn::Sequential fewer(tg::nn::Conv2d(1, 1, 3, g2));
    const auto partial = (dir.path / "partial.safetensors").string();
    tg::nn::save(fewer, partial);
    REQUIRE_THROWS_WITH(tg::nn::load(model, partial),
                        Catch::Contains("4.weight") && Catch::Contains("missing"));
    REQUIRE_THROWS_WITH(tg::nn::load(fewer, good), Catch::Contains("4.weight"));
    REQUIRE(unchanged());
    REQUIRE_THROWS_AS(tg::nn::load(model, (dir.path / "absent.safetensors").string()), tg::IoError);
}

TEST_CASE("serialize: optimiser state saves and loads as named tensors", "[nn][serialize]")
{
    TempDir dir;
    tg::Generator gen(8);
    auto model = tg::nn::models::lecture_net(gen);
    tg::optim::Adam adam(model.parameters(), {});
    for (auto p : model.parameters())
    {
        (tg::sum(p * p)).backward();
    }
    adam.step();
    const auto path = (dir.path / "opt.safetensors").string();
    tg::nn::save_tensors(adam.state_dict(), path);
    tg::optim::Adam fresh(model.parameters(), {});
    fresh.load_state_dict(tg::nn::load_tensors(path));
    REQUIRE(fresh.steps() == 1);
    const auto a = adam.state_dict(), b = fresh.state_dict();
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        REQUIRE(a[i].first == b[i].first);
        REQUIRE(a[i].second.value() == b[i].second.value());
    }
}
