// Interpolation weights for one coordinate: B-splines of degree 0..7 and Keys' cubic convolution,
// with their derivatives. Plain VX_HD functions, shared by every kernel (gather, scatter,
// derivative) and every backend.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "voxalign/core/hd.hpp"
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
// Element type of F: F itself for a scalar, the lane type for a GCC vector.
template <class F> auto scalar_of_impl(int) -> std::remove_cvref_t<decltype(std::declval<F&>()[0])>;
template <class F> auto scalar_of_impl(...) -> F;
template <class F> using scalar_of = decltype(scalar_of_impl<F>(0));

// One step of the recursion, degree d-1 -> d; d is a template argument so that every loop unrolls
// and the constants (j, d + 1 - j, 1/d) fold (with a run-time d, GCC kept the loops, converted j
// to float in them and copied the arrays between steps: a third of the float gradient's time).
template <int d, class F> VX_HD VX_FORCEINLINE void bspline_step(F u, F* cur) {
  using S = scalar_of<F>;
  F next[d + 1];
#pragma GCC unroll 8
  for (int j = 0; j <= d; ++j) {
    const F a = j < d ? cur[j] : F{};      // M_{d-1}(u + j)
    const F b = j > 0 ? cur[j - 1] : F{};  // M_{d-1}(u + j - 1)
    next[j] = ((u + S(j)) * a + (S(d + 1 - j) - u) * b) * S(1.0 / double(d));
  }
#pragma GCC unroll 8
  for (int j = 0; j <= d; ++j) cur[j] = next[j];
}

template <class F, int... D>
VX_HD VX_FORCEINLINE void bspline_steps([[maybe_unused]] F u, [[maybe_unused]] F* cur, std::integer_sequence<int, D...>) {
  (bspline_step<D + 1>(u, cur), ...);
}

/// Uniform B-spline values M_n(u + j), j = 0..n, for u in [0, 1) (Cox-de Boor recursion; M_n is the
/// B-spline of degree n supported on [0, n+1]) in cur, and M_{n-1}(u + j), j = 0..n-1, in prev.
/// F is a scalar or a GCC vector (several points at once).
template <int N, class F> VX_HD VX_FORCEINLINE void bspline_table(F u, F* cur, F* prev) {
  using S = scalar_of<F>;
  cur[0] = F{} + S(1.0);
  bspline_steps(u, cur, std::make_integer_sequence<int, N - 1>{});
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) prev[j] = cur[j];
  prev[N] = F{};
  bspline_step<N>(u, cur);
}

/// Kernel values v[k] (k = 0..taps-1) from the fraction f = x - floor(x) (odd orders, Keys) or
/// x - floor(x + 1/2) (even orders), as scipy computes it. Orders 1..5 use scipy.ndimage's own
/// formulas, so results agree with it to the last bits; orders 6 and 7 the recursion.
template <int K, class F> VX_HD VX_FORCEINLINE void kernel_values(F f, F* v) {
  using S = scalar_of<F>;
  if constexpr (K == kKeys) {
    const F t2 = f * f, t3 = t2 * f;
    v[0] = -S(0.5) * t3 + t2 - S(0.5) * f;
    v[1] = S(1.5) * t3 - S(2.5) * t2 + S(1.0);
    v[2] = -S(1.5) * t3 + S(2.0) * t2 + S(0.5) * f;
    v[3] = S(0.5) * t3 - S(0.5) * t2;
  } else if constexpr (K == 0) {
    v[0] = F{} + S(1.0);
  } else if constexpr (K <= 5) {
    F y = f, z = S(1.0) - f, t;
    if constexpr (K == 1) {
      v[0] = S(1.0) - f;
    } else if constexpr (K == 2) {
      v[1] = S(0.75) - f * f;
      y = S(0.5) - f;
      v[0] = S(0.5) * y * y;
    } else if constexpr (K == 3) {
      v[1] = (y * y * (y - S(2.0)) * S(3.0) + S(4.0)) * (S(1.0) / S(6.0));
      v[2] = (z * z * (z - S(2.0)) * S(3.0) + S(4.0)) * (S(1.0) / S(6.0));
      v[0] = z * z * z * (S(1.0) / S(6.0));
    } else if constexpr (K == 4) {
      t = f * f;
      v[2] = t * (t * S(0.25) - S(0.625)) + S(115.0) / S(192.0);
      y = S(1.0) + f;
      v[1] = y * (y * (y * (S(5.0) - y) * (S(1.0) / S(6.0)) - S(1.25)) + S(5.0) / S(24.0)) + S(55.0) / S(96.0);
      v[3] = z * (z * (z * (S(5.0) - z) * (S(1.0) / S(6.0)) - S(1.25)) + S(5.0) / S(24.0)) + S(55.0) / S(96.0);
      y = S(0.5) - f;
      t = y * y;
      v[0] = t * t * (S(1.0) / S(24.0));
    } else { // K == 5
      t = y * y;
      v[2] = t * (t * (S(0.25) - y * (S(1.0) / S(12.0))) - S(0.5)) + S(0.55);
      t = z * z;
      v[3] = t * (t * (S(0.25) - z * (S(1.0) / S(12.0))) - S(0.5)) + S(0.55);
      y += S(1.0);
      v[1] = y * (y * (y * (y * (y * (S(1.0) / S(24.0)) - S(0.375)) + S(1.25)) - S(1.75)) + S(0.625)) + S(0.425);
      z += S(1.0);
      v[4] = z * (z * (z * (z * (z * (S(1.0) / S(24.0)) - S(0.375)) + S(1.25)) - S(1.75)) + S(0.625)) + S(0.425);
      y = S(1.0) - f;
      t = y * y;
      v[0] = y * t * t * (S(1.0) / S(120.0));
    }
    v[K] = F{} + S(1.0);
    for (int i = 0; i < K; ++i) v[K] -= v[i];
  } else {
    F cur[K + 1], prev[K + 1];
    bspline_table<K>((K & 1) ? f : f + S(0.5), cur, prev); // u in [0, 1)
    for (int k = 0; k <= K; ++k) v[k] = cur[K - k];
  }
}

