// Derivatives of the warp: the interpolated image's value and gradient at every warped point, and
// from them the JVP/VJP with respect to the displacement field and the affine parameters' moments.
#include "internal.hpp"

namespace voxalign {
using namespace warp_detail;
namespace {

/// Calls sink(block, i, j, k, value, grad) for every voxel of the output grid `dims`, with the value
/// and gradient of the interpolated image at the voxel's warped point (x + u(x), or M x without a
/// field). Rows are the unit of work (block = first row of the work block); along a row, points
/// whose stencils are all inside the coefficient grid are done 8 (float) or 4 (double) at a time.
/// Batch sinks return whether they took the 8 points (i0..i0+7, j, k): values v8 and gradients
/// g8[d]; when they return false, the points go to the per-point sink.
struct NoBatchSink {
  bool operator()(int64_t, int64_t, int64_t, int64_t, const float*, const float (*)[8]) const { return false; }
};

template <class T, class Sink, class Batch = NoBatchSink>
void for_each_warped_gradient(const Coefficients<T>& c, ImageView<const T> field, const int64_t* dims, Sink&& sink,
                              const double* M = nullptr, Batch&& batch = Batch{}) {
  const auto cv = c.image.view();
  const PointOf<T> point{field, M, c.ndim};
  detail::dispatch_kernel(c.order, c.ndim, [&]<int K, int D>() {
    constexpr int W = kernel_taps(K);
    constexpr int N = sizeof(T) == 4 ? 8 : 4;
#ifdef VX_HAVE_AVX2_TAPS
    double lo8[3] = {0, 0, 0}, hi8[3] = {0, 0, 0};
    detail::interior_bounds_x8<K, D>(cv.dims, lo8, hi8);
    const bool x8_ok = detail::strides_fit_int32(cv.strides);
    const bool vec_field = field.data && field.strides[0] == 1;
#endif
    parallel_for(dims[1] * dims[2], kRowGrain, [&](int64_t r0, int64_t r1) {
      double xs[3][N], x[3] = {0, 0, 0};
      T wb[3][W][N], dwb[3][W][N];
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t j = r % dims[1], k = r / dims[1];
        for (int64_t i0 = 0; i0 < dims[0]; i0 += N) {
          const int m = int(std::min<int64_t>(N, dims[0] - i0));
#ifdef VX_HAVE_AVX2_TAPS
          // Float, 4-tap kernels: the 8 points' coordinates (loaded as vectors from a field
          // contiguous along i), the interior test and the sums in AVX registers.
          if constexpr (detail::x8_kernel<T, K, D>) {
            if (x8_ok && m == N) {
              coords_x8<D>(point, vec_field, i0, m, j, k, xs);
              alignas(32) float v8[8], g8[3][8];
              if (detail::eval_x8<K, D, true>(cv.data, cv.dims, cv.strides, xs, c.mode, c.pad, T(c.cval), lo8, hi8, v8,
                                              g8)) {
                if (batch(r0, i0, j, k, v8, g8)) continue;
                for (int p = 0; p < N; ++p) {
                  std::array<T, 3> g{};
                  for (int d = 0; d < D; ++d) g[d] = g8[d][p];
                  sink(r0, i0 + p, j, k, v8[p], g);
                }
                continue;
              }
            }
          }
#endif
          for (int p = 0; p < N; ++p) {
            point(i0 + std::min(p, m - 1), j, k, x);
            for (int d = 0; d < D; ++d) xs[d][p] = x[d];
          }
          bool all_in = m == N;
          for (int d = 0; d < D && all_in; ++d) {
            int64_t st;
            for (int p = 0; p < N && all_in; ++p)
              all_in = detail::interior_tap<K>(xs[d][p] + c.pad, cv.dims[d], detail::interior_reach<K>(d), st);
          }
          if (all_in) {
            int64_t off[N] = {};
            for (int d = 0; d < D; ++d) {
              double cc[N];
              int64_t start[N];
              for (int p = 0; p < N; ++p) cc[p] = xs[d][p] + c.pad;
              kernel_weights_batch<K, T, N>(cc, wb[d], start, dwb[d]);
              for (int p = 0; p < N; ++p) off[p] += start[p] * cv.strides[d];
            }
            for (int p = 0; p < N; ++p) {
              std::array<T, 3> g{};
              const T v = detail::apply_interior<K, D, T, true>(cv.data + off[p], cv.strides, &wb[0][0][p], &dwb[0][0][p],
                                                                W * N, N, g.data());
              sink(r0, i0 + p, j, k, v, g);
            }
            continue;
          }
          for (int p = 0; p < m; ++p) {
            std::array<T, 3> g{};
            for (int d = 0; d < D; ++d) x[d] = xs[d][p];
            const T v = detail::evaluate_point<K, D, T, true>(cv.data, cv.dims, cv.strides, x, c.mode, c.pad, T(c.cval),
                                                              g.data());
            sink(r0, i0 + p, j, k, v, g);
          }
        }
      }
    });
  });
}

} // namespace

