// Image grid geometry: dimensions in NIfTI order (i fastest, then j, k, t) and the voxel->world
// matrix (NIfTI RAS+ millimetres).
#pragma once
#include <Eigen/Dense>
#include <array>
#include <cstdint>

namespace voxalign {

using Mat4 = Eigen::Matrix4d;
using Vec3 = Eigen::Vector3d;

struct Geometry {
  int ndim = 3;                          ///< 1..4 meaningful dimensions
  std::array<int64_t, 4> dims{1, 1, 1, 1}; ///< dims beyond ndim are 1
  Mat4 affine = Mat4::Identity();        ///< voxel (i,j,k,1) -> world (x,y,z,1), RAS+ mm
  double time_step = 1.0;                ///< seconds between frames (pixdim[4]) for 4D images

  /// Number of voxels in one 3D frame.
  int64_t frame_size() const { return dims[0] * dims[1] * dims[2]; }
  /// Number of frames (dims[3]).
  int64_t frames() const { return dims[3]; }
  /// Total number of voxels.
  int64_t size() const { return frame_size() * dims[3]; }
  /// Voxel sizes along i, j, k in mm (norms of the affine's columns).
  Vec3 spacing() const;
  /// The grid's centre (n - 1) / 2 on each axis, in voxels (homogeneous) and in world mm.
  Eigen::Vector4d centre_voxel() const;
  Vec3 centre() const;
  /// Same spatial grid (dims 0..2 equal, affines equal within tol mm).
  bool same_grid(const Geometry& other, double tol = 1e-4) const;
};

/// Check that dims are positive and their product does not overflow; throws InvalidArgument.
void validate_dims(const std::array<int64_t, 4>& dims, int ndim);

} // namespace voxalign
