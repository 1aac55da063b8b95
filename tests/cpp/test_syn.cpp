// SyN in C++: the exact metric gradients w.r.t. both half-way fields against central finite differences
// (ssd, lncc and mi, with and without a mask), the default levels, a small known-warp recovery that stays diffeomorphic and is identical for 1 and 2
// threads, and the ITK displacement-field file round trip. The real-T1 recoveries are in tests/python.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "temp_dir.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/register/syn.hpp"
#include "voxalign/transform/displacement.hpp"

using namespace voxalign;

namespace {

Geometry grid(int64_t n0, int64_t n1, int64_t n2, double sp) {
  Geometry g;
  g.dims = {n0, n1, n2, 1};
  g.affine = Mat4::Identity();
  for (int d = 0; d < 3; ++d) g.affine(d, d) = sp;
  g.affine(0, 3) = -3.0, g.affine(1, 3) = 2.0, g.affine(2, 3) = 1.0;
  return g;
}

/// Three Gaussian blobs; `shift(x)` (voxels) displaces the sampling point (a known warp).
template <class S> Image<float> blobs(const Geometry& g, S shift) {
  Image<float> im(g);
  const auto& n = g.dims;
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t j = 0; j < n[1]; ++j)
      for (int64_t i = 0; i < n[0]; ++i) {
        const std::array<double, 3> s = shift(double(i), double(j), double(k));
        const double x = (i + s[0] - n[0] / 2.0) / (n[0] / 5.0), y = (j + s[1] - n[1] / 2.0) / (n[1] / 5.0),
                     z = (k + s[2] - n[2] / 2.0) / (n[2] / 5.0);
        double v = 100 * std::exp(-(x * x + y * y + z * z)) + 60 * std::exp(-((x - 1.2) * (x - 1.2) + y * y * 4 + z * z));
        v += 40 * std::exp(-(x * x * 3 + (y + 1.5) * (y + 1.5) * 2 + (z - 0.8) * (z - 0.8) * 2)) + 10 + 3 * x + 2 * y * z;
        im.data()[i + n[0] * (j + n[1] * k)] = float(v);
      }
  return im;
}

Image<float> smooth_random_field(const Geometry& g, unsigned seed, double amp) {
  Geometry g3 = g;
  g3.dims[3] = 3, g3.ndim = 4;
  Image<float> u(g3);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> U(-1, 1);
  double c[3][3];
  for (auto& r : c)
    for (double& v : r) v = U(rng);
  const auto& n = g.dims;
  const int64_t N = g.frame_size();
  for (int64_t q = 0; q < N; ++q) {
    const double x = double(q % n[0]) / n[0], y = double((q / n[0]) % n[1]) / n[1], z = double(q / (n[0] * n[1])) / n[2];
    for (int d = 0; d < 3; ++d)
      u.data()[q + d * N] = float(amp * (std::sin(6.28 * x + c[d][0]) * std::cos(4 * y + c[d][1]) + 0.5 * std::sin(5 * z + c[d][2])));
  }
  return u;
}

Image<float> add(const Image<float>& a, const Image<float>& b, double h) {
  Image<float> o = a;
  for (int64_t q = 0; q < o.size(); ++q) o.data()[q] = float(double(a.data()[q]) + h * double(b.data()[q]));
  return o;
}

double dot(const Image<float>& a, const Image<float>& b) {
  double s = 0;
  for (int64_t q = 0; q < a.size(); ++q) s += double(a.data()[q]) * double(b.data()[q]);
  return s;
}

} // namespace

// Central differences along random smooth directions (h = 0.02 mm) agree with the exact gradient
// within 1 % for both fields, every metric, degrees 1 and 3, over the whole grid and inside a mask.
TEST(Syn, MetricGradientMatchesFiniteDifferences) {
  const Geometry g = grid(18, 16, 14, 1.5);
  const Image<float> F = blobs(g, [](double, double, double) { return std::array<double, 3>{0, 0, 0}; });
  const Image<float> M = blobs(g, [](double i, double j, double) {
    return std::array<double, 3>{0.8 * std::sin(j / 4.0), 0.5 * std::cos(i / 5.0), 0.3};
  });
  Mat4 A = Mat4::Identity();
  A(0, 3) = 0.4, A(1, 0) = 0.03;
  const Image<float> u1 = smooth_random_field(g, 1, 0.7), u2 = smooth_random_field(g, 2, 0.9);
  Image<float> box(g, 0.0f); // a mask: the middle of the grid
  for (int64_t k = 3; k < 11; ++k)
    for (int64_t j = 4; j < 12; ++j)
      for (int64_t i = 5; i < 14; ++i) box.data()[i + 18 * (j + 16 * k)] = 1.0f;
  for (const Image<float>* mask : std::vector<const Image<float>*>{nullptr, &box})
  for (Metric metric : {Metric::SSD, Metric::LNCC, Metric::MI})
    for (int degree : {1, 3}) {
      SynOptions o;
      o.metric = metric, o.degree = degree, o.bins = 16;
      Image<float> g1, g2;
      syn::metric_and_gradient(F, M, A, u1, u2, o, &g1, &g2, mask);
      for (int which = 0; which < 2; ++which) {
        const Image<float> v = smooth_random_field(g, 10 + which, 1.0);
        const double h = 0.02;
        auto E = [&](double s) {
          return which == 0 ? syn::metric_and_gradient(F, M, A, add(u1, v, s), u2, o, nullptr, nullptr, mask)
                            : syn::metric_and_gradient(F, M, A, u1, add(u2, v, s), o, nullptr, nullptr, mask);
        };
        const double fd = (E(h) - E(-h)) / (2 * h);
        const double an = dot(which == 0 ? g1 : g2, v);
        EXPECT_NEAR(an, fd, 0.01 * std::abs(fd) + 1e-9)
            << metric_names().name(metric) << " degree " << degree << " field " << which + 1
            << (mask ? " masked" : "");
      }
    }
}

