// The warping operators on the device: one thread per output voxel running the portable bodies of
// voxalign/kernel/voxel_ops.hpp, and the adjoint's scatter in 64-bit fixed point (deterministic)
// or with floating-point atomics (Scatter::Fast).
#include <cmath>
#include <cstring>

#include "internal.cuh"
#include "voxalign/kernel/voxel_ops.hpp"

namespace voxalign::cuda {
namespace detail {
template <class T> void prefilter_transpose(T* data, const int64_t* dims, int ndim, int order, Mode mode);

namespace {

using kernel::CoefView;
using kernel::FieldView;

struct Grid3 {
  int64_t d0, d1, d2;
  VX_HD int64_t size() const { return d0 * d1 * d2; }
};

inline Grid3 grid3(const int64_t* dims) { return {dims[0], dims[1], dims[2]}; }

template <class T> FieldView<T> field_view(const DeviceGrid<T>& f) {
  FieldView<T> v;
  v.u = f.data();
  contiguous_strides(f.dims(), v.strides);
  return v;
}

struct Mat {
  double m[16];
};
inline Mat mat(const double* M) {
  Mat r;
  for (int q = 0; q < 16; ++q) r.m[q] = M ? M[q] : 0.0;
  return r;
}

#define VX_GRID_LOOP(q, n)                                                                        \
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < (n); q += int64_t(gridDim.x) * blockDim.x)

template <int K, int D, class T> __global__ void affine_kernel(CoefView<T, D> c, Mat M, Grid3 g, T* out) {
  VX_GRID_LOOP(q, g.size()) {
    const int64_t i = q % g.d0, j = (q / g.d0) % g.d1, k = q / (g.d0 * g.d1);
    out[q] = kernel::affine_voxel<K, D, T>(c, M.m, i, j, k);
  }
}

template <int K, int D, class T, bool Grad>
__global__ void field_kernel(CoefView<T, D> c, FieldView<T> f, Grid3 g, T* out, T* grad) {
  VX_GRID_LOOP(q, g.size()) {
    const int64_t i = q % g.d0, j = (q / g.d0) % g.d1, k = q / (g.d0 * g.d1);
    T gr[3];
    const T v = kernel::field_voxel<K, D, T, Grad>(c, f, i, j, k, gr);
    if (out) out[q] = v;
    if constexpr (Grad)
      for (int d = 0; d < D; ++d) grad[q + d * g.size()] = gr[d];
  }
}

template <int K, int D, class T>
__global__ void field_jvp_kernel(CoefView<T, D> c, FieldView<T> f, FieldView<T> du, Grid3 g, T* out) {
  VX_GRID_LOOP(q, g.size()) {
    const int64_t i = q % g.d0, j = (q / g.d0) % g.d1, k = q / (g.d0 * g.d1);
    out[q] = kernel::field_jvp_voxel<K, D, T>(c, f, du, i, j, k);
  }
}

template <int K, int D, class T>
__global__ void field_vjp_kernel(CoefView<T, D> c, FieldView<T> f, const T* ybar, Grid3 g, T* out) {
  VX_GRID_LOOP(q, g.size()) {
    const int64_t i = q % g.d0, j = (q / g.d0) % g.d1, k = q / (g.d0 * g.d1);
    T gr[3];
    kernel::field_voxel<K, D, T, true>(c, f, i, j, k, gr);
    for (int d = 0; d < D; ++d) out[q + d * g.size()] = ybar[q] * gr[d];
  }
}

template <int K, int D, class T>
__global__ void affine_jvp_kernel(CoefView<T, D> c, Mat M, Mat dM, Grid3 g, T* out) {
  VX_GRID_LOOP(q, g.size()) {
    const int64_t i = q % g.d0, j = (q / g.d0) % g.d1, k = q / (g.d0 * g.d1);
    out[q] = kernel::affine_jvp_voxel<K, D, T>(c, M.m, dM.m, i, j, k);
  }
}

// The input point of output voxel q: the field's or the matrix's.
template <int D, class T>
VX_HD void point_of(const FieldView<T>& f, bool has_field, const Mat& M, Grid3 g, int64_t q, double* x) {
  const int64_t i = q % g.d0, j = (q / g.d0) % g.d1, k = q / (g.d0 * g.d1);
  if (has_field) kernel::field_point<D>(f, i, j, k, x);
  else kernel::affine_point_of<D>(M.m, i, j, k, x);
}

// Pass 1 of the deterministic scatter: per coefficient, the sum of |weight| in fixed point with
// scale 2^32 (a bound, so its rounding does not matter).
template <int K, int D, class T>
__global__ void weight_bound_kernel(CoefView<T, D> c, FieldView<T> f, bool has_field, Mat M, Grid3 g,
                                    unsigned long long* wsum) {
  VX_GRID_LOOP(q, g.size()) {
    double x[D];
    point_of<D>(f, has_field, M, g, q, x);
    kernel::visit_taps<K, D, T>(c, x, [&](int64_t o, T w) {
      atomicAdd(wsum + o, (unsigned long long)kernel::to_fixed(std::abs(double(w)), kernel::kWeightScale));
    });
  }
}

// The largest of n values (key(q): non-negative doubles' bits order as the doubles do) into *out:
// a maximum per thread, then per warp, then one atomic per warp (one atomic per value would
// serialise millions of them on one address).
template <class Key> __global__ void max_kernel(Key key, int64_t n, unsigned long long* out) {
  unsigned long long m = 0;
  VX_GRID_LOOP(q, n) m = max(m, key(q));
  for (int s = 16; s > 0; s >>= 1) m = max(m, __shfl_down_sync(0xffffffffu, m, s));
  if ((threadIdx.x & 31) == 0) atomicMax(out, m);
}
constexpr unsigned kReduceBlocks = 1024;

struct WeightSumKey {
  const unsigned long long* a;
  __device__ unsigned long long operator()(int64_t q) const { return a[q]; }
};
template <class T> struct AbsBitsKey {
  const T* y;
  __device__ unsigned long long operator()(int64_t q) const {
    return (unsigned long long)__double_as_longlong(std::abs(double(y[q])));
  }
};

// Pass 2: y(x) w added to the taps, in fixed point at `scale` (deterministic) or as T atomics.
template <int K, int D, class T, bool Fixed>
__global__ void scatter_kernel(CoefView<T, D> c, FieldView<T> f, bool has_field, Mat M, Grid3 g, const T* y,
                               double scale, long long* acc, T* out) {
  VX_GRID_LOOP(q, g.size()) {
    const T yq = y[q];
    if (yq == T(0)) continue;
    double x[D];
    point_of<D>(f, has_field, M, g, q, x);
    kernel::visit_taps<K, D, T>(c, x, [&](int64_t o, T w) {
      if constexpr (Fixed)
        atomicAdd(reinterpret_cast<unsigned long long*>(acc + o),
                  (unsigned long long)kernel::to_fixed(double(yq) * double(w), scale));
      else atomicAdd(out + o, yq * w);
    });
  }
}

template <class T> __global__ void from_fixed_kernel(const long long* acc, int64_t n, double scale, T* out) {
  VX_GRID_LOOP(q, n) out[q] = T(kernel::from_fixed(acc[q], scale));
}

template <class F> void dispatch(int order, int ndim, F&& f) { kernel::dispatch_kernel(order, ndim, f); }

template <class T> void check_out(const DeviceGrid<T>& out, const int64_t* dims, int comps, const char* what) {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(out.dims()[d] == dims[d], InvalidArgument, what, ": axis ", d, " has ", out.dims()[d], " samples, expected ",
             dims[d]);
  VX_CHECK(out.dims()[3] == comps, InvalidArgument, what, ": ", out.dims()[3], " components, expected ", comps);
}

// E_p^T y onto the coefficient grid `coef` (dims: the input grid; no padding on the modes the GPU
// adjoint takes), then P^T in place.
template <class T>
void adjoint(const DeviceGrid<T>& y, const DeviceGrid<T>* field, const double* M, int ndim, int order, Mode mode,
             DeviceGrid<T>& out, Scatter how) {
  VX_CHECK(gpu_adjoint_supported(order, mode), InvalidArgument, "the adjoint of order ", order_name(order),
           " in mode '", mode_name(mode), "' is not on the GPU yet (use the CPU)");
  VX_CHECK(out.dims()[3] == 1, InvalidArgument, "adjoint: one frame at a time");
  DeviceCoefficients<T> c; // the input grid, as a coefficient view (pad 0, cval 0)
  c.ndim = ndim;
  c.order = order;
  c.mode = mode;
  const Grid3 g = grid3(y.dims());
  const FieldView<T> fv = field ? field_view(*field) : FieldView<T>{};
  const Mat Mm = mat(M);
  const int64_t n = out.size();
  dispatch(order, ndim, [&]<int K, int D>() {
    CoefView<T, D> v = coef_view<T, D>(c);
    int64_t st[4];
    contiguous_strides(out.dims(), st);
    for (int d = 0; d < 3; ++d) v.dims[d] = out.dims()[d], v.strides[d] = st[d];
    v.c = out.data();
    if (how == Scatter::Fast) {
      check(cudaMemset(out.data(), 0, size_t(n) * sizeof(T)), "adjoint: clear");
      scatter_kernel<K, D, T, false><<<blocks_for(g.size()), kBlock>>>(v, fv, field != nullptr, Mm, g, y.data(), 0.0,
                                                                         nullptr, out.data());
      check_launch("adjoint scatter");
      return;
    }
    unsigned long long *wsum = nullptr, *maxes = nullptr;
    check(cudaMalloc(reinterpret_cast<void**>(&wsum), size_t(n) * 8), "adjoint: allocating");
    check(cudaMalloc(reinterpret_cast<void**>(&maxes), 16), "adjoint: allocating");
    check(cudaMemset(wsum, 0, size_t(n) * 8), "adjoint: clear");
    check(cudaMemset(maxes, 0, 16), "adjoint: clear");
    weight_bound_kernel<K, D, T><<<blocks_for(g.size()), kBlock>>>(v, fv, field != nullptr, Mm, g, wsum);
    max_kernel<<<kReduceBlocks, kBlock>>>(AbsBitsKey<T>{y.data()}, g.size(), maxes);
    max_kernel<<<kReduceBlocks, kBlock>>>(WeightSumKey{wsum}, n, maxes + 1);
    check_launch("adjoint bound");
    unsigned long long host[2];
    check(cudaMemcpy(host, maxes, 16, cudaMemcpyDeviceToHost), "adjoint: bound");
    double ymax;
    static_assert(sizeof(ymax) == sizeof(host[0]));
    memcpy(&ymax, &host[0], 8);
    const double scale = kernel::fixed_scale(ymax, host[1], g.size());
    check(cudaMemset(wsum, 0, size_t(n) * 8), "adjoint: clear");
    long long* acc = reinterpret_cast<long long*>(wsum);
    scatter_kernel<K, D, T, true><<<blocks_for(g.size()), kBlock>>>(v, fv, field != nullptr, Mm, g, y.data(), scale,
                                                                      acc, nullptr);
    from_fixed_kernel<T><<<blocks_for(n), kBlock>>>(acc, n, scale, out.data());
    check_launch("adjoint scatter");
    cudaFree(wsum);
    cudaFree(maxes);
  });
  prefilter_transpose<T>(out.data(), out.dims(), ndim, order, mode);
}

} // namespace
} // namespace detail

