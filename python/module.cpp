// nanobind bindings of voxalign::core. Thin: argument conversion only; all numerics are C++.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/array.h>

#include "voxalign/core/error.hpp"
#include "voxalign/core/memory.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/n4/n4.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/realign/realign.hpp"
#include "voxalign/resample/resample.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/spline/prefilter.hpp"
#include "voxalign/transform/affine_io.hpp"
#include "voxalign/transform/displacement.hpp"
#include "voxalign/warp/warp.hpp"
#include "voxalign/warp/affine_params.hpp"
#include "voxalign/solve/solvers.hpp"

namespace nb = nanobind;
using namespace voxalign;

namespace {

template <class T> using InArr = nb::ndarray<const T, nb::device::cpu>;
using Mat44 = nb::ndarray<const double, nb::shape<4, 4>, nb::device::cpu>;

template <class T> ImageView<const T> view_of(const InArr<T>& a, int max_ndim, const char* what) {
  if (a.ndim() < 1 || a.ndim() > size_t(max_ndim))
    throw InvalidArgument(std::string(what) + " must have 1 to " + std::to_string(max_ndim) + " dimensions, not " +
                          std::to_string(a.ndim()));
  ImageView<const T> v;
  v.data = a.data();
  for (size_t d = 0; d < a.ndim(); ++d) {
    v.dims[d] = int64_t(a.shape(d));
    v.strides[d] = int64_t(a.stride(d));
    if (v.dims[d] < 1) throw InvalidArgument(std::string(what) + " has an empty axis");
  }
  return v;
}

Mat4 to_mat4(const Mat44& m) {
  Mat4 r;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) r(i, j) = m(i, j);
  return r;
}

void rowmajor16(const Mat44& M, double* m) {
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) m[4 * i + j] = M(i, j);
}

nb::ndarray<nb::numpy, double, nb::shape<4, 4>> from_mat4(const Mat4& m) {
  double* d = new double[16];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) d[4 * i + j] = m(i, j);
  nb::capsule owner(d, [](void* p) noexcept { delete[] static_cast<double*>(p); });
  return nb::ndarray<nb::numpy, double, nb::shape<4, 4>>(d, {4, 4}, owner);
}

// A numpy array in NIfTI (Fortran, i fastest) order owning `img`'s storage.
template <class T> nb::ndarray<nb::numpy, T> from_image(Image<T>&& img, int ndim) {
  auto* holder = new Buffer<T>(std::move(img.storage()));
  nb::capsule owner(holder, [](void* p) noexcept { delete static_cast<Buffer<T>*>(p); });
  size_t shape[4];
  int64_t strides[4];
  int64_t s = 1;
  for (int d = 0; d < ndim; ++d) {
    shape[d] = size_t(img.geometry().dims[d]);
    strides[d] = s;
    s *= img.geometry().dims[d];
  }
  return nb::ndarray<nb::numpy, T>(holder->data(), size_t(ndim), shape, owner, strides);
}

template <class T> nb::ndarray<nb::numpy, T> new_array(const std::vector<size_t>& shape, T** data, bool fortran) {
  size_t n = 1;
  for (auto s : shape) n *= s;
  auto* buf = new Buffer<T>(n); // uninitialised: every element is written by the caller
  *data = buf->data();
  nb::capsule owner(buf, [](void* p) noexcept { delete static_cast<Buffer<T>*>(p); });
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  if (fortran)
    for (size_t d = 0; d < shape.size(); ++d) strides[d] = s, s *= int64_t(shape[d]);
  else
    for (size_t d = shape.size(); d-- > 0;) strides[d] = s, s *= int64_t(shape[d]);
  return nb::ndarray<nb::numpy, T>(buf->data(), shape.size(), shape.data(), owner, strides.data());
}

template <class T>
std::tuple<nb::ndarray<nb::numpy, T>, int> py_coefficients(InArr<T> a, int order, const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  Coefficients<T> c;
  {
    nb::gil_scoped_release release;
    c = spline_coefficients<T>(v, int(a.ndim()), order, parse_mode(mode), cval);
  }
  return {from_image(std::move(c.image), int(a.ndim())), c.pad};
}

// Caller-provided coefficients (already padded by `pad`), copied into contiguous storage.
template <class T> Coefficients<T> borrow(const ImageView<const T>& v, int ndim, int order, Mode mode, int pad, double cval) {
  Coefficients<T> c;
  c.ndim = ndim, c.order = order, c.mode = mode, c.pad = pad, c.cval = cval;
  Geometry g;
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  c.image = Image<T>(g, no_init);
  // Coefficients must be contiguous for the kernels: copy, in tiles of 64 x 64 (i, j) so that a
  // C-order array (i the slowest axis) is read a cache line at a time rather than an element.
  T* dst = c.image.data();
  const int64_t d0 = v.dims[0], d1 = v.dims[1];
  constexpr int64_t B = 64;
  for (int64_t k = 0; k < v.dims[2]; ++k)
    for (int64_t j0 = 0; j0 < d1; j0 += B)
      for (int64_t i0 = 0; i0 < d0; i0 += B)
        for (int64_t j = j0; j < std::min(d1, j0 + B); ++j)
          for (int64_t i = i0; i < std::min(d0, i0 + B); ++i) dst[(k * d1 + j) * d0 + i] = v(i, j, k);
  return c;
}

