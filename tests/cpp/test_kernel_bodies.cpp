// The portable kernel bodies (voxalign/kernel/), which the CUDA backend launches one thread per
// output voxel or per line, run here through plain host loops and are checked against the CPU
// operators (with their vector fast paths) at every interpolation order, every boundary mode, in
// 1D/2D/3D, float and double. So their logic is tested on every CI run, GPU or not:
//   - the prefilter one line at a time (kernel::prefilter_lines with padded_sample, line_start):
//     the same bits as spline_coefficients;
//   - affine and displacement warps, the field gradient, JVP and VJP, the affine JVP (voxel_ops):
//     within 1e-12 (double) / 1e-5 (float) of the largest output;
//   - the adjoint's scatter through visit_taps in 64-bit fixed point (the GPU's deterministic
//     sums, scale from fixed_scale) followed by the CPU's prefilter transpose: within the same
//     tolerances of warp_*_adjoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "voxalign/kernel/prefilter_line.hpp"
#include "voxalign/kernel/voxel_ops.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/warp.hpp"
#include "warp_cases.hpp"

using namespace voxalign;

namespace {

using namespace voxalign::test;

template <class T, int D> kernel::CoefView<T, D> view_of(const Coefficients<T>& c) {
  kernel::CoefView<T, D> v;
  v.c = c.image.data();
  const auto& dims = c.image.geometry().dims;
  int64_t s = 1;
  for (int d = 0; d < 3; ++d) v.dims[d] = dims[d], v.strides[d] = s, s *= dims[d];
  v.mode = c.mode;
  v.pad = c.pad;
  v.cval = T(c.cval);
  return v;
}

template <class T> kernel::FieldView<T> field_of(const Image<T>& f) {
  kernel::FieldView<T> v;
  v.u = f.data();
  const auto& d = f.geometry().dims;
  v.strides[0] = 1, v.strides[1] = d[0], v.strides[2] = d[0] * d[1], v.strides[3] = d[0] * d[1] * d[2];
  return v;
}

// Every voxel (i, j, k) of dims, x fastest: what the GPU's one-thread-per-voxel launch covers.
template <class F> void each_voxel(const std::array<int64_t, 4>& d, F&& f) {
  for (int64_t k = 0; k < d[2]; ++k)
    for (int64_t j = 0; j < d[1]; ++j)
      for (int64_t i = 0; i < d[0]; ++i) f(i + d[0] * (j + d[1] * k), i, j, k);
}

// The GPU's coefficients, on the host: padding sample by sample, then one line at a time along
// each axis in double, rounded to T after each axis.
template <class T> std::vector<T> line_coefficients(const Image<T>& in, int nd, int order, Mode mode, double cval) {
  const int pad = coefficient_pad(order, mode);
  const auto& id = in.geometry().dims;
  int64_t dims[3];
  for (int d = 0; d < 3; ++d) dims[d] = id[d] + (d < nd ? 2 * pad : 0);
  const int pads[3] = {pad, nd > 1 ? pad : 0, nd > 2 ? pad : 0};
  const int64_t n = dims[0] * dims[1] * dims[2];
  std::vector<double> c(static_cast<size_t>(n));
  for (int64_t q = 0; q < n; ++q)
    c[size_t(q)] = kernel::padded_sample(in.data(), id.data(), dims, pads, q, mode == Mode::GridConstant, cval);
  if (needs_prefilter(order))
    for (int axis = 0; axis < nd; ++axis) {
      if (dims[axis] < 2) continue;
      for (int64_t l = 0; l < n / dims[axis]; ++l) {
        int64_t s;
        double* line = c.data() + kernel::line_start(l, dims, axis, s);
        double tmp;
        kernel::prefilter_lines(line, dims[axis], s, 1, order, mode, &tmp);
        for (int64_t i = 0; i < dims[axis]; ++i) line[i * s] = double(T(line[i * s]));
      }
    }
  return std::vector<T>(c.begin(), c.end());
}

template <class T> void check_prefilter(int nd) {
  const Image<T> x = random_image<T>(grid(nd), 11);
  for (int order : kOrders)
    for (Mode mode : kModes) {
      const auto c = spline_coefficients<T>(x.view(), nd, order, mode, 0.5);
      const std::vector<T> lines = line_coefficients(x, nd, order, mode, 0.5);
      ASSERT_EQ(int64_t(lines.size()), c.image.size()) << what("coefficients", order, mode, nd);
      EXPECT_EQ(rel_diff(lines.data(), c.image.data(), c.image.size()), 0.0) << what("coefficients", order, mode, nd);
    }
}

template <class T> void check_forward(int nd) {
  const auto d = grid(nd);
  const Image<T> f = random_image<T>(d, 21);
  const Image<T> u = random_image<T>(grid(nd, nd), 22, 2.5), du = random_image<T>(grid(nd, nd), 23);
  const Image<T> ybar = random_image<T>(d, 24);
  double M[16], dM[16];
  affine_matrix(nd, M);
  for (int q = 0; q < 16; ++q) dM[q] = q < 4 * nd && (q % 4 < nd || q % 4 == 3) ? 0.05 * double((q * 7) % 5 - 2) : 0.0;
  for (int order : kOrders)
    for (Mode mode : kModes) {
      const auto c = spline_coefficients<T>(f.view(), nd, order, mode, 0.0);
      Image<T> cpu(f.geometry()), host(f.geometry()), cpu_g(u.geometry()), host_g(u.geometry());
      kernel::dispatch_kernel(order, nd, [&]<int K, int D>() {
        const auto cv = view_of<T, D>(c);
        const auto fv = field_of(u), dv = field_of(du);
        const int64_t n = f.size();
        // displacement warp and its gradient
        warp_displacement_gradient<T>(c, u.view(), cpu.view(), cpu_g.view());
        each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
          T g[3];
          host.data()[q] = kernel::field_voxel<K, D, T, true>(cv, fv, i, j, k, g);
          for (int a = 0; a < D; ++a) host_g.data()[q + a * n] = g[a];
        });
        EXPECT_LE(rel_diff(host.data(), cpu.data(), n), tolerance<T>()) << what("field warp", order, mode, nd);
        EXPECT_LE(rel_diff(host_g.data(), cpu_g.data(), u.size()), tolerance<T>()) << what("field gradient", order, mode, nd);
        // affine warp
        warp_affine<T>(c, M, cpu.view());
        each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
          host.data()[q] = kernel::affine_voxel<K, D, T>(cv, M, i, j, k);
        });
        EXPECT_LE(rel_diff(host.data(), cpu.data(), n), tolerance<T>()) << what("affine warp", order, mode, nd);
        // field JVP and VJP
        warp_displacement_jvp<T>(c, u.view(), du.view(), cpu.view());
        each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
          host.data()[q] = kernel::field_jvp_voxel<K, D, T>(cv, fv, dv, i, j, k);
        });
        EXPECT_LE(rel_diff(host.data(), cpu.data(), n), tolerance<T>()) << what("field JVP", order, mode, nd);
        warp_displacement_vjp<T>(c, u.view(), ybar.view(), cpu_g.view());
        each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
          T g[3];
          kernel::field_voxel<K, D, T, true>(cv, fv, i, j, k, g);
          for (int a = 0; a < D; ++a) host_g.data()[q + a * n] = ybar.data()[q] * g[a];
        });
        EXPECT_LE(rel_diff(host_g.data(), cpu_g.data(), u.size()), tolerance<T>()) << what("field VJP", order, mode, nd);
        // affine JVP
        warp_affine_jvp<T>(c, M, dM, cpu.view());
        each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
          host.data()[q] = kernel::affine_jvp_voxel<K, D, T>(cv, M, dM, i, j, k);
        });
        EXPECT_LE(rel_diff(host.data(), cpu.data(), n), tolerance<T>()) << what("affine JVP", order, mode, nd);
      });
    }
}

