// The B-spline control lattice of N4 sampled on a voxel grid: per-axis weights, the separable
// contractions and expansions of Lee's fit, and the lattice refinement between levels.
#include "internal.hpp"

#include <algorithm>
#include <cmath>

#include "voxalign/core/error.hpp"

namespace voxalign {
namespace n4_detail {
namespace {

constexpr double kBSplineEpsilon = 1e-3; // ITK's m_BSplineEpsilon (parametric clamp at the domain end)

/// Centred B-spline of order k (ITK's BSplineKernelFunction), k = 1..3.
double bspline_kernel(int k, double u) {
  const double a = std::abs(u);
  switch (k) {
  case 1:
    return a < 1.0 ? 1.0 - a : 0.0;
  case 2:
    if (a < 0.5) return 0.75 - a * a;
    if (a < 1.5) return 0.5 * (1.5 - a) * (1.5 - a);
    return 0.0;
  default:
    if (a < 1.0) return (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0;
    if (a < 2.0) return (2.0 - a) * (2.0 - a) * (2.0 - a) / 6.0;
    return 0.0;
  }
}

/// One axis of the separable B-spline sums on data laid out [inner][n or ncp][outer] (inner fastest):
/// to_lattice: out[a, c, o] = sum over voxels i with base[i] <= c < base[i] + taps of
///             coef[i, c - base[i]] * in[a, i, o]   ([inner][n][outer] -> [inner][ncp][outer]);
/// otherwise the transpose, out[a, i, o] = sum_t coef[i, t] * in[a, base[i] + t, o].
void axis_sum(const std::vector<double>& in, int64_t inner, int64_t outer, const Axis& ax,
              const std::vector<double>& coef, bool to_lattice, std::vector<double>& out) {
  const int64_t n_in = to_lattice ? ax.n : ax.ncp, n_out = to_lattice ? ax.ncp : ax.n;
  out.assign(static_cast<size_t>(inner * n_out * outer), 0.0);
  parallel_for(outer, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const double* src = in.data() + o * inner * n_in;
      double* dst = out.data() + o * inner * n_out;
      for (int64_t i = 0; i < ax.n; ++i)
        for (int t = 0; t < ax.taps; ++t) {
          const double c = coef[static_cast<size_t>(i * ax.taps + t)];
          const int64_t node = ax.base[static_cast<size_t>(i)] + t;
          double* d = dst + (to_lattice ? node : i) * inner;
          const double* q = src + (to_lattice ? i : node) * inner;
          for (int64_t a = 0; a < inner; ++a) d[a] += c * q[a];
        }
    }
  });
}

void expand(const std::vector<double>& in, int64_t inner, int64_t outer, const Axis& ax, std::vector<double>& out) {
  axis_sum(in, inner, outer, ax, ax.w, false, out);
}

} // namespace

Axis trivial_axis() {
  Axis a;
  a.base = {0};
  a.w = {1.0};
  return a;
}

Axis make_axis(int64_t n, int ncp, int order, int64_t offset, int64_t size) {
  Axis a;
  a.n = n;
  a.ncp = ncp;
  a.taps = order + 1;
  a.base.resize(static_cast<size_t>(n));
  a.w.resize(static_cast<size_t>(n * a.taps));
  const int spans = ncp - order;
  const double step = static_cast<double>(spans) / static_cast<double>(size - 1);
  const double eps = step * kBSplineEpsilon;
  for (int64_t i = 0; i < n; ++i) {
    double u = static_cast<double>(spans) * static_cast<double>(i + offset) / static_cast<double>(size - 1);
    if (std::abs(u - spans) <= eps) u = spans - eps;
    if (u < 0.0 && std::abs(u) <= eps) u = 0.0;
    VX_CHECK(u >= 0.0 && u < spans, Error, "n4: internal error: parametric coordinate ", u, " outside [0, ", spans,
             ")");
    const auto b = static_cast<int32_t>(u);
    const double f = u - b;
    a.base[static_cast<size_t>(i)] = b;
    for (int t = 0; t < a.taps; ++t)
      a.w[static_cast<size_t>(i * a.taps + t)] = bspline_kernel(order, f - t + 0.5 * (order - 1));
  }
  return a;
}

std::vector<double> fit_coefficients(const Axis& a, bool numerator) {
  std::vector<double> c(a.w.size());
  for (int64_t i = 0; i < a.n; ++i) {
    const double* w = &a.w[static_cast<size_t>(i * a.taps)];
    double s = 0.0;
    for (int t = 0; t < a.taps; ++t) s += w[t] * w[t];
    for (int t = 0; t < a.taps; ++t)
      c[static_cast<size_t>(i * a.taps + t)] = numerator ? w[t] * w[t] * w[t] / s : w[t] * w[t];
  }
  return c;
}

void contract(const std::vector<double>& in, int64_t inner, int64_t outer, const Axis& ax,
              const std::vector<double>& coef, std::vector<double>& out) {
  axis_sum(in, inner, outer, ax, coef, true, out);
}

std::vector<double> collapse_yz(const std::vector<double>& phi, const Axis& ax, const Axis& ay, const Axis& az) {
  std::vector<double> r2, r1;
  expand(phi, static_cast<int64_t>(ax.ncp) * ay.ncp, 1, az, r2); // [ncx*ncy][nz]
  expand(r2, ax.ncp, az.n, ay, r1);                               // [ncx][ny][nz]
  return r1;
}

std::vector<double> refine_lattice(const std::vector<double>& phi, std::array<int, 3>& ncp,
                                   const std::array<bool, 3>& active, int order) {
  std::vector<double> cur = phi;
  std::array<int, 3> dims = ncp;
  for (int d = 0; d < 3; ++d) {
    if (!active[d]) continue;
    const int n_old = dims[d], n_new = 2 * n_old - order;
    int64_t inner = 1, outer = 1;
    for (int e = 0; e < d; ++e) inner *= dims[e];
    for (int e = d + 1; e < 3; ++e) outer *= dims[e];
    std::vector<double> next(static_cast<size_t>(inner * n_new * outer), 0.0);
    double binom[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 1; k <= order + 1; ++k)
      for (int j = k; j > 0; --j) binom[j] += binom[j - 1];
    const double scale = std::ldexp(1.0, -order);
    for (int64_t o = 0; o < outer; ++o)
      for (int l = 0; l < n_new; ++l)
        for (int i = 0; i < n_old; ++i) {
          const int j = l + order - 2 * i;
          if (j < 0 || j > order + 1) continue;
          const double c = binom[j] * scale;
          for (int64_t a = 0; a < inner; ++a)
            next[static_cast<size_t>(a + inner * (l + n_new * o))] += c * cur[static_cast<size_t>(a + inner * (i + n_old * o))];
        }
    cur.swap(next);
    dims[d] = n_new;
  }
  ncp = dims;
  return cur;
}

} // namespace n4_detail
} // namespace voxalign
