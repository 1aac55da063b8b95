// Bindings: the C++ solvers (Barzilai-Borwein, Gauss-Newton) driven by Python callbacks.
#include "bind_common.hpp"

#include "voxalign/solve/solvers.hpp"

namespace voxalign::py {
namespace {

nb::dict solve_result(const SolveResult& r) {
  nb::dict d;
  d["x"] = r.x;
  d["f"] = r.f;
  d["iterations"] = r.iterations;
  d["evaluations"] = r.evaluations;
  d["converged"] = r.converged;
  d["history"] = r.history;
  return d;
}

// Python callbacks see x as a fresh float64 numpy array and return numbers / arrays that are copied.
OutArr<double> array_copy(const double* x, size_t n) {
  double* d;
  auto a = new_array<double>({n}, &d, false);
  std::copy(x, x + n, d);
  return a;
}

void copy_out(nb::handle h, double* out, size_t n, const char* what) {
  auto a = nb::cast<nb::ndarray<const double, nb::device::cpu>>(h);
  size_t total = 1;
  for (size_t d = 0; d < a.ndim(); ++d) total *= a.shape(d);
  if (total != n)
    throw InvalidArgument(std::string(what) + " has " + std::to_string(total) + " values, expected " + std::to_string(n));
  std::vector<int64_t> idx(a.ndim(), 0);
  // general strides: walk in C order
  for (size_t q = 0; q < n; ++q) {
    int64_t off = 0;
    for (size_t d = 0; d < a.ndim(); ++d) off += idx[d] * a.stride(d);
    out[q] = a.data()[off];
    for (size_t d = a.ndim(); d-- > 0;) {
      if (++idx[d] < int64_t(a.shape(d))) break;
      idx[d] = 0;
    }
  }
}

nb::dict py_bb_minimize(nb::callable fg, std::vector<double> x0, std::vector<double> lower, std::vector<double> upper,
                        std::vector<int> groups, int max_iterations, double tol, double f_tol, double step0,
                        bool line_search) {
  BBOptions o;
  o.max_iterations = max_iterations, o.tol = tol, o.f_tol = f_tol, o.step0 = step0, o.line_search = line_search;
  o.lower = std::move(lower), o.upper = std::move(upper), o.groups = std::move(groups);
  const size_t n = x0.size();
  auto cb = [&](const double* x, double* g) -> double {
    nb::object res = fg(array_copy(x, n));
    nb::tuple t = nb::cast<nb::tuple>(res);
    if (t.size() != 2) throw InvalidArgument("the objective must return (value, gradient)");
    copy_out(t[1], g, n, "the gradient");
    return nb::cast<double>(t[0]);
  };
  return solve_result(bb_minimize(cb, std::move(x0), o));
}

nb::dict py_gauss_newton(nb::callable normal, std::vector<double> x0, int max_iterations, double tol, double f_tol,
                         double lambda0) {
  GNOptions o;
  o.max_iterations = max_iterations, o.tol = tol, o.f_tol = f_tol, o.lambda0 = lambda0;
  const size_t n = x0.size();
  auto cb = [&](const double* x, double* JtJ, double* Jtr) -> double {
    nb::tuple t = nb::cast<nb::tuple>(normal(array_copy(x, n)));
    if (t.size() != 3) throw InvalidArgument("the normal-equations callback must return (cost, JtJ, Jtr)");
    copy_out(t[1], JtJ, n * n, "JtJ");
    copy_out(t[2], Jtr, n, "Jtr");
    return nb::cast<double>(t[0]);
  };
  return solve_result(gauss_newton(cb, std::move(x0), o));
}

} // namespace

void bind_solvers(nb::module_& m) {
  m.def("bb_minimize", &py_bb_minimize);
  m.def("gauss_newton", &py_gauss_newton);
}

} // namespace voxalign::py
