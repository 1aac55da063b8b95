// The stack operator A = D B W(T) of superres, its exact adjoint and the motion's normal equations.
#include "model.hpp"

#include <algorithm>
#include <cmath>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/affine_params.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign::superres_detail {
namespace {

constexpr Mode kModelMode = Mode::Constant; // zero outside the output grid: A's rows there see nothing

AffineModel rigid_model(const Vec3& centre) { // AffineModel's default: 3D rigid
  AffineModel am;
  am.centre = centre;
  return am;
}

/// The stack's fine grid (all slices' profile samples) over `data`.
ImageView<float> fine_view(float* data, const StackModel& m) {
  const auto& d = m.y.geometry().dims;
  const int64_t dims[4] = {d[0], d[1], d[2] * m.nq, 1};
  return contiguous_view(data, dims);
}

ImageView<const float> field_view(const StackModel& m) { return m.field.view(); }

/// Slice s's displacements for the point map P (stack world -> output voxels) into `f`, a field of
/// `planes` planes of which the slice's first is plane k0 (its components `comp` values apart).
void write_slice_field(const StackModel& m, const Mat4& P, int64_t s, float* f, int64_t k0, int64_t comp) {
  const auto& yd = m.y.geometry().dims;
  const int64_t na = yd[0], nb = yd[1], plane = na * nb;
  const Vec3 da = P.topLeftCorner<3, 3>() * m.vox2world.col(0).head<3>();
  for (int q = 0; q < m.nq; ++q) {
    const int64_t k = k0 + q;
    for (int64_t b = 0; b < nb; ++b) {
      const Vec3 X0 = fine_world(m, 0, b, s, q);
      const Vec3 p0 = P.topLeftCorner<3, 3>() * X0 + P.topRightCorner<3, 1>();
      for (int64_t a = 0; a < na; ++a) {
        const int64_t o = k * plane + b * na + a;
        const Vec3 p = p0 + double(a) * da;
        f[o] = float(p[0] - double(a));
        f[o + comp] = float(p[1] - double(b));
        f[o + 2 * comp] = float(p[2] - double(k));
      }
    }
  }
}

} // namespace

Mat4 rigid_matrix(const double* theta, const Vec3& centre) {
  return affine_model_matrix(rigid_model(centre), std::vector<double>(theta, theta + 6));
}

StackModel make_stack(const Image<float>& stack, double fine_mm) {
  const Geometry& g = stack.geometry();
  VX_CHECK(g.dims[3] == 1, InvalidArgument, "superres: stacks are 3D images");
  const Vec3 sp = g.spacing();
  StackModel m;
  int sa = 0;
  for (int d = 1; d < 3; ++d)
    if (sp[d] >= sp[sa] * (1 - 1e-6)) sa = d; // the thickest axis; the last of equals
  const int ia = sa == 0 ? 1 : 0, ib = sa == 2 ? 1 : 2;
  m.slice_axis = sa;
  const int perm[3] = {ia, ib, sa};
  Geometry gy;
  for (int d = 0; d < 3; ++d) gy.dims[size_t(d)] = g.dims[size_t(perm[d])];
  gy.affine = Mat4::Identity();
  m.y = Image<float>(gy, no_init);
  m.vox2world = Mat4::Identity();
  for (int d = 0; d < 3; ++d) m.vox2world.col(d) = g.affine.col(perm[d]);
  m.vox2world.col(3) = g.affine.col(3);
  const auto src = stack.view();
  const int64_t na = gy.dims[0], nb = gy.dims[1], ns = gy.dims[2];
  float* y = m.y.data();
  for (int64_t s = 0; s < ns; ++s)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t a = 0; a < na; ++a) {
        int64_t idx[3];
        idx[ia] = a, idx[ib] = b, idx[sa] = s;
        y[(s * nb + b) * na + a] = src(idx[0], idx[1], idx[2]);
      }
  // Gaussian profile with FWHM = slice thickness, sampled at about fine_mm over +-2.5 sigma.
  const double thick = sp[sa], sigma = thick / (2.0 * std::sqrt(2.0 * std::log(2.0)));
  const int h = std::max(1, int(std::lround(2.5 * sigma / fine_mm)));
  const double step_mm = 2.5 * sigma / h;
  m.nq = 2 * h + 1;
  m.dq = step_mm / thick;
  double sum = 0;
  for (int q = 0; q < m.nq; ++q) {
    const double z = (q - h) * step_mm;
    m.profile.push_back(std::exp(-0.5 * z * z / (sigma * sigma)));
    sum += m.profile.back();
  }
  for (double& w : m.profile) w /= sum;
  m.group.assign(size_t(ns), 0);
  m.ngroups = 1;
  m.motion.assign(1, Mat4::Identity());
  Geometry gf;
  gf.dims = {na, nb, ns * m.nq, 3};
  gf.ndim = 4;
  m.field = Image<float>(gf, no_init);
  m.weight.assign(size_t(m.voxels()), 1.0f);
  return m;
}