/// The fraction kernel_values expects.
template <int K> VX_HD VX_FORCEINLINE double kernel_fraction(double x) {
  return x - std::floor((K == kKeys || (K & 1)) ? x : x + 0.5);
}
} // namespace detail

/// Weights w[k*ws] (k = 0..taps-1) multiplying coefficient kernel_start(x)+k, and, when dw is not
/// null, their derivatives with respect to x (ws: stride between weights, for batched use).
template <int K, class T> VX_HD VX_FORCEINLINE void kernel_weights(double x, T* w, T* dw, int ws = 1) {
  constexpr int W = kernel_taps(K);
  const double f = detail::kernel_fraction<K>(x);
  double v[W];
  detail::kernel_values<K>(f, v);
  for (int k = 0; k < W; ++k) w[k * ws] = T(v[k]);
  if (!dw) return;
  if constexpr (K == kKeys) {
    const double t2 = f * f;
    dw[0] = T(-1.5 * t2 + 2.0 * f - 0.5);
    dw[ws] = T(4.5 * t2 - 5.0 * f);
    dw[2 * ws] = T(-4.5 * t2 + 4.0 * f + 0.5);
    dw[3 * ws] = T(1.5 * t2 - f);
  } else if constexpr (K == 0) {
    dw[0] = T(0);
  } else {
    // d/dx M_K(u + K - k) = M_{K-1}(u + K - k) - M_{K-1}(u + K - k - 1), u in [0, 1).
    const double u = (K & 1) ? f : f + 0.5;
    double cur[K + 1], prev[K + 1];
    detail::bspline_table<K>(u, cur, prev);
    for (int k = 0; k <= K; ++k) {
      const double a = (k >= 1) ? prev[K - k] : 0.0;
      const double b = (k <= K - 1) ? prev[K - k - 1] : 0.0;
      dw[k * ws] = T(a - b);
    }
  }
}

namespace detail {
/// Second half of kernel_weights_batch: weights (and derivatives) of N points from their fractions
/// f (a GCC vector of N lanes of T), as kernel_weights computes them.
template <int K, class T, int N, class V>
VX_HD VX_FORCEINLINE void weights_from_fractions(V f, T (*w)[N], T (*dw)[N]) {
  using vec = V;
  constexpr int W = kernel_taps(K);
  vec v[W];
  detail::kernel_values<K>(f, v);
  for (int k = 0; k < W; ++k)
    for (int p = 0; p < N; ++p) w[k][p] = v[k][p];
  if (!dw) return;
  vec d[W];
  if constexpr (K == kKeys) {
    const vec t2 = f * f;
    d[0] = T(-1.5) * t2 + T(2.0) * f - T(0.5);
    d[1] = T(4.5) * t2 - T(5.0) * f;
    d[2] = T(-4.5) * t2 + T(4.0) * f + T(0.5);
    d[3] = T(1.5) * t2 - f;
  } else if constexpr (K == 0) {
    d[0] = vec{};
  } else {
    const vec u = (K & 1) ? f : f + T(0.5);
    vec cur[K + 1], prev[K + 1];
    detail::bspline_table<K>(u, cur, prev);
    for (int k = 0; k <= K; ++k) d[k] = (k >= 1 ? prev[K - k] : vec{}) - (k <= K - 1 ? prev[K - k - 1] : vec{});
  }
  for (int k = 0; k < W; ++k)
    for (int p = 0; p < N; ++p) dw[k][p] = d[k][p];
}
} // namespace detail

/// Stencils of N points at once: start[p] = kernel_start(x[p]) and w[k][p] the weight of tap k for
/// point p, computed in T with N-lane vectors (SIMD over points), and, when dw is not null, the
/// weights' derivatives dw[k][p] (as kernel_weights computes them). Equal to kernel_weights up to
/// the rounding of T.
template <int K, class T, int N>
VX_HD VX_FORCEINLINE void kernel_weights_batch(const double* x, T (*w)[N], int64_t* start, T (*dw)[N] = nullptr) {
  typedef T vec __attribute__((vector_size(sizeof(T) * N)));
  vec f;
  for (int p = 0; p < N; ++p) {
    const double fl = std::floor((K == kKeys || (K & 1)) ? x[p] : x[p] + 0.5);
    start[p] = int64_t(fl) - (K == kKeys ? 1 : K / 2);
    f[p] = T(x[p] - fl);
  }
  detail::weights_from_fractions<K, T, N>(f, w, dw);
}

} // namespace voxalign
