// Parameterised affine maps of voxel coordinates and their exact parameter Jacobians.
//
// p(x) = c + t + L (x - c), L = R Z S  (rotation, zoom, shear; each group optional), or
// L = I + Theta with the 'matrix' group (all ndim^2 entries free). c is the centre of rotation
// (default: the geometric centre (n - 1) / 2 of the input grid). At parameters 0 every map is the
// identity. Parameters, in the order of the groups given:
//   translation  ndim values (voxels)
//   rotation     3D: Euler angles (rx, ry, rz), R = Rz Ry Rx (radians); 2D: one angle
//   versor       3D only: the vector part v of the unit quaternion (sqrt(1 - |v|^2), v), as ITK's
//                VersorRigid3DTransform parameterises rotations
//   scale        one value: isotropic scale 1 + value (similarity transforms)
//   zoom         ndim values, scale 1 + value along each axis
//   shear        3D: (xy, xz, yz), S = [[1, xy, xz], [0, 1, yz], [0, 0, 1]]; 2D: one value
//   matrix       ndim^2 values (row-major), L = I + Theta
// Derivatives are computed by forward-mode automatic differentiation (dual numbers): exact.
#pragma once
#include <string>
#include <vector>

#include "voxalign/image/geometry.hpp"

namespace voxalign {

struct AffineModel {
  int ndim = 3;
  std::vector<std::string> groups{"translation", "rotation"};
  Vec3 centre{0, 0, 0}; ///< centre of rotation, voxels of the input grid

  /// Number of parameters (sum over the groups). Throws InvalidArgument for unknown or
  /// incompatible groups.
  int size() const;
  /// Parameter names, e.g. "translation_x", "rotation_z".
  std::vector<std::string> names() const;
};

/// Number of parameters of one group ("translation", "rotation", ...) in ndim dimensions; throws
/// InvalidArgument for unknown or incompatible groups.
int affine_group_size(const std::string& group, int ndim);

/// The 4x4 output-voxel -> input-voxel matrix for parameters theta (model.size() values).
Mat4 affine_model_matrix(const AffineModel& m, const std::vector<double>& theta);

/// d(matrix)/d(theta_j) for every parameter j (each a 4x4 with a zero last row).
std::vector<Mat4> affine_model_jacobian(const AffineModel& m, const std::vector<double>& theta);

} // namespace voxalign
