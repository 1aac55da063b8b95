// Private helpers shared by the warp operators' translation units (src/warp/*.cpp): the input point of
// an output voxel, the grid check, the coordinates of 8 voxels at once and the scatter's entry point.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "voxalign/kernel/cpu/evaluate.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/spline/point_map.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign {
namespace warp_detail {

constexpr int64_t kRowGrain = 64; // output rows per block

/// The input point of output voxel (i, j, k): x + u(x), or M x when there is no field.
template <class T> struct PointOf {
  ImageView<const T> field;
  const double* M;
  int nd;
  void operator()(int64_t i, int64_t j, int64_t k, double* x) const {
    if (field.data) {
      const int64_t o = field.offset(i, j, k);
      const int64_t idx[3] = {i, j, k};
      for (int d = 0; d < nd; ++d) x[d] = double(idx[d]) + double(field.data[o + d * field.strides[3]]);
    } else {
      for (int d = 0; d < nd; ++d)
        x[d] = affine_point(M + 4 * d, i, j, k); // as the forward warp rounds it
    }
  }
};

#ifdef VX_HAVE_AVX2_TAPS
/// Coordinates xs[d][p] of the voxels (i0 + min(p, m - 1), j, k), p < 8: field loads as vectors
/// when the field is contiguous along i and all 8 exist, else point by point.
template <int D, class T>
void coords_x8(const PointOf<T>& point, bool vec_field, int64_t i0, int m, int64_t j, int64_t k, double (*xs)[8]) {
  if (vec_field && m == 8) {
    detail::field_coords_x8<D>(point.field.data + point.field.offset(i0, j, k), point.field.strides[3], i0, j, k, xs);
    return;
  }
  double x[3];
  for (int p = 0; p < 8; ++p) {
    point(i0 + std::min(p, m - 1), j, k, x);
    for (int d = 0; d < D; ++d) xs[d][p] = x[d];
  }
}
#endif

template <class T> void check_output_grid(ImageView<const T> field, const int64_t* dims, int nd, const char* what) {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(field.dims[d] == dims[d], InvalidArgument, what, ": displacement field grid (axis ", d, ": ", field.dims[d],
             ") differs from the output grid (", dims[d], ")");
  VX_CHECK(field.dims[3] == nd, InvalidArgument, what, ": displacement field has ", field.dims[3],
           " components; expected ", nd);
}

} // namespace warp_detail

/// scatter_points on a contiguous coefficient grid of dims gdims (overwritten).
template <class T>
void scatter_grid(T* c, const int64_t* gdims, int nd, int order, Mode mode, int pad, ImageView<const T> y,
                  ImageView<const T> field, const double* M);

} // namespace voxalign
