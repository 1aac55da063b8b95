#include "voxalign/image/geometry.hpp"

#include <limits>

#include "voxalign/core/error.hpp"

namespace voxalign {

Vec3 Geometry::spacing() const {
  return Vec3(affine.block<3, 1>(0, 0).norm(), affine.block<3, 1>(0, 1).norm(),
              affine.block<3, 1>(0, 2).norm());
}

Eigen::Vector4d Geometry::centre_voxel() const {
  return Eigen::Vector4d((dims[0] - 1) * 0.5, (dims[1] - 1) * 0.5, (dims[2] - 1) * 0.5, 1.0);
}

Vec3 Geometry::centre() const {
  const Eigen::Vector4d w = affine * centre_voxel();
  return Vec3(w[0], w[1], w[2]);
}

bool Geometry::same_grid(const Geometry& o, double tol) const {
  for (int d = 0; d < 3; ++d)
    if (dims[d] != o.dims[d]) return false;
  return (affine - o.affine).cwiseAbs().maxCoeff() <= tol;
}

void validate_dims(const std::array<int64_t, 4>& dims, int ndim) {
  VX_CHECK(ndim >= 1 && ndim <= 4, InvalidArgument, "images must have 1 to 4 dimensions, not ", ndim);
  int64_t total = 1;
  for (int d = 0; d < 4; ++d) {
    VX_CHECK(dims[d] >= 1, InvalidArgument, "dimension ", d, " is ", dims[d], " (must be positive)");
    VX_CHECK(total <= std::numeric_limits<int64_t>::max() / 8 / dims[d], InvalidArgument,
             "dimensions overflow (too many voxels)");
    total *= dims[d];
  }
}

} // namespace voxalign
