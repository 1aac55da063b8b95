// CPU-only fast path: AVX2 batches of 8 points for 4-tap kernels (cubic B-spline, Keys) in 2D/3D
// float. Compiled only where the target has AVX2 and FMA; every result is checked against the
// portable stencil path (include/voxalign/kernel/stencil.hpp) in tests/cpp/test_kernel_bodies.cpp.
#pragma once
#if defined(__AVX2__) && defined(__FMA__) && !defined(__CUDACC__)
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "voxalign/kernel/stencil.hpp"

namespace voxalign::detail {
using namespace voxalign::kernel;
#define VX_HAVE_AVX2_TAPS 1
/// Weights w[tap][point] (4 taps, 8 points) as 4-vectors per point: q[a] = [w(a, 0..3) | w(a + 4,
/// 0..3)] for a = 0..3 (a 4 x 8 transpose).
inline void taps_by_point4_x8(const float (*w)[8], __m256 (&q)[4]) {
  const __m256 a0 = _mm256_loadu_ps(w[0]), a1 = _mm256_loadu_ps(w[1]);
  const __m256 a2 = _mm256_loadu_ps(w[2]), a3 = _mm256_loadu_ps(w[3]);
  const __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
  const __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
  q[0] = _mm256_shuffle_ps(t0, t2, 0x44), q[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  q[2] = _mm256_shuffle_ps(t1, t3, 0x44), q[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/// Tensor-product sums of 8 points at once for kernels of 4 taps (cubic B-spline, Keys) in 2D/3D
/// float, when every tap of every point lies inside the array (apply_interior's condition). The 4
/// axis-0 taps of each row are contiguous: the rows of the 8 points are loaded and transposed
/// (4 x 8), so that every sum runs over the 8 points in one AVX vector and the weights stay in
/// their batched layout w[axis][tap][point]. Same sums, same order of additions per point as
/// apply_interior up to the association of the axis-0 sum (within float rounding).
/// base[p]: first tap of point p; val[p], grad[d][p] (d/dx_d, voxel units, when Grad).
/// The row of tap (j, k) of point a is at rowptr(a, j, k): base[a] + j s1 + k s2 inside the array
/// (apply_interior4_x8), or one offset per row for folded indices (general_x8).
template <int D, bool Grad, class RowPtr>
inline void apply_rows4_x8(RowPtr rowptr, const float (*w)[4][8], const float (*dw)[4][8], float* val,
                           float (*grad)[8]) {
  static_assert(D == 2 || D == 3);
  if constexpr (!Grad) {
    // Values only: rows of points a and a+4 share a vector and are weighted by the (j, k)
    // weight of each, spread over their 4 lanes by one in-lane permute (points a and a+4 are
    // element a of the two 128-bit halves; a cross-lane vpermps costs 3 uops and 4 cycles of
    // throughput on Zen 1); the axis-0 weights and the sums over the 4 lanes come once at the end
    // (fewer shuffles than transposing every row).
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int k = 0; k < (D == 3 ? 4 : 1); ++k) {
      const __m256 w2 = D == 3 ? _mm256_loadu_ps(w[D - 1][k]) : _mm256_set1_ps(1.0f);
      for (int j = 0; j < 4; ++j) {
        const __m256 wjk = D == 3 ? _mm256_mul_ps(w2, _mm256_loadu_ps(w[1][j])) : _mm256_loadu_ps(w[1][j]);
        auto pair = [&](int a) {
          return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(rowptr(a, j, k))),
                                      _mm_loadu_ps(rowptr(a + 4, j, k)), 1);
        };
        acc0 = _mm256_fmadd_ps(_mm256_permute_ps(wjk, 0x00), pair(0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_permute_ps(wjk, 0x55), pair(1), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_permute_ps(wjk, 0xAA), pair(2), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_permute_ps(wjk, 0xFF), pair(3), acc3);
      }
    }
    // axis-0 weights from [tap][point] to the pair layout [w0(a, 0..3) | w0(a + 4, 0..3)]
    __m256 q[4];
    taps_by_point4_x8(w[0], q);
    const __m256 h01 = _mm256_hadd_ps(_mm256_mul_ps(acc0, q[0]), _mm256_mul_ps(acc1, q[1]));
    const __m256 h23 = _mm256_hadd_ps(_mm256_mul_ps(acc2, q[2]), _mm256_mul_ps(acc3, q[3]));
    _mm256_storeu_ps(val, _mm256_hadd_ps(h01, h23));
    return;
  }
  const __m256 w00 = _mm256_loadu_ps(w[0][0]), w01 = _mm256_loadu_ps(w[0][1]);
  const __m256 w02 = _mm256_loadu_ps(w[0][2]), w03 = _mm256_loadu_ps(w[0][3]);
  __m256 d00, d01, d02, d03;
  if constexpr (Grad) {
    d00 = _mm256_loadu_ps(dw[0][0]), d01 = _mm256_loadu_ps(dw[0][1]);
    d02 = _mm256_loadu_ps(dw[0][2]), d03 = _mm256_loadu_ps(dw[0][3]);
  }
  __m256 v = _mm256_setzero_ps(), g0 = v, g1 = v, g2 = v;
  for (int k = 0; k < (D == 3 ? 4 : 1); ++k) {
    __m256 pv = _mm256_setzero_ps(), p0 = pv, p1 = pv;
    for (int j = 0; j < 4; ++j) {
      auto pair = [&](int a) {
        return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(rowptr(a, j, k))),
                                    _mm_loadu_ps(rowptr(a + 4, j, k)), 1);
      };
      const __m256 a0 = pair(0), a1 = pair(1), a2 = pair(2), a3 = pair(3);
      const __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
      const __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
      const __m256 c0 = _mm256_shuffle_ps(t0, t2, 0x44), c1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 c2 = _mm256_shuffle_ps(t1, t3, 0x44), c3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 r = _mm256_fmadd_ps(w03, c3, _mm256_fmadd_ps(w02, c2, _mm256_fmadd_ps(w01, c1, _mm256_mul_ps(w00, c0))));
      const __m256 w1 = _mm256_loadu_ps(w[1][j]);
      pv = _mm256_fmadd_ps(w1, r, pv);
      if constexpr (Grad) {
        const __m256 rd =
            _mm256_fmadd_ps(d03, c3, _mm256_fmadd_ps(d02, c2, _mm256_fmadd_ps(d01, c1, _mm256_mul_ps(d00, c0))));
        p0 = _mm256_fmadd_ps(w1, rd, p0);
        p1 = _mm256_fmadd_ps(_mm256_loadu_ps(dw[1][j]), r, p1);
      }
    }
    if constexpr (D == 3) {
      const __m256 w2 = _mm256_loadu_ps(w[2][k]);
      v = _mm256_fmadd_ps(w2, pv, v);
      if constexpr (Grad) {
        g0 = _mm256_fmadd_ps(w2, p0, g0);
        g1 = _mm256_fmadd_ps(w2, p1, g1);
        g2 = _mm256_fmadd_ps(_mm256_loadu_ps(dw[2][k]), pv, g2);
      }
    } else {
      v = pv;
      g0 = p0;
      g1 = p1;
    }
  }
  _mm256_storeu_ps(val, v);
  if constexpr (Grad) {
    _mm256_storeu_ps(grad[0], g0);
    _mm256_storeu_ps(grad[1], g1);
    if constexpr (D == 3) _mm256_storeu_ps(grad[2], g2);
  }
}

