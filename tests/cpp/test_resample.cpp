// Resampling: identity reproduces the image; a rigid transform there and back recovers it.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "voxalign/resample/resample.hpp"
#include "voxalign/spline/prefilter.hpp"

using namespace voxalign;

namespace {
Image<double> blob() {
  Geometry g;
  g.dims = {40, 44, 36, 1};
  g.affine << 1.1, 0, 0, -20, 0, 0.9, 0, -25, 0, 0, 1.2, -18, 0, 0, 0, 1;
  Image<double> img(g);
  auto v = img.view();
  for (int64_t k = 0; k < 36; ++k)
    for (int64_t j = 0; j < 44; ++j)
      for (int64_t i = 0; i < 40; ++i) {
        const double x = (i - 20) / 7.0, y = (j - 22) / 8.0, z = (k - 18) / 6.0;
        v(i, j, k) = std::exp(-(x * x + y * y + z * z)) + 0.3 * std::exp(-((x - 1) * (x - 1) + y * y));
      }
  return img;
}

Mat4 rigid(double a, double b, double c, double tx, double ty, double tz) {
  Eigen::Matrix3d R = (Eigen::AngleAxisd(a, Vec3::UnitX()) * Eigen::AngleAxisd(b, Vec3::UnitY()) *
                       Eigen::AngleAxisd(c, Vec3::UnitZ()))
                          .toRotationMatrix();
  Mat4 T = Mat4::Identity();
  T.block<3, 3>(0, 0) = R;
  T.block<3, 1>(0, 3) = Vec3(tx, ty, tz);
  return T;
}
} // namespace

TEST(Resample, IdentityReproducesTheImage) {
  const Image<double> img = blob();
  for (int order : {0, 1, 3, 5, 7, kKeys}) {
    ResampleOptions o;
    o.order = order;
    // Not 'constant': like scipy, it returns cval for x > n-1 even by 1e-15, and the voxel->voxel
    // matrix of a non-trivial affine is the identity only to rounding.
    o.mode = Mode::GridConstant;
    const Image<double> out = resample(img, img.geometry(), Mat4::Identity(), o);
    double err = 0;
    for (int64_t i = 0; i < img.size(); ++i) err = std::max(err, std::abs(out.data()[i] - img.data()[i]));
    EXPECT_LT(err, 1e-12) << "order " << order;
  }
}

TEST(Resample, RigidThereAndBack) {
  const Image<double> img = blob();
  const Mat4 T = rigid(0.1, -0.05, 0.08, 2.0, -1.5, 1.0);
  ResampleOptions o;
  o.order = 5;
  o.mode = Mode::Nearest;
  const Image<double> moved = resample(img, img.geometry(), T, o);
  const Image<double> back = resample(moved, img.geometry(), T.inverse(), o);
  // Compare in the interior (the blob decays to ~0 at the edges, where data left the FOV).
  double err = 0, peak = 0;
  auto a = img.view();
  auto b = back.view();
  for (int64_t k = 8; k < 28; ++k)
    for (int64_t j = 8; j < 36; ++j)
      for (int64_t i = 8; i < 32; ++i) {
        err = std::max(err, std::abs(a(i, j, k) - b(i, j, k)));
        peak = std::max(peak, std::abs(a(i, j, k)));
      }
  EXPECT_LT(err / peak, 2e-3);
  // And the moved image really moved.
  double diff = 0;
  for (int64_t i = 0; i < img.size(); ++i) diff = std::max(diff, std::abs(moved.data()[i] - img.data()[i]));
  EXPECT_GT(diff / peak, 0.1);
}

TEST(Resample, FourDimensionalFrameByFrame) {
  Geometry g;
  g.ndim = 4;
  g.dims = {6, 5, 4, 3};
  Image<float> img(g);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = float(i % 7) + float(i / 120);
  ResampleOptions o;
  o.order = 3;
  const Image<float> out = resample(img, g, Mat4::Identity(), o);
  ASSERT_EQ(out.geometry().dims[3], 3);
  for (int64_t i = 0; i < img.size(); ++i) EXPECT_NEAR(out.data()[i], img.data()[i], 1e-5);
}

