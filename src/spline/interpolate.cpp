#include "voxalign/spline/interpolate.hpp"

#include <algorithm>
#include <cmath>

#include "evaluate.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"

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

template <class T> CoeffView<T> coeff_view(const Coefficients<T>& c) {
  CoeffView<T> v{};
  const auto iv = c.image.view();
  v.data = iv.data;
  for (int d = 0; d < 3; ++d) v.dims[d] = iv.dims[d], v.strides[d] = iv.strides[d];
  v.pad = c.pad;
  v.mode = c.mode;
  v.cval = T(c.cval);
  v.order = c.order;
  v.ndim = c.ndim;
  return v;
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
      const int reach = d == 0 ? detail::simd_lanes(K) : W;
      const double hi = double(cv.dims[d] - 1);
      for (int p = 0; p < N && all_in; ++p) {
        const double cc = xs[d][p] + cv.pad;
        all_in = cc >= 0.0 && cc <= hi; // false for NaN too: checked before any conversion
        if (!all_in) break;
        const int64_t start = kernel_start(cc, K);
        all_in = start >= 0 && start + reach - 1 < cv.dims[d];
      }
    }
  }
  if (!all_in) {
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
void interpolate(const Coefficients<T>& c, const double* points, int64_t npts, T* values, T* grads) {
  const CoeffView<T> cv = coeff_view(c);
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

template <class T> void warp_displacement(const Coefficients<T>& c, ImageView<const T> field, ImageView<T> out) {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(field.dims[d] == out.dims[d], InvalidArgument, "displacement field grid (axis ", d, ": ", field.dims[d],
             ") differs from the output grid (", out.dims[d], ")");
  VX_CHECK(field.dims[3] == c.ndim, InvalidArgument, "displacement field has ", field.dims[3],
           " components; expected ", c.ndim);
  const int nd = c.ndim;
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
    const double lo = double(W);
    parallel_for(ni * nj * nk, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t % ni, tj = (t / ni) % nj, tk = t / (ni * nj);
      const int64_t i_begin = ti * TI, i_end = std::min(out.dims[0], i_begin + TI);
      for (int64_t k = tk * TK; k < std::min(out.dims[2], (tk + 1) * TK); ++k)
      for (int64_t j = tj * TJ; j < std::min(out.dims[1], (tj + 1) * TJ); ++j) {
        T* row = out.data + j * out.strides[1] + k * out.strides[2];
        const int64_t n = out.dims[0];
        double b[3], st[3];
        int64_t ilo = 0, ihi = n; // interior range of i, conservative by one voxel at each end
        for (int d = 0; d < D; ++d) {
          const double* m = M + 4 * d;
          b[d] = m[1] * double(j) + m[2] * double(k) + m[3] + cv.pad;
          st[d] = m[0];
          const double hi = double(cv.dims[d] - 1 - (d == 0 ? detail::simd_lanes(K) : W));
          if (!(hi > lo)) { ihi = 0; continue; }
          if (st[d] == 0.0) {
            if (!(b[d] >= lo && b[d] <= hi)) ihi = 0;
            continue;
          }
          double a = (lo - b[d]) / st[d], e = (hi - b[d]) / st[d];
          if (a > e) std::swap(a, e);
          // Clamp before converting: a near-zero step (a matrix that is the identity up to
          // rounding, 1e-34) puts a and e near +-1e34, beyond int64's range.
          ilo = std::max<int64_t>(ilo, int64_t(std::ceil(std::clamp(a, -1.0, double(n)))) + 1);
          ihi = std::min<int64_t>(ihi, int64_t(std::floor(std::clamp(e, -1.0, double(n)))) - 1);
        }
        if (ihi < ilo) ilo = ihi = 0;
        ilo = std::clamp(ilo, i_begin, i_end);
        ihi = std::clamp(ihi, ilo, i_end);
        double x[3];
        auto general = [&](int64_t i) {
          for (int d = 0; d < D; ++d) x[d] = b[d] - cv.pad + st[d] * double(i);
          row[i * out.strides[0]] = detail::evaluate_point<K, D, T, false>(cv.data, cv.dims, cv.strides, x, cv.mode,
                                                                          cv.pad, cv.cval, nullptr);
        };
        for (int64_t i = i_begin; i < ilo; ++i) general(i);
        // Interior: weights for a batch of points at once (SIMD over points), then the tensor sums.
        constexpr int N = kBatch<T>;
        for (int64_t i0 = ilo; i0 < ihi; i0 += N) {
          const int m = int(std::min<int64_t>(N, ihi - i0));
          double xs[3][N];
          for (int d = 0; d < D; ++d)
            for (int p = 0; p < N; ++p) xs[d][p] = b[d] - cv.pad + st[d] * double(i0 + std::min(p, m - 1));
          eval_batch<K, D, T, true>(cv, xs, m, row + i0 * out.strides[0], out.strides[0]);
        }
        for (int64_t i = ihi; i < i_end; ++i) general(i);
      }
      }
    });
  });
}

#define VX_INSTANTIATE(T)                                                                                   \
  template void interpolate(const Coefficients<T>&, const double*, int64_t, T*, T*);                        \
  template void warp_displacement(const Coefficients<T>&, ImageView<const T>, ImageView<T>);                \
  template void warp_affine(const Coefficients<T>&, const double*, ImageView<T>);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
