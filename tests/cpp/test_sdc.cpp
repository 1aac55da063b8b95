// Susceptibility correction in C++: the derivative of the objective is exact (central finite
// differences), the field basis and its adjoint pass the dot test, the Jacobi diagonal is the
// diagonal of J^T J, topup's sign convention on a known shift, bit-identical results for 1 and 2
// threads, and bad input. Accuracy on real images is in tests/python/test_sdc.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "../../src/sdc/internal.hpp"
#include "temp_dir.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/sdc/sdc.hpp"
#include "voxalign/spline/prefilter.hpp"

using namespace voxalign;
using namespace voxalign::sdc_detail;

namespace {

/// A smooth random 3D pattern (sum of Gaussians), value at (i, j, k) voxels.
struct Blobs {
  std::vector<std::array<double, 5>> b; // centre x, y, z, width, amplitude
  explicit Blobs(int n, const int64_t* dims, unsigned seed = 3) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    for (int q = 0; q < n; ++q)
      b.push_back({u(rng) * dims[0], u(rng) * dims[1], u(rng) * dims[2], 1.5 + 3 * u(rng), 0.5 + u(rng)});
  }
  double operator()(double x, double y, double z) const {
    double s = 0.2;
    for (const auto& q : b)
      s += q[4] * std::exp(-((x - q[0]) * (x - q[0]) + (y - q[1]) * (y - q[1]) + (z - q[2]) * (z - q[2])) / (2 * q[3] * q[3]));
    return s;
  }
};

LevelProblem small_problem(int factor = 1) {
  LevelProblem P;
  const int64_t N[3] = {24, 18, 7};
  for (int a = 0; a < 3; ++a) {
    P.dims[a] = a == 0 ? N[0] / factor : N[a];
    const ControlLayout L = control_layout(N[a], 5.0);
    P.basis.ax[a] = make_axis(L, P.dims[a], a == 0 ? factor : 1);
    P.bending.nc[a] = L.nc;
    P.bending.h[a] = 5.0 * 2.0;
  }
  P.bending.lambda = 1e-2;
  const Blobs up(12, N, 3), down(12, N, 4);
  P.coef_up.resize(size_t(P.dims[0] * P.dims[1] * P.dims[2]));
  P.coef_down.resize(P.coef_up.size());
  for (int64_t k = 0, v = 0; k < P.dims[2]; ++k)
    for (int64_t j = 0; j < P.dims[1]; ++j)
      for (int64_t i = 0; i < P.dims[0]; ++i, ++v) P.coef_up[size_t(v)] = up(i, j, k), P.coef_down[size_t(v)] = down(i, j, k);
  const int64_t d4[4] = {P.dims[0], P.dims[1], P.dims[2], 1};
  prefilter_in_place<double>(P.coef_up.data(), d4, 1, 3, Mode::Mirror);
  prefilter_in_place<double>(P.coef_down.data(), d4, 1, 3, Mode::Mirror);
  P.weight.assign(P.coef_up.size(), 1.0f);
  for (size_t v = 0; v < P.weight.size(); v += 5) P.weight[v] = 0.25f;
  P.shift_up = 0.05 / factor, P.shift_down = -0.04 / factor;
  P.jac_up = 0.05, P.jac_down = -0.04;
  P.voxel_volume = 8.0;
  return P;
}

std::vector<double> random_coefficients(const LevelProblem& P, double scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0, scale);
  std::vector<double> c(size_t(P.basis.controls()));
  for (double& v : c) v = n(rng);
  return c;
}

} // namespace

TEST(Sdc, DerivativeIsExact) {
  for (int factor : {1, 2}) {
    const LevelProblem P = small_problem(factor);
    std::vector<double> c = random_coefficients(P, 20.0, 11); // Hz: shifts of about a voxel
    const Evaluation E = evaluate(P, c, true);
    std::mt19937 rng(5);
    std::uniform_int_distribution<size_t> pick(0, c.size() - 1);
    double worst = 0;
    for (int t = 0; t < 25; ++t) {
      const size_t q = pick(rng);
      const double h = 1e-4, c0 = c[q];
      c[q] = c0 + h;
      const double fp = evaluate(P, c, false).cost();
      c[q] = c0 - h;
      const double fm = evaluate(P, c, false).cost();
      c[q] = c0;
      const double fd = (fp - fm) / (2 * h);
      worst = std::max(worst, std::fabs(fd - E.grad[q]) / (std::fabs(fd) + 1e-3));
    }
    EXPECT_LT(worst, 1e-6) << "factor " << factor;
  }
}

