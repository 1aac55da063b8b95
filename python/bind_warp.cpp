// Bindings: displacement-field and affine warps, their adjoints and derivatives, the explicit
// matrix, field inversion. An argument `pad` says whether the image is samples (pad < 0) or
// coefficients from spline_coefficients (their padding): see coefficients_of.
#include "bind_common.hpp"

#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/affine_params.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign::py {
namespace {

template <class T>
OutArr<T> py_warp(InArr<T> a, int pad, InArr<T> field, int order, const std::string& mode, double cval) {
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  const int nd = int(a.ndim());
  Image<T> fstore;
  const ImageView<const T> fv = in_nifti_order(field_view(field, nd, "field"), fstore);
  std::vector<size_t> oshape;
  for (int d = 0; d < nd; ++d) oshape.push_back(size_t(fv.dims[d]));
  T* data;
  OutArr<T> out;
  const ImageView<T> ov = output_of<T>(oshape, &data, out);
  {
    nb::gil_scoped_release release;
    warp_displacement<T>(coefficients_of<T>(v, nd, order, parse_mode(mode), cval, pad), fv, ov);
  }
  return out;
}

template <class T>
OutArr<T> py_warp_adjoint(InArr<T> y, InArr<T> field, std::vector<int64_t> in_shape, int order, const std::string& mode) {
  const int nd = int(y.ndim());
  const ImageView<const T> yv = view_of<T>(y, 3, "y");
  Image<T> fstore;
  const ImageView<const T> fv = in_nifti_order(field_view(field, nd, "field"), fstore);
  T* data;
  OutArr<T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(in_shape, nd), &data, out);
  {
    nb::gil_scoped_release release;
    warp_displacement_adjoint<T>(yv, fv, nd, order, parse_mode(mode), ov);
  }
  return out;
}

template <class T>
OutArr<T> py_affine_warp(InArr<T> a, int pad, Mat44 M, std::vector<int64_t> out_shape, int order,
                         const std::string& mode, double cval) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  T* data;
  OutArr<T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(out_shape, nd), &data, out);
  double m[16];
  rowmajor16(M, m);
  {
    nb::gil_scoped_release release;
    warp_affine<T>(coefficients_of<T>(v, nd, order, parse_mode(mode), cval, pad), m, ov);
  }
  return out;
}

