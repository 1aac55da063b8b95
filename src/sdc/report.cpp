// The sdc report: green/magenta overlays of the two images before and after the correction (as in
// ImWIP's Fig. 1: grey where they agree) and the field, as PNGs in a self-contained index.html.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "voxalign/core/output.hpp"
#include "voxalign/report/report.hpp"
#include "voxalign/sdc/sdc.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign {
namespace {

using Rgb = std::array<uint8_t, 3>;

/// Three orthogonal slices through voxel c (planes k, j and i, the last voxel axis of each panel
/// upwards, as orthogonal_slices_png draws them), coloured by `colour(i, j, k)`.
template <class F> std::string slices_rgb(const int64_t* n, const int64_t* c, F&& colour) {
  const int64_t w = n[0] + n[0] + n[1] + 4, h = std::max(n[1], n[2]);
  std::vector<uint8_t> px(size_t(3 * w * h), 0);
  auto put = [&](int64_t x, int64_t y, const Rgb& v) {
    for (int q = 0; q < 3; ++q) px[size_t(3 * ((h - 1 - y) * w + x) + q)] = v[size_t(q)];
  };
  for (int64_t j = 0; j < n[1]; ++j)
    for (int64_t i = 0; i < n[0]; ++i) put(i, j, colour(i, j, c[2]));
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t i = 0; i < n[0]; ++i) put(n[0] + 2 + i, k, colour(i, c[1], k));
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t j = 0; j < n[1]; ++j) put(2 * n[0] + 4 + j, k, colour(c[0], j, k));
  return png_rgb(px, int(w), int(h));
}

/// The 99.5th percentile of the values (the display's white).
float top_of(const std::vector<float>& v) {
  std::vector<float> s = v;
  const size_t q = std::min(s.size() - 1, size_t(0.995 * double(s.size())));
  std::nth_element(s.begin(), s.begin() + int64_t(q), s.end());
  return std::max(s[q], 1e-6f);
}

std::vector<float> mean3(ImageView<const float> v) {
  std::vector<float> m(size_t(v.dims[0] * v.dims[1] * v.dims[2]), 0.0f);
  for (int64_t t = 0; t < v.dims[3]; ++t)
    for (int64_t k = 0, p = 0; k < v.dims[2]; ++k)
      for (int64_t j = 0; j < v.dims[1]; ++j)
        for (int64_t i = 0; i < v.dims[0]; ++i, ++p) m[size_t(p)] += v(i, j, k, t) / float(v.dims[3]);
  return m;
}

std::string overlay(const int64_t* n, const int64_t* c, const std::vector<float>& green, const std::vector<float>& magenta) {
  const float top = std::max(top_of(green), top_of(magenta));
  auto byte = [top](float v) { return uint8_t(std::clamp(v / top * 255.0f, 0.0f, 255.0f)); };
  return slices_rgb(n, c, [&](int64_t i, int64_t j, int64_t k) {
    const size_t p = size_t(i + n[0] * (j + n[1] * k));
    const uint8_t g = byte(green[p]), m = byte(magenta[p]);
    return Rgb{m, g, m};
  });
}

std::string escape(const std::string& in) {
  std::string o;
  for (char ch : in) o += ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&quot;" : std::string(1, ch);
  return o;
}

} // namespace