template <int D, bool Grad>
inline void apply_interior4_x8(const float* const* base, int64_t s1, int64_t s2, const float (*w)[4][8],
                               const float (*dw)[4][8], float* val, float (*grad)[8]) {
  apply_rows4_x8<D, Grad>([&](int a, int j, int k) { return base[a] + j * s1 + k * s2; }, w, dw, val, grad);
}

/// Coordinate range [lo, hi) (plus padding) on an axis of n coefficients in which a point is
/// "interior" for a kernel of order K: inside [0, n-1] and all its taps (axis 0: simd_lanes) in
/// the array -- the condition of evaluate_point's fast path, as an interval.
template <int K> struct InteriorRange {
  double lo, hi;
  InteriorRange(int64_t n, int reach) {
    constexpr double h = (K == kKeys || (K & 1)) ? 0.0 : 0.5;
    constexpr int off = K == kKeys ? 1 : K / 2;
    lo = std::max(0.0, double(off) - h);
    hi = std::min(double(n - 1), double(n - reach + off + 1) - h); // hi itself: taps beyond the end
    if (!(hi > lo)) lo = 1.0, hi = 0.0;
  }
};

/// Which of the 8 points are interior (lo <= x < hi on every axis; false for NaN): bit p for point p.
template <int D> inline unsigned interior_mask_x8(const __m256d (&X)[D][2], const double* lo, const double* hi) {
  unsigned mask = 0;
  for (int q = 0; q < 2; ++q) {
    __m256d ok = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    for (int d = 0; d < D; ++d) {
      ok = _mm256_and_pd(ok, _mm256_cmp_pd(X[d][q], _mm256_set1_pd(lo[d]), _CMP_GE_OQ));
      ok = _mm256_and_pd(ok, _mm256_cmp_pd(X[d][q], _mm256_set1_pd(hi[d]), _CMP_LT_OQ));
    }
    mask |= unsigned(_mm256_movemask_pd(ok)) << (4 * q);
  }
  return mask;
}

