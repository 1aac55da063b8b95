// N4 bias-field correction. The arithmetic follows ITK's N4BiasFieldCorrectionImageFilter,
// BSplineScatteredDataPointSetToImageFilter and BSplineControlPointImageFilter (see docs/n4.md);
// what is new is how it is computed: the data points are the voxels of a grid, so the B-spline
// weights are separable and Lee's scattered-data fit (numerator sum of w^3 r / sum w^2, denominator
// sum of w^2) becomes three one-axis contractions instead of a (order+1)^3 neighbourhood loop per
// voxel, and the field reconstruction three one-axis expansions. Every reduction is done per fixed
// block and combined in block order, so results do not depend on the thread count.
#include "voxalign/n4/n4.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <string>

#include <unsupported/Eigen/FFT>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"

namespace voxalign {
namespace {

using Real = float; // ITK's N4 RealType: images and histogram arithmetic are single precision

constexpr double kBSplineEpsilon = 1e-3; // ITK's m_BSplineEpsilon (parametric clamp at the domain end)
constexpr int64_t kRowGrain = 32;        // rows per parallel block


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

/// One axis of a control lattice sampled at the voxels of a grid: for voxel i the control points
/// base[i] .. base[i] + taps - 1 with weights w[i * taps + t]. A trivial axis (2D images' third
/// axis) has one control point and weight 1.
struct Axis {
  int64_t n = 1;
  int ncp = 1;
  int taps = 1;
  std::vector<int32_t> base;
  std::vector<double> w;
};

Axis trivial_axis() {
  Axis a;
  a.base = {0};
  a.w = {1.0};
  return a;
}

/// Voxel i of n sits at parametric position spans * (i + offset) / (size - 1), as ITK maps grid
/// indices onto the lattice (offset != 0 when the grid is a crop of the one the lattice spans).
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

/// Per-voxel coefficients derived from an axis' weights: w^2 (the fit's denominator) or
/// w^3 / sum_t w^2 (its numerator; the point's sum of squared weights is the product over axes).
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
void contract(const std::vector<double>& in, int64_t inner, int64_t outer, const Axis& ax,
              const std::vector<double>& coef, std::vector<double>& out) {
  axis_sum(in, inner, outer, ax, coef, true, out);
}
void expand(const std::vector<double>& in, int64_t inner, int64_t outer, const Axis& ax, std::vector<double>& out) {
  axis_sum(in, inner, outer, ax, ax.w, false, out);
}

/// The lattice summed over y and z: rows[(j, l)][cx] = sum_{cy, cz} wy wz phi, ready for the final
/// x expansion of row (j, l).
std::vector<double> collapse_yz(const std::vector<double>& phi, const Axis& ax, const Axis& ay, const Axis& az) {
  std::vector<double> r2, r1;
  expand(phi, static_cast<int64_t>(ax.ncp) * ay.ncp, 1, az, r2); // [ncx*ncy][nz]
  expand(r2, ax.ncp, az.n, ay, r1);                               // [ncx][ny][nz]
  return r1;
}

/// Field value at voxel i of a row from the collapsed row coefficients.
inline double expand_x(const Axis& ax, const double* row, int64_t i) {
  const double* w = &ax.w[static_cast<size_t>(i * ax.taps)];
  const double* c = row + ax.base[static_cast<size_t>(i)];
  double v = 0.0;
  for (int t = 0; t < ax.taps; ++t) v += w[t] * c[t];
  return v;
}

/// Refine a lattice (spans doubled on every axis with more than one control point), B-spline
/// subdivision as ITK's RefineControlPointLattice does it: new[l] = 2^-k sum_i C(k+1, l+k-2i) old[i].
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

/// ITK's SharpenImage, given the histogram: the intensity mapping E(u|v) over the bins.
std::vector<Real> sharpening_map(const std::vector<double>& hist, Real bin_min, Real slope, const N4Options& o,
                                Eigen::FFT<double>& fft) {
  const int bins = o.bins;
  const double exponent = std::ceil(std::log(static_cast<double>(bins)) / std::log(2.0)) + 1;
  const auto padded = static_cast<unsigned>(std::pow(2.0, exponent) + 0.5);
  const auto offset = static_cast<unsigned>(0.5 * (padded - bins));
  using C = std::complex<double>;
  std::vector<C> V(padded, C(0, 0)), Vf, F(padded, C(0, 0)), Ff, U, Uf(padded), num(padded), numf, den, denf;
  for (int n = 0; n < bins; ++n) V[n + offset] = hist[static_cast<size_t>(n)];
  fft.fwd(Vf, V);

  // Gaussian of the given FWHM (in bins), as ITK samples it.
  const Real scaled_fwhm = static_cast<Real>(o.fwhm) / slope;
  const Real exp_factor = static_cast<Real>(4.0 * std::log(2.0) / (static_cast<double>(scaled_fwhm) * scaled_fwhm));
  const Real scale_factor = static_cast<Real>(2.0 * std::sqrt(std::log(2.0) / M_PI) / scaled_fwhm);
  F[0] = C(scale_factor, 0.0);
  const unsigned half = padded / 2;
  for (unsigned n = 1; n <= half; ++n)
    F[n] = F[padded - n] = C(scale_factor * std::exp(-static_cast<double>(n) * n * exp_factor), 0.0);
  if (padded % 2 == 0)
    F[half] = C(scale_factor * std::exp(0.25 * -static_cast<double>(padded) * padded * exp_factor), 0.0);
  fft.fwd(Ff, F);

  // Wiener deconvolution of the histogram.
  for (unsigned n = 0; n < padded; ++n) {
    const C c = std::conj(Ff[n]);
    const C g = c / (c * Ff[n] + o.wiener);
    Uf[n] = Vf[n] * g.real();
  }
  fft.inv(U, Uf); // Eigen scales the inverse by 1/N, vnl does not: E below is a ratio, so it is the same
  for (auto& u : U) u = C(std::max(u.real(), 0.0), 0.0);

  // E(u|v) = (v * U conv F) / (U conv F).
  for (unsigned n = 0; n < padded; ++n)
    num[n] = C((bin_min + (static_cast<Real>(n) - static_cast<Real>(offset)) * slope) * U[n].real(), 0.0);
  fft.fwd(numf, num);
  for (unsigned n = 0; n < padded; ++n) numf[n] *= Ff[n];
  fft.inv(num, numf);
  fft.fwd(denf, U);
  for (unsigned n = 0; n < padded; ++n) denf[n] *= Ff[n];
  fft.inv(den, denf);
  std::vector<Real> E(static_cast<size_t>(bins));
  for (int n = 0; n < bins; ++n) {
    const double d = den[n + offset].real();
    E[static_cast<size_t>(n)] = d != 0.0 ? static_cast<Real>(num[n + offset].real() / d) : Real(0);
  }
  return E;
}

/// Bin position of a value, ITK style: a value below bin_min (see first_voxel_quirk) maps to an
/// index past the end.
struct BinPos {
  uint64_t idx;
  Real frac;
};
inline BinPos bin_position(Real v, Real bin_min, Real slope) {
  const Real cidx = (v - bin_min) / slope;
  if (!(cidx >= 0)) return {std::numeric_limits<uint64_t>::max(), Real(1)};
  const Real fl = std::floor(cidx);
  return {static_cast<uint64_t>(fl), cidx - fl};
}

/// The voxels the fit uses, stored compactly: runs [i0, i1) of consecutive used voxels along x,
/// row by row (row r = j + ny * k), and their values in that order.
struct FitData {
  int64_t nx = 1, ny = 1, nz = 1;
  bool three_d = true;
  std::vector<int64_t> row_runs;             ///< rows + 1: first run of each row
  std::vector<std::array<int32_t, 2>> runs;  ///< [i0, i1) of each run
  std::vector<int64_t> run_offset;           ///< runs + 1: compact index of each run's first voxel
  Buffer<float> log_in;                      ///< log intensity of each used voxel
  Buffer<float> conf;                        ///< confidence weight of each used voxel (empty: all 1)
  int64_t rows() const { return ny * nz; }
  int64_t count() const { return static_cast<int64_t>(log_in.size()); }
};

struct FitOutput {
  std::vector<double> lattice; ///< control lattice of the log field (x fastest)
  std::array<int, 3> ncp{1, 1, 1};
};

/// The x axis with its weights laid out per tap (w[t][i]) and the voxel ranges of each span.
struct XAxis {
  Axis axis;
  int spans = 1;
  std::vector<int64_t> seg;                   ///< spans + 1: first voxel of each span
  std::vector<std::vector<double>> w, num, den; ///< [tap][voxel]
  XAxis(const Axis& a, int order) : axis(a), spans(a.ncp - order) {
    seg.assign(static_cast<size_t>(spans + 1), a.n);
    for (int64_t i = a.n; i-- > 0;) seg[static_cast<size_t>(a.base[static_cast<size_t>(i)])] = i;
    for (int s = spans; s-- > 0;) seg[static_cast<size_t>(s)] = std::min(seg[static_cast<size_t>(s)], seg[static_cast<size_t>(s + 1)]);
    const auto cn = fit_coefficients(a, true), cd = fit_coefficients(a, false);
    w.assign(static_cast<size_t>(a.taps), std::vector<double>(static_cast<size_t>(a.n)));
    num = den = w;
    for (int64_t i = 0; i < a.n; ++i)
      for (int t = 0; t < a.taps; ++t) {
        const auto k = static_cast<size_t>(i * a.taps + t);
        w[static_cast<size_t>(t)][static_cast<size_t>(i)] = a.w[k];
        num[static_cast<size_t>(t)][static_cast<size_t>(i)] = cn[k];
        den[static_cast<size_t>(t)][static_cast<size_t>(i)] = cd[k];
      }
  }
  /// Call fn(span, i_begin, i_end) for the pieces of [i0, i1) lying in one span each.
  template <class F> void for_spans(int64_t i0, int64_t i1, F&& fn) const {
    for (int s = axis.base[static_cast<size_t>(i0)]; s < spans && seg[static_cast<size_t>(s)] < i1; ++s) {
      const int64_t a = std::max(i0, seg[static_cast<size_t>(s)]), b = std::min(i1, seg[static_cast<size_t>(s + 1)]);
      if (a < b) fn(s, a, b);
    }
  }
};

/// exp(d) - 1 by its Taylor polynomial of degree 13, accurate (relative error < 1e-14) for
/// |d| <= 1/2; branch-free so that loops over it vectorise. Callers use std::expm1 beyond.
inline double expm1_poly(double d) {
  constexpr double inv[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
                            1.0 / 5040.0,      1.0 / 720.0,      1.0 / 120.0,      1.0 / 24.0,     1.0 / 6.0,
                            0.5,               1.0};
  double p = 1.0 / 6227020800.0; // 1/13!
  for (double c : inv) p = p * d + c;
  return p * d;
}

using d4 = double __attribute__((vector_size(32)));
using f4 = float __attribute__((vector_size(16)));
inline d4 load_d4(const double* p) {
  d4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline f4 load_f4(const float* p) {
  f4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
/// sum_i x[i] * y[i] in a fixed order (4 lanes, then lanes pairwise, then the tail).
inline double dot(const double* x, const double* y, int64_t n) {
  d4 acc = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) acc += load_d4(x + i) * load_d4(y + i);
  double s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

/// ITK's ShrinkImageFilter along one axis of an image of n voxels whose first voxel has index
/// -lower (ANTs' padding; origin 0, identity direction): the original index that output voxel 0
/// copies (output voxel q copies this + q * f). ITK keeps the physical centres of the two grids
/// equal and rounds the first output voxel's position to an input index; the arithmetic is
/// repeated step by step because half-integer cases depend on its rounding.
int64_t shrink_first_index(int64_t n, int64_t lower, int f, double sp) {
  const int64_t start = -lower;
  const auto out_n = std::max<int64_t>(n / f, 1);
  const auto out_start = static_cast<int64_t>(std::ceil(static_cast<double>(start) / f));
  const double cin = static_cast<double>(start) + static_cast<double>(n - 1) / 2.0;
  const double cout = static_cast<double>(out_start) + static_cast<double>(out_n - 1) / 2.0;
  const double origin = 0.0;
  const double out_origin = origin + ((sp * cin + origin) - ((sp * f) * cout + origin));
  const double p = out_origin + (sp * f) * static_cast<double>(out_start);
  const double ci = (1.0 / sp) * (p - origin);
  const auto k = static_cast<int64_t>(std::floor(ci + 0.5));
  const int64_t offset = std::max<int64_t>(0, k - out_start * f);
  return out_start * f + offset;
}

/// The N4 iterations (ITK's GenerateData loop) on the used voxels of the fit grid.
FitOutput fit(const FitData& g, std::array<int, 3> ncp, const N4Options& o, N4Report& report) {
  const int order = o.spline_order;
  const int64_t M = g.count(), rows = g.rows();
  const std::array<bool, 3> active{true, true, g.three_d};
  const bool weighted = !g.conf.empty();
  Eigen::FFT<double> fft; // keeps its twiddle tables across iterations
  Buffer<float> field(static_cast<size_t>(M));
  std::fill(field.begin(), field.end(), 0.0f);
  std::vector<double> lattice(static_cast<size_t>(ncp[0]) * ncp[1] * ncp[2], 0.0);

  constexpr int64_t kVoxelGrain = 1 << 15;
  const int64_t nvb = (M + kVoxelGrain - 1) / kVoxelGrain, nrb = (rows + kRowGrain - 1) / kRowGrain;
  std::vector<std::vector<double>> block_hist(static_cast<size_t>(nvb));
  struct Stats {
    double s1 = 0, s2 = 0, n = 0;
    float lo = std::numeric_limits<float>::max(), hi = -std::numeric_limits<float>::max();
  };
  std::vector<Stats> block_stats(static_cast<size_t>(std::max(nvb, nrb)));
  // Range of log_in - field over the used voxels, ITK's way: its min/max scan never tests the first
  // voxel against the minimum (an "else if"), so the first voxel only counts for the maximum.
  const auto combine_range = [&](int64_t nblocks, Real& lo, Real& hi) {
    lo = std::numeric_limits<float>::max();
    hi = -std::numeric_limits<float>::max();
    for (int64_t b = 0; b < nblocks; ++b) lo = std::min(lo, block_stats[static_cast<size_t>(b)].lo), hi = std::max(hi, block_stats[static_cast<size_t>(b)].hi);
  };
  Real bin_min = 0, bin_max = 0;
  parallel_for(M, kVoxelGrain, [&](int64_t n0, int64_t n1) {
    Stats s;
    for (int64_t n = n0; n < n1; ++n) {
      const float v = g.log_in[static_cast<size_t>(n)];
      s.hi = std::max(s.hi, v);
      if (n != 0) s.lo = std::min(s.lo, v);
    }
    block_stats[static_cast<size_t>(n0 / kVoxelGrain)] = s;
  });
  combine_range(nvb, bin_min, bin_max);

  for (size_t level = 0; level < o.iterations.size(); ++level) {
    const XAxis ax(make_axis(g.nx, ncp[0], order, 0, g.nx), order);
    const Axis ay = make_axis(g.ny, ncp[1], order, 0, g.ny);
    const Axis az = g.three_d ? make_axis(g.nz, ncp[2], order, 0, g.nz) : trivial_axis();
    report.control_points.push_back(ncp);
    const auto cy_num = fit_coefficients(ay, true), cz_num = fit_coefficients(az, true);
    const auto cy_den = fit_coefficients(ay, false), cz_den = fit_coefficients(az, false);
    const int64_t ncx = ax.axis.ncp;
    const int taps = ax.axis.taps;

    // Contract per-voxel values along x into a1[row][cx] with per-tap coefficients coef[t][i];
    // fill(n, len, out) writes the values of compact voxels n .. n + len - 1.
    const auto contract_x = [&](const std::vector<std::vector<double>>& coef, auto&& fill, std::vector<double>& a1) {
      a1.assign(static_cast<size_t>(ncx * rows), 0.0);
      parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
        std::vector<double> buf(static_cast<size_t>(g.nx));
        for (int64_t r = r0; r < r1; ++r) {
          double* dst = a1.data() + r * ncx;
          for (int64_t k = g.row_runs[static_cast<size_t>(r)]; k < g.row_runs[static_cast<size_t>(r + 1)]; ++k) {
            const int64_t i0 = g.runs[static_cast<size_t>(k)][0], i1 = g.runs[static_cast<size_t>(k)][1];
            fill(g.run_offset[static_cast<size_t>(k)], i1 - i0, buf.data());
            ax.for_spans(i0, i1, [&](int s, int64_t a, int64_t b) {
              for (int t = 0; t < taps; ++t) dst[s + t] += dot(buf.data() + (a - i0), coef[static_cast<size_t>(t)].data() + a, b - a);
            });
          }
        }
      });
    };

    // Denominator of Lee's fit: sum of weight * w^2, fixed for the level.
    std::vector<double> omega, a1, a2, delta;
    contract_x(ax.den, [&](int64_t n, int64_t len, double* out) {
      for (int64_t q = 0; q < len; ++q) out[q] = weighted ? static_cast<double>(g.conf[static_cast<size_t>(n + q)]) : 1.0;
    }, a1);
    contract(a1, ncx, g.nz, ay, cy_den, a2);
    contract(a2, ncx * ay.ncp, 1, az, cz_den, omega);

    int iteration = 0;
    double convergence = std::numeric_limits<double>::max();
    while (iteration++ < o.iterations[level] && convergence > o.convergence) {
      // Histogram of the log-uncorrected intensities (triangular Parzen window).
      const Real slope = (bin_max - bin_min) / static_cast<Real>(o.bins - 1);
      const auto last_bin = static_cast<uint64_t>(o.bins - 1);
      const bool flat = !(slope > 0);
      parallel_for(M, kVoxelGrain, [&](int64_t n0, int64_t n1) {
        auto& h = block_hist[static_cast<size_t>(n0 / kVoxelGrain)];
        h.assign(static_cast<size_t>(2 * o.bins), 0.0); // two interleaved copies break store-to-load chains
        for (int64_t n = n0; n < n1; ++n) {
          const float v = g.log_in[static_cast<size_t>(n)] - field[static_cast<size_t>(n)];
          double* hh = h.data() + (n & 1) * o.bins;
          const BinPos b = bin_position(v, bin_min, slope);
          if (b.frac == 0) {
            if (b.idx <= last_bin) hh[b.idx] += 1.0;
          } else if (b.idx < last_bin) {
            hh[b.idx] += 1.0 - b.frac;
            hh[b.idx + 1] += b.frac;
          }
        }
      });
      std::vector<double> hist(static_cast<size_t>(o.bins), 0.0);
      for (const auto& h : block_hist)
        for (int b = 0; b < o.bins; ++b) hist[static_cast<size_t>(b)] += h[static_cast<size_t>(b)] + h[static_cast<size_t>(b + o.bins)];
      const std::vector<Real> E = flat ? std::vector<Real>{} : sharpening_map(hist, bin_min, slope, o, fft);

      // Residual (log-uncorrected minus sharpened) contracted with w^3 / sum w^2 (Lee's numerator).
      contract_x(ax.num, [&](int64_t n, int64_t len, double* out) {
        const float* li = g.log_in.data() + n;
        const float* fi = field.data() + n;
        for (int64_t q = 0; q < len; ++q) {
          const float v = li[q] - fi[q];
          if (flat) {
            out[q] = 0.0;
            continue;
          }
          const BinPos b = bin_position(v, bin_min, slope);
          const Real sh = b.idx < last_bin ? E[b.idx] + (E[b.idx + 1] - E[b.idx]) * b.frac : E.back();
          out[q] = static_cast<double>(v - sh);
        }
        if (weighted)
          for (int64_t q = 0; q < len; ++q) out[q] *= static_cast<double>(g.conf[static_cast<size_t>(n + q)]);
      }, a1);
      contract(a1, ncx, g.nz, ay, cy_num, a2);
      contract(a2, ncx * ay.ncp, 1, az, cz_num, delta);

      // phi = delta / omega (ITK: zero where omega is almost zero), added to the running lattice.
      for (size_t c = 0; c < delta.size(); ++c) {
        const auto om = static_cast<Real>(omega[c]);
        if (std::abs(om) <= Real(0.1) * std::numeric_limits<Real>::epsilon()) continue;
        const double phi = delta[c] / omega[c];
        if (std::isfinite(phi)) lattice[c] += phi;
      }

      // New field from the lattice at the used voxels; convergence = coefficient of variation of
      // exp(old - new); the range of the new log-uncorrected image for the next histogram.
      const std::vector<double> rowc = collapse_yz(lattice, ax.axis, ay, az);
      parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
        Stats st;
        std::vector<double> nf(static_cast<size_t>(g.nx)), e(static_cast<size_t>(g.nx));
        d4 s1 = {0, 0, 0, 0}, s2 = s1;
        f4 lo = {st.lo, st.lo, st.lo, st.lo}, hi = {st.hi, st.hi, st.hi, st.hi};
        for (int64_t r = r0; r < r1; ++r) {
          const double* row = rowc.data() + r * ncx;
          for (int64_t k = g.row_runs[static_cast<size_t>(r)]; k < g.row_runs[static_cast<size_t>(r + 1)]; ++k) {
            const int64_t i0 = g.runs[static_cast<size_t>(k)][0], i1 = g.runs[static_cast<size_t>(k)][1];
            const int64_t len = i1 - i0, n0 = g.run_offset[static_cast<size_t>(k)];
            // the new field along the run, span by span (4 taps with constant coefficients)
            ax.for_spans(i0, i1, [&](int s, int64_t a, int64_t b) {
              double* out = nf.data() + (a - i0);
              for (int64_t i = a; i < b; ++i) out[i - a] = 0.0;
              for (int t = 0; t < taps; ++t) {
                const double c = row[s + t];
                const double* w = ax.w[static_cast<size_t>(t)].data();
                for (int64_t i = a; i < b; ++i) out[i - a] += w[i] * c;
              }
            });
            float* fld = field.data() + n0;
            const float* li = g.log_in.data() + n0;
            for (int64_t q = 0; q < len; ++q) {
              const auto f = static_cast<float>(nf[static_cast<size_t>(q)]);
              e[static_cast<size_t>(q)] = expm1_poly(static_cast<double>(fld[q] - f));
              nf[static_cast<size_t>(q)] = static_cast<double>(fld[q] - f);
              fld[q] = f;
            }
            for (int64_t q = 0; q < len; ++q) // the rare large updates: the library function
              if (std::abs(nf[static_cast<size_t>(q)]) > 0.5) e[static_cast<size_t>(q)] = std::expm1(nf[static_cast<size_t>(q)]);
            int64_t q = 0;
            for (; q + 4 <= len; q += 4) {
              const d4 ev = load_d4(e.data() + q);
              s1 += ev;
              s2 += ev * ev;
              const f4 v = load_f4(li + q) - load_f4(fld + q);
              hi = v > hi ? v : hi;
              if (n0 + q != 0) lo = v < lo ? v : lo;
              else for (int l = 1; l < 4; ++l) st.lo = std::min(st.lo, v[l]);
            }
            for (; q < len; ++q) {
              const double ev = e[static_cast<size_t>(q)];
              st.s1 += ev;
              st.s2 += ev * ev;
              const float v = li[q] - fld[q];
              st.hi = std::max(st.hi, v);
              if (n0 + q != 0) st.lo = std::min(st.lo, v);
            }
          }
        }
        st.s1 += (s1[0] + s1[1]) + (s1[2] + s1[3]);
        st.s2 += (s2[0] + s2[1]) + (s2[2] + s2[3]);
        for (int l = 0; l < 4; ++l) st.lo = std::min(st.lo, lo[l]), st.hi = std::max(st.hi, hi[l]);
        st.n = static_cast<double>(g.row_runs[static_cast<size_t>(r1)] > g.row_runs[static_cast<size_t>(r0)]
                                       ? g.run_offset[static_cast<size_t>(g.row_runs[static_cast<size_t>(r1)])] -
                                             g.run_offset[static_cast<size_t>(g.row_runs[static_cast<size_t>(r0)])]
                                       : 0);
        block_stats[static_cast<size_t>(r0 / kRowGrain)] = st;
      });
      double s1 = 0, s2 = 0, cnt = 0;
      for (int64_t b = 0; b < nrb; ++b) {
        const auto& st = block_stats[static_cast<size_t>(b)];
        s1 += st.s1, s2 += st.s2, cnt += st.n;
      }
      combine_range(nrb, bin_min, bin_max);
      const double mu = 1.0 + s1 / cnt;
      const double var = cnt > 1 ? std::max(0.0, (s2 - s1 * s1 / cnt) / (cnt - 1)) : 0.0;
      convergence = std::sqrt(var) / mu;
      if (o.progress) o.progress(N4Progress{static_cast<int>(level), iteration, convergence});
    }
    report.iterations.push_back(iteration - 1);
    report.final_convergence.push_back(convergence);
    if (level + 1 < o.iterations.size()) lattice = refine_lattice(lattice, ncp, active, order);
  }
  FitOutput out;
  out.lattice = std::move(lattice);
  out.ncp = ncp;
  return out;
}

} // namespace