// Mode 'itk' (the default): ITK's IsInsideBuffer window [-0.5, n-0.5) -- a shift of exactly -0.5
// voxel keeps the first voxel (lower end included), +0.5 drops the last (upper end excluded), and
// inside the window the edge voxels are interpolated as ITK does (linear: the edge sample; cubic:
// mirror, the same value at -0.5 as at +0.5). Figures checked against SimpleITK in
// tests/python/test_itk_mode.py.
TEST(Resample, ItkModeWindowEnds) {
  EXPECT_EQ(ResampleOptions{}.mode, Mode::Itk);
  Geometry g;
  g.dims = {10, 6, 5, 1};
  Image<double> img(g);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = 1.0 + double((i * 37) % 11) / 10.0;
  auto at = [&](const Image<double>& im, int64_t i) { return im.view()(i, 2, 2); };
  auto shifted = [&](double t, int order) {
    Mat4 T = Mat4::Identity();
    T(0, 3) = t; // output voxel i samples input voxel i + t (unit affine)
    ResampleOptions o;
    o.order = order;
    o.cval = -3.0;
    return resample(img, g, T, o);
  };
  for (int order : {0, 1, 3, 5, kKeys}) {
    const Image<double> lo = shifted(-0.5, order), hi = shifted(0.5, order);
    EXPECT_NE(at(lo, 0), -3.0) << order; // -0.5: inside
    EXPECT_EQ(at(hi, 9), -3.0) << order; // n - 0.5: outside
    EXPECT_NE(at(hi, 8), -3.0) << order;
    EXPECT_EQ(at(shifted(-0.5 - 1e-9, order), 0), -3.0) << order;
    EXPECT_NE(at(shifted(0.5 - 1e-9, order), 9), -3.0) << order;
  }
  EXPECT_NEAR(at(shifted(-0.5, 1), 0), at(img, 0), 1e-12);    // linear clamps to the edge sample
  EXPECT_NEAR(at(shifted(-0.3, 1), 0), at(img, 0), 1e-12);
  EXPECT_NEAR(at(shifted(0.4, 1), 9), at(img, 9), 1e-12);
  EXPECT_NEAR(at(shifted(-0.5, 0), 0), at(img, 0), 1e-12);    // nearest: -0.5 rounds up to 0
  EXPECT_NEAR(at(shifted(-0.5, 3), 0), at(shifted(0.5, 3), 0), 1e-12); // cubic mirrors about 0
  // cubic mirrors about n-1: x = n-1+0.3 gives the value at n-1-0.3
  EXPECT_NEAR(at(shifted(0.3, 3), 9), at(shifted(-0.3, 3), 9), 1e-12);
}

// Resampling from coefficients computed once (what an iterative caller keeps) gives exactly the
// numbers resampling the image gives, for every kernel and a padded mode, and for a 2D image
// stored as X x Y x 1 (its third axis is not interpolated).
TEST(Resample, FromCoefficientsIdenticalToFromImage) {
  const Mat4 T = rigid(0.1, -0.05, 0.08, 2.0, -1.5, 1.0);
  Geometry flat;
  flat.dims = {17, 13, 1, 1};
  flat.affine = Mat4::Identity();
  Image<double> slab(flat);
  for (int64_t i = 0; i < slab.size(); ++i) slab.data()[i] = std::sin(0.37 * double(i)) + 0.01 * double(i);
  Mat4 T2 = Mat4::Identity();
  T2(0, 3) = 0.7, T2(1, 3) = -1.3;
  const Image<double> vol = blob();
  for (const auto& [img, M] : std::vector<std::pair<const Image<double>*, Mat4>>{{&vol, T}, {&slab, T2}}) {
    const Geometry& g = img->geometry();
    for (int order : {0, 1, 3, 5, kKeys})
      for (Mode mode : {Mode::Itk, Mode::GridConstant, Mode::Mirror, Mode::Nearest}) {
        ResampleOptions o;
        o.order = order, o.mode = mode, o.cval = 0.25;
        const Image<double> ref = resample(*img, g, M, o);
        const Coefficients<double> c =
            spline_coefficients<double>(img->view(), interpolated_axes(g), order, mode, o.cval);
        Image<double> out(ref.geometry(), no_init);
        resample_into<double>(c, g.affine, out.view(), g.affine, M);
        for (int64_t i = 0; i < ref.size(); ++i)
          ASSERT_EQ(out.data()[i], ref.data()[i]) << "order " << order << " mode " << mode_name(mode) << " voxel " << i;
      }
  }
}