template <class T>
nb::object py_interpolate(InArr<T> coeffs, int pad, int order, const std::string& mode, double cval,
                          nb::ndarray<const double, nb::ndim<2>, nb::c_contig, nb::device::cpu> pts, bool grad) {
  const ImageView<const T> v = view_of<T>(coeffs, 3, "coefficients");
  const int nd = int(coeffs.ndim());
  if (pts.shape(1) != size_t(nd))
    throw InvalidArgument("points must have " + std::to_string(nd) + " coordinates each (last axis), not " +
                          std::to_string(pts.shape(1)));
  const int64_t n = int64_t(pts.shape(0));
  T* vals;
  auto out = new_array<T>({size_t(n)}, &vals, false);
  T* grads = nullptr;
  nb::object gobj = nb::none();
  if (grad) {
    auto g = new_array<T>({size_t(n), size_t(nd)}, &grads, false);
    gobj = nb::cast(g);
  }
  {
    nb::gil_scoped_release release;
    const Mode md = parse_mode(mode);
    if (v.strides[0] == 1 && v.strides[1] > 0 && v.strides[2] > 0) { // read in place (arrays in NIfTI/Fortran order, and C-order ones the
                             // package passes transposed)
      interpolate<T>(v, nd, order, md, pad, cval, pts.data(), n, vals, grads);
    } else {
      const Coefficients<T> c = borrow<T>(v, nd, order, md, pad, cval);
      interpolate<T>(c, pts.data(), n, vals, grads);
    }
  }
  if (grad) return nb::make_tuple(out, gobj);
  return nb::cast(out);
}

// Resampling through a transform chain (an affine pull-back is a chain of one matrix).
template <class T>
nb::ndarray<nb::numpy, T> resample_through(InArr<T> a, Mat44 affine, std::vector<int64_t> shape, Mat44 target_affine,
                                           const std::vector<nb::object>* items, const Mat4* pullback, int order,
                                           const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, 4, "array");
  if (shape.size() < 1 || shape.size() > 3) throw InvalidArgument("shape must have 1 to 3 entries");
  Geometry gin;
  for (int d = 0; d < 4; ++d) gin.dims[d] = v.dims[d];
  const int frames = int(v.dims[3]);
  std::vector<size_t> oshape(shape.begin(), shape.end());
  while (oshape.size() < 3 && a.ndim() == 4) oshape.push_back(1);
  if (a.ndim() == 4) oshape.push_back(size_t(frames));
  for (auto s : shape)
    if (s < 1) throw InvalidArgument("shape entries must be positive");
  int64_t odims[4];
  for (int d = 0; d < 4; ++d) odims[d] = d < int(shape.size()) ? shape[size_t(d)] : (d == 3 ? frames : 1);
  ResampleOptions o;
  o.order = order;
  o.mode = parse_mode(mode);
  o.cval = cval;
  const Mat4 A = to_mat4(affine), B = to_mat4(target_affine);
  TransformChain chain;
  if (pullback) chain.append(*pullback);
  else {
    // Files (names) and 4x4 matrices in application order; the grids let a FLIRT matrix given alone be read.
    Geometry gout;
    for (int d = 0; d < 3; ++d) gout.dims[d] = odims[d];
    gout.affine = B;
    gin.affine = A;
    const bool alone = items->size() == 1;
    for (const nb::object& it : *items) {
      if (nb::isinstance<nb::str>(it))
        chain.append(read_transform_chain({nb::cast<std::string>(it)}, alone ? &gout : nullptr, alone ? &gin : nullptr));
      else
        chain.append(to_mat4(nb::cast<Mat44>(it)));
    }
  }
  T* data;
  auto out = new_array<T>(oshape, &data, true);
  const ImageView<T> ov = contiguous_view(data, odims);
  {
    nb::gil_scoped_release release;
    resample_chain_into<T>(v, A, interpolated_axes(gin), ov, B, chain, o);
  }
  return out;
}

template <class T>
nb::ndarray<nb::numpy, T> py_resample(InArr<T> a, Mat44 affine, std::vector<int64_t> shape, Mat44 target_affine,
                                      Mat44 pullback, int order, const std::string& mode, double cval) {
  const Mat4 P = to_mat4(pullback);
  return resample_through<T>(a, affine, std::move(shape), target_affine, nullptr, &P, order, mode, cval);
}

// items: transform file names (displacement fields, .h5, every affine format) and 4x4 matrices.
template <class T>
nb::ndarray<nb::numpy, T> py_resample_chain(InArr<T> a, Mat44 affine, std::vector<int64_t> shape, Mat44 target_affine,
                                            std::vector<nb::object> items, int order, const std::string& mode,
                                            double cval) {
  return resample_through<T>(a, affine, std::move(shape), target_affine, &items, nullptr, order, mode, cval);
}

// A field (or tangent) of shape (*grid, nd) as a view with the components in dims[3].
template <class T> ImageView<const T> field_view(const InArr<T>& f, int nd, const char* what) {
  if (nd < 1 || nd > 3) throw InvalidArgument(std::string(what) + " must have 1 to 3 grid axes plus the components");
  for (size_t d = 0; d < f.ndim(); ++d)
    if (f.shape(d) == 0) throw InvalidArgument(std::string(what) + " has an empty axis");
  if (f.ndim() != size_t(nd + 1) || f.shape(size_t(nd)) != size_t(nd))
    throw InvalidArgument(std::string(what) + " must have shape (*grid, " + std::to_string(nd) + ")");
  ImageView<const T> v;
  v.data = f.data();
  for (int d = 0; d < nd; ++d) v.dims[d] = int64_t(f.shape(size_t(d))), v.strides[d] = int64_t(f.stride(size_t(d)));
  v.dims[3] = nd;
  v.strides[3] = int64_t(f.stride(size_t(nd)));
  return v;
}

template <class T> ImageView<T> output_of(const std::vector<size_t>& shape, T** data, nb::ndarray<nb::numpy, T>& arr) {
  if (shape.size() > 4) throw InvalidArgument("at most 4 dimensions");
  arr = new_array<T>(shape, data, true);
  int64_t dims[4] = {1, 1, 1, 1};
  for (size_t d = 0; d < shape.size(); ++d) dims[d] = int64_t(shape[d]);
  return contiguous_view(*data, dims);
}

