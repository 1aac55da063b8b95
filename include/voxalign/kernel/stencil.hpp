// The portable kernel layer: everything one output point needs to read spline coefficients --
// the interior test, the stencil (folded tap offsets, weights, weight derivatives), the
// tensor-product sum and a coefficient view that can be passed by value to a CUDA kernel. Plain
// VX_HD code with no SIMD types, so a CPU loop and a GPU thread run the same source; the CPU's
// vector fast paths (include/voxalign/kernel/cpu/evaluate.hpp, src/spline/simd/) are checked against it.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "voxalign/core/hd.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/spline/weights.hpp"

namespace voxalign::kernel {

/// Coordinates beyond this magnitude (or NaN/Inf) evaluate to cval in every mode.
constexpr double kMaxCoordinate = 1e15;

/// Lanes used for the contiguous axis-0 taps in apply_interior: the next power of two >= taps.
/// Reads cover `simd_lanes` samples from the first tap, so callers must make sure
/// start + simd_lanes - 1 < n on axis 0 (the extra lanes get weight zero).
VX_HD constexpr int simd_lanes(int order) {
  const int w = kernel_taps(order);
  return w <= 1 ? 1 : w <= 2 ? 2 : w <= 4 ? 4 : 8;
}

/// How far the taps of a point reach on axis d for the interior paths: simd_lanes(K) samples on
/// axis 0 (rows are read as short vectors), kernel_taps(K) on the others.
template <int K> VX_HD constexpr int interior_reach(int d) { return d == 0 ? simd_lanes(K) : kernel_taps(K); }

/// Whether coordinate cc (padding included) on an axis of n coefficients is "interior": inside
/// [0, n-1] (so no boundary mapping in any mode; false for NaN, tested before any conversion) with
/// the `reach` samples from its first tap all in the array (no folding). `start` receives the first
/// tap. The one test behind every interior fast path (evaluate_point, the batches, the scatter).
template <int K> VX_HD bool interior_tap(double cc, int64_t n, int reach, int64_t& start) {
  if (!(cc >= 0.0 && cc <= double(n - 1))) return false;
  start = kernel_start(cc, K);
  return start >= 0 && start + reach - 1 < n;
}

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
  bool contiguous0; ///< axis-0 taps not folded and simd_lanes(K) samples readable from the first
};

/// Build the stencil for point x (coordinates in voxels of the un-padded image). Returns false when
/// the point takes the constant value (mode 'constant' outside [0, n-1], 'itk' outside
/// [-0.5, n-0.5)).
template <int K, int D, class T, bool Grad>
VX_HD bool make_stencil(const double* x, const int64_t* dims, const int64_t* strides, Mode mode, int pad,
                        Stencil<K, D, T>& s) {
  constexpr int W = Stencil<K, D, T>::W;
  const bool itk = mode == Mode::Itk; // ITK's inside-buffer test, then its interpolator's folding
  if (itk) mode = itk_inner_mode(K);
  const Mode fold = spline_boundary_mode(mode);
  s.any_gc_out = false;
  s.contiguous0 = false;
  for (int d = 0; d < D; ++d) {
    // Non-finite or absurdly far coordinates (no integer index exists) take the constant value.
    if (!(std::abs(x[d]) <= kMaxCoordinate)) return false;
    if (itk && !itk_inside(x[d] + pad, dims[d])) return false;
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
      if (d == 0) s.contiguous0 = st == 1 && start + simd_lanes(K) - 1 < n;
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

/// Spline coefficients as a kernel reads them (trivially copyable: passed by value to a CUDA
/// kernel): the contiguous coefficient array (x fastest), its dims and strides (padding
/// included), the mode, the padding per side and the constant value.
template <class T, int D> struct CoefView {
  const T* c;
  int64_t dims[3];
  int64_t strides[3];
  Mode mode;
  int pad;
  T cval;
};

/// Value (and, when Grad, the gradient d/dx_d in voxel units) of the coefficients at point x
/// (voxel coordinates of the un-padded image): the portable evaluation, one stencil and one
/// tensor-product sum, with no vector fast path.
template <int K, int D, class T, bool Grad>
VX_HD T point_value(const CoefView<T, D>& v, const double* x, T* grad) {
  Stencil<K, D, T> s;
  if (!make_stencil<K, D, T, Grad>(x, v.dims, v.strides, v.mode, v.pad, s)) {
    if constexpr (Grad)
      for (int d = 0; d < D; ++d) grad[d] = T(0);
    return v.cval;
  }
  if (s.any_gc_out) return apply_stencil<K, D, T, Grad, true>(v.c, s, v.cval, grad);
  return apply_stencil<K, D, T, Grad, false>(v.c, s, v.cval, grad);
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

} // namespace voxalign::kernel