// A smooth warp of up to ~2 voxels is recovered: the metric falls, the warped moving image matches
// the fixed one better than before, det J > 0 everywhere, and 1 and 2 threads give the same bits.
TEST(Syn, RecoversSmoothWarpDiffeomorphicAndThreadIndependent) {
  const Geometry g = grid(32, 30, 28, 2.0);
  const Image<float> F = blobs(g, [](double, double, double) { return std::array<double, 3>{0, 0, 0}; });
  const Image<float> M = blobs(g, [](double i, double j, double k) {
    return std::array<double, 3>{1.8 * std::sin(j / 6.0), 1.5 * std::cos(i / 7.0), 1.0 * std::sin(k / 5.0)};
  });
  SynOptions o;
  o.levels = {2, 1};
  o.iterations = {30, 20};
  o.metric = Metric::SSD;
  set_num_threads(1);
  const SynResult r1 = register_syn(F, M, Mat4::Identity(), o);
  set_num_threads(2);
  const SynResult r2 = register_syn(F, M, Mat4::Identity(), o);
  set_num_threads(0);
  ASSERT_EQ(r1.forward.u.size(), r2.forward.u.size());
  for (int64_t q = 0; q < r1.forward.u.size(); ++q) {
    ASSERT_EQ(r1.forward.u.data()[q], r2.forward.u.data()[q]) << q;
    ASSERT_EQ(r1.inverse.u.data()[q], r2.inverse.u.data()[q]) << q;
  }
  // The metric at identity vs after registration.
  Geometry g3 = g;
  g3.dims[3] = 3, g3.ndim = 4;
  const Image<float> zero(g3, 0.0f);
  const double before = syn::metric_and_gradient(F, M, Mat4::Identity(), zero, zero, o, nullptr, nullptr);
  Image<float> fwd(g3);
  for (int64_t q = 0; q < fwd.size(); ++q) fwd.data()[q] = float(r1.forward.u.data()[q]);
  const double after = syn::metric_and_gradient(F, M, Mat4::Identity(), zero, fwd, o, nullptr, nullptr);
  EXPECT_LT(after, 0.1 * before) << "ssd before " << before << " after " << after;
  const Image<float> J = jacobian_determinant(r1.forward);
  float jmin = 1e9f;
  for (int64_t q = 0; q < J.size(); ++q) jmin = std::min(jmin, J.data()[q]);
  EXPECT_GT(jmin, 0.0f);
  // forward o inverse ~ identity inside (the inverse maps z -> z + v(z); then the forward).
  TransformChain c;
  c.append(std::make_shared<DisplacementField>(r1.inverse));
  c.append(std::make_shared<DisplacementField>(r1.forward));
  const auto& n = g.dims;
  std::vector<double> pts, orig;
  for (int64_t k = 4; k < n[2] - 4; ++k)
    for (int64_t j = 4; j < n[1] - 4; ++j)
      for (int64_t i = 4; i < n[0] - 4; ++i) {
        const Eigen::Vector4d x = g.affine * Eigen::Vector4d(double(i), double(j), double(k), 1.0);
        for (int d = 0; d < 3; ++d) pts.push_back(x[d]), orig.push_back(x[d]);
      }
  c.map_points(pts.data(), int64_t(pts.size() / 3));
  double worst = 0;
  for (size_t p = 0; p < pts.size(); p += 3)
    worst = std::max(worst, std::hypot(pts[p] - orig[p], pts[p + 1] - orig[p + 1], pts[p + 2] - orig[p + 2]));
  EXPECT_LT(worst, 0.2) << "mm";
}

