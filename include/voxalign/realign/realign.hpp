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
  int write_degree = 4;       ///< B-spline degree of the resliced series and mean (SPM's 4); reslice_series takes it
};

struct RealignResult {
  /// Per frame: the RAS pull-back from the reference's world space to the frame's (what reslicing
  /// samples: out_t(x) = frame_t(matrices[t] x)); as fMRIPrep's per-frame HMC transforms.
  std::vector<Mat4> matrices;
  std::vector<std::array<double, 6>> spm;   ///< rp_*.txt: tx ty tz (mm), pitch roll yaw (rad), relative to frame 0
  std::vector<std::array<double, 6>> fsl;   ///< MCFLIRT .par: rx ry rz (rad), tx ty tz (mm)
  std::vector<double> fd;                   ///< framewise displacement (Power et al., 50 mm), 0 for frame 0
  std::vector<double> rmsd;                 ///< RMS displacement from the previous frame (Jenkinson, 80 mm), 0 for frame 0
  std::vector<double> dvars;                ///< DVARS of the realigned series (nipype's, median scaled to 1000), 0 for frame 0; empty: not computed
  std::vector<double> std_dvars;            ///< standardised DVARS (Nichols 2013, as nipype's ComputeDVARS), 0 for frame 0; empty: not computed
  std::vector<int> iterations;              ///< Gauss-Newton iterations per frame (last pass)
  int64_t samples = 0;                      ///< reference samples used
};

/// Progress: (frames done, frames in this pass, pass index, passes); called from worker threads, one
/// call at a time.
using RealignProgress = std::function<void(int, int, int, int)>;

/// A 4D series read a frame at a time: `geometry` (4D) and read(t, dst), which fills frame t
/// (geometry.frame_size() floats). realign and reslice_series call read one call at a time (from a
/// reading thread of their own), sweeping the frames in increasing order (a gzip stream is
/// decompressed once per sweep) and holding a few frames per thread, never the series.
struct FrameSource {
  Geometry geometry;
  std::function<void(int64_t, float*)> read;
};
/// A source over a series in memory (which must outlive it).
FrameSource frames_of(const Image<float>& series);

/// Estimate the motion of every frame of a 4D image. `weight` (optional) is a mask or weight image
/// on the series' 3D grid (non-zero = use). Throws InvalidArgument for a 3D image, a single frame,
/// non-finite values, or a mask that leaves no sample.
RealignResult realign(const Image<float>& series, const RealignOptions& opts, const Image<float>* weight = nullptr,
                      const RealignProgress& progress = {});
/// The same, frames read on demand (bit-identical results).
RealignResult realign(const FrameSource& series, const RealignOptions& opts, const Image<float>* weight = nullptr,
                      const RealignProgress& progress = {});

/// Reslice frame `t` of `series` onto the reference grid through matrices[t] (B-spline `degree`,
/// zero outside), into the 3D view `out`.
void reslice_frame(const Image<float>& series, int64_t t, const Mat4& pullback, int degree, ImageView<float> out);

/// Progress of reslicing: (frames done, frames); called from worker threads, one call at a time.
using ResliceProgress = std::function<void(int, int)>;

/// Reslice every frame (frames in parallel) into `out` (4D, allocated here; may be null) and/or
/// their mean into `mean` (3D; may be null). Bit-identical for any thread count.
void reslice_series(const Image<float>& series, const std::vector<Mat4>& pullbacks, int degree, Image<float>* out,
                    Image<float>* mean, const ResliceProgress& progress = {});
/// Receives resliced frame t (the reference grid's frame_size floats), t = 0, 1, ... in order, on the calling thread.
using FrameSink = std::function<void(int64_t, const float*)>;
/// Resamples one 3D frame (on the series' grid) into `out` through its pull-back, in place of the
/// plain reslicing (e.g. SdcOneShot: motion and distortion in one interpolation). Called from worker
/// threads at once: it must be safe to call concurrently.
using FrameReslicer = std::function<void(ImageView<const float>, const Mat4&, ImageView<float>)>;
/// The same, frames read on demand and each resliced frame handed to `sink` (may be empty) in order;
/// `reslicer`, when set, resamples each frame instead of the B-spline reslicing of `degree`.
void reslice_series(const FrameSource& series, const std::vector<Mat4>& pullbacks, int degree, const FrameSink& sink,
                    Image<float>* mean, const ResliceProgress& progress = {}, const FrameReslicer& reslicer = {});

/// The motion summaries from per-frame pull-backs on a grid (the series' geometry): SPM and FSL
/// parameters, framewise displacement (Power: |d trans| + 50 mm |d rot| from the FSL parameters) and
/// Jenkinson's relative RMS over a sphere of 80 mm about the volume centre.
void motion_summaries(const Geometry& grid, RealignResult& r);

/// Jenkinson's RMS deviation between two affine maps (4x4) over a sphere of radius `radius` mm
/// about `centre`: sqrt(R^2/5 tr(A^T A) + |t + A c|^2) with [A t] = M2 M1^-1 - I.
double jenkinson_rms(const Mat4& m1, const Mat4& m2, const Vec3& centre, double radius = 80.0);

/// DVARS of a 4D series as fMRIPrep takes it from nipype's ComputeDVARS (remove_zerovariance, variance_tol
/// 1e-7, intensity_normalization 1000): the masked voxels' values scaled so that their median (over voxels and
/// frames) is 1000; voxels whose robust SD over time ((P75 - P25) / 1.349, numpy's "lower" percentiles) is
/// not above 1e-7 dropped; dvars[t] = RMS over voxels of x_t - x_{t-1}; std_dvars[t] = dvars[t] / mean over
/// voxels of sqrt(2 (1 - ar1)) * robust SD (ar1: the Yule-Walker lag-1 autocorrelation of the demeaned
/// series). Entry 0 is 0 (undefined). `mask` (3D, non-zero = brain) may be null: then dvars_auto_mask of
/// the series' temporal mean. `voxels`: the number of voxels used.
struct Dvars {
  std::vector<double> dvars, std_dvars;
  int64_t voxels = 0;
};
Dvars compute_dvars(const Image<float>& series, const Image<float>* mask = nullptr, double variance_tol = 1e-7);
/// The same from the masked voxels' time series alone: x[v * T + t] for voxel v (in dvars_voxels' order)
/// and frame t -- what a caller streaming the series keeps instead of the series.
Dvars dvars_of_masked(const std::vector<float>& x, int64_t V, int64_t T, double variance_tol = 1e-7);
/// The voxels (frame offsets, increasing) DVARS uses in `mask`; `automatic` (a dvars_auto_mask): an empty
/// mask means every voxel. Throws InvalidArgument for an empty given mask.
std::vector<int64_t> dvars_voxels(const Image<float>& mask, bool automatic);

/// The brain mask used for DVARS without one: SPM's analysis mask on a mean image -- the voxels above 0.8
/// of the global mean, the global mean being the mean of the voxels above 1/8 of the image's mean
/// (spm_global). Returns 1/0 on the image's grid.
Image<float> dvars_auto_mask(const Image<float>& mean3d);

/// Text of the output files. The confounds TSV holds fMRIPrep's motion set (each of trans_x .. rot_z with
/// _derivative1 (backward difference), _power2, _derivative1_power2), framewise_displacement, rmsd and,
/// when computed, dvars and std_dvars; n/a where undefined (the first row of differences).
std::string spm_rp_text(const RealignResult& r);
std::string fsl_par_text(const RealignResult& r);
std::string bids_confounds_tsv(const RealignResult& r);
std::string bids_confounds_json();
std::string itk_transforms_text(const RealignResult& r);

} // namespace voxalign
