// Bindings: N4 bias-field correction and Otsu's foreground mask, with N4_DEFAULTS read from a
// default-constructed N4Options (one source for the Python defaults).
#include "bind_common.hpp"

#include "voxalign/n4/n4.hpp"

namespace voxalign::py {
namespace {

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

nb::dict n4_defaults() {
  const N4Options o;
  nb::dict d;
  d["iterations"] = nb::tuple(nb::cast(o.iterations));
  d["convergence"] = o.convergence;
  d["shrink"] = o.shrink;
  d["spline_distance"] = o.spline_distance > 0 ? nb::cast(o.spline_distance) : nb::none();
  d["control_points"] = o.control_points.size() == 1 ? nb::cast(o.control_points[0]) : nb::object(nb::tuple(nb::cast(o.control_points)));
  d["spline_order"] = o.spline_order;
  d["bins"] = o.bins;
  d["fwhm"] = o.fwhm;
  d["wiener"] = o.wiener;
  d["otsu_bins"] = o.otsu_bins;
  return d;
}

} // namespace

void bind_n4(nb::module_& m) {
  m.def("n4", &py_n4);
  m.attr("N4_DEFAULTS") = n4_defaults();
  m.def("otsu_mask", [](InArr<float> img, int bins) {
    return from_image(otsu_mask(view_of(img, 3, "image"), bins), int(img.ndim()));
  });
  m.def("otsu_threshold", [](InArr<float> img, int bins) { return otsu_threshold(view_of(img, 4, "image"), bins); });
}

} // namespace voxalign::py
