// Internal: evaluation of spline coefficients at one point, for any kernel K, dimension D and
// scalar T. Written once; gather (value), gradient and -- in later modules -- scatter use the same
// stencil (indices, weights, weight derivatives) computed by make_stencil.
#pragma once
#include <cstdint>

#include "voxalign/spline/modes.hpp"
#include "voxalign/spline/weights.hpp"

namespace voxalign::detail {

/// Coordinates beyond this magnitude (or NaN/Inf) evaluate to cval in every mode.
constexpr double kMaxCoordinate = 1e15;

/// Everything needed to read the coefficient array around one point.
template <int K, int D, class T> struct Stencil {
  static constexpr int W = kernel_taps(K);
  int64_t off[D][W];   ///< element offsets per axis (index * stride), already folded
  T w[D][W];           ///< weights
  T dw[D][W];          ///< weight derivatives (filled when requested)
  T sign[D];           ///< d(mapped coordinate)/d(coordinate): +1, -1 (mirrored) or 0 (clamped)
  bool gc_out[D][W] = {}; ///< grid-constant: tap lies outside the array (reads cval); zeroed
                          ///< because apply_stencil<GC=true> reads every entry
  bool any_gc_out;
};

/// Build the stencil for point x (coordinates in voxels of the un-padded image). Returns false when
/// the point takes the constant value (mode 'constant' outside [0, n-1]).
template <int K, int D, class T, bool Grad>
VX_HD bool make_stencil(const double* x, const int64_t* dims, const int64_t* strides, Mode mode, int pad,
                        Stencil<K, D, T>& s) {
  constexpr int W = Stencil<K, D, T>::W;
  const Mode fold = spline_boundary_mode(mode);
  s.any_gc_out = false;
  for (int d = 0; d < D; ++d) {
    // Non-finite or absurdly far coordinates (no integer index exists) take the constant value.
    if (!(std::abs(x[d]) <= kMaxCoordinate)) return false;
    double cc = x[d] + pad;
    double sign = 1.0;
    if (mode != Mode::GridConstant && mode != Mode::Nearest) cc = map_coordinate(cc, dims[d], mode, sign);
    if (!(cc > -1.0 || mode == Mode::GridConstant || mode == Mode::Nearest)) return false;
    const int64_t start = kernel_start(cc, K);
    const int64_t n = dims[d], st = strides[d];
    if (mode == Mode::GridConstant) {
      for (int l = 0; l < W; ++l) {
        const int64_t idx = start + l;
        const bool out = idx < 0 || idx >= n;
        s.gc_out[d][l] = out;
        s.any_gc_out |= out;
        s.off[d][l] = out ? 0 : idx * st;
      }
    } else if (start < 0 || start + W - 1 >= n) {
      for (int l = 0; l < W; ++l) s.off[d][l] = fold_index(start + l, n, fold) * st;
    } else {
      for (int l = 0; l < W; ++l) s.off[d][l] = (start + l) * st;
    }
    kernel_weights<K, T>(cc, s.w[d], Grad ? s.dw[d] : nullptr);
    s.sign[d] = T(sign);
  }
  return true;
}

/// Tensor-product sum over the stencil. Returns the value; writes the gradient (d/dx_d, voxel
/// units) to grad when Grad. GC: grid-constant taps outside the array read cval.
template <int K, int D, class T, bool Grad, bool GC>
VX_HD T apply_stencil(const T* c, const Stencil<K, D, T>& s, T cval, T* grad) {
  constexpr int W = Stencil<K, D, T>::W;
  auto at = [&](int64_t o, bool out) -> T { return GC && out ? cval : c[o]; };
  if constexpr (D == 1) {
    T v = 0, g = 0;
    for (int i = 0; i < W; ++i) {
      const T a = at(s.off[0][i], GC && s.gc_out[0][i]);
      v += s.w[0][i] * a;
      if constexpr (Grad) g += s.dw[0][i] * a;
    }
    if constexpr (Grad) grad[0] = g * s.sign[0];
    return v;
  } else if constexpr (D == 2) {
    T v = 0, g0 = 0, g1 = 0;
    for (int j = 0; j < W; ++j) {
      const int64_t oj = s.off[1][j];
      T r = 0, rd = 0;
      for (int i = 0; i < W; ++i) {
        const T a = at(oj + s.off[0][i], GC && (s.gc_out[1][j] || s.gc_out[0][i]));
        r += s.w[0][i] * a;
        if constexpr (Grad) rd += s.dw[0][i] * a;
      }
      v += s.w[1][j] * r;
      if constexpr (Grad) {
        g0 += s.w[1][j] * rd;
        g1 += s.dw[1][j] * r;
      }
    }
    if constexpr (Grad) {
      grad[0] = g0 * s.sign[0];
      grad[1] = g1 * s.sign[1];
    }
    return v;
  } else {
    T v = 0, g0 = 0, g1 = 0, g2 = 0;
    for (int k = 0; k < W; ++k) {
      const int64_t ok = s.off[2][k];
      T pv = 0, p0 = 0, p1 = 0;
      for (int j = 0; j < W; ++j) {
        const int64_t oj = ok + s.off[1][j];
        T r = 0, rd = 0;
        for (int i = 0; i < W; ++i) {
          const T a = at(oj + s.off[0][i], GC && (s.gc_out[2][k] || s.gc_out[1][j] || s.gc_out[0][i]));
          r += s.w[0][i] * a;
          if constexpr (Grad) rd += s.dw[0][i] * a;
        }
        pv += s.w[1][j] * r;
        if constexpr (Grad) {
          p0 += s.w[1][j] * rd;
          p1 += s.dw[1][j] * r;
        }
      }
      v += s.w[2][k] * pv;
      if constexpr (Grad) {
        g0 += s.w[2][k] * p0;
        g1 += s.w[2][k] * p1;
        g2 += s.dw[2][k] * pv;
      }
    }
    if constexpr (Grad) {
      grad[0] = g0 * s.sign[0];
      grad[1] = g1 * s.sign[1];
      grad[2] = g2 * s.sign[2];
    }
    return v;
  }
}

/// Lanes used for the contiguous axis-0 taps in apply_interior: the next power of two >= taps.
/// Reads cover `simd_lanes` samples from the first tap, so callers must make sure
/// start + simd_lanes - 1 < n on axis 0 (the extra lanes get weight zero).
VX_HD constexpr int simd_lanes(int order) {
  const int w = kernel_taps(order);
  return w <= 1 ? 1 : w <= 2 ? 2 : w <= 4 ? 4 : 8;
}

template <class T, int V> struct SimdVec {
  typedef T type __attribute__((vector_size(sizeof(T) * V)));
};

/// Tensor-product sum for a point whose taps all lie inside the array on every axis: the taps of
/// axis 0 are contiguous (stride 1), so rows are accumulated as short vectors (GCC vector
/// extensions) and reduced once against the axis-0 weights. Weight (axis d, tap q) is
/// w[d * wd + q * wq] (and likewise dw), so batched weights are read in place.
template <int K, int D, class T, bool Grad>
VX_HD T apply_interior(const T* p, const int64_t* strides, const T* w, const T* dw, int wd, int wq, T* grad) {
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
        const vec row = load(p + k * s2 + j * s1);
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
      interior = cc >= 0.0 && cc <= double(dims[d] - 1); // false for NaN too
      if (!interior) break;
      const int64_t start = kernel_start(cc, K);
      const int reach = d == 0 ? simd_lanes(K) : W;
      interior = start >= 0 && start + reach - 1 < dims[d];
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
  if (s.any_gc_out) return apply_stencil<K, D, T, Grad, true>(c, s, cval, grad);
  return apply_stencil<K, D, T, Grad, false>(c, s, cval, grad);
}

/// Call f.template operator()<K, D>() for the runtime order and dimension (the one switch where
/// kernels are instantiated).
template <class F> decltype(auto) dispatch_kernel(int order, int ndim, F&& f) {
  auto by_dim = [&](auto kc) -> decltype(auto) {
    constexpr int K = decltype(kc)::value;
    switch (ndim) {
    case 1: return f.template operator()<K, 1>();
    case 2: return f.template operator()<K, 2>();
    default: return f.template operator()<K, 3>();
    }
  };
  switch (order) {
  case 0: return by_dim(std::integral_constant<int, 0>{});
  case 1: return by_dim(std::integral_constant<int, 1>{});
  case 2: return by_dim(std::integral_constant<int, 2>{});
  case 3: return by_dim(std::integral_constant<int, 3>{});
  case 4: return by_dim(std::integral_constant<int, 4>{});
  case 5: return by_dim(std::integral_constant<int, 5>{});
  case 6: return by_dim(std::integral_constant<int, 6>{});
  case 7: return by_dim(std::integral_constant<int, 7>{});
  default: return by_dim(std::integral_constant<int, kKeys>{});
  }
}

} // namespace voxalign::detail
