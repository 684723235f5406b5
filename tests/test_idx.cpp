// IDX reading: files built byte by byte from the format description, plain and gzip-compressed.

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include "support/temp_dir.hpp"

#include <unistd.h>
#include <zlib.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <vector>

namespace tg = tapegrad;
using tapegrad::test::TempDir;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace
{

using Bytes = std::vector<std::uint8_t>;

void put_u32_be(Bytes& out, std::uint32_t v)
{
    for (int shift = 24; shift >= 0; shift -= 8)
    {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

/// An IDX file: magic, big-endian dims, then `payload`.
Bytes idx_file(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const Bytes& payload)
{
    Bytes out;
    put_u32_be(out, magic);
    for (auto d : dims)
    {
        put_u32_be(out, d);
    }
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

void write_plain(const std::string& path, const Bytes& bytes)
{
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

void write_gz(const std::string& path, const Bytes& bytes)
{
    gzFile f = gzopen(path.c_str(), "wb9");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

Bytes read_raw(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Runs `f`, which must throw IoError, and returns the message.
template <class F>
std::string io_error_of(F f)
{
    try
    {
        f();
    }
    catch (const tg::IoError& e)
    {
        return e.what();
    }
    FAIL("expected tg::IoError");
    return {};
}

/// 5 images of 3x4 whose pixels are all distinct-ish (image i, pixel k -> 50 i + 3 k + 1), and
/// their labels.
const Bytes kPixels = []
{
    Bytes p;
    for (int i = 0; i < 5; ++i)
    {
        for (int k = 0; k < 12; ++k)
        {
            p.push_back(static_cast<std::uint8_t>(50 * i + 3 * k + 1));
        }
    }
    return p;
}();
const Bytes kLabels = {3, 0, 9, 1, 7};

Bytes images_file()
{
    return idx_file(0x00000803, {5, 3, 4}, kPixels);
}
Bytes labels_file()
{
    return idx_file(0x00000801, {5}, kLabels);
}

void check_loaded(const tg::data::Dataset& ds)
{
    REQUIRE(ds.size() == 5);
    REQUIRE(ds.num_classes == 10);
    REQUIRE(tg::Shape(ds.images.shape().begin(), ds.images.shape().end()) == tg::Shape{5, 3, 4});
    REQUIRE(ds.sample_shape() == tg::Shape{3, 4});
    REQUIRE(ds.sample_numel() == 12);
    for (std::size_t i = 0; i < 5; ++i)
    {
        for (std::size_t h = 0; h < 3; ++h)
        {
            for (std::size_t w = 0; w < 4; ++w)
            {
                REQUIRE(int{ds.images(i, h, w)} == static_cast<int>(50 * i + 3 * (4 * h + w) + 1));
            }
        }
        REQUIRE(ds.labels[i] == kLabels[i]);
    }
}

} // namespace

TEST_CASE("load_idx reads plain IDX files", "[data][idx]")
{
    TempDir dir;
    write_plain(dir.file("images"), images_file());
    write_plain(dir.file("labels"), labels_file());
    check_loaded(tg::data::load_idx(dir.file("images"), dir.file("labels")));
}

TEST_CASE("load_idx reads gzip-compressed IDX files, also mixed with plain ones", "[data][idx]")
{
    TempDir dir;
    write_gz(dir.file("images.gz"), images_file());
    write_gz(dir.file("labels.gz"), labels_file());
    write_plain(dir.file("labels"), labels_file());
    const Bytes raw = read_raw(dir.file("images.gz"));
    REQUIRE(raw.size() > 2);
    REQUIRE((raw[0] == 0x1f && raw[1] == 0x8b)); // really gzip
    check_loaded(tg::data::load_idx(dir.file("images.gz"), dir.file("labels.gz")));
    check_loaded(tg::data::load_idx(dir.file("images.gz"), dir.file("labels")));
}

TEST_CASE("load_idx checks labels against num_classes", "[data][idx]")
{
    TempDir dir;
    write_plain(dir.file("images"), images_file());
    write_plain(dir.file("labels"), idx_file(0x00000801, {5}, {3, 0, 10, 1, 7}));
    const std::string msg = io_error_of([&] { tg::data::load_idx(dir.file("images"), dir.file("labels")); });
    CHECK_THAT(msg, Contains(dir.file("labels")) && Contains("label 10 at index 2 is out of range [0, 10)"));

    const auto ds = tg::data::load_idx(dir.file("images"), dir.file("labels"), 11);
    REQUIRE(ds.num_classes == 11);
    REQUIRE(ds.labels[2] == 10);
    REQUIRE_THROWS_AS(tg::data::load_idx(dir.file("images"), dir.file("labels"), 0), tg::ValueError);
}

TEST_CASE("load_idx rejects malformed files with a message naming the file", "[data][idx]")
{
    TempDir dir;
    const std::string images = dir.file("train-images.gz");
    const std::string labels = dir.file("train-labels");
    write_plain(labels, labels_file());
    auto load_images = [&] { return io_error_of([&] { tg::data::load_idx(images, labels); }); };

    SECTION("bad magic: not an IDX file")
    {
        write_plain(images, idx_file(0x12340803, {5, 3, 4}, kPixels));
        CHECK_THAT(load_images(), Contains(images) && Contains("bad magic number 0x12340803") &&
                                    Contains("not an IDX file"));
    }
    SECTION("bad magic: element type other than unsigned byte")
    {
        write_plain(images, idx_file(0x00000D03, {5, 3, 4}, kPixels));
        CHECK_THAT(load_images(), Contains(images) && Contains("element type 0xD"));
    }
    SECTION("wrong number of dimensions (a label file given as images)")
    {
        write_plain(images, labels_file());
        CHECK_THAT(load_images(), Contains(images) && Contains("1 dimension(s), expected 3"));
    }
    SECTION("a dimension of 0")
    {
        write_plain(images, idx_file(0x00000803, {5, 0, 4}, {}));
        CHECK_THAT(load_images(), Contains(images) && Contains("dimension 1") && Contains("must be > 0"));
    }
    SECTION("truncated inside the header")
    {
        write_plain(images, Bytes{0, 0, 8, 3, 0, 0, 0, 5, 0});
        CHECK_THAT(load_images(), Contains(images) && Contains("truncated"));
    }
    SECTION("truncated pixels, plain")
    {
        write_plain(images, idx_file(0x00000803, {5, 3, 4}, Bytes(kPixels.begin(), kPixels.begin() + 10)));
        CHECK_THAT(load_images(),
                   Contains(images) &&
                     Contains("truncated: header declares 5x3x4 = 60 bytes of pixels, file holds 10"));
    }
    SECTION("truncated pixels, gzip")
    {
        write_gz(images, idx_file(0x00000803, {5, 3, 4}, Bytes(kPixels.begin(), kPixels.begin() + 10)));
        CHECK_THAT(load_images(), Contains(images) && Contains("5x3x4 = 60 bytes of pixels") &&
                                    Contains("decompressed data holds 10"));
    }
    SECTION("gzip stream cut in the middle")
    {
        // Pseudo-random pixels do not compress, so cutting the file cuts the pixels.
        std::uint32_t state = 12345;
        Bytes noise(4000);
        for (auto& b : noise)
        {
            state = state * 1664525u + 1013904223u;
            b = static_cast<std::uint8_t>(state >> 24);
        }
        write_gz(images, idx_file(0x00000803, {10, 20, 20}, noise));
        Bytes gz = read_raw(images);
        gz.resize(gz.size() / 2);
        write_plain(images, gz);
        CHECK_THAT(load_images(),
                   Contains(images) && Contains("truncated") && Contains("gzip stream is cut short"));
    }
    SECTION("gzip stream missing its checksum trailer")
    {
        write_gz(images, images_file());
        Bytes gz = read_raw(images);
        gz.resize(gz.size() - 4);
        write_plain(images, gz);
        CHECK_THAT(load_images(), Contains(images) && Contains("truncated"));
    }
    SECTION("corrupt gzip data")
    {
        write_gz(images, images_file());
        Bytes gz = read_raw(images);
        gz[gz.size() - 6] ^= 0xFF; // inside the CRC-32 of the trailer
        write_plain(images, gz);
        CHECK_THAT(load_images(), Contains(images) && Contains("corrupt gzip stream"));
    }
    SECTION("trailing bytes")
    {
        Bytes extra = kPixels;
        extra.insert(extra.end(), {1, 2, 3});
        write_plain(images, idx_file(0x00000803, {5, 3, 4}, extra));
        CHECK_THAT(load_images(),
                   Contains(images) && Contains("trailing bytes") && Contains("3 more byte(s)"));
    }
    SECTION("trailing bytes inside a gzip stream")
    {
        Bytes extra = kPixels;
        extra.push_back(0);
        write_gz(images, idx_file(0x00000803, {5, 3, 4}, extra));
        CHECK_THAT(load_images(),
                   Contains(images) && Contains("trailing bytes") && Contains("1 more byte(s)"));
    }
    SECTION("missing file")
    {
        CHECK_THAT(load_images(), Contains(images) && Contains("no such file"));
    }
}

TEST_CASE("load_idx rejects a label file that is malformed or does not match", "[data][idx]")
{
    TempDir dir;
    const std::string images = dir.file("images");
    const std::string labels = dir.file("labels.gz");
    write_plain(images, images_file());

    SECTION("count mismatch names both files")
    {
        write_gz(labels, idx_file(0x00000801, {4}, {1, 2, 3, 4}));
        const std::string msg = io_error_of([&] { tg::data::load_idx(images, labels); });
        CHECK_THAT(msg, Contains("count mismatch") && Contains(images) && Contains("holds 5 images") &&
                          Contains(labels) && Contains("holds 4 labels"));
    }
    SECTION("an image file given as labels")
    {
        write_gz(labels, images_file());
        const std::string msg = io_error_of([&] { tg::data::load_idx(images, labels); });
        CHECK_THAT(msg, Contains(labels) && Contains("3 dimension(s), expected 1"));
    }
    SECTION("truncated labels")
    {
        write_gz(labels, idx_file(0x00000801, {5}, {1, 2}));
        const std::string msg = io_error_of([&] { tg::data::load_idx(images, labels); });
        CHECK_THAT(msg, Contains(labels) && Contains("header declares 5 = 5 bytes of labels") &&
                          Contains("holds 2"));
    }
}

TEST_CASE("a missing file under /usr/share/datasets suggests the package", "[data][idx]")
{
    const std::string images = "/usr/share/datasets/tapegrad-no-such-dataset/train-images-idx3-ubyte.gz";
    const std::string msg = io_error_of([&] { tg::data::load_idx(images, images); });
    CHECK_THAT(msg, Contains(images) && Contains("no such file") &&
                      Contains("apt-get install dataset-fashion-mnist"));
}

TEST_CASE("read_idx reads an unsigned-byte IDX file of any rank", "[data][idx]")
{
    TempDir dir;
    write_gz(dir.file("m.gz"), idx_file(0x00000802, {2, 3}, {1, 2, 3, 4, 5, 6}));
    const auto a = tg::data::read_idx(dir.file("m.gz"));
    REQUIRE(tg::Shape(a.shape().begin(), a.shape().end()) == tg::Shape{2, 3});
    REQUIRE(int{a(1, 0)} == 4);
    REQUIRE(int{a(1, 2)} == 6);
    REQUIRE_THROWS_AS(tg::data::read_idx(dir.file("m.gz"), 3), tg::IoError);
}

TEST_CASE("the installed Fashion-MNIST test set loads", "[data][idx][fashion-mnist]")
{
    const std::string root = "/usr/share/datasets/fashion-mnist/";
    const std::string images = root + "t10k-images-idx3-ubyte.gz";
    const std::string labels = root + "t10k-labels-idx1-ubyte.gz";
    if (!fs::exists(images) || !fs::exists(labels))
    {
        WARN("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); skipped");
        SUCCEED();
        return;
    }
    const auto ds = tg::data::load_idx(images, labels);
    REQUIRE(ds.size() == 10000);
    REQUIRE(tg::Shape(ds.images.shape().begin(), ds.images.shape().end()) == tg::Shape{10000, 28, 28});
    std::array<int, 10> per_class{};
    for (auto l : ds.labels)
    {
        REQUIRE(l >= 0);
        REQUIRE(l < 10);
        ++per_class[static_cast<std::size_t>(l)];
    }
    for (int c : per_class)
    {
        CHECK(c == 1000); // the test set is balanced: 1000 images per class
    }
}
