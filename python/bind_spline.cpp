// Bindings: spline coefficients, interpolation at points, world-space resampling.
#include "bind_common.hpp"

#include "voxalign/resample/resample.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/transform/displacement.hpp"

namespace voxalign::py {
namespace {

template <class T>
std::tuple<OutArr<T>, int> py_coefficients(InArr<T> a, int order, const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  Coefficients<T> c;
  {
    nb::gil_scoped_release release;
    c = spline_coefficients<T>(v, int(a.ndim()), order, parse_mode(mode), cval);
  }
  return {from_image(std::move(c.image), int(a.ndim())), c.pad};
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
    // read in place: arrays in NIfTI/Fortran order, and C-order ones the package passes transposed
    if (v.strides[0] == 1 && v.strides[1] > 0 && v.strides[2] > 0) {
      interpolate<T>(v, nd, order, md, pad, cval, pts.data(), n, vals, grads);
    } else {
      const Coefficients<T> c = borrow<T>(v, nd, order, md, pad, cval);
      interpolate<T>(c, pts.data(), n, vals, grads);
    }
  }
  if (grad) return nb::make_tuple(out, gobj);
  return nb::cast(out);
}

// The output of resampling `v` (an array of `ndim` axes; 4D: frame by frame) onto a grid of `shape`:
// the numpy array and a view of it with the frames on dims[3].
template <class T> struct ResampleOutput {
  OutArr<T> array;
  ImageView<T> view;
};

template <class T>
ResampleOutput<T> resample_output(const ImageView<const T>& v, size_t ndim, const std::vector<int64_t>& shape) {
  if (shape.size() < 1 || shape.size() > 3) throw InvalidArgument("shape must have 1 to 3 entries");
  for (auto s : shape)
    if (s < 1) throw InvalidArgument("shape entries must be positive");
  const int frames = int(v.dims[3]);
  std::vector<size_t> oshape(shape.begin(), shape.end());
  while (oshape.size() < 3 && ndim == 4) oshape.push_back(1);
  if (ndim == 4) oshape.push_back(size_t(frames));
  T* data;
  ResampleOutput<T> out{new_array<T>(oshape, &data, true), {}};
  int64_t odims[4];
  for (int d = 0; d < 4; ++d) odims[d] = d < int(shape.size()) ? shape[size_t(d)] : (d == 3 ? frames : 1);
  out.view = contiguous_view(data, odims);
  return out;
}

ResampleOptions resample_options(int order, const std::string& mode, double cval) {
  ResampleOptions o;
  o.order = order;
  o.mode = parse_mode(mode);
  o.cval = cval;
  return o;
}

// `a` is an image (pad < 0; 4D: frame by frame) or the coefficients of one (pad >= 0).
template <class T>
OutArr<T> py_resample(InArr<T> a, int pad, Mat44 affine, std::vector<int64_t> shape, Mat44 target_affine,
                      Mat44 pullback, int order, const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, pad < 0 ? 4 : 3, pad < 0 ? "array" : "coefficients");
  ResampleOutput<T> out = resample_output(v, a.ndim(), shape);
  const ImageView<T> ov = out.view;
  const ResampleOptions o = resample_options(order, mode, cval);
  Geometry gin;
  for (int d = 0; d < 4; ++d) gin.dims[d] = v.dims[d];
  const Mat4 A = to_mat4(affine), B = to_mat4(target_affine), P = to_mat4(pullback);
  {
    nb::gil_scoped_release release;
    if (pad < 0) {
      resample_into<T>(v, A, interpolated_axes(gin), ov, B, P, o);
    } else {
      const Coefficients<T> c = borrow<T>(v, int(a.ndim()), o.order, o.mode, pad, o.cval);
      resample_into<T>(c, A, ov, B, P);
    }
  }
  return out.array;
}

// `a` is an image (4D: frame by frame); items: transform file names (displacement fields, .h5, every
// affine format) and 4x4 matrices, in application order.
template <class T>
OutArr<T> py_resample_chain(InArr<T> a, Mat44 affine, std::vector<int64_t> shape, Mat44 target_affine,
                            std::vector<nb::object> items, int order, const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, 4, "array");
  ResampleOutput<T> out = resample_output(v, a.ndim(), shape);
  Geometry gin, gout;
  for (int d = 0; d < 4; ++d) gin.dims[d] = v.dims[d];
  gin.affine = to_mat4(affine);
  for (int d = 0; d < int(shape.size()); ++d) gout.dims[d] = shape[size_t(d)];
  gout.affine = to_mat4(target_affine);
  // the grids let a FLIRT matrix given alone be read
  const bool alone = items.size() == 1;
  TransformChain chain;
  for (const nb::object& it : items) {
    if (nb::isinstance<nb::str>(it)) {
      chain.append(read_transform_chain({nb::cast<std::string>(it)}, alone ? &gout : nullptr, alone ? &gin : nullptr));
    } else if (nb::isinstance<nb::tuple>(it)) { // (field X x Y x Z x 3 in RAS mm, its grid's affine)
      const nb::tuple t = nb::cast<nb::tuple>(it);
      auto f = std::make_shared<const DisplacementField>(
          field_of(nb::cast<InArr<double>>(t[0]), nb::cast<Mat44>(t[1]), "resample: displacement field"));
      chain.append(f);
    } else {
      chain.append(to_mat4(nb::cast<Mat44>(it)));
    }
  }
  const ResampleOptions o = resample_options(order, mode, cval);
  {
    nb::gil_scoped_release release;
    resample_chain_into<T>(v, gin.affine, interpolated_axes(gin), out.view, gout.affine, chain, o);
  }
  return out.array;
}

} // namespace

void bind_spline(nb::module_& m) {
  m.def("parse_order", [](const std::string& s) { return parse_order(s); });
  m.def("coefficient_pad", [](int order, const std::string& mode) { return coefficient_pad(order, parse_mode(mode)); });
  m.def("spline_coefficients", &py_coefficients<double>);
  m.def("spline_coefficients", &py_coefficients<float>);
  m.def("interpolate", &py_interpolate<double>);
  m.def("interpolate", &py_interpolate<float>);
  m.def("resample", &py_resample<double>);
  m.def("resample", &py_resample<float>);
  m.def("resample_chain", &py_resample_chain<double>);
  m.def("resample_chain", &py_resample_chain<float>);
  // The defaults of voxalign.resample, read from a default-constructed ResampleOptions (one source).
  const ResampleOptions o;
  nb::dict d;
  d["degree"] = o.order == kKeys ? nb::cast(order_name(o.order)) : nb::cast(o.order);
  d["mode"] = mode_name(o.mode);
  d["cval"] = o.cval;
  m.attr("RESAMPLE_DEFAULTS") = d;
}

} // namespace voxalign::py
