// Internal pieces of the susceptibility correction (src/sdc): the separable cubic B-spline field,
// its bending energy, and one pyramid level's objective with its exact derivative. Exposed for the
// tests (derivative against finite differences) and the benchmark of exact vs approximate steps.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "voxalign/image/geometry.hpp"
#include "voxalign/spline/interpolate.hpp"

namespace voxalign::sdc_detail {

/// One axis of a tensor cubic B-spline: for each voxel its first control index and 4 weights, and
/// the weights' derivatives with respect to the full-resolution voxel coordinate.
struct AxisBasis {
  int64_t n = 1, nc = 1;
  std::vector<int64_t> start;
  std::vector<double> w, dw; ///< 4 per voxel
};

/// Control grid of `n_full` voxels at `spacing` (full-resolution voxels): count and placement.
struct ControlLayout {
  int64_t nc = 1;
  double origin = 0;   ///< full voxel coordinate of control point 1 (control k sits at origin + (k - 1) s)
  double spacing = 1;  ///< in full-resolution voxels
};
ControlLayout control_layout(int64_t n_full, double spacing_vox);

/// The axis of a level grid of `n` voxels whose voxel i lies at full coordinate f i + (f - 1) / 2.
AxisBasis make_axis(const ControlLayout& L, int64_t n, int factor);

/// Cubic B-spline field over a control grid; axis 0 is the phase-encoding axis. Coefficient
/// c0 + nc0 (c1 + nc1 c2); voxel i0 + n0 (i1 + n1 i2).
struct FieldBasis {
  AxisBasis ax[3];
  int64_t controls() const { return ax[0].nc * ax[1].nc * ax[2].nc; }
  int64_t voxels() const { return ax[0].n * ax[1].n * ax[2].n; }
  /// f = B c and, when fp is not null, fp = B' c (derivative along axis 0 per full voxel).
  void forward(const double* c, double* f, double* fp) const;
  /// out = B^T a + B'^T b (b may be null).
  void adjoint(const double* a, const double* b, double* out) const;
  /// out[k] = sum_y q0 B_k^2 + q1 B_k B'_k + q2 B'_k^2 (the diagonal of J^T J from its pieces).
  void adjoint_squared(const double* q0, const double* q1, const double* q2, double* out) const;
};

/// Bending energy 1/2 lambda sum (f_aa^2 + 2 f_ab^2) dV of the field from second differences of the
/// coefficients (control spacing h in mm).
struct Bending {
  int64_t nc[3] = {1, 1, 1};
  double h[3] = {1, 1, 1};
  double lambda = 0;
  double value(const double* c) const;
  /// out += lambda R c.
  void apply_add(const double* c, double* out) const;
  /// out += lambda diag(R).
  void diag_add(double* out) const;
};

/// One pyramid level: the two images' cubic coefficients along axis 0 and the field basis.
struct LevelProblem {
  FieldBasis basis;
  Bending bending;
  int64_t dims[3] = {1, 1, 1};
  std::vector<double> coef_up, coef_down; ///< prefiltered along axis 0 (mirror)
  std::vector<float> weight;              ///< per voxel (empty: 1 everywhere)
  double shift_up = 0, shift_down = 0;    ///< displacement in level voxels per Hz
  double jac_up = 0, jac_down = 0;        ///< d(displacement)/dy per (Hz per full voxel): +-readout
  double voxel_volume = 1;                ///< mm^3 of a level voxel (weight of the data term)
};

/// The objective's value and what the Gauss-Newton step needs.
struct Evaluation {
  double data = 0, reg = 0;
  std::vector<double> grad;       ///< d(data + reg)/dc
  std::vector<double> residual;   ///< sqrt(weight x voxel volume) x residual per voxel (with derivatives)
  std::vector<double> g1, g2;     ///< dr/dc = g1 B + g2 B' per voxel (weight folded in as sqrt)
  double cost() const { return data + reg; }
};

/// Evaluate at coefficients c. With `derivatives`, also the gradient and g1, g2.
/// `approximate`: the image's derivative along the line by a central finite difference (one voxel
/// each side) instead of the spline's exact one, the usual approximation (benchmark only).
Evaluation evaluate(const LevelProblem& P, const std::vector<double>& c, bool derivatives, bool approximate = false);

/// out = (J^T W J + lambda R) v, scratch buffers reused. With `Jm` (motion_jacobian), J has the
/// motion's kMotionFree columns after the field's: v and out hold the coefficients, then those.
void gauss_newton_apply(const LevelProblem& P, const Evaluation& E, const double* v, double* out,
                        std::vector<double>& s1, std::vector<double>& s2, const std::vector<double>* Jm = nullptr);

/// Sample line `coef` (n cubic coefficients, mirror) at x: value and derivative.
void sample_line(const double* coef, int64_t n, double x, double& v, double& dv);

/// DOWN's level image in its own frame for the rigid fit: cubic coefficients (mirror), and the level
/// grid in the internal mm frame (level voxel i at lsp (i + off) mm; full voxel i at spacing i mm).
struct MotionProblem {
  Coefficients<double> down;
  double lsp[3] = {1, 1, 1}, off[3] = {0, 0, 0};
  Vec3 centre{0, 0, 0};   ///< centre of rotation (mm): the full grid's centre
  double shift_mm = 0;    ///< DOWN's displacement along axis 0 in mm per Hz
};
/// The centre of rotation (internal mm): the full grid's centre.
Vec3 motion_centre(const int64_t* full_dims, const double* spacing);
MotionProblem make_motion_problem(const Image<float>& down_level, const int* factor, const double* spacing,
                                  const int64_t* full_dims, double shift_mm_per_hz);

/// The rigid pull-back (internal mm, UP's frame -> DOWN's): translation (mm) then Euler angles
/// (rad, R = Rz Ry Rx) about `centre`, as AffineModel{"translation", "rotation"}.
Mat4 rigid_matrix(const std::array<double, 6>& theta, const Vec3& centre);

/// DOWN's level image at M x for every voxel x of the level grid, prefiltered along axis 0 (what
/// LevelProblem::coef_down holds): DOWN brought into UP's frame before the line-wise fit.
std::vector<double> moved_down(const LevelProblem& P, const MotionProblem& Q, const Mat4& M);

/// sqrt(weight x voxel volume) x (A_up(x) - D(M(x + s T f(x) e_pe)) (1 + s T f'(x))) at every level
/// voxel, DOWN sampled in 3D: the residual whose derivative motion_jacobian gives (for the tests).
std::vector<double> motion_residuals(const LevelProblem& P, const MotionProblem& Q, const std::vector<double>& c,
                                     const std::array<double, 6>& theta);

/// Motion parameters fitted with the field: all but the translation along the PE axis (index 0).
constexpr int kMotionFree = 5;

/// The residual's derivative with respect to the free motion parameters (1..5) at every level voxel,
/// sqrt(weight x voxel volume) folded in as in Evaluation::g1/g2: row v at v * kMotionFree. With the
/// field's rows it makes the joint Gauss-Newton system of field and motion.
std::vector<double> motion_jacobian(const LevelProblem& P, const MotionProblem& Q, const std::vector<double>& c,
                                    const std::array<double, 6>& theta);
/// t[v] += Jm[v] . v_theta (the motion's part of J v).
void motion_rows_apply(const std::vector<double>& Jm, const double* v_theta, double* t);
/// out = Jm^T t (kMotionFree values; block-ordered sums).
void motion_rows_adjoint(const std::vector<double>& Jm, const double* t, double* out);

} // namespace voxalign::sdc_detail
