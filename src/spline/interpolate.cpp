#include "voxalign/spline/interpolate.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <utility>

#include "voxalign/kernel/cpu/evaluate.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/spline/point_map.hpp"

namespace voxalign {
namespace {

template <class T> struct CoeffView {
  const T* data;
  int64_t dims[3];
  int64_t strides[3];
  int pad;
  Mode mode;
  T cval;
  int order;
  int ndim;
};

template <class T> CoeffView<T> coeff_view(ImageView<const T> iv, int ndim, int order, Mode mode, int pad, double cval) {
  CoeffView<T> v{};
  v.data = iv.data;
  for (int d = 0; d < 3; ++d) v.dims[d] = iv.dims[d], v.strides[d] = iv.strides[d];
  v.pad = pad;
  v.mode = mode;
  v.cval = T(cval);
  v.order = order;
  v.ndim = ndim;
  return v;
}

template <class T> CoeffView<T> coeff_view(const Coefficients<T>& c) {
  return coeff_view<T>(c.image.view(), c.ndim, c.order, c.mode, c.pad, c.cval);
}

// Range [ilo, ihi) of i for which lo[d] <= b[d] + st[d] * i <= hi[d] on every axis d, made
// conservative (grow < 0: shrunk by one voxel at each end) or generous (grow > 0: widened by one).
template <int D>
std::pair<int64_t, int64_t> row_range(const double* b, const double* st, const double* lo, const double* hi,
                                      int64_t n, int grow) {
  int64_t ilo = 0, ihi = n;
  for (int d = 0; d < D; ++d) {
    if (grow < 0 ? !(hi[d] > lo[d]) : !(hi[d] >= lo[d])) return {0, 0};
    if (st[d] == 0.0) {
      if (!(b[d] >= lo[d] && b[d] <= hi[d])) return {0, 0};
      continue;
    }
    double a = (lo[d] - b[d]) / st[d], e = (hi[d] - b[d]) / st[d];
    if (a > e) std::swap(a, e);
    // Clamp before converting: a near-zero step (a matrix that is the identity up to rounding,
    // 1e-34) puts a and e near +-1e34, beyond int64's range.
    ilo = std::max<int64_t>(ilo, int64_t(std::ceil(std::clamp(a, -2.0, double(n + 1)))) - grow);
    ihi = std::min<int64_t>(ihi, int64_t(std::floor(std::clamp(e, -2.0, double(n + 1)))) + (grow < 0 ? grow : grow + 1));
  }
  if (ihi < ilo) return {0, 0};
  return {ilo, ihi};
}

// Write the 8 values produced by f(float* v) to out[p * ostride].
template <class T, class F> inline void store_x8(T* out, int64_t ostride, F&& f) {
  if (ostride == 1) {
    f(out);
    return;
  }
  float v[8] = {}; // f may write nothing (its caller then evaluates the 8 otherwise)
  f(v);
  for (int p = 0; p < 8; ++p) out[p * ostride] = v[p];
}

// Points evaluated together: 8 for float (one AVX vector of weights), 4 for double.
template <class T> constexpr int kBatch = sizeof(T) == 4 ? 8 : 4;

// Evaluate up to kBatch points whose coordinates (voxels of the un-padded image) are xs[d][p],
// writing out[p * ostride]. When all are interior (checked here unless Known), their weights are
// computed together (SIMD over points); other points take evaluate_point's own paths.
template <int K, int D, class T, bool Known>
inline void eval_batch(const CoeffView<T>& cv, const double (*xs)[kBatch<T>], int m, T* out, int64_t ostride) {
  constexpr int W = kernel_taps(K);
  constexpr int N = kBatch<T>;
  bool all_in = m == N;
  if constexpr (!Known) {
    for (int d = 0; d < D && all_in; ++d) {
      int64_t start;
      for (int p = 0; p < N && all_in; ++p)
        all_in = detail::interior_tap<K>(xs[d][p] + cv.pad, cv.dims[d], detail::interior_reach<K>(d), start);
    }
  }
  if (!all_in) {
#ifdef VX_HAVE_AVX2_TAPS
    if constexpr (detail::x8_kernel<T, K, D>) {
      float v[8];
      if (m == N && detail::strides_fit_int32(cv.strides) &&
          detail::general_x8<K, D, false>(cv.data, cv.dims, cv.strides, xs, cv.mode, cv.pad, cv.cval, v, nullptr)) {
        for (int p = 0; p < N; ++p) out[p * ostride] = v[p];
        return;
      }
    }
#endif
    for (int p = 0; p < m; ++p) {
      double x[3];
      for (int d = 0; d < D; ++d) x[d] = xs[d][p];
      out[p * ostride] =
          detail::evaluate_point<K, D, T, false>(cv.data, cv.dims, cv.strides, x, cv.mode, cv.pad, cv.cval, nullptr);
    }
    return;
  }
  T wb[D][W][N];
  int64_t off[N] = {};
  for (int d = 0; d < D; ++d) {
    double cc[N];
    int64_t start[N];
    for (int p = 0; p < N; ++p) cc[p] = xs[d][p] + cv.pad;
    kernel_weights_batch<K, T, N>(cc, wb[d], start);
    for (int p = 0; p < N; ++p) off[p] += start[p] * cv.strides[d];
  }
  for (int p = 0; p < m; ++p)
    out[p * ostride] = detail::apply_interior<K, D, T, false>(cv.data + off[p], cv.strides, &wb[0][0][p], nullptr,
                                                              W * N, N, nullptr);
}

// Evaluate over the voxels of an output grid (dims[0..2]); point(i, j, k, x) fills the input
// coordinate x[0..D-1] of voxel (i, j, k). Rows are the unit of parallel work.
template <class T, class PointFn> void eval_grid(const CoeffView<T>& cv, ImageView<T> out, PointFn point) {
  const int64_t nrows = out.dims[1] * out.dims[2];
  detail::dispatch_kernel(cv.order, cv.ndim, [&]<int K, int D>() {
    parallel_for(nrows, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t j = r % out.dims[1], k = r / out.dims[1];
        T* row = out.data + j * out.strides[1] + k * out.strides[2];
        constexpr int N = kBatch<T>;
        for (int64_t i0 = 0; i0 < out.dims[0]; i0 += N) {
          const int m = int(std::min<int64_t>(N, out.dims[0] - i0));
          double xs[3][N], x[3] = {0, 0, 0};
          for (int p = 0; p < N; ++p) {
            point(i0 + std::min(p, m - 1), j, k, x);
            for (int d = 0; d < D; ++d) xs[d][p] = x[d];
          }
          eval_batch<K, D, T, false>(cv, xs, m, row + i0 * out.strides[0], out.strides[0]);
        }
      }
    });
  });
}

} // namespace

