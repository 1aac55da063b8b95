// N4 bias-field correction (Tustison et al. 2010) as ITK's N4BiasFieldCorrectionImageFilter computes
// it, with ANTs' N4BiasFieldCorrection front end (shrink factor, spline distance, full-resolution
// bias from the control lattice). See docs/n4.md for the algorithm, the options and what differs.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "voxalign/image/image.hpp"

namespace voxalign {

/// One line of progress: the level (0-based), the iteration within it (1-based) and the
/// convergence measure after it (coefficient of variation of exp(old log field - new)).
struct N4Progress {
  int level = 0;
  int iteration = 0;
  double convergence = 0.0;
};

struct N4Options {
  /// Iterations per fitting level (ANTs --convergence [50x50x50x50]); the number of entries is the
  /// number of levels, and the control lattice is refined (spans doubled) between levels.
  std::vector<int> iterations{50, 50, 50, 50};
  /// Stop a level when the convergence measure is <= this (ANTs default 0: run every iteration).
  double convergence = 0.0;
  /// B-spline order of the bias field (1..3; ITK and ANTs default 3).
  int spline_order = 3;
  /// Control points per axis at the first level (one value for all axes or one per axis). Used when
  /// spline_distance is 0. ITK's default is 4 (one span per axis at the first level).
  std::vector<int> control_points{4};
  /// Mesh element size in mm at the first level (ANTs --bspline-fitting [d]). When > 0 the image is
  /// (virtually) padded so that each axis' extent is a whole number of elements, as ANTs does.
  double spline_distance = 0.0;
  /// Shrink factor: fit on an image subsampled by this factor (ITK ShrinkImageFilter), then
  /// evaluate the bias at full resolution from the control lattice (ANTs default 4).
  int shrink = 4;
  int bins = 200;        ///< histogram bins for the sharpening
  double fwhm = 0.15;    ///< FWHM of the Gaussian model of the bias blur (log intensity units)
  double wiener = 0.01;  ///< Wiener filter noise
  int otsu_bins = 128;   ///< histogram bins of the Otsu foreground mask used when no mask is given
  /// Called after each iteration (from the calling thread), if set.
  std::function<void(const N4Progress&)> progress;
};

/// What an N4 run did.
struct N4Report {
  std::array<int64_t, 3> fit_dims{1, 1, 1};          ///< grid the fit ran on (after shrink and padding)
  int64_t fit_voxels = 0;                             ///< voxels used by the fit (mask, positive, weight > 0)
  std::vector<std::array<int, 3>> control_points;     ///< control lattice size at each level
  std::vector<int> iterations;                        ///< iterations run at each level
  std::vector<double> final_convergence;              ///< convergence measure at the end of each level
  bool otsu_mask = false;                             ///< the mask came from Otsu's threshold
};

/// Result: the corrected image (input / bias) and the multiplicative bias field, both on the input grid.
struct N4Result {
  Image<float> corrected;
  Image<float> bias;
  N4Report report;
};

/// N4 bias correction of a 2D or 3D image (image.dims[3] must be 1; a 2D image has dims[2] == 1).
/// `spacing` is the voxel size in mm along i, j, k. `mask` (optional, same grid, non-zero = inside)
/// selects the voxels the bias is estimated from; without one, an Otsu foreground mask is used.
/// `weight` (optional, same grid) is ITK's confidence image: voxels with weight <= 0 are excluded,
/// the others weight the B-spline fit. Voxels <= 0 are excluded from the estimate (their log is
/// undefined). Every voxel is corrected. Throws InvalidArgument on bad input (non-finite values,
/// an empty mask, bad options).
N4Result n4(ImageView<const float> image, const std::array<double, 3>& spacing, const ImageView<const uint8_t>* mask,
            const ImageView<const float>* weight, const N4Options& options, bool want_bias = true);

/// Foreground mask by Otsu's threshold as ITK's OtsuThresholdImageFilter computes it (histogram of
/// `bins` bins over [min, max]); 1 above the threshold, 0 at or below it.
Image<uint8_t> otsu_mask(ImageView<const float> image, int bins = 128);
/// The threshold itself (the upper edge of the last bin of the lower class).
double otsu_threshold(ImageView<const float> image, int bins = 128);

/// Parse "50x50x30x20" into iteration counts (throws InvalidArgument naming `what`).
std::vector<int> parse_x_list(const std::string& text, const char* what);

} // namespace voxalign
