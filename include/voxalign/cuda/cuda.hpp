// The CUDA backend of the interpolation and warping operators (library target voxalign_cuda, built
// when CMake finds nvcc: option VOXALIGN_CUDA). The kernels are the portable bodies of
// voxalign/kernel/ launched one thread per output voxel (or per line, for the prefilter); the
// semantics are the CPU operators' (spline/interpolate.hpp, warp/warp.hpp), and results equal them
// within float rounding (tests/cpp/test_cuda.cpp, tests/cpp/test_kernel_bodies.cpp).
//
// Two layers: DeviceGrid operations on data resident on the device (what a pipeline or a benchmark
// keeps there), and host conveniences taking the CPU operators' ImageViews (copied in and out).
#pragma once
#include <cstdint>
#include <string>

#include "voxalign/image/image.hpp"
#include "voxalign/spline/modes.hpp"

namespace voxalign::cuda {

/// Whether a CUDA device can be used; when not, `reason` (if given) says why (no driver, no
/// device, or voxalign built without CUDA, in which case every other function throws).
bool available(std::string* reason = nullptr);
/// Name of device 0 ("" when none).
std::string device_name();

/// A contiguous array on the device (x fastest; dims[3] counts components or frames). Owns its memory.
template <class T> class DeviceGrid {
public:
  DeviceGrid() = default;
  explicit DeviceGrid(const int64_t* dims4);
  DeviceGrid(const DeviceGrid&) = delete;
  DeviceGrid& operator=(const DeviceGrid&) = delete;
  DeviceGrid(DeviceGrid&& o) noexcept;
  DeviceGrid& operator=(DeviceGrid&& o) noexcept;
  ~DeviceGrid();
  /// Copy a host view (any strides) in; the view's dims must equal this grid's.
  void upload(ImageView<const T> host);
  /// Copy out into a host view of the same dims (any strides).
  void download(ImageView<T> host) const;
  T* data() const { return data_; }
  const int64_t* dims() const { return dims_; }
  int64_t size() const { return dims_[0] * dims_[1] * dims_[2] * dims_[3]; }

private:
  T* data_ = nullptr;
  int64_t dims_[4] = {0, 0, 0, 0};
};

/// Spline coefficients on the device, as spline_coefficients computes them on the CPU (padding
/// for 'nearest'/'grid-constant', the prefilter of degrees 2-7 in double with scipy's boundary
/// initialisation, rounded to T after each axis).
template <class T> struct DeviceCoefficients {
  DeviceGrid<T> grid;
  int ndim = 3, order = 3, pad = 0;
  Mode mode = Mode::Mirror;
  double cval = 0.0;
};

/// Coefficients of a device image (first `ndim` axes interpolated; dims[3] must be 1).
template <class T>
DeviceCoefficients<T> coefficients(const DeviceGrid<T>& image, int ndim, int order, Mode mode, double cval = 0.0);

/// out(x) = f(M x), M a 4x4 row-major output-voxel -> input-voxel matrix.
template <class T> void warp_affine(const DeviceCoefficients<T>& c, const double* M, DeviceGrid<T>& out);
/// out(x) = f(x + u(x)); when grad is not null, grad(x, d) = (df/dx_d)(x + u(x)) (dims[3] = ndim).
/// field: the output grid with ndim components in dims[3] (voxels of the input).
template <class T>
void warp_displacement(const DeviceCoefficients<T>& c, const DeviceGrid<T>& field, DeviceGrid<T>* out,
                       DeviceGrid<T>* grad = nullptr);
/// out(x) = grad f(x + u(x)) . du(x).
template <class T>
void warp_displacement_jvp(const DeviceCoefficients<T>& c, const DeviceGrid<T>& field, const DeviceGrid<T>& du,
                           DeviceGrid<T>& out);
/// out(x, d) = ybar(x) (df/dx_d)(x + u(x)).
template <class T>
void warp_displacement_vjp(const DeviceCoefficients<T>& c, const DeviceGrid<T>& field, const DeviceGrid<T>& ybar,
                           DeviceGrid<T>& out);
/// out(x) = grad f(M x) . (dM x).
template <class T>
void warp_affine_jvp(const DeviceCoefficients<T>& c, const double* M, const double* dM, DeviceGrid<T>& out);

/// How the adjoint's scatter adds: Deterministic sums in 64-bit fixed point (integer atomics are
/// associative, so the bits do not depend on thread order; the scale is set from a bound on every
/// sum, so the rounding is far below T's); Fast uses floating-point atomics (not reproducible run
/// to run).
enum class Scatter { Deterministic, Fast };

/// Whether the GPU adjoints take this order and mode: all but the prefiltered orders (2-7) in the
/// modes whose prefilter transpose needs the reflect initialisation or padding (reflect, nearest,
/// grid-constant), which throw InvalidArgument.
constexpr bool gpu_adjoint_supported(int order, Mode mode) {
  return !(needs_prefilter(order) && (mode == Mode::Reflect || mode == Mode::Nearest || mode == Mode::GridConstant));
}

/// Exact adjoint of the displacement warp (cval = 0): out = P^T E_p^T y on the input grid `out`
/// (dims[0..2], dims[3] = 1), for the orders and modes of gpu_adjoint_supported.
template <class T>
void warp_displacement_adjoint(const DeviceGrid<T>& y, const DeviceGrid<T>& field, int ndim, int order, Mode mode,
                               DeviceGrid<T>& out, Scatter scatter = Scatter::Deterministic);
/// Exact adjoint of the affine warp, likewise.
template <class T>
void warp_affine_adjoint(const DeviceGrid<T>& y, const double* M, int ndim, int order, Mode mode, DeviceGrid<T>& out,
                         Scatter scatter = Scatter::Deterministic);

/// Wait for the device and return the milliseconds since the previous call (for benchmarks).
double synchronize_ms();

} // namespace voxalign::cuda