template <class T>
void interpolate_view(const CoeffView<T>& cv, const double* points, int64_t npts, T* values, T* grads) {
  detail::dispatch_kernel(cv.order, cv.ndim, [&]<int K, int D>() {
    parallel_for(npts, 4096, [&](int64_t p0, int64_t p1) {
      if (!grads) {
        constexpr int N = kBatch<T>;
        for (int64_t q0 = p0; q0 < p1; q0 += N) {
          const int m = int(std::min<int64_t>(N, p1 - q0));
          double xs[3][N];
          for (int p = 0; p < N; ++p)
            for (int d = 0; d < D; ++d) xs[d][p] = points[(q0 + std::min(p, m - 1)) * D + d];
          eval_batch<K, D, T, false>(cv, xs, m, values + q0, 1);
        }
        return;
      }
      for (int64_t p = p0; p < p1; ++p)
        values[p] = detail::evaluate_point<K, D, T, true>(cv.data, cv.dims, cv.strides, points + p * D, cv.mode, cv.pad,
                                                          cv.cval, grads + p * D);
    });
  });
}

template <class T>
void interpolate(const Coefficients<T>& c, const double* points, int64_t npts, T* values, T* grads) {
  interpolate_view(coeff_view(c), points, npts, values, grads);
}

template <class T>
void interpolate(ImageView<const T> coeffs, int ndim, int order, Mode mode, int pad, double cval, const double* points,
                 int64_t npts, T* values, T* grads) {
  VX_CHECK(coeffs.strides[0] == 1, InvalidArgument, "interpolate: coefficients must be contiguous along axis 0");
  VX_CHECK(ndim >= 1 && ndim <= 3, InvalidArgument, "interpolate: 1 to 3 axes, not ", ndim);
  interpolate_view(coeff_view<T>(coeffs, ndim, order, mode, pad, cval), points, npts, values, grads);
}