// A Fortran-order (*grid, nd) output viewed with its components in dims[3], as the core expects.
template <class T> void as_components(ImageView<T>& ov, int nd) {
  ov.dims[3] = nd;
  for (int d = nd; d < 3; ++d) ov.dims[d] = 1;
  int64_t s = 1;
  for (int d = 0; d < nd; ++d) ov.strides[d] = s, s *= ov.dims[d];
  for (int d = nd; d < 3; ++d) ov.strides[d] = s;
  ov.strides[3] = s;
}

std::vector<size_t> grid_shape(const std::vector<int64_t>& shape, int nd) {
  if (int(shape.size()) != nd) throw InvalidArgument("shape must have " + std::to_string(nd) + " entries");
  std::vector<size_t> s;
  for (auto v : shape) {
    if (v < 1) throw InvalidArgument("shape entries must be positive");
    s.push_back(size_t(v));
  }
  return s;
}

template <class T>
nb::ndarray<nb::numpy, T> py_warp_field(InArr<T> a, InArr<T> field, int order, const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  const int nd = int(a.ndim());
  const ImageView<const T> fv = field_view(field, nd, "field");
  std::vector<size_t> oshape;
  for (int d = 0; d < nd; ++d) oshape.push_back(size_t(fv.dims[d]));
  T* data;
  nb::ndarray<nb::numpy, T> out;
  const ImageView<T> ov = output_of<T>(oshape, &data, out);
  {
    nb::gil_scoped_release release;
    const Coefficients<T> c = spline_coefficients<T>(v, nd, order, parse_mode(mode), cval);
    warp_displacement<T>(c, fv, ov);
  }
  return out;
}

template <class T> void write_typed(const std::string& path, InArr<T> a, Mat44 affine, const std::string& dtype, double tr) {
  const ImageView<const T> v = view_of<T>(a, 4, "array");
  Geometry g;
  g.ndim = int(a.ndim());
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  g.affine = to_mat4(affine);
  g.time_step = tr;
  NiftiWriteOptions o;
  o.dtype = parse_dtype(dtype);
  nb::gil_scoped_release release;
  Image<T> img(g, no_init);
  T* dst = img.data();
  for (int64_t t = 0; t < v.dims[3]; ++t)
    for (int64_t k = 0; k < v.dims[2]; ++k)
      for (int64_t j = 0; j < v.dims[1]; ++j)
        for (int64_t i = 0; i < v.dims[0]; ++i) *dst++ = v(i, j, k, t);
  write_nifti(path, img, o);
}

} // namespace

nb::tuple py_n4(InArr<float> img, std::optional<InArr<uint8_t>> mask, std::optional<InArr<float>> weight,
                std::array<double, 3> spacing, std::vector<int> iterations, double convergence, int spline_order,
                std::vector<int> control_points, double spline_distance, int shrink, int bins, double fwhm,
                double wiener, int otsu_bins) {
  const auto v = view_of(img, 3, "image");
  ImageView<const uint8_t> mv;
  ImageView<const float> wv;
  if (mask) mv = view_of(*mask, 3, "mask");
  if (weight) wv = view_of(*weight, 3, "weight");
  N4Options o;
  o.iterations = std::move(iterations);
  o.convergence = convergence;
  o.spline_order = spline_order;
  o.control_points = std::move(control_points);
  o.spline_distance = spline_distance;
  o.shrink = shrink;
  o.bins = bins;
  o.fwhm = fwhm;
  o.wiener = wiener;
  o.otsu_bins = otsu_bins;
  N4Result r;
  {
    nb::gil_scoped_release release;
    r = n4(v, spacing, mask ? &mv : nullptr, weight ? &wv : nullptr, o, true);
  }
  const int nd = int(img.ndim());
  nb::dict rep;
  rep["fit_shape"] = r.report.fit_dims;
  rep["fit_voxels"] = r.report.fit_voxels;
  rep["control_points"] = r.report.control_points;
  rep["iterations"] = r.report.iterations;
  rep["convergence"] = r.report.final_convergence;
  rep["otsu_mask"] = r.report.otsu_mask;
  return nb::make_tuple(from_image(std::move(r.corrected), nd), from_image(std::move(r.bias), nd), rep);
}

nb::ndarray<nb::numpy, uint8_t> py_otsu(InArr<float> img, int bins) {
  const auto v = view_of(img, 3, "image");
  return from_image(otsu_mask(v, bins), int(img.ndim()));
}

template <class T>
nb::ndarray<nb::numpy, T> py_warp_adjoint(InArr<T> y, InArr<T> field, std::vector<int64_t> in_shape, int order,
                                          const std::string& mode) {
  const int nd = int(y.ndim());
  const ImageView<const T> yv = view_of<T>(y, 3, "y");
  const ImageView<const T> fv = field_view(field, nd, "field");
  T* data;
  nb::ndarray<nb::numpy, T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(in_shape, nd), &data, out);
  {
    nb::gil_scoped_release release;
    warp_displacement_adjoint<T>(yv, fv, nd, order, parse_mode(mode), ov);
  }
  return out;
}

template <class T>
nb::ndarray<nb::numpy, T> py_affine_warp(InArr<T> a, Mat44 M, std::vector<int64_t> out_shape, int order,
                                         const std::string& mode, double cval) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  T* data;
  nb::ndarray<nb::numpy, T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(out_shape, nd), &data, out);
  double m[16];
  rowmajor16(M, m);
  {
    nb::gil_scoped_release release;
    const Coefficients<T> c = spline_coefficients<T>(v, nd, order, parse_mode(mode), cval);
    warp_affine<T>(c, m, ov);
  }
  return out;
}

