// Bindings: NIfTI read/write and transform files.
#include "bind_common.hpp"

#include "voxalign/image/nifti.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign::py {
namespace {

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

template <class T> nb::object read_as(const std::string& path, NiftiHeaderInfo& info) {
  Image<T> img;
  {
    nb::gil_scoped_release r;
    img = read_nifti<T>(path, &info);
  }
  return nb::cast(from_image(std::move(img), info.geometry.ndim));
}

nb::tuple py_read_nifti(const std::string& path, bool single) {
  NiftiHeaderInfo info;
  nb::object arr = single ? read_as<float>(path, info) : read_as<double>(path, info);
  nb::dict d;
  d["dtype"] = dtype_name(info.dtype);
  d["version"] = info.version;
  d["sform_code"] = info.sform_code;
  d["qform_code"] = info.qform_code;
  d["scl_slope"] = info.scl_slope;
  d["scl_inter"] = info.scl_inter;
  d["time_step"] = info.geometry.time_step;
  return nb::make_tuple(arr, from_mat4(info.geometry.affine), d);
}

Geometry geom(const std::vector<int64_t>& shape, const Mat44& affine) {
  Geometry g;
  for (size_t d = 0; d < 3 && d < shape.size(); ++d) g.dims[d] = shape[d];
  g.affine = to_mat4(affine);
  return g;
}

} // namespace

void bind_io(nb::module_& m) {
  m.def("read_nifti", &py_read_nifti);
  m.def("write_nifti", &write_typed<double>);
  m.def("write_nifti", &write_typed<float>);
  m.def("read_nifti_header", [](const std::string& p) {
    const NiftiHeaderInfo h = read_nifti_header(p);
    std::vector<int64_t> shape(h.geometry.dims.begin(), h.geometry.dims.begin() + h.geometry.ndim);
    return nb::make_tuple(shape, from_mat4(h.geometry.affine));
  });
  m.def("write_ras_matrix", [](const std::string& path, Mat44 mat) { write_ras_matrix(path, to_mat4(mat)); });
  m.def("write_text_file", &write_text_file);
  m.def("fsl_to_ras", [](Mat44 flirt, std::vector<int64_t> ref_shape, Mat44 ref_affine, std::vector<int64_t> in_shape,
                         Mat44 in_affine) {
    return from_mat4(fsl_to_ras_pullback(to_mat4(flirt), geom(ref_shape, ref_affine), geom(in_shape, in_affine)));
  });
  m.def("ras_to_fsl", [](Mat44 ras, std::vector<int64_t> ref_shape, Mat44 ref_affine, std::vector<int64_t> in_shape,
                         Mat44 in_affine) {
    return from_mat4(ras_pullback_to_fsl(to_mat4(ras), geom(ref_shape, ref_affine), geom(in_shape, in_affine)));
  });
  m.def("itk_affine_text", [](Mat44 mat) { return itk_affine_text(to_mat4(mat)); });
  m.def("read_transform_between", [](const std::string& p, std::vector<int64_t> ref_shape, Mat44 ref_affine,
                                     std::vector<int64_t> in_shape, Mat44 in_affine) {
    const Geometry r = geom(ref_shape, ref_affine), i = geom(in_shape, in_affine);
    return from_mat4(read_transform(p, &r, &i));
  });
  m.def("transform_file_format", [](const std::string& p) { return transform_format_name(transform_file_format(p)); });
  m.def("read_transform", [](const std::string& p) { return from_mat4(read_transform(p)); });
  m.def("write_itk_affine", [](const std::string& p, Mat44 mat) { write_itk_affine(p, to_mat4(mat)); });
  m.def("write_itk_mat", [](const std::string& p, Mat44 mat) { write_itk_mat(p, to_mat4(mat)); });
  m.def("write_itk_transform", [](const std::string& p, Mat44 mat, const std::string& what) {
    write_itk_transform(p, to_mat4(mat), what);
  });
  m.def("itk_mat_bytes", [](Mat44 mat) {
    const std::string b = itk_mat_bytes(to_mat4(mat));
    return nb::bytes(b.data(), b.size());
  });
}

} // namespace voxalign::py
