// Evaluate spline coefficients (value and gradient) at arbitrary points.
#pragma once
#include <cstdint>

#include "voxalign/spline/prefilter.hpp"

namespace voxalign {

/// Evaluate `c` at `npts` points given as a row-major npts x c.ndim array of voxel coordinates of
/// the original (un-padded) image. values[p] receives the interpolated value; when `grads` is not
/// null, grads[p*ndim + d] receives the derivative along axis d (per voxel). Deterministic and
/// thread-count independent.
template <class T>
void interpolate(const Coefficients<T>& c, const double* points, int64_t npts, T* values, T* grads = nullptr);

/// Same, on coefficients held elsewhere (e.g. a numpy array), read in place: a view whose axis-0
/// stride is 1 (other strides are free; dims[3] is ignored), with the order, mode, padding and
/// cval a Coefficients would carry.
template <class T>
void interpolate(ImageView<const T> coeffs, int ndim, int order, Mode mode, int pad, double cval, const double* points,
                 int64_t npts, T* values, T* grads = nullptr);

/// Same, at the points x + u(x) of a grid: `field` has the output grid's dims in dims[0..2] and the
/// ndim displacement components (voxels) in dims[3]. out has the output grid's dims.
template <class T>
void warp_displacement(const Coefficients<T>& c, ImageView<const T> field, ImageView<T> out);

/// out(x) = c(M x) for every voxel x of out, with M a 4x4 voxel(out) -> voxel(in) matrix.
template <class T> void warp_affine(const Coefficients<T>& c, const double* M4x4_rowmajor, ImageView<T> out);

} // namespace voxalign
