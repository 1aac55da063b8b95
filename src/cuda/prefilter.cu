// Spline coefficients on the device, and the transpose of the prefilter for the adjoints: the
// padding copy one thread per sample, the recursive filter one thread per line with the portable
// line filter (voxalign/kernel/prefilter_line.hpp) on a double scratch array.
#include "internal.cuh"
#include "voxalign/kernel/prefilter_line.hpp"

namespace voxalign::cuda {
namespace detail {
namespace {

// Padded sample (i, j, k) of the coefficient grid from the image: clamped source for 'nearest',
// cval outside for 'grid-constant' (scipy's padding), as spline_coefficients does.
template <class T> struct PadArgs {
  const T* in;
  int64_t in_dims[3];
  double* out;
  int64_t out_dims[3];
  int pad[3];
  bool grid_constant;
  double cval;
};

template <class T> __global__ void pad_copy_kernel(PadArgs<T> a) {
  const int64_t n = a.out_dims[0] * a.out_dims[1] * a.out_dims[2];
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    a.out[q] = kernel::padded_sample(a.in, a.in_dims, a.out_dims, a.pad, q, a.grid_constant, a.cval);
}

// Filter every line of `c` (contiguous, dims d) along `axis`, one thread per line, and round it
// to T (the CPU filters in double and stores T after each axis).
template <class T> struct LineArgs {
  double* c;
  int64_t dims[3];
  int axis;
  int degree;
  Mode mode;
};

template <class T> __global__ void filter_lines_kernel(LineArgs<T> a) {
  const int64_t n = a.dims[a.axis];
  const int64_t lines = a.dims[0] * a.dims[1] * a.dims[2] / n;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    int64_t s;
    double* line = a.c + kernel::line_start(l, a.dims, a.axis, s);
    double tmp;
    kernel::prefilter_lines(line, n, s, 1, a.degree, a.mode, &tmp);
    for (int64_t i = 0; i < n; ++i) line[i * s] = double(T(line[i * s]));
  }
}

template <class T> __global__ void to_type_kernel(const double* in, T* out, int64_t n) {
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    out[q] = T(in[q]);
}

template <class T> __global__ void to_double_kernel(const T* in, double* out, int64_t n, double f) {
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    out[q] = double(in[q]) * f;
}

// Multiply the first and last planes of each of the first ndim axes by f (the D^-1 / D scalings of
// the mirror prefilter's transpose; a corner is scaled once per axis it is on the edge of).
__global__ void scale_edges_kernel(double* c, int64_t d0, int64_t d1, int64_t d2, int ndim, double f) {
  const int64_t n = d0 * d1 * d2;
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t idx[3] = {q % d0, (q / d0) % d1, q / (d0 * d1)};
    const int64_t dims[3] = {d0, d1, d2};
    double s = 1.0;
    for (int a = 0; a < ndim; ++a)
      if (dims[a] >= 2 && (idx[a] == 0 || idx[a] == dims[a] - 1)) s *= f;
    c[q] *= s;
  }
}

} // namespace

// Filter a double scratch grid along its first ndim axes (rounded to T after each axis).
template <class T> void filter_scratch(double* c, const int64_t* dims, int ndim, int degree, Mode mode) {
  for (int axis = 0; axis < ndim; ++axis) {
    if (dims[axis] < 2) continue;
    LineArgs<T> a{c, {dims[0], dims[1], dims[2]}, axis, degree, mode};
    const int64_t lines = dims[0] * dims[1] * dims[2] / dims[axis];
    filter_lines_kernel<T><<<blocks_for(lines), kBlock>>>(a);
    check_launch("prefilter");
  }
}

