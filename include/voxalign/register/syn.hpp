// Greedy symmetric diffeomorphic registration (SyN, Avants et al. 2008, in its greedy form as in ANTs
// and greedy; docs/register.md, "Deformable registration").
//
// Two displacement fields on the fixed grid (the virtual, half-way domain), both in RAS mm:
//   phi1(x) = x + u1(x)   virtual -> fixed world,
//   phi2(x) = x + u2(x)   virtual -> world before the affine A (moving point = A phi2(x)).
// Each iteration compares F(phi1(x)) with M(A phi2(x)) by the metric E (ssd, lncc or mi), takes its exact
// gradient with respect to u1 and u2 (the B-spline image gradients at the warped points), smooths it by
// a Gaussian (update_sigma), scales it to a largest displacement of `step` voxels, composes it onto
// the field (u <- d + u o (id + d), greedy's compositive update), and smooths the field (total_sigma).
// At the end the deformable part fixed point -> pre-affine point is D = phi2 o phi1^-1, with
// phi1^-1 by fixed-point iteration; the moving point of fixed point y is A D(y).
#pragma once
#include <vector>

#include "voxalign/register/register.hpp"
#include "voxalign/transform/displacement.hpp"

namespace voxalign {

struct SynOptions {
  Metric metric = Metric::LNCC;      ///< lncc (ANTs' CC), ssd or mi
  int radius = 2;                    ///< lncc: window radius in voxels of the level's grid (ANTs CC[...,2])
  int bins = 32;                     ///< mi: histogram bins per image
  /// Shrink factors, coarse to fine. Empty: from the fixed voxel size (syn_levels): the finest level
  /// at about 2 mm, then 2x and 4x coarser (8,4,2 at 1 mm; 4,2,1 at 2 mm).
  std::vector<int> levels;
  /// Gaussian smoothing of the images per level, sigma in mm. Empty: shrink / 2 fixed voxels for
  /// shrink > 1, none at 1 (antsRegistrationSyN.sh's 8x4x2x1 / 3x2x1x0vox, without its 8).
  std::vector<double> smoothing;
  std::vector<int> iterations{60, 40, 10}; ///< per level (one value: every level)
  double step = 0.25;                ///< largest update per iteration, voxels of the level (SyN[step, ., .])
  double update_sigma = 1.732;       ///< Gaussian of the update, voxels (ANTs: sqrt(updateFieldVariance 3); greedy -s 1st)
  double total_sigma = 0.7071;       ///< Gaussian of the field, voxels (ANTs: sqrt(totalFieldVariance); greedy -s 2nd)
  int degree = 3;                    ///< B-spline degree of both images during estimation (1..5)
  /// Stop a level when the metric improved by less than this (relative) over the last 10 iterations.
  double convergence = 1e-6;
};

struct SynResult {
  DisplacementField forward; ///< on the fixed grid: fixed point y -> y + u(y), the point before the affine
  DisplacementField inverse; ///< on the fixed grid: z -> z + v(z), the inverse of the forward map
  double metric = 0.0;       ///< at the end of the finest level (ssd: 0.5 mean squared difference; lncc: -mean CC)
  std::vector<RegisterLevel> levels;
};

/// The shrink factors SyN runs on `fixed`'s grid: opts.levels, or when empty the finest factor
/// max(1, round(2 mm / smallest voxel size)) and 2x, 4x that, each capped so that the level keeps
/// at least 8 voxels along the image's shortest axis.
std::vector<int> syn_levels(const SynOptions& opts, const Geometry& fixed);

/// Register `moving` to `fixed` (3D) deformably after the affine pull-back `affine` (RAS, fixed world
/// -> moving world; the identity when there is no affine stage). `fixed_mask` (on the fixed grid;
/// non-zero = in) restricts the metric to the voxels of the virtual grid inside it. Throws
/// InvalidArgument for bad options, non-3D images, an empty mask or a mask on another grid, or
/// images that do not overlap at `affine`.
SynResult register_syn(const Image<float>& fixed, const Image<float>& moving, const Mat4& affine, const SynOptions& opts,
                       const RegisterProgress& progress = {}, const Image<float>* fixed_mask = nullptr);

/// antsRegistrationSyN.sh's sequence: rigid, then affine (both register_images with `affine_opts`, its
/// transform ignored; the rigid stage starts from affine_opts' init), then register_syn from that
/// affine. Both masks are used by the affine stages, the fixed mask by SyN too. Progress: the affine stages report levels 0..2n-1 of
/// `levels` = 2n + syn levels, SyN the rest.
struct DeformableResult {
  RegisterResult affine; ///< the affine stage (its matrix is the affine the SyN fields follow)
  SynResult syn;
};
DeformableResult register_deformable(const Image<float>& fixed, const Image<float>& moving,
                                     const RegisterOptions& affine_opts, const SynOptions& opts,
                                     const Image<float>* fixed_mask = nullptr, const Image<float>* moving_mask = nullptr,
                                     const RegisterProgress& progress = {});

/// det(I + du/dx) of a displacement field (RAS mm) by central differences (one-sided at the edges).
Image<float> jacobian_determinant(const DisplacementField& f);

namespace syn {
/// The metric of SynOptions at one level with no pyramid: F(x + u1(x)) against M(A (x + u2(x))) on
/// F's grid (fields in RAS mm, 3 components, on F's grid), and its exact gradients dE/du1, dE/du2
/// (when not null; same layout), over the voxels inside `mask` (F's grid) when given. For tests of the gradient.
double metric_and_gradient(const Image<float>& F, const Image<float>& M, const Mat4& affine, const Image<float>& u1,
                           const Image<float>& u2, const SynOptions& opts, Image<float>* g1, Image<float>* g2,
                           const Image<float>* mask = nullptr);
} // namespace syn

} // namespace voxalign