// The GPU adjoint's two passes on the host: the bound (largest |y|, per-coefficient sums of |w| in
// fixed point), then the fixed-point scatter; the prefilter transpose is the CPU's.
template <class T> void check_adjoint(int nd) {
  const auto d = grid(nd);
  const Image<T> y = random_image<T>(d, 31);
  const Image<T> u = random_image<T>(grid(nd, nd), 32, 2.5);
  double M[16];
  affine_matrix(nd, M);
  for (int order : kOrders)
    for (Mode mode : kModes)
      for (bool affine : {false, true}) {
        // The GPU's adjoint takes the other orders and modes (cuda::gpu_adjoint_supported).
        if (needs_prefilter(order) && (mode == Mode::Reflect || mode == Mode::Nearest || mode == Mode::GridConstant))
          continue;
        Image<T> cpu(y.geometry()), host(y.geometry());
        if (affine) warp_affine_adjoint<T>(y.view(), M, nd, order, mode, cpu.view());
        else warp_displacement_adjoint<T>(y.view(), u.view(), nd, order, mode, cpu.view());
        Coefficients<T> grid_c; // the input grid as a coefficient view (pad 0)
        grid_c.image = Image<T>(y.geometry());
        grid_c.ndim = nd, grid_c.order = order, grid_c.mode = mode;
        const int64_t n = y.size();
        std::vector<unsigned long long> wsum(static_cast<size_t>(n), 0);
        std::vector<long long> acc(static_cast<size_t>(n), 0);
        kernel::dispatch_kernel(order, nd, [&]<int K, int D>() {
          const auto cv = view_of<T, D>(grid_c);
          const auto fv = field_of(u);
          auto point = [&](int64_t i, int64_t j, int64_t k, double* x) {
            if (affine) kernel::affine_point_of<D>(M, i, j, k, x);
            else kernel::field_point<D>(fv, i, j, k, x);
          };
          double ymax = 0;
          each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
            double x[D];
            point(i, j, k, x);
            ymax = std::max(ymax, std::abs(double(y.data()[q])));
            kernel::visit_taps<K, D, T>(cv, x, [&](int64_t o, T w) {
              wsum[size_t(o)] += (unsigned long long)kernel::to_fixed(std::abs(double(w)), kernel::kWeightScale);
            });
          });
          const double scale = kernel::fixed_scale(ymax, *std::max_element(wsum.begin(), wsum.end()), n);
          each_voxel(d, [&](int64_t q, int64_t i, int64_t j, int64_t k) {
            double x[D];
            point(i, j, k, x);
            const T yq = y.data()[q];
            kernel::visit_taps<K, D, T>(cv, x, [&](int64_t o, T w) {
              acc[size_t(o)] += kernel::to_fixed(double(yq) * double(w), scale);
            });
          });
          for (int64_t q = 0; q < n; ++q) host.data()[q] = T(kernel::from_fixed(acc[size_t(q)], scale));
        });
        prefilter_transpose_in_place(host.data(), y.geometry().dims.data(), nd, order, mode);
        const std::string op = what(affine ? "affine adjoint" : "field adjoint", order, mode, nd);
        if constexpr (std::is_same_v<T, double>) {
          EXPECT_LE(rel_diff(host.data(), cpu.data(), n), 1e-11) << op;
        } else {
          // In float, the CPU's own scatter rounds each sum, and the transpose of a degree 6-7
          // prefilter amplifies that to a few 1e-5: both are measured against the double adjoint,
          // and the fixed-point sums must be as accurate as the CPU's (or within 1e-5).
          Image<double> yd(y.geometry()), ud(u.geometry()), ref(y.geometry());
          std::copy(y.data(), y.data() + n, yd.data());
          std::copy(u.data(), u.data() + u.size(), ud.data());
          if (affine) warp_affine_adjoint<double>(yd.view(), M, nd, order, mode, ref.view());
          else warp_displacement_adjoint<double>(yd.view(), ud.view(), nd, order, mode, ref.view());
          std::vector<double> h(host.data(), host.data() + n), c(cpu.data(), cpu.data() + n);
          const double host_err = rel_diff(h.data(), ref.data(), n), cpu_err = rel_diff(c.data(), ref.data(), n);
          EXPECT_LE(host_err, std::max(1e-5, 2 * cpu_err)) << op << " (CPU float error " << cpu_err << ")";
        }
      }
}

} // namespace

TEST(KernelBodies, PrefilterLineByLineIsSplineCoefficients) {
  for (int nd = 1; nd <= 3; ++nd) check_prefilter<double>(nd), check_prefilter<float>(nd);
}
TEST(KernelBodies, VoxelOpsMatchTheCpuOperatorsDouble) {
  for (int nd = 1; nd <= 3; ++nd) check_forward<double>(nd);
}
TEST(KernelBodies, VoxelOpsMatchTheCpuOperatorsFloat) {
  for (int nd = 1; nd <= 3; ++nd) check_forward<float>(nd);
}
TEST(KernelBodies, FixedPointScatterIsTheAdjoint) {
  for (int nd = 1; nd <= 3; ++nd) check_adjoint<double>(nd), check_adjoint<float>(nd);
}
