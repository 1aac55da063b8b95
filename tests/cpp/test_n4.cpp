// N4 in C++: determinism across thread counts, the bias of a piecewise-constant phantom is removed,
// Otsu on a two-class image, and bad input. The comparison with ITK itself is in
// tests/python/test_n4_vs_sitk.py (SimpleITK is the reference).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/n4/n4.hpp"

using namespace voxalign;

namespace {

struct Phantom {
  Image<float> img, truth;
  Image<uint8_t> mask;
};

Phantom make_phantom(int64_t nx, int64_t ny, int64_t nz) {
  Geometry g;
  g.ndim = nz > 1 ? 3 : 2;
  g.dims = {nx, ny, nz, 1};
  Phantom p{Image<float>(g), Image<float>(g), Image<uint8_t>(g)};
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j)
      for (int64_t i = 0; i < nx; ++i) {
        const double x = 2.0 * i / (nx - 1) - 1, y = 2.0 * j / (ny - 1) - 1, z = nz > 1 ? 2.0 * k / (nz - 1) - 1 : 0.0;
        const double r = std::sqrt(x * x + y * y + z * z);
        const double v = (r < 0.8 ? 100.0 : 8.0) + (r < 0.4 ? 60.0 : 0.0) + noise(rng);
        const int64_t q = i + nx * (j + ny * k);
        p.truth.data()[q] = static_cast<float>(v);
        p.img.data()[q] = static_cast<float>(v * std::exp(0.35 * x - 0.25 * y * y + 0.2 * z));
        p.mask.data()[q] = r < 0.85;
      }
  return p;
}

// Coefficient of variation of the inner class (r < 0.3) of the phantom.
double inner_cv(const float* a, int64_t nx, int64_t ny, int64_t nz) {
  double s = 0, s2 = 0, n = 0;
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j)
      for (int64_t i = 0; i < nx; ++i) {
        const double x = 2.0 * i / (nx - 1) - 1, y = 2.0 * j / (ny - 1) - 1, z = nz > 1 ? 2.0 * k / (nz - 1) - 1 : 0.0;
        if (std::sqrt(x * x + y * y + z * z) >= 0.3) continue;
        const double v = a[i + nx * (j + ny * k)];
        s += v, s2 += v * v, n += 1;
      }
  const double m = s / n;
  return std::sqrt(s2 / n - m * m) / m;
}

} // namespace

TEST(N4, RemovesTheBiasOfAPhantom3DAnd2D) {
  for (int64_t nz : {int64_t(30), int64_t(1)}) {
    Phantom p = make_phantom(36, 40, nz);
    ImageView<const uint8_t> m = p.mask.view();
    N4Options o;
    o.shrink = 2;
    o.iterations = {30, 30, 30};
    const N4Result r = n4(p.img.view(), {1, 1, 1}, &m, nullptr, o);
    const double before = inner_cv(p.img.data(), 36, 40, nz), after = inner_cv(r.corrected.data(), 36, 40, nz);
    EXPECT_LT(after, 0.35 * before) << "nz=" << nz;
    EXPECT_EQ(r.report.iterations.size(), 3u);
    EXPECT_EQ(r.report.control_points.back()[0], 7); // 4 control points refined twice: 4, 5, 7
  }
}

TEST(N4, BitIdenticalForAnyThreadCount) {
  Phantom p = make_phantom(33, 29, 27);
  N4Options o;
  o.shrink = 1;
  o.iterations = {8, 8};
  set_num_threads(1);
  const N4Result a = n4(p.img.view(), {1, 1, 1}, nullptr, nullptr, o);
  set_num_threads(3);
  const N4Result b = n4(p.img.view(), {1, 1, 1}, nullptr, nullptr, o);
  set_num_threads(0);
  ASSERT_EQ(a.corrected.size(), b.corrected.size());
  for (int64_t q = 0; q < a.corrected.size(); ++q) {
    ASSERT_EQ(a.corrected.data()[q], b.corrected.data()[q]);
    ASSERT_EQ(a.bias.data()[q], b.bias.data()[q]);
  }
  EXPECT_TRUE(a.report.otsu_mask);
}

TEST(N4, OtsuSplitsTwoClasses) {
  Geometry g;
  g.dims = {10, 10, 10, 1};
  Image<float> im(g);
  for (int64_t q = 0; q < im.size(); ++q) im.data()[q] = q % 3 == 0 ? 200.0f + q % 7 : 20.0f + q % 5;
  const double t = otsu_threshold(im.view(), 128);
  EXPECT_GT(t, 24.0);
  EXPECT_LT(t, 200.0);
  const Image<uint8_t> m = otsu_mask(im.view(), 128);
  for (int64_t q = 0; q < im.size(); ++q) EXPECT_EQ(m.data()[q], q % 3 == 0 ? 1 : 0);
}

TEST(N4, RefusesBadInput) {
  Phantom p = make_phantom(20, 20, 20);
  N4Options o;
  Geometry g4;
  g4.dims = {20, 20, 20, 2};
  Image<float> four(g4, 1.0f);
  EXPECT_THROW(n4(four.view(), {1, 1, 1}, nullptr, nullptr, o), InvalidArgument);
  Image<uint8_t> empty(p.mask.geometry(), uint8_t(0));
  ImageView<const uint8_t> e = empty.view();
  EXPECT_THROW(n4(p.img.view(), {1, 1, 1}, &e, nullptr, o), InvalidArgument);
  p.img.data()[123] = std::nanf("");
  EXPECT_THROW(n4(p.img.view(), {1, 1, 1}, nullptr, nullptr, o), InvalidArgument);
  p.img.data()[123] = 1.0f;
  o.shrink = 15;
  EXPECT_THROW(n4(p.img.view(), {1, 1, 1}, nullptr, nullptr, o), InvalidArgument);
  o.shrink = 1;
  o.spline_order = 4;
  EXPECT_THROW(n4(p.img.view(), {1, 1, 1}, nullptr, nullptr, o), InvalidArgument);
  EXPECT_THROW(parse_x_list("50x", "--iterations"), InvalidArgument);
  EXPECT_EQ(parse_x_list("50x50x30x20", "--iterations"), (std::vector<int>{50, 50, 30, 20}));
}
