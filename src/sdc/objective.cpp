// One pyramid level's objective: 1/2 sum w (A_up - A_down)^2 dV + bending, where A = I(y + s F(y))
// (1 + a dF/dy) pulls an image back along the phase-encoding axis, and its exact derivative with
// respect to the field's coefficients (chain rule through the cubic spline of the image and the
// B-spline of the field).
#include <cmath>

#include "internal.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/image.hpp"

namespace voxalign::sdc_detail {

namespace {
constexpr int64_t kLineGrain = 16;
}

Evaluation evaluate(const LevelProblem& P, const std::vector<double>& c, bool derivatives, bool approximate) {
  const int64_t n0 = P.dims[0], lines = P.dims[1] * P.dims[2], nv = n0 * lines;
  Buffer<double> F(static_cast<size_t>(nv)), Fp(static_cast<size_t>(nv));
  P.basis.forward(c.data(), F.data(), Fp.data());
  Evaluation E;
  Buffer<double> a, b;
  if (derivatives) {
    E.g1.resize(size_t(nv));
    E.g2.resize(size_t(nv));
    E.residual.resize(size_t(nv));
    a.resize(size_t(nv));
    b.resize(size_t(nv));
  }
  const int64_t blocks = (lines + kLineGrain - 1) / kLineGrain;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  const bool weighted = !P.weight.empty();
  parallel_for(lines, kLineGrain, [&](int64_t lb, int64_t le) {
    double sum = 0;
    for (int64_t line = lb; line < le; ++line) {
      const double* cu = P.coef_up.data() + n0 * line;
      const double* cd = P.coef_down.data() + n0 * line;
      for (int64_t i = 0; i < n0; ++i) {
        const int64_t v = i + n0 * line;
        const double m = (weighted ? double(P.weight[size_t(v)]) : 1.0) * P.voxel_volume;
        double vu, dvu, vd, dvd;
        const double xu = double(i) + P.shift_up * F[size_t(v)], xd = double(i) + P.shift_down * F[size_t(v)];
        sample_line(cu, n0, xu, vu, dvu);
        sample_line(cd, n0, xd, vd, dvd);
        const double ju = 1.0 + P.jac_up * Fp[size_t(v)], jd = 1.0 + P.jac_down * Fp[size_t(v)];
        const double r = vu * ju - vd * jd;
        sum += 0.5 * m * r * r;
        if (!derivatives) continue;
        if (approximate) { // central difference of the image, one voxel each side, for its derivative
          double p, q, dummy;
          sample_line(cu, n0, xu + 1, p, dummy);
          sample_line(cu, n0, xu - 1, q, dummy);
          dvu = 0.5 * (p - q);
          sample_line(cd, n0, xd + 1, p, dummy);
          sample_line(cd, n0, xd - 1, q, dummy);
          dvd = 0.5 * (p - q);
        }
        const double sm = std::sqrt(m);
        const double g1 = sm * (P.shift_up * dvu * ju - P.shift_down * dvd * jd);
        const double g2 = sm * (P.jac_up * vu - P.jac_down * vd);
        E.g1[size_t(v)] = g1;
        E.g2[size_t(v)] = g2;
        E.residual[size_t(v)] = sm * r;
        a[size_t(v)] = g1 * sm * r;
        b[size_t(v)] = g2 * sm * r;
      }
    }
    partial[size_t(lb / kLineGrain)] = sum;
  });
  for (double s : partial) E.data += s; // block order: the same sum for any thread count
  E.reg = P.bending.value(c.data());
  if (derivatives) {
    E.grad.assign(size_t(P.basis.controls()), 0.0);
    P.basis.adjoint(a.data(), b.data(), E.grad.data());
    P.bending.apply_add(c.data(), E.grad.data());
  }
  return E;
}

void gauss_newton_apply(const LevelProblem& P, const Evaluation& E, const double* v, double* out,
                        std::vector<double>& s1, std::vector<double>& s2, const std::vector<double>* Jm) {
  const int64_t nv = P.basis.voxels(), nc = P.basis.controls();
  s1.resize(size_t(nv));
  s2.resize(size_t(nv));
  P.basis.forward(v, s1.data(), s2.data());
  std::vector<double> t;
  if (Jm) t.assign(size_t(nv), 0.0), motion_rows_apply(*Jm, v + nc, t.data());
  parallel_for(nv, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double ti = E.g1[size_t(i)] * s1[size_t(i)] + E.g2[size_t(i)] * s2[size_t(i)];
      if (Jm) ti += t[size_t(i)], t[size_t(i)] = ti;
      s1[size_t(i)] = E.g1[size_t(i)] * ti;
      s2[size_t(i)] = E.g2[size_t(i)] * ti;
    }
  });
  P.basis.adjoint(s1.data(), s2.data(), out);
  P.bending.apply_add(v, out);
  if (Jm) motion_rows_adjoint(*Jm, t.data(), out + nc);
}

} // namespace voxalign::sdc_detail