TEST(Sdc, ApproximateDerivativeIsNot) {
  // The benchmark's "approximate" derivative differs from the exact one (else the comparison is void).
  const LevelProblem P = small_problem();
  const std::vector<double> c = random_coefficients(P, 20.0, 11);
  const Evaluation E = evaluate(P, c, true), A = evaluate(P, c, true, true);
  double diff = 0, norm = 0;
  for (size_t q = 0; q < c.size(); ++q) diff += (E.grad[q] - A.grad[q]) * (E.grad[q] - A.grad[q]), norm += E.grad[q] * E.grad[q];
  EXPECT_GT(std::sqrt(diff / norm), 0.005); // about 2 % here: small, but not rounding
}

TEST(Sdc, BasisAdjointDotTest) {
  const LevelProblem P = small_problem(2);
  const std::vector<double> c = random_coefficients(P, 1.0, 1);
  std::vector<double> a = random_coefficients(P, 1.0, 2), b;
  a.resize(size_t(P.basis.voxels()));
  std::mt19937 rng(9);
  std::normal_distribution<double> n(0, 1);
  for (double& v : a) v = n(rng);
  b = a;
  for (double& v : b) v = n(rng);
  std::vector<double> f(a.size()), fp(a.size()), back(c.size());
  P.basis.forward(c.data(), f.data(), fp.data());
  P.basis.adjoint(a.data(), b.data(), back.data());
  double lhs = 0, rhs = 0;
  for (size_t v = 0; v < a.size(); ++v) lhs += f[v] * a[v] + fp[v] * b[v];
  for (size_t q = 0; q < c.size(); ++q) rhs += c[q] * back[q];
  EXPECT_NEAR(lhs, rhs, 1e-10 * std::fabs(lhs));
}

TEST(Sdc, JacobiDiagonalIsDiagonalOfGaussNewton) {
  const LevelProblem P = small_problem();
  const std::vector<double> c = random_coefficients(P, 20.0, 11);
  const Evaluation E = evaluate(P, c, true);
  const size_t nv = size_t(P.basis.voxels()), nc = c.size();
  std::vector<double> q0(nv), q1(nv), q2(nv), diag(nc), e(nc, 0.0), He(nc), s1, s2;
  for (size_t v = 0; v < nv; ++v) q0[v] = E.g1[v] * E.g1[v], q1[v] = 2 * E.g1[v] * E.g2[v], q2[v] = E.g2[v] * E.g2[v];
  P.basis.adjoint_squared(q0.data(), q1.data(), q2.data(), diag.data());
  P.bending.diag_add(diag.data());
  for (size_t q : {size_t(0), nc / 3, nc / 2, nc - 1}) {
    std::fill(e.begin(), e.end(), 0.0);
    e[q] = 1;
    gauss_newton_apply(P, E, e.data(), He.data(), s1, s2);
    EXPECT_NEAR(He[q], diag[q], 1e-9 * std::fabs(He[q]) + 1e-15) << q;
  }
}

namespace {

struct Pair {
  Geometry g;
  Image<float> up, down, truth;
};

/// A structure at true position y appears at y + shift in the PE+ image (axis j) and at y - shift in the PE- image.
Pair shifted_pair(double shift) {
  Pair p;
  p.g.dims = {20, 32, 12, 1};
  p.g.affine.diagonal() << 2.0, 2.0, 2.5, 1.0;
  const int64_t dims[3] = {20, 32, 12};
  const Blobs b(25, dims, 8);
  p.up = Image<float>(p.g), p.down = Image<float>(p.g), p.truth = Image<float>(p.g);
  for (int64_t k = 0, v = 0; k < 12; ++k)
    for (int64_t j = 0; j < 32; ++j)
      for (int64_t i = 0; i < 20; ++i, ++v) {
        p.truth.data()[v] = float(b(i, j, k));
        p.up.data()[v] = float(b(i, j - shift, k));
        p.down.data()[v] = float(b(i, j + shift, k));
      }
  return p;
}

SdcOptions small_options() {
  SdcOptions o;
  o.warp_res = {16, 10};
  o.subsample = {2, 1};
  o.fwhm = {4, 0};
  o.iterations = {8, 6};
  o.lambda = {1e-4, 1e-4};
  return o;
}

} // namespace

