// Interpolation: gradients against central differences; 3D separability with a different
// fractional offset on each axis (catches axes weighted in the wrong order); bit-identical
// results for 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "voxalign/core/parallel.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/spline/weights.hpp"

using namespace voxalign;

namespace {
Image<double> random_volume(int64_t nx, int64_t ny, int64_t nz, unsigned seed) {
  Geometry g;
  g.dims = {nx, ny, nz, 1};
  Image<double> img(g);
  std::mt19937 rng(seed);
  std::normal_distribution<double> N(0, 1);
  for (auto& x : img.storage()) x = N(rng);
  return img;
}
} // namespace

TEST(Interpolate, GradientMatchesCentralDifferences) {
  const Image<double> img = random_volume(9, 8, 7, 3);
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> U(-1.5, 9.5);
  for (int order : {1, 2, 3, 4, 5, 6, 7, kKeys})
    for (Mode m : {Mode::Mirror, Mode::Reflect, Mode::GridWrap, Mode::Nearest, Mode::GridConstant}) {
      const auto c = spline_coefficients<double>(img.view(), 3, order, m, 0.3);
      for (int t = 0; t < 40; ++t) {
        double x[3] = {U(rng), U(rng), U(rng)};
        double v, g[3];
        interpolate(c, x, 1, &v, g);
        for (int d = 0; d < 3; ++d) {
          const double h = 1e-6;
          double xp[3] = {x[0], x[1], x[2]}, xm[3] = {x[0], x[1], x[2]};
          xp[d] += h;
          xm[d] -= h;
          // Skip points where a kernel knot or a boundary fold lies inside [x-h, x+h].
          bool smooth = true;
          for (double y : {xp[d], xm[d]})
            smooth &= kernel_start(y, order) == kernel_start(x[d], order) &&
                      std::floor(y) == std::floor(x[d]) && std::floor(y + 0.5) == std::floor(x[d] + 0.5);
          if (!smooth || order == 1) continue;
          double vp, vm;
          interpolate(c, xp, 1, &vp);
          interpolate(c, xm, 1, &vm);
          EXPECT_NEAR(g[d], (vp - vm) / (2 * h), 2e-6 * (1 + std::abs(g[d])))
              << "order " << order << " mode " << mode_name(m) << " axis " << d;
        }
      }
    }
}

TEST(Interpolate, SeparableIn3DWithDistinctOffsets) {
  // f(i,j,k) = a(i) * b(j) * c(k): its spline interpolant is the product of 1D interpolants, so
  // evaluating at (x, y, z) with different fractional parts must give a(x) b(y) c(z). Swapping
  // the weights of two axes would give a(y) b(x) ... which differs.
  const int64_t n0 = 11, n1 = 12, n2 = 13;
  std::vector<double> a(n0), b(n1), cc(n2);
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> U(0.5, 2.0);
  for (auto* v : {&a, &b, &cc})
    for (auto& x : *v) x = U(rng);
  Geometry g;
  g.dims = {n0, n1, n2, 1};
  Image<double> img(g);
  for (int64_t k = 0; k < n2; ++k)
    for (int64_t j = 0; j < n1; ++j)
      for (int64_t i = 0; i < n0; ++i) img.view()(i, j, k) = a[size_t(i)] * b[size_t(j)] * cc[size_t(k)];
  auto line = [](const std::vector<double>& v) {
    Geometry g1;
    g1.ndim = 1;
    g1.dims = {int64_t(v.size()), 1, 1, 1};
    Image<double> im(g1);
    for (size_t i = 0; i < v.size(); ++i) im.data()[i] = v[i];
    return im;
  };
  for (int order : {1, 3, 5, 7, kKeys}) {
    const auto c3 = spline_coefficients<double>(img.view(), 3, order, Mode::Mirror);
    const auto ca = spline_coefficients<double>(line(a).view(), 1, order, Mode::Mirror);
    const auto cb = spline_coefficients<double>(line(b).view(), 1, order, Mode::Mirror);
    const auto cc1 = spline_coefficients<double>(line(cc).view(), 1, order, Mode::Mirror);
    const double x[3] = {4.1, 5.55, 7.83};
    double v3, g3[3], va, vb, vc;
    interpolate(c3, x, 1, &v3, g3);
    interpolate(ca, &x[0], 1, &va);
    interpolate(cb, &x[1], 1, &vb);
    interpolate(cc1, &x[2], 1, &vc);
    EXPECT_NEAR(v3, va * vb * vc, 1e-12) << "order " << order;
    // The swapped-axes answer is far from it, so the check has teeth.
    double vs;
    const double xs[1] = {x[1]};
    interpolate(ca, xs, 1, &vs);
    EXPECT_GT(std::abs(vs * vb * vc - v3), 1e-4) << "order " << order;
  }
}

