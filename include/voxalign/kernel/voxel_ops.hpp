// What one output voxel of each warping operator computes, written once as VX_HD functions: the
// bodies of the CUDA kernels (one thread per output voxel, src/cuda/) and of a host loop in the C++
// tests (tests/cpp/test_kernel_bodies.cpp), which checks them against the CPU operators.
// Points are the ones every operator uses: x + u(x) with the field value added to the voxel index
// in double, and affine_point (point_map.hpp) for a 4x4 voxel matrix.
#pragma once
#include <cmath>
#include <cstdint>

#include "voxalign/core/hd.hpp"
#include "voxalign/kernel/stencil.hpp"
#include "voxalign/spline/point_map.hpp"

namespace voxalign::kernel {

/// A displacement field as a kernel reads it: component d of voxel (i, j, k) at
/// u[i s0 + j s1 + k s2 + d s3] (voxels of the warp's input). Trivially copyable.
template <class T> struct FieldView {
  const T* u;
  int64_t strides[4];
  VX_HD T at(int64_t i, int64_t j, int64_t k, int d) const {
    return u[i * strides[0] + j * strides[1] + k * strides[2] + d * strides[3]];
  }
};

/// Coordinate d of the displaced point of voxel index `index`: index + u, in double.
template <class T> VX_HD double displaced(int64_t index, T u) { return double(index) + double(u); }

/// The input point of output voxel (i, j, k) under a displacement field.
template <int D, class T>
VX_HD void field_point(const FieldView<T>& f, int64_t i, int64_t j, int64_t k, double* x) {
  const int64_t idx[3] = {i, j, k};
  for (int d = 0; d < D; ++d) x[d] = displaced(idx[d], f.at(i, j, k, d));
}

/// The input point of output voxel (i, j, k) under a 4x4 row-major voxel matrix.
template <int D> VX_HD void affine_point_of(const double* M, int64_t i, int64_t j, int64_t k, double* x) {
  for (int d = 0; d < D; ++d) x[d] = affine_point(M + 4 * d, i, j, k);
}

/// Forward displacement warp at one voxel: f(x + u(x)); with Grad, grad[d] = (df/dx_d)(x + u(x)).
template <int K, int D, class T, bool Grad>
VX_HD T field_voxel(const CoefView<T, D>& c, const FieldView<T>& f, int64_t i, int64_t j, int64_t k, T* grad) {
  double x[D];
  field_point<D>(f, i, j, k, x);
  return point_value<K, D, T, Grad>(c, x, grad);
}

/// Forward affine warp at one voxel: f(M x).
template <int K, int D, class T>
VX_HD T affine_voxel(const CoefView<T, D>& c, const double* M, int64_t i, int64_t j, int64_t k) {
  double x[D];
  affine_point_of<D>(M, i, j, k, x);
  return point_value<K, D, T, false>(c, x, nullptr);
}

/// Field JVP at one voxel: grad f(x + u(x)) . du(x).
template <int K, int D, class T>
VX_HD T field_jvp_voxel(const CoefView<T, D>& c, const FieldView<T>& f, const FieldView<T>& du, int64_t i, int64_t j,
                        int64_t k) {
  T g[D];
  field_voxel<K, D, T, true>(c, f, i, j, k, g);
  T s = 0;
  for (int d = 0; d < D; ++d) s += g[d] * du.at(i, j, k, d);
  return s;
}

/// Affine-matrix JVP at one voxel: grad f(M x) . (dM x).
template <int K, int D, class T>
VX_HD T affine_jvp_voxel(const CoefView<T, D>& c, const double* M, const double* dM, int64_t i, int64_t j,
                         int64_t k) {
  double x[D];
  affine_point_of<D>(M, i, j, k, x);
  T g[D];
  point_value<K, D, T, true>(c, x, g);
  double s = 0;
  for (int d = 0; d < D; ++d)
    s += double(g[d]) * (dM[4 * d] * double(i) + dM[4 * d + 1] * double(j) + dM[4 * d + 2] * double(k) + dM[4 * d + 3]);
  return T(s);
}

/// The transpose of the evaluation at one point: calls add(offset, weight) for every tap of the
/// stencil of x (offsets into the coefficient grid, folded; weights are the products of the axis
/// weights). Grid-constant taps outside the array and points that take cval add nothing (the
/// operators use cval = 0). The scatter of the adjoint: add(o, w * y(x)).
template <int K, int D, class T, class Add>
VX_HD void visit_taps(const CoefView<T, D>& c, const double* x, Add&& add) {
  Stencil<K, D, T> s;
  if (!make_stencil<K, D, T, false>(x, c.dims, c.strides, c.mode, c.pad, s)) return;
  constexpr int W = Stencil<K, D, T>::W;
  for (int kk = 0; kk < (D == 3 ? W : 1); ++kk) {
    if (D == 3 && s.any_gc_out && s.gc_out[2][kk]) continue;
    const int64_t ok = D == 3 ? s.off[2][kk] : 0;
    const T wk = D == 3 ? s.w[2][kk] : T(1);
    for (int jj = 0; jj < (D >= 2 ? W : 1); ++jj) {
      if (D >= 2 && s.any_gc_out && s.gc_out[1][jj]) continue;
      const int64_t oj = ok + (D >= 2 ? s.off[1][jj] : 0);
      const T wj = wk * (D >= 2 ? s.w[1][jj] : T(1));
      for (int ii = 0; ii < W; ++ii) {
        if (s.any_gc_out && s.gc_out[0][ii]) continue;
        add(oj + s.off[0][ii], wj * s.w[0][ii]);
      }
    }
  }
}

/// Fixed-point accumulation for a deterministic scatter on a GPU: integer additions are
/// associative, so the sum does not depend on the order in which threads add.
VX_HD long long to_fixed(double v, double scale) { return (long long)(v * scale + (v >= 0 ? 0.5 : -0.5)); }
VX_HD double from_fixed(long long v, double scale) { return double(v) / scale; }
/// The scale at which weight sums are bounded (pass 1 of the scatter): 2^32.
constexpr double kWeightScale = 4294967296.0;
/// The fixed-point scale (a power of two) of a scatter whose |y| are at most ymax and whose
/// per-coefficient sums of |w| are at most wmax (given in kWeightScale fixed point) over `points`
/// output points: every partial sum then stays below 2^62 in magnitude, and each term is rounded
/// to 2^-62 of that bound.
inline double fixed_scale(double ymax, unsigned long long wmax_fixed, int64_t points) {
  const double bound = ymax * (double(wmax_fixed) / kWeightScale + 1e-6 * double(points)) + 1e-300;
  return std::ldexp(1.0, 62 - int(std::ceil(std::log2(bound))));
}

} // namespace voxalign::kernel
