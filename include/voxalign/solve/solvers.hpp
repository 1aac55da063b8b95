// Solvers for the inverse problems the warp operators serve (docs/warp.md):
// - Barzilai-Borwein projected gradient with bounds and an optional non-monotone line search,
//   and its split variant with one step size per group of variables;
// - Gauss-Newton (Levenberg-Marquardt damped) for small parameter vectors, from the normal
//   equations J^T J, J^T r that the caller computes (so the Jacobian is never stored);
// - conjugate gradients for symmetric positive definite systems given as an operator.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace voxalign {

struct SolveResult {
  std::vector<double> x;
  double f = 0.0;               ///< objective at x
  int iterations = 0;
  int evaluations = 0;          ///< objective/gradient (or normal-equation) evaluations
  bool converged = false;
  std::vector<double> history;  ///< objective after each iteration
};

/// f(x, grad): the objective at x (n values), writing its gradient to grad.
using ObjectiveGradient = std::function<double(const double* x, double* grad)>;

struct BBOptions {
  int max_iterations = 100;
  double tol = 1e-6;            ///< stop when ||P(x - g) - x||_inf <= tol * max(1, ||x||_inf)
  double f_tol = 0.0;           ///< or when the objective's relative decrease is below this
  double step0 = 0.0;           ///< first step (0: 1 / ||g||_inf)
  bool line_search = false;     ///< non-monotone (Grippo-Lampariello-Lucidi, memory 10) backtracking
  std::vector<double> lower, upper; ///< bounds (empty: none; else one per variable)
  std::vector<int> groups;      ///< split variant: group id per variable (empty: one group)
};

/// Barzilai-Borwein projected gradient (alternating BB1/BB2 steps, safeguarded).
SolveResult bb_minimize(const ObjectiveGradient& fg, std::vector<double> x0, const BBOptions& o);

/// normal(x, JtJ, Jtr): cost 0.5 ||r(x)||^2 at x, writing J^T J (n x n, row-major) and J^T r (n).
using NormalEquations = std::function<double(const double* x, double* JtJ, double* Jtr)>;

struct GNOptions {
  int max_iterations = 50;
  double tol = 1e-8;            ///< stop when the step's largest entry is below this
  double f_tol = 1e-12;         ///< or the relative cost decrease is below this
  double lambda0 = 0.0;         ///< initial Levenberg-Marquardt damping (0: plain Gauss-Newton first)
};

/// Gauss-Newton with Levenberg-Marquardt damping (the damping grows when a step raises the cost).
SolveResult gauss_newton(const NormalEquations& ne, std::vector<double> x0, const GNOptions& o);

struct LBFGSOptions {
  int max_iterations = 100;
  int memory = 7;               ///< correction pairs kept (0: steepest descent with line search)
  double tol = 1e-6;            ///< stop when an accepted step's largest entry is below this
  double f_tol = 0.0;           ///< or the relative decrease of the objective is below this
  double max_step = 0.0;        ///< largest entry of any trial step (0: no limit); the first step has this size
};

/// L-BFGS (two-loop recursion) with a backtracking Armijo line search; memory 0 gives gradient
/// descent with the same line search. Curvature pairs with s.y <= 0 are skipped.
SolveResult lbfgs_minimize(const ObjectiveGradient& fg, std::vector<double> x0, const LBFGSOptions& o);

struct AdamOptions {
  int max_iterations = 200;
  double learning_rate = 0.1;   ///< step size (decays as lr / sqrt(1 + t / 10))
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

/// Adam (Kingma & Ba); returns the best point seen.
SolveResult adam_minimize(const ObjectiveGradient& fg, std::vector<double> x0, const AdamOptions& o);

/// apply(v, out): out = H v for a symmetric positive definite H (n values each).
using LinearOperator = std::function<void(const double* v, double* out)>;

/// Solve H x = rhs by conjugate gradients with the Jacobi preconditioner `diag` (H's diagonal, n
/// positive values). Starts from x = 0, or from the given x when `warm_start` (x must hold n
/// values). Stops after max_iterations products with H or when ||r|| <= tol * ||r_0||; sums are
/// serial, in index order (bit-identical for any thread count). Returns the iterations run.
int conjugate_gradient(const LinearOperator& apply, const std::vector<double>& rhs, const std::vector<double>& diag,
                       std::vector<double>& x, int max_iterations, double tol, bool warm_start = false);

} // namespace voxalign
