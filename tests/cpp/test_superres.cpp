// superres: the stack operator's adjoint (dot test), the motion derivative against central
// differences, the output grid, bit-identical results for any thread count, and the residuals.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../src/superres/model.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/superres/superres.hpp"

using namespace voxalign;
using namespace voxalign::superres_detail;

namespace {

/// An oblique stack grid: 1 x 1.2 mm in plane, 3 mm slices along `slice_axis`, rotated about two axes.
Geometry oblique_stack(int slice_axis, int64_t n_in, int64_t n_slices) {
  Geometry g;
  g.ndim = 3;
  for (int d = 0; d < 3; ++d) g.dims[size_t(d)] = d == slice_axis ? n_slices : n_in;
  Eigen::Matrix3d R = (Eigen::AngleAxisd(0.3, Vec3::UnitZ()) * Eigen::AngleAxisd(-0.2, Vec3::UnitX())).toRotationMatrix();
  Vec3 sp(1.0, 1.2, 1.0);
  sp[slice_axis] = 3.0;
  g.affine.topLeftCorner<3, 3>() = R * sp.asDiagonal();
  g.affine.topRightCorner<3, 1>() = Vec3(-8, -9, -10);
  return g;
}

/// A smooth blob image (sum of Gaussians) on `g`.
Image<float> blobs(const Geometry& g) {
  Image<float> im(g);
  for (int64_t k = 0; k < g.dims[2]; ++k)
    for (int64_t j = 0; j < g.dims[1]; ++j)
      for (int64_t i = 0; i < g.dims[0]; ++i) {
        const Vec3 w = (g.affine * Eigen::Vector4d(double(i), double(j), double(k), 1)).head<3>();
        const double a = (w - Vec3(2, -1, 1)).squaredNorm(), b = (w - Vec3(-4, 3, -2)).squaredNorm();
        im.view()(i, j, k) = float(100 * std::exp(-a / 30) + 60 * std::exp(-b / 12));
      }
  return im;
}

Geometry hr_grid() {
  Geometry g;
  g.ndim = 3;
  g.dims = {22, 20, 24, 1};
  g.affine.topLeftCorner<3, 3>() = Eigen::Matrix3d::Identity();
  g.affine.topRightCorner<3, 1>() = Vec3(-11, -10, -12);
  return g;
}

StackModel moved_stack(int slice_axis, const Mat4& w2v, bool per_slice) {
  Image<float> s(oblique_stack(slice_axis, 14, 6));
  StackModel m = make_stack(s, 1.0);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  if (per_slice) {
    m.ngroups = int(m.slices());
    for (int64_t i = 0; i < m.slices(); ++i) m.group[size_t(i)] = int(i);
  }
  m.motion.clear();
  for (int gi = 0; gi < m.ngroups; ++gi) {
    const double th[6] = {u(rng), u(rng), u(rng), 0.05 * u(rng), 0.05 * u(rng), 0.05 * u(rng)};
    m.motion.push_back(rigid_matrix(th, Vec3(0, 0, 0)));
  }
  update_field(m, w2v);
  return m;
}

/// Values in the model's order (a, b, slice) written into `s` at the stack's own indices.
void to_stack_order(const StackModel& m, int axis, const std::vector<float>& y, Image<float>& s) {
  auto v = s.view();
  const int ia = axis == 0 ? 1 : 0, ib = axis == 2 ? 1 : 2;
  for (int64_t q = 0; q < m.voxels(); ++q) {
    const int64_t a = q % m.y.geometry().dims[0], b = (q / m.y.geometry().dims[0]) % m.y.geometry().dims[1],
                  sl = q / m.slice_size();
    int64_t idx[3];
    idx[ia] = a, idx[ib] = b, idx[axis] = sl;
    v(idx[0], idx[1], idx[2]) = y[size_t(q)];
  }
}

/// Three oblique stacks (slice axes 0, 1, 2) of `truth` through the model with identity motions, no noise.
std::vector<Image<float>> model_stacks(const Image<float>& truth) {
  std::vector<Image<float>> stacks;
  for (int axis : {0, 1, 2}) {
    Image<float> s(oblique_stack(axis, 16, 7));
    StackModel m = make_stack(s, 1.0);
    update_field(m, truth.geometry().affine.inverse());
    std::vector<float> y(size_t(m.voxels())), fine;
    apply_forward(m, model_coefficients(truth.view()), y.data(), fine);
    to_stack_order(m, axis, y, s);
    stacks.push_back(std::move(s));
  }
  return stacks;
}

} // namespace