template <class T>
nb::ndarray<nb::numpy, T> py_affine_adjoint(InArr<T> y, Mat44 M, std::vector<int64_t> in_shape, int order,
                                            const std::string& mode) {
  const int nd = int(y.ndim());
  const ImageView<const T> yv = view_of<T>(y, 3, "y");
  T* data;
  nb::ndarray<nb::numpy, T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(in_shape, nd), &data, out);
  double m[16];
  rowmajor16(M, m);
  {
    nb::gil_scoped_release release;
    warp_affine_adjoint<T>(yv, m, nd, order, parse_mode(mode), ov);
  }
  return out;
}

// kind 0: (value, gradient); 1: JVP with tangent `other` (a field); 2: VJP with cotangent `other` (an image)
template <class T>
nb::object py_warp_derivative(InArr<T> a, InArr<T> field, std::optional<InArr<T>> other, int kind, int order,
                              const std::string& mode) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  const ImageView<const T> fv = field_view(field, nd, "field");
  std::vector<size_t> grid;
  for (int d = 0; d < nd; ++d) grid.push_back(size_t(fv.dims[d]));
  std::vector<size_t> with_comp = grid;
  with_comp.push_back(size_t(nd));
  T *d0, *d1;
  nb::ndarray<nb::numpy, T> o0, o1;
  if (kind != 1 && !other && kind == 2) throw InvalidArgument("warp VJP needs a cotangent");
  if (kind == 1 && !other) throw InvalidArgument("warp JVP needs a tangent field");
  ImageView<T> value, grad;
  if (kind == 0) {
    value = output_of<T>(grid, &d0, o0);
    grad = output_of<T>(with_comp, &d1, o1);
    as_components(grad, nd);
  } else if (kind == 1) {
    value = output_of<T>(grid, &d0, o0);
  } else {
    grad = output_of<T>(with_comp, &d1, o1);
    as_components(grad, nd);
  }
  ImageView<const T> ov;
  if (kind == 1) ov = field_view(*other, nd, "tangent");
  if (kind == 2) {
    ov = view_of<T>(*other, 3, "cotangent");
    for (int d = 0; d < nd; ++d)
      if (ov.dims[d] != fv.dims[d]) throw InvalidArgument("cotangent must have the field's grid shape");
  }
  {
    nb::gil_scoped_release release;
    const Coefficients<T> c = spline_coefficients<T>(v, nd, order, parse_mode(mode), 0.0);
    if (kind == 0) warp_displacement_gradient<T>(c, fv, value, grad);
    else if (kind == 1) warp_displacement_jvp<T>(c, fv, ov, value);
    else warp_displacement_vjp<T>(c, fv, ov, grad);
  }
  if (kind == 0) return nb::make_tuple(o0, o1);
  if (kind == 1) return nb::cast(o0);
  return nb::cast(o1);
}

nb::tuple py_affine_model(int ndim, std::vector<std::string> groups, std::array<double, 3> centre,
                          std::vector<double> theta) {
  AffineModel m;
  m.ndim = ndim;
  m.groups = std::move(groups);
  m.centre = Vec3(centre[0], centre[1], centre[2]);
  const Mat4 M = affine_model_matrix(m, theta);
  nb::list J;
  for (const Mat4& d : affine_model_jacobian(m, theta)) J.append(from_mat4(d));
  return nb::make_tuple(from_mat4(M), J, m.names());
}


template <class T>
nb::ndarray<nb::numpy, T> py_affine_jvp(InArr<T> a, Mat44 M, Mat44 dM, std::vector<int64_t> out_shape, int order,
                                        const std::string& mode) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  T* data;
  nb::ndarray<nb::numpy, T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(out_shape, nd), &data, out);
  double m[16], dm[16];
  rowmajor16(M, m);
  rowmajor16(dM, dm);
  {
    nb::gil_scoped_release release;
    const Coefficients<T> c = spline_coefficients<T>(v, nd, order, parse_mode(mode), 0.0);
    warp_affine_jvp<T>(c, m, dm, ov);
  }
  return out;
}

template <class T>
nb::ndarray<nb::numpy, double, nb::shape<3, 4>> py_affine_moments(InArr<T> a, Mat44 M, InArr<T> ybar, int order,
                                                                   const std::string& mode) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  const ImageView<const T> yv = view_of<T>(ybar, 3, "ybar");
  if (int(ybar.ndim()) != nd) throw InvalidArgument("ybar must have the image's number of dimensions");
  double m[16];
  rowmajor16(M, m);
  double* G = new double[12];
  nb::capsule owner(G, [](void* p) noexcept { delete[] static_cast<double*>(p); });
  {
    nb::gil_scoped_release release;
    const Coefficients<T> c = spline_coefficients<T>(v, nd, order, parse_mode(mode), 0.0);
    warp_affine_moments<T>(c, m, yv, G);
  }
  return nb::ndarray<nb::numpy, double, nb::shape<3, 4>>(G, {3, 4}, owner);
}

