// The one set of conversions the binding files share: numpy arrays <-> ImageView/Image, 4x4 matrices,
// displacement fields, and the coefficients the package hands back. Argument conversion only.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <string>
#include <vector>

#include "voxalign/transform/displacement.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/memory.hpp"
#include "voxalign/image/image.hpp"
#include "voxalign/spline/prefilter.hpp"

namespace voxalign::py {

namespace nb = nanobind;

template <class T> using InArr = nb::ndarray<const T, nb::device::cpu>;
using Mat44 = nb::ndarray<const double, nb::shape<4, 4>, nb::device::cpu>;
template <class T> using OutArr = nb::ndarray<nb::numpy, T>;

// A 1..max_ndim array as a view (any strides, no copy).
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

inline Mat4 to_mat4(const Mat44& m) {
  Mat4 r;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) r(i, j) = m(i, j);
  return r;
}

inline void rowmajor16(const Mat44& M, double* m) {
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) m[4 * i + j] = M(i, j);
}

inline nb::ndarray<nb::numpy, double, nb::shape<4, 4>> from_mat4(const Mat4& m) {
  double* d = new double[16];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) d[4 * i + j] = m(i, j);
  nb::capsule owner(d, [](void* p) noexcept { delete[] static_cast<double*>(p); });
  return nb::ndarray<nb::numpy, double, nb::shape<4, 4>>(d, {4, 4}, owner);
}

// A numpy array in NIfTI (Fortran, i fastest) order owning `img`'s storage.
template <class T> OutArr<T> from_image(Image<T>&& img, int ndim) {
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
  return OutArr<T>(holder->data(), size_t(ndim), shape, owner, strides);
}

template <class T> OutArr<T> new_array(const std::vector<size_t>& shape, T** data, bool fortran) {
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
  return OutArr<T>(buf->data(), shape.size(), shape.data(), owner, strides.data());
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

// `v` as the kernels read it fastest, axis 0 at unit stride (NIfTI order): itself when it is,
// else a copy in that order held by `store` (copy_view's tiles; a C-order (X, Y, Z, 3) field).
template <class T> ImageView<const T> in_nifti_order(ImageView<const T> v, Image<T>& store) {
  if (v.strides[0] == 1) return v;
  Geometry g;
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  store = Image<T>(g, no_init);
  copy_view<T>(v, store.view());
  return store.view();
}

// A new Fortran-order output array of `shape` and its view.
template <class T> ImageView<T> output_of(const std::vector<size_t>& shape, T** data, OutArr<T>& arr) {
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

inline std::vector<size_t> grid_shape(const std::vector<int64_t>& shape, int nd) {
  if (int(shape.size()) != nd) throw InvalidArgument("shape must have " + std::to_string(nd) + " entries");
  std::vector<size_t> s;
  for (auto v : shape) {
    if (v < 1) throw InvalidArgument("shape entries must be positive");
    s.push_back(size_t(v));
  }
  return s;
}

// An X x Y x Z x 3 float64 array (RAS mm) on the grid `affine` as a DisplacementField (copied).
inline DisplacementField field_of(const InArr<double>& a, const Mat44& affine, const char* what) {
  if (a.ndim() != 4 || a.shape(3) != 3) throw InvalidArgument(std::string(what) + ": a displacement field is X x Y x Z x 3");
  const ImageView<const double> v = view_of<double>(a, 4, what);
  Geometry g;
  g.ndim = 4;
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  g.affine = to_mat4(affine);
  DisplacementField f;
  f.u = Image<double>(g, no_init);
  double* dst = f.u.data();
  for (int c = 0; c < 3; ++c)
    for (int64_t k = 0; k < g.dims[2]; ++k)
      for (int64_t j = 0; j < g.dims[1]; ++j)
        for (int64_t i = 0; i < g.dims[0]; ++i) *dst++ = v(i, j, k, c);
  check_displacement_field(f, what);
  return f;
}

// A 2D or 3D float array with its voxel->world matrix as an owning Image (copied: contiguous).
inline Image<float> image_of(const InArr<float>& a, const Mat44& affine, const char* what) {
  if (a.ndim() < 2 || a.ndim() > 3)
    throw InvalidArgument(std::string(what) + " must be a 2D or 3D array, not " + std::to_string(a.ndim()) + "D");
  const ImageView<const float> v = view_of<float>(a, 3, what);
  Geometry g;
  g.ndim = 3;
  for (int d = 0; d < 3; ++d) g.dims[d] = v.dims[d];
  g.affine = to_mat4(affine);
  Image<float> img(g, no_init);
  copy_view<float>(v, img.view());
  return img;
}

// Coefficients the caller already has (padded by `pad`), copied into the contiguous storage the
// kernels need (copy_view: in tiles when axis 0 is not the array's fastest).
template <class T> Coefficients<T> borrow(const ImageView<const T>& v, int ndim, int order, Mode mode, int pad, double cval) {
  Coefficients<T> c;
  c.ndim = ndim, c.order = order, c.mode = mode, c.pad = pad, c.cval = cval;
  Geometry g;
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  c.image = Image<T>(g, no_init);
  copy_view<T>(v, c.image.view());
  return c;
}

// What an interpolating binding samples: an image (pad < 0: prefiltered here) or the coefficients
// voxalign.spline_coefficients returned (pad >= 0, their padding), so that iterative callers
// prefilter once. Call with the GIL released.
template <class T>
Coefficients<T> coefficients_of(const ImageView<const T>& v, int nd, int order, Mode mode, double cval, int pad) {
  if (pad < 0) return spline_coefficients<T>(v, nd, order, mode, cval);
  return borrow<T>(v, nd, order, mode, pad, cval);
}

// Each area's bindings (bind_<area>.cpp), called once from NB_MODULE in module.cpp.
void bind_io(nb::module_& m);
void bind_spline(nb::module_& m);
void bind_warp(nb::module_& m);
void bind_solvers(nb::module_& m);
void bind_register(nb::module_& m);
void bind_n4(nb::module_& m);
void bind_sdc(nb::module_& m);
void bind_superres(nb::module_& m);

} // namespace voxalign::py
