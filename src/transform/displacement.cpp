#include "voxalign/transform/displacement.hpp"

#include <cmath>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/spline/prefilter.hpp"
#include "voxalign/transform/affine_io.hpp"
#include "voxalign/transform/itk_hdf5.hpp"

namespace voxalign {
namespace {

// A chain ready to map points: each field as three linear-interpolation coefficient grids in ITK's
// mode (zero displacement beyond half a voxel outside the grid, clamped inside: ITK's
// DisplacementFieldTransform with its default linear interpolator) and its world -> voxel matrix.
struct PreparedStep {
  Mat4 matrix = Mat4::Identity();
  bool field = false;
  Mat4 world_to_voxel = Mat4::Identity();
  std::vector<Coefficients<double>> comp;
};

std::vector<PreparedStep> prepare(const TransformChain& chain) {
  std::vector<PreparedStep> out;
  for (const TransformStep& s : chain.steps) {
    PreparedStep p;
    if (!s.field) {
      p.matrix = s.matrix;
    } else {
      p.field = true;
      p.world_to_voxel = s.field->u.geometry().affine.inverse();
      const ImageView<const double> v = s.field->u.view();
      for (int c = 0; c < 3; ++c) p.comp.push_back(spline_coefficients<double>(v.frame(c), 3, 1, Mode::Itk, 0.0));
    }
    out.push_back(std::move(p));
  }
  return out;
}

// Map n world points (xyz interleaved) in place through steps[first..]; `scratch` holds 4n doubles.
void map_prepared(const std::vector<PreparedStep>& steps, double* xyz, int64_t n, std::vector<double>& scratch,
                  size_t first = 0) {
  scratch.resize(size_t(4 * n));
  double* vox = scratch.data();
  double* val = vox + 3 * n;
  for (size_t si = first; si < steps.size(); ++si) {
    const PreparedStep& s = steps[si];
    const Mat4& M = s.field ? s.world_to_voxel : s.matrix;
    double* dst = s.field ? vox : xyz;
    for (int64_t i = 0; i < n; ++i) {
      const double x = xyz[3 * i], y = xyz[3 * i + 1], z = xyz[3 * i + 2];
      for (int r = 0; r < 3; ++r) dst[3 * i + r] = M(r, 0) * x + M(r, 1) * y + M(r, 2) * z + M(r, 3);
    }
    if (!s.field) continue;
    for (int c = 0; c < 3; ++c) {
      interpolate<double>(s.comp[size_t(c)], vox, n, val);
      for (int64_t i = 0; i < n; ++i) xyz[3 * i + c] += val[i];
    }
  }
}

} // namespace

bool TransformChain::is_affine() const {
  for (const TransformStep& s : steps)
    if (s.field) return false;
  return true;
}

Mat4 TransformChain::affine() const {
  VX_CHECK(is_affine(), InvalidArgument, "transform chain: holds a displacement field, not one affine matrix");
  Mat4 A = Mat4::Identity();
  for (const TransformStep& s : steps) A = s.matrix * A;
  return A;
}

void TransformChain::append(const Mat4& m) { steps.push_back(TransformStep{m, nullptr}); }
void TransformChain::append(std::shared_ptr<const DisplacementField> f) {
  steps.push_back(TransformStep{Mat4::Identity(), std::move(f)});
}
void TransformChain::append(const TransformChain& c) { steps.insert(steps.end(), c.steps.begin(), c.steps.end()); }

void TransformChain::map_points(double* xyz, int64_t n) const {
  const std::vector<PreparedStep> p = prepare(*this);
  std::vector<double> scratch;
  map_prepared(p, xyz, n, scratch);
}

void check_displacement_field(const DisplacementField& f, const std::string& what) {
  const Geometry& g = f.u.geometry();
  VX_CHECK(g.dims[3] == 3, IoError, what, ": a displacement field needs 3 components (x, y, z), found ", g.dims[3]);
  VX_CHECK(g.affine.allFinite() && std::abs(g.affine.topLeftCorner<3, 3>().determinant()) > 1e-12, IoError, what,
           ": the displacement field's voxel-to-world matrix is singular");
  const double* u = f.u.data();
  for (int64_t i = 0; i < f.u.size(); ++i)
    VX_CHECK(std::isfinite(u[i]), IoError, what, ": the displacement field holds a value that is not finite");
}

bool is_displacement_field_name(const std::string& path) {
  return name_ends_with(path, ".nii") || name_ends_with(path, ".nii.gz");
}

DisplacementField read_displacement_field(const std::string& path) {
  DisplacementField f;
  f.u = read_nifti_vector<double>(path);
  VX_CHECK(f.u.geometry().dims[3] == 3, IoError, path, ": a displacement field needs 3 components (dim[5] = 3), found ",
           f.u.geometry().dims[3]);
  // ITK and ANTs write the vectors in LPS (the grid in the header is RAS, as NIfTI says).
  const int64_t n = f.u.geometry().frame_size();
  double* u = f.u.data();
  for (int64_t i = 0; i < 2 * n; ++i) u[i] = -u[i];
  check_displacement_field(f, path);
  return f;
}

TransformChain read_transform_chain(const std::vector<std::string>& paths, const Geometry* reference,
                                    const Geometry* input) {
  TransformChain chain;
  const bool alone = paths.size() == 1;
  for (const std::string& p : paths) {
    if (is_displacement_field_name(p)) {
      chain.append(std::make_shared<const DisplacementField>(read_displacement_field(p)));
    } else if (is_hdf5_transform_name(p)) {
      chain.append(read_itk_hdf5(p));
    } else {
      // A FLIRT matrix maps between the output grid and the input's: known only when it is the only transform.
      VX_CHECK(alone || transform_file_format(p) != TransformFormat::FslFlirt, IoError, p,
               ": an FSL FLIRT matrix can only be given alone (it maps the output grid to the input's grid)");
      chain.append(read_transform(p, alone ? reference : nullptr, alone ? input : nullptr));
    }
  }
  return chain;
}

template <class T>
void resample_chain_into(ImageView<const T> in, const Mat4& in_affine, int in_axes, ImageView<T> out,
                         const Mat4& out_affine, const TransformChain& chain, const ResampleOptions& opts) {
  if (chain.is_affine()) return resample_into<T>(in, in_affine, in_axes, out, out_affine, chain.affine(), opts);
  VX_CHECK(in.dims[3] == out.dims[3], InvalidArgument, "resample: input has ", in.dims[3], " frames, output ",
           out.dims[3]);
  VX_CHECK(std::abs(in_affine.determinant()) > 1e-12, InvalidArgument, "resample: input voxel-to-world matrix is singular");
  for (const TransformStep& s : chain.steps)
    VX_CHECK(s.field || s.matrix.allFinite(), InvalidArgument, "resample: transform is not finite");
  const std::vector<PreparedStep> steps = prepare(chain);
  const Mat4 to_in = in_affine.inverse();
  // A first field on the output grid itself (antsRegistration's warps are on the fixed grid) is read at
  // the voxels, not interpolated there: the same values (grids equal to NIfTI's float32 header
  // rounding, 1e-6 mm), without the interpolation's cost.
  const DisplacementField* on_grid = nullptr;
  if (chain.steps[0].field) {
    const Geometry& fg = chain.steps[0].field->u.geometry();
    Geometry og;
    for (int d = 0; d < 3; ++d) og.dims[d] = out.dims[d];
    og.affine = out_affine;
    if (fg.same_grid(og, 1e-6)) on_grid = chain.steps[0].field.get();
  }
  // The input point of every output voxel, once for all frames, as a displacement in input voxels
  // (p(x) - x: what warp_displacement takes).
  const int64_t nx = out.dims[0], ny = out.dims[1], nz = out.dims[2];
  const int64_t fdims[4] = {nx, ny, nz, in_axes};
  Buffer<T> disp(size_t(nx * ny * nz * in_axes));
  const ImageView<T> dv = contiguous_view(disp.data(), fdims);
  parallel_for(ny * nz, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> pts(size_t(3 * nx)), scratch;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % ny, k = r / ny;
      for (int64_t i = 0; i < nx; ++i)
        for (int d = 0; d < 3; ++d)
          pts[size_t(3 * i + d)] = out_affine(d, 0) * double(i) + out_affine(d, 1) * double(j) +
                                   out_affine(d, 2) * double(k) + out_affine(d, 3);
      if (on_grid) {
        const ImageView<const double> u = on_grid->u.view();
        for (int64_t i = 0; i < nx; ++i)
          for (int d = 0; d < 3; ++d) pts[size_t(3 * i + d)] += u(i, j, k, d);
      }
      map_prepared(steps, pts.data(), nx, scratch, on_grid ? 1 : 0);
      for (int64_t i = 0; i < nx; ++i) {
        const double* y = &pts[size_t(3 * i)];
        const double x[3] = {double(i), double(j), double(k)};
        for (int d = 0; d < in_axes; ++d)
          dv(i, j, k, d) = T(to_in(d, 0) * y[0] + to_in(d, 1) * y[1] + to_in(d, 2) * y[2] + to_in(d, 3) - x[d]);
      }
    }
  });
  for (int64_t t = 0; t < in.dims[3]; ++t) {
    const Coefficients<T> c = spline_coefficients<T>(in.frame(t), in_axes, opts.order, opts.mode, opts.cval);
    warp_displacement<T>(c, dv, out.frame(t));
  }
}

