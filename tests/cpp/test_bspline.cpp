// Kernel weights: partition of unity, derivative consistency, and the B-spline recursion for
// degrees 6-7 against its closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "voxalign/spline/weights.hpp"

using namespace voxalign;

namespace {
template <int K> void check_kernel() {
  std::mt19937 rng(K);
  std::uniform_real_distribution<double> U(-5, 5);
  constexpr int W = kernel_taps(K);
  for (int t = 0; t < 500; ++t) {
    const double x = U(rng);
    double w[W], dw[W];
    kernel_weights<K, double>(x, w, dw);
    double s = 0, ds = 0;
    for (int k = 0; k < W; ++k) s += w[k], ds += dw[k];
    EXPECT_NEAR(s, 1.0, 1e-14) << "order " << K << " x " << x;   // partition of unity
    EXPECT_NEAR(ds, 0.0, 1e-13) << "order " << K << " x " << x;  // its derivative
    // Each weight's derivative against a central difference (same start index on both sides).
    const double h = 1e-6;
    if (kernel_start(x - h, K) != kernel_start(x + h, K)) continue;
    double wp[W], wm[W];
    kernel_weights<K, double>(x + h, wp, nullptr);
    kernel_weights<K, double>(x - h, wm, nullptr);
    for (int k = 0; k < W; ++k) EXPECT_NEAR(dw[k], (wp[k] - wm[k]) / (2 * h), 1e-8) << "order " << K << " tap " << k;
  }
}

// Closed form of the centred B-spline of degree n (sum of truncated powers).
double bspline_closed(int n, double x) {
  double s = 0, fact = 1;
  for (int i = 1; i <= n; ++i) fact *= i;
  for (int k = 0; k <= n + 1; ++k) {
    const double t = x + (n + 1) / 2.0 - k;
    if (t <= 0) continue;
    double binom = 1;
    for (int i = 1; i <= k; ++i) binom = binom * (n + 2 - i) / i;
    s += ((k & 1) ? -1 : 1) * binom * std::pow(t, n);
  }
  return s / fact;
}

template <int K> void check_closed_form() {
  std::mt19937 rng(100 + K);
  std::uniform_real_distribution<double> U(-4, 4);
  for (int t = 0; t < 200; ++t) {
    const double x = U(rng);
    double w[K + 1];
    kernel_weights<K, double>(x, w, nullptr);
    const int64_t start = kernel_start(x, K);
    for (int k = 0; k <= K; ++k) EXPECT_NEAR(w[k], bspline_closed(K, x - double(start + k)), 1e-12);
  }
}
} // namespace

TEST(Weights, PartitionOfUnityAndDerivatives) {
  check_kernel<1>();
  check_kernel<2>();
  check_kernel<3>();
  check_kernel<4>();
  check_kernel<5>();
  check_kernel<6>();
  check_kernel<7>();
  check_kernel<kKeys>();
}

TEST(Weights, MatchClosedFormBSpline) {
  check_closed_form<2>();
  check_closed_form<3>();
  check_closed_form<4>();
  check_closed_form<5>();
  check_closed_form<6>();
  check_closed_form<7>();
}

TEST(Weights, KeysInterpolatesNodes) {
  double w[4];
  kernel_weights<kKeys, double>(3.0, w, nullptr);
  EXPECT_EQ(kernel_start(3.0, kKeys), 2);
  EXPECT_DOUBLE_EQ(w[0], 0.0);
  EXPECT_DOUBLE_EQ(w[1], 1.0);
  EXPECT_DOUBLE_EQ(w[2], 0.0);
  EXPECT_DOUBLE_EQ(w[3], 0.0);
}

TEST(Modes, FoldIndexStaysInRange) {
  for (Mode m : {Mode::Mirror, Mode::Reflect, Mode::Nearest, Mode::GridWrap})
    for (int64_t n : {1, 2, 3, 7})
      for (int64_t i = -50; i < 50; ++i) {
        const int64_t f = fold_index(i, n, m);
        EXPECT_GE(f, 0);
        EXPECT_LT(f, n);
      }
  EXPECT_EQ(fold_index(-1, 5, Mode::Mirror), 1);
  EXPECT_EQ(fold_index(-1, 5, Mode::Reflect), 0);
  EXPECT_EQ(fold_index(5, 5, Mode::Mirror), 3);
  EXPECT_EQ(fold_index(5, 5, Mode::Reflect), 4);
  EXPECT_EQ(fold_index(5, 5, Mode::GridWrap), 0);
  EXPECT_EQ(fold_index(-7, 5, Mode::Nearest), 0);
}