// The prefilter transpose (modes with the mirror or periodic initialisation): B^-1 = (S D)^-1,
// transposed = D^-1 ... as prefilter_transpose_in_place does on the CPU.
template <class T> void prefilter_transpose(T* data, const int64_t* dims, int ndim, int order, Mode mode) {
  if (!needs_prefilter(order)) return;
  VX_CHECK(gpu_adjoint_supported(order, mode), InvalidArgument, "the adjoint in mode '", mode_name(mode),
           "' is not on the GPU yet (use the CPU)");
  const int64_t n = dims[0] * dims[1] * dims[2];
  double* s = nullptr;
  check(cudaMalloc(reinterpret_cast<void**>(&s), size_t(n) * sizeof(double)), "allocating the prefilter scratch");
  const bool mirror_init = mode != Mode::GridWrap;
  to_double_kernel<T><<<blocks_for(n), kBlock>>>(data, s, n, 1.0);
  if (mirror_init) scale_edges_kernel<<<blocks_for(n), kBlock>>>(s, dims[0], dims[1], dims[2], ndim, 2.0);
  filter_scratch<T>(s, dims, ndim, order, mode);
  if (mirror_init) scale_edges_kernel<<<blocks_for(n), kBlock>>>(s, dims[0], dims[1], dims[2], ndim, 0.5);
  to_type_kernel<T><<<blocks_for(n), kBlock>>>(s, data, n);
  check_launch("prefilter transpose");
  cudaFree(s);
}

template void prefilter_transpose(float*, const int64_t*, int, int, Mode);
template void prefilter_transpose(double*, const int64_t*, int, int, Mode);

} // namespace detail

template <class T>
DeviceCoefficients<T> coefficients(const DeviceGrid<T>& image, int ndim, int order, Mode mode, double cval) {
  VX_CHECK(ndim >= 1 && ndim <= 3, InvalidArgument, "interpolation works on 1 to 3 axes, not ", ndim);
  VX_CHECK((order >= 0 && order <= 7) || order == kKeys, InvalidArgument, "interpolation order must be 0..7 or keys, not ", order);
  VX_CHECK(image.dims()[3] == 1, InvalidArgument, "coefficients: one frame at a time");
  for (int d = ndim; d < 3; ++d)
    VX_CHECK(image.dims()[d] == 1, InvalidArgument, "coefficients: axis ", d, " is not interpolated but has size ", image.dims()[d]);
  DeviceCoefficients<T> c;
  c.ndim = ndim;
  c.order = order;
  c.mode = mode;
  c.cval = cval;
  c.pad = coefficient_pad(order, mode);
  int64_t dims[4] = {1, 1, 1, 1};
  for (int d = 0; d < 3; ++d) dims[d] = image.dims()[d] + (d < ndim ? 2 * c.pad : 0);
  c.grid = DeviceGrid<T>(dims);
  const int64_t n = dims[0] * dims[1] * dims[2];
  double* s = nullptr;
  detail::check(cudaMalloc(reinterpret_cast<void**>(&s), size_t(n) * sizeof(double)), "allocating the prefilter scratch");
  detail::PadArgs<T> a{image.data(), {image.dims()[0], image.dims()[1], image.dims()[2]}, s, {dims[0], dims[1], dims[2]},
                       {c.pad, ndim > 1 ? c.pad : 0, ndim > 2 ? c.pad : 0}, mode == Mode::GridConstant, cval};
  detail::pad_copy_kernel<T><<<detail::blocks_for(n), detail::kBlock>>>(a);
  detail::check_launch("coefficients: copy");
  if (needs_prefilter(order)) detail::filter_scratch<T>(s, dims, ndim, order, mode);
  detail::to_type_kernel<T><<<detail::blocks_for(n), detail::kBlock>>>(s, c.grid.data(), n);
  detail::check_launch("coefficients");
  cudaFree(s);
  return c;
}

template DeviceCoefficients<float> coefficients(const DeviceGrid<float>&, int, int, Mode, double);
template DeviceCoefficients<double> coefficients(const DeviceGrid<double>&, int, int, Mode, double);

} // namespace voxalign::cuda
