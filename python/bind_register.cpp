// Bindings: rigid/affine registration and 4D realignment, with their defaults read from the C++
// option structs (REGISTER_DEFAULTS, REALIGN_DEFAULTS) so that no face can drift from them.
#include "bind_common.hpp"

#include "voxalign/realign/realign.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/register/syn.hpp"
#include "voxalign/transform/displacement.hpp"

namespace voxalign::py {
namespace {

RegisterOptions register_options(const nb::dict& kw) {
  RegisterOptions o;
  for (auto [key, val] : kw) {
    const std::string k = nb::cast<std::string>(key);
    if (k == "transform") o.transform = transform_names().parse(nb::cast<std::string>(val));
    else if (k == "metric") o.metric = metric_names().parse(nb::cast<std::string>(val));
    else if (k == "levels") o.levels = nb::cast<std::vector<int>>(val);
    else if (k == "smoothing") o.smoothing = nb::cast<std::vector<double>>(val);
    else if (k == "optimizer") o.optimizer = optimizer_names().parse(nb::cast<std::string>(val));
    else if (k == "iterations") o.iterations = nb::cast<std::vector<int>>(val);
    else if (k == "init") o.init = init_names().parse(nb::cast<std::string>(val));
    else if (k == "freeze") o.freeze = nb::cast<std::vector<std::string>>(val);
    else if (k == "degree") o.degree = nb::cast<int>(val);
    else if (k == "max_samples") o.max_samples = nb::cast<int64_t>(val);
    else if (k == "bins") o.bins = nb::cast<int>(val);
    else if (k == "radius") o.radius = nb::cast<int>(val);
    else if (k == "tolerance") o.tolerance = nb::cast<double>(val);
    else if (k == "learning_rate") o.learning_rate = nb::cast<double>(val);
    else if (k == "skip_fill") o.skip_fill = nb::cast<bool>(val);
    else if (k.rfind("syn_", 0) == 0) continue; // syn_options
    else throw InvalidArgument("register: unknown option '" + k + "'");
  }
  return o;
}

SynOptions syn_options(const nb::dict& kw) {
  SynOptions o;
  for (auto [key, val] : kw) {
    const std::string k = nb::cast<std::string>(key);
    if (k == "syn_metric") o.metric = metric_names().parse(nb::cast<std::string>(val));
    else if (k == "syn_radius") o.radius = nb::cast<int>(val);
    else if (k == "syn_bins") o.bins = nb::cast<int>(val);
    else if (k == "syn_levels") o.levels = nb::cast<std::vector<int>>(val);
    else if (k == "syn_smoothing") o.smoothing = nb::cast<std::vector<double>>(val);
    else if (k == "syn_iterations") o.iterations = nb::cast<std::vector<int>>(val);
    else if (k == "syn_step") o.step = nb::cast<double>(val);
    else if (k == "syn_update_sigma") o.update_sigma = nb::cast<double>(val);
    else if (k == "syn_total_sigma") o.total_sigma = nb::cast<double>(val);
    else if (k == "syn_convergence") o.convergence = nb::cast<double>(val);
  }
  return o;
}

// A field (RAS mm) as an X x Y x Z x 3 float64 array.
nb::object field_array(DisplacementField&& f) { return nb::cast(from_image(std::move(f.u), 4)); }

// The keyword defaults of voxalign.register: a default-constructed RegisterOptions. Empty
// smoothing / iterations mean "per level, chosen by the engine" and are None in Python.
nb::dict register_defaults() {
  const RegisterOptions o;
  nb::dict d;
  d["transform"] = transform_names().name(o.transform);
  d["metric"] = metric_names().name(o.metric);
  d["levels"] = nb::tuple(nb::cast(o.levels));
  d["smoothing"] = o.smoothing.empty() ? nb::none() : nb::object(nb::tuple(nb::cast(o.smoothing)));
  d["optimizer"] = optimizer_names().name(o.optimizer);
  d["iterations"] = o.iterations.empty() ? nb::none() : nb::object(nb::tuple(nb::cast(o.iterations)));
  d["init"] = init_names().name(o.init);
  d["freeze"] = nb::tuple(nb::cast(o.freeze));
  d["degree"] = o.degree;
  d["max_samples"] = o.max_samples;
  d["bins"] = o.bins;
  d["radius"] = o.radius;
  d["tolerance"] = o.tolerance;
  d["learning_rate"] = o.learning_rate;
  d["skip_fill"] = o.skip_fill;
  const SynOptions so;
  d["syn_metric"] = metric_names().name(so.metric);
  d["syn_radius"] = so.radius;
  d["syn_bins"] = so.bins;
  d["syn_levels"] = so.levels.empty() ? nb::none() : nb::object(nb::tuple(nb::cast(so.levels)));
  d["syn_smoothing"] = so.smoothing.empty() ? nb::none() : nb::object(nb::tuple(nb::cast(so.smoothing)));
  d["syn_iterations"] = nb::tuple(nb::cast(so.iterations));
  d["syn_step"] = so.step;
  d["syn_update_sigma"] = so.update_sigma;
  d["syn_total_sigma"] = so.total_sigma;
  d["syn_convergence"] = so.convergence;
  return d;
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
  DeformableResult dr;
  const bool syn = o.transform == TransformType::Syn;
  {
    nb::gil_scoped_release release;
    if (syn) {
      dr = register_deformable(fx, mv, o, syn_options(kw), fixed_mask ? &fm : nullptr, moving_mask ? &mm : nullptr);
      r = std::move(dr.affine);
    } else {
      r = register_images(fx, mv, o, fixed_mask ? &fm : nullptr, moving_mask ? &mm : nullptr);
    }
  }
  nb::dict d;
  if (syn) {
    d["syn_metric_value"] = dr.syn.metric;
    d["warp"] = field_array(std::move(dr.syn.forward));
    d["inverse_warp"] = field_array(std::move(dr.syn.inverse));
  }
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

nb::dict realign_defaults() {
  const RealignOptions o;
  nb::dict d;
  d["ref"] = o.to_mean ? nb::cast("mean") : nb::cast(o.ref_frame);
  d["sep"] = o.sep;
  d["fwhm"] = o.fwhm;
  d["degree"] = o.degree;
  d["quality"] = o.quality;
  d["iterations"] = o.iterations;
  d["tolerance"] = o.tolerance;
  d["write_degree"] = o.write_degree;
  return d;
}

nb::dict py_realign(InArr<float> data, Mat44 affine, std::optional<InArr<float>> weight, int ref_frame, bool to_mean,
                    double sep, double fwhm, int degree, double quality, int iterations, double tolerance, bool reslice,
                    int write_degree, bool dvars) {
  if (data.ndim() != 4) throw InvalidArgument("realign needs a 4D array (x, y, z, t), not " + std::to_string(data.ndim()) + "D");
  const ImageView<const float> v = view_of<float>(data, 4, "data");
  Geometry g;
  g.ndim = 4;
  for (int d = 0; d < 4; ++d) g.dims[d] = v.dims[d];
  g.affine = to_mat4(affine);
  Image<float> series(g, no_init);
  copy_view<float>(v, series.view()); // any layout: tiled where axis 0 is not the fastest
  Image<float> w;
  if (weight) w = image_of(*weight, affine, "mask");
  RealignOptions o;
  o.ref_frame = ref_frame, o.to_mean = to_mean, o.sep = sep, o.fwhm = fwhm, o.degree = degree, o.quality = quality,
  o.iterations = iterations, o.tolerance = tolerance;
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

} // namespace

void bind_register(nb::module_& m) {
  m.def("register", &py_register, nb::arg("moving"), nb::arg("moving_affine"), nb::arg("fixed"), nb::arg("fixed_affine"),
        nb::arg("fixed_mask").none(), nb::arg("moving_mask").none(), nb::arg("init_matrix").none(), nb::arg("options"));
  m.def("register_metric", &py_register_metric, nb::arg("moving"), nb::arg("moving_affine"), nb::arg("fixed"),
        nb::arg("fixed_affine"), nb::arg("groups"), nb::arg("centre"), nb::arg("init"), nb::arg("theta"),
        nb::arg("fixed_mask").none(), nb::arg("moving_mask").none(), nb::arg("options"));
  m.def("write_displacement_field", [](const std::string& path, InArr<double> field, Mat44 affine) {
    const DisplacementField f = field_of(field, affine, "write_displacement_field");
    nb::gil_scoped_release release;
    write_displacement_field(path, f);
  });
  m.def("jacobian_determinant", [](InArr<double> field, Mat44 affine) {
    return from_image(jacobian_determinant(field_of(field, affine, "jacobian_determinant")), 3);
  });
  m.def("transform_groups", [](const std::string& t) { return transform_groups(transform_names().parse(t)); });
  m.attr("REGISTER_DEFAULTS") = register_defaults();
  m.def("realign", &py_realign, nb::arg("data"), nb::arg("affine"), nb::arg("weight").none(), nb::arg("ref_frame"),
        nb::arg("to_mean"), nb::arg("sep"), nb::arg("fwhm"), nb::arg("degree"), nb::arg("quality"), nb::arg("iterations"),
        nb::arg("tolerance"), nb::arg("reslice"), nb::arg("write_degree"), nb::arg("dvars") = true);
  m.def("jenkinson_rms", [](Mat44 a, Mat44 b, std::array<double, 3> c, double radius) {
    return jenkinson_rms(to_mat4(a), to_mat4(b), Vec3(c[0], c[1], c[2]), radius);
  });
  m.attr("REALIGN_DEFAULTS") = realign_defaults();
}

} // namespace voxalign::py
