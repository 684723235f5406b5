// Dataset::subset and DataLoader: batching, shuffling, conversion to float.

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include <algorithm>
#include <numeric>

namespace tg = tapegrad;

namespace
{

/// n images of h x w whose first pixel is the sample index and the others 3 * index + k (mod 256);
/// label = index % 3.
tg::data::Dataset numbered(std::size_t n, std::size_t h = 2, std::size_t w = 3)
{
    tg::data::Dataset ds;
    ds.images = xt::xarray<std::uint8_t>::from_shape({n, h, w});
    ds.labels.resize(n);
    ds.num_classes = 3;
    for (std::size_t i = 0; i < n; ++i)
    {
        for (std::size_t k = 0; k < h * w; ++k)
        {
            ds.images.data()[i * h * w + k] = static_cast<std::uint8_t>(k == 0 ? i : (3 * i + k) % 256);
        }
        ds.labels[i] = static_cast<std::int64_t>(i % 3);
    }
    return ds;
}

/// The sample indices of one epoch, read back from the first pixel of each image.
std::vector<std::size_t> epoch_order(tg::data::DataLoader& loader)
{
    std::vector<std::size_t> order;
    for (auto [images, labels] : loader)
    {
        const std::size_t stride = images.numel() / images.shape()[0];
        for (std::size_t b = 0; b < images.shape()[0]; ++b)
        {
            const auto idx =
              static_cast<std::size_t>(std::lround(images.value().data()[b * stride] * 255.0f));
            REQUIRE(labels[b] == static_cast<std::int64_t>(idx % 3));
            order.push_back(idx);
        }
    }
    return order;
}

/// The documented shuffle: Fisher-Yates from the identity, j = gen.below(i) for i = n .. 2.
std::vector<std::size_t> reference_shuffle(std::size_t n, tg::Generator& gen)
{
    std::vector<std::size_t> p(n);
    std::iota(p.begin(), p.end(), std::size_t{0});
    for (std::size_t i = n; i > 1; --i)
    {
        std::swap(p[i - 1], p[gen.below(i)]);
    }
    return p;
}

std::vector<std::size_t> iota(std::size_t n)
{
    std::vector<std::size_t> v(n);
    std::iota(v.begin(), v.end(), std::size_t{0});
    return v;
}

} // namespace

TEST_CASE("Dataset::subset copies the chosen samples in order", "[data][dataloader]")
{
    const auto ds = numbered(6);
    const auto sub = ds.subset({4, 1, 4});
    REQUIRE(sub.size() == 3);
    REQUIRE(sub.num_classes == 3);
    REQUIRE(tg::Shape(sub.images.shape().begin(), sub.images.shape().end()) == tg::Shape{3, 2, 3});
    REQUIRE(sub.labels == std::vector<std::int64_t>{1, 1, 1});
    for (std::size_t k = 0; k < 6; ++k)
    {
        REQUIRE(sub.images.data()[k] == ds.images.data()[4 * 6 + k]);
        REQUIRE(sub.images.data()[6 + k] == ds.images.data()[1 * 6 + k]);
        REQUIRE(sub.images.data()[12 + k] == ds.images.data()[4 * 6 + k]);
    }
    REQUIRE_THROWS_AS(ds.subset({0, 6}), tg::IndexError);
}

TEST_CASE("DataLoader batch count with and without drop_last", "[data][dataloader]")
{
    const auto ds10 = numbered(10);
    const auto ds8 = numbered(8);
    struct Case
    {
        const tg::data::Dataset* ds;
        std::size_t batch;
        bool drop_last;
        std::vector<std::size_t> sizes;
    };
    const std::vector<Case> cases = {
      {&ds10, 4, false, {4, 4, 2}},
      {&ds10, 4, true, {4, 4}},
      {&ds8, 4, false, {4, 4}},
      {&ds8, 4, true, {4, 4}},
      {&ds10, 16, false, {10}},
      {&ds10, 16, true, {}},
      {&ds10, 1, false, std::vector<std::size_t>(10, 1)},
    };
    for (const Case& c : cases)
    {
        tg::data::DataLoader loader(*c.ds, {.batch_size = c.batch, .drop_last = c.drop_last});
        REQUIRE(loader.size() == c.sizes.size());
        std::vector<std::size_t> sizes;
        for (auto [images, labels] : loader)
        {
            REQUIRE(images.shape() == tg::Shape{labels.size(), 1, 2, 3});
            sizes.push_back(labels.size());
        }
        REQUIRE(sizes == c.sizes);
    }
}

TEST_CASE("DataLoader without shuffle keeps the dataset order", "[data][dataloader]")
{
    const auto ds = numbered(10);
    tg::data::DataLoader loader(ds, {.batch_size = 3});
    REQUIRE(epoch_order(loader) == iota(10));
    REQUIRE(epoch_order(loader) == iota(10));
}

TEST_CASE("DataLoader shuffles reproducibly, a new order every epoch", "[data][dataloader]")
{
    const auto ds = numbered(50);
    tg::Generator g1(7), g2(7), g3(8), ref(7);
    tg::data::DataLoader a(ds, {.batch_size = 8, .shuffle = true}, g1);
    tg::data::DataLoader b(ds, {.batch_size = 8, .shuffle = true}, g2);
    tg::data::DataLoader c(ds, {.batch_size = 8, .shuffle = true}, g3);

    const auto a1 = epoch_order(a), a2 = epoch_order(a);
    const auto b1 = epoch_order(b), b2 = epoch_order(b);
    const auto c1 = epoch_order(c);
    // Every sample exactly once per epoch.
    for (const auto* e : {&a1, &a2, &c1})
    {
        auto sorted = *e;
        std::sort(sorted.begin(), sorted.end());
        REQUIRE(sorted == iota(50));
    }
    REQUIRE(a1 == b1); // same seed, same orders
    REQUIRE(a2 == b2);
    REQUIRE(a1 != a2); // reshuffled each epoch
    REQUIRE(a1 != c1); // another seed, another order
    REQUIRE(a1 != iota(50));
    // The order is the documented Fisher-Yates draw, so any implementation reproduces it.
    REQUIRE(a1 == reference_shuffle(50, ref));
    REQUIRE(a2 == reference_shuffle(50, ref));
}

