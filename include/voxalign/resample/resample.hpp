// World-space resampling of an image onto another grid through an affine pull-back transform.
#pragma once
#include "voxalign/image/image.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/spline/prefilter.hpp"

namespace voxalign {

struct ResampleOptions {
  int order = 3;               ///< 0..7 (B-spline degree, >= 2 prefiltered) or kKeys
  /// Boundary mode (scipy.ndimage names, or 'itk'). The default, 'itk', gives ITK's answer
  /// (antsApplyTransforms, SimpleITK): cval outside [-0.5, n-0.5) per axis, ITK's edge handling
  /// inside (docs/interpolation.md).
  Mode mode = kResampleDefaultMode;
  double cval = 0.0;           ///< value outside for constant modes
};

/// Number of leading axes that are interpolated: trailing spatial axes of length 1 (2D and 1D
/// images) are not.
int interpolated_axes(const Geometry& g);

/// Resample `in` onto the spatial grid of `target` (dims[0..2] and affine). `world_pullback` maps a
/// target world point (RAS mm) to the input world point sampled there (identity: same world
/// position). 4D inputs are resampled frame by frame; the output keeps the input's frames.
template <class T>
Image<T> resample(const Image<T>& in, const Geometry& target, const Mat4& world_pullback, const ResampleOptions& opts);

/// Same on a view (any strides), writing into `out` whose dims[0..2] are the target grid and
/// dims[3] the frames of `in`.
template <class T>
void resample_into(ImageView<const T> in, const Mat4& in_affine, int in_axes, ImageView<T> out, const Mat4& out_affine,
                   const Mat4& world_pullback, const ResampleOptions& opts);

/// Same from spline coefficients already computed (their order, mode and cval), for one frame
/// (out.dims[3] == 1): callers that resample one image many times prefilter it once. Bit-identical
/// to resampling the image the coefficients were computed from over interpolated_axes() axes.
template <class T>
void resample_into(const Coefficients<T>& in, const Mat4& in_affine, ImageView<T> out, const Mat4& out_affine,
                   const Mat4& world_pullback);

} // namespace voxalign
