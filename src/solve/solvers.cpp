#include "voxalign/solve/solvers.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include "voxalign/core/error.hpp"

namespace voxalign {
namespace {

bool all_finite(double fv, const std::vector<double>& gv) {
  if (!std::isfinite(fv)) return false;
  for (double a : gv)
    if (!std::isfinite(a)) return false;
  return true;
}

double norm_inf(const std::vector<double>& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::abs(a));
  return m;
}

} // namespace

SolveResult bb_minimize(const ObjectiveGradient& fg, std::vector<double> x, const BBOptions& o) {
  const size_t n = x.size();
  VX_CHECK(n > 0, InvalidArgument, "bb_minimize: no variables");
  VX_CHECK(o.lower.empty() || o.lower.size() == n, InvalidArgument, "bb_minimize: lower bounds need ", n, " values");
  VX_CHECK(o.upper.empty() || o.upper.size() == n, InvalidArgument, "bb_minimize: upper bounds need ", n, " values");
  VX_CHECK(o.groups.empty() || o.groups.size() == n, InvalidArgument, "bb_minimize: groups need ", n, " values");
  // Group ids renumbered densely (0 .. k-1 in increasing id order), whatever values were given.
  std::vector<int> gid(o.groups.size());
  int ngroups = 1;
  if (!o.groups.empty()) {
    std::vector<int> ids(o.groups);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (size_t i = 0; i < n; ++i)
      gid[i] = int(std::lower_bound(ids.begin(), ids.end(), o.groups[i]) - ids.begin());
    ngroups = int(ids.size());
  }
  auto group = [&](size_t i) { return o.groups.empty() ? 0 : gid[i]; };
  auto project = [&](std::vector<double>& v) {
    for (size_t i = 0; i < n; ++i) {
      if (!o.lower.empty()) v[i] = std::max(v[i], o.lower[i]);
      if (!o.upper.empty()) v[i] = std::min(v[i], o.upper[i]);
    }
  };
  project(x);
  SolveResult r;
  std::vector<double> g(n), xn(n), gn(n);
  double f = fg(x.data(), g.data());
  ++r.evaluations;
  auto finite = all_finite;
  VX_CHECK(finite(f, g), InvalidArgument, "bb_minimize: the objective or its gradient is not finite at the start");
  // projected-gradient stationarity measure
  auto stationarity = [&](const std::vector<double>& xv, const std::vector<double>& gv) {
    std::vector<double> p(xv);
    for (size_t i = 0; i < n; ++i) p[i] -= gv[i];
    project(p);
    double m = 0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(p[i] - xv[i]));
    return m;
  };
  std::vector<double> alpha(static_cast<size_t>(ngroups), o.step0 > 0 ? o.step0 : 1.0 / std::max(norm_inf(g), 1e-300));
  constexpr double kMin = 1e-30, kMax = 1e30;
  std::deque<double> recent{f};
  for (int it = 0; it < o.max_iterations; ++it) {
    if (stationarity(x, g) <= o.tol * std::max(1.0, norm_inf(x))) {
      r.converged = true;
      break;
    }
    double scale = 1.0, fnew = 0.0;
    for (int tries = 0;; ++tries) {
      for (size_t i = 0; i < n; ++i) xn[i] = x[i] - scale * alpha[static_cast<size_t>(group(i))] * g[i];
      project(xn);
      fnew = fg(xn.data(), gn.data());
      ++r.evaluations;
      if (!finite(fnew, gn)) { // a step into a non-finite region: shorten it
        if (tries >= 30) break;
        scale *= 0.5;
        continue;
      }
      if (!o.line_search) break;
      double decrease = 0;
      for (size_t i = 0; i < n; ++i) decrease += g[i] * (xn[i] - x[i]);
      const double ref = *std::max_element(recent.begin(), recent.end());
      if (fnew <= ref + 1e-4 * decrease || tries >= 30) break;
      scale *= 0.5;
    }
    // BB steps per group from s = xn - x, y = gn - g (BB1 on even, BB2 on odd iterations)
    std::vector<double> ss(static_cast<size_t>(ngroups), 0.0), sy(ss), yy(ss);
    for (size_t i = 0; i < n; ++i) {
      const double s = xn[i] - x[i], y = gn[i] - g[i];
      const auto q = static_cast<size_t>(group(i));
      ss[q] += s * s, sy[q] += s * y, yy[q] += y * y;
    }
    for (size_t q = 0; q < static_cast<size_t>(ngroups); ++q) {
      if (sy[q] > 0) alpha[q] = std::clamp(it % 2 == 0 ? ss[q] / sy[q] : sy[q] / yy[q], kMin, kMax);
      else if (ss[q] > 0) alpha[q] = std::min(alpha[q] * 2.0, kMax); // non-convex direction: grow cautiously
    }
    if (!finite(fnew, gn)) break; // cannot continue: not converged
    const double rel = std::abs(f - fnew) / std::max(std::abs(f), 1e-300);
    x.swap(xn);
    g.swap(gn);
    f = fnew;
    r.history.push_back(f);
    r.iterations = it + 1;
    recent.push_back(f);
    if (recent.size() > 10) recent.pop_front();
    if (o.f_tol > 0 && rel < o.f_tol) {
      r.converged = true;
      break;
    }
  }
  r.x = std::move(x);
  r.f = f;
  return r;
}

