// The forward model of superres (docs/superres.md), shared by superres.cpp and the tests: one
// stack's operator A = D B W(T), its exact adjoint, and the Gauss-Newton normal equations of a
// motion group's rigid parameters.
#pragma once
#include <vector>

#include "voxalign/image/image.hpp"
#include "voxalign/spline/prefilter.hpp"

namespace voxalign::superres_detail {

/// One stack as the model sees it: voxels reordered to (in-plane a, in-plane b, slice s), each
/// slice sampled at `nq` points along its normal (the fine grid, slice s's points contiguous).
struct StackModel {
  Image<float> y;                ///< the stack's values, dims (na, nb, ns)
  Mat4 vox2world;                ///< (a, b, s) -> world
  int slice_axis = 2;            ///< of the original stack
  int nq = 1;                    ///< profile samples per slice
  double dq = 0;                 ///< their step, in slices
  std::vector<double> profile;   ///< their weights (sum 1)
  std::vector<int> group;        ///< slice -> motion group
  int ngroups = 1;
  std::vector<Mat4> motion;      ///< per group: stack world -> reference world
  Image<float> field;            ///< (na, nb, ns * nq, 3): displacement in output voxels
  std::vector<float> weight;     ///< per stack voxel: the data weight
  int64_t voxels() const { return y.size(); }
  int64_t slices() const { return y.geometry().dims[2]; }
  int64_t slice_size() const { return y.geometry().dims[0] * y.geometry().dims[1]; }
};

/// Build a stack's model: reorder, choose the profile samples (step <= `fine_mm`, +-3 sigma), one
/// group (motions identity).
StackModel make_stack(const Image<float>& stack, double fine_mm);

/// `v` (one value per stack voxel, the model's order) on the stack's own grid `g` (make_stack's inverse).
Image<float> on_stack_grid(const StackModel& m, const float* v, const Geometry& g);

/// World position of fine point (a, b, slice s, sample q).
inline Vec3 fine_world(const StackModel& m, int64_t a, int64_t b, int64_t s, int q) {
  const double z = double(s) + (q - 0.5 * (m.nq - 1)) * m.dq;
  return m.vox2world.topLeftCorner<3, 3>() * Vec3(double(a), double(b), z) + m.vox2world.topRightCorner<3, 1>();
}

/// Recompute the field of slice s from its group's motion, for the output grid's world->voxel `w2v`.
void update_slice_field(StackModel& m, const Mat4& w2v, int64_t s);
void update_field(StackModel& m, const Mat4& w2v);

/// Coefficients of an output image for the model's warps (linear, zero outside).
Coefficients<float> model_coefficients(ImageView<const float> x);

/// out (stack voxels) = A x. `fine` is scratch (resized as needed).
void apply_forward(const StackModel& m, const Coefficients<float>& x, float* out, std::vector<float>& fine);
/// out (output grid, overwritten) = A^T ybar.
void apply_adjoint(const StackModel& m, const float* ybar, ImageView<float> out, std::vector<float>& fine);

/// Cost 0.5 sum_v weight (A x - y)^2 over the slices of `slices` with their motion
/// Rigid(theta; centre) * T0, and the normal equations J^T W J (6x6), J^T W r of theta
/// (translation mm, Euler angles rad as AffineModel's rigid groups). The model's field is not changed.
double motion_normal_equations(const StackModel& m, const Mat4& w2v, const Coefficients<float>& x,
                               const std::vector<int64_t>& slices, const Mat4& T0, const Vec3& centre,
                               const double* theta, double* JtJ, double* Jtr);

/// Rigid(theta; centre) as a 4x4 (world -> world), and its derivatives.
Mat4 rigid_matrix(const double* theta, const Vec3& centre);

} // namespace voxalign::superres_detail
