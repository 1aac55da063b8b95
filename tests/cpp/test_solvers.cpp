// The C++ solvers on problems with known minima: Barzilai-Borwein and Gauss-Newton on a
// quadratic, L-BFGS on Rosenbrock, Adam on a quadratic.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "voxalign/solve/solvers.hpp"

using namespace voxalign;

TEST(Solvers, BBAndGaussNewtonOnAQuadratic) {
  // f(x) = 0.5 sum d_i x_i^2 - sum x_i, minimum at 1 / d_i
  const std::vector<double> d{1, 3, 10, 30, 100};
  ObjectiveGradient fg = [&](const double* x, double* g) {
    double f = 0;
    for (size_t i = 0; i < d.size(); ++i) f += 0.5 * d[i] * x[i] * x[i] - x[i], g[i] = d[i] * x[i] - 1;
    return f;
  };
  BBOptions o;
  o.max_iterations = 500;
  o.tol = 1e-12;
  const SolveResult r = bb_minimize(fg, std::vector<double>(5, 0.0), o);
  EXPECT_TRUE(r.converged);
  for (size_t i = 0; i < d.size(); ++i) EXPECT_NEAR(r.x[i], 1 / d[i], 1e-10);
  NormalEquations ne = [&](const double* x, double* H, double* b) {
    double c = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double ri = std::sqrt(d[i]) * x[i] - 1 / std::sqrt(d[i]);
      c += 0.5 * ri * ri;
      for (size_t j = 0; j < d.size(); ++j) H[i * d.size() + j] = i == j ? d[i] : 0.0;
      b[i] = std::sqrt(d[i]) * ri;
    }
    return c;
  };
  const SolveResult g = gauss_newton(ne, std::vector<double>(5, 0.0), GNOptions{});
  for (size_t i = 0; i < d.size(); ++i) EXPECT_NEAR(g.x[i], 1 / d[i], 1e-12);
}

TEST(Solvers, LbfgsRosenbrockAndAdamQuadratic) {
  auto rosen = [](const double* x, double* g) {
    const double a = 1 - x[0], b = x[1] - x[0] * x[0];
    g[0] = -2 * a - 400 * x[0] * b;
    g[1] = 200 * b;
    return a * a + 100 * b * b;
  };
  LBFGSOptions o;
  o.max_iterations = 500;
  o.tol = 1e-10;
  const SolveResult r = lbfgs_minimize(rosen, {-1.2, 1.0}, o);
  EXPECT_NEAR(r.x[0], 1.0, 1e-5);
  EXPECT_NEAR(r.x[1], 1.0, 1e-5);
  auto quad = [](const double* x, double* g) {
    g[0] = 2 * (x[0] - 3), g[1] = 8 * (x[1] + 1);
    return (x[0] - 3) * (x[0] - 3) + 4 * (x[1] + 1) * (x[1] + 1);
  };
  AdamOptions ao;
  ao.max_iterations = 2000;
  ao.learning_rate = 0.05;
  const SolveResult ra = adam_minimize(quad, {0.0, 0.0}, ao);
  EXPECT_NEAR(ra.x[0], 3.0, 1e-2);
  EXPECT_NEAR(ra.x[1], -1.0, 1e-2);
}

// conjugate_gradient solves a 40 x 40 SPD system (a 1D Laplacian plus a varying diagonal) to the
// direct solution (relative 1e-8), from zero and from a warm start, within n iterations.
TEST(Solvers, ConjugateGradientSolvesSpdSystem) {
  const int n = 40;
  auto apply = [n](const double* v, double* out) {
    for (int i = 0; i < n; ++i) {
      out[i] = (2.0 + 0.1 * i) * v[i];
      if (i > 0) out[i] -= v[i - 1];
      if (i + 1 < n) out[i] -= v[i + 1];
    }
  };
  std::vector<double> rhs(n), diag(n), x;
  for (int i = 0; i < n; ++i) rhs[i] = std::sin(0.3 * i) + 1.0, diag[i] = 2.0 + 0.1 * i;
  // Reference: the tridiagonal system by the Thomas algorithm.
  std::vector<double> c(n), d(n), ref(n);
  for (int i = 0; i < n; ++i) {
    const double b = 2.0 + 0.1 * i, a = i > 0 ? -1.0 : 0.0;
    const double m = b - (i > 0 ? a * c[i - 1] : 0.0);
    c[i] = -1.0 / m;
    d[i] = (rhs[i] - (i > 0 ? a * d[i - 1] : 0.0)) / m;
  }
  for (int i = n - 1; i >= 0; --i) ref[i] = d[i] - (i + 1 < n ? c[i] * ref[i + 1] : 0.0);
  const int it = conjugate_gradient(apply, rhs, diag, x, n, 1e-12);
  EXPECT_LE(it, n);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(x[i], ref[i], 1e-8 * std::abs(ref[i]) + 1e-10);
  // Warm start near the solution: solves the residual system, same answer.
  std::vector<double> w = ref;
  for (int i = 0; i < n; ++i) w[i] += 0.01 * std::cos(0.7 * i);
  EXPECT_LE(conjugate_gradient(apply, rhs, diag, w, n, 1e-12, true), n);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(w[i], ref[i], 1e-8 * std::abs(ref[i]) + 1e-10);
}
