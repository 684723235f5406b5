// safetensors: bit-exact round trips, a file built by hand from the format description, rejection
// of malformed files, and atomic writes.

#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include "support/temp_dir.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace tg = tapegrad;
using tapegrad::test::TempDir;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace
{

std::string read_raw(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_raw(const std::string& path, const std::string& bytes)
{
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

/// A safetensors file: the 8-byte little-endian length, the header, the data buffer.
std::string st_file(const std::string& header, const std::string& buffer)
{
    std::string out;
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i)
    {
        out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    }
    return out + header + buffer;
}

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

template <class U, class T>
std::vector<U> bits_of(const xt::xarray<T>& a)
{
    std::vector<U> out(a.size());
    if (!out.empty())
    {
        std::memcpy(out.data(), a.data(), a.size() * sizeof(T));
    }
    return out;
}

} // namespace

TEST_CASE("safetensors round trip of float32 is bit-exact, special values included", "[nn][safetensors]")
{
    TempDir dir;
    const std::vector<std::uint32_t> special = {
      0x7FC00000, // quiet NaN
      0x7FC12345, // NaN with a payload
      0xFFC00001, // negative NaN with a payload
      0x7F800001, // signalling NaN
      0x7F800000, // +inf
      0xFF800000, // -inf
      0x80000000, // -0.0
      0x00000001, // smallest denormal
      0x7F7FFFFF, // largest finite
      0x3F800000, // 1.0
    };
    auto w = xt::xarray<float>::from_shape({2, 5});
    std::memcpy(w.data(), special.data(), special.size() * 4);
    tg::Generator gen(5);
    const tg::Tensor weight(w), bias = tg::randn({3}, gen), scalar(xt::xarray<float>(2.5f));
    const tg::Tensor empty(xt::xarray<float>::from_shape({0, 4}));
    const std::string path = dir.file("model.safetensors");
    tg::nn::write_safetensors(path,
                              {{"0.weight", weight}, {"0.bias", bias}, {"scalar", scalar}, {"empty", empty}},
                              {{"format", "pt"}, {"note", "t\u00e9st \"quoted\""}});

    const auto file = tg::nn::read_safetensors(path);
    REQUIRE(file.tensors.size() == 4);
    REQUIRE(file.metadata ==
            std::map<std::string, std::string>{{"format", "pt"}, {"note", "t\u00e9st \"quoted\""}});
    const std::vector<std::string> names = {"0.weight", "0.bias", "scalar", "empty"};
    const std::vector<tg::Tensor> originals = {weight, bias, scalar, empty};
    for (std::size_t i = 0; i < 4; ++i)
    {
        const auto& e = file.tensors[i];
        REQUIRE(e.name == names[i]); // kept in the order written
        REQUIRE(e.dtype == "F32");
        REQUIRE(e.shape == originals[i].shape());
        REQUIRE(e.f64.size() == 0);
        REQUIRE(tg::Shape(e.f32.shape().begin(), e.f32.shape().end()) == originals[i].shape());
        REQUIRE(bits_of<std::uint32_t>(e.f32) == bits_of<std::uint32_t>(originals[i].value()));
    }
    REQUIRE(file.find("0.bias") == &file.tensors[1]);
    REQUIRE(file.find("1.bias") == nullptr);
    REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors"}); // no temporary left
}

TEST_CASE("safetensors round trip of float64 is bit-exact, with mixed dtypes in one file",
          "[nn][safetensors]")
{
    TempDir dir;
    const std::vector<std::uint64_t> special = {0x7FF8000000000000, 0x7FF8000000C0FFEE, 0xFFF0000000000001,
                                                0x7FF0000000000000, 0xFFF0000000000000, 0x8000000000000000,
                                                0x0000000000000001, 0x3FF0000000000001};
    auto v = xt::xarray<double>::from_shape({2, 2, 2});
    std::memcpy(v.data(), special.data(), special.size() * 8);
    const std::string path = dir.file("f64.safetensors");
    tg::nn::write_safetensors(path, {{"w", tg::Tensor64(v)}});
    auto file = tg::nn::read_safetensors(path);
    REQUIRE(file.tensors.size() == 1);
    REQUIRE(file.tensors[0].dtype == "F64");
    REQUIRE(bits_of<std::uint64_t>(file.tensors[0].f64) == special);
    REQUIRE(file.metadata.empty());

    // Entries of both dtypes, e.g. a file read and written back.
    file.tensors.push_back({"f", "F32", {2}, xt::xarray<float>{1.5f, -0.0f}});
    const std::string mixed = dir.file("mixed.safetensors");
    tg::nn::write_safetensors(mixed, file.tensors, {{"k", "v"}});
    const auto back = tg::nn::read_safetensors(mixed);
    REQUIRE(back.tensors.size() == 2);
    REQUIRE(bits_of<std::uint64_t>(back.tensors[0].f64) == special);
    REQUIRE(back.tensors[1].dtype == "F32");
    REQUIRE(bits_of<std::uint32_t>(back.tensors[1].f32) ==
            std::vector<std::uint32_t>{0x3FC00000, 0x80000000});
    REQUIRE(back.tensors[1].to_double()(0) == 1.5);
    REQUIRE(back.tensors[0].to_float().size() == 8);
}

TEST_CASE("the written file follows the format byte for byte", "[nn][safetensors]")
{
    TempDir dir;
    const std::string path = dir.file("one.safetensors");
    tg::nn::write_safetensors(path, {{"x", tg::Tensor(xt::xarray<float>{1.0f})}});
    const std::string header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    REQUIRE(header.size() == 54);
    // The header is padded with 2 spaces to 56 bytes, so the data starts at byte 64, a multiple of 8.
    const std::string expected = st_file(header + "  ", std::string("\x00\x00\x80\x3F", 4));
    REQUIRE(read_raw(path) == expected);
}

TEST_CASE("a safetensors file written by hand from the format is read", "[nn][safetensors]")
{
    TempDir dir;
    // Header keys in another order than the data, F64 stored before F32, extra spaces, metadata.
    const std::string header = R"( { "b": {"dtype": "F32", "shape": [2, 1], "data_offsets": [8, 16]},)"
                               R"( "__metadata__": {"format": "pt"},)"
                               R"( "a.weight": {"shape": [1], "dtype": "F64", "data_offsets": [0, 8]} } )";
    std::string buffer;
    buffer += std::string("\x00\x00\x00\x00\x00\x00\x0A\x40", 8); // 3.25 as little-endian double
    buffer += std::string("\x00\x00\xC0\x3F", 4);                 // 1.5f
    buffer += std::string("\x00\x00\x00\xC0", 4);                 // -2.0f
    const std::string path = dir.file("hand.safetensors");
    write_raw(path, st_file(header, buffer));

    const auto file = tg::nn::read_safetensors(path);
    REQUIRE(file.metadata.at("format") == "pt");
    REQUIRE(file.tensors.size() == 2);
    REQUIRE(file.tensors[0].name == "a.weight");
    REQUIRE(file.tensors[0].dtype == "F64");
    REQUIRE(file.tensors[0].shape == tg::Shape{1});
    REQUIRE(file.tensors[0].f64(0) == 3.25);
    REQUIRE(file.tensors[1].name == "b");
    REQUIRE(file.tensors[1].shape == tg::Shape{2, 1});
    REQUIRE(file.tensors[1].f32(0, 0) == 1.5f);
    REQUIRE(file.tensors[1].f32(1, 0) == -2.0f);
    REQUIRE(file.tensors[0].to_float()(0) == 3.25f);
}

TEST_CASE("malformed safetensors files are rejected naming the file and the tensor", "[nn][safetensors]")
{
    TempDir dir;
    const std::string path = dir.file("bad.safetensors");
    const std::string eight(8, '\x01');
    auto check = [&](const std::string& bytes, const std::vector<std::string>& parts)
    {
        write_raw(path, bytes);
        const std::string msg = io_error_of([&] { tg::nn::read_safetensors(path); });
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        for (const auto& p : parts)
        {
            CHECK_THAT(msg, Contains(p));
        }
    };
    auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape,
                    std::uint64_t b, std::uint64_t e)
    {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
               std::to_string(b) + "," + std::to_string(e) + "]}";
    };

    SECTION("shorter than the length field")
    {
        check(std::string(5, '\0'), {"truncated", "5 bytes"});
    }
    SECTION("header length beyond the end of the file")
    {
        std::string bytes = st_file("{}", "");
        bytes[0] = 40;
        check(bytes, {"truncated", "header length is 40", "only 2 bytes follow"});
    }
    SECTION("invalid JSON")
    {
        check(st_file("{\"a\": {", ""), {"invalid JSON"});
    }
    SECTION("header not an object")
    {
        check(st_file("[1, 2]", ""), {"must be an object"});
    }
    SECTION("a repeated key")
    {
        check(
          st_file("{" + entry("w", "F32", "[1]", 0, 4) + "," + entry("w", "F32", "[1]", 4, 8) + "}", eight),
          {"\"w\" appears twice"});
    }
    SECTION("missing field")
    {
        check(st_file(R"({"0.weight": {"dtype": "F32", "data_offsets": [0, 4]}})", eight.substr(0, 4)),
              {"tensor \"0.weight\"", "missing field \"shape\""});
    }
    SECTION("ill-typed fields")
    {
        check(st_file(R"({"w": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", eight.substr(0, 4)),
              {"tensor \"w\"", "\"dtype\" must be a string"});
        check(
          st_file(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", eight.substr(0, 4)),
          {"tensor \"w\"", "\"shape\""});
        check(st_file(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", eight.substr(0, 4)),
              {"tensor \"w\"", "\"data_offsets\" must be [begin, end]"});
        check(st_file(R"({"w": [1, 2]})", ""), {"tensor \"w\"", "expected an object"});
        check(st_file(R"({"__metadata__": {"a": 1}})", ""), {"__metadata__", "\"a\" must be a string"});
    }
    SECTION("unsupported dtype")
    {
        check(st_file("{" + entry("h", "F16", "[2]", 0, 4) + "}", eight.substr(0, 4)),
              {"tensor \"h\"", "unsupported dtype \"F16\""});
    }
    SECTION("data_offsets that disagree with the shape")
    {
        check(st_file("{" + entry("1.weight", "F32", "[3]", 0, 8) + "}", eight),
              {"tensor \"1.weight\"", "span 8 bytes", "shape [3] of F32 needs 12"});
    }
    SECTION("data_offsets outside the buffer")
    {
        check(st_file("{" + entry("w", "F64", "[1]", 4, 12) + "}", eight),
              {"tensor \"w\"", "outside the data buffer"});
    }
    SECTION("overlapping tensors")
    {
        check(st_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}",
                      eight + "1234"),
              {"tensor \"b\"", "overlap tensor \"a\""});
    }
    SECTION("a gap between tensors")
    {
        check(st_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}",
                      eight + "1234"),
              {"tensor \"b\"", "gap"});
    }
    SECTION("trailing bytes after the tensors")
    {
        check(st_file("{" + entry("a", "F32", "[1]", 0, 4) + "}", eight),
              {"trailing bytes", "4 bytes belong to no"});
    }
    SECTION("a written file cut short")
    {
        tg::nn::write_safetensors(path, {{"0.weight", tg::ones({4})}, {"0.bias", tg::ones({2})}});
        std::string bytes = read_raw(path);
        bytes.pop_back();
        check(bytes, {"tensor \"0.bias\"", "outside the data buffer"});
        check(bytes.substr(0, 20), {"truncated"});
    }
    SECTION("missing file")
    {
        fs::remove(path);
        const std::string msg = io_error_of([&] { tg::nn::read_safetensors(path); });
        CHECK_THAT(msg, Contains(path) && Contains("no such file"));
    }
}