TEST(Sdc, PositiveFieldShiftsThePlusImageTowardsPlus) {
  // topup --fout's sign: a uniform field of +10 Hz with a readout of 0.1 s shifts the PE+ image by +1 voxel.
  const Pair p = shifted_pair(1.0);
  // The pattern runs across the field of view's edges, where no field explains both images: fit inside.
  Image<uint8_t> mask(p.g);
  for (int64_t k = 0; k < 12; ++k)
    for (int64_t j = 4; j < 28; ++j)
      for (int64_t i = 0; i < 20; ++i) mask.view()(i, j, k) = 1;
  const ImageView<const uint8_t> mv = mask.view();
  const SdcResult r = sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.1, {1, -1}, 0.1, &mv, small_options());
  double s = 0;
  int64_t n = 0;
  for (int64_t k = 3; k < 9; ++k)
    for (int64_t j = 8; j < 24; ++j)
      for (int64_t i = 5; i < 15; ++i) s += r.field.view()(i, j, k), ++n;
  EXPECT_NEAR(s / double(n), 10.0, 0.05);
  // Swapping the images' roles (UP acquired with j-) flips the field's sign.
  const SdcResult q = sdc(p.down.view(), p.up.view(), p.g, {1, -1}, 0.1, {1, 1}, 0.1, &mv, small_options());
  EXPECT_NEAR(q.field.view()(10, 16, 6), r.field.view()(10, 16, 6), 1e-3);
  const SdcResult w = sdc(p.up.view(), p.down.view(), p.g, {1, -1}, 0.1, {1, 1}, 0.1, &mv, small_options());
  EXPECT_NEAR(w.field.view()(10, 16, 6), -10.0, 0.05);
}

TEST(Sdc, BitIdenticalAcrossThreadCounts) {
  const Pair p = shifted_pair(1.5);
  set_num_threads(1);
  const SdcResult a = sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.05, {1, -1}, 0.05, nullptr, small_options());
  set_num_threads(2);
  const SdcResult b = sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.05, {1, -1}, 0.05, nullptr, small_options());
  set_num_threads(0);
  ASSERT_EQ(a.field.size(), b.field.size());
  EXPECT_EQ(0, std::memcmp(a.field.data(), b.field.data(), sizeof(float) * size_t(a.field.size())));
  EXPECT_EQ(0, std::memcmp(a.corrected.data(), b.corrected.data(), sizeof(float) * size_t(a.corrected.size())));
  EXPECT_TRUE(a.motion == b.motion); // the motion estimate (on by default) too
}

TEST(Sdc, BadInputIsRefused) {
  const Pair p = shifted_pair(1.0);
  const SdcOptions o = small_options();
  EXPECT_THROW(sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.05, {1, 1}, 0.05, nullptr, o), InvalidArgument);
  EXPECT_THROW(sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.05, {0, -1}, 0.05, nullptr, o), InvalidArgument);
  EXPECT_THROW(sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.0, {1, -1}, 0.05, nullptr, o), InvalidArgument);
  EXPECT_THROW(sdc(p.up.view(), p.down.view(), p.g, {1, 1}, NAN, {1, -1}, 0.05, nullptr, o), InvalidArgument);
  ImageView<const float> cut = p.down.view();
  cut.dims[2] = 11;
  EXPECT_THROW(sdc(p.up.view(), cut, p.g, {1, 1}, 0.05, {1, -1}, 0.05, nullptr, o), InvalidArgument);
  SdcOptions bad = o;
  bad.lambda.pop_back();
  EXPECT_THROW(sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.05, {1, -1}, 0.05, nullptr, bad), InvalidArgument);
  Image<uint8_t> empty(p.g);
  const ImageView<const uint8_t> ev = empty.view();
  EXPECT_THROW(sdc(p.up.view(), p.down.view(), p.g, {1, 1}, 0.05, {1, -1}, 0.05, &ev, o), InvalidArgument);
  EXPECT_THROW(parse_phase_encoding("q", "--pe-dir"), InvalidArgument);
  EXPECT_THROW(parse_phase_encoding("", "--pe-dir"), InvalidArgument);
}