TEST_CASE("DataLoader shuffle with drop_last still sees each kept sample once", "[data][dataloader]")
{
    const auto ds = numbered(23);
    tg::Generator gen(3);
    tg::data::DataLoader loader(ds, {.batch_size = 5, .shuffle = true, .drop_last = true}, gen);
    const auto order = epoch_order(loader);
    REQUIRE(order.size() == 20);
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
}

TEST_CASE("DataLoader converts pixels as (x * scale - mean) / std", "[data][dataloader]")
{
    tg::data::Dataset ds;
    ds.images = xt::xarray<std::uint8_t>::from_shape({2, 2, 2});
    const std::uint8_t px[] = {0, 255, 51, 128, 1, 2, 254, 100};
    std::copy(std::begin(px), std::end(px), ds.images.data());
    ds.labels = {1, 0};

    SECTION("defaults: x / 255")
    {
        tg::data::DataLoader loader(ds, {.batch_size = 2});
        const tg::data::Batch batch = *loader.begin();
        REQUIRE(!batch.images.requires_grad());
        REQUIRE(batch.images.shape() == tg::Shape{2, 1, 2, 2});
        const float* v = batch.images.value().data();
        REQUIRE(v[0] == 0.0f);
        REQUIRE(v[1] == Approx(1.0f));
        REQUIRE(v[2] == Approx(0.2f)); // 51 / 255
        for (int k = 0; k < 8; ++k)
        {
            REQUIRE(v[k] == Approx(px[k] / 255.0).epsilon(1e-6));
        }
        REQUIRE(batch.labels == std::vector<std::int64_t>{1, 0});
    }
    SECTION("normalised to [-1, 1] with mean 0.5 and std 0.5")
    {
        tg::data::DataLoader loader(ds, {.batch_size = 2, .mean = 0.5f, .std = 0.5f});
        const tg::data::Batch batch = *loader.begin();
        const float* v = batch.images.value().data();
        REQUIRE(v[0] == -1.0f);
        REQUIRE(v[1] == Approx(1.0f));
        REQUIRE(v[2] == Approx(-0.6f)); // (0.2 - 0.5) / 0.5
    }
    SECTION("custom scale, mean and std, exactly as the formula in float")
    {
        const float scale = 0.01f, mean = 0.1307f, std = 0.3081f;
        tg::data::DataLoader loader(ds, {.batch_size = 1, .scale = scale, .mean = mean, .std = std});
        std::size_t seen = 0;
        for (auto [images, labels] : loader)
        {
            for (int k = 0; k < 4; ++k)
            {
                const float expected = (static_cast<float>(px[seen * 4 + k]) * scale - mean) / std;
                REQUIRE(images.value().data()[k] == Approx(expected).epsilon(1e-6));
            }
            ++seen;
        }
        REQUIRE(seen == 2);
    }
}

TEST_CASE("DataLoader keeps the channel axis of N, C, H, W datasets", "[data][dataloader]")
{
    tg::data::Dataset ds;
    ds.images = xt::xarray<std::uint8_t>::from_shape({3, 2, 1, 2});
    for (std::size_t i = 0; i < ds.images.size(); ++i)
    {
        ds.images.data()[i] = static_cast<std::uint8_t>(i);
    }
    ds.labels = {0, 1, 2};
    tg::data::DataLoader loader(ds, {.batch_size = 2, .scale = 1.0f});
    REQUIRE(loader.size() == 2);
    const auto second = loader.batch(1);
    REQUIRE(second.images.shape() == tg::Shape{1, 2, 1, 2});
    REQUIRE(second.images.value().data()[0] == 8.0f);
    REQUIRE(second.images.value().data()[3] == 11.0f);
    REQUIRE_THROWS_AS(loader.batch(2), tg::IndexError);
}

TEST_CASE("DataLoader works as a temporary in a range-for", "[data][dataloader]")
{
    const auto ds = numbered(9);
    tg::Generator gen(42);
    std::size_t batches = 0, samples = 0;
    for (auto [images, labels] : tg::data::DataLoader(ds, {.batch_size = 4, .shuffle = true}, gen))
    {
        ++batches;
        samples += labels.size();
        REQUIRE(images.shape()[0] == labels.size());
    }
    REQUIRE(batches == 3);
    REQUIRE(samples == 9);
}

TEST_CASE("DataLoader rejects bad options and malformed datasets", "[data][dataloader]")
{
    const auto ds = numbered(4);
    tg::Generator gen(1);
    REQUIRE_THROWS_AS(tg::data::DataLoader(ds, {.batch_size = 0}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::data::DataLoader(ds, {.std = 0.0f}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::data::DataLoader(ds, {.shuffle = true}), tg::ValueError);
    REQUIRE_NOTHROW(tg::data::DataLoader(ds, {.shuffle = true}, gen));

    auto bad = ds;
    bad.labels.pop_back();
    REQUIRE_THROWS_AS(tg::data::DataLoader(bad, {}), tg::ShapeError);
    bad = ds;
    bad.images = xt::xarray<std::uint8_t>::from_shape({4, 6});
    REQUIRE_THROWS_AS(tg::data::DataLoader(bad, {}), tg::ShapeError);
}
