// Susceptibility distortion correction from a blip-up/blip-down pair (FSL topup's model; ImWIP's
// eq. 5-7): the field that makes the two images agree after each is pulled back along the
// phase-encoding axis and multiplied by the Jacobian of that pull-back. See docs/sdc.md.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "voxalign/image/image.hpp"
#include "voxalign/transform/displacement.hpp"

namespace voxalign {

/// A phase-encoding direction: a voxel axis (0, 1, 2 = BIDS i, j, k) and a sign (+1 or -1, BIDS "j-").
struct PhaseEncoding {
  int axis = 1;
  int sign = 1;
  bool operator==(const PhaseEncoding&) const = default;
};

/// "i", "j", "k", "i-", "j-", "k-" (BIDS PhaseEncodingDirection; "-j" and "y"/"y-" are accepted as
/// well). InvalidArgument naming `what` otherwise.
PhaseEncoding parse_phase_encoding(std::string_view text, const std::string& what);
/// The BIDS spelling ("j-").
std::string phase_encoding_name(PhaseEncoding pe);

/// One row of FSL topup's --datain file: the phase-encoding vector (one of +-x, +-y, +-z as voxel
/// axes i, j, k) and the total readout time in seconds.
struct AcquisitionRow {
  PhaseEncoding pe;
  double readout = 0;
};
/// Read a topup --datain (acquisition parameters) file: rows "0 1 0 0.05". Throws IoError naming
/// the file on anything else (a row that is not one unit axis and a positive readout time).
std::vector<AcquisitionRow> read_acquisition_parameters(const std::string& path);

struct SdcProgress {
  int level = 0;      ///< 0-based
  int iteration = 0;  ///< 1-based, within the level
  double cost = 0;    ///< objective after the iteration
};

/// Options; the per-level lists follow topup's configuration file (b02b0.cnf) and must have one
/// entry per level (the number of levels is warp_res.size()).
struct SdcOptions {
  /// Control-point spacing of the cubic B-spline field in mm, per level (topup --warpres).
  std::vector<double> warp_res{20, 14, 10, 6};
  /// Images subsampled by this integer factor at each level (topup --subsamp).
  std::vector<int> subsample{4, 2, 2, 1};
  /// FWHM of the Gaussian smoothing of the images in mm at each level (topup --fwhm).
  std::vector<double> fwhm{8, 4, 2, 0};
  /// Gauss-Newton iterations per level (topup --miter).
  std::vector<int> iterations{8, 8, 6, 4};
  /// Weight of the bending energy of the field (Hz) against the sum of squared differences of the
  /// intensity-normalised images, per level (topup --lambda, in other units: docs/sdc.md).
  std::vector<double> lambda{1e-4, 1e-4, 1e-4, 1e-3};
  /// 4D inputs: align each image's volumes rigidly (realign, to their mean) before averaging them.
  bool align_volumes = true;
  /// Estimate a rigid motion of DOWN relative to UP together with the field (topup --estmov): at
  /// each level Gauss-Newton steps on the field and the motion jointly (docs/sdc.md).
  bool motion = true;
  /// A level ends when a Gauss-Newton iteration lowers the cost by less than this fraction.
  double tolerance = 1e-4;
  /// Conjugate-gradient iterations per Gauss-Newton step, and its relative tolerance.
  int cg_iterations = 20;
  double cg_tolerance = 1e-3;
  /// Steps from the usual approximate derivative (the image's gradient by a central finite
  /// difference instead of the spline's exact one): for the benchmark's comparison.
  bool approximate = false;
  /// Called after each Gauss-Newton iteration (from the calling thread), if set.
  std::function<void(const SdcProgress&)> progress;
};

/// Throw InvalidArgument (naming the option) for options sdc() would refuse: lists of different
/// lengths, values out of range.
void check_sdc_options(const SdcOptions& options);

struct SdcLevelReport {
  int iterations = 0;
  int cg_iterations = 0;        ///< conjugate-gradient iterations, all Gauss-Newton steps together
  double initial_cost = 0, final_cost = 0;
  std::array<int64_t, 3> control_points{};
};

struct SdcReport {
  std::vector<SdcLevelReport> levels;
  /// The rigid motion found (motion on): translations (mm) along the internal axes (PE axis first,
  /// then the other two in order; the PE one is held at 0) and Euler angles (rad) about them.
  std::array<double, 6> motion_parameters{};
  double max_abs_jacobian_deficit = 0; ///< max over voxels of max(0, -(1 +- dd/dy)): 0 when nothing folds
};

struct SdcResult {
  Image<float> field;           ///< Hz, on the input grid (topup --fout's sign)
  Image<float> corrected_up, corrected_down, corrected; ///< each pulled back with its Jacobian; their mean
  /// DOWN's rigid motion relative to UP as a RAS pull-back (UP's world point -> DOWN's), identity
  /// without motion: `voxalign resample DOWN -t` of it lands on UP. corrected_down is on UP's frame.
  Mat4 motion = Mat4::Identity();
  SdcReport report;
};

/// Estimate the field from `up` and `down` (3D, or 4D: their frames are aligned (align_volumes) and
/// averaged; the corrected images are those means corrected), on one grid
/// `grid` (the voxel-to-world matrix gives the voxel sizes), acquired with phase encodings
/// `pe_up` and `pe_down` (same axis, opposite signs) and total readout times (s). `mask`
/// (optional, the grid's 3D size, non-zero = inside) restricts the voxels that drive the fit.
/// InvalidArgument on bad input. Deterministic for any thread count.
SdcResult sdc(ImageView<const float> up, ImageView<const float> down, const Geometry& grid, PhaseEncoding pe_up,
              double readout_up, PhaseEncoding pe_down, double readout_down, const ImageView<const uint8_t>* mask,
              const SdcOptions& options);

/// Correct `series` (3D or 4D, on the field's grid) acquired with `pe` and `readout`: each frame
/// pulled back along the phase-encoding axis by the field's displacement (cubic B-spline along the
/// line, mirror at the ends) and multiplied by the Jacobian.
Image<float> sdc_apply(ImageView<const float> series, ImageView<const float> field_hz, PhaseEncoding pe, double readout);

/// Motion and distortion in one interpolation (fMRIPrep's "one-shot"): an image on `grid` (the
/// field's grid) acquired with (pe, readout) and moved by a rigid/affine RAS pull-back M (reference
/// -> image) is sampled at M(x + u(x)), u the field's displacement (sdc_displacement), with `opts`,
/// and multiplied by the Jacobian 1 + s T df/dy at x. One implementation for sdc --apply-transforms,
/// sdc's corrected DOWN under motion and realign --fieldmap.
class SdcOneShot {
public:
  SdcOneShot(ImageView<const float> field_hz, const Geometry& grid, PhaseEncoding pe, double readout,
             const ResampleOptions& opts = {});
  /// One 3D frame `in` (on the grid) into the 3D view `out` (on the grid) through `pullback`.
  void frame(ImageView<const float> in, const Mat4& pullback, ImageView<float> out) const;

private:
  Geometry grid_;
  std::shared_ptr<const DisplacementField> disp_;
  Image<float> jacobian_;
  ResampleOptions opts_;
};

/// One-shot motion and distortion correction of `series` (4D, on `grid`, the field's grid) with
/// realign's per-frame RAS pull-backs (reference -> frame t): frame t is sampled at
/// pullbacks[t](x + u(x)), u the field's displacement for (pe, readout) as sdc_displacement gives
/// it, with `opts` (one interpolation), and multiplied by the Jacobian 1 + s T df/dy at x.
Image<float> sdc_apply_with_motion(ImageView<const float> series, ImageView<const float> field_hz, const Geometry& grid,
                                   PhaseEncoding pe, double readout, const std::vector<Mat4>& pullbacks,
                                   const ResampleOptions& opts = {});

/// The per-frame transforms of an ITK transform text file with one "#Transform t" per frame (realign
/// --save-transforms, fMRIPrep's desc-hmc_xfm.txt), as RAS pull-backs. IoError naming the file.
std::vector<Mat4> read_frame_transforms(const std::string& path);

/// The pull-back of `sdc_apply` as a displacement field in RAS mm on `grid` (corrected point ->
/// distorted point): u = grid's column `pe.axis` x pe.sign x readout x field. No Jacobian: a
/// resampler that applies it moves intensities without modulating them.
DisplacementField sdc_displacement(ImageView<const float> field_hz, const Geometry& grid, PhaseEncoding pe,
                                   double readout);

/// What the report shows beside the result: the inputs (3D or 4D views) and how they were acquired.
struct SdcReportInput {
  ImageView<const float> up, down;
  std::string up_name, down_name;
  PhaseEncoding pe_up, pe_down;
  double readout_up = 0, readout_down = 0, seconds = 0;
};

/// Write DIR/index.html (self-contained) with green (UP) / magenta (DOWN) overlays before and after
/// the correction and the field, through the voxel where the field is strongest, plus the images as
/// DIR/overlay_before.png, overlay_after.png and fieldmap.png.
void write_sdc_report(const std::string& dir, const SdcReportInput& in, const SdcResult& r);


} // namespace voxalign
