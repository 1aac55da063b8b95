// Rigid motion of DOWN relative to UP, estimated together with the field (topup's --estmov): DOWN
// brought onto UP's frame for the line-wise fit, and the residual's exact derivative with respect to
// the rigid parameters (mm, radians, in the internal PE-first mm frame) through DOWN's cubic spline
// and the rigid map's parameter Jacobian: the motion's columns of the joint Gauss-Newton system.
#include <cmath>

#include "internal.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/warp/affine_params.hpp"

namespace voxalign::sdc_detail {

namespace {
constexpr int64_t kBlock = 4096; // voxels per reduction block: sums in block order, any thread count

AffineModel rigid_model(const Vec3& centre) { // AffineModel's default: 3D rigid
  AffineModel m;
  m.centre = centre;
  return m;
}

/// Level voxel (i, j, k) of block index v -> its position in mm.
inline Vec3 level_mm(const MotionProblem& Q, const int64_t* dims, int64_t v) {
  const int64_t i = v % dims[0], j = (v / dims[0]) % dims[1], k = v / (dims[0] * dims[1]);
  return {Q.lsp[0] * (double(i) + Q.off[0]), Q.lsp[1] * (double(j) + Q.off[1]), Q.lsp[2] * (double(k) + Q.off[2])};
}

inline void to_level_voxel(const MotionProblem& Q, const Vec3& p, double* out) {
  for (int a = 0; a < 3; ++a) out[a] = p[a] / Q.lsp[a] - Q.off[a];
}
} // namespace

Mat4 rigid_matrix(const std::array<double, 6>& theta, const Vec3& centre) {
  return affine_model_matrix(rigid_model(centre), std::vector<double>(theta.begin(), theta.end()));
}

Vec3 motion_centre(const int64_t* full_dims, const double* spacing) {
  return {0.5 * double(full_dims[0] - 1) * spacing[0], 0.5 * double(full_dims[1] - 1) * spacing[1],
          0.5 * double(full_dims[2] - 1) * spacing[2]};
}

MotionProblem make_motion_problem(const Image<float>& down_level, const int* factor, const double* spacing,
                                  const int64_t* full_dims, double shift_mm_per_hz) {
  MotionProblem Q;
  Image<double> d(down_level.geometry(), no_init);
  for (int64_t v = 0; v < d.size(); ++v) d.data()[v] = double(down_level.data()[v]);
  Q.down = spline_coefficients<double>(ImageView<const double>(d.view()), 3, 3, Mode::Mirror);
  for (int a = 0; a < 3; ++a) {
    Q.lsp[a] = spacing[a] * factor[a];
    Q.off[a] = double(factor[a] - 1) / (2.0 * factor[a]);
  }
  Q.centre = motion_centre(full_dims, spacing);
  Q.shift_mm = shift_mm_per_hz;
  return Q;
}

std::vector<double> moved_down(const LevelProblem& P, const MotionProblem& Q, const Mat4& M) {
  const int64_t nv = P.dims[0] * P.dims[1] * P.dims[2];
  std::vector<double> out(static_cast<size_t>(nv));
  parallel_for(nv, kBlock, [&](int64_t b, int64_t e) {
    std::vector<double> pts(static_cast<size_t>(3 * (e - b)));
    for (int64_t v = b; v < e; ++v) {
      const Vec3 p = M.block<3, 3>(0, 0) * level_mm(Q, P.dims, v) + M.block<3, 1>(0, 3);
      to_level_voxel(Q, p, &pts[size_t(3 * (v - b))]);
    }
    interpolate(Q.down, pts.data(), e - b, out.data() + b);
  });
  const int64_t d4[4] = {P.dims[0], P.dims[1], P.dims[2], 1};
  prefilter_in_place<double>(out.data(), d4, 1, 3, Mode::Mirror);
  return out;
}

std::vector<double> motion_residuals(const LevelProblem& P, const MotionProblem& Q, const std::vector<double>& c,
                                     const std::array<double, 6>& theta) {
  const int64_t n0 = P.dims[0], nv = n0 * P.dims[1] * P.dims[2];
  std::vector<double> F(static_cast<size_t>(nv)), Fp(F.size()), r(F.size());
  P.basis.forward(c.data(), F.data(), Fp.data());
  const Mat4 M = rigid_matrix(theta, Q.centre);
  parallel_for(nv, kBlock, [&](int64_t b, int64_t e) {
    const int64_t m = e - b;
    std::vector<double> pts(static_cast<size_t>(3 * m)), val(static_cast<size_t>(m));
    for (int64_t v = b; v < e; ++v) {
      Vec3 x = level_mm(Q, P.dims, v);
      x[0] += Q.shift_mm * F[size_t(v)];
      to_level_voxel(Q, M.block<3, 3>(0, 0) * x + M.block<3, 1>(0, 3), &pts[size_t(3 * (v - b))]);
    }
    interpolate(Q.down, pts.data(), m, val.data());
    for (int64_t v = b; v < e; ++v) {
      const int64_t i = v % n0;
      double vu, dv;
      sample_line(P.coef_up.data() + (v - i), n0, double(i) + P.shift_up * F[size_t(v)], vu, dv);
      const double sm = std::sqrt((P.weight.empty() ? 1.0 : double(P.weight[size_t(v)])) * P.voxel_volume);
      r[size_t(v)] = sm * (vu * (1.0 + P.jac_up * Fp[size_t(v)]) - val[size_t(v - b)] * (1.0 + P.jac_down * Fp[size_t(v)]));
    }
  });
  return r;
}

std::vector<double> motion_jacobian(const LevelProblem& P, const MotionProblem& Q, const std::vector<double>& c,
                                    const std::array<double, 6>& theta) {
  const int64_t nv = P.dims[0] * P.dims[1] * P.dims[2];
  std::vector<double> F(static_cast<size_t>(nv)), Fp(F.size());
  P.basis.forward(c.data(), F.data(), Fp.data());
  const AffineModel model = rigid_model(Q.centre);
  const std::vector<double> tv(theta.begin(), theta.end());
  const Mat4 M = affine_model_matrix(model, tv);
  const std::vector<Mat4> dM = affine_model_jacobian(model, tv);
  std::vector<double> J(static_cast<size_t>(nv * kMotionFree));
  parallel_for(nv, kBlock, [&](int64_t b, int64_t e) {
    const int64_t m = e - b;
    std::vector<double> pts(static_cast<size_t>(3 * m)), val(static_cast<size_t>(m)), grad(static_cast<size_t>(3 * m));
    std::vector<Vec3> q(static_cast<size_t>(m));
    for (int64_t v = b; v < e; ++v) {
      Vec3 x = level_mm(Q, P.dims, v);
      x[0] += Q.shift_mm * F[size_t(v)];
      q[size_t(v - b)] = x;
      to_level_voxel(Q, M.block<3, 3>(0, 0) * x + M.block<3, 1>(0, 3), &pts[size_t(3 * (v - b))]);
    }
    interpolate(Q.down, pts.data(), m, val.data(), grad.data());
    for (int64_t v = b; v < e; ++v) {
      const size_t l = size_t(v - b);
      const double sm = std::sqrt((P.weight.empty() ? 1.0 : double(P.weight[size_t(v)])) * P.voxel_volume);
      const double jd = 1.0 + P.jac_down * Fp[size_t(v)];
      const Vec3 gmm(grad[3 * l] / Q.lsp[0], grad[3 * l + 1] / Q.lsp[1], grad[3 * l + 2] / Q.lsp[2]);
      for (int p = 0; p < kMotionFree; ++p) {
        const Mat4& D = dM[size_t(p + 1)]; // parameter 0, the PE translation, is held
        J[size_t(v * kMotionFree + p)] = -sm * jd * gmm.dot(D.block<3, 3>(0, 0) * q[l] + D.block<3, 1>(0, 3));
      }
    }
  });
  return J;
}

void motion_rows_apply(const std::vector<double>& Jm, const double* v_theta, double* t) {
  const int64_t nv = int64_t(Jm.size()) / kMotionFree;
  parallel_for(nv, kBlock, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double s = 0;
      for (int p = 0; p < kMotionFree; ++p) s += Jm[size_t(i * kMotionFree + p)] * v_theta[p];
      t[i] += s;
    }
  });
}

void motion_rows_adjoint(const std::vector<double>& Jm, const double* t, double* out) {
  const int64_t nv = int64_t(Jm.size()) / kMotionFree;
  const int64_t blocks = (nv + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(blocks * kMotionFree), 0.0);
  parallel_for(nv, kBlock, [&](int64_t b, int64_t e) {
    double* s = &part[size_t(b / kBlock * kMotionFree)];
    for (int64_t i = b; i < e; ++i)
      for (int p = 0; p < kMotionFree; ++p) s[p] += Jm[size_t(i * kMotionFree + p)] * t[i];
  });
  for (int p = 0; p < kMotionFree; ++p) out[p] = 0;
  for (int64_t k = 0; k < blocks; ++k)
    for (int p = 0; p < kMotionFree; ++p) out[p] += part[size_t(k * kMotionFree + p)];
}

} // namespace voxalign::sdc_detail