template <class T>
Image<T> resample_chain(const Image<T>& in, const Geometry& target, const TransformChain& chain,
                        const ResampleOptions& opts) {
  if (chain.is_affine()) return resample(in, target, chain.affine(), opts);
  Geometry g = target;
  g.dims[3] = in.geometry().dims[3];
  g.ndim = in.geometry().dims[3] > 1 ? 4 : std::min(target.ndim, 3);
  g.time_step = in.geometry().time_step;
  Image<T> out(g, no_init);
  resample_chain_into<T>(in.view(), in.geometry().affine, interpolated_axes(in.geometry()), out.view(), g.affine, chain,
                         opts);
  return out;
}

template Image<float> resample_chain(const Image<float>&, const Geometry&, const TransformChain&,
                                     const ResampleOptions&);
template Image<double> resample_chain(const Image<double>&, const Geometry&, const TransformChain&,
                                      const ResampleOptions&);
template void resample_chain_into(ImageView<const float>, const Mat4&, int, ImageView<float>, const Mat4&,
                                  const TransformChain&, const ResampleOptions&);
template void resample_chain_into(ImageView<const double>, const Mat4&, int, ImageView<double>, const Mat4&,
                                  const TransformChain&, const ResampleOptions&);

void write_displacement_field(const std::string& path, const DisplacementField& field) {
  const Geometry& g = field.u.geometry();
  VX_CHECK(g.dims[3] == 3, InvalidArgument, path, ": a displacement field has 3 components");
  Image<float> lps(g, no_init);
  const int64_t n = g.frame_size();
  for (int64_t v = 0; v < n; ++v) {
    lps.data()[v] = float(-field.u.data()[v]); // RAS -> LPS: x and y change sign
    lps.data()[v + n] = float(-field.u.data()[v + n]);
    lps.data()[v + 2 * n] = float(field.u.data()[v + 2 * n]);
  }
  NiftiMeta meta;
  meta.intent_code = 1007; // NIFTI_INTENT_VECTOR: written as X x Y x Z x 1 x 3, ITK's layout
  meta.sform_code = meta.qform_code = 1;
  NiftiWriteOptions w;
  w.meta = &meta;
  write_nifti(path, lps, w);
}

} // namespace voxalign
