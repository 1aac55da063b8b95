// The B-spline prefilter of one group of lines, portable: the recursive causal + anti-causal filter
// with scipy.ndimage's boundary initialisations (ni_splines.c), written once for the CPU (which
// filters many interleaved lines at a time, vectorised over them) and a CUDA thread (one line).
// Element i of line l is at c[i * s + l], l < m.
#pragma once
#include <cmath>
#include <cstdint>

#include "voxalign/core/hd.hpp"
#include "voxalign/spline/modes.hpp"

namespace voxalign::kernel {

/// Number of poles of the interpolation prefilter of this degree (0 for degrees 0 and 1).
VX_HD constexpr int bspline_pole_count(int degree) { return degree < 2 || degree > 7 ? 0 : degree / 2; }

/// Pole p (p < bspline_pole_count(degree)) of the prefilter of this degree.
VX_HD double bspline_pole(int degree, int p) {
  switch (degree) {
  case 2: return -0.171572875253809902396622551580603843;
  case 3: return -0.267949192431122706472553658494127633;
  case 4: return p == 0 ? -0.361341225900220177092212841325675255 : -0.013725429297339121360331226939128204;
  case 5: return p == 0 ? -0.430575347099973791851434783493520110 : -0.043096288203264653822712376822550182;
  case 6:
    return p == 0   ? -0.48829458930304475513011803888378906211227916123938
           : p == 1 ? -0.081679271076237512597937765737059080653379610398148
                    : -0.0014141518083258177510872439765585925278641690553467;
  case 7:
    return p == 0   ? -0.53528043079643816554240378168164607183392315234269
           : p == 1 ? -0.12255461519232669051527226435935734360548654942730
                    : -0.0091486948096082769285930216516478534156925639545994;
  default: return 0.0;
  }
}

/// Number of terms after which z^i is below double precision relative to the first term: on a
/// longer line the boundary sums are truncated there (the neglected terms are below rounding).
VX_HD int64_t pole_horizon(double z) { return int64_t(std::ceil(std::log(1e-18) / std::log(std::abs(z)))) + 1; }

namespace line {
// sum_{i < h} z^i c[i] over the m lines (into out).
VX_HD void truncated_sum(const double* c, int64_t h, int64_t s, int64_t m, double z, double* out) {
  for (int64_t l = 0; l < m; ++l) out[l] = c[l];
  double zi = z;
  for (int64_t i = 1; i < h; ++i) {
    const double* a = c + i * s;
    for (int64_t l = 0; l < m; ++l) out[l] += zi * a[l];
    zi *= z;
  }
}

VX_HD void causal_mirror(double* c, int64_t n, int64_t s, int64_t m, double z) {
  if (pole_horizon(z) < n - 1) { // z^(n-1) negligible: c0 = sum z^i c[i]
    truncated_sum(c, pole_horizon(z), s, m, z, c);
    return;
  }
  const double zn1 = std::pow(z, double(n - 1));
  double* c0 = c;
  const double* cl = c + (n - 1) * s;
  for (int64_t l = 0; l < m; ++l) c0[l] += zn1 * cl[l];
  double zi = z;
  for (int64_t i = 1; i < n - 1; ++i) {
    const double* a = c + i * s;
    const double* b = c + (n - 1 - i) * s;
    for (int64_t l = 0; l < m; ++l) c0[l] += zi * (a[l] + zn1 * b[l]);
    zi *= z;
  }
  const double f = 1.0 / (1 - zn1 * zn1);
  for (int64_t l = 0; l < m; ++l) c0[l] *= f;
}

VX_HD void anticausal_mirror(double* c, int64_t n, int64_t s, int64_t m, double z) {
  double* cl = c + (n - 1) * s;
  const double* cp = c + (n - 2) * s;
  const double f = z / (z * z - 1);
  for (int64_t l = 0; l < m; ++l) cl[l] = (z * cp[l] + cl[l]) * f;
}

VX_HD void causal_wrap(double* c, int64_t n, int64_t s, int64_t m, double z) {
  const int64_t h = pole_horizon(z);
  double zi = z;
  for (int64_t i = 1; i < (h < n ? h : n); ++i) { // c0 += sum_{i>=1} z^i c[n-i]
    const double* a = c + (n - i) * s;
    for (int64_t l = 0; l < m; ++l) c[l] += zi * a[l];
    zi *= z;
  }
  if (h < n) return; // truncated: z^n negligible
  const double f = 1.0 / (1 - zi);
  for (int64_t l = 0; l < m; ++l) c[l] *= f;
}

VX_HD void anticausal_wrap(double* c, int64_t n, int64_t s, int64_t m, double z) {
  const int64_t h = pole_horizon(z);
  double zi = z;
  double* cl = c + (n - 1) * s;
  // c[n-1] = (c[n-1] + sum_i z^(i+1) c[i]) * z / (z^n - 1); truncated at h terms when z^n ~ 0
  for (int64_t i = 0; i < (h < n ? h : n - 1); ++i) {
    const double* a = c + i * s;
    for (int64_t l = 0; l < m; ++l) cl[l] += zi * a[l];
    zi *= z;
  }
  const double f = h < n ? -z : z / (zi - 1);
  for (int64_t l = 0; l < m; ++l) cl[l] *= f;
}

// tmp: m doubles of scratch.
VX_HD void causal_reflect(double* c, int64_t n, int64_t s, int64_t m, double z, double* tmp) {
  if (pole_horizon(z) < n) { // z^n negligible: c0 = c0 + z * sum_{i<h} z^i c[i]
    truncated_sum(c, pole_horizon(z), s, m, z, tmp);
    for (int64_t l = 0; l < m; ++l) c[l] += z * tmp[l];
    return;
  }
  const double zn = std::pow(z, double(n));
  const double* cl = c + (n - 1) * s;
  for (int64_t l = 0; l < m; ++l) {
    tmp[l] = c[l];
    c[l] += zn * cl[l];
  }
  double zi = z;
  for (int64_t i = 1; i < n; ++i) {
    const double* a = c + i * s;
    const double* b = c + (n - 1 - i) * s;
    for (int64_t l = 0; l < m; ++l) c[l] += zi * (a[l] + zn * b[l]);
    zi *= z;
  }
  const double f = z / (1 - zn * zn);
  for (int64_t l = 0; l < m; ++l) c[l] = c[l] * f + tmp[l];
}

VX_HD void anticausal_reflect(double* c, int64_t n, int64_t s, int64_t m, double z) {
  double* cl = c + (n - 1) * s;
  const double f = z / (z - 1);
  for (int64_t l = 0; l < m; ++l) cl[l] *= f;
}
} // namespace line

/// Prefilter m lines of n samples (element i of line l at c[i * s + l]) in place for a B-spline
/// of this degree, with scipy.ndimage's initialisation for `mode`; tmp: m doubles of scratch.
/// Lines of one sample are left untouched (as scipy does, gain included).
VX_HD void prefilter_lines(double* c, int64_t n, int64_t s, int64_t m, int degree, Mode mode, double* tmp) {
  const int np = bspline_pole_count(degree);
  if (np == 0 || n < 2) return;
  double gain = 1.0;
  for (int p = 0; p < np; ++p) {
    const double z = bspline_pole(degree, p);
    gain *= (1.0 - z) * (1.0 - 1.0 / z);
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < m; ++l) c[i * s + l] *= gain;
  for (int p = 0; p < np; ++p) {
    const double z = bspline_pole(degree, p);
    switch (mode) {
    case Mode::GridWrap: line::causal_wrap(c, n, s, m, z); break;
    case Mode::Nearest:
    case Mode::Reflect: line::causal_reflect(c, n, s, m, z, tmp); break;
    default: line::causal_mirror(c, n, s, m, z); break;
    }
    for (int64_t i = 1; i < n; ++i) {
      double* a = c + i * s;
      const double* b = a - s;
      for (int64_t l = 0; l < m; ++l) a[l] += z * b[l];
    }
    switch (mode) {
    case Mode::GridWrap: line::anticausal_wrap(c, n, s, m, z); break;
    case Mode::Nearest:
    case Mode::Reflect: line::anticausal_reflect(c, n, s, m, z); break;
    default: line::anticausal_mirror(c, n, s, m, z); break;
    }
    for (int64_t i = n - 2; i >= 0; --i) {
      double* a = c + i * s;
      const double* b = a + s;
      for (int64_t l = 0; l < m; ++l) a[l] = z * (b[l] - a[l]);
    }
  }
}

/// Line l of the lines along `axis` of a contiguous grid (x fastest): its first sample's offset;
/// `stride` receives the distance between its samples. Lines are numbered with the index below
/// `axis` fastest, so neighbouring lines are neighbouring in memory for axes 1 and 2.
VX_HD int64_t line_start(int64_t l, const int64_t* dims, int axis, int64_t& stride) {
  stride = axis == 0 ? 1 : axis == 1 ? dims[0] : dims[0] * dims[1];
  return l % stride + (l / stride) * stride * dims[axis];
}

/// Sample q (x fastest) of the padded coefficient grid (dims out_dims, `pad[d]` samples per side)
/// from the image `in` (contiguous, dims in_dims): scipy's padding, the clamped source sample for
/// 'nearest' and cval outside the image for 'grid-constant'.
template <class T>
VX_HD double padded_sample(const T* in, const int64_t* in_dims, const int64_t* out_dims, const int* pad, int64_t q,
                           bool grid_constant, double cval) {
  const int64_t idx[3] = {q % out_dims[0], (q / out_dims[0]) % out_dims[1], q / (out_dims[0] * out_dims[1])};
  int64_t src = 0, stride = 1;
  bool outside = false;
  for (int d = 0; d < 3; ++d) {
    int64_t s = idx[d] - pad[d];
    if (s < 0 || s >= in_dims[d]) {
      outside = true;
      s = s < 0 ? 0 : in_dims[d] - 1;
    }
    src += s * stride;
    stride *= in_dims[d];
  }
  return (grid_constant && outside) ? cval : double(in[src]);
}

} // namespace voxalign::kernel
