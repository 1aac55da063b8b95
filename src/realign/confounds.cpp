// fMRIPrep-style confounds of a realigned series (docs/realign.md): the motion set with derivatives and
// powers, framewise displacement, rmsd, and DVARS as nipype's ComputeDVARS computes it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/realign/realign.hpp"

namespace voxalign {

Image<float> dvars_auto_mask(const Image<float>& mean) {
  const int64_t n = mean.geometry().frame_size();
  const float* m = mean.data();
  double all = 0;
  for (int64_t q = 0; q < n; ++q) all += m[q];
  const double thr0 = all / double(n) / 8.0; // spm_global: the mean of the voxels above mean / 8
  double s = 0;
  int64_t c = 0;
  for (int64_t q = 0; q < n; ++q)
    if (m[q] > thr0) s += m[q], ++c;
  const double thr = c ? 0.8 * s / double(c) : thr0; // SPM's analysis threshold: 0.8 of the global
  Geometry g = mean.geometry();
  Image<float> mask(g, no_init);
  for (int64_t q = 0; q < n; ++q) mask.data()[q] = m[q] > thr ? 1.0f : 0.0f;
  return mask;
}

Dvars compute_dvars(const Image<float>& series, const Image<float>* mask, double variance_tol) {
  const Geometry& g = series.geometry();
  const int64_t T = g.dims[3], n = g.frame_size();
  VX_CHECK(T >= 2, InvalidArgument, "DVARS needs at least 2 frames");
  Image<float> automask;
  if (!mask) {
    Geometry g3 = g;
    g3.dims[3] = 1;
    g3.ndim = 3;
    Image<float> mean(g3, no_init);
    for (int64_t q = 0; q < n; ++q) {
      double s = 0;
      for (int64_t t = 0; t < T; ++t) s += series.data()[t * n + q];
      mean.data()[q] = float(s / double(T));
    }
    automask = dvars_auto_mask(mean);
    mask = &automask;
  }
  VX_CHECK(mask->geometry().frame_size() == n, InvalidArgument, "the DVARS mask is not on the series' grid");
  const std::vector<int64_t> vox = dvars_voxels(*mask, mask == &automask);
  const int64_t V = int64_t(vox.size());
  // The masked voxels' time series, one row per voxel (time contiguous).
  std::vector<float> x(static_cast<size_t>(V * T));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t v = 0; v < V; ++v) x[static_cast<size_t>(v * T + t)] = series.data()[t * n + vox[static_cast<size_t>(v)]];
  return dvars_of_masked(x, V, T, variance_tol);
}

std::vector<int64_t> dvars_voxels(const Image<float>& mask, bool automatic) {
  const int64_t n = mask.geometry().frame_size();
  std::vector<int64_t> vox;
  for (int64_t q = 0; q < n; ++q)
    if (mask.data()[q] != 0.0f) vox.push_back(q);
  if (vox.empty() && automatic) // an all-zero mean: every voxel (then none varies, DVARS is 0)
    for (int64_t q = 0; q < n; ++q) vox.push_back(q);
  VX_CHECK(!vox.empty(), InvalidArgument, "the DVARS mask is empty");
  return vox;
}

