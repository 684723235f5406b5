#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>
namespace tg = tapegrad;
TEST_CASE("smoke: add/mul backward")
{
    tg::Tensor a(xt::xarray<float>{1.f, 2.f, 3.f}, true);
    tg::Tensor b(xt::xarray<float>{4.f, 5.f, 6.f}, true);
    auto y = tg::sum(a * b + a);
    (void)y;
}
