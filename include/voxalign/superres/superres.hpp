// Super-resolution reconstruction with joint motion estimation (docs/superres.md).
//
// Stacks y_k (3D images of thick slices, any orientation) are modelled from one high-resolution
// image x by y_k = D_k B_k W(T_k) x: W warps x (linear interpolation, exact adjoint) by the rigid
// motion T_k (stack world -> reference world, one per stack or per slice group), B_k is a Gaussian
// slice profile along the stack's slice axis (FWHM = slice thickness), D_k samples the stack's grid.
// x minimises sum_k ||A_k x - y_k||^2_W + lambda ||grad x||^2 (conjugate gradients on the normal
// equations); the motions minimise the same data term (Gauss-Newton with the exact derivative);
// the two alternate. Motions start from a rigid registration of each stack to the first.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "voxalign/image/image.hpp"

namespace voxalign {

/// Progress of superres: `stage` ("register 2/4", "reconstruct 1/4", "motion 1/3") and the
/// fraction of the whole run done.
struct SuperresProgress {
  std::string stage;
  double fraction = 0.0;
};

struct SuperresOptions {
  double resolution = 0.0;       ///< output voxel size in mm (0: the smallest in-plane spacing of the stacks)
  int iterations = 3;            ///< motion updates, each followed by a reconstruction
  double regularization = 0.05;  ///< weight lambda of ||grad x||^2 (voxel units of the output grid)
  int cg_iterations = 15;        ///< conjugate-gradient iterations per reconstruction
  int gn_iterations = 5;         ///< Gauss-Newton iterations per motion update (each motion group)
  bool slice_motion = false;     ///< one rigid motion per slice (group) instead of one per stack
  int slice_groups = 0;          ///< slice motion: 0 = one motion per slice; N = N interleaved groups (slice s in s mod N)
  bool outlier_rejection = true; ///< slice motion: down-weight slices whose residual is an outlier
  bool register_init = true;     ///< start the motions from a rigid registration of each stack to the first
  double max_memory_gb = 0.0;    ///< refuse when the estimate exceeds this (0: the machine's physical memory)
  bool residuals = false;        ///< also return each stack's residual y_k - A_k x of the final reconstruction
  std::function<void(const SuperresProgress&)> progress;
};

struct SuperresResult {
  Image<float> image; ///< the reconstruction on the output grid
  /// Per stack, per motion group (one group without slice motion): the RAS pull-back from the
  /// output's world to the stack's world (what resamples the stack into the reconstruction's frame).
  std::vector<std::vector<Mat4>> transforms;
  /// Per stack, the motion group of each slice (slice index along the stack's slice axis).
  std::vector<std::vector<int>> slice_group;
  std::vector<int> slice_axis;                  ///< per stack: its slice axis (0, 1, 2)
  std::vector<std::vector<double>> slice_weights; ///< per stack, per slice: the robust weight (1: inlier)
  /// Per stack, per slice: voxels whose data were used (profile inside the output grid and mask). A
  /// slice with none keeps its stack's motion.
  std::vector<std::vector<int64_t>> slice_voxels;
  std::vector<double> residual_rms;             ///< after each reconstruction: RMS of the weighted residuals
  /// With options.residuals, per stack: y_k - A_k x on the stack's own grid (its geometry), with the
  /// final motions and the reconstruction before the mask zeroes it. Voxels whose data were not used
  /// (weight 0: profile outside the output grid or mask) keep their residual; residual_rms leaves them out.
  std::vector<Image<float>> residuals;
  int cg_iterations = 0;                        ///< all reconstructions together
};

/// The output grid: the first stack's field of view and axes, voxels of `resolution` mm.
Geometry superres_grid(const Geometry& first, double resolution);

/// Estimated bytes a reconstruction needs (output grid `hr`, stacks `stacks`).
double superres_memory_bytes(const Geometry& hr, const std::vector<Geometry>& stacks);

/// Reconstruct. `stacks` are 3D images (2 at least, or 1 with slice motion); `mask` (optional, any
/// grid, in the first stack's world) restricts the data used to the voxels that touch it and zeroes
/// the output outside it. Throws InvalidArgument for 4D stacks, bad options, stacks that do not
/// overlap the first, and outputs whose memory estimate exceeds the limit.
SuperresResult superres(const std::vector<Image<float>>& stacks, const SuperresOptions& options,
                        const Image<float>* mask = nullptr);

/// Check the options alone (the CLI's and Python's first step).
void check_superres_options(const SuperresOptions& o);

} // namespace voxalign