Image<float> on_stack_grid(const StackModel& m, const float* v, const Geometry& g) {
  const int sa = m.slice_axis, ia = sa == 0 ? 1 : 0, ib = sa == 2 ? 1 : 2;
  const auto& yd = m.y.geometry().dims;
  VX_CHECK(g.dims[size_t(ia)] == yd[0] && g.dims[size_t(ib)] == yd[1] && g.dims[size_t(sa)] == yd[2], InvalidArgument,
           "superres: the grid does not match the stack's model");
  Image<float> out(g, no_init);
  auto o = out.view();
  for (int64_t s = 0; s < yd[2]; ++s)
    for (int64_t b = 0; b < yd[1]; ++b)
      for (int64_t a = 0; a < yd[0]; ++a) {
        int64_t idx[3];
        idx[ia] = a, idx[ib] = b, idx[sa] = s;
        o(idx[0], idx[1], idx[2]) = v[(s * yd[1] + b) * yd[0] + a];
      }
  return out;
}

void update_slice_field(StackModel& m, const Mat4& w2v, int64_t s) {
  const auto& fd = m.field.geometry().dims;
  write_slice_field(m, w2v * m.motion[size_t(m.group[size_t(s)])], s, m.field.data(), s * m.nq, fd[0] * fd[1] * fd[2]);
}

void update_field(StackModel& m, const Mat4& w2v) {
  parallel_for(m.slices(), 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) update_slice_field(m, w2v, s);
  });
}

Coefficients<float> model_coefficients(ImageView<const float> x) { return spline_coefficients(x, 3, 1, kModelMode); }

void apply_forward(const StackModel& m, const Coefficients<float>& x, float* out, std::vector<float>& fine) {
  const int64_t ns = m.slices(), plane = m.slice_size();
  fine.resize(size_t(plane * ns * m.nq));
  warp_displacement(x, field_view(m), fine_view(fine.data(), m));
  parallel_for(ns, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      float* o = out + s * plane;
      const float* f = fine.data() + s * m.nq * plane;
      for (int64_t v = 0; v < plane; ++v) {
        double acc = 0;
        for (int q = 0; q < m.nq; ++q) acc += m.profile[size_t(q)] * f[q * plane + v];
        o[v] = float(acc);
      }
    }
  });
}

void apply_adjoint(const StackModel& m, const float* ybar, ImageView<float> out, std::vector<float>& fine) {
  const int64_t ns = m.slices(), plane = m.slice_size();
  fine.resize(size_t(plane * ns * m.nq));
  parallel_for(ns, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int q = 0; q < m.nq; ++q) {
        const float w = float(m.profile[size_t(q)]);
        float* f = fine.data() + (s * m.nq + q) * plane;
        const float* y = ybar + s * plane;
        for (int64_t v = 0; v < plane; ++v) f[v] = w * y[v];
      }
  });
  const ImageView<float> fv = fine_view(fine.data(), m);
  warp_displacement_adjoint<float>(fv, field_view(m), 3, 1, kModelMode, out);
}

