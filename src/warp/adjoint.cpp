// The adjoint warps: the scatter of the output into a coefficient grid (scatter.cpp), then the
// transpose of the prefilter.
#include "internal.hpp"

namespace voxalign {
using namespace warp_detail;
namespace {

/// The coefficient grid (uninitialised) for an input of dims `in` (first nd axes interpolated).
template <class T> Coefficients<T> coefficient_grid(const int64_t* in, int nd, int order, Mode mode) {
  Coefficients<T> c;
  c.ndim = nd, c.order = order, c.mode = mode, c.pad = coefficient_pad(order, mode), c.cval = 0.0;
  Geometry g;
  g.ndim = nd;
  for (int d = 0; d < 4; ++d) g.dims[d] = in[d] + (d < nd ? 2 * c.pad : 0);
  c.image = Image<T>(g, no_init);
  return c;
}

template <class T>
void adjoint(ImageView<const T> y, ImageView<const T> field, const double* M, int nd, int order, Mode mode,
             ImageView<T> out) {
  VX_CHECK(nd >= 1 && nd <= 3, InvalidArgument, "warp adjoint: 1 to 3 interpolated axes, not ", nd);
  VX_CHECK((order >= 0 && order <= 7) || order == kKeys, InvalidArgument, "warp adjoint: order must be 0..7 or keys");
  VX_CHECK(y.dims[3] == 1 && out.dims[3] == 1, InvalidArgument, "warp adjoint: one frame at a time");
  for (int d = nd; d < 3; ++d)
    VX_CHECK(out.dims[d] == 1 && y.dims[d] == 1, InvalidArgument, "warp adjoint: axis ", d, " is not interpolated");
  // Modes without padding and a contiguous output: the coefficient grid is the output itself.
  if (coefficient_pad(order, mode) == 0 && out.strides[0] == 1 && out.strides[1] == out.dims[0] &&
      out.strides[2] == out.dims[0] * out.dims[1]) {
    scatter_grid(out.data, out.dims, nd, order, mode, 0, y, field, M);
    prefilter_transpose_in_place(out.data, out.dims, nd, order, mode);
    return;
  }
  Coefficients<T> c = coefficient_grid<T>(out.dims, nd, order, mode);
  scatter_points(c, y, field, M);
  spline_coefficients_adjoint(c, out);
}

} // namespace

template <class T>
void warp_displacement_adjoint(ImageView<const T> y, ImageView<const T> field, int ndim, int order, Mode mode,
                               ImageView<T> out) {
  VX_CHECK(field.data != nullptr, InvalidArgument, "warp adjoint: no displacement field");
  adjoint(y, field, nullptr, ndim, order, mode, out);
}

template <class T>
void warp_affine_adjoint(ImageView<const T> y, const double* M, int ndim, int order, Mode mode, ImageView<T> out) {
  adjoint(y, ImageView<const T>{}, M, ndim, order, mode, out);
}

#define VX_INSTANTIATE(T)                                                                                            \
  template void warp_displacement_adjoint(ImageView<const T>, ImageView<const T>, int, int, Mode, ImageView<T>);     \
  template void warp_affine_adjoint(ImageView<const T>, const double*, int, int, Mode, ImageView<T>);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