TEST(Sdc, PhaseEncodingNames) {
  EXPECT_EQ(parse_phase_encoding("j-", "x"), (PhaseEncoding{1, -1}));
  EXPECT_EQ(parse_phase_encoding("-j", "x"), (PhaseEncoding{1, -1}));
  EXPECT_EQ(parse_phase_encoding("i", "x"), (PhaseEncoding{0, 1}));
  EXPECT_EQ(parse_phase_encoding("k", "x"), (PhaseEncoding{2, 1}));
  EXPECT_EQ(phase_encoding_name({1, -1}), "j-");
}

TEST(Sdc, ReadsTopupDatain) {
  test::TempDir d;
  std::ofstream(d / "ok.txt") << "0 1 0 0.05\n0 -1 0 0.0475\n\n";
  const auto rows = read_acquisition_parameters(d / "ok.txt");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].pe, (PhaseEncoding{1, 1}));
  EXPECT_EQ(rows[1].pe, (PhaseEncoding{1, -1}));
  EXPECT_DOUBLE_EQ(rows[1].readout, 0.0475);
  std::ofstream(d / "bad1.txt") << "0 1 1 0.05\n";
  std::ofstream(d / "bad2.txt") << "0 1 0 0\n";
  std::ofstream(d / "bad3.txt") << "0 1 0\n";
  for (const char* n : {"bad1.txt", "bad2.txt", "bad3.txt", "missing.txt"})
    EXPECT_THROW(read_acquisition_parameters(d / n), IoError) << n;
}

TEST(Sdc, DisplacementFieldRoundTrips) {
  // The written field is read back (ITK layout, LPS) as the RAS displacement sdc_displacement gave.
  test::TempDir d;
  Geometry g;
  g.dims = {6, 5, 4, 1};
  g.affine.diagonal() << -2.0, 2.0, 2.5, 1.0;
  Image<float> f(g);
  for (int64_t v = 0; v < f.size(); ++v) f.data()[v] = float(v % 7) - 3.0f;
  const DisplacementField D = sdc_displacement(f.view(), g, {1, -1}, 0.05);
  write_displacement_field(d / "u.nii.gz", D);
  const DisplacementField R = read_displacement_field(d / "u.nii.gz");
  ASSERT_EQ(R.u.size(), D.u.size());
  for (int64_t v = 0; v < D.u.size(); ++v) EXPECT_NEAR(R.u.data()[v], D.u.data()[v], 1e-6);
  // Along j only: 2 mm x (-1) x 0.05 s x field.
  EXPECT_NEAR(D.u.data()[3 + 120], 2.0 * -0.05 * f.data()[3], 1e-12);
  EXPECT_EQ(D.u.data()[3], 0.0);
}

