// Boundary modes and interpolation kernels, with scipy.ndimage's names and meanings.
//
// Everything in this header is a plain inline function marked VX_HD so the same source serves a
// CPU loop and (later) a CUDA kernel. The coordinate mapping and index folding follow
// scipy.ndimage 1.17 (ni_interpolation.c: map_coordinate, _get_spline_boundary_mode) exactly, so
// that results can be compared with scipy to rounding error; see docs/interpolation.md.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "voxalign/core/hd.hpp"
#include "voxalign/core/names.hpp"

namespace voxalign {

enum class Mode : int {
  Mirror = 0,       ///< d c b | a b c d | c b a   (whole-sample symmetric)
  Reflect = 1,      ///< c b a | a b c d | d c b   (half-sample symmetric, scipy's 'grid-mirror')
  Nearest = 2,      ///< a a a | a b c d | d d d
  Constant = 3,     ///< cval outside [0, n-1]; no interpolation beyond the edges
  GridConstant = 4, ///< k k k | a b c d | k k k  (interpolates towards cval beyond the edges)
  Wrap = 5,         ///< scipy's 'wrap': period n-1, first and last samples coincide
  GridWrap = 6,     ///< a b c d | a b c d | a b c d (period n)
  /// ITK's ResampleImageFilter (antsApplyTransforms, SimpleITK): cval outside [-0.5, n-0.5) (the
  /// interpolator's IsInsideBuffer); inside, the taps beyond the edge fold as ITK's interpolators
  /// fold them: mirror for B-splines of degree >= 2, clamp (edge value) for degrees 0, 1 and Keys
  /// (itk_inner_mode). Not a scipy mode; see docs/interpolation.md.
  Itk = 7,
};

/// The mode `voxalign resample`, `register -o`, `warp`, and Python's resample and
/// Registration.apply use unless told otherwise (one definition: the CLI and the Python package
/// read it from here).
constexpr Mode kResampleDefaultMode = Mode::Itk;

/// The mode names: itk, then scipy.ndimage's (grid-mirror is accepted for reflect), any case.
const NameTable<Mode>& mode_names();
/// mode_names().parse / .name.
Mode parse_mode(std::string_view name);
std::string mode_name(Mode m);

/// Interpolation kernel: 0..7 are B-splines of that degree (>= 2 prefiltered), kKeys is Keys'
/// cubic convolution (a = -1/2, Catmull-Rom), which needs no prefilter.
constexpr int kKeys = 8;
/// The interpolation names: "0".."7" (B-spline degree) and "keys".
const NameTable<int>& order_names();
/// order_names().parse / .name.
int parse_order(std::string_view name);
std::string order_name(int order);
/// Number of taps per axis.
VX_HD constexpr int kernel_taps(int order) { return order == kKeys ? 4 : order + 1; }
/// Whether the kernel interpolates only after a prefilter (B-splines of degree >= 2).
VX_HD constexpr bool needs_prefilter(int order) { return order >= 2 && order <= 7; }
/// scipy pads by this many samples for 'nearest' and 'grid-constant' before prefiltering.
constexpr int kScipyPad = 12;
/// Padding (per side) that spline coefficients carry for this order and mode.
VX_HD constexpr int coefficient_pad(int order, Mode m) {
  return (needs_prefilter(order) && (m == Mode::Nearest || m == Mode::GridConstant)) ? kScipyPad : 0;
}

/// Mode 'itk' inside ITK's buffer: how the taps of a kernel of this order fold at the edges.
/// BSplineInterpolateImageFunction mirrors (whole-sample) its coefficients and taps;
/// LinearInterpolateImageFunction and NearestNeighborInterpolateImageFunction clamp to the edge
/// sample; Keys (not in ITK) clamps like ITK's other convolution interpolators (windowed sinc,
/// zero-flux Neumann).
VX_HD constexpr Mode itk_inner_mode(int order) { return needs_prefilter(order) ? Mode::Mirror : Mode::Nearest; }
/// ITK's IsInsideBuffer(ContinuousIndex) on one axis of n samples: -0.5 <= x < n - 0.5 (false for NaN).
VX_HD bool itk_inside(double x, int64_t n) { return x >= -0.5 && x < double(n) - 0.5; }

/// Map a coordinate outside [0, len-1] back according to the mode (scipy's map_coordinate).
/// `sign` receives d(result)/d(in): +1, -1 (a mirror flip) or 0 (clamped). Constant mode returns -1
/// for points outside, meaning "use cval". 'itk' must be resolved first (itk_inside, then
/// itk_inner_mode): it is left unchanged here.
VX_HD double map_coordinate(double in, int64_t len, Mode mode, double& sign) {
  sign = 1.0;
  if (in < 0) {
    switch (mode) {
    case Mode::Mirror:
      if (len <= 1) { in = 0; sign = 0; } else {
        const int64_t sz2 = 2 * len - 2;
        in = double(sz2 * int64_t(-in / double(sz2))) + in;
        if (in <= double(1 - len)) in += double(sz2); else { in = -in; sign = -1; }
      }
      break;
    case Mode::Reflect:
      if (len <= 1) { in = 0; sign = 0; } else {
        const int64_t sz2 = 2 * len;
        if (in < double(-sz2)) in = double(sz2 * int64_t(-in / double(sz2))) + in;
        if (in < double(-len)) in += double(sz2);
        else { in = (in > -1e-15 ? 1e-15 : -in) - 1; sign = -1; }
      }
      break;
    case Mode::Wrap:
      if (len <= 1) { in = 0; sign = 0; } else {
        const int64_t sz = len - 1;
        in += double(sz * (int64_t(-in / double(sz)) + 1));
      }
      break;
    case Mode::GridWrap:
      if (len <= 1) { in = 0; sign = 0; } else {
        in += double(len * (int64_t((-1 - in) / double(len)) + 1));
      }
      break;
    case Mode::Nearest: in = 0; sign = 0; break;
    case Mode::Constant: in = -1; sign = 0; break;
    case Mode::GridConstant:
    case Mode::Itk: break;
    }
  } else if (in > double(len - 1)) {
    switch (mode) {
    case Mode::Mirror:
      if (len <= 1) { in = 0; sign = 0; } else {
        const int64_t sz2 = 2 * len - 2;
        in -= double(sz2 * int64_t(in / double(sz2)));
        if (in >= double(len)) { in = double(sz2) - in; sign = -1; }
      }
      break;
    case Mode::Reflect:
      if (len <= 1) { in = 0; sign = 0; } else {
        const int64_t sz2 = 2 * len;
        in -= double(sz2 * int64_t(in / double(sz2)));
        if (in >= double(len)) { in = double(sz2) - in - 1; sign = -1; }
      }
      break;
    case Mode::Wrap:
      if (len <= 1) { in = 0; sign = 0; } else {
        const int64_t sz = len - 1;
        in -= double(sz * int64_t(in / double(sz)));
      }
      break;
    case Mode::GridWrap:
      if (len <= 1) { in = 0; sign = 0; } else { in -= double(len * int64_t(in / double(len))); }
      break;
    case Mode::Nearest: in = double(len - 1); sign = 0; break;
    case Mode::Constant: in = -1; sign = 0; break;
    case Mode::GridConstant:
    case Mode::Itk: break;
    }
  }
  return in;
}

/// The mode used to fold coefficient indices that fall outside the array (scipy's
/// _get_spline_boundary_mode): constant and wrap fold like mirror.
VX_HD constexpr Mode spline_boundary_mode(Mode m) {
  return (m == Mode::Constant || m == Mode::Wrap) ? Mode::Mirror : m;
}

/// Fold an integer coefficient index into [0, len) (not used for GridConstant).
VX_HD int64_t fold_index(int64_t i, int64_t len, Mode m) {
  if (i >= 0 && i < len) return i;
  if (len <= 1) return 0;
  switch (m) {
  case Mode::Nearest: return i < 0 ? 0 : len - 1;
  case Mode::Reflect: {
    const int64_t sz2 = 2 * len;
    if (i < 0) {
      if (i < -sz2) i += sz2 * (-i / sz2);
      // scipy maps a reduced 0 to 1e-15 - 1, which truncates to index 0.
      return i < -len ? i + sz2 : (i >= 0 ? 0 : -i - 1);
    }
    i -= sz2 * (i / sz2);
    return i >= len ? sz2 - i - 1 : i;
  }
  case Mode::GridWrap: {
    int64_t r = i % len;
    return r < 0 ? r + len : r;
  }
  default: { // Mirror (and Constant/Wrap through spline_boundary_mode)
    const int64_t sz2 = 2 * len - 2;
    if (i < 0) {
      i += sz2 * (-i / sz2);
      return i <= 1 - len ? i + sz2 : -i;
    }
    i -= sz2 * (i / sz2);
    return i >= len ? sz2 - i : i;
  }
  }
}

} // namespace voxalign
