// Bindings: susceptibility distortion correction from a blip-up/blip-down pair, with SDC_DEFAULTS
// read from a default-constructed SdcOptions (one source for the Python defaults).
#include "bind_common.hpp"

#include "voxalign/sdc/sdc.hpp"

namespace voxalign::py {
namespace {

Geometry grid_of(const ImageView<const float>& v, const Mat44& affine) {
  Geometry g;
  g.ndim = 3;
  for (int d = 0; d < 3; ++d) g.dims[size_t(d)] = v.dims[d];
  g.affine = to_mat4(affine);
  return g;
}

nb::dict py_sdc(InArr<float> up, InArr<float> down, Mat44 affine, const std::string& pe_up, double readout_up,
                const std::string& pe_down, double readout_down, std::optional<InArr<uint8_t>> mask,
                std::vector<double> warp_res, std::vector<int> subsample, std::vector<double> fwhm,
                std::vector<int> iterations, std::vector<double> lambda, double tolerance, int cg_iterations,
                double cg_tolerance, bool approximate, bool align_volumes, bool motion) {
  const auto u = view_of(up, 4, "up"), d = view_of(down, 4, "down");
  ImageView<const uint8_t> mv;
  if (mask) mv = view_of(*mask, 3, "mask");
  SdcOptions o;
  o.warp_res = std::move(warp_res);
  o.subsample = std::move(subsample);
  o.fwhm = std::move(fwhm);
  o.iterations = std::move(iterations);
  o.lambda = std::move(lambda);
  o.tolerance = tolerance;
  o.cg_iterations = cg_iterations;
  o.cg_tolerance = cg_tolerance;
  o.approximate = approximate;
  o.align_volumes = align_volumes;
  o.motion = motion;
  const PhaseEncoding pu = parse_phase_encoding(pe_up, "pe_up"), pd = parse_phase_encoding(pe_down, "pe_down");
  const Geometry g = grid_of(u, affine);
  SdcResult r;
  std::vector<double> trace;
  o.progress = [&trace](const SdcProgress& p) { trace.push_back(p.cost); };
  {
    nb::gil_scoped_release release;
    r = sdc(u, d, g, pu, readout_up, pd, readout_down, mask ? &mv : nullptr, o);
  }
  nb::dict out;
  out["field"] = from_image(std::move(r.field), 3);
  out["corrected"] = from_image(std::move(r.corrected), 3);
  out["corrected_up"] = from_image(std::move(r.corrected_up), 3);
  out["corrected_down"] = from_image(std::move(r.corrected_down), 3);
  nb::list levels;
  for (const SdcLevelReport& l : r.report.levels) {
    nb::dict e;
    e["iterations"] = l.iterations;
    e["cg_iterations"] = l.cg_iterations;
    e["initial_cost"] = l.initial_cost;
    e["final_cost"] = l.final_cost;
    e["control_points"] = l.control_points;
    levels.append(e);
  }
  out["levels"] = levels;
  out["cost_trace"] = trace;
  out["max_jacobian_deficit"] = r.report.max_abs_jacobian_deficit;
  out["motion"] = from_mat4(r.motion);
  out["motion_parameters"] = r.report.motion_parameters;
  return out;
}

nb::dict sdc_defaults() {
  const SdcOptions o;
  nb::dict d;
  d["warp_res"] = nb::tuple(nb::cast(o.warp_res));
  d["subsample"] = nb::tuple(nb::cast(o.subsample));
  d["fwhm"] = nb::tuple(nb::cast(o.fwhm));
  d["iterations"] = nb::tuple(nb::cast(o.iterations));
  d["lambda"] = nb::tuple(nb::cast(o.lambda));
  d["tolerance"] = o.tolerance;
  d["align_volumes"] = o.align_volumes;
  d["motion"] = o.motion;
  d["cg_iterations"] = o.cg_iterations;
  d["cg_tolerance"] = o.cg_tolerance;
  return d;
}

} // namespace

void bind_sdc(nb::module_& m) {
  m.def("sdc", &py_sdc, nb::arg("up"), nb::arg("down"), nb::arg("affine"), nb::arg("pe_up"), nb::arg("readout_up"),
        nb::arg("pe_down"), nb::arg("readout_down"), nb::arg("mask").none(), nb::arg("warp_res"), nb::arg("subsample"),
        nb::arg("fwhm"), nb::arg("iterations"), nb::arg("lambda_"), nb::arg("tolerance"), nb::arg("cg_iterations"), nb::arg("cg_tolerance"),
        nb::arg("approximate") = false, nb::arg("align_volumes") = true, nb::arg("motion") = true);
  m.attr("SDC_DEFAULTS") = sdc_defaults();
  m.def("sdc_apply", [](InArr<float> series, InArr<float> field, const std::string& pe, double readout) {
    const auto s = view_of(series, 4, "series");
    const auto f = view_of(field, 3, "field");
    const int nd = int(series.ndim());
    Image<float> out;
    {
      nb::gil_scoped_release release;
      out = sdc_apply(s, f, parse_phase_encoding(pe, "pe"), readout);
    }
    return from_image(std::move(out), nd);
  });
  m.def("sdc_apply_with_motion", [](InArr<float> series, InArr<float> field, Mat44 affine, const std::string& pe,
                                    double readout, std::vector<Mat44> pullbacks) {
    const auto s = view_of(series, 4, "series");
    const auto f = view_of(field, 3, "field");
    std::vector<Mat4> m;
    for (const Mat44& p : pullbacks) m.push_back(to_mat4(p));
    Image<float> out;
    {
      nb::gil_scoped_release release;
      out = sdc_apply_with_motion(s, f, grid_of(f, affine), parse_phase_encoding(pe, "pe"), readout, m);
    }
    return from_image(std::move(out), int(series.ndim()));
  });
  m.def("read_frame_transforms", [](const std::string& path) {
    nb::list out;
    for (const Mat4& t : read_frame_transforms(path)) out.append(from_mat4(t));
    return out;
  });
  m.def("sdc_displacement", [](InArr<float> field, Mat44 affine, const std::string& pe, double readout) {
    const auto f = view_of(field, 3, "field");
    DisplacementField D = sdc_displacement(f, grid_of(f, affine), parse_phase_encoding(pe, "pe"), readout);
    Image<float> u(D.u.geometry(), no_init);
    for (int64_t i = 0; i < u.size(); ++i) u.data()[i] = float(D.u.data()[i]);
    return from_image(std::move(u), 4);
  });
}

} // namespace voxalign::py