TEST(Interpolate, BitIdenticalAcrossThreadCounts) {
  const Image<float> img = [] {
    Geometry g;
    g.dims = {40, 37, 33, 1};
    Image<float> im(g);
    std::mt19937 rng(2);
    std::normal_distribution<float> N(0, 1);
    for (auto& x : im.storage()) x = N(rng);
    return im;
  }();
  const double M[16] = {0.98, -0.17, 0.02, 1.3, 0.17, 0.97, 0.05, -2.1, -0.01, -0.05, 1.01, 0.7, 0, 0, 0, 1};
  std::vector<float> r1, r2;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const auto c = spline_coefficients<float>(img.view(), 3, 3, Mode::Mirror);
    Image<float> out(img.geometry());
    warp_affine(c, M, out.view());
    (threads == 1 ? r1 : r2).assign(out.storage().begin(), out.storage().end());
  }
  set_num_threads(0);
  ASSERT_EQ(r1.size(), r2.size());
  EXPECT_EQ(0, std::memcmp(r1.data(), r2.data(), r1.size() * sizeof(float)));
}

TEST(Interpolate, ConstantModeOutsideGivesCval) {
  const Image<double> img = random_volume(5, 5, 5, 9);
  const auto c = spline_coefficients<double>(img.view(), 3, 3, Mode::Constant, -7.0);
  const double x[3] = {-0.01, 2, 2};
  double v, g[3];
  interpolate(c, x, 1, &v, g);
  EXPECT_EQ(v, -7.0);
  EXPECT_EQ(g[0], 0.0);
}

// The float32 AVX2 batches (interior, mapped/folded edges, cval lanes, constant-mode row fill)
// against the double generic path, in every mode, with points inside, at and far beyond the
// edges; under the debug-asan preset this also checks that no batch reads outside the arrays.
TEST(Interpolate, FloatBatchesMatchDoubleInEveryMode) {
  const Image<double> imd = random_volume(29, 21, 17, 5);
  const Geometry g = imd.geometry();
  std::mt19937 rng(6);
  std::normal_distribution<double> N(0, 1);
  Image<float> imf(g);
  for (int64_t i = 0; i < imd.size(); ++i) imf.data()[i] = float(imd.data()[i]);
  Geometry gf = g;
  gf.dims[3] = 3;
  Image<double> ud(gf);
  Image<float> uf(gf);
  for (int64_t i = 0; i < ud.size(); ++i) {
    const double v = 3.0 * N(rng) + (i % 97 == 0 ? 40.0 : 0.0); // a few points far outside
    ud.data()[i] = double(float(v));
    uf.data()[i] = float(v);
  }
  const double M[16] = {0.95, -0.3, 0.02, 4.3, 0.3, 0.95, 0.05, -3.1, -0.01, -0.05, 1.02, 1.7, 0, 0, 0, 1};
  for (int order : {3, kKeys})
    for (Mode mode : {Mode::Mirror, Mode::Reflect, Mode::Nearest, Mode::Constant, Mode::GridConstant, Mode::Wrap,
                      Mode::GridWrap}) {
      const auto cd = spline_coefficients<double>(imd.view(), 3, order, mode, 0.25);
      const auto cf = spline_coefficients<float>(imf.view(), 3, order, mode, 0.25);
      Image<double> od(g), oad(g);
      Image<float> of(g), oaf(g);
      warp_displacement(cd, ImageView<const double>(ud.view()), od.view());
      warp_displacement(cf, ImageView<const float>(uf.view()), of.view());
      warp_affine(cd, M, oad.view());
      warp_affine(cf, M, oaf.view());
      double e = 0, ea = 0;
      for (int64_t i = 0; i < od.size(); ++i) {
        e = std::max(e, std::abs(od.data()[i] - double(of.data()[i])));
        ea = std::max(ea, std::abs(oad.data()[i] - double(oaf.data()[i])));
      }
      EXPECT_LT(e, 2e-4) << "field, order " << order << " mode " << mode_name(mode);
      EXPECT_LT(ea, 2e-4) << "affine, order " << order << " mode " << mode_name(mode);
    }
}