using namespace detail;

template <class T> void warp_affine(const DeviceCoefficients<T>& c, const double* M, DeviceGrid<T>& out) {
  const Grid3 g = grid3(out.dims());
  const Mat Mm = mat(M);
  dispatch(c.order, c.ndim, [&]<int K, int D>() {
    affine_kernel<K, D, T><<<blocks_for(g.size()), kBlock>>>(coef_view<T, D>(c), Mm, g, out.data());
  });
  check_launch("warp_affine");
}

template <class T>
void warp_displacement(const DeviceCoefficients<T>& c, const DeviceGrid<T>& field, DeviceGrid<T>* out,
                       DeviceGrid<T>* grad) {
  const Grid3 g = grid3(field.dims());
  VX_CHECK(field.dims()[3] == c.ndim, InvalidArgument, "displacement field has ", field.dims()[3],
           " components; expected ", c.ndim);
  if (out) check_out(*out, field.dims(), 1, "warp output");
  if (grad) check_out(*grad, field.dims(), c.ndim, "warp gradient");
  dispatch(c.order, c.ndim, [&]<int K, int D>() {
    T* o = out ? out->data() : nullptr;
    if (grad)
      field_kernel<K, D, T, true><<<blocks_for(g.size()), kBlock>>>(coef_view<T, D>(c), field_view(field), g, o,
                                                                      grad->data());
    else
      field_kernel<K, D, T, false><<<blocks_for(g.size()), kBlock>>>(coef_view<T, D>(c), field_view(field), g, o,
                                                                       nullptr);
  });
  check_launch("warp_displacement");
}

