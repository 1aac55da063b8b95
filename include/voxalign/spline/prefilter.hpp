// B-spline prefilter: interpolation coefficients by the recursive (causal + anti-causal) filter,
// one pole set per degree, with the boundary initialisation of each mode as in scipy.ndimage.
#pragma once
#include <cstdint>
#include <vector>

#include "voxalign/image/image.hpp"
#include "voxalign/spline/modes.hpp"

namespace voxalign {

/// Poles of the B-spline interpolation prefilter of the given degree (empty for 0 and 1).
std::vector<double> bspline_poles(int degree);

/// Filter `n` samples of each of `count` interleaved lines stored as buf[i * count + line]
/// (double precision), in place, with scipy.ndimage's boundary initialisation for `mode`.
void prefilter_lines(double* buf, int64_t n, int64_t count, int degree, Mode mode);

/// Spline coefficients of an image: the prefiltered samples (a plain copy for orders 0, 1 and
/// Keys), on a grid that carries `pad` extra samples on every side of each interpolated axis
/// (scipy's padding for 'nearest' and 'grid-constant').
template <class T> struct Coefficients {
  Image<T> image;          ///< coefficients, dims of the input plus 2*pad on interpolated axes
  int ndim = 3;            ///< number of interpolated axes (1..3)
  int order = 3;           ///< kernel (0..7 or kKeys)
  Mode mode = Mode::Mirror;
  int pad = 0;             ///< samples of padding per side on each interpolated axis
  double cval = 0.0;       ///< value used by constant modes
};

/// Compute spline coefficients of the first `ndim` axes of `in` (a 1..3D image, or one frame of a
/// 4D image: dims[3] must be 1). The result is always contiguous. Deterministic for any thread
/// count.
template <class T>
Coefficients<T> spline_coefficients(ImageView<const T> in, int ndim, int order, Mode mode, double cval = 0.0);

/// Prefilter a contiguous array (dims[0..3], x fastest) in place along its first `ndim` axes, as
/// spline_coefficients does after padding.
template <class T> void prefilter_in_place(T* data, const int64_t* dims, int ndim, int order, Mode mode);

/// Adjoint (transpose) of spline_coefficients as a linear map (cval = 0): `coef` holds values on the
/// coefficient grid (the input's dims plus 2*pad on interpolated axes; contiguous) and is
/// overwritten; `out` (the input's grid) receives the transpose applied to them. The prefilter is
/// B^-1 for the mode's sampling matrix B; B is symmetric for the reflect and periodic extensions,
/// and B = S D with S symmetric and D = diag(1/2, 1, ..., 1, 1/2) for the mirror extension, so the
/// transpose is the prefilter itself between two diagonal scalings (exact, no iteration). The
/// padding of 'nearest' / 'grid-constant' is transposed by summing the pad into the edge samples /
/// dropping it.
template <class T> void spline_coefficients_adjoint(Coefficients<T>& coef, ImageView<T> out);

/// The transpose of prefilter_in_place (modes without padding: coefficient grid == input grid),
/// in place on contiguous data of dims `dims`; the filter part of spline_coefficients_adjoint.
template <class T> void prefilter_transpose_in_place(T* data, const int64_t* dims, int ndim, int order, Mode mode);

} // namespace voxalign