void write_sdc_report(const std::string& dir, const SdcReportInput& in, const SdcResult& r) {
  create_output_directory(dir); // removed again when the CLI's command fails
  const int64_t n[3] = {in.up.dims[0], in.up.dims[1], in.up.dims[2]};
  // The slices through the voxel where the field is strongest: where the correction matters.
  int64_t c[3] = {n[0] / 2, n[1] / 2, n[2] / 2};
  float fmax = 0;
  for (int64_t p = 0; p < r.field.size(); ++p)
    if (std::fabs(r.field.data()[p]) > fmax) {
      fmax = std::fabs(r.field.data()[p]);
      c[0] = p % n[0], c[1] = (p / n[0]) % n[1], c[2] = p / (n[0] * n[1]);
    }
  const std::vector<float> up = mean3(in.up), down = mean3(in.down);
  const std::vector<float> cu(r.corrected_up.data(), r.corrected_up.data() + r.corrected_up.size()),
      cd(r.corrected_down.data(), r.corrected_down.data() + r.corrected_down.size());
  const std::string before = overlay(n, c, up, down), after = overlay(n, c, cu, cd);
  const float scale = std::max(fmax, 1e-6f);
  const std::string field = slices_rgb(n, c, [&](int64_t i, int64_t j, int64_t k) {
    const float v = std::clamp(r.field.data()[i + n[0] * (j + n[1] * k)] / scale, -1.0f, 1.0f);
    const auto b = [](float x) { return uint8_t(std::clamp(255.0f * x, 0.0f, 255.0f)); };
    return Rgb{b(v > 0 ? 1 : 1 + v), b(1 - std::fabs(v)), b(v < 0 ? 1 : 1 - v)}; // blue - white - red
  });
  write_text_file(dir + "/overlay_before.png", before);
  write_text_file(dir + "/overlay_after.png", after);
  write_text_file(dir + "/fieldmap.png", field);
  std::ostringstream h;
  char buf[512];
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>voxalign sdc: " << escape(in.up_name)
    << "</title>\n<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
       "img{image-rendering:pixelated;width:100%;background:#000}td,th{padding:2px 10px;text-align:right}</style></head><body>\n";
  h << "<h1>Susceptibility distortion correction</h1>\n<p>UP <code>" << escape(in.up_name) << "</code> ("
    << phase_encoding_name(in.pe_up) << ", " << in.readout_up << " s) and DOWN <code>" << escape(in.down_name) << "</code> ("
    << phase_encoding_name(in.pe_down) << ", " << in.readout_down << " s).</p>\n";
  std::snprintf(buf, sizeof buf,
                "<table><tr><th>largest |field|</th><td>%.1f Hz</td></tr><tr><th>largest shift</th><td>%.2f voxels</td></tr>"
                "<tr><th>time</th><td>%.2f s</td></tr></table>\n",
                fmax, fmax * std::max(in.readout_up, in.readout_down), in.seconds);
  h << buf;
  h << "<h2>Levels</h2>\n<table><tr><th>level</th><th>control points</th><th>iterations</th><th>cost before</th>"
       "<th>cost after</th></tr>\n";
  for (size_t l = 0; l < r.report.levels.size(); ++l) {
    const SdcLevelReport& L = r.report.levels[l];
    std::snprintf(buf, sizeof buf, "<tr><td>%zu</td><td>%lldx%lldx%lld</td><td>%d</td><td>%.4g</td><td>%.4g</td></tr>\n",
                  l + 1, (long long)L.control_points[0], (long long)L.control_points[1], (long long)L.control_points[2],
                  L.iterations, L.initial_cost, L.final_cost);
    h << buf;
  }
  h << "</table>\n<h2>UP (green) and DOWN (magenta)</h2>\n<p>Slices through voxel (" << c[0] << ", " << c[1] << ", "
    << c[2] << "), where the field is strongest. Grey where the two agree; green or magenta where one is displaced.</p>\n";
  h << "<h3>Before</h3><img alt=\"before\" src=\"data:image/png;base64," << base64(before) << "\">\n";
  h << "<h3>After (each corrected)</h3><img alt=\"after\" src=\"data:image/png;base64," << base64(after) << "\">\n";
  std::snprintf(buf, sizeof buf, "<h2>Field</h2>\n<p>Blue -%.1f Hz, white 0, red +%.1f Hz (topup's sign: a positive "
                "field shifts the PE+ image towards +PE).</p>\n", fmax, fmax);
  h << buf << "<img alt=\"field\" src=\"data:image/png;base64," << base64(field) << "\">\n";
  h << "<p>Files: overlay_before.png, overlay_after.png, fieldmap.png.</p>\n</body></html>\n";
  write_text_file(dir + "/index.html", h.str());
}

} // namespace voxalign