template <class T>
void warp_displacement_jvp(const DeviceCoefficients<T>& c, const DeviceGrid<T>& field, const DeviceGrid<T>& du,
                           DeviceGrid<T>& out) {
  const Grid3 g = grid3(field.dims());
  check_out(du, field.dims(), c.ndim, "field JVP direction");
  check_out(out, field.dims(), 1, "field JVP output");
  dispatch(c.order, c.ndim, [&]<int K, int D>() {
    field_jvp_kernel<K, D, T><<<blocks_for(g.size()), kBlock>>>(coef_view<T, D>(c), field_view(field), field_view(du), g,
                                                                out.data());
  });
  check_launch("warp_displacement_jvp");
}

template <class T>
void warp_displacement_vjp(const DeviceCoefficients<T>& c, const DeviceGrid<T>& field, const DeviceGrid<T>& ybar,
                           DeviceGrid<T>& out) {
  const Grid3 g = grid3(field.dims());
  check_out(ybar, field.dims(), 1, "field VJP cotangent");
  check_out(out, field.dims(), c.ndim, "field VJP output");
  dispatch(c.order, c.ndim, [&]<int K, int D>() {
    field_vjp_kernel<K, D, T><<<blocks_for(g.size()), kBlock>>>(coef_view<T, D>(c), field_view(field), ybar.data(), g,
                                                                out.data());
  });
  check_launch("warp_displacement_vjp");
}

