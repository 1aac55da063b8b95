// Micro-benchmark of the C++ kernels alone (no I/O, no Python): prefilter and affine warp of a
// 256^3 float32 volume. Usage: voxalign_bench_kernels [n] [degree] [threads] [i(dentity shift)|r(otation)|z(oom 0.9: every point interior)] [mode] [repeats: best of]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <random>

#include "voxalign/core/parallel.hpp"
#include "voxalign/spline/interpolate.hpp"

using namespace voxalign;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 256;
  const int degree = argc > 2 ? std::atoi(argv[2]) : 3;
  if (argc > 3) set_num_threads(std::atoi(argv[3]));
  Geometry g;
  g.dims = {n, n, n, 1};
  Image<float> img(g);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> U(0, 1);
  for (auto& v : img.storage()) v = U(rng);
  auto t0 = Clock::now();
  const Mode mode = argc > 5 ? parse_mode(argv[5]) : Mode::Mirror;
  const auto c = spline_coefficients<float>(img.view(), 3, degree, mode);
  auto t1 = Clock::now();
  const bool ident = argc > 4 && argv[4][0] == 'i';
  const double R[16] = {0.99, -0.1, 0.02, 3, 0.1, 0.99, 0.01, -2, -0.02, 0, 1, 1, 0, 0, 0, 1};
  const double I[16] = {1, 0, 0, 0.3, 0, 1, 0, 0.2, 0, 0, 1, 0.1, 0, 0, 0, 1};
  const double h = 0.5 * double(n - 1);
  const double Z[16] = {0.9, 0, 0, 0.1 * h + 0.3, 0, 0.9, 0, 0.1 * h + 0.2, 0, 0, 0.9, 0.1 * h + 0.1, 0, 0, 0, 1};
  const double* M = ident ? I : (argc > 4 && argv[4][0] == 'z') ? Z : R;
  Image<float> out(g);
  const int reps = argc > 6 ? std::max(1, std::atoi(argv[6])) : 1;
  double tw = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t2 = Clock::now();
    warp_affine(c, M, out.view());
    tw = std::min(tw, std::chrono::duration<double>(Clock::now() - t2).count());
  }
  const double nv = double(n * n * n) * 1e-6;
  const double tp = std::chrono::duration<double>(t1 - t0).count();
  std::printf("n=%lld degree=%d threads=%d prefilter %.3f s (%.0f Mvox/s)  warp %.3f s (%.0f Mvox/s)  checksum %.6f\n",
              (long long)n, degree, num_threads(), tp, nv / tp, tw, nv / tw, double(out.data()[n * n * n / 2 + n / 2]));
}
