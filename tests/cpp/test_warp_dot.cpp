// Dot tests <A x, y> = <x, A^T y> for every warp operator at every interpolation order (B-spline
// degrees 0-7 and Keys), every boundary mode and 1D/2D/3D, in float64 (1e-12 of |Ax||y|) and
// float32 (1e-5: the AVX2 batches of the 4-tap kernels run there):
//   - displacement-field warp and its adjoint (warp_displacement / warp_displacement_adjoint);
//   - affine warp and its adjoint (warp_affine / warp_affine_adjoint);
//   - the field JVP and VJP (warp_displacement_jvp / warp_displacement_vjp);
//   - the affine-parameter JVP along dM and its VJP (warp_affine_jvp / warp_affine_moments: the
//     VJP of a direction dM is sum_ab dM[a][b] G[4a + b]).
// The grids are small and the field / matrix send points beyond every edge, so that every folding
// branch of the stencil and both scatter schedules meet the test. A failure names the operator,
// order, mode and dimension.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/warp.hpp"
#include "warp_cases.hpp"

using namespace voxalign;

namespace {

using namespace voxalign::test;

template <class T> double dot(const Image<T>& a, const Image<T>& b) {
  double s = 0;
  for (int64_t q = 0; q < a.size(); ++q) s += double(a.data()[q]) * double(b.data()[q]);
  return s;
}
template <class T> double norm(const Image<T>& a) { return std::sqrt(dot(a, a)); }

template <class T> void check_linear_warps(int nd) {
  const auto d = grid(nd);
  const Image<T> x = random_image<T>(d, 1), y = random_image<T>(d, 2);
  const Image<T> u = random_image<T>(grid(nd, nd), 3, 2.5); // beyond the edges near them
  double M[16];
  affine_matrix(nd, M);
  for (int order : kOrders)
    for (Mode mode : kModes) {
      const auto c = spline_coefficients<T>(x.view(), nd, order, mode, 0.0);
      Image<T> ax(x.geometry()), aty(x.geometry());
      warp_displacement<T>(c, u.view(), ax.view());
      warp_displacement_adjoint<T>(y.view(), u.view(), nd, order, mode, aty.view());
      EXPECT_LE(std::abs(dot(ax, y) - dot(x, aty)), tolerance<T>() * norm(ax) * norm(y))
          << what("displacement warp", order, mode, nd);
      warp_affine<T>(c, M, ax.view());
      warp_affine_adjoint<T>(y.view(), M, nd, order, mode, aty.view());
      EXPECT_LE(std::abs(dot(ax, y) - dot(x, aty)), tolerance<T>() * norm(ax) * norm(y))
          << what("affine warp", order, mode, nd);
    }
}

template <class T> void check_derivatives(int nd) {
  const auto d = grid(nd);
  const Image<T> f = random_image<T>(d, 4), ybar = random_image<T>(d, 5);
  const Image<T> u = random_image<T>(grid(nd, nd), 6, 2.5), du = random_image<T>(grid(nd, nd), 7);
  double M[16], dM[16];
  affine_matrix(nd, M);
  std::mt19937 rng(8);
  std::normal_distribution<double> n(0.0, 0.1);
  for (int q = 0; q < 16; ++q) dM[q] = q / 4 < nd && q % 4 < nd ? n(rng) : (q % 4 == 3 && q < 12 && q / 4 < nd ? n(rng) : 0.0);
  for (int order : kOrders)
    for (Mode mode : kModes) {
      const auto c = spline_coefficients<T>(f.view(), nd, order, mode, 0.0);
      // field: <J du, ybar> = <du, J^T ybar>
      Image<T> jdu(f.geometry()), jty(du.geometry());
      warp_displacement_jvp<T>(c, u.view(), du.view(), jdu.view());
      warp_displacement_vjp<T>(c, u.view(), ybar.view(), jty.view());
      EXPECT_LE(std::abs(dot(jdu, ybar) - dot(du, jty)), tolerance<T>() * norm(jdu) * norm(ybar) + 1e-300)
          << what("field JVP/VJP", order, mode, nd);
      // affine parameters (a matrix direction dM): <J dM, ybar> = sum_ab dM[a][b] G[4a + b]
      Image<T> jdm(f.geometry());
      warp_affine_jvp<T>(c, M, dM, jdm.view());
      double G[16] = {};
      warp_affine_moments<T>(c, M, ybar.view(), G);
      double vjp = 0;
      for (int q = 0; q < 12; ++q) vjp += dM[q] * G[q];
      EXPECT_LE(std::abs(dot(jdm, ybar) - vjp), tolerance<T>() * norm(jdm) * norm(ybar) + 1e-300)
          << what("affine-parameter JVP/VJP", order, mode, nd);
    }
}

} // namespace

TEST(WarpDot, LinearWarpsEveryOrderAndModeDouble) {
  for (int nd = 1; nd <= 3; ++nd) check_linear_warps<double>(nd);
}
TEST(WarpDot, LinearWarpsEveryOrderAndModeFloat) {
  for (int nd = 1; nd <= 3; ++nd) check_linear_warps<float>(nd);
}
TEST(WarpDot, FieldAndParameterDerivativesEveryOrderAndModeDouble) {
  for (int nd = 1; nd <= 3; ++nd) check_derivatives<double>(nd);
}
TEST(WarpDot, FieldAndParameterDerivativesEveryOrderAndModeFloat) {
  for (int nd = 1; nd <= 3; ++nd) check_derivatives<float>(nd);
}
