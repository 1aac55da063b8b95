// Otsu foreground mask as ITK's OtsuThresholdImageFilter computes it (ITK 5.4, SimpleITK's 128
// bins); the histogram and the threshold search repeat ITK's arithmetic, float steps included,
// so the threshold is the same to the bit (docs/n4.md).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/n4/n4.hpp"

namespace voxalign {
namespace {

/// ITK's Math::FloatAlmostEqual(a, b, maxUlps = 1) for doubles.
bool almost_equal_1ulp(double a, double b) {
  if (std::abs(a - b) <= 0.1 * DBL_EPSILON) return true;
  if (std::signbit(a) != std::signbit(b)) return false;
  int64_t ia, ib;
  std::memcpy(&ia, &a, sizeof ia);
  std::memcpy(&ib, &b, sizeof ib);
  return std::abs(ia - ib) <= 1;
}

/// Calls fn(v) for every voxel of a 3D (or 4D) view.
template <class F> void for_each_voxel(const ImageView<const float>& im, F&& fn) {
  for (int64_t t = 0; t < im.dims[3]; ++t)
    for (int64_t k = 0; k < im.dims[2]; ++k)
      for (int64_t j = 0; j < im.dims[1]; ++j)
        for (int64_t i = 0; i < im.dims[0]; ++i) fn(im(i, j, k, t));
}

} // namespace

double otsu_threshold(ImageView<const float> image, int bins) {
  VX_CHECK(bins >= 2, InvalidArgument, "otsu: at least 2 histogram bins are needed, got ", bins);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool finite = true;
  for_each_voxel(image, [&](float v) {
    finite &= std::isfinite(v);
    lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
  });
  VX_CHECK(finite, InvalidArgument, "otsu: the image has non-finite values (NaN or Inf)");
  // ImageToHistogramFilter: [min, max + margin], bin width computed in float.
  const double upper = hi + (hi - lo) / bins / 100.0;
  const float interval = (static_cast<float>(upper) - static_cast<float>(lo)) / static_cast<float>(bins);
  std::vector<double> edge(static_cast<size_t>(bins) + 1);
  for (int b = 0; b < bins; ++b) edge[static_cast<size_t>(b)] = lo + static_cast<double>(static_cast<float>(b) * interval);
  edge[static_cast<size_t>(bins)] = upper;
  // Counts: the bin is the largest b with edge[b] <= v (a guess from the width, then corrected).
  std::vector<int64_t> count(static_cast<size_t>(bins), 0);
  const double inv = interval > 0 ? 1.0 / static_cast<double>(interval) : 0.0;
  for_each_voxel(image, [&](float fv) {
    const double v = fv;
    auto b = static_cast<int64_t>(std::clamp((v - lo) * inv, 0.0, static_cast<double>(bins - 1)));
    while (b + 1 < bins && edge[static_cast<size_t>(b + 1)] <= v) ++b;
    while (b > 0 && edge[static_cast<size_t>(b)] > v) --b;
    ++count[static_cast<size_t>(b)];
  });
  // OtsuMultipleThresholdsCalculator with one threshold.
  double n = 0, mean = 0;
  std::vector<double> c(static_cast<size_t>(bins));
  for (int b = 0; b < bins; ++b) {
    c[static_cast<size_t>(b)] = (edge[static_cast<size_t>(b)] + edge[static_cast<size_t>(b) + 1]) / 2.0;
    n += static_cast<double>(count[static_cast<size_t>(b)]);
    mean += c[static_cast<size_t>(b)] * static_cast<double>(count[static_cast<size_t>(b)]);
  }
  mean /= n;
  const auto h = [&](int b) { return static_cast<double>(count[static_cast<size_t>(b)]); };
  double f0 = h(0), m0 = f0 > 0 ? c[0] : 0.0, f1 = n - f0, m1 = f1 > 0 ? (mean * n - m0 * f0) / f1 : 0.0;
  double best = (f0 * m0 * m0 + f1 * m1 * m1) / n;
  int best_t = 0;
  for (int t = 0; t + 1 < bins - 1; ++t) {
    const double f_old = f0;
    f0 += h(t + 1);
    m0 = f0 > 0 ? (m0 * f_old + c[static_cast<size_t>(t + 1)] * h(t + 1)) / f0 : 0.0;
    f1 = n - f0;
    m1 = f1 > 0 ? (mean * n - m0 * f0) / f1 : 0.0;
    const double var = (f0 * m0 * m0 + f1 * m1 * m1) / n;
    if (var > best && !almost_equal_1ulp(best, var)) best = var, best_t = t + 1;
  }
  return static_cast<float>(edge[static_cast<size_t>(best_t) + 1]);
}

Image<uint8_t> otsu_mask(ImageView<const float> image, int bins) {
  const auto thr = static_cast<float>(otsu_threshold(image, bins));
  Geometry g;
  g.ndim = image.dims[2] > 1 ? 3 : 2;
  g.dims = {image.dims[0], image.dims[1], image.dims[2], 1};
  Image<uint8_t> m(g, no_init);
  uint8_t* d = m.data();
  for (int64_t k = 0; k < image.dims[2]; ++k)
    for (int64_t j = 0; j < image.dims[1]; ++j)
      for (int64_t i = 0; i < image.dims[0]; ++i) *d++ = image(i, j, k) > thr ? 1 : 0;
  return m;
}

} // namespace voxalign