template <class T>
nb::tuple py_warp_matrix(std::vector<int64_t> out_shape, std::vector<int64_t> in_shape, std::optional<InArr<T>> field,
                         std::optional<Mat44> M, int order, const std::string& mode) {
  const int nd = int(in_shape.size());
  if (nd < 1 || nd > 3 || int(out_shape.size()) != nd) throw InvalidArgument("shapes must have 1 to 3 equal-length entries");
  for (int d = 0; d < nd; ++d)
    if (in_shape[size_t(d)] < 1 || out_shape[size_t(d)] < 1) throw InvalidArgument("shape entries must be positive");
  const Mode md = parse_mode(mode);
  const int pad = coefficient_pad(order, md);
  int64_t od[4] = {1, 1, 1, 1}, cd[3] = {1, 1, 1};
  for (int d = 0; d < nd; ++d) od[d] = out_shape[size_t(d)], cd[d] = in_shape[size_t(d)] + 2 * pad;
  ImageView<const T> fv;
  double m[16];
  if (field) fv = field_view(*field, nd, "field");
  else if (M) rowmajor16(*M, m);
  else throw InvalidArgument("give a field or a matrix");
  CsrMatrix c;
  {
    nb::gil_scoped_release release;
    c = warp_matrix<T>(od, cd, nd, order, md, pad, fv, field ? nullptr : m);
  }
  auto vec_i = [](std::vector<int64_t>&& v) {
    auto* h = new std::vector<int64_t>(std::move(v));
    nb::capsule own(h, [](void* p) noexcept { delete static_cast<std::vector<int64_t>*>(p); });
    return nb::ndarray<nb::numpy, int64_t>(h->data(), {h->size()}, own);
  };
  auto* hd = new std::vector<double>(std::move(c.data));
  nb::capsule own(hd, [](void* p) noexcept { delete static_cast<std::vector<double>*>(p); });
  nb::ndarray<nb::numpy, double> data(hd->data(), {hd->size()}, own);
  std::vector<int64_t> cshape(cd, cd + nd);
  return nb::make_tuple(data, vec_i(std::move(c.indices)), vec_i(std::move(c.indptr)), c.rows, c.cols, cshape, pad);
}

template <class T>
nb::tuple py_invert_field(InArr<T> field, int order, int iterations, double tol) {
  const int nd = int(field.ndim()) - 1;
  const ImageView<const T> fv = field_view(field, nd, "field");
  std::vector<size_t> shape;
  for (int d = 0; d <= nd; ++d) shape.push_back(size_t(field.shape(size_t(d))));
  T* data;
  nb::ndarray<nb::numpy, T> out;
  ImageView<T> ov = output_of<T>(shape, &data, out);
  // components in dims[3] of the view
  as_components(ov, nd);
  int its;
  {
    nb::gil_scoped_release release;
    its = invert_displacement<T>(fv, nd, order, iterations, tol, ov);
  }
  return nb::make_tuple(out, its);
}

template <class T> nb::ndarray<nb::numpy, T> py_fd_gradient(InArr<T> a) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  std::vector<size_t> shape;
  for (int d = 0; d < nd; ++d) shape.push_back(size_t(a.shape(size_t(d))));
  shape.push_back(size_t(nd));
  T* data;
  nb::ndarray<nb::numpy, T> out;
  ImageView<T> ov = output_of<T>(shape, &data, out);
  as_components(ov, nd);
  {
    nb::gil_scoped_release release;
    finite_difference_gradient<T>(v, nd, ov);
  }
  return out;
}

nb::dict solve_result(const SolveResult& r) {
  nb::dict d;
  d["x"] = r.x;
  d["f"] = r.f;
  d["iterations"] = r.iterations;
  d["evaluations"] = r.evaluations;
  d["converged"] = r.converged;
  d["history"] = r.history;
  return d;
}

// Python callbacks see x as a fresh float64 numpy array and return numbers / arrays that are copied.
nb::ndarray<nb::numpy, double> array_copy(const double* x, size_t n) {
  double* d;
  auto a = new_array<double>({n}, &d, false);
  std::copy(x, x + n, d);
  return a;
}

void copy_out(nb::handle h, double* out, size_t n, const char* what) {
  auto a = nb::cast<nb::ndarray<const double, nb::device::cpu>>(h);
  size_t total = 1;
  for (size_t d = 0; d < a.ndim(); ++d) total *= a.shape(d);
  if (total != n) throw InvalidArgument(std::string(what) + " has " + std::to_string(total) + " values, expected " + std::to_string(n));
  std::vector<int64_t> idx(a.ndim(), 0);
  // general strides: walk in C order
  for (size_t q = 0; q < n; ++q) {
    int64_t off = 0;
    for (size_t d = 0; d < a.ndim(); ++d) off += idx[d] * a.stride(d);
    out[q] = a.data()[off];
    for (size_t d = a.ndim(); d-- > 0;) {
      if (++idx[d] < int64_t(a.shape(d))) break;
      idx[d] = 0;
    }
  }
}

nb::dict py_bb_minimize(nb::callable fg, std::vector<double> x0, std::vector<double> lower, std::vector<double> upper,
                        std::vector<int> groups, int max_iterations, double tol, double f_tol, double step0,
                        bool line_search) {
  BBOptions o;
  o.max_iterations = max_iterations, o.tol = tol, o.f_tol = f_tol, o.step0 = step0, o.line_search = line_search;
  o.lower = std::move(lower), o.upper = std::move(upper), o.groups = std::move(groups);
  const size_t n = x0.size();
  auto cb = [&](const double* x, double* g) -> double {
    nb::object res = fg(array_copy(x, n));
    nb::tuple t = nb::cast<nb::tuple>(res);
    if (t.size() != 2) throw InvalidArgument("the objective must return (value, gradient)");
    copy_out(t[1], g, n, "the gradient");
    return nb::cast<double>(t[0]);
  };
  return solve_result(bb_minimize(cb, std::move(x0), o));
}

nb::dict py_gauss_newton(nb::callable normal, std::vector<double> x0, int max_iterations, double tol, double f_tol,
                         double lambda0) {
  GNOptions o;
  o.max_iterations = max_iterations, o.tol = tol, o.f_tol = f_tol, o.lambda0 = lambda0;
  const size_t n = x0.size();
  auto cb = [&](const double* x, double* JtJ, double* Jtr) -> double {
    nb::tuple t = nb::cast<nb::tuple>(normal(array_copy(x, n)));
    if (t.size() != 3) throw InvalidArgument("the normal-equations callback must return (cost, JtJ, Jtr)");
    copy_out(t[1], JtJ, n * n, "JtJ");
    copy_out(t[2], Jtr, n, "Jtr");
    return nb::cast<double>(t[0]);
  };
  return solve_result(gauss_newton(cb, std::move(x0), o));
}