// <A x, y> = <x, A^T y> for the stack operator D B W(T) (float: relative 1e-5), whole-stack and
// per-slice motions, slice axes 0 and 2.
TEST(Superres, ForwardAdjointDotTest) {
  const Geometry hr = hr_grid();
  const Mat4 w2v = hr.affine.inverse();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int axis : {0, 2})
    for (bool per_slice : {false, true}) {
      StackModel m = moved_stack(axis, w2v, per_slice);
      Image<float> x(hr, no_init);
      for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = u(rng);
      std::vector<float> y(size_t(m.voxels())), Ax(y.size()), fine;
      for (float& v : y) v = u(rng);
      apply_forward(m, model_coefficients(x.view()), Ax.data(), fine);
      Image<float> Aty(hr, no_init);
      apply_adjoint(m, y.data(), Aty.view(), fine);
      double lhs = 0, rhs = 0, scale = 0;
      for (size_t i = 0; i < y.size(); ++i) lhs += double(Ax[i]) * y[i], scale += std::abs(double(Ax[i]) * y[i]);
      for (int64_t i = 0; i < x.size(); ++i) rhs += double(x.data()[i]) * Aty.data()[i];
      EXPECT_GT(scale, 1.0);
      EXPECT_NEAR(lhs, rhs, 1e-5 * scale) << "axis " << axis << " per_slice " << per_slice;
    }
}

// The profile's weights sum to 1 and a constant image maps to the same constant inside the grid.
TEST(Superres, ConstantImageStaysConstant) {
  const Geometry hr = hr_grid();
  StackModel m = moved_stack(1, hr.affine.inverse(), false);
  double sum = 0;
  for (double w : m.profile) sum += w;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  Image<float> x(hr, 5.0f);
  std::vector<float> Ax(size_t(m.voxels())), fine;
  apply_forward(m, model_coefficients(x.view()), Ax.data(), fine);
  // Stack voxels whose profile lies inside the grid see exactly 5; those partly outside see less.
  int inside = 0;
  for (float v : Ax) {
    EXPECT_LE(v, 5.0f + 1e-4f);
    inside += std::abs(v - 5.0f) < 1e-4f;
  }
  EXPECT_GT(inside, 100);
}

// J^T W r of the rigid parameters equals the central difference of the cost 0.5 sum w r^2 (step
// 1e-4 mm / rad; relative 1e-2: linear interpolation's gradient jumps at voxel faces).
TEST(Superres, MotionDerivativeMatchesFiniteDifferences) {
  const Geometry hr = hr_grid();
  const Mat4 w2v = hr.affine.inverse();
  const Image<float> x = blobs(hr);
  const Coefficients<float> c = model_coefficients(x.view());
  for (bool per_slice : {false, true}) {
    StackModel m = moved_stack(2, w2v, per_slice);
    // Data from a slightly different motion, so that the residuals are not zero.
    std::vector<float> fine;
    apply_forward(m, c, m.y.data(), fine);
    for (int64_t i = 0; i < m.voxels(); ++i) m.y.data()[i] += float(0.5 * std::sin(0.37 * double(i)));
    std::vector<int64_t> slices;
    if (per_slice) slices = {2};
    else for (int64_t s = 0; s < m.slices(); ++s) slices.push_back(s);
    const Mat4 T0 = m.motion[size_t(m.group[size_t(slices[0])])];
    const Vec3 centre(1, -2, 0.5);
    const double th[6] = {0.3, -0.2, 0.1, 0.02, -0.01, 0.03};
    double JtJ[36], Jtr[36], J2[36], g2[6];
    motion_normal_equations(m, w2v, c, slices, T0, centre, th, JtJ, Jtr);
    for (int j = 0; j < 6; ++j) {
      const double h = 1e-4;
      double tp[6], tm[6];
      std::copy(th, th + 6, tp), std::copy(th, th + 6, tm);
      tp[j] += h, tm[j] -= h;
      const double fp = motion_normal_equations(m, w2v, c, slices, T0, centre, tp, J2, g2);
      const double fm = motion_normal_equations(m, w2v, c, slices, T0, centre, tm, J2, g2);
      const double fd = (fp - fm) / (2 * h);
      EXPECT_NEAR(Jtr[j], fd, 1e-2 * std::abs(fd) + 1e-3) << "parameter " << j << " per_slice " << per_slice;
    }
    // J^T J is symmetric positive semi-definite.
    for (int a = 0; a < 6; ++a) {
      EXPECT_GE(JtJ[7 * a], 0.0);
      for (int b = 0; b < 6; ++b) EXPECT_DOUBLE_EQ(JtJ[6 * a + b], JtJ[6 * b + a]);
    }
  }
}

// The output grid covers the first stack's field of view along its axes.
TEST(Superres, GridCoversTheFirstStack) {
  const Geometry s = oblique_stack(0, 20, 8);
  const Geometry g = superres_grid(s, 1.5);
  EXPECT_EQ(g.dims[0], 16); // 8 slices of 3 mm = 24 mm
  EXPECT_EQ(g.dims[1], 16); // 20 x 1.2 mm
  EXPECT_EQ(g.dims[2], 14); // 20 x 1 mm -> ceil(13.33)
  const Vec3 c0 = (s.affine * Eigen::Vector4d(3.5, 9.5, 9.5, 1)).head<3>();
  const Vec3 c1 = (g.affine * Eigen::Vector4d(7.5, 7.5, 6.5, 1)).head<3>();
  EXPECT_LT((c0 - c1).norm(), 1e-9);
  EXPECT_NEAR(g.spacing()[0], 1.5, 1e-12);
}