template <class T>
OutArr<T> py_affine_adjoint(InArr<T> y, Mat44 M, std::vector<int64_t> in_shape, int order, const std::string& mode) {
  const int nd = int(y.ndim());
  const ImageView<const T> yv = view_of<T>(y, 3, "y");
  T* data;
  OutArr<T> out;
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
nb::object py_warp_derivative(InArr<T> a, int pad, InArr<T> field, std::optional<InArr<T>> other, int kind, int order,
                              const std::string& mode) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  Image<T> fstore;
  const ImageView<const T> fv = in_nifti_order(field_view(field, nd, "field"), fstore);
  std::vector<size_t> grid;
  for (int d = 0; d < nd; ++d) grid.push_back(size_t(fv.dims[d]));
  std::vector<size_t> with_comp = grid;
  with_comp.push_back(size_t(nd));
  T *d0, *d1;
  OutArr<T> o0, o1;
  if (kind == 2 && !other) throw InvalidArgument("warp VJP needs a cotangent");
  if (kind == 1 && !other) throw InvalidArgument("warp JVP needs a tangent field");
  ImageView<T> value, grad;
  if (kind != 2) value = output_of<T>(grid, &d0, o0);
  if (kind != 1) {
    grad = output_of<T>(with_comp, &d1, o1);
    as_components(grad, nd);
  }
  ImageView<const T> ov;
  Image<T> tstore;
  if (kind == 1) ov = in_nifti_order(field_view(*other, nd, "tangent"), tstore);
  if (kind == 2) {
    ov = view_of<T>(*other, 3, "cotangent");
    for (int d = 0; d < nd; ++d)
      if (ov.dims[d] != fv.dims[d]) throw InvalidArgument("cotangent must have the field's grid shape");
  }
  {
    nb::gil_scoped_release release;
    const Coefficients<T> c = coefficients_of<T>(v, nd, order, parse_mode(mode), 0.0, pad);
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
OutArr<T> py_affine_jvp(InArr<T> a, int pad, Mat44 M, Mat44 dM, std::vector<int64_t> out_shape, int order,
                        const std::string& mode) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  T* data;
  OutArr<T> out;
  const ImageView<T> ov = output_of<T>(grid_shape(out_shape, nd), &data, out);
  double m[16], dm[16];
  rowmajor16(M, m);
  rowmajor16(dM, dm);
  {
    nb::gil_scoped_release release;
    warp_affine_jvp<T>(coefficients_of<T>(v, nd, order, parse_mode(mode), 0.0, pad), m, dm, ov);
  }
  return out;
}

template <class T>
nb::ndarray<nb::numpy, double, nb::shape<3, 4>> py_affine_moments(InArr<T> a, int pad, Mat44 M, InArr<T> ybar,
                                                                   int order, const std::string& mode) {
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
    warp_affine_moments<T>(coefficients_of<T>(v, nd, order, parse_mode(mode), 0.0, pad), m, yv, G);
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
  Image<T> fstore;
  double m[16];
  if (field) fv = in_nifti_order(field_view(*field, nd, "field"), fstore);
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

template <class T> nb::tuple py_invert_field(InArr<T> field, int order, int iterations, double tol) {
  const int nd = int(field.ndim()) - 1;
  Image<T> fstore;
  const ImageView<const T> fv = in_nifti_order(field_view(field, nd, "field"), fstore);
  std::vector<size_t> shape;
  for (int d = 0; d <= nd; ++d) shape.push_back(size_t(field.shape(size_t(d))));
  T* data;
  OutArr<T> out;
  ImageView<T> ov = output_of<T>(shape, &data, out);
  as_components(ov, nd);
  int its;
  {
    nb::gil_scoped_release release;
    its = invert_displacement<T>(fv, nd, order, iterations, tol, ov);
  }
  return nb::make_tuple(out, its);
}

template <class T> OutArr<T> py_fd_gradient(InArr<T> a) {
  const int nd = int(a.ndim());
  const ImageView<const T> v = view_of<T>(a, 3, "array");
  std::vector<size_t> shape;
  for (int d = 0; d < nd; ++d) shape.push_back(size_t(a.shape(size_t(d))));
  shape.push_back(size_t(nd));
  T* data;
  OutArr<T> out;
  ImageView<T> ov = output_of<T>(shape, &data, out);
  as_components(ov, nd);
  {
    nb::gil_scoped_release release;
    finite_difference_gradient<T>(v, nd, ov);
  }
  return out;
}

OutArr<double> py_field_mm_to_voxels(InArr<double> u, Mat44 field_affine, Mat44 input_affine) {
  Image<double> ustore;
  const ImageView<const double> uv = in_nifti_order(field_view(u, 3, "field"), ustore);
  std::vector<size_t> shape{u.shape(0), u.shape(1), u.shape(2), 3};
  double* data;
  OutArr<double> out;
  const ImageView<double> ov = output_of<double>(shape, &data, out);
  {
    nb::gil_scoped_release release;
    field_mm_to_voxels<double>(uv, to_mat4(field_affine), to_mat4(input_affine), ov);
  }
  return out;
}

} // namespace

void bind_warp(nb::module_& m) {
  // The defaults of voxalign.warp and its operators, read from a default-constructed WarpOptions (one
  // source with the CLI's `voxalign warp`).
  const WarpOptions o;
  nb::dict d;
  d["degree"] = o.order == kKeys ? nb::cast(order_name(o.order)) : nb::cast(o.order);
  d["mode"] = mode_name(o.mode);
  d["units"] = field_unit_names().name(o.units);
  m.attr("WARP_DEFAULTS") = d;
  m.def("warp", &py_warp<double>);
  m.def("warp", &py_warp<float>);
  m.def("warp_adjoint", &py_warp_adjoint<double>);
  m.def("warp_adjoint", &py_warp_adjoint<float>);
  m.def("affine_warp", &py_affine_warp<double>);
  m.def("affine_warp", &py_affine_warp<float>);
  m.def("affine_adjoint", &py_affine_adjoint<double>);
  m.def("affine_adjoint", &py_affine_adjoint<float>);
  m.def("warp_derivative", &py_warp_derivative<double>);
  m.def("warp_derivative", &py_warp_derivative<float>);
  m.def("affine_model", &py_affine_model);
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
  m.def("warp_matrix", &py_warp_matrix<double>);
  m.def("invert_field", &py_invert_field<double>);
  m.def("invert_field", &py_invert_field<float>);
  m.def("fd_gradient", &py_fd_gradient<double>);
  m.def("fd_gradient", &py_fd_gradient<float>);
  m.def("field_mm_to_voxels", &py_field_mm_to_voxels);
}

} // namespace voxalign::py
