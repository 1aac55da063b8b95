// Internal: the CPU's evaluation of spline coefficients at one point, for any kernel K, dimension D
// and scalar T: the portable stencil (voxalign/kernel/stencil.hpp) plus the CPU's vector fast
// paths (rows as GCC vectors here, AVX2 batches of 8 in x8.hpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "voxalign/core/hd.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/kernel/stencil.hpp"
#include "voxalign/spline/weights.hpp"

namespace voxalign::detail {

using namespace voxalign::kernel;

template <class T, int V> struct SimdVec {
  typedef T type __attribute__((vector_size(sizeof(T) * V)));
};

/// Tensor-product sum for a point whose taps all lie inside the array on every axis: the taps of
/// axis 0 are contiguous (stride 1), so rows are accumulated as short vectors (GCC vector
/// extensions) and reduced once against the axis-0 weights. Weight (axis d, tap q) is
/// w[d * wd + q * wq] (and likewise dw), so batched weights are read in place.
template <int K, int D, class T, bool Grad, bool Rows = false>
VX_HD T apply_interior(const T* p, const int64_t* strides, const T* w, const T* dw, int wd, int wq, T* grad,
                       const int64_t* o1 = nullptr, const int64_t* o2 = nullptr) {
  constexpr int W = kernel_taps(K);
  constexpr int V = simd_lanes(K);
  using vec = typename SimdVec<T, V>::type;
  auto load = [](const T* q) {
    vec v;
    __builtin_memcpy(&v, q, sizeof(vec));
    return v;
  };
  auto lanes = [&](const T* a) { // axis-0 weights padded with zeros to V lanes
    vec v = {};
    for (int i = 0; i < W; ++i) v[i] = a[i * wq];
    return v;
  };
  auto hsum = [](vec v) {
    T s = 0;
    for (int i = 0; i < V; ++i) s += v[i];
    return s;
  };
  const T* w1 = D >= 2 ? w + wd : w;
  const T* w2 = D >= 3 ? w + 2 * wd : w;
  const vec w0 = lanes(w);
  if constexpr (D == 1) {
    const vec row = load(p);
    if constexpr (Grad) grad[0] = hsum(lanes(dw) * row);
    return hsum(w0 * row);
  } else {
    const int64_t s1 = strides[1];
    const int64_t s2 = D == 3 ? strides[2] : 0;
    vec acc = {}, acc1 = {}, acc2 = {};
    for (int k = 0; k < (D == 3 ? W : 1); ++k) {
      vec rk = {}, rk1 = {};
      for (int j = 0; j < W; ++j) {
        const vec row = load(Rows ? p + (D == 3 ? o2[k] : 0) + o1[j] : p + k * s2 + j * s1);
        rk += w1[j * wq] * row;
        if constexpr (Grad) rk1 += dw[wd + j * wq] * row;
      }
      if constexpr (D == 3) {
        acc += w2[k * wq] * rk;
        if constexpr (Grad) {
          acc1 += w2[k * wq] * rk1;
          acc2 += dw[2 * wd + k * wq] * rk;
        }
      } else {
        acc = rk;
        if constexpr (Grad) acc1 = rk1;
      }
    }
    if constexpr (Grad) {
      grad[0] = hsum(lanes(dw) * acc);
      grad[1] = hsum(w0 * acc1);
      if constexpr (D == 3) grad[2] = hsum(w0 * acc2);
    }
    return hsum(w0 * acc);
  }
}


/// Value (and gradient) at one point. `strides[0]` must be 1 (coefficients are contiguous).
template <int K, int D, class T, bool Grad>
VX_HD T evaluate_point(const T* c, const int64_t* dims, const int64_t* strides, const double* x, Mode mode,
                       int pad, T cval, T* grad) {
  constexpr int W = kernel_taps(K);
  // Fast path: the point is inside [0, n-1] (no coordinate mapping in any mode) and all its taps
  // are inside the array (no index folding) on every axis.
  {
    T w[D][W], dw[D][W];
    int64_t off = 0;
    bool interior = true;
    for (int d = 0; d < D && interior; ++d) {
      const double cc = x[d] + pad;
      int64_t start;
      interior = interior_tap<K>(cc, dims[d], interior_reach<K>(d), start);
      if (!interior) break;
      off += start * strides[d];
      kernel_weights<K, T>(cc, w[d], Grad ? dw[d] : nullptr);
    }
    if (interior) return apply_interior<K, D, T, Grad>(c + off, strides, &w[0][0], &dw[0][0], W, 1, grad);
  }
  Stencil<K, D, T> s;
  if (!make_stencil<K, D, T, Grad>(x, dims, strides, mode, pad, s)) {
    if constexpr (Grad)
      for (int d = 0; d < D; ++d) grad[d] = T(0);
    return cval;
  }
  // Taps folded on axes 1..D-1 only: axis-0 rows are still contiguous, so the vector row sums
  // apply with one offset per row.
  if constexpr (D >= 2) {
    if (!s.any_gc_out && s.contiguous0) {
      T g[3];
      const T v = apply_interior<K, D, T, Grad, true>(c + s.off[0][0], strides, &s.w[0][0], &s.dw[0][0], W, 1, g,
                                                      s.off[1], D == 3 ? s.off[2] : nullptr);
      if constexpr (Grad)
        for (int d = 0; d < D; ++d) grad[d] = g[d] * s.sign[d];
      return v;
    }
  }
  if (s.any_gc_out) return apply_stencil<K, D, T, Grad, true>(c, s, cval, grad);
  return apply_stencil<K, D, T, Grad, false>(c, s, cval, grad);
}

} // namespace voxalign::detail

#include "voxalign/kernel/cpu/x8.hpp"
