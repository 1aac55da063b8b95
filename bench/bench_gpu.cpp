// GPU timings of the warping operators, data resident on the device, float32, cubic B-spline,
// against the CPU operators on the same data (issue 17's goals): a 200^3 displacement-field warp,
// its exact adjoint (deterministic and fast scatter), value + field gradient, and a 256^3 affine
// resampling including the prefilter. Also checks GPU against CPU (largest difference relative to
// the largest CPU value) and the adjoint's run-to-run bits. Prints one JSON object (bench_gpu.py
// reads it).
//   voxalign_bench_gpu [field_size=200] [affine_size=256] [repeat=10]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "voxalign/cuda/cuda.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/warp.hpp"

using namespace voxalign;

namespace {

Image<float> smooth_volume(int64_t n, unsigned seed) {
  Geometry g;
  g.dims = {n, n, n, 1};
  Image<float> im(g);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  const double a = u(rng), b = u(rng), c = u(rng);
  const ImageView<float> v = im.view();
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i)
        v(i, j, k) = float(std::sin(a * i * 0.1) * std::cos(b * j * 0.07) + 0.5 * std::sin(c * k * 0.05 + 0.3));
  return im;
}

Image<float> smooth_field(int64_t n, double amplitude) {
  Geometry g;
  g.dims = {n, n, n, 3};
  Image<float> u(g);
  const ImageView<float> v = u.view();
  for (int d = 0; d < 3; ++d)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < n; ++i)
          v(i, j, k, d) = float(amplitude * std::sin(0.05 * (i + 2 * d)) * std::cos(0.04 * (j - d)) * std::sin(0.03 * k + d));
  return u;
}

double rel_diff(const Image<float>& a, const Image<float>& b) {
  double d = 0, m = 0;
  for (int64_t q = 0; q < a.size(); ++q) {
    d = std::max(d, std::abs(double(a.data()[q]) - double(b.data()[q])));
    m = std::max(m, std::abs(double(b.data()[q])));
  }
  return d / std::max(m, 1e-300);
}

// Best of `repeat` runs of f on the device, in ms.
template <class F> double gpu_best(int repeat, F&& f) {
  f();
  cuda::synchronize_ms();
  double best = 1e300;
  for (int r = 0; r < repeat; ++r) {
    cuda::synchronize_ms();
    f();
    best = std::min(best, cuda::synchronize_ms());
  }
  return best;
}

template <class F> double cpu_best(int repeat, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

} // namespace

int main(int argc, char** argv) {
  const int64_t nf = argc > 1 ? std::atoll(argv[1]) : 200;
  const int64_t na = argc > 2 ? std::atoll(argv[2]) : 256;
  const int repeat = argc > 3 ? std::atoi(argv[3]) : 10;
  std::string why;
  if (!cuda::available(&why)) {
    std::printf("{\"skipped\": \"%s\"}\n", why.c_str());
    return 0;
  }
  const int cpu_repeat = 2;
  // 200^3 displacement warp, cubic, mirror.
  const Image<float> f = smooth_volume(nf, 1), u = smooth_field(nf, 3.0);
  cuda::DeviceGrid<float> fd(f.geometry().dims.data()), ud(u.geometry().dims.data());
  fd.upload(f.view());
  ud.upload(u.view());
  const auto gc = cuda::coefficients<float>(fd, 3, 3, Mode::Mirror);
  cuda::DeviceGrid<float> out(f.geometry().dims.data()), again(f.geometry().dims.data()),
      grad(u.geometry().dims.data());
  const double field_ms = gpu_best(repeat, [&] { cuda::warp_displacement<float>(gc, ud, &out); });
  const double grad_ms = gpu_best(repeat, [&] { cuda::warp_displacement<float>(gc, ud, &out, &grad); });
  const double adj_ms = gpu_best(repeat, [&] { cuda::warp_displacement_adjoint<float>(fd, ud, 3, 3, Mode::Mirror, out); });
  const double adj_fast_ms = gpu_best(
      repeat, [&] { cuda::warp_displacement_adjoint<float>(fd, ud, 3, 3, Mode::Mirror, again, cuda::Scatter::Fast); });
  // Accuracy and determinism of what was just timed.
  const auto c = spline_coefficients<float>(f.view(), 3, 3, Mode::Mirror);
  Image<float> cpu(f.geometry()), gpu(f.geometry()), gpu2(f.geometry());
  const double cpu_field_ms = cpu_best(cpu_repeat, [&] { warp_displacement<float>(c, u.view(), cpu.view()); });
  cuda::warp_displacement<float>(gc, ud, &out);
  out.download(gpu.view());
  const double field_err = rel_diff(gpu, cpu);
  const double cpu_adj_ms =
      cpu_best(cpu_repeat, [&] { warp_displacement_adjoint<float>(f.view(), u.view(), 3, 3, Mode::Mirror, cpu.view()); });
  cuda::warp_displacement_adjoint<float>(fd, ud, 3, 3, Mode::Mirror, out);
  cuda::warp_displacement_adjoint<float>(fd, ud, 3, 3, Mode::Mirror, again);
  out.download(gpu.view());
  again.download(gpu2.view());
  const double adj_err = rel_diff(gpu, cpu);
  const bool adj_bits = std::memcmp(gpu.data(), gpu2.data(), size_t(gpu.size()) * sizeof(float)) == 0;
  // 256^3 affine resampling including the prefilter.
  const Image<float> a = smooth_volume(na, 2);
  cuda::DeviceGrid<float> ad(a.geometry().dims.data()), aout(a.geometry().dims.data());
  ad.upload(a.view());
  const double th = 0.2;
  const double M[16] = {std::cos(th), -std::sin(th), 0, na * 0.1, std::sin(th), std::cos(th), 0, -na * 0.05,
                        0, 0, 1.02, 1.5, 0, 0, 0, 1};
  const double affine_ms = gpu_best(repeat, [&] {
    const auto ac = cuda::coefficients<float>(ad, 3, 3, Mode::Mirror);
    cuda::warp_affine<float>(ac, M, aout);
  });
  Image<float> acpu(a.geometry()), agpu(a.geometry());
  const double cpu_affine_ms = cpu_best(cpu_repeat, [&] {
    const auto ac = spline_coefficients<float>(a.view(), 3, 3, Mode::Mirror);
    warp_affine<float>(ac, M, acpu.view());
  });
  aout.download(agpu.view());
  const double affine_err = rel_diff(agpu, acpu);
  std::printf("{\"device\": \"%s\", \"field_size\": %lld, \"affine_size\": %lld,\n"
              " \"field_warp_ms\": %.3f, \"field_value_and_gradient_ms\": %.3f, \"adjoint_ms\": %.3f, "
              "\"adjoint_fast_ms\": %.3f, \"affine_with_prefilter_ms\": %.3f,\n"
              " \"cpu_field_warp_ms\": %.1f, \"cpu_adjoint_ms\": %.1f, \"cpu_affine_with_prefilter_ms\": %.1f,\n"
              " \"field_rel_err\": %.3g, \"adjoint_rel_err\": %.3g, \"affine_rel_err\": %.3g, "
              "\"adjoint_bit_identical\": %s}\n",
              cuda::device_name().c_str(), (long long)nf, (long long)na, field_ms, grad_ms, adj_ms, adj_fast_ms,
              affine_ms, cpu_field_ms, cpu_adj_ms, cpu_affine_ms, field_err, adj_err, affine_err,
              adj_bits ? "true" : "false");
  return 0;
}