SolveResult gauss_newton(const NormalEquations& ne, std::vector<double> x, const GNOptions& o) {
  const int n = static_cast<int>(x.size());
  VX_CHECK(n > 0, InvalidArgument, "gauss_newton: no parameters");
  SolveResult r;
  Eigen::MatrixXd H(n, n);
  Eigen::VectorXd b(n);
  std::vector<double> Hn(static_cast<size_t>(n * n)), bn(static_cast<size_t>(n)), xn(static_cast<size_t>(n));
  double f = ne(x.data(), H.data(), b.data()); // row-major symmetric: the layout does not matter
  ++r.evaluations;
  VX_CHECK(std::isfinite(f) && H.allFinite() && b.allFinite(), InvalidArgument,
           "gauss_newton: the cost or the normal equations are not finite at the start");
  double lambda = o.lambda0;
  for (int it = 0; it < o.max_iterations; ++it) {
    bool accepted = false;
    double step_max = 0;
    for (int tries = 0; tries < 20 && !accepted; ++tries) {
      Eigen::MatrixXd A = H;
      for (int i = 0; i < n; ++i) A(i, i) += lambda * std::max(H(i, i), 1e-12);
      const Eigen::VectorXd d = A.ldlt().solve(-b);
      if (!d.allFinite()) {
        lambda = std::max(lambda * 10.0, 1e-6);
        continue;
      }
      // The undamped Gauss-Newton step is already below the tolerance: converged, without spending
      // an evaluation (or damping retries) on a step at rounding level.
      if (tries == 0 && lambda == 0.0 && d.cwiseAbs().maxCoeff() < o.tol) {
        r.converged = true;
        accepted = true;
        step_max = 0;
        break;
      }
      for (int i = 0; i < n; ++i) xn[static_cast<size_t>(i)] = x[static_cast<size_t>(i)] + d[i];
      const double fnew = ne(xn.data(), Hn.data(), bn.data());
      ++r.evaluations;
      step_max = d.cwiseAbs().maxCoeff();
      const bool ok = std::isfinite(fnew) && Eigen::Map<Eigen::VectorXd>(Hn.data(), n * n).allFinite() &&
                      Eigen::Map<Eigen::VectorXd>(bn.data(), n).allFinite();
      if (ok && fnew <= f) {
        const double rel = (f - fnew) / std::max(f, 1e-300);
        x = xn;
        H = Eigen::Map<Eigen::MatrixXd>(Hn.data(), n, n);
        b = Eigen::Map<Eigen::VectorXd>(bn.data(), n);
        f = fnew;
        lambda *= 0.1;
        accepted = true;
        if (rel < o.f_tol) r.converged = true;
      } else {
        lambda = std::max(lambda * 10.0, 1e-6);
      }
    }
    if (r.converged && step_max == 0) break; // converged before moving
    r.history.push_back(f);
    r.iterations = it + 1;
    if (!accepted) break; // no step decreases the cost: stalled, not converged
    if (step_max < o.tol) r.converged = true;
    if (r.converged) break;
  }
  r.x = std::move(x);
  r.f = f;
  return r;
}

