// Internal to the library (register and realign use it; not a stable API): one pyramid level of a
// registration (fixed samples + moving coefficients) and the evaluation of every metric with its
// exact gradient with respect to the voxel->voxel matrix.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "voxalign/image/image.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/solve/solvers.hpp"
#include "voxalign/spline/prefilter.hpp"
#include <Eigen/Dense>

namespace voxalign::reg {

/// The cubic B-spline Parzen window of the mutual-information histograms (Mattes' metric and SyN's
/// mi) and its derivative.
inline double beta3(double t) {
  t = std::abs(t);
  if (t < 1) return 2.0 / 3.0 - t * t + 0.5 * t * t * t;
  if (t < 2) return (2 - t) * (2 - t) * (2 - t) / 6.0;
  return 0.0;
}
inline double dbeta3(double t) {
  const double a = std::abs(t);
  if (a < 1) return -2 * t + 1.5 * t * a;
  if (a < 2) return -0.5 * (2 - a) * (2 - a) * (t > 0 ? 1 : -1);
  return 0.0;
}


/// Moving values and gradients at the samples (buffers reused across evaluations).
struct Samples {
  std::vector<float> m, g; ///< value, gradient (3 per sample, voxel units of the moving level)
  std::vector<uint8_t> ok;
};

/// One bit per voxel of a level grid, rows of W 64-bit words (bit i % 64 of word i / 64 of row
/// j + ny k): 1 when no fill voxel lies within r voxels along each axis (a box). Empty bits: no fill.
struct FillMap {
  std::vector<uint64_t> bits;
  int64_t nx = 0, ny = 0, W = 0;
  bool clean(int64_t i, int64_t j, int64_t k) const {
    return (bits[static_cast<size_t>(W * (j + ny * k) + (i >> 6))] >> (i & 63)) & 1u;
  }
};

/// The fill map of a level image: a level voxel is fill when its nearest voxel of `full_image`
/// (the full-resolution image, on `full`) is exactly 0; eroded by a box of radius r (2D: r along i, j).
FillMap fill_map(const Image<float>& level, const Geometry& full, const Image<float>& full_image, int ndim, int r);

struct Level {
  int ndim = 3;                 ///< 2 or 3
  // Fixed samples: voxel coordinates on the fixed level grid and their values.
  std::vector<float> pos;       ///< 3 per sample
  std::vector<float> fval;
  int64_t count = 0;
  // Dense sampling (lncc): every voxel of the level grid, in order; `inmask` per voxel.
  bool dense = false;
  int64_t dims[3] = {1, 1, 1};
  std::vector<uint8_t> inmask;
  Mat4 fixed_affine = Mat4::Identity();  ///< fixed level voxel -> world
  // Moving image at this level.
  Coefficients<float> coef;
  Mat4 moving_affine = Mat4::Identity(); ///< moving level voxel -> world
  const Image<float>* moving_mask = nullptr; ///< full resolution moving mask (or null)
  /// Moving fill map (fill_map): a sample counts only where its nearest moving level voxel is clean.
  FillMap mfill;
  Mat4 level_to_mask = Mat4::Identity(); ///< moving level voxel -> full resolution moving voxel
  double fmin = 0, fmax = 1, mmin = 0, mmax = 1; ///< intensity ranges (mi)
  double mvar = 1;              ///< variance of the moving level image (lncc's regularisation)
  int bins = 32, radius = 2;
  mutable Samples scratch;      ///< evaluation buffers (one evaluation of a level at a time)
};

/// Metric value, gradient G[a * (ndim + 1) + b] = dE/dMvox(a, b) (a < ndim, b <= ndim; b = ndim
/// is the translation column) and, for ssd, the Gauss-Newton matrix over the same basis.
struct Evaluation {
  double value = 0.0;
  int64_t valid = 0;
  std::vector<double> G;
  std::vector<double> H; ///< nb x nb, ssd only when requested
};

/// Evaluate the metric at the voxel->voxel pull-back Mvox (fixed level voxel -> moving level voxel).
Evaluation evaluate_metric(const Level& L, Metric metric, const Mat4& Mvox, bool gradient, bool gauss_newton);

/// Smoothed (Gaussian, sigma in mm) and shrunk copies of an image, cached; each new one is derived
/// from the coarsest cached copy whose factor divides its own and that is no smoother (the
/// remaining sigma is sqrt(sigma^2 - sigma0^2)), so request levels fine to coarse.
class Pyramid {
public:
  explicit Pyramid(const Image<float>& base) : base_(base) {}
  const Image<float>& get(int shrink, double sigma_mm);

private:
  struct Entry {
    int shrink;
    double sigma;
    std::unique_ptr<Image<float>> image;
  };
  const Image<float>& base_;
  std::vector<Entry> cache_;
};

/// The shrink factor of the moving image that brings its spacing nearest the fixed level's.
int moving_shrink(const Geometry& fixed, const Geometry& moving, int shrink);

/// How many fixed voxels on a lattice of `step` voxels the voxel map `M` (fixed voxel -> moving voxel)
/// sends inside the moving grid (axes of one voxel count as inside): {inside, total}.
std::pair<int64_t, int64_t> voxels_inside(const Geometry& fixed, const Geometry& moving, const Mat4& M, int64_t step);

/// Build a level from the level images F and M (pyramid copies of the full-resolution images
/// whose geometries are fixed_full / moving_full; masks live on those full grids): samples in the
/// fixed mask on a stride so that at most max_samples remain (dense for lncc), moving coefficients.
/// fixed_image, moving_image: the full-resolution images, whose zero voxels are fill (o.skip_fill): fixed
/// samples whose nearest full-resolution voxel is fill, and samples whose moving stencil reaches fill,
/// are left out; null: no fill test on that side.
Level make_level(const Image<float>& F, const Image<float>& M, const Geometry& fixed_full, const Image<float>* fixed_mask,
                 const Geometry& moving_full, const Image<float>* moving_mask, Metric metric,
                 const RegisterOptions& o, const Image<float>* fixed_image = nullptr,
                 const Image<float>* moving_image = nullptr);

/// A parameterised transform being estimated: T = T0 * affine_model_matrix(model, theta).
struct Problem {
  AffineModel model;
  Mat4 T0 = Mat4::Identity();
  std::vector<double> theta;   ///< full parameter vector (frozen entries stay as they are)
  std::vector<int> free;       ///< indices of the optimised parameters
  std::vector<double> scale;   ///< per parameter: scaled = theta * scale (translations 1, others the radius)
  Metric metric = Metric::SSD;
};

/// Value, gradient w.r.t. the full theta and (ssd) the Gauss-Newton matrix at theta.
struct ParamEval {
  double value = 0;
  int64_t valid = 0;
  std::vector<double> grad;            ///< d value / d theta (all parameters)
  Eigen::MatrixXd JtJ;                 ///< over all parameters
};

/// The metric of level L at theta, with the chain rule through the model's exact Jacobian.
ParamEval eval_params(const Level& L, const Problem& P, const std::vector<double>& theta, bool grad, bool gn);

/// RMS distance (mm, at least 1) of the level's fixed samples from `centre` (world): the scale that
/// turns rotations, scales and shears into about-millimetre units.
double sample_radius(const Level& L, const Vec3& centre);

/// Fewest valid samples an evaluation may have (1 % of the usable ones, at least 16); below it
/// the cost is +inf (the transform has left the overlap).
int64_t min_valid_samples(const Level& L);

/// Optimise P.theta (its free entries, scaled) on one level with optimizer `opt` (not Auto) for at most `iters`
/// iterations; level_spacing (mm) bounds L-BFGS steps and scales Adam's.
SolveResult optimise_level(const Level& L, Problem& P, Optimizer opt, int iters, const RegisterOptions& o,
                           double level_spacing, const std::function<void(int evaluation, double metric)>& progress);

} // namespace voxalign::reg