/// Whether all 8 points (X[d][half] with padding added) are interior: lo <= x < hi on every axis
/// (false for NaN).
template <int D> inline bool all_interior_x8(const __m256d (&X)[D][2], const double* lo, const double* hi) {
  return interior_mask_x8<D>(X, lo, hi) == 0xFF;
}

/// Weights w[axis][tap][point] (dw: their derivatives, when Grad) and first-tap offsets o[point]
/// of 8 interior points (see all_interior_x8) for a 4-tap kernel; last[point] (when given): the
/// first tap along axis D-1. X: coordinates plus padding. Requires strides[1..D-1] < 2^31
/// (offsets are formed by 32 x 32 -> 64-bit products).
template <int K, int D, bool Grad>
inline void interior_weights_x8(const int64_t* strides, const __m256d (&X)[D][2], float (*w)[4][8], float (*dw)[4][8],
                                int64_t* o, int64_t* last = nullptr) {
  static_assert(kernel_taps(K) == 4);
  typedef float vec __attribute__((vector_size(32)));
  constexpr bool odd = K == kKeys || (K & 1);
  const __m256d h = _mm256_set1_pd(odd ? 0.0 : 0.5);
  const __m256i shift = _mm256_set1_epi64x(K == kKeys ? 1 : K / 2);
  __m256i off[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  __m128 fr[2];
  for (int d = 0; d < D; ++d) {
    for (int q = 0; q < 2; ++q) {
      const __m256d fl = _mm256_floor_pd(_mm256_add_pd(X[d][q], h));
      const __m256i st = _mm256_sub_epi64(_mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(fl)), shift);
      if (d == D - 1 && last) _mm256_storeu_si256(reinterpret_cast<__m256i*>(last + 4 * q), st);
      off[q] = _mm256_add_epi64(off[q], d == 0 ? st : _mm256_mul_epi32(st, _mm256_set1_epi64x(strides[d])));
      fr[q] = _mm256_cvtpd_ps(_mm256_sub_pd(X[d][q], fl));
    }
    const __m256 f8 = _mm256_set_m128(fr[1], fr[0]);
    vec f;
    __builtin_memcpy(&f, &f8, sizeof f);
    weights_from_fractions<K, float, 8>(f, w[d], Grad ? dw[d] : nullptr);
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), off[0]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 4), off[1]);
}

/// Values (and gradients) of 8 interior points (see all_interior_x8) for a 4-tap kernel in 2D/3D
/// float: weights, offsets and tap sums all in AVX registers. X: coordinates plus padding.
/// Requires strides[1..D-1] < 2^31.
template <int K, int D, bool Grad>
inline void interior_x8(const float* c, const int64_t* strides, const __m256d (&X)[D][2], float* val,
                        float (*grad)[8]) {
  alignas(32) float w[D][4][8];
  alignas(32) float dw[Grad ? D : 1][4][8];
  alignas(32) int64_t o[8];
  interior_weights_x8<K, D, Grad>(strides, X, w, Grad ? dw : nullptr, o);
  const float* base[8];
  for (int p = 0; p < 8; ++p) base[p] = c + o[p];
  apply_interior4_x8<D, Grad>(base, strides[1], D == 3 ? strides[2] : 0, w, Grad ? dw : nullptr, val, grad);
}