SolveResult lbfgs_minimize(const ObjectiveGradient& fg, std::vector<double> x, const LBFGSOptions& o) {
  const size_t n = x.size();
  VX_CHECK(n > 0, InvalidArgument, "lbfgs_minimize: no variables");
  SolveResult r;
  std::vector<double> g(n), xn(n), gn(n), d(n);
  double f = fg(x.data(), g.data());
  ++r.evaluations;
  auto finite = all_finite;
  VX_CHECK(finite(f, g), InvalidArgument, "lbfgs_minimize: the objective or its gradient is not finite at the start");
  std::deque<std::vector<double>> S, Y;
  std::deque<double> rho;
  double last_step = o.max_step > 0 ? o.max_step : 1.0; // steepest-descent step length (inf-norm)
  bool restarted = false;
  for (int it = 0; it < o.max_iterations; ++it) {
    const double gmax = norm_inf(g);
    if (gmax == 0.0) {
      r.converged = true;
      break;
    }
    // Two-loop recursion: d = -H g.
    std::vector<double> q(g);
    std::vector<double> a(S.size());
    for (size_t k = S.size(); k-- > 0;) {
      double sq = 0;
      for (size_t i = 0; i < n; ++i) sq += S[k][i] * q[i];
      a[k] = rho[k] * sq;
      for (size_t i = 0; i < n; ++i) q[i] -= a[k] * Y[k][i];
    }
    bool quasi_newton = !S.empty();
    if (quasi_newton) {
      const auto& sl = S.back();
      const auto& yl = Y.back();
      double sy = 0, yy = 0;
      for (size_t i = 0; i < n; ++i) sy += sl[i] * yl[i], yy += yl[i] * yl[i];
      const double gamma = sy / yy;
      for (size_t i = 0; i < n; ++i) q[i] *= gamma;
      for (size_t k = 0; k < S.size(); ++k) {
        double yq = 0;
        for (size_t i = 0; i < n; ++i) yq += Y[k][i] * q[i];
        const double b = rho[k] * yq;
        for (size_t i = 0; i < n; ++i) q[i] += S[k][i] * (a[k] - b);
      }
      for (size_t i = 0; i < n; ++i) d[i] = -q[i];
    }
    double gd = 0;
    for (size_t i = 0; i < n; ++i) gd += g[i] * d[i];
    if (!quasi_newton || !(gd < 0)) { // steepest descent (first step, memory 0, or a bad direction)
      S.clear(), Y.clear(), rho.clear();
      for (size_t i = 0; i < n; ++i) d[i] = -g[i] * (last_step / gmax);
      quasi_newton = false;
      gd = 0;
      for (size_t i = 0; i < n; ++i) gd += g[i] * d[i];
    }
    if (o.max_step > 0) {
      const double dm = norm_inf(d);
      if (dm > o.max_step)
        for (double& v : d) v *= o.max_step / dm;
      gd = 0;
      for (size_t i = 0; i < n; ++i) gd += g[i] * d[i];
    }
    double t = 1.0, fnew = 0.0;
    bool accepted = false;
    for (int tries = 0; tries < 40; ++tries) {
      for (size_t i = 0; i < n; ++i) xn[i] = x[i] + t * d[i];
      fnew = fg(xn.data(), gn.data());
      ++r.evaluations;
      if (finite(fnew, gn) && fnew <= f + 1e-4 * t * gd) {
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) break; // no decrease along a descent direction: stalled at rounding level
    std::vector<double> s(n), y(n);
    double sy = 0;
    for (size_t i = 0; i < n; ++i) s[i] = xn[i] - x[i], y[i] = gn[i] - g[i], sy += s[i] * y[i];
    const double smax = norm_inf(s);
    if (!quasi_newton) last_step = std::min(o.max_step > 0 ? o.max_step : 1e300, 2.0 * smax);
    if (o.memory > 0 && sy > 1e-12 * std::max(1e-300, smax * norm_inf(y))) {
      S.push_back(s), Y.push_back(y), rho.push_back(1.0 / sy);
      if (int(S.size()) > o.memory) S.pop_front(), Y.pop_front(), rho.pop_front();
    }
    const double rel = (f - fnew) / std::max(std::abs(f), 1e-300);
    x.swap(xn);
    g.swap(gn);
    f = fnew;
    r.history.push_back(f);
    r.iterations = it + 1;
    if (smax < o.tol || (o.f_tol > 0 && rel < o.f_tol)) {
      // A short step that the line search had to cut is no sign of convergence: restart from
      // steepest descent once before giving up.
      if (t < 1.0 && !restarted) {
        restarted = true;
        S.clear(), Y.clear(), rho.clear();
        last_step = o.max_step > 0 ? o.max_step : 1.0;
        continue;
      }
      r.converged = true;
      break;
    }
    restarted = false;
  }
  r.x = std::move(x);
  r.f = f;
  return r;
}

SolveResult adam_minimize(const ObjectiveGradient& fg, std::vector<double> x, const AdamOptions& o) {
  const size_t n = x.size();
  VX_CHECK(n > 0, InvalidArgument, "adam_minimize: no variables");
  SolveResult r;
  std::vector<double> g(n), m(n, 0.0), v(n, 0.0), best = x;
  double fbest = std::numeric_limits<double>::infinity();
  for (int it = 0; it < o.max_iterations; ++it) {
    const double f = fg(x.data(), g.data());
    ++r.evaluations;
    bool ok = std::isfinite(f);
    for (double a : g) ok = ok && std::isfinite(a);
    if (!ok) break;
    if (f < fbest) fbest = f, best = x;
    r.history.push_back(f);
    r.iterations = it + 1;
    const double lr = o.learning_rate / std::sqrt(1.0 + it / 10.0);
    const double c1 = 1.0 - std::pow(o.beta1, it + 1), c2 = 1.0 - std::pow(o.beta2, it + 1);
    for (size_t i = 0; i < n; ++i) {
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
      x[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + o.eps);
    }
  }
  {
    std::vector<double> gl(n);
    const double f = fg(x.data(), gl.data());
    ++r.evaluations;
    if (std::isfinite(f) && f < fbest) fbest = f, best = x;
  }
  VX_CHECK(std::isfinite(fbest), InvalidArgument, "adam_minimize: the objective is not finite");
  r.x = std::move(best);
  r.f = fbest;
  return r;
}

int conjugate_gradient(const LinearOperator& apply, const std::vector<double>& rhs, const std::vector<double>& diag,
                       std::vector<double>& x, int max_it, double tol, bool warm_start) {
  const size_t n = rhs.size();
  VX_CHECK(diag.size() == n, InvalidArgument, "conjugate_gradient: the preconditioner needs ", n, " values");
  std::vector<double> r = rhs, z(n), p(n), q(n);
  if (warm_start) {
    VX_CHECK(x.size() == n, InvalidArgument, "conjugate_gradient: the start needs ", n, " values");
    apply(x.data(), q.data());
    for (size_t i = 0; i < n; ++i) r[i] -= q[i];
  } else {
    x.assign(n, 0.0);
  }
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  for (size_t i = 0; i < n; ++i) z[i] = r[i] / diag[i];
  p = z;
  double rz = dot(r, z);
  const double r0 = std::sqrt(dot(r, r));
  if (!(r0 > 0)) return 0;
  int it = 0;
  while (it < max_it) {
    apply(p.data(), q.data());
    ++it;
    const double pq = dot(p, q);
    if (!(pq > 0)) break;
    const double alpha = rz / pq;
    for (size_t i = 0; i < n; ++i) x[i] += alpha * p[i], r[i] -= alpha * q[i];
    if (std::sqrt(dot(r, r)) <= tol * r0) break;
    for (size_t i = 0; i < n; ++i) z[i] = r[i] / diag[i];
    const double rz1 = dot(r, z);
    const double beta = rz1 / rz;
    rz = rz1;
    for (size_t i = 0; i < n; ++i) p[i] = z[i] + beta * p[i];
  }
  return it;
}

} // namespace voxalign