// A 2D or 3D float array with its voxel->world matrix as an owning Image (copied: contiguous).
Image<float> image_of(const InArr<float>& a, const Mat44& affine, const char* what) {
  if (a.ndim() < 2 || a.ndim() > 3)
    throw InvalidArgument(std::string(what) + " must be a 2D or 3D array, not " + std::to_string(a.ndim()) + "D");
  const ImageView<const float> v = view_of<float>(a, 3, what);
  Geometry g;
  g.ndim = 3;
  for (int d = 0; d < 3; ++d) g.dims[d] = v.dims[d];
  g.affine = to_mat4(affine);
  Image<float> img(g, no_init);
  float* dst = img.data();
  for (int64_t k = 0; k < v.dims[2]; ++k)
    for (int64_t j = 0; j < v.dims[1]; ++j)
      for (int64_t i = 0; i < v.dims[0]; ++i) *dst++ = v(i, j, k);
  return img;
}

RegisterOptions register_options(const nb::dict& kw) {
  RegisterOptions o;
  for (auto [key, val] : kw) {
    const std::string k = nb::cast<std::string>(key);
    if (k == "transform") o.transform = nb::cast<std::string>(val);
    else if (k == "metric") o.metric = nb::cast<std::string>(val);
    else if (k == "levels") o.levels = nb::cast<std::vector<int>>(val);
    else if (k == "smoothing") o.smoothing = nb::cast<std::vector<double>>(val);
    else if (k == "optimizer") o.optimizer = nb::cast<std::string>(val);
    else if (k == "iterations") o.iterations = nb::cast<std::vector<int>>(val);
    else if (k == "init") o.init = nb::cast<std::string>(val);
    else if (k == "freeze") o.freeze = nb::cast<std::vector<std::string>>(val);
    else if (k == "degree") o.degree = nb::cast<int>(val);
    else if (k == "max_samples") o.max_samples = nb::cast<int64_t>(val);
    else if (k == "bins") o.bins = nb::cast<int>(val);
    else if (k == "radius") o.radius = nb::cast<int>(val);
    else if (k == "tolerance") o.tolerance = nb::cast<double>(val);
    else if (k == "learning_rate") o.learning_rate = nb::cast<double>(val);
    else if (k == "skip_fill") o.skip_fill = nb::cast<bool>(val);
    else throw InvalidArgument("register: unknown option '" + k + "'");
  }
  return o;
}

nb::dict py_register(InArr<float> moving, Mat44 moving_affine, InArr<float> fixed, Mat44 fixed_affine,
                     std::optional<InArr<float>> fixed_mask, std::optional<InArr<float>> moving_mask,
                     std::optional<Mat44> init_matrix, nb::dict kw) {
  RegisterOptions o = register_options(kw);
  if (init_matrix) o.has_init_matrix = true, o.init_matrix = to_mat4(*init_matrix);
  const Image<float> mv = image_of(moving, moving_affine, "moving"), fx = image_of(fixed, fixed_affine, "fixed");
  Image<float> fm, mm;
  if (fixed_mask) fm = image_of(*fixed_mask, fixed_affine, "fixed_mask");
  if (moving_mask) mm = image_of(*moving_mask, moving_affine, "moving_mask");
  RegisterResult r;
  {
    nb::gil_scoped_release release;
    r = register_images(fx, mv, o, fixed_mask ? &fm : nullptr, moving_mask ? &mm : nullptr);
  }
  nb::dict d;
  d["matrix"] = from_mat4(r.matrix);
  d["init"] = from_mat4(r.init);
  d["parameters"] = r.parameters;
  d["names"] = r.names;
  d["centre"] = std::vector<double>(r.model.centre.data(), r.model.centre.data() + 3);
  d["groups"] = r.model.groups;
  d["metric"] = r.metric;
  nb::list levels;
  for (const auto& l : r.levels) {
    nb::dict ld;
    ld["shrink"] = l.shrink, ld["sigma_mm"] = l.sigma_mm, ld["samples"] = l.samples, ld["iterations"] = l.iterations,
    ld["metric"] = l.metric;
    levels.append(ld);
  }
  d["levels"] = levels;
  return d;
}

nb::tuple py_register_metric(InArr<float> moving, Mat44 moving_affine, InArr<float> fixed, Mat44 fixed_affine,
                             std::vector<std::string> groups, std::array<double, 3> centre, Mat44 init,
                             std::vector<double> theta, std::optional<InArr<float>> fixed_mask,
                             std::optional<InArr<float>> moving_mask, nb::dict kw) {
  const RegisterOptions o = register_options(kw);
  const Image<float> mv = image_of(moving, moving_affine, "moving"), fx = image_of(fixed, fixed_affine, "fixed");
  Image<float> fm, mm;
  if (fixed_mask) fm = image_of(*fixed_mask, fixed_affine, "fixed_mask");
  if (moving_mask) mm = image_of(*moving_mask, moving_affine, "moving_mask");
  AffineModel model;
  model.ndim = fx.geometry().dims[2] == 1 ? 2 : 3;
  model.groups = std::move(groups);
  model.centre = Vec3(centre[0], centre[1], centre[2]);
  std::vector<double> g;
  double v;
  {
    nb::gil_scoped_release release;
    v = reg::metric_value_and_gradient(fx, mv, model, to_mat4(init), theta, o, &g, fixed_mask ? &fm : nullptr,
                                       moving_mask ? &mm : nullptr);
  }
  return nb::make_tuple(v, g);
}

