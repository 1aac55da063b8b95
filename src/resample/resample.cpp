#include "voxalign/resample/resample.hpp"

#include "voxalign/core/error.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/spline/prefilter.hpp"

namespace voxalign {

int interpolated_axes(const Geometry& g) {
  int nd = 3;
  while (nd > 1 && g.dims[nd - 1] == 1) --nd;
  return nd;
}

template <class T>
void resample_into(const Coefficients<T>& in, const Mat4& in_affine, ImageView<T> out, const Mat4& out_affine,
                   const Mat4& world_pullback) {
  VX_CHECK(out.dims[3] == 1, InvalidArgument, "resample: coefficients are one frame, the output has ", out.dims[3]);
  VX_CHECK(std::abs(in_affine.determinant()) > 1e-12, InvalidArgument, "resample: input voxel-to-world matrix is singular");
  VX_CHECK(world_pullback.allFinite(), InvalidArgument, "resample: transform is not finite");
  const Mat4 M = in_affine.inverse() * world_pullback * out_affine; // out voxel -> in voxel
  double m[16];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) m[4 * r + c] = M(r, c);
  warp_affine(in, m, out);
}

template <class T>
void resample_into(ImageView<const T> in, const Mat4& in_affine, int in_axes, ImageView<T> out, const Mat4& out_affine,
                   const Mat4& world_pullback, const ResampleOptions& opts) {
  VX_CHECK(in.dims[3] == out.dims[3], InvalidArgument, "resample: input has ", in.dims[3], " frames, output ",
           out.dims[3]);
  for (int64_t t = 0; t < in.dims[3]; ++t) {
    const Coefficients<T> c = spline_coefficients<T>(in.frame(t), in_axes, opts.order, opts.mode, opts.cval);
    resample_into<T>(c, in_affine, out.frame(t), out_affine, world_pullback);
  }
}

template <class T>
Image<T> resample(const Image<T>& in, const Geometry& target, const Mat4& world_pullback, const ResampleOptions& opts) {
  Geometry g = target;
  g.dims[3] = in.geometry().dims[3];
  g.ndim = in.geometry().dims[3] > 1 ? 4 : std::min(target.ndim, 3);
  g.time_step = in.geometry().time_step;
  Image<T> out(g, no_init);
  resample_into<T>(in.view(), in.geometry().affine, interpolated_axes(in.geometry()), out.view(), g.affine,
                   world_pullback, opts);
  return out;
}

template Image<float> resample(const Image<float>&, const Geometry&, const Mat4&, const ResampleOptions&);
template Image<double> resample(const Image<double>&, const Geometry&, const Mat4&, const ResampleOptions&);
template void resample_into(ImageView<const float>, const Mat4&, int, ImageView<float>, const Mat4&, const Mat4&,
                            const ResampleOptions&);
template void resample_into(ImageView<const double>, const Mat4&, int, ImageView<double>, const Mat4&, const Mat4&,
                            const ResampleOptions&);
template void resample_into(const Coefficients<float>&, const Mat4&, ImageView<float>, const Mat4&, const Mat4&);
template void resample_into(const Coefficients<double>&, const Mat4&, ImageView<double>, const Mat4&, const Mat4&);

} // namespace voxalign
