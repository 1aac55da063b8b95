// The CUDA backend against the CPU operators (built when CMake finds nvcc; every test skips, with
// the reason printed, where no device can be used). Every interpolation order and boundary mode in
// 2D and 3D, float and double: coefficients, affine and displacement warps, the field gradient,
// JVP and VJP, the affine JVP within 1e-5 (float) / 1e-12 (double) of the largest CPU value; the
// adjoints likewise, and bit-identical from run to run in the deterministic scatter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "voxalign/cuda/cuda.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/warp.hpp"
#include "warp_cases.hpp"

using namespace voxalign;

namespace {

using namespace voxalign::test;

#define VX_REQUIRE_DEVICE()                                                                          \
  do {                                                                                               \
    std::string why;                                                                                 \
    if (!cuda::available(&why)) GTEST_SKIP() << "no GPU check here: " << why;                        \
  } while (0)

// Larger than the CPU tests' grids: enough threads per launch to meet several blocks.
std::array<int64_t, 4> gpu_grid(int nd, int64_t comps = 1) {
  if (nd == 2) return {37, 29, 1, comps};
  return {41, 23, 27, comps};
}

template <class T> double rel_diff(const Image<T>& a, const Image<T>& b) {
  return voxalign::test::rel_diff(a.data(), b.data(), a.size());
}

template <class T> cuda::DeviceGrid<T> upload(const Image<T>& im) {
  cuda::DeviceGrid<T> g(im.geometry().dims.data());
  g.upload(im.view());
  return g;
}
template <class T> Image<T> download(const cuda::DeviceGrid<T>& g, const Geometry& geo) {
  Image<T> im(geo);
  g.download(im.view());
  return im;
}

template <class T> void check_forward(int nd) {
  const auto d = gpu_grid(nd);
  const Image<T> f = random_image<T>(d, 1), ybar = random_image<T>(d, 2);
  const Image<T> u = random_image<T>(gpu_grid(nd, nd), 3, 2.5), du = random_image<T>(gpu_grid(nd, nd), 4);
  double M[16], dM[16];
  affine_matrix(nd, M);
  for (int q = 0; q < 16; ++q) dM[q] = q < 4 * nd && (q % 4 < nd || q % 4 == 3) ? 0.05 * double((q * 7) % 5 - 2) : 0.0;
  const auto fd = upload(f), ud = upload(u), dud = upload(du), yd = upload(ybar);
  for (int order : kOrders)
    for (Mode mode : kModes) {
      const auto c = spline_coefficients<T>(f.view(), nd, order, mode, 0.25);
      const auto gc = cuda::coefficients<T>(fd, nd, order, mode, 0.25);
      EXPECT_LE(rel_diff(download(gc.grid, c.image.geometry()), c.image), tolerance<T>())
          << what("coefficients", order, mode, nd);
      Image<T> cpu(f.geometry()), cpu_g(u.geometry());
      cuda::DeviceGrid<T> out(d.data()), grad(gpu_grid(nd, nd).data());
      warp_affine<T>(c, M, cpu.view());
      cuda::warp_affine<T>(gc, M, out);
      EXPECT_LE(rel_diff(download(out, f.geometry()), cpu), tolerance<T>()) << what("affine warp", order, mode, nd);
      warp_displacement_gradient<T>(c, u.view(), cpu.view(), cpu_g.view());
      cuda::warp_displacement<T>(gc, ud, &out, &grad);
      EXPECT_LE(rel_diff(download(out, f.geometry()), cpu), tolerance<T>()) << what("field warp", order, mode, nd);
      EXPECT_LE(rel_diff(download(grad, u.geometry()), cpu_g), tolerance<T>()) << what("field gradient", order, mode, nd);
      warp_displacement_jvp<T>(c, u.view(), du.view(), cpu.view());
      cuda::warp_displacement_jvp<T>(gc, ud, dud, out);
      EXPECT_LE(rel_diff(download(out, f.geometry()), cpu), tolerance<T>()) << what("field JVP", order, mode, nd);
      warp_displacement_vjp<T>(c, u.view(), ybar.view(), cpu_g.view());
      cuda::warp_displacement_vjp<T>(gc, ud, yd, grad);
      EXPECT_LE(rel_diff(download(grad, u.geometry()), cpu_g), tolerance<T>()) << what("field VJP", order, mode, nd);
      warp_affine_jvp<T>(c, M, dM, cpu.view());
      cuda::warp_affine_jvp<T>(gc, M, dM, out);
      EXPECT_LE(rel_diff(download(out, f.geometry()), cpu), tolerance<T>()) << what("affine JVP", order, mode, nd);
    }
}

template <class T> void check_adjoint(int nd) {
  const auto d = gpu_grid(nd);
  const Image<T> y = random_image<T>(d, 5);
  const Image<T> u = random_image<T>(gpu_grid(nd, nd), 6, 2.5);
  double M[16];
  affine_matrix(nd, M);
  const auto yd = upload(y), ud = upload(u);
  for (int order : kOrders)
    for (Mode mode : kModes) {
      cuda::DeviceGrid<T> out(d.data()), again(d.data());
      if (!cuda::gpu_adjoint_supported(order, mode)) {
        EXPECT_THROW(cuda::warp_displacement_adjoint<T>(yd, ud, nd, order, mode, out), InvalidArgument);
        continue;
      }
      Image<T> cpu(y.geometry());
      warp_displacement_adjoint<T>(y.view(), u.view(), nd, order, mode, cpu.view());
      cuda::warp_displacement_adjoint<T>(yd, ud, nd, order, mode, out);
      cuda::warp_displacement_adjoint<T>(yd, ud, nd, order, mode, again);
      const Image<T> a = download(out, y.geometry()), b = download(again, y.geometry());
      EXPECT_LE(rel_diff(a, cpu), tolerance<T>() * 10) << what("field adjoint", order, mode, nd);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(a.size()) * sizeof(T)), 0) << what("field adjoint bits", order, mode, nd);
      warp_affine_adjoint<T>(y.view(), M, nd, order, mode, cpu.view());
      cuda::warp_affine_adjoint<T>(yd, M, nd, order, mode, out);
      EXPECT_LE(rel_diff(download(out, y.geometry()), cpu), tolerance<T>() * 10) << what("affine adjoint", order, mode, nd);
      cuda::warp_affine_adjoint<T>(yd, M, nd, order, mode, out, cuda::Scatter::Fast);
      EXPECT_LE(rel_diff(download(out, y.geometry()), cpu), tolerance<T>() * 10) << what("affine adjoint (fast)", order, mode, nd);
    }
}

} // namespace

TEST(Cuda, DeviceIsReported) {
  std::string why;
  if (!cuda::available(&why)) {
    EXPECT_FALSE(why.empty());
    GTEST_SKIP() << "no GPU check here: " << why;
  }
  EXPECT_FALSE(cuda::device_name().empty());
}
TEST(Cuda, ForwardOperatorsMatchTheCpuFloat) {
  VX_REQUIRE_DEVICE();
  for (int nd = 2; nd <= 3; ++nd) check_forward<float>(nd);
}
TEST(Cuda, ForwardOperatorsMatchTheCpuDouble) {
  VX_REQUIRE_DEVICE();
  for (int nd = 2; nd <= 3; ++nd) check_forward<double>(nd);
}
TEST(Cuda, AdjointsMatchTheCpuAndRepeatBitForBitFloat) {
  VX_REQUIRE_DEVICE();
  for (int nd = 2; nd <= 3; ++nd) check_adjoint<float>(nd);
}
TEST(Cuda, AdjointsMatchTheCpuAndRepeatBitForBitDouble) {
  VX_REQUIRE_DEVICE();
  for (int nd = 2; nd <= 3; ++nd) check_adjoint<double>(nd);
}