/// The stencils of 8 points anywhere, for a 4-tap kernel in 2D/3D float (general_x8's setup):
/// make_stencil's coordinate mapping and index folding per point, weights for the 8 at once.
/// fix[p]: 0 for a point whose axis-0 taps are contiguous (first tap o0[p]); 2 for one whose
/// axis-0 taps are folded (tap l at x0[l][p]); either way tap l of axis d >= 1 is at offset
/// o[d][l][p] = index * stride, its index along axis D-1 idx[l][p]. 1 for a point that takes
/// cval (outside a constant grid, or not finite): it gets the stencil of a safe coordinate
/// (taps 0..3). Returns false for grid-constant or an axis shorter than 4. xs: coordinates
/// without the padding.
struct Stencils4x8 {
  int fix[8];
  int64_t o0[8], x0[4][8], o[3][4][8], idx[4][8];
  alignas(32) float w[3][4][8];
  alignas(32) float dw[3][4][8];
  float sign[3][8];
};

template <int K, int D, bool Grad>
inline bool stencils4_x8(const int64_t* dims, const int64_t* strides, const double (*xs)[8], Mode mode, int pad,
                         Stencils4x8& s) {
  static_assert(kernel_taps(K) == 4);
  if (mode == Mode::GridConstant) return false;
  for (int d = 0; d < D; ++d)
    if (dims[d] < 4) return false;
  const bool itk = mode == Mode::Itk; // as in make_stencil
  if (itk) mode = itk_inner_mode(K);
  const Mode fold = spline_boundary_mode(mode);
  constexpr double h = (K == kKeys || (K & 1)) ? 0.0 : 0.5;
  constexpr int off = K == kKeys ? 1 : K / 2; // kernel_start(x) = floor(x + h) - off
  alignas(32) double xm[D][8];
  for (int p = 0; p < 8; ++p) s.fix[p] = 0;
  // Mapped coordinates, axis by axis (a point that takes cval on one axis takes it whatever the
  // others): coordinates on the grid [0, n - 1] as they are (map_coordinate leaves them so), the
  // others point by point.
  const __m256d pd = _mm256_set1_pd(double(pad));
  for (int d = 0; d < D; ++d) {
    const int64_t n = dims[d];
    const __m256d top = _mm256_set1_pd(double(n - 1));
    unsigned on = 0;
    for (int q = 0; q < 2; ++q) {
      const __m256d X = _mm256_add_pd(_mm256_loadu_pd(xs[d] + 4 * q), pd);
      _mm256_store_pd(xm[d] + 4 * q, X);
      const __m256d in = _mm256_and_pd(_mm256_cmp_pd(X, _mm256_setzero_pd(), _CMP_GE_OQ), _mm256_cmp_pd(X, top, _CMP_LE_OQ));
      on |= unsigned(_mm256_movemask_pd(in)) << (4 * q);
    }
    _mm256_storeu_ps(s.sign[d], _mm256_set1_ps(1.0f));
    for (int p = 0; p < 8; ++p) {
      if (s.fix[p] == 1) continue;
      double cc = xm[d][p];
      if (!(on >> p & 1)) {
        if (!(std::abs(xs[d][p]) <= kMaxCoordinate) || (itk && !itk_inside(cc, n))) {
          s.fix[p] = 1;
          continue;
        }
        double sg = 1.0;
        if (mode != Mode::Nearest) cc = map_coordinate(cc, n, mode, sg);
        if (!(cc > -1.0 || mode == Mode::Nearest)) s.fix[p] = 1;
        xm[d][p] = cc;
        s.sign[d][p] = float(sg);
      }
      if (d == 0 && s.fix[p] == 0) {
        const int64_t start = kernel_start(cc, K);
        if (start < 0 || start + 3 >= n) s.fix[p] = 2;
      }
    }
  }
  for (int p = 0; p < 8; ++p)
    if (s.fix[p] == 1)
      for (int d = 0; d < D; ++d) xm[d][p] = 1.0, s.sign[d][p] = 1.0f;
  // Starts, fractions and weights SIMD over the 8; tap offsets as vectors, folded point by point
  // where a point's taps leave the axis (start as a double first: only starts inside the axis, or
  // those of axis 0, which fix == 0 keeps inside, are converted to int32).
  typedef float vec __attribute__((vector_size(32)));
  for (int d = 0; d < D; ++d) {
    const int64_t n = dims[d];
    __m128 fr[2];
    __m256i start[2];
    unsigned inside = 0;
    for (int q = 0; q < 2; ++q) {
      const __m256d XM = _mm256_load_pd(xm[d] + 4 * q);
      const __m256d fl = _mm256_floor_pd(_mm256_add_pd(XM, _mm256_set1_pd(h)));
      fr[q] = _mm256_cvtpd_ps(_mm256_sub_pd(XM, fl));
      const __m256d sd = _mm256_sub_pd(fl, _mm256_set1_pd(double(off)));
      const __m256d in = _mm256_and_pd(_mm256_cmp_pd(sd, _mm256_setzero_pd(), _CMP_GE_OQ),
                                       _mm256_cmp_pd(sd, _mm256_set1_pd(double(n - 4)), _CMP_LE_OQ));
      inside |= unsigned(_mm256_movemask_pd(in)) << (4 * q);
      start[q] = _mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(_mm256_and_pd(sd, in))); // 0 outside
    }
    const __m256 f8 = _mm256_set_m128(fr[1], fr[0]);
    vec f;
    __builtin_memcpy(&f, &f8, sizeof f);
    weights_from_fractions<K, float, 8>(f, s.w[d], Grad ? s.dw[d] : nullptr);
    if (d == 0) { // fix == 0 (and 1): inside; fix == 2: folded taps
      for (int q = 0; q < 2; ++q) _mm256_storeu_si256(reinterpret_cast<__m256i*>(s.o0 + 4 * q), start[q]);
      for (int p = 0; p < 8; ++p) {
        if (s.fix[p] != 2) continue;
        const int64_t first = kernel_start(xm[0][p], K);
        for (int l = 0; l < 4; ++l) s.x0[l][p] = fold_index(first + l, n, fold);
      }
      continue;
    }
    const __m256i st = _mm256_set1_epi64x(strides[d]);
    for (int l = 0; l < 4; ++l)
      for (int q = 0; q < 2; ++q) {
        const __m256i idx = _mm256_add_epi64(start[q], _mm256_set1_epi64x(l));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(s.o[d][l] + 4 * q), _mm256_mul_epi32(idx, st));
        if (d == D - 1) _mm256_storeu_si256(reinterpret_cast<__m256i*>(s.idx[l] + 4 * q), idx);
      }
    if (inside == 0xFF) continue;
    for (int p = 0; p < 8; ++p) {
      if (inside >> p & 1) continue;
      const int64_t first = kernel_start(xm[d][p], K);
      for (int l = 0; l < 4; ++l) {
        const int64_t q = fold_index(first + l, n, fold);
        s.o[d][l][p] = q * strides[d];
        if (d == D - 1) s.idx[l][p] = q;
      }
    }
  }
  return true;
}

