// Bindings: super-resolution reconstruction (voxalign.superres), with SUPERRES_DEFAULTS read from a
// default-constructed SuperresOptions (one source for the Python defaults).
#include "bind_common.hpp"

#include "voxalign/superres/superres.hpp"

namespace voxalign::py {
namespace {

Image<float> image_of(const InArr<float>& a, const Mat44& affine, const std::string& what) {
  const ImageView<const float> v = view_of(a, 4, what.c_str());
  Geometry g;
  g.ndim = int(std::min<size_t>(a.ndim(), 3));
  for (int d = 0; d < 4; ++d) g.dims[size_t(d)] = v.dims[d];
  g.affine = to_mat4(affine);
  Image<float> im(g, no_init);
  copy_view(v, im.view());
  return im;
}

nb::dict py_superres(std::vector<InArr<float>> stacks, std::vector<Mat44> affines, std::optional<InArr<float>> mask,
                     std::optional<Mat44> mask_affine, double resolution, int iterations, double regularization,
                     int cg_iterations, int gn_iterations, bool slice_motion, int slice_groups, bool outlier_rejection,
                     bool register_init, bool residuals) {
  if (stacks.size() != affines.size()) throw InvalidArgument("superres: one affine per stack");
  SuperresOptions o;
  o.resolution = resolution;
  o.iterations = iterations;
  o.regularization = regularization;
  o.cg_iterations = cg_iterations;
  o.gn_iterations = gn_iterations;
  o.slice_motion = slice_motion;
  o.slice_groups = slice_groups;
  o.outlier_rejection = outlier_rejection;
  o.register_init = register_init;
  o.residuals = residuals;
  check_superres_options(o);
  std::vector<Image<float>> in;
  for (size_t k = 0; k < stacks.size(); ++k) in.push_back(image_of(stacks[k], affines[k], "stack " + std::to_string(k + 1)));
  Image<float> m;
  if (mask) m = image_of(*mask, *mask_affine, "mask");
  SuperresResult r;
  {
    nb::gil_scoped_release release;
    r = superres(in, o, mask ? &m : nullptr);
  }
  nb::dict out;
  const Mat4 aff = r.image.geometry().affine;
  out["affine"] = from_mat4(aff);
  out["image"] = from_image(std::move(r.image), 3);
  nb::list tr, weights;
  for (size_t k = 0; k < r.transforms.size(); ++k) {
    nb::list t;
    for (const Mat4& T : r.transforms[k]) t.append(from_mat4(T));
    tr.append(t);
    weights.append(nb::cast(r.slice_weights[k]));
  }
  out["transforms"] = tr;
  out["slice_weights"] = weights;
  out["slice_group"] = nb::cast(r.slice_group);
  out["slice_voxels"] = nb::cast(r.slice_voxels);
  out["slice_axis"] = nb::cast(r.slice_axis);
  out["residual_rms"] = nb::cast(r.residual_rms);
  out["cg_iterations"] = r.cg_iterations;
  nb::list res;
  for (Image<float>& im : r.residuals) res.append(from_image(std::move(im), 3));
  out["residuals"] = res;
  return out;
}

nb::dict superres_defaults() {
  const SuperresOptions o;
  nb::dict d;
  d["iterations"] = o.iterations;
  d["regularization"] = o.regularization;
  d["cg_iterations"] = o.cg_iterations;
  d["gn_iterations"] = o.gn_iterations;
  d["slice_motion"] = o.slice_motion;
  d["slice_groups"] = o.slice_groups;
  d["outlier_rejection"] = o.outlier_rejection;
  d["residuals"] = o.residuals;
  return d;
}

} // namespace

void bind_superres(nb::module_& m) {
  m.def("superres", &py_superres, nb::arg("stacks"), nb::arg("affines"), nb::arg("mask").none(),
        nb::arg("mask_affine").none(), nb::arg("resolution"), nb::arg("iterations"), nb::arg("regularization"),
        nb::arg("cg_iterations"), nb::arg("gn_iterations"), nb::arg("slice_motion"), nb::arg("slice_groups"),
        nb::arg("outlier_rejection"), nb::arg("register_init"), nb::arg("residuals"));
  m.attr("SUPERRES_DEFAULTS") = superres_defaults();
}

} // namespace voxalign::py