namespace {
// Floats in increasing order as unsigned integers (the sign bit flipped, negatives' bits inverted).
uint32_t ordered_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// The k-th smallest of x (0-based; no NaN), as std::nth_element would give it, without copying x: a
// radix selection in two passes over 16-bit halves of the ordered bits.
float kth_smallest(const std::vector<float>& x, size_t k) {
  std::vector<size_t> hist(65536);
  for (float f : x) ++hist[ordered_bits(f) >> 16];
  uint32_t hi = 0;
  for (; k >= hist[hi]; ++hi) k -= hist[hi];
  std::fill(hist.begin(), hist.end(), 0);
  for (float f : x) {
    const uint32_t u = ordered_bits(f);
    if ((u >> 16) == hi) ++hist[u & 0xffffu];
  }
  uint32_t lo = 0;
  for (; k >= hist[lo]; ++lo) k -= hist[lo];
  uint32_t u = (hi << 16) | lo;
  u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
} // namespace

Dvars dvars_of_masked(const std::vector<float>& x, int64_t V, int64_t T, double variance_tol) {
  VX_CHECK(T >= 2, InvalidArgument, "DVARS needs at least 2 frames");
  VX_CHECK(V > 0 && int64_t(x.size()) == V * T, InvalidArgument, "DVARS: ", x.size(), " values for ", V, " voxels x ",
           T, " frames");
  // nipype: mfunc / median(mfunc) * 1000 (numpy's median: the mean of the two middle values when even).
  // The scale is applied to the results (DVARS and the SDs scale with it; ar1 does not).
  // Selected in place: a copy would double what DVARS holds.
  const size_t N = x.size(), h = N / 2;
  double median = kth_smallest(x, h);
  if (N % 2 == 0) median = 0.5 * (median + double(kth_smallest(x, h - 1)));
  // |scale|: DVARS and the SDs are magnitudes (nipype squares the differences; a negative median only
  // reverses the order of the percentiles).
  const double scale = median != 0 ? std::abs(1000.0 / median) : 1.0;
  // Per voxel: the robust SD (numpy's "lower" percentiles: sorted[floor(q (T-1))]) and the lag-1
  // Yule-Walker autocorrelation of the demeaned series (nitime's AR_est_YW, order 1: r1 / r0, biased sums).
  std::vector<double> sd(static_cast<size_t>(V)), ar1(static_cast<size_t>(V));
  const size_t i25 = static_cast<size_t>(std::floor(0.25 * double(T - 1))), i75 = static_cast<size_t>(std::floor(0.75 * double(T - 1)));
  parallel_for(V, 256, [&](int64_t b, int64_t e) {
    std::vector<double> s(static_cast<size_t>(T));
    for (int64_t v = b; v < e; ++v) {
      const float* r = x.data() + v * T;
      double mu = 0;
      for (int64_t t = 0; t < T; ++t) s[static_cast<size_t>(t)] = r[t], mu += r[t];
      mu /= double(T);
      double r0 = 0, r1 = 0;
      for (int64_t t = 0; t < T; ++t) {
        const double a = r[t] - mu;
        r0 += a * a;
        if (t + 1 < T) r1 += a * (r[t + 1] - mu);
      }
      ar1[static_cast<size_t>(v)] = r0 > 0 ? r1 / r0 : 0.0;
      std::sort(s.begin(), s.end());
      sd[static_cast<size_t>(v)] = (s[i75] - s[i25]) / 1.349 * scale;
    }
  });
  // remove_zerovariance (fMRIPrep sets it): voxels whose robust SD is not above variance_tol are dropped.
  std::vector<int64_t> keep;
  for (int64_t v = 0; v < V; ++v)
    if (sd[static_cast<size_t>(v)] > variance_tol) keep.push_back(v);
  Dvars d;
  d.voxels = int64_t(keep.size());
  d.dvars.assign(static_cast<size_t>(T), 0.0);
  d.std_dvars.assign(static_cast<size_t>(T), 0.0);
  if (keep.empty()) return d; // a constant series: no temporal change to report
  double sdmean = 0;
  for (int64_t v : keep)
    sdmean += std::sqrt(std::max(0.0, 2.0 * (1.0 - ar1[static_cast<size_t>(v)]))) * sd[static_cast<size_t>(v)];
  sdmean /= double(keep.size());
  for (int64_t t = 1; t < T; ++t) { // serial, voxel order: the same sums for any thread count
    double ss = 0;
    for (int64_t v : keep) {
      const double dd = double(x[static_cast<size_t>(v * T + t)]) - double(x[static_cast<size_t>(v * T + t - 1)]);
      ss += dd * dd;
    }
    d.dvars[static_cast<size_t>(t)] = std::sqrt(ss / double(keep.size())) * scale;
    d.std_dvars[static_cast<size_t>(t)] = sdmean > 0 ? d.dvars[static_cast<size_t>(t)] / sdmean : 0.0;
  }
  return d;
}

namespace {
void num(std::ostringstream& o, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  o << buf;
}
} // namespace

std::string bids_confounds_tsv(const RealignResult& r) {
  static const char* names[6] = {"trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"};
  static const int col[6] = {3, 4, 5, 0, 1, 2}; // the MCFLIRT .par order is rx ry rz tx ty tz
  const bool dv = r.dvars.size() == r.fsl.size() && r.std_dvars.size() == r.fsl.size();
  std::ostringstream o;
  for (int k = 0; k < 6; ++k)
    o << (k ? "\t" : "") << names[k] << "\t" << names[k] << "_derivative1\t" << names[k] << "_power2\t" << names[k]
      << "_derivative1_power2";
  o << "\tframewise_displacement\trmsd";
  if (dv) o << "\tdvars\tstd_dvars";
  o << "\n";
  for (size_t t = 0; t < r.fsl.size(); ++t) {
    for (int k = 0; k < 6; ++k) {
      const double p = r.fsl[t][static_cast<size_t>(col[k])];
      if (k) o << "\t";
      num(o, p);
      o << "\t";
      if (t == 0) {
        o << "n/a\t";
        num(o, p * p);
        o << "\tn/a";
      } else {
        const double d = p - r.fsl[t - 1][static_cast<size_t>(col[k])]; // backward difference, as fMRIPrep
        num(o, d);
        o << "\t";
        num(o, p * p);
        o << "\t";
        num(o, d * d);
      }
    }
    const std::vector<const std::vector<double>*> rest =
        dv ? std::vector<const std::vector<double>*>{&r.fd, &r.rmsd, &r.dvars, &r.std_dvars}
           : std::vector<const std::vector<double>*>{&r.fd, &r.rmsd};
    for (const auto* c : rest) {
      o << "\t";
      if (t == 0) o << "n/a";
      else num(o, (*c)[t]);
    }
    o << "\n";
  }
  return o.str();
}

std::string bids_confounds_json() {
  std::ostringstream o;
  o << "{\n";
  const char* axes[3] = {"x", "y", "z"};
  for (int kind = 0; kind < 2; ++kind)
    for (int a = 0; a < 3; ++a) {
      const std::string base = std::string(kind ? "rot_" : "trans_") + axes[a];
      const std::string what = std::string(kind ? "Rotation about " : "Translation along ") + axes[a] +
                               " from the estimated head motion (MCFLIRT .par convention)";
      const char* u = kind ? "rad" : "mm";
      o << "  \"" << base << "\": {\"Description\": \"" << what << "\", \"Units\": \"" << u << "\"},\n";
      o << "  \"" << base << "_derivative1\": {\"Description\": \"Backward difference of " << base
        << " (row t minus row t-1); n/a in the first row\", \"Units\": \"" << u << "\"},\n";
      o << "  \"" << base << "_power2\": {\"Description\": \"Square of " << base << "\", \"Units\": \"" << u << "^2\"},\n";
      o << "  \"" << base << "_derivative1_power2\": {\"Description\": \"Square of " << base
        << "_derivative1; n/a in the first row\", \"Units\": \"" << u << "^2\"},\n";
    }
  o << R"(  "framewise_displacement": {"Description": "Framewise displacement (Power et al. 2012): sum of the absolute frame-to-frame changes of the three translations plus those of the three rotations (rad) times a 50 mm radius, from the MCFLIRT parameters; n/a in the first row", "Units": "mm"},
  "rmsd": {"Description": "Root mean square displacement from the previous frame over a sphere of 80 mm radius (Jenkinson 1999); n/a in the first row", "Units": "mm"},
  "dvars": {"Description": "DVARS of the realigned series (RMS over the brain mask of the frame-to-frame intensity change), intensities scaled so that their median in the mask is 1000 (nipype ComputeDVARS, non-standardised); n/a in the first row", "Units": "arbitrary"},
  "std_dvars": {"Description": "Standardised DVARS (Nichols 2013, nipype ComputeDVARS): dvars divided by its expected value under temporal stationarity, the mean over voxels of sqrt(2 (1 - AR1)) times the robust standard deviation (IQR / 1.349); n/a in the first row", "Units": "arbitrary"},
  "Software": "voxalign realign"
}
)";
  return o.str();
}

} // namespace voxalign