// Same result, bit for bit, on 1 and 3 threads (slice motion: groups run side by side).
TEST(Superres, ThreadCountIndependent) {
  const Geometry hr = hr_grid();
  const Image<float> truth = blobs(hr);
  const std::vector<Image<float>> stacks = model_stacks(truth);
  SuperresOptions o;
  o.resolution = 1.0;
  o.iterations = 1;
  o.cg_iterations = 5;
  o.slice_motion = true;
  o.register_init = false;
  set_num_threads(1);
  const SuperresResult a = superres(stacks, o);
  set_num_threads(3);
  const SuperresResult b = superres(stacks, o);
  set_num_threads(0);
  ASSERT_EQ(a.image.size(), b.image.size());
  for (int64_t i = 0; i < a.image.size(); ++i) ASSERT_EQ(a.image.data()[i], b.image.data()[i]) << i;
  for (size_t k = 0; k < a.transforms.size(); ++k)
    for (size_t g = 0; g < a.transforms[k].size(); ++g) EXPECT_EQ(a.transforms[k][g], b.transforms[k][g]);
}

// 4D stacks and a resolution whose memory estimate is absurd are refused.
TEST(Superres, BadInputIsRefused) {
  Geometry g = oblique_stack(2, 8, 4);
  std::vector<Image<float>> stacks{Image<float>(g, 1.0f)};
  SuperresOptions o;
  o.resolution = 1e-3;
  EXPECT_THROW(superres(stacks, o), InvalidArgument);
  g.dims[3] = 2;
  g.ndim = 4;
  std::vector<Image<float>> four{Image<float>(g, 1.0f)};
  EXPECT_THROW(superres(four, SuperresOptions{}), InvalidArgument);
  o.resolution = -1;
  EXPECT_THROW(check_superres_options(o), InvalidArgument);
}

// The residuals equal y_k - A_k x recomputed here from the result alone (its image, its per-slice
// motions, a fresh model of each stack) on the stack's own grid; their weighted RMS is the driver's
// last residual_rms; and with noise-free data and the true (identity) motions the residual is small
// next to the stack (measured 1.5 %; bound 5 %).
TEST(Superres, ResidualsAreTheFinalModelsOnEachStackGrid) {
  const Geometry hr = hr_grid();
  const std::vector<Image<float>> stacks = model_stacks(blobs(hr));
  SuperresOptions o;
  o.resolution = 1.0;
  o.iterations = 1;
  o.cg_iterations = 10;
  o.slice_motion = true; // per-slice motions: the residual must use each slice's own
  o.register_init = false;
  EXPECT_TRUE(superres(stacks, o).residuals.empty()); // off by default
  o.residuals = true;
  const SuperresResult r = superres(stacks, o);
  ASSERT_EQ(r.residuals.size(), stacks.size());
  const Geometry& g = r.image.geometry();
  const Coefficients<float> c = model_coefficients(r.image.view());
  double sw = 0, swr2 = 0, r2 = 0, y2 = 0;
  for (size_t k = 0; k < stacks.size(); ++k) {
    const Geometry& gs = stacks[k].geometry();
    ASSERT_EQ(r.residuals[k].geometry().dims, gs.dims);
    EXPECT_EQ(r.residuals[k].geometry().affine, gs.affine);
    StackModel m = make_stack(stacks[k], 1.0);
    m.group = r.slice_group[k];
    m.ngroups = int(r.transforms[k].size());
    m.motion.clear();
    for (const Mat4& T : r.transforms[k]) m.motion.push_back(T.inverse());
    update_field(m, g.affine.inverse());
    std::vector<float> Ax(size_t(m.voxels())), cov(Ax.size()), fine;
    apply_forward(m, c, Ax.data(), fine);
    const Image<float> ones(g, 1.0f);
    apply_forward(m, model_coefficients(ones.view()), cov.data(), fine);
    std::vector<float> expect(Ax.size()), w(Ax.size());
    for (int64_t v = 0; v < m.voxels(); ++v) {
      expect[size_t(v)] = m.y.data()[v] - Ax[size_t(v)];
      // update_weights: profile inside the grid, times the slice's robust weight
      w[size_t(v)] = (cov[size_t(v)] > 0.99f ? 1.0f : 0.0f) * float(r.slice_weights[k][size_t(v / m.slice_size())]);
    }
    Image<float> e(gs, 0.0f), wk(gs, 0.0f);
    to_stack_order(m, m.slice_axis, expect, e);
    to_stack_order(m, m.slice_axis, w, wk);
    for (int64_t i = 0; i < e.size(); ++i) {
      const double ri = r.residuals[k].data()[i], yi = stacks[k].data()[i];
      ASSERT_NEAR(ri, e.data()[i], 1e-3) << "stack " << k << " voxel " << i;
      sw += wk.data()[i], swr2 += wk.data()[i] * ri * ri;
      if (wk.data()[i] > 0) r2 += ri * ri, y2 += yi * yi;
    }
  }
  EXPECT_NEAR(std::sqrt(swr2 / sw), r.residual_rms.back(), 1e-4 * r.residual_rms.back() + 1e-6);
  EXPECT_LT(std::sqrt(r2 / y2), 0.05) << "relative residual " << std::sqrt(r2 / y2);
}