template <class T>
void warp_affine_jvp(const DeviceCoefficients<T>& c, const double* M, const double* dM, DeviceGrid<T>& out) {
  const Grid3 g = grid3(out.dims());
  const Mat Mm = mat(M), dMm = mat(dM);
  dispatch(c.order, c.ndim, [&]<int K, int D>() {
    affine_jvp_kernel<K, D, T><<<blocks_for(g.size()), kBlock>>>(coef_view<T, D>(c), Mm, dMm, g, out.data());
  });
  check_launch("warp_affine_jvp");
}

template <class T>
void warp_displacement_adjoint(const DeviceGrid<T>& y, const DeviceGrid<T>& field, int ndim, int order, Mode mode,
                               DeviceGrid<T>& out, Scatter scatter) {
  VX_CHECK(field.dims()[3] == ndim, InvalidArgument, "displacement field has ", field.dims()[3],
           " components; expected ", ndim);
  check_out(y, field.dims(), 1, "adjoint input");
  adjoint<T>(y, &field, nullptr, ndim, order, mode, out, scatter);
}

template <class T>
void warp_affine_adjoint(const DeviceGrid<T>& y, const double* M, int ndim, int order, Mode mode, DeviceGrid<T>& out,
                         Scatter scatter) {
  adjoint<T>(y, nullptr, M, ndim, order, mode, out, scatter);
}

#define VX_INSTANTIATE(T)                                                                                             \
  template void warp_affine(const DeviceCoefficients<T>&, const double*, DeviceGrid<T>&);                             \
  template void warp_displacement(const DeviceCoefficients<T>&, const DeviceGrid<T>&, DeviceGrid<T>*, DeviceGrid<T>*); \
  template void warp_displacement_jvp(const DeviceCoefficients<T>&, const DeviceGrid<T>&, const DeviceGrid<T>&,       \
                                      DeviceGrid<T>&);                                                                \
  template void warp_displacement_vjp(const DeviceCoefficients<T>&, const DeviceGrid<T>&, const DeviceGrid<T>&,       \
                                      DeviceGrid<T>&);                                                                \
  template void warp_affine_jvp(const DeviceCoefficients<T>&, const double*, const double*, DeviceGrid<T>&);          \
  template void warp_displacement_adjoint(const DeviceGrid<T>&, const DeviceGrid<T>&, int, int, Mode, DeviceGrid<T>&, \
                                          Scatter);                                                                   \
  template void warp_affine_adjoint(const DeviceGrid<T>&, const double*, int, int, Mode, DeviceGrid<T>&, Scatter);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)

} // namespace voxalign::cuda