#ifdef VX_HAVE_AVX2_TAPS
// warp_displacement for float, 4-tap kernels, 2D/3D and a field contiguous along i: the
// coordinates of 8 voxels come from 8 consecutive field values per component, and batches whose
// points are all interior take interior_x8; the others (and a row's last < 8 voxels) the same
// paths as eval_grid.
void warp_displacement_x8(const CoeffView<float>& cv, ImageView<const float> field, ImageView<float> out) {
  // Tiles of kTile x kTile rows (j, k) are the unit of work, j fastest within a tile: a tile's
  // input footprint (its rows, the kernel's reach and the field's spread, over ~10 planes) stays in
  // L2 while the tile's planes reuse it, where plane-by-plane order re-reads every input plane
  // from L3 or memory several times.
  constexpr int64_t kTile = 16;
  const int64_t nj = (out.dims[1] + kTile - 1) / kTile, nk = (out.dims[2] + kTile - 1) / kTile;
  detail::dispatch_kernel(cv.order, cv.ndim, [&]<int K, int D>() {
    if constexpr (detail::x8_kernel<float, K, D>) {
      double lo[3], hi[3];
      detail::interior_bounds_x8<K, D>(cv.dims, lo, hi);
      parallel_for(nj * nk, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
        for (int64_t k = (t / nj) * kTile; k < std::min(out.dims[2], (t / nj + 1) * kTile); ++k)
        for (int64_t j = (t % nj) * kTile; j < std::min(out.dims[1], (t % nj + 1) * kTile); ++j) {
          float* row = out.data + j * out.strides[1] + k * out.strides[2];
          for (int64_t i0 = 0; i0 < out.dims[0]; i0 += 8) {
            const int m = int(std::min<int64_t>(8, out.dims[0] - i0));
            double xs[3][8];
            if (m == 8) {
              detail::field_coords_x8<D>(field.data + field.offset(i0, j, k), field.strides[3], i0, j, k, xs);
              bool done = false;
              store_x8(row + i0 * out.strides[0], out.strides[0], [&](float* v) {
                done = detail::eval_x8<K, D, false>(cv.data, cv.dims, cv.strides, xs, cv.mode, cv.pad, cv.cval, lo, hi,
                                                    v, nullptr);
              });
              if (done) continue;
            } else {
              for (int p = 0; p < 8; ++p) {
                const int64_t i = i0 + std::min(p, m - 1);
                const int64_t idx[3] = {i, j, k};
                for (int d = 0; d < D; ++d)
                  xs[d][p] = double(idx[d]) + double(field.data[field.offset(i, j, k) + d * field.strides[3]]);
              }
            }
            eval_batch<K, D, float, false>(cv, xs, m, row + i0 * out.strides[0], out.strides[0]);
          }
        }
      });
    }
  });
}
#endif