TEST(Syn, DisplacementFieldFileRoundTrip) {
  test::TempDir dir;
  Geometry g = grid(6, 5, 4, 1.5);
  g.dims[3] = 3, g.ndim = 4;
  DisplacementField f;
  f.u = Image<double>(g);
  for (int64_t q = 0; q < f.u.size(); ++q) f.u.data()[q] = double(float(0.01 * double(q) - 1.0));
  write_displacement_field(dir / "w.nii.gz", f);
  const DisplacementField r = read_displacement_field(dir / "w.nii.gz");
  ASSERT_TRUE(r.u.geometry().same_grid(g, 1e-6));
  for (int64_t q = 0; q < f.u.size(); ++q) ASSERT_EQ(r.u.data()[q], f.u.data()[q]) << q;
}

TEST(Syn, BadOptionsAreRefused) {
  const Geometry g = grid(12, 12, 12, 2.0);
  const Image<float> F = blobs(g, [](double, double, double) { return std::array<double, 3>{0, 0, 0}; });
  SynOptions o;
  o.metric = Metric::NCC;
  EXPECT_THROW(register_syn(F, F, Mat4::Identity(), o), InvalidArgument);
  o = SynOptions{};
  o.metric = Metric::MI, o.bins = 4;
  EXPECT_THROW(register_syn(F, F, Mat4::Identity(), o), InvalidArgument);
  o = SynOptions{};
  o.iterations = {1, 2};
  EXPECT_THROW(register_syn(F, F, Mat4::Identity(), o), InvalidArgument);
  o = SynOptions{};
  Mat4 far = Mat4::Identity();
  far(0, 3) = 1000;
  EXPECT_THROW(register_syn(F, F, far, o), InvalidArgument);
  const Image<float> empty(g, 0.0f);
  try {
    register_syn(F, F, Mat4::Identity(), SynOptions{}, {}, &empty);
    ADD_FAILURE() << "an empty mask was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("mask is empty"), std::string::npos) << e.what();
  }
}

// The default levels follow the voxel size: the finest at ~2 mm, capped at >= 8 voxels per axis.
TEST(Syn, DefaultLevelsFollowVoxelSize) {
  const SynOptions o;
  EXPECT_EQ(syn_levels(o, grid(181, 217, 181, 1.0)), (std::vector<int>{8, 4, 2}));
  EXPECT_EQ(syn_levels(o, grid(90, 108, 90, 2.0)), (std::vector<int>{4, 2, 1}));
  EXPECT_EQ(syn_levels(o, grid(300, 300, 300, 0.5)), (std::vector<int>{16, 8, 4}));
  EXPECT_EQ(syn_levels(o, grid(20, 30, 30, 2.0)), (std::vector<int>{2, 2, 1}));
  SynOptions given;
  given.levels = {3, 1};
  EXPECT_EQ(syn_levels(given, grid(181, 217, 181, 1.0)), (std::vector<int>{3, 1}));
}

// With a fixed mask the metric ignores what lies outside: a moving image that differs from the fixed
// one only outside the mask gives (nearly) zero update inside, and the masked run still recovers a
// warp inside the mask.
TEST(Syn, FixedMaskLimitsTheMetric) {
  const Geometry g = grid(32, 30, 28, 2.0);
  const Image<float> F = blobs(g, [](double, double, double) { return std::array<double, 3>{0, 0, 0}; });
  Image<float> M = blobs(g, [](double i, double j, double) {
    return std::array<double, 3>{1.2 * std::sin(j / 6.0), 1.0 * std::cos(i / 7.0), 0.0};
  });
  Image<float> mask(g, 0.0f);
  for (int64_t k = 6; k < 22; ++k)
    for (int64_t j = 6; j < 24; ++j)
      for (int64_t i = 6; i < 26; ++i) mask.data()[i + 32 * (j + 30 * k)] = 1.0f;
  SynOptions o;
  o.levels = {2, 1}, o.iterations = {30, 20}, o.metric = Metric::SSD;
  Geometry g3 = g;
  g3.dims[3] = 3, g3.ndim = 4;
  const Image<float> zero(g3, 0.0f);
  const double before = syn::metric_and_gradient(F, M, Mat4::Identity(), zero, zero, o, nullptr, nullptr, &mask);
  const SynResult r = register_syn(F, M, Mat4::Identity(), o, {}, &mask);
  Image<float> fwd(g3);
  for (int64_t q = 0; q < fwd.size(); ++q) fwd.data()[q] = float(r.forward.u.data()[q]);
  const double after = syn::metric_and_gradient(F, M, Mat4::Identity(), zero, fwd, o, nullptr, nullptr, &mask);
  EXPECT_LT(after, 0.2 * before) << "masked ssd before " << before << " after " << after;
  // Outside the mask only: the same images but M differs from F in a corner far from the mask.
  Image<float> M2 = F;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t i = 0; i < 4; ++i) M2.data()[i + 32 * (j + 30 * k)] += 50.0f;
  Image<float> g1, g2;
  o.degree = 1; // no prefilter: the corner's change stays in the corner
  const double e = syn::metric_and_gradient(F, M2, Mat4::Identity(), zero, zero, o, &g1, &g2, &mask);
  EXPECT_EQ(e, 0.0);
  EXPECT_EQ(dot(g2, g2), 0.0);
}