/// 8 points anywhere, for a 4-tap kernel in 2D/3D float: their stencils (stencils4_x8), tap sums
/// with one pointer per row (for points whose axis-0 taps are folded, a copy of the row's 4 taps);
/// points that take cval get it. Returns false (writing nothing) where stencils4_x8 does; the
/// caller then evaluates point by point. xs: coordinates without the padding (as evaluate_point
/// takes them).
template <int K, int D, bool Grad>
inline bool general_x8(const float* c, const int64_t* dims, const int64_t* strides, const double (*xs)[8], Mode mode,
                       int pad, float cval, float* val, float (*grad)[8]) {
  Stencils4x8 s;
  if (!stencils4_x8<K, D, Grad>(dims, strides, xs, mode, pad, s)) return false;
  constexpr int NK = D == 3 ? 4 : 1;
  const float* rows[8][NK][4];
  alignas(16) float folded[8][NK][4][4]; // rows of the points with fix == 2
  for (int p = 0; p < 8; ++p)
    for (int k = 0; k < NK; ++k)
      for (int j = 0; j < 4; ++j) {
        const float* row = c + s.o[1][j][p] + (D == 3 ? s.o[D - 1][k][p] : 0);
        if (s.fix[p] != 2) {
          rows[p][k][j] = row + s.o0[p];
          continue;
        }
        for (int l = 0; l < 4; ++l) folded[p][k][j][l] = row[s.x0[l][p]];
        rows[p][k][j] = folded[p][k][j];
      }
  apply_rows4_x8<D, Grad>([&](int a, int j, int k) { return rows[a][k][j]; }, s.w, Grad ? s.dw : nullptr, val, grad);
  if constexpr (Grad)
    for (int d = 0; d < D; ++d)
      for (int p = 0; p < 8; ++p) grad[d][p] *= s.sign[d][p];
  for (int p = 0; p < 8; ++p) {
    if (s.fix[p] != 1) continue;
    val[p] = cval;
    if constexpr (Grad)
      for (int d = 0; d < D; ++d) grad[d][p] = 0.0f;
  }
  return true;
}

