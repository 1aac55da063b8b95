// Rigid / similarity / affine registration of 2D and 3D images in world space (docs/register.md).
//
// The transform is a pull-back in RAS+ millimetres, fixed world point -> moving world point:
//   T(x) = T0 * (c + t + L (x - c)),  L = R Z S (rotation, zoom or isotropic scale, shear),
// with c the centre of rotation (the fixed image's geometric centre or centre of mass), T0 an
// optional initial transform (identity unless given), and the parameters theta = (t, angles, ...)
// of an AffineModel in world mm. The moving image is interpolated by prefiltered B-splines with
// exact gradients; each metric produces d(metric)/d(moving value) per sample, and the chain rule
// through the transform's exact parameter Jacobian happens in one place (register.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "voxalign/core/names.hpp"
#include "voxalign/image/image.hpp"
#include "voxalign/warp/affine_params.hpp"

namespace voxalign {

/// The parameter groups estimated: translation (3 parameters; 2D: 2), rigid (+ rotation: 6; 3),
/// similarity (+ isotropic scale: 7; 4), affine (+ zooms and shears: 12; 6). Syn: rigid, affine, then
/// deformable (register_deformable in register/syn.hpp; register_images refuses it).
enum class TransformType { Translation, Rigid, Similarity, Affine, Syn };
/// ssd: sum of squared differences; ncc: normalised cross-correlation; lncc: local NCC in windows;
/// mi: Mattes mutual information.
enum class Metric { SSD, NCC, LNCC, MI };
/// auto: gn for ssd, lbfgs otherwise; gn: Gauss-Newton (ssd only); lbfgs; gd: gradient descent; adam.
enum class Optimizer { Auto, GaussNewton, LBFGS, GradientDescent, Adam };
/// The start of the estimation without an initial matrix: geometric centres aligned, centres of
/// mass aligned (rotations about the fixed image's), or the identity.
enum class RegisterInit { Center, Moments, Identity };

/// Their names (translation, rigid, similarity, affine, syn; ssd, ncc, lncc, mi; auto, gn, lbfgs, gd, adam; center, moments, identity).
const NameTable<TransformType>& transform_names();
const NameTable<Metric>& metric_names();
const NameTable<Optimizer>& optimizer_names();
const NameTable<RegisterInit>& init_names();

struct RegisterOptions {
  TransformType transform = TransformType::Rigid;
  Metric metric = Metric::SSD;
  std::vector<int> levels{4, 2, 1};  ///< shrink factors, coarse to fine (a factor may repeat: continuation)
  /// Gaussian smoothing per level, sigma in mm (applied to both images before shrinking). Empty:
  /// sigma = shrink / 2 fixed voxels for shrink > 1 and none at 1 (ANTs' 4x2x1 / 2x1x0vox).
  std::vector<double> smoothing;
  Optimizer optimizer = Optimizer::Auto;
  std::vector<int> iterations;       ///< max iterations per level (empty: 40 for gn, 100 for the others)
  RegisterInit init = RegisterInit::Center; ///< ignored when has_init_matrix
  bool has_init_matrix = false;      ///< start from init_matrix (a RAS pull-back), refine T0 * T(theta)
  Mat4 init_matrix = Mat4::Identity();
  std::vector<std::string> freeze;   ///< parameter groups held at their start: translation, rotation, scale/zoom, shear
  int degree = 3;                    ///< B-spline degree of the moving image during estimation (1..5)
  int64_t max_samples = 1 << 16;     ///< per level: the fixed grid is subsampled on a regular stride above this
  /// Fill (voxels exactly 0: where a resampler had no data, a cut field of view, or a zeroed
  /// background) is not compared: fixed voxels that are 0 are no samples, and samples whose moving
  /// interpolation stencil (degree / 2 + 1 level voxels about the nearest one) touches a moving voxel
  /// that is 0 are left out (docs/register.md, "Samples near the moving image's edges"). ssd, ncc and
  /// mi; lncc compares every voxel.
  bool skip_fill = true;
  int bins = 32;                     ///< mi: histogram bins
  int radius = 2;                    ///< lncc: window radius in voxels of the level's grid
  double tolerance = 1e-3;           ///< stop a level when a step moves no point of the fixed samples by more (mm)
  double learning_rate = 0.5;        ///< adam: step in mm (rotations scaled by the image radius)
};

struct RegisterLevel {
  int shrink = 1;
  double sigma_mm = 0.0;
  int64_t samples = 0;
  int iterations = 0;
  double metric = 0.0; ///< at the level's end (ssd: 0.5 mean squared difference; ncc, lncc, mi: minus the similarity)
};

struct RegisterResult {
  Mat4 matrix = Mat4::Identity(); ///< RAS pull-back fixed world -> moving world (T0 * T(theta))
  Mat4 init = Mat4::Identity();   ///< T0
  AffineModel model;              ///< groups and centre (mm) of T(theta)
  std::vector<double> parameters; ///< theta: translations mm, angles rad, scale/zoom/shear unitless
  std::vector<std::string> names;
  double metric = 0.0;            ///< at the end of the finest level
  std::vector<RegisterLevel> levels;
};

/// Progress of register_images, reported after every evaluation of the metric (on the calling thread).
struct RegisterStep {
  int level = 0;          ///< 0-based, coarse to fine
  int levels = 1;
  int evaluation = 0;     ///< evaluations of the metric so far at this level (line searches may pass max_iterations)
  int max_iterations = 0; ///< the level's iteration limit
  double metric = 0.0;
};
using RegisterProgress = std::function<void(const RegisterStep&)>;

/// Register `moving` to `fixed` (3D images, or 2D: a third axis of length 1; both the same
/// dimensionality). Masks (optional, may be null) live on their image's grid; non-zero = use.
/// Throws InvalidArgument for bad options, 4D images, masks on another grid, masks that leave
/// nothing, or no overlap between the images.
RegisterResult register_images(const Image<float>& fixed, const Image<float>& moving, const RegisterOptions& opts,
                               const Image<float>* fixed_mask = nullptr, const Image<float>* moving_mask = nullptr,
                               const RegisterProgress& progress = {});

/// The AffineModel groups of a transform type.
std::vector<std::string> transform_groups(TransformType transform);

/// The parameters with their units, group by group, for people: "translation (x, y, z) mm, rotation
/// (a, b, c) deg" (Euler angles as in docs/register.md), then "scale s", "zoom (x, y, z)" (factors)
/// and "shear (xy, xz, yz)" where the transform has them.
std::string parameter_summary(const RegisterResult& result);

/// Internal pieces exposed for tests and the Python bindings.
namespace reg {

/// Gaussian smoothing (sigma per axis in voxels; 0 = none), separable, truncated at 4 sigma,
/// 'nearest' boundary. 3D (or 2D with dims[2] = 1).
Image<float> gaussian_smooth(const Image<float>& in, const double sigma_vox[3]);

/// Shrink by an integer factor: sample the (already smoothed) image at voxel centres s*i + (s-1)/2
/// by linear interpolation (axes of length 1 are kept); the geometry follows.
Image<float> shrink_image(const Image<float>& in, int factor);

/// gaussian_smooth followed by shrink_image, computed axis by axis with the decimation folded
/// into each pass (what the registration pyramid uses).
Image<float> smooth_shrink(const Image<float>& in, const double sigma_vox[3], int factor);

/// The metric and its gradient w.r.t. the parameters of `model` at theta, with the fixed image
/// sampled on its own grid (every voxel in the mask) and the moving interpolated with `degree`:
/// the same function the optimiser minimises at one level (no pyramid). For tests of the gradient.
double metric_value_and_gradient(const Image<float>& fixed, const Image<float>& moving, const AffineModel& model,
                                 const Mat4& init, const std::vector<double>& theta, const RegisterOptions& opts,
                                 std::vector<double>* gradient, const Image<float>* fixed_mask = nullptr,
                                 const Image<float>* moving_mask = nullptr);

} // namespace reg

} // namespace voxalign
