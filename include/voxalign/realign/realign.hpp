// 4D motion correction (realignment) of a time series, SPM's method on the registration engine
// (docs/realign.md): each frame is registered rigidly to a reference by Gauss-Newton on B-spline
// interpolated, smoothed images with exact derivatives; the reference is a frame or, as SPM's
// "register to mean", the mean of the series aligned to the first frame.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "voxalign/image/image.hpp"

namespace voxalign {

struct RealignOptions {
  int ref_frame = 0;          ///< reference frame (ignored when to_mean)
  bool to_mean = true;        ///< SPM's two passes: to ref_frame, then to the mean of the aligned frames
  double sep = 4.0;           ///< sampling separation of the reference, mm
  double fwhm = 5.0;          ///< Gaussian smoothing of both images before estimation, mm
  int degree = 2;             ///< B-spline degree of the frames during estimation (1..5)
  double quality = 0.9;       ///< keep the samples carrying this fraction of the reference's gradient energy
  int iterations = 64;        ///< most Gauss-Newton iterations per frame
  double tolerance = 1e-3;    ///< stop when a step moves points by less (mm)
};

struct RealignResult {
  /// Per frame: the RAS pull-back from the reference's world space to the frame's (what reslicing
  /// samples: out_t(x) = frame_t(matrices[t] x)); as fMRIPrep's per-frame HMC transforms.
  std::vector<Mat4> matrices;
  std::vector<std::array<double, 6>> spm;   ///< rp_*.txt: tx ty tz (mm), pitch roll yaw (rad), relative to frame 0
  std::vector<std::array<double, 6>> fsl;   ///< MCFLIRT .par: rx ry rz (rad), tx ty tz (mm)
  std::vector<double> fd;                   ///< framewise displacement (Power et al., 50 mm), 0 for frame 0
  std::vector<double> rmsd;                 ///< RMS displacement from the previous frame (Jenkinson, 80 mm), 0 for frame 0
  std::vector<int> iterations;              ///< Gauss-Newton iterations per frame (last pass)
  int64_t samples = 0;                      ///< reference samples used
};

/// Progress: (frames done, frames in this pass, pass index, passes).
using RealignProgress = std::function<void(int, int, int, int)>;

/// Estimate the motion of every frame of a 4D image. `weight` (optional) is a mask or weight image
/// on the series' 3D grid (non-zero = use). Throws InvalidArgument for a 3D image, a single frame,
/// non-finite values, or a mask that leaves no sample.
RealignResult realign(const Image<float>& series, const RealignOptions& opts, const Image<float>* weight = nullptr,
                      const RealignProgress& progress = {});

/// Reslice frame `t` of `series` onto the reference grid through matrices[t] (B-spline `degree`,
/// zero outside), into the 3D view `out`.
void reslice_frame(const Image<float>& series, int64_t t, const Mat4& pullback, int degree, ImageView<float> out);

/// Reslice every frame (frames in parallel) into `out` (4D, allocated here; may be null) and/or
/// their mean into `mean` (3D; may be null). Bit-identical for any thread count.
void reslice_series(const Image<float>& series, const std::vector<Mat4>& pullbacks, int degree, Image<float>* out,
                    Image<float>* mean);

/// The motion summaries from per-frame pull-backs on a grid (the series' geometry): SPM and FSL
/// parameters, framewise displacement (Power: |d trans| + 50 mm |d rot| from the FSL parameters) and
/// Jenkinson's relative RMS over a sphere of 80 mm about the volume centre.
void motion_summaries(const Geometry& grid, RealignResult& r);

/// Jenkinson's RMS deviation between two affine maps (4x4) over a sphere of radius `radius` mm
/// about `centre`: sqrt(R^2/5 tr(A^T A) + |t + A c|^2) with [A t] = M2 M1^-1 - I.
double jenkinson_rms(const Mat4& m1, const Mat4& m2, const Vec3& centre, double radius = 80.0);

/// Text of the output files.
std::string spm_rp_text(const RealignResult& r);
std::string fsl_par_text(const RealignResult& r);
std::string bids_confounds_tsv(const RealignResult& r);
std::string bids_confounds_json();
std::string itk_transforms_text(const RealignResult& r);

} // namespace voxalign