/// Whether the AVX2 batches of 8 apply: float, 4-tap kernels, 2D/3D (and, at run time,
/// strides_fit_int32).
template <class T, int K, int D> constexpr bool x8_kernel = std::is_same_v<T, float> && kernel_taps(K) == 4 && D >= 2;
inline bool strides_fit_int32(const int64_t* strides) {
  return strides[1] < (int64_t(1) << 31) && strides[2] < (int64_t(1) << 31);
}

/// Interior intervals [lo[d], hi[d]) of every axis for all_interior_x8.
template <int K, int D> inline void interior_bounds_x8(const int64_t* dims, double* lo, double* hi) {
  for (int d = 0; d < D; ++d) {
    const InteriorRange<K> r(dims[d], d == 0 ? simd_lanes(K) : kernel_taps(K));
    lo[d] = r.lo;
    hi[d] = r.hi;
  }
}

/// Coordinates (without padding) of the 8 voxels (i0..i0+7, j, k) displaced by a field whose 8
/// values per component are contiguous at u[d * ustride]: index + u, rounded as point by point.
template <int D>
inline void field_coords_x8(const float* u, int64_t ustride, int64_t i0, int64_t j, int64_t k, double (*xs)[8]) {
  const double jk[3] = {0.0, double(j), double(k)};
  for (int d = 0; d < D; ++d) {
    const __m256 ud = _mm256_loadu_ps(u + d * ustride);
    const __m256d b0 = d == 0 ? _mm256_setr_pd(double(i0), double(i0 + 1), double(i0 + 2), double(i0 + 3))
                              : _mm256_set1_pd(jk[d]);
    const __m256d b1 = d == 0 ? _mm256_setr_pd(double(i0 + 4), double(i0 + 5), double(i0 + 6), double(i0 + 7))
                              : _mm256_set1_pd(jk[d]);
    _mm256_storeu_pd(xs[d], _mm256_add_pd(b0, _mm256_cvtps_pd(_mm256_castps256_ps128(ud))));
    _mm256_storeu_pd(xs[d] + 4, _mm256_add_pd(b1, _mm256_cvtps_pd(_mm256_extractf128_ps(ud, 1))));
  }
}

/// 8 points at coordinates xs (without padding): interior_x8 when all are interior (bounds from
/// interior_bounds_x8), else general_x8. Returns false when neither applies (see general_x8).
template <int K, int D, bool Grad>
inline bool eval_x8(const float* c, const int64_t* dims, const int64_t* strides, const double (*xs)[8], Mode mode,
                    int pad, float cval, const double* lo, const double* hi, float* val, float (*grad)[8]) {
  __m256d X[D][2];
  const __m256d pd = _mm256_set1_pd(double(pad));
  for (int d = 0; d < D; ++d) {
    X[d][0] = _mm256_add_pd(_mm256_loadu_pd(xs[d]), pd);
    X[d][1] = _mm256_add_pd(_mm256_loadu_pd(xs[d] + 4), pd);
  }
  if (all_interior_x8<D>(X, lo, hi)) {
    interior_x8<K, D, Grad>(c, strides, X, val, grad);
    return true;
  }
  return general_x8<K, D, Grad>(c, dims, strides, xs, mode, pad, cval, val, grad);
}
} // namespace voxalign::detail
#endif
