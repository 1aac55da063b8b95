// The N4 iterations on the used voxels of the fit grid: histogram, sharpening, Lee's B-spline fit of
// the residual, the new field and its convergence measure, level by level.
#include "internal.hpp"

#include <algorithm>
#include <cstring>

namespace voxalign {
namespace n4_detail {
namespace {

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

} // namespace

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

} // namespace n4_detail
} // namespace voxalign