template <class T> void warp_displacement(const Coefficients<T>& c, ImageView<const T> field, ImageView<T> out) {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(field.dims[d] == out.dims[d], InvalidArgument, "displacement field grid (axis ", d, ": ", field.dims[d],
             ") differs from the output grid (", out.dims[d], ")");
  VX_CHECK(field.dims[3] == c.ndim, InvalidArgument, "displacement field has ", field.dims[3],
           " components; expected ", c.ndim);
  const int nd = c.ndim;
#ifdef VX_HAVE_AVX2_TAPS
  if constexpr (std::is_same_v<T, float>) {
    const CoeffView<T> cv = coeff_view(c);
    if (field.strides[0] == 1 && detail::strides_fit_int32(cv.strides) && kernel_taps(c.order) == 4 && nd >= 2) {
      warp_displacement_x8(cv, field, out);
      return;
    }
  }
#endif
  eval_grid(coeff_view(c), out, [&](int64_t i, int64_t j, int64_t k, double* x) {
    const int64_t o = field.offset(i, j, k);
    const int64_t idx[3] = {i, j, k};
    for (int d = 0; d < nd; ++d) x[d] = double(idx[d]) + double(field.data[o + d * field.strides[3]]);
  });
}

template <class T> void warp_affine(const Coefficients<T>& c, const double* M, ImageView<T> out) {
  const CoeffView<T> cv = coeff_view(c);
  // Tiles of the output (TI x TJ x TK voxels) are the unit of work: a tile's input footprint stays
  // in cache, whatever the rotation. Tiling does not depend on the thread count.
  constexpr int64_t TI = 64, TJ = 8, TK = 8;
  const int64_t ni = (out.dims[0] + TI - 1) / TI, nj = (out.dims[1] + TJ - 1) / TJ, nk = (out.dims[2] + TK - 1) / TK;
  detail::dispatch_kernel(cv.order, cv.ndim, [&]<int K, int D>() {
    constexpr int W = kernel_taps(K);
    // A point is "interior" when its coordinate (plus padding) lies in [lo, hi_d] on every axis:
    // then no boundary mapping or folding applies and all taps are in the array.
    const double lo[3] = {double(W), double(W), double(W)};
    const bool fused = detail::strides_fit_int32(cv.strides);
    parallel_for(ni * nj * nk, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t % ni, tj = (t / ni) % nj, tk = t / (ni * nj);
      const int64_t i_begin = ti * TI, i_end = std::min(out.dims[0], i_begin + TI);
      for (int64_t k = tk * TK; k < std::min(out.dims[2], (tk + 1) * TK); ++k)
      for (int64_t j = tj * TJ; j < std::min(out.dims[1], (tj + 1) * TJ); ++j) {
        T* row = out.data + j * out.strides[1] + k * out.strides[2];
        const int64_t n = out.dims[0];
        // Coordinate d of voxel i: affine_coord(st[d], i, r[d]) (point_map.hpp, as every operator
        // computes it); b = r + pad only bounds the ranges below.
        double r[3], b[3], st[3];
        for (int d = 0; d < D; ++d) {
          r[d] = affine_row(M + 4 * d, j, k);
          b[d] = r[d] + cv.pad;
          st[d] = M[4 * d];
        }
        // Interior range of i, conservative by one voxel at each end.
        double his[3];
        for (int d = 0; d < D; ++d) his[d] = double(cv.dims[d] - 1 - (d == 0 ? detail::simd_lanes(K) : W));
        auto [ilo, ihi] = row_range<D>(b, st, lo, his, n, -1);
        ilo = std::clamp(ilo, i_begin, i_end);
        ihi = std::clamp(ihi, ilo, i_end);
        // Mode 'constant': outside the range where every coordinate may lie in [0, n-1]
        // (generous by one voxel), the value is cval; mode 'itk' likewise with [-0.5, n-0.5].
        int64_t vlo = i_begin, vhi = i_end;
        if (cv.mode == Mode::Constant || cv.mode == Mode::Itk) {
          const double e = cv.mode == Mode::Itk ? 0.5 : 0.0;
          double zl[3] = {-e, -e, -e}, zh[3];
          for (int d = 0; d < D; ++d) zh[d] = double(cv.dims[d] - 1) + e;
          std::tie(vlo, vhi) = row_range<D>(b, st, zl, zh, n, +1);
          vlo = std::clamp(vlo, i_begin, ilo);
          vhi = std::clamp(vhi, ihi, i_end);
        }
        double x[3];
        auto general = [&](int64_t i) {
          for (int d = 0; d < D; ++d) x[d] = affine_coord(st[d], i, r[d]);
          row[i * out.strides[0]] = detail::evaluate_point<K, D, T, false>(cv.data, cv.dims, cv.strides, x, cv.mode,
                                                                          cv.pad, cv.cval, nullptr);
        };
        for (int64_t i = i_begin; i < vlo; ++i) row[i * out.strides[0]] = cv.cval;
        // Rows' ends (boundary mapping, folded taps) in batches too: eval_batch checks each.
        auto edge = [&](int64_t a, int64_t e) {
          constexpr int N = kBatch<T>;
          for (; a + N <= e; a += N) {
            double xs[3][N];
            for (int d = 0; d < D; ++d)
              for (int p = 0; p < N; ++p) xs[d][p] = affine_coord(st[d], a + p, r[d]);
            eval_batch<K, D, T, false>(cv, xs, N, row + a * out.strides[0], out.strides[0]);
          }
          for (; a < e; ++a) general(a);
        };
        edge(vlo, ilo);
        // Interior: weights for a batch of points at once (SIMD over points), then the tensor sums.
        constexpr int N = kBatch<T>;
        int64_t i0 = ilo;
#ifdef VX_HAVE_AVX2_TAPS
        if constexpr (detail::x8_kernel<T, K, D>) {
          if (fused) {
            const __m256d io0 = _mm256_setr_pd(0, 1, 2, 3), io1 = _mm256_setr_pd(4, 5, 6, 7);
            for (; i0 + 8 <= ihi; i0 += 8) {
              __m256d X[D][2];
              const __m256d ib = _mm256_set1_pd(double(i0));
              for (int d = 0; d < D; ++d) {
                const __m256d sd = _mm256_set1_pd(st[d]), rd = _mm256_set1_pd(r[d]);
                const __m256d pd = _mm256_set1_pd(double(cv.pad));
                // affine_coord (an fma), plus the padding
                X[d][0] = _mm256_add_pd(_mm256_fmadd_pd(sd, _mm256_add_pd(ib, io0), rd), pd);
                X[d][1] = _mm256_add_pd(_mm256_fmadd_pd(sd, _mm256_add_pd(ib, io1), rd), pd);
              }
              store_x8(row + i0 * out.strides[0], out.strides[0], [&](float* v) {
                detail::interior_x8<K, D, false>(cv.data, cv.strides, X, v, nullptr);
              });
            }
          }
        }
#endif
        for (; i0 < ihi; i0 += N) {
          const int m = int(std::min<int64_t>(N, ihi - i0));
          double xs[3][N];
          for (int d = 0; d < D; ++d)
            for (int p = 0; p < N; ++p) xs[d][p] = affine_coord(st[d], i0 + std::min(p, m - 1), r[d]);
          eval_batch<K, D, T, true>(cv, xs, m, row + i0 * out.strides[0], out.strides[0]);
        }
        edge(ihi, vhi);
        for (int64_t i = vhi; i < i_end; ++i) row[i * out.strides[0]] = cv.cval;
      }
      }
    });
  });
}

#define VX_INSTANTIATE(T)                                                                                   \
  template void interpolate(const Coefficients<T>&, const double*, int64_t, T*, T*);                        \
  template void interpolate(ImageView<const T>, int, int, Mode, int, double, const double*, int64_t, T*, T*);  \
  template void warp_displacement(const Coefficients<T>&, ImageView<const T>, ImageView<T>);                \
  template void warp_affine(const Coefficients<T>&, const double*, ImageView<T>);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
