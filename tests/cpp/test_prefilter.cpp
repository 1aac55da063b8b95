// Prefilter: the spline through the coefficients interpolates the samples (degrees 2-7), and
// degrees 6-7 reproduce polynomials up to their degree away from the boundary.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "voxalign/spline/interpolate.hpp"

using namespace voxalign;

namespace {
Image<double> line(const std::vector<double>& v) {
  Geometry g;
  g.ndim = 1;
  g.dims = {int64_t(v.size()), 1, 1, 1};
  Image<double> img(g);
  for (size_t i = 0; i < v.size(); ++i) img.data()[i] = v[i];
  return img;
}
} // namespace

TEST(Prefilter, InterpolatesSamplesAllDegreesAndExactModes) {
  std::mt19937 rng(1);
  std::normal_distribution<double> N(0, 1);
  std::vector<double> v(37);
  for (auto& x : v) x = N(rng);
  const Image<double> img = line(v);
  // mirror and grid-wrap initialisations are exact for any length; reflect/nearest are scipy's
  // approximate ones (exact only for long lines), checked against scipy in the Python tests.
  for (Mode m : {Mode::Mirror, Mode::GridWrap, Mode::Constant, Mode::Wrap})
    for (int deg = 2; deg <= 7; ++deg) {
      const auto c = spline_coefficients<double>(img.view(), 1, deg, m);
      std::vector<double> pts(v.size()), out(v.size());
      for (size_t i = 0; i < v.size(); ++i) pts[i] = double(i);
      interpolate(c, pts.data(), int64_t(pts.size()), out.data());
      for (size_t i = 0; i < v.size(); ++i)
        EXPECT_NEAR(out[i], v[i], 1e-12) << "degree " << deg << " mode " << mode_name(m) << " node " << i;
    }
}

TEST(Prefilter, Degrees6And7ReproducePolynomials) {
  const int n = 240;
  for (int deg = 6; deg <= 7; ++deg)
    for (int p = 0; p <= deg; ++p) {
      std::vector<double> v(n);
      auto poly = [&](double x) { return std::pow((x - 120.0) / 40.0, p) + 0.5; };
      for (int i = 0; i < n; ++i) v[size_t(i)] = poly(i);
      const auto c = spline_coefficients<double>(line(v).view(), 1, deg, Mode::Mirror);
      // 60 samples from the boundary the boundary's influence is below |pole|^60 ~ 5e-17.
      std::vector<double> pts, out;
      for (double x = 80.0; x <= 160.0; x += 0.37) pts.push_back(x);
      out.resize(pts.size());
      interpolate(c, pts.data(), int64_t(pts.size()), out.data());
      for (size_t i = 0; i < pts.size(); ++i)
        EXPECT_NEAR(out[i], poly(pts[i]), 1e-10) << "degree " << deg << " power " << p << " x " << pts[i];
    }
}

TEST(Prefilter, SinglePointLineIsUntouched) {
  const auto c = spline_coefficients<double>(line({4.0}).view(), 1, 3, Mode::Mirror);
  EXPECT_EQ(c.image.data()[0], 4.0);
}
