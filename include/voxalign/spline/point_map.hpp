// The affine point map of the warps, written once: the input coordinate of output voxel (i, j, k)
// under a 4x4 row-major voxel matrix (output voxel -> input voxel). Every operator computes it
// here -- the forward warp (row by row: affine_row once per row, affine_coord per voxel), the
// adjoint's scatter, the derivatives and the CSR matrix -- so that they round it identically and
// the adjoint is the transpose of the forward to the last bit, also where a point lands exactly on
// a discontinuity (a nearest-neighbour tie, the edge of mode 'constant' or 'wrap'). Where the
// target has fused multiply-adds they are explicit: left to the compiler, some products would be
// contracted and others not, depending on the code around them.
#pragma once
#include <cmath>
#include <cstdint>

#include "voxalign/core/hd.hpp"
#include "voxalign/spline/modes.hpp"

namespace voxalign {

/// The part of coordinate d that is constant along a row (m = M + 4 d): m[1] j + m[2] k + m[3].
VX_HD double affine_row(const double* m, int64_t j, int64_t k) {
#if defined(__FMA__) || defined(__CUDACC__)
  return std::fma(m[1], double(j), std::fma(m[2], double(k), m[3]));
#else
  return m[1] * double(j) + (m[2] * double(k) + m[3]);
#endif
}

/// Coordinate d of voxel i of a row: m0 i + row (m0 = M[4 d], row = affine_row(M + 4 d, j, k)).
VX_HD double affine_coord(double m0, int64_t i, double row) {
#if defined(__FMA__) || defined(__CUDACC__)
  return std::fma(m0, double(i), row);
#else
  return m0 * double(i) + row;
#endif
}

/// Coordinate d of the input point of output voxel (i, j, k), m = M + 4 d.
VX_HD double affine_point(const double* m, int64_t i, int64_t j, int64_t k) {
  return affine_coord(m[0], i, affine_row(m, j, k));
}

} // namespace voxalign