TEST_CASE("write_safetensors rejects bad names and undefined tensors", "[nn][safetensors]")
{
    TempDir dir;
    const std::string path = dir.file("x.safetensors");
    const tg::Tensor t = tg::ones({2});
    REQUIRE_THROWS_AS(tg::nn::write_safetensors(path, {{"a", t}, {"a", t}}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::nn::write_safetensors(path, {{"__metadata__", t}}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::nn::write_safetensors(path, {{"", t}}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::nn::write_safetensors(path, {{"a", tg::Tensor()}}), tg::ValueError);
    REQUIRE_THROWS_AS(tg::nn::write_safetensors(path, {{"bad\xff", t}}), tg::ValueError);
    REQUIRE(dir.listing().empty());
}

TEST_CASE("write_safetensors is atomic: a failed write leaves the old file and no temporary",
          "[nn][safetensors]")
{
    TempDir dir;
    const std::string path = dir.file("model.safetensors");
    tg::nn::write_safetensors(path, {{"w", tg::full({2}, 1.0f)}});
    const std::string before = read_raw(path);

    SECTION("overwriting succeeds and replaces the content")
    {
        tg::nn::write_safetensors(path, {{"w", tg::full({3}, 2.0f)}});
        const auto file = tg::nn::read_safetensors(path);
        REQUIRE(file.tensors[0].shape == tg::Shape{3});
        REQUIRE(file.tensors[0].f32(2) == 2.0f);
        REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors"});
    }
    SECTION("the disk refuses the bytes midway (file size limit)")
    {
        // With RLIMIT_FSIZE below the file size, write() fails with EFBIG after a partial write.
        rlimit old{};
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
        auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = old;
        small.rlim_cur = 1000;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
        std::string msg;
        try
        {
            tg::nn::write_safetensors(path, {{"w", tg::zeros({4096})}});
        }
        catch (const tg::IoError& e)
        {
            msg = e.what();
        }
        setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
        CHECK_THAT(msg, Contains(path) && Contains("cannot write"));
        REQUIRE(read_raw(path) == before);
        REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors"});
    }
    SECTION("the target is a directory")
    {
        const std::string target = dir.file("sub");
        fs::create_directory(target);
        fs::copy_file(path, dir.file("sub/keep"));
        const std::string msg = io_error_of(
          [&] {
              tg::nn::write_safetensors(target, {{"w", tg::ones({2})}});
          });
        CHECK_THAT(msg, Contains(target));
        REQUIRE(fs::is_directory(target));
        REQUIRE(read_raw(dir.file("sub/keep")) == before);
        REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors", "sub"});
    }
    SECTION("the directory does not exist")
    {
        const std::string target = dir.file("nowhere/model.safetensors");
        const std::string msg = io_error_of(
          [&] {
              tg::nn::write_safetensors(target, {{"w", tg::ones({2})}});
          });
        CHECK_THAT(msg, Contains(target) && Contains("cannot create"));
        REQUIRE(dir.listing() == std::vector<std::string>{"model.safetensors"});
    }
    SECTION("the directory is not writable")
    {
        const fs::path ro = dir.path / "ro";
        fs::create_directory(ro);
        const std::string target = (ro / "model.safetensors").string();
        tg::nn::write_safetensors(target, {{"w", tg::full({2}, 1.0f)}});
        fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
        const bool enforced = ::access(ro.c_str(), W_OK) != 0; // root ignores the permission bits
        if (enforced)
        {
            const std::string msg = io_error_of(
              [&] {
                  tg::nn::write_safetensors(target, {{"w", tg::ones({5})}});
              });
            CHECK_THAT(msg, Contains(target));
            REQUIRE(read_raw(target) == before);
        }
        else
        {
            WARN("running as root: a read-only directory cannot make the write fail, skipped");
        }
        fs::permissions(ro, fs::perms::owner_all);
    }
}
