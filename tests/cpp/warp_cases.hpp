// Shared by the warp operator tests (test_warp_dot, test_kernel_bodies, test_cuda): every
// interpolation order and boundary mode, random images, small grids whose warps reach beyond every
// edge, a matrix that maps part of the grid outside it, and the failure label.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>
#include <type_traits>

#include "voxalign/image/image.hpp"
#include "voxalign/spline/modes.hpp"

namespace voxalign::test {

inline constexpr Mode kModes[] = {Mode::Mirror, Mode::Reflect, Mode::Nearest, Mode::Constant,
                                  Mode::GridConstant, Mode::Wrap, Mode::GridWrap, Mode::Itk};
inline constexpr int kOrders[] = {0, 1, 2, 3, 4, 5, 6, 7, kKeys};

template <class T> Image<T> random_image(std::array<int64_t, 4> dims, unsigned seed, double scale = 1.0) {
  Geometry g;
  g.dims = dims;
  Image<T> im(g);
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, scale);
  for (int64_t q = 0; q < im.size(); ++q) im.data()[q] = T(n(rng));
  return im;
}

// Image grid of an nd-dimensional case (the output grid is the input's), with `comps` in dims[3].
// Axis 0 of 19 in 3D: whole batches of 8 points and a partial one; axes shorter than 8 taps
// (degree 7) fold every tap.
inline std::array<int64_t, 4> grid(int nd, int64_t comps = 1) {
  if (nd == 1) return {23, 1, 1, comps};
  if (nd == 2) return {13, 9, 1, comps};
  return {19, 7, 9, comps};
}

// out voxel -> in voxel: a rotation, zoom and shift that maps part of the grid outside it.
inline void affine_matrix(int nd, double* M) {
  const double full[16] = {1.06, 0.21, -0.04, -1.3, -0.19, 0.97, 0.08, 0.9, 0.05, -0.11, 1.03, -0.6, 0, 0, 0, 1};
  for (int q = 0; q < 16; ++q) M[q] = full[q];
  for (int a = nd; a < 3; ++a) // unused axes: identity
    for (int b = 0; b < 4; ++b) M[4 * a + b] = a == b ? 1.0 : 0.0, M[4 * b + a] = a == b ? 1.0 : 0.0;
}

inline std::string what(const char* op, int order, Mode mode, int nd) {
  return std::string(op) + ", order " + order_name(order) + ", mode " + mode_name(mode) + ", " + std::to_string(nd) + "D";
}

template <class T> double tolerance() { return std::is_same_v<T, double> ? 1e-12 : 1e-5; }

// Largest |a - b| relative to the largest |b|.
template <class A, class B> double rel_diff(const A* a, const B* b, int64_t n) {
  double d = 0, m = 0;
  for (int64_t q = 0; q < n; ++q) {
    d = std::max(d, std::abs(double(a[q]) - double(b[q])));
    m = std::max(m, std::abs(double(b[q])));
  }
  return d / std::max(m, 1e-300);
}

} // namespace voxalign::test