nb::dict py_realign(InArr<float> data, Mat44 affine, std::optional<InArr<float>> weight, int ref_frame, bool to_mean,
                    double sep, double fwhm, int degree, double quality, int iterations, bool reslice, int write_degree,
                    bool dvars) {
  if (data.ndim() != 4) throw InvalidArgument("realign needs a 4D array (x, y, z, t), not " + std::to_string(data.ndim()) + "D");
  const ImageView<const float> v = view_of<float>(data, 4, "data");
  Geometry g;
  g.ndim = 4;
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  g.affine = to_mat4(affine);
  Image<float> series(g, no_init);
  if (v.contiguous()) {
    std::copy(v.data, v.data + series.size(), series.data());
  } else {
    float* dst = series.data();
    for (int64_t t = 0; t < v.dims[3]; ++t)
      for (int64_t k = 0; k < v.dims[2]; ++k)
        for (int64_t j = 0; j < v.dims[1]; ++j)
          for (int64_t i = 0; i < v.dims[0]; ++i) *dst++ = v(i, j, k, t);
  }
  Image<float> w;
  if (weight) w = image_of(*weight, affine, "mask");
  RealignOptions o;
  o.ref_frame = ref_frame, o.to_mean = to_mean, o.sep = sep, o.fwhm = fwhm, o.degree = degree, o.quality = quality,
  o.iterations = iterations;
  RealignResult r;
  Image<float> out;
  {
    nb::gil_scoped_release release;
    r = realign(series, o, weight ? &w : nullptr);
    // DVARS on the realigned series (resliced in memory for it when not asked for), in the mask or an
    // automatic mask of the mean, as the CLI's --confounds.
    if (reslice || dvars) reslice_series(series, r.matrices, write_degree, &out, nullptr);
    if (dvars) {
      const Dvars dv = compute_dvars(out, weight ? &w : nullptr);
      r.dvars = dv.dvars, r.std_dvars = dv.std_dvars;
    }
  }
  nb::dict d;
  nb::list mats;
  for (const Mat4& M : r.matrices) mats.append(from_mat4(M));
  d["matrices"] = mats;
  auto rows = [](const std::vector<std::array<double, 6>>& a) {
    std::vector<std::vector<double>> o2;
    for (const auto& x : a) o2.emplace_back(x.begin(), x.end());
    return o2;
  };
  d["spm"] = rows(r.spm);
  d["fsl"] = rows(r.fsl);
  d["fd"] = r.fd;
  d["rmsd"] = r.rmsd;
  d["dvars"] = r.dvars;
  d["std_dvars"] = r.std_dvars;
  d["iterations"] = r.iterations;
  d["samples"] = r.samples;
  d["rp_text"] = spm_rp_text(r);
  d["par_text"] = fsl_par_text(r);
  d["confounds_tsv"] = bids_confounds_tsv(r);
  d["confounds_json"] = bids_confounds_json();
  d["itk_text"] = itk_transforms_text(r);
  if (reslice) d["resliced"] = from_image(std::move(out), 4);
  return d;
}

