// Warp operators in C++: the dot test for the displacement and affine warps (cubic, a folding
// mode and the step-by-step transposed one), determinism of the scatter across thread counts, and
// the solvers on a quadratic. The full matrix of cases is in tests/python/test_warp_operators.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "voxalign/core/parallel.hpp"
#include "voxalign/solve/solvers.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/warp.hpp"

using namespace voxalign;

namespace {
Image<double> random_image(std::array<int64_t, 4> dims, unsigned seed, double scale = 1.0) {
  Geometry g;
  g.dims = dims;
  Image<double> im(g);
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, scale);
  for (int64_t q = 0; q < im.size(); ++q) im.data()[q] = n(rng);
  return im;
}
double dot(const Image<double>& a, const Image<double>& b) {
  double s = 0;
  for (int64_t q = 0; q < a.size(); ++q) s += a.data()[q] * b.data()[q];
  return s;
}
double norm(const Image<double>& a) { return std::sqrt(dot(a, a)); }
} // namespace

TEST(Warp, DotTestDisplacementAndAffine) {
  const std::array<int64_t, 4> d{14, 12, 10, 1};
  for (Mode mode : {Mode::Mirror, Mode::Reflect, Mode::GridConstant}) {
    const Image<double> x = random_image(d, 1), y = random_image(d, 2);
    const Image<double> u = random_image({14, 12, 10, 3}, 3, 2.0);
    Image<double> mx(x.geometry()), mty(x.geometry());
    const auto c = spline_coefficients<double>(x.view(), 3, 3, mode, 0.0);
    warp_displacement<double>(c, u.view(), mx.view());
    warp_displacement_adjoint<double>(y.view(), u.view(), 3, 3, mode, mty.view());
    EXPECT_LE(std::abs(dot(mx, y) - dot(x, mty)), 1e-12 * norm(mx) * norm(y));
    const double M[16] = {1.02, 0.1, 0, 0.7, -0.1, 0.98, 0.05, -1.2, 0, -0.05, 1.0, 0.4, 0, 0, 0, 1};
    warp_affine<double>(c, M, mx.view());
    warp_affine_adjoint<double>(y.view(), M, 3, 3, mode, mty.view());
    EXPECT_LE(std::abs(dot(mx, y) - dot(x, mty)), 1e-12 * norm(mx) * norm(y));
  }
}

TEST(Warp, AdjointBitIdenticalAcrossThreads) {
  const std::array<int64_t, 4> d{33, 29, 40, 1};
  const Image<double> y = random_image(d, 4), u = random_image({33, 29, 40, 3}, 5, 3.0);
  Image<double> a(y.geometry()), b(y.geometry());
  set_num_threads(1);
  warp_displacement_adjoint<double>(y.view(), u.view(), 3, 3, Mode::Nearest, a.view());
  set_num_threads(3);
  warp_displacement_adjoint<double>(y.view(), u.view(), 3, 3, Mode::Nearest, b.view());
  set_num_threads(0);
  for (int64_t q = 0; q < a.size(); ++q) ASSERT_EQ(a.data()[q], b.data()[q]);
}

// Both scatter schedules and the float AVX2 batches (also run under `make asan`): the float32
// adjoint against the float64 one. A field of |u| <= 0.9 on a grid of 90 planes takes the
// output-slab schedule; one of +-4 voxels, or the affine map, the coefficient slabs. Rows of 70
// voxels: a whole block of 8 groups of 8 points in the float scatter, then a partial one.
TEST(Warp, FloatAdjointMatchesDoubleInBothSchedules) {
  const std::array<int64_t, 4> d{70, 17, 90, 1};
  const Image<double> y = random_image(d, 6);
  for (double scale : {0.3, 4.0})
    for (Mode mode : {Mode::Mirror, Mode::Nearest, Mode::GridConstant, Mode::GridWrap}) {
      Image<double> u = random_image({70, 17, 90, 3}, 7, scale);
      if (scale < 1)
        for (int64_t q = 0; q < u.size(); ++q) u.data()[q] = std::clamp(u.data()[q], -0.9, 0.9);
      Geometry gf = y.geometry(), gu = u.geometry();
      Image<float> yf(gf), uf(gu), outf(gf);
      for (int64_t q = 0; q < y.size(); ++q) yf.data()[q] = float(y.data()[q]);
      for (int64_t q = 0; q < u.size(); ++q) uf.data()[q] = float(u.data()[q]);
      for (int64_t q = 0; q < u.size(); ++q) u.data()[q] = double(uf.data()[q]); // same points
      Image<double> out(gf);
      warp_displacement_adjoint<double>(y.view(), u.view(), 3, 3, mode, out.view());
      warp_displacement_adjoint<float>(yf.view(), uf.view(), 3, 3, mode, outf.view());
      double worst = 0, big = 0;
      for (int64_t q = 0; q < out.size(); ++q) {
        worst = std::max(worst, std::abs(double(outf.data()[q]) - out.data()[q]));
        big = std::max(big, std::abs(out.data()[q]));
      }
      EXPECT_LE(worst, 2e-5 * big) << "scale " << scale << " mode " << int(mode);
      const double M[16] = {1.02, 0.1, 0, 0.7, -0.1, 0.98, 0.05, -1.2, 0, -0.05, 1.0, 0.4, 0, 0, 0, 1};
      warp_affine_adjoint<double>(y.view(), M, 3, 3, mode, out.view());
      warp_affine_adjoint<float>(yf.view(), M, 3, 3, mode, outf.view());
      worst = 0, big = 0;
      for (int64_t q = 0; q < out.size(); ++q) {
        worst = std::max(worst, std::abs(double(outf.data()[q]) - out.data()[q]));
        big = std::max(big, std::abs(out.data()[q]));
      }
      EXPECT_LE(worst, 2e-5 * big) << "affine, mode " << int(mode);
    }
}