double motion_normal_equations(const StackModel& m, const Mat4& w2v, const Coefficients<float>& x,
                               const std::vector<int64_t>& slices, const Mat4& T0, const Vec3& centre,
                               const double* theta, double* JtJ, double* Jtr) {
  const AffineModel am = rigid_model(centre);
  const std::vector<double> th(theta, theta + 6);
  const Mat4 T = affine_model_matrix(am, th) * T0;
  const std::vector<Mat4> dR = affine_model_jacobian(am, th);
  // dp_j / dtheta in output voxels = K_j [X; 1] for the fine point's world position X.
  Eigen::Matrix<double, 3, 4> K[6];
  for (int j = 0; j < 6; ++j) K[j] = w2v.topLeftCorner<3, 3>() * (dR[size_t(j)] * T0).topRows<3>();
  const Mat4 P = w2v * T;
  const int64_t plane = m.slice_size(), na = m.y.geometry().dims[0];
  const size_t n = slices.size();
  std::vector<double> part(n * 43, 0.0); // per slice: cost, JtJ (36), Jtr (6)
  parallel_for(int64_t(n), 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> val(size_t(plane * m.nq)), grad(size_t(3 * plane * m.nq)), field(grad.size());
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t s = slices[size_t(i)];
      // The slab's own field: its planes are the output voxels k = 0 .. nq - 1 of this warp.
      write_slice_field(m, P, s, field.data(), 0, plane * m.nq);
      const int64_t vd[4] = {m.y.geometry().dims[0], m.y.geometry().dims[1], m.nq, 1};
      const int64_t gd[4] = {vd[0], vd[1], vd[2], 3};
      warp_displacement_gradient(x, ImageView<const float>(contiguous_view(field.data(), gd)),
                                 contiguous_view(val.data(), vd), contiguous_view(grad.data(), gd));
      double* pt = part.data() + size_t(i) * 43;
      const int64_t fn = plane * m.nq;
      for (int64_t v = 0; v < plane; ++v) {
        const double w = m.weight[size_t(s * plane + v)];
        if (w == 0) continue;
        const int64_t a = v % na, b = v / na;
        double pred = 0, mom[3][4] = {};
        for (int q = 0; q < m.nq; ++q) {
          const double pw = m.profile[size_t(q)];
          const int64_t o = q * plane + v;
          pred += pw * val[size_t(o)];
          const Vec3 X = fine_world(m, a, b, s, q);
          const double Xh[4] = {X[0], X[1], X[2], 1.0};
          for (int c = 0; c < 3; ++c) {
            const double gc = pw * grad[size_t(c * fn + o)];
            for (int e = 0; e < 4; ++e) mom[c][e] += gc * Xh[e];
          }
        }
        const double r = pred - m.y.data()[s * plane + v];
        double J[6];
        for (int j = 0; j < 6; ++j) {
          double acc = 0;
          for (int c = 0; c < 3; ++c)
            for (int e = 0; e < 4; ++e) acc += K[j](c, e) * mom[c][e];
          J[j] = acc;
        }
        pt[0] += 0.5 * w * r * r;
        for (int j = 0; j < 6; ++j) {
          for (int l = 0; l < 6; ++l) pt[1 + 6 * j + l] += w * J[j] * J[l];
          pt[37 + j] += w * J[j] * r;
        }
      }
    }
  });
  double cost = 0;
  std::fill(JtJ, JtJ + 36, 0.0);
  std::fill(Jtr, Jtr + 6, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double* pt = part.data() + i * 43;
    cost += pt[0];
    for (int j = 0; j < 36; ++j) JtJ[j] += pt[1 + j];
    for (int j = 0; j < 6; ++j) Jtr[j] += pt[37 + j];
  }
  return cost;
}

} // namespace voxalign::superres_detail