NB_MODULE(_voxalign, m) {
  m.doc() = "voxalign core (C++); use the voxalign package for the documented API";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    }
  });
  m.def("set_num_threads", [](int n) { // 0: the default; the package checks the argument first
    if (n < 0 || n > 1024) throw InvalidArgument("set_num_threads: n = " + std::to_string(n) + " is out of range [1, 1024]");
    set_num_threads(n);
  });
  m.def("register", &py_register, nb::arg("moving"), nb::arg("moving_affine"), nb::arg("fixed"), nb::arg("fixed_affine"),
        nb::arg("fixed_mask").none(), nb::arg("moving_mask").none(), nb::arg("init_matrix").none(), nb::arg("options"));
  m.def("register_metric", &py_register_metric, nb::arg("moving"), nb::arg("moving_affine"), nb::arg("fixed"),
        nb::arg("fixed_affine"), nb::arg("groups"), nb::arg("centre"), nb::arg("init"), nb::arg("theta"),
        nb::arg("fixed_mask").none(), nb::arg("moving_mask").none(), nb::arg("options"));
  m.def("transform_groups", &transform_groups);
  m.def("realign", &py_realign, nb::arg("data"), nb::arg("affine"), nb::arg("weight").none(), nb::arg("ref_frame"),
        nb::arg("to_mean"), nb::arg("sep"), nb::arg("fwhm"), nb::arg("degree"), nb::arg("quality"), nb::arg("iterations"),
        nb::arg("reslice"), nb::arg("write_degree"), nb::arg("dvars") = true);
  m.def("jenkinson_rms", [](Mat44 a, Mat44 b, std::array<double, 3> c, double radius) {
    return jenkinson_rms(to_mat4(a), to_mat4(b), Vec3(c[0], c[1], c[2]), radius);
  });
  m.def("write_ras_matrix", [](const std::string& path, Mat44 m) { write_ras_matrix(path, to_mat4(m)); });
  m.def("write_text_file", &write_text_file);
  auto geom = [](const std::vector<int64_t>& shape, const Mat44& affine) {
    Geometry g;
    for (size_t d = 0; d < 3 && d < shape.size(); ++d) g.dims[d] = shape[d];
    g.affine = to_mat4(affine);
    return g;
  };
  m.def("fsl_to_ras", [geom](Mat44 flirt, std::vector<int64_t> ref_shape, Mat44 ref_affine, std::vector<int64_t> in_shape,
                             Mat44 in_affine) {
    return from_mat4(fsl_to_ras_pullback(to_mat4(flirt), geom(ref_shape, ref_affine), geom(in_shape, in_affine)));
  });
  m.def("ras_to_fsl", [geom](Mat44 ras, std::vector<int64_t> ref_shape, Mat44 ref_affine, std::vector<int64_t> in_shape,
                             Mat44 in_affine) {
    return from_mat4(ras_pullback_to_fsl(to_mat4(ras), geom(ref_shape, ref_affine), geom(in_shape, in_affine)));
  });
  m.def("itk_affine_text", [](Mat44 m) { return itk_affine_text(to_mat4(m)); });
  m.def("read_transform_between", [geom](const std::string& p, std::vector<int64_t> ref_shape, Mat44 ref_affine,
                                         std::vector<int64_t> in_shape, Mat44 in_affine) {
    const Geometry r = geom(ref_shape, ref_affine), i = geom(in_shape, in_affine);
    return from_mat4(read_transform(p, &r, &i));
  });
  m.def("transform_file_format", [](const std::string& p) { return transform_format_name(transform_file_format(p)); });
  m.def("read_nifti_header", [](const std::string& p) {
    const NiftiHeaderInfo h = read_nifti_header(p);
    std::vector<int64_t> shape(h.geometry.dims.begin(), h.geometry.dims.begin() + h.geometry.ndim);
    return nb::make_tuple(shape, from_mat4(h.geometry.affine));
  });
  m.def("n4", &py_n4);
  m.def("warp_adjoint", &py_warp_adjoint<double>);
  m.def("warp_adjoint", &py_warp_adjoint<float>);
  m.def("affine_warp", &py_affine_warp<double>);
  m.def("affine_warp", &py_affine_warp<float>);
  m.def("affine_adjoint", &py_affine_adjoint<double>);
  m.def("affine_adjoint", &py_affine_adjoint<float>);
  m.def("affine_model", &py_affine_model);
  m.def("bb_minimize", &py_bb_minimize);
  m.def("field_mm_to_voxels", [](InArr<double> u, Mat44 field_affine, Mat44 input_affine) {
    const ImageView<const double> uv = field_view(u, 3, "field");
    std::vector<size_t> shape{u.shape(0), u.shape(1), u.shape(2), 3};
    double* data;
    nb::ndarray<nb::numpy, double> out;
    const ImageView<double> ov = output_of<double>(shape, &data, out);
    {
      nb::gil_scoped_release release;
      field_mm_to_voxels<double>(uv, to_mat4(field_affine), to_mat4(input_affine), ov);
    }
    return out;
  });
  m.def("gauss_newton", &py_gauss_newton);
  m.def("warp_matrix", &py_warp_matrix<double>);
  m.def("invert_field", &py_invert_field<double>);
  m.def("invert_field", &py_invert_field<float>);
  m.def("fd_gradient", &py_fd_gradient<double>);
  m.def("fd_gradient", &py_fd_gradient<float>);
  m.def("affine_model_names", [](int ndim, std::vector<std::string> groups) {
    AffineModel am;
    am.ndim = ndim;
    am.groups = std::move(groups);
    am.size(); // validates the groups
    return am.names();
  });
  m.def("affine_jvp", &py_affine_jvp<double>);
  m.def("affine_jvp", &py_affine_jvp<float>);
  m.def("affine_moments", &py_affine_moments<double>);
  m.def("affine_moments", &py_affine_moments<float>);
  m.def("warp_derivative", &py_warp_derivative<double>);
  m.def("warp_derivative", &py_warp_derivative<float>);
  m.def("otsu_mask", &py_otsu);
  m.def("otsu_threshold", [](InArr<float> img, int bins) { return otsu_threshold(view_of(img, 4, "image"), bins); });
  m.def("get_num_threads", &num_threads);
  m.def("release_memory", [] { return release_cached_buffers(); });
  m.def("cached_memory", [] { return cached_bytes(); });
  m.def("parse_order", [](const std::string& s) { return parse_order(s); });
  // The boundary mode resample/apply use by default (one definition, in modes.hpp).
  m.attr("RESAMPLE_DEFAULT_MODE") = mode_name(kResampleDefaultMode);
  m.def("spline_coefficients", &py_coefficients<double>);
  m.def("spline_coefficients", &py_coefficients<float>);
  m.def("interpolate", &py_interpolate<double>);
  m.def("interpolate", &py_interpolate<float>);
  m.def("resample", &py_resample<double>);
  m.def("resample", &py_resample<float>);
  m.def("resample_chain", &py_resample_chain<double>);
  m.def("resample_chain", &py_resample_chain<float>);
  m.def("warp_field", &py_warp_field<double>);
  m.def("warp_field", &py_warp_field<float>);
  m.def("read_transform", [](const std::string& p) { return from_mat4(read_transform(p)); });
  m.def("write_itk_affine", [](const std::string& p, Mat44 m) { write_itk_affine(p, to_mat4(m)); });
  m.def("write_itk_mat", [](const std::string& p, Mat44 m) { write_itk_mat(p, to_mat4(m)); });
  m.def("write_itk_transform", [](const std::string& p, Mat44 m, const std::string& what) {
    write_itk_transform(p, to_mat4(m), what);
  });
  m.def("itk_mat_bytes", [](Mat44 m) {
    const std::string b = itk_mat_bytes(to_mat4(m));
    return nb::bytes(b.data(), b.size());
  });
  m.def("read_nifti", [](const std::string& path, bool single) -> nb::tuple {
    NiftiHeaderInfo info;
    nb::object arr;
    if (single) {
      Image<float> img;
      {
        nb::gil_scoped_release r;
        img = read_nifti<float>(path, &info);
      }
      arr = nb::cast(from_image(std::move(img), info.geometry.ndim));
    } else {
      Image<double> img;
      {
        nb::gil_scoped_release r;
        img = read_nifti<double>(path, &info);
      }
      arr = nb::cast(from_image(std::move(img), info.geometry.ndim));
    }
    nb::dict d;
    d["dtype"] = dtype_name(info.dtype);
    d["version"] = info.version;
    d["sform_code"] = info.sform_code;
    d["qform_code"] = info.qform_code;
    d["scl_slope"] = info.scl_slope;
    d["scl_inter"] = info.scl_inter;
    d["time_step"] = info.geometry.time_step;
    return nb::make_tuple(arr, from_mat4(info.geometry.affine), d);
  });
  m.def("write_nifti", &write_typed<double>);
  m.def("write_nifti", &write_typed<float>);
}