template <class T>
void warp_displacement_gradient(const Coefficients<T>& c, ImageView<const T> field, ImageView<T> value,
                                ImageView<T> grad) {
  check_output_grid(field, grad.dims, c.ndim, "warp gradient");
  if (value.data)
    for (int d = 0; d < 3; ++d)
      VX_CHECK(value.dims[d] == grad.dims[d], InvalidArgument, "warp gradient: value grid differs from the gradient's");
  VX_CHECK(grad.dims[3] == c.ndim, InvalidArgument, "warp gradient: the gradient needs ", c.ndim, " components");
  const int nd = c.ndim;
  const bool rows = grad.strides[0] == 1 && (!value.data || value.strides[0] == 1); // 8 voxels are contiguous
  for_each_warped_gradient(
      c, field, grad.dims,
      [&](int64_t, int64_t i, int64_t j, int64_t k, T v, const std::array<T, 3>& g) {
        if (value.data) value(i, j, k) = v;
        for (int d = 0; d < nd; ++d) grad(i, j, k, d) = g[d];
      },
      nullptr,
      [&](int64_t, int64_t i0, int64_t j, int64_t k, const float* v8, const float (*g8)[8]) {
        if constexpr (std::is_same_v<T, float>) {
          if (!rows) return false;
          if (value.data) std::copy(v8, v8 + 8, &value(i0, j, k));
          for (int d = 0; d < nd; ++d) std::copy(g8[d], g8[d] + 8, &grad(i0, j, k, d));
          return true;
        }
        return false;
      });
}

template <class T>
void warp_displacement_jvp(const Coefficients<T>& c, ImageView<const T> field, ImageView<const T> du, ImageView<T> out) {
  check_output_grid(field, out.dims, c.ndim, "warp JVP");
  check_output_grid(du, out.dims, c.ndim, "warp JVP: the tangent field");
  const int nd = c.ndim;
  const bool rows = out.strides[0] == 1 && du.strides[0] == 1;
  for_each_warped_gradient(
      c, field, out.dims,
      [&](int64_t, int64_t i, int64_t j, int64_t k, T, const std::array<T, 3>& g) {
        T s = 0;
        for (int d = 0; d < nd; ++d) s += g[d] * du(i, j, k, d);
        out(i, j, k) = s;
      },
      nullptr,
      [&](int64_t, int64_t i0, int64_t j, int64_t k, const float*, const float (*g8)[8]) {
        if constexpr (std::is_same_v<T, float>) {
          if (!rows) return false;
          float s[8] = {};
          for (int d = 0; d < nd; ++d) {
            const float* a = &du(i0, j, k, d);
            for (int p = 0; p < 8; ++p) s[p] += g8[d][p] * a[p];
          }
          std::copy(s, s + 8, &out(i0, j, k));
          return true;
        }
        return false;
      });
}

