// Warping operators as linear maps with exact adjoints and derivatives (docs/warp.md).
//
// The warp of an image f (1-3 interpolated axes) is out(x) = f(p(x)) with p(x) = x + u(x) (a
// displacement field, voxels of the input) or p(x) = M x (an affine map, output voxel -> input
// voxel). f is interpolated by the spline core: M f = E_p P f with P the prefilter (identity for
// degrees 0, 1 and Keys) and E_p the evaluation at the points p(x). As linear operators the
// constant modes use cval = 0. The adjoint is the exact transpose P^T E_p^T; the scatter E_p^T is
// deterministic (no atomics; bit-identical for any thread count).
#pragma once
#include <cstdint>

#include "voxalign/core/names.hpp"
#include "voxalign/image/geometry.hpp"
#include "voxalign/image/image.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/spline/prefilter.hpp"

namespace voxalign {

/// Units of a displacement field's values: voxels of the warp's input along its i, j, k axes, or
/// world (RAS) millimetres (field_mm_to_voxels converts).
enum class FieldUnits { Voxel, Mm };
/// "voxel", "mm".
const NameTable<FieldUnits>& field_unit_names();

/// How an image is warped by a displacement field (`voxalign warp`): interpolation, boundary mode,
/// the field's units, and whether the exact adjoint is applied instead.
struct WarpOptions {
  int order = 3;                        ///< 0..7 (B-spline degree) or kKeys
  Mode mode = kResampleDefaultMode;
  FieldUnits units = FieldUnits::Voxel;
  bool adjoint = false;
};

/// Transpose of the evaluation at points: sets `coef` (the coefficient grid of an image of the
/// operator's input, carrying `coef.pad`; its previous values are ignored) to the sum over output
/// voxels x of y(x) * (the weights of p(x)). `y` is the output grid (dims[0..2]); `field`
/// (dims[3] = coef.ndim components, voxels) gives p(x) = x + u(x); when `field.data` is null,
/// `M` (4x4 row-major, output voxel -> input voxel) gives p(x) = M x instead.
template <class T>
void scatter_points(Coefficients<T>& coef, ImageView<const T> y, ImageView<const T> field, const double* M);

/// Adjoint of the displacement-field warp: g = P^T E_p^T y, on the input grid `out` (dims[0..2]).
template <class T>
void warp_displacement_adjoint(ImageView<const T> y, ImageView<const T> field, int ndim, int order, Mode mode,
                               ImageView<T> out);

/// Adjoint of the affine warp out(x) = f(M x) (M: 4x4 row-major, output voxel -> input voxel).
template <class T>
void warp_affine_adjoint(ImageView<const T> y, const double* M, int ndim, int order, Mode mode, ImageView<T> out);

/// Value and gradient of the interpolated image at the warped points: value(x) = f(p(x)) (when
/// value.data is not null) and grad(x, d) = (df/dx_d)(p(x)) in dims[3] = ndim components (per voxel
/// of the input). The derivative of the warp with respect to the field is grad(x) . du(x).
template <class T>
void warp_displacement_gradient(const Coefficients<T>& c, ImageView<const T> field, ImageView<T> value,
                                ImageView<T> grad);

/// JVP of the displacement-field warp with respect to the field: out(x) = grad f(p(x)) . du(x).
template <class T>
void warp_displacement_jvp(const Coefficients<T>& c, ImageView<const T> field, ImageView<const T> du,
                           ImageView<T> out);

/// VJP with respect to the field: out(x, d) = ybar(x) * (df/dx_d)(p(x)).
template <class T>
void warp_displacement_vjp(const Coefficients<T>& c, ImageView<const T> field, ImageView<const T> ybar,
                           ImageView<T> out);

/// Derivative of the affine warp out(x) = f(M x) along a change dM of the matrix (for example
/// d(matrix)/d(theta_j) from affine_model_jacobian): out(x) = grad f(M x) . (dM x).
template <class T>
void warp_affine_jvp(const Coefficients<T>& c, const double* M, const double* dM, ImageView<T> out);

/// The moments from which every affine-parameter VJP follows: G[4a + b] = sum_x ybar(x)
/// (df/dx_a)(M x) [i, j, k, 1]_b, so that d<ybar, warp>/d(theta_j) = sum_ab dM_j[a][b] G[4a + b].
/// Summed in fixed blocks: bit-identical for any thread count.
template <class T>
void warp_affine_moments(const Coefficients<T>& c, const double* M, ImageView<const T> ybar, double* G);

/// The evaluation matrix E_p of a warp in compressed sparse rows: row r = output voxel (x fastest),
/// columns = entries of the coefficient grid `coef_dims` (the input's dims plus 2*pad on
/// interpolated axes, x fastest), duplicate columns from folding merged, columns ascending. The warp
/// is E_p applied to spline_coefficients(f) (for degree 0, 1 and Keys the coefficients are f
/// itself). p(x) = x + u(x) from `field`, or M x when field.data is null.
struct CsrMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> indptr, indices;
  std::vector<double> data;
};
template <class T>
CsrMatrix warp_matrix(const int64_t* out_dims, const int64_t* coef_dims, int ndim, int order, Mode mode, int pad,
                      ImageView<const T> field, const double* M);

/// Inverse of a displacement field by fixed-point iteration: v(x) = -u(x + v(x)), u interpolated
/// with `order` (mode 'nearest'), until the largest update is below `tol` voxels or `iterations`
/// are done. Returns the number of iterations run; `inverse` (same dims as `field`) receives v.
template <class T>
int invert_displacement(ImageView<const T> field, int ndim, int order, int iterations, double tol, ImageView<T> inverse);

/// Central-difference gradient of an image (one-sided at the edges), per voxel: out(x, d) for
/// d < ndim. Used by the approximate derivative (the gradient of the warped image).
template <class T> void finite_difference_gradient(ImageView<const T> image, int ndim, ImageView<T> out);

/// A displacement field in world millimetres (RAS) on a grid with voxel->world `field_affine`, as
/// the input-voxel displacements the warps take, for an input image with voxel->world
/// `input_affine`: u_vox(x) = A_in^-1 (A_field x + u_mm(x)) - x (3 components in dims[3]). `u_vox` may
/// be `u_mm`'s memory (in place).
template <class T>
void field_mm_to_voxels(ImageView<const T> u_mm, const Mat4& field_affine, const Mat4& input_affine, ImageView<T> u_vox);

} // namespace voxalign
