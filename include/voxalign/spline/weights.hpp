// Interpolation weights for one coordinate: B-splines of degree 0..7 and Keys' cubic convolution,
// with their derivatives. Plain VX_HD functions, shared by every kernel (gather, scatter,
// derivative) and every backend.
#pragma once
#include <cmath>
#include <cstdint>

#include "voxalign/spline/modes.hpp"

namespace voxalign {

/// First coefficient index touched by a kernel of this order at coordinate x (scipy's rule: odd
/// orders and Keys start at floor(x) - order/2, even orders at floor(x + 1/2) - order/2).
VX_HD int64_t kernel_start(double x, int order) {
  if (order == kKeys) return int64_t(std::floor(x)) - 1;
  if (order & 1) return int64_t(std::floor(x)) - order / 2;
  return int64_t(std::floor(x + 0.5)) - order / 2;
}

namespace detail {
/// Uniform B-spline values M_n(u + j), j = 0..n, for u in [0, 1) (Cox-de Boor recursion; M_n is the
/// B-spline of degree n supported on [0, n+1]). Also returns M_{n-1}(u + j), j = 0..n-1, in prev.
constexpr double kInv[8] = {0.0, 1.0, 1.0 / 2, 1.0 / 3, 1.0 / 4, 1.0 / 5, 1.0 / 6, 1.0 / 7};
template <int N> VX_HD void bspline_table(double u, double* cur, double* prev) {
  cur[0] = 1.0;
  for (int d = 1; d <= N; ++d) {
    if (d == N)
      for (int j = 0; j < N; ++j) prev[j] = cur[j];
    double next[N + 1];
    for (int j = 0; j <= d; ++j) {
      const double a = j < d ? cur[j] : 0.0;      // M_{d-1}(u + j)
      const double b = j > 0 ? cur[j - 1] : 0.0;  // M_{d-1}(u + j - 1)
      next[j] = ((u + j) * a + (d + 1 - u - j) * b) * kInv[d];
    }
    for (int j = 0; j <= d; ++j) cur[j] = next[j];
  }
}
} // namespace detail

/// Weights w[k] (k = 0..taps-1) multiplying coefficient kernel_start(x)+k, and, when dw is not
/// null, their derivatives with respect to x. Orders 0..5 use scipy.ndimage's own formulas so the
/// results agree with it to the last bits; orders 6, 7 and all derivatives use the recursion.
template <int K, class T> VX_HD VX_FORCEINLINE void kernel_weights(double x, T* w, T* dw) {
  if constexpr (K == kKeys) {
    const double t = x - std::floor(x);
    const double t2 = t * t, t3 = t2 * t;
    w[0] = T(-0.5 * t3 + t2 - 0.5 * t);
    w[1] = T(1.5 * t3 - 2.5 * t2 + 1.0);
    w[2] = T(-1.5 * t3 + 2.0 * t2 + 0.5 * t);
    w[3] = T(0.5 * t3 - 0.5 * t2);
    if (dw) {
      dw[0] = T(-1.5 * t2 + 2.0 * t - 0.5);
      dw[1] = T(4.5 * t2 - 5.0 * t);
      dw[2] = T(-4.5 * t2 + 4.0 * t + 0.5);
      dw[3] = T(1.5 * t2 - t);
    }
    return;
  } else if constexpr (K == 0) {
    w[0] = T(1);
    if (dw) dw[0] = T(0);
    return;
  } else {
    // f: offset of x from its start-anchored cell, as scipy computes it.
    const double f = x - std::floor((K & 1) ? x : x + 0.5);
    double v[K + 1];
    if constexpr (K <= 5) {
      double y = f, z = 1.0 - f, t;
      if constexpr (K == 1) {
        v[0] = 1.0 - f;
      } else if constexpr (K == 2) {
        v[1] = 0.75 - f * f;
        y = 0.5 - f;
        v[0] = 0.5 * y * y;
      } else if constexpr (K == 3) {
        v[1] = (y * y * (y - 2.0) * 3.0 + 4.0) * (1.0 / 6.0);
        v[2] = (z * z * (z - 2.0) * 3.0 + 4.0) * (1.0 / 6.0);
        v[0] = z * z * z * (1.0 / 6.0);
      } else if constexpr (K == 4) {
        t = f * f;
        v[2] = t * (t * 0.25 - 0.625) + 115.0 / 192.0;
        y = 1.0 + f;
        v[1] = y * (y * (y * (5.0 - y) * (1.0 / 6.0) - 1.25) + 5.0 * (1.0 / 24.0)) + 55.0 / 96.0;
        v[3] = z * (z * (z * (5.0 - z) * (1.0 / 6.0) - 1.25) + 5.0 * (1.0 / 24.0)) + 55.0 / 96.0;
        y = 0.5 - f;
        t = y * y;
        v[0] = t * t * (1.0 / 24.0);
      } else { // K == 5
        t = y * y;
        v[2] = t * (t * (0.25 - y * (1.0 / 12.0)) - 0.5) + 0.55;
        t = z * z;
        v[3] = t * (t * (0.25 - z * (1.0 / 12.0)) - 0.5) + 0.55;
        y += 1.0;
        v[1] = y * (y * (y * (y * (y * (1.0 / 24.0) - 0.375) + 1.25) - 1.75) + 0.625) + 0.425;
        z += 1.0;
        v[4] = z * (z * (z * (z * (z * (1.0 / 24.0) - 0.375) + 1.25) - 1.75) + 0.625) + 0.425;
        y = 1.0 - f;
        t = y * y;
        v[0] = y * t * t * (1.0 / 120.0);
      }
      v[K] = 1.0;
      for (int i = 0; i < K; ++i) v[K] -= v[i];
    }
    // u in [0,1): position inside the support cell; w_k = M_K(u + K - k).
    const double u = (K & 1) ? f : f + 0.5;
    double cur[K + 1] = {}, prev[K + 1] = {};
    if (K > 5 || dw) detail::bspline_table<K>(u, cur, prev);
    if constexpr (K > 5)
      for (int k = 0; k <= K; ++k) v[k] = cur[K - k];
    for (int k = 0; k <= K; ++k) w[k] = T(v[k]);
    if (dw) {
      for (int k = 0; k <= K; ++k) {
        const double a = (k >= 1) ? prev[K - k] : 0.0;
        const double b = (k <= K - 1) ? prev[K - k - 1] : 0.0;
        dw[k] = T(a - b);
      }
    }
  }
}

} // namespace voxalign