template <class T>
void warp_displacement_vjp(const Coefficients<T>& c, ImageView<const T> field, ImageView<const T> ybar, ImageView<T> out) {
  check_output_grid(field, ybar.dims, c.ndim, "warp VJP");
  check_output_grid(ImageView<const T>(out), ybar.dims, c.ndim, "warp VJP: the output field");
  const int nd = c.ndim;
  const bool rows = out.strides[0] == 1 && ybar.strides[0] == 1;
  for_each_warped_gradient(
      c, field, ybar.dims,
      [&](int64_t, int64_t i, int64_t j, int64_t k, T, const std::array<T, 3>& g) {
        const T b = ybar(i, j, k);
        for (int d = 0; d < nd; ++d) out(i, j, k, d) = b * g[d];
      },
      nullptr,
      [&](int64_t, int64_t i0, int64_t j, int64_t k, const float*, const float (*g8)[8]) {
        if constexpr (std::is_same_v<T, float>) {
          if (!rows) return false;
          const float* b = &ybar(i0, j, k);
          for (int d = 0; d < nd; ++d) {
            float* o = &out(i0, j, k, d);
            for (int p = 0; p < 8; ++p) o[p] = b[p] * g8[d][p];
          }
          return true;
        }
        return false;
      });
}

template <class T>
void warp_affine_jvp(const Coefficients<T>& c, const double* M, const double* dM, ImageView<T> out) {
  const int nd = c.ndim;
  for_each_warped_gradient(c, ImageView<const T>{}, out.dims, [&](int64_t, int64_t i, int64_t j, int64_t k, T,
                                                                 const std::array<T, 3>& g) {
    T s = 0;
    for (int d = 0; d < nd; ++d)
      s += g[d] * T(affine_point(dM + 4 * d, i, j, k));
    out(i, j, k) = s;
  }, M);
}

template <class T>
void warp_affine_moments(const Coefficients<T>& c, const double* M, ImageView<const T> ybar, double* G) {
  const int nd = c.ndim;
  const int64_t rows = ybar.dims[1] * ybar.dims[2];
  std::vector<std::array<double, 12>> block(static_cast<size_t>((rows + kRowGrain - 1) / kRowGrain));
  for (auto& b : block) b.fill(0.0);
  for_each_warped_gradient(c, ImageView<const T>{}, ybar.dims, [&](int64_t r0, int64_t i, int64_t j, int64_t k, T,
                                                                   const std::array<T, 3>& g) {
    auto& b = block[static_cast<size_t>(r0 / kRowGrain)];
    const double w = double(ybar(i, j, k));
    const double x[4] = {double(i), double(j), double(k), 1.0};
    for (int a = 0; a < nd; ++a) {
      const double wg = w * double(g[a]);
      for (int e = 0; e < 4; ++e) b[static_cast<size_t>(4 * a + e)] += wg * x[e];
    }
  }, M);
  for (int q = 0; q < 12; ++q) G[q] = 0.0;
  for (const auto& b : block)
    for (int q = 0; q < 12; ++q) G[q] += b[static_cast<size_t>(q)];
}

#define VX_INSTANTIATE(T)                                                                                            \
  template void warp_displacement_gradient(const Coefficients<T>&, ImageView<const T>, ImageView<T>, ImageView<T>);  \
  template void warp_displacement_jvp(const Coefficients<T>&, ImageView<const T>, ImageView<const T>, ImageView<T>); \
  template void warp_displacement_vjp(const Coefficients<T>&, ImageView<const T>, ImageView<const T>, ImageView<T>); \
  template void warp_affine_jvp(const Coefficients<T>&, const double*, const double*, ImageView<T>);                 \
  template void warp_affine_moments(const Coefficients<T>&, const double*, ImageView<const T>, double*);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