TEST(Sdc, MotionDerivativeIsExact) {
  // The motion's columns of the joint Gauss-Newton system (motion_jacobian) against central finite
  // differences of the residual with DOWN sampled in 3D (motion_residuals), at a non-zero field and
  // motion, on a subsampled level; and the moved DOWN at the truth brings DOWN back onto UP.
  const int64_t N[3] = {28, 24, 20};
  const double sp[3] = {2.0, 1.5, 2.5};
  const Blobs pattern(30, N, 7);
  const Vec3 centre = motion_centre(N, sp);
  const std::array<double, 6> truth{0.0, 0.8, -0.6, 0.04, -0.03, 0.05};
  const Mat4 Minv = rigid_matrix(truth, centre).inverse();
  for (int factor : {1, 2}) {
    LevelProblem P;
    int fa[3];
    for (int a = 0; a < 3; ++a) {
      fa[a] = factor;
      P.dims[a] = N[a] / factor;
      const ControlLayout L = control_layout(N[a], 5.0);
      P.basis.ax[a] = make_axis(L, P.dims[a], factor);
      P.bending.nc[a] = L.nc;
      P.bending.h[a] = 5.0 * sp[a];
    }
    Geometry g;
    for (int a = 0; a < 3; ++a) g.dims[size_t(a)] = P.dims[a];
    Image<float> down(g, no_init);
    P.coef_up.resize(size_t(P.dims[0] * P.dims[1] * P.dims[2]));
    for (int64_t k = 0, v = 0; k < P.dims[2]; ++k)
      for (int64_t j = 0; j < P.dims[1]; ++j)
        for (int64_t i = 0; i < P.dims[0]; ++i, ++v) {
          const double off = (factor - 1) / 2.0;
          const Vec3 x(sp[0] * (factor * i + off), sp[1] * (factor * j + off), sp[2] * (factor * k + off));
          P.coef_up[size_t(v)] = pattern(x[0] / sp[0], x[1] / sp[1], x[2] / sp[2]);
          const Vec3 z = Minv.block<3, 3>(0, 0) * x + Minv.block<3, 1>(0, 3);
          down.data()[v] = float(pattern(z[0] / sp[0], z[1] / sp[1], z[2] / sp[2]));
        }
    const int64_t d4[4] = {P.dims[0], P.dims[1], P.dims[2], 1};
    prefilter_in_place<double>(P.coef_up.data(), d4, 1, 3, Mode::Mirror);
    P.weight.assign(P.coef_up.size(), 1.0f);
    for (size_t v = 0; v < P.weight.size(); v += 7) P.weight[v] = 0.5f;
    P.shift_up = 0.05 / factor, P.shift_down = -0.04 / factor, P.jac_up = 0.05, P.jac_down = -0.04;
    P.voxel_volume = sp[0] * sp[1] * sp[2] * factor * factor * factor;
    const MotionProblem Q = make_motion_problem(down, fa, sp, N, -0.04 * sp[0]);
    const std::vector<double> c = random_coefficients(P, 5.0, 11);
    const std::array<double, 6> at{0.0, 0.3, -0.2, 0.01, 0.02, -0.015};
    const std::vector<double> J = motion_jacobian(P, Q, c, at);
    const int64_t nv = P.dims[0] * P.dims[1] * P.dims[2];
    for (int p = 0; p < kMotionFree; ++p) {
      const double h = p < 2 ? 1e-4 : 1e-6;
      std::array<double, 6> lo = at, hi = at;
      lo[size_t(p + 1)] -= h, hi[size_t(p + 1)] += h;
      const std::vector<double> rl = motion_residuals(P, Q, c, lo), rh = motion_residuals(P, Q, c, hi);
      double err = 0, ref = 0;
      for (int64_t v = 0; v < nv; ++v) {
        const double fd = (rh[size_t(v)] - rl[size_t(v)]) / (2 * h);
        err = std::max(err, std::fabs(fd - J[size_t(v * kMotionFree + p)]));
        ref = std::max(ref, std::fabs(fd));
      }
      EXPECT_LT(err, 1e-5 * ref) << "parameter " << p + 1 << ", factor " << factor;
    }
    // At the true motion (no field), DOWN moved back equals UP inside (the mirror at the border is not the pattern).
    std::vector<double> back = moved_down(P, Q, rigid_matrix(truth, centre)), up = P.coef_up;
    double err = 0, ref = 0;
    for (int64_t k = 3; k < P.dims[2] - 3; ++k)
      for (int64_t j = 3; j < P.dims[1] - 3; ++j)
        for (int64_t i = 3; i < P.dims[0] - 3; ++i) {
          const size_t v = size_t(i + P.dims[0] * (j + P.dims[1] * k));
          err = std::max(err, std::fabs(back[v] - up[v])), ref = std::max(ref, std::fabs(up[v]));
        }
    EXPECT_LT(err, 0.05 * ref) << "factor " << factor;
  }
}