std::vector<int> parse_x_list(const std::string& text, const char* what) {
  std::vector<int> v;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t next = text.find('x', pos);
    const std::string item = text.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(item, &used);
    } catch (...) {
      used = 0;
    }
    VX_CHECK(used == item.size() && !item.empty() && value >= 0, InvalidArgument, what, ": expected numbers joined by 'x' (like 50x50x30x20), got '", text, "'");
    v.push_back(value);
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return v;
}

N4Result n4(ImageView<const float> image, const std::array<double, 3>& spacing, const ImageView<const uint8_t>* mask,
            const ImageView<const float>* weight, const N4Options& o, bool want_bias) {
  VX_CHECK(image.dims[3] == 1, InvalidArgument, "n4: expected a 2D or 3D image, got a 4D one (", image.dims[3], " frames)");
  const int64_t dims[3] = {image.dims[0], image.dims[1], image.dims[2]};
  const bool three_d = dims[2] > 1;
  VX_CHECK(dims[0] > 1 && dims[1] > 1, InvalidArgument, "n4: expected a 2D or 3D image, got ", dims[0], "x", dims[1], "x", dims[2]);
  VX_CHECK(!o.iterations.empty(), InvalidArgument, "n4: at least one fitting level is needed (--iterations)");
  for (int it : o.iterations) VX_CHECK(it >= 0, InvalidArgument, "n4: negative iteration count");
  VX_CHECK(o.spline_order >= 1 && o.spline_order <= 3, InvalidArgument, "n4: spline order must be 1, 2 or 3, got ", o.spline_order);
  VX_CHECK(o.shrink >= 1, InvalidArgument, "n4: shrink factor must be >= 1, got ", o.shrink);
  VX_CHECK(o.bins >= 2, InvalidArgument, "n4: at least 2 histogram bins are needed, got ", o.bins);
  VX_CHECK(o.fwhm > 0 && o.wiener >= 0, InvalidArgument, "n4: FWHM must be > 0 and Wiener noise >= 0");
  VX_CHECK(o.spline_distance >= 0, InvalidArgument, "n4: spline distance must be >= 0");
  for (int d = 0; d < 3; ++d) VX_CHECK(spacing[d] > 0 && std::isfinite(spacing[d]), InvalidArgument, "n4: voxel spacing must be positive");
  const auto same_grid = [&](const auto& v) { return v.dims[0] == dims[0] && v.dims[1] == dims[1] && v.dims[2] == dims[2] && v.dims[3] == 1; };
  if (mask) VX_CHECK(same_grid(*mask), InvalidArgument, "n4: the mask is not on the image's grid (", mask->dims[0], "x", mask->dims[1], "x", mask->dims[2], " vs ", dims[0], "x", dims[1], "x", dims[2], ")");
  if (weight) VX_CHECK(same_grid(*weight), InvalidArgument, "n4: the weight image is not on the image's grid");

  // Non-finite values make no sense for a bias field; refuse them rather than guess.
  for (int64_t k = 0; k < dims[2]; ++k)
    for (int64_t j = 0; j < dims[1]; ++j)
      for (int64_t i = 0; i < dims[0]; ++i)
        VX_CHECK(std::isfinite(image(i, j, k)), InvalidArgument, "n4: the image has a non-finite value (NaN or Inf) at voxel (", i, ", ", j, ", ", k, ")");

  N4Result result;
  Image<uint8_t> otsu;
  if (!mask) {
    otsu = otsu_mask(image, o.otsu_bins);
    result.report.otsu_mask = true;
  }
  const auto in_mask = [&](int64_t i, int64_t j, int64_t k) {
    return mask ? (*mask)(i, j, k) != 0 : otsu.data()[i + dims[0] * (j + dims[1] * k)] != 0;
  };

  // Control points and (ANTs) padding per axis.
  std::array<int, 3> ncp{1, 1, 1};
  std::array<int64_t, 3> pad_lo{0, 0, 0}, padded{dims[0], dims[1], dims[2]};
  const int naxes = three_d ? 3 : 2;
  if (o.spline_distance <= 0)
    VX_CHECK(o.control_points.size() == 1 || static_cast<int>(o.control_points.size()) == naxes, InvalidArgument,
             "n4: give one control-point count or one per axis (", naxes, "), got ", o.control_points.size());
  for (int d = 0; d < naxes; ++d) {
    if (o.spline_distance > 0) {
      // ANTs' arithmetic (single precision) for the mesh and the zero padding that makes the extent
      // a whole number of elements.
      const float domain = static_cast<float>(dims[d] - 1) * static_cast<float>(spacing[d]);
      const float dist = static_cast<float>(o.spline_distance);
      const double nspans = std::ceil(double(domain / dist));
      VX_CHECK(dist > 0 && std::isfinite(nspans) && nspans <= double(dims[d]), InvalidArgument, "n4: spline distance ",
               o.spline_distance, " mm is too small for this image (more mesh elements than voxels along axis ", d, ")");
      VX_CHECK(double(dist) <= 2.0 * double(domain), InvalidArgument, "n4: --spline-distance ", o.spline_distance,
               " mm is more than twice the image's extent along axis ", d, " (", domain,
               " mm): the mesh would be padded far beyond the image");
      const auto spans = static_cast<unsigned>(nspans);
      const auto extra = static_cast<int64_t>((static_cast<float>(spans) * dist - domain) / static_cast<float>(spacing[d]) + 0.5f);
      pad_lo[d] = static_cast<int64_t>(0.5 * static_cast<double>(extra));
      padded[d] = dims[d] + extra;
      ncp[d] = static_cast<int>(std::max(spans, 1u)) + o.spline_order;
    } else {
      VX_CHECK(!o.control_points.empty(), InvalidArgument, "n4: control points not given");
      ncp[d] = o.control_points.size() == 1 ? o.control_points[0] : o.control_points.at(static_cast<size_t>(d));
      VX_CHECK(ncp[d] > o.spline_order, InvalidArgument, "n4: the number of control points (", ncp[d], ") must be greater than the spline order (", o.spline_order, ")");
      VX_CHECK(ncp[d] - o.spline_order <= dims[d], InvalidArgument, "n4: --control-points ", ncp[d], " gives ",
               ncp[d] - o.spline_order, " mesh elements along axis ", d, ", more than its ", dims[d], " voxels");
    }
  }
  {
    // The lattice doubles its mesh elements at every further level: bound the last one before
    // anything is allocated (a lattice larger than this is no bias field, and would not fit in memory).
    const int refinements = std::min<int>(int(o.iterations.size()) - 1, 30);
    double points = 1;
    for (int d = 0; d < naxes; ++d) points *= double(ncp[d] - o.spline_order) * std::ldexp(1.0, refinements) + o.spline_order;
    VX_CHECK(points <= double(1 << 24), InvalidArgument, "n4: ", o.spline_distance > 0 ? "--spline-distance" : "--control-points",
             " with ", o.iterations.size(),
             " fitting levels (--iterations) gives a final B-spline lattice of ", points,
             " control points (at most 16777216): use fewer control points or fewer levels");
  }

  // The fit grid: the (padded) image shrunk as ITK's ShrinkImageFilter does (one voxel per block,
  // the output grid centred on the input grid).
  FitData g;
  g.three_d = three_d;
  std::array<int64_t, 3> sdims{1, 1, 1}, soff{0, 0, 0};
  for (int d = 0; d < naxes; ++d) {
    sdims[d] = std::max<int64_t>(padded[d] / o.shrink, 1);
    VX_CHECK(sdims[d] >= 2, InvalidArgument, "n4: the image (", dims[d], " voxels along axis ", d, ") is too small for shrink factor ", o.shrink);
    soff[d] = shrink_first_index(padded[d], pad_lo[d], o.shrink, spacing[d]);
  }
  g.nx = sdims[0], g.ny = sdims[1], g.nz = sdims[2];
  result.report.fit_dims = sdims;
  // Fit-grid voxel (si, row) -> input voxel, and whether the fit uses it.
  const auto source = [&](int64_t si, int64_t r, int64_t& i, int64_t& j, int64_t& k) {
    i = si * o.shrink + soff[0];
    j = (r % g.ny) * o.shrink + soff[1];
    k = three_d ? (r / g.ny) * o.shrink + soff[2] : 0;
    if (i < 0 || i >= dims[0] || j < 0 || j >= dims[1] || k < 0 || k >= dims[2] || !in_mask(i, j, k)) return false;
    return image(i, j, k) > 0 && (!weight || (*weight)(i, j, k) > 0);
  };
  // Two passes: count runs and voxels per row, then fill the compact arrays.
  const int64_t nrows = g.rows();
  std::vector<int64_t> row_voxels(static_cast<size_t>(nrows) + 1, 0);
  g.row_runs.assign(static_cast<size_t>(nrows) + 1, 0);
  parallel_for(nrows, kRowGrain, [&](int64_t r0, int64_t r1) {
    int64_t i, j, k;
    for (int64_t r = r0; r < r1; ++r) {
      bool prev = false;
      for (int64_t si = 0; si < g.nx; ++si) {
        const bool use = source(si, r, i, j, k);
        row_voxels[static_cast<size_t>(r) + 1] += use;
        g.row_runs[static_cast<size_t>(r) + 1] += use && !prev;
        prev = use;
      }
    }
  });
  for (int64_t r = 0; r < nrows; ++r) {
    row_voxels[static_cast<size_t>(r) + 1] += row_voxels[static_cast<size_t>(r)];
    g.row_runs[static_cast<size_t>(r) + 1] += g.row_runs[static_cast<size_t>(r)];
  }
  const int64_t used = row_voxels.back();
  result.report.fit_voxels = used;
  VX_CHECK(used > 0, InvalidArgument,
           "n4: no voxel to estimate the bias from (the mask is empty, or every voxel in it is <= 0",
           weight ? " or has weight <= 0" : "", o.shrink > 1 ? " at this shrink factor" : "", ")");
  g.runs.resize(static_cast<size_t>(g.row_runs.back()));
  g.run_offset.resize(g.runs.size() + 1);
  g.run_offset.back() = used;
  g.log_in.resize(static_cast<size_t>(used));
  if (weight) g.conf.resize(static_cast<size_t>(used));
  parallel_for(nrows, kRowGrain, [&](int64_t r0, int64_t r1) {
    int64_t i, j, k;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t n = row_voxels[static_cast<size_t>(r)], run = g.row_runs[static_cast<size_t>(r)] - 1;
      bool prev = false;
      for (int64_t si = 0; si < g.nx; ++si) {
        const bool use = source(si, r, i, j, k);
        if (use) {
          if (!prev) {
            ++run;
            g.runs[static_cast<size_t>(run)][0] = static_cast<int32_t>(si);
            g.run_offset[static_cast<size_t>(run)] = n;
          }
          g.runs[static_cast<size_t>(run)][1] = static_cast<int32_t>(si + 1);
          g.log_in[static_cast<size_t>(n)] = static_cast<float>(std::log(static_cast<double>(image(i, j, k))));
          if (weight) g.conf[static_cast<size_t>(n)] = (*weight)(i, j, k);
          ++n;
        }
        prev = use;
      }
    }
  });

  FitOutput f = fit(g, ncp, o, result.report);

  // The bias at full resolution from the lattice (ANTs: over the padded full-resolution grid,
  // cropped back), and the corrected image.
  Geometry geom;
  geom.ndim = three_d ? 3 : 2;
  geom.dims = {dims[0], dims[1], dims[2], 1};
  result.corrected = Image<float>(geom, no_init);
  if (want_bias) result.bias = Image<float>(geom, no_init);
  const Axis ax = make_axis(dims[0], f.ncp[0], o.spline_order, pad_lo[0], padded[0]);
  const Axis ay = make_axis(dims[1], f.ncp[1], o.spline_order, pad_lo[1], padded[1]);
  const Axis az = three_d ? make_axis(dims[2], f.ncp[2], o.spline_order, pad_lo[2], padded[2]) : trivial_axis();
  const std::vector<double> rowc = collapse_yz(f.lattice, ax, ay, az);
  const int64_t rows = dims[1] * dims[2];
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % dims[1], k = r / dims[1];
      float* out = result.corrected.data() + r * dims[0];
      float* b = want_bias ? result.bias.data() + r * dims[0] : nullptr;
      for (int64_t i = 0; i < dims[0]; ++i) {
        const auto lf = static_cast<float>(expand_x(ax, rowc.data() + r * f.ncp[0], i));
        const float e = std::exp(lf);
        out[i] = image(i, j, k) / e;
        if (b) b[i] = e;
      }
    }
  });
  return result;
}

} // namespace voxalign
