// SVG plots, PNG slices and the HTML realignment report, written by hand: they need a few dozen
// lines each, and no plotting library the field relies on is available to C++ here (docs/realign.md).
#include "voxalign/report/report.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "voxalign/core/error.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign {

std::string svg_line_plot(const std::string& title, const std::string& ylabel, const std::vector<std::string>& names,
                          const std::vector<std::vector<double>>& series) {
  const double W = 760, H = 220, L = 70, R = 120, Tm = 28, B = 36;
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  double lo = 0, hi = 0;
  size_t n = 0;
  for (const auto& s : series) {
    n = std::max(n, s.size());
    for (double v : s) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (hi - lo < 1e-12) hi = lo + 1.0;
  const double pad = 0.05 * (hi - lo);
  lo = lo >= 0 ? 0.0 : lo - pad; // non-negative series (FD) keep 0 as the axis' floor
  hi += pad;
  auto X = [&](double i) { return L + (W - L - R) * (n > 1 ? i / double(n - 1) : 0.5); };
  auto Y = [&](double v) { return Tm + (H - Tm - B) * (1.0 - (v - lo) / (hi - lo)); };
  std::ostringstream o;
  char buf[256];
  std::snprintf(buf, sizeof buf, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
  o << buf << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << L << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">" << title << "</text>\n";
  // axes, zero line and ticks
  std::snprintf(buf, sizeof buf, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", L, Tm, W - L - R, H - Tm - B);
  o << buf;
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4.0;
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text><line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"#eee\"/>\n",
                  L - 6, Y(v) + 4, v, L, W - R, Y(v), Y(v));
    o << buf;
  }
  for (int k = 0; k <= 5 && n > 1; ++k) {
    const double i = std::round((n - 1) * k / 5.0);
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", X(i), H - B + 16, i);
    o << buf;
  }
  std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">frame</text>\n", L + (W - L - R) / 2, H - 4);
  o << buf;
  std::snprintf(buf, sizeof buf, "<text transform=\"translate(14,%g) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", Tm + (H - Tm - B) / 2, ylabel.c_str());
  o << buf;
  for (size_t s = 0; s < series.size(); ++s) {
    o << "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" << colours[s % 6] << "\" points=\"";
    for (size_t i = 0; i < series[s].size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", X(double(i)), Y(series[s][i]));
      o << buf;
    }
    o << "\"/>\n";
    std::snprintf(buf, sizeof buf, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
                  W - R + 10, W - R + 28, Tm + 10 + 18.0 * s, Tm + 10 + 18.0 * s, colours[s % 6], W - R + 32, Tm + 14 + 18.0 * s,
                  s < names.size() ? names[s].c_str() : "");
    o << buf;
  }
  o << "</svg>\n";
  return o.str();
}

namespace {
void put32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s.push_back(char((v >> (8 * k)) & 0xff));
}
void chunk(std::string& png, const char* type, const std::string& data) {
  put32(png, uint32_t(data.size()));
  std::string td = std::string(type, 4) + data;
  png += td;
  put32(png, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()))));
}
} // namespace

namespace {
/// An 8-bit PNG of `channels` samples per pixel (1 grey, 3 RGB).
std::string png_bytes(const std::vector<uint8_t>& px, int w, int h, int channels) {
  VX_CHECK(w > 0 && h > 0 && px.size() == size_t(w) * size_t(h) * size_t(channels), InvalidArgument, "png: bad image size");
  const size_t row = size_t(w) * size_t(channels);
  std::string raw;
  raw.reserve(size_t(h) * (row + 1));
  for (int y = 0; y < h; ++y) {
    raw.push_back('\0'); // filter: none
    raw.append(reinterpret_cast<const char*>(px.data()) + size_t(y) * row, row);
  }
  uLongf len = compressBound(uLong(raw.size()));
  std::string z(len, '\0');
  VX_CHECK(compress2(reinterpret_cast<Bytef*>(z.data()), &len, reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()), 6) == Z_OK,
           Error, "png: compression failed");
  z.resize(len);
  std::string png("\x89PNG\r\n\x1a\n", 8), ihdr;
  put32(ihdr, uint32_t(w));
  put32(ihdr, uint32_t(h));
  // 8 bits per sample, colour type 0 (grey) or 2 (RGB), deflate, no filter, no interlace
  ihdr += std::string(1, '\x08') + std::string(1, channels == 3 ? '\x02' : '\x00') + std::string(3, '\0');
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  return png;
}
} // namespace

std::string png_gray(const std::vector<uint8_t>& px, int w, int h) { return png_bytes(px, w, h, 1); }

std::string png_rgb(const std::vector<uint8_t>& px, int w, int h) { return png_bytes(px, w, h, 3); }

std::string base64(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 3; k >= 0; --k) out.push_back(tbl[(v >> (6 * k)) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out.push_back(tbl[(v >> 18) & 63]);
    out.push_back(tbl[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string orthogonal_slices_png(const Image<float>& img) {
  const Geometry& g = img.geometry();
  const int64_t nx = g.dims[0], ny = g.dims[1], nz = g.dims[2];
  std::vector<float> vals(img.storage().begin(), img.storage().end());
  const size_t q = std::min(vals.size() - 1, size_t(0.995 * double(vals.size())));
  std::nth_element(vals.begin(), vals.begin() + static_cast<int64_t>(q), vals.end());
  const float top = std::max(vals[q], 1e-6f);
  auto at = [&](int64_t i, int64_t j, int64_t k) {
    return uint8_t(std::clamp(img.data()[i + nx * (j + ny * k)] / top * 255.0f, 0.0f, 255.0f));
  };
  // Three panels, each drawn with voxel rows (axial: j up; coronal, sagittal: k up), 2 px gaps.
  const int64_t w = nx + nx + ny + 4, h = std::max(ny, nz);
  std::vector<uint8_t> px(size_t(w * h), 0);
  const int64_t ci = nx / 2, cj = ny / 2, ck = nz / 2;
  for (int64_t j = 0; j < ny; ++j)
    for (int64_t i = 0; i < nx; ++i) px[size_t((h - 1 - j) * w + i)] = at(i, j, ck);
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t i = 0; i < nx; ++i) px[size_t((h - 1 - k) * w + nx + 2 + i)] = at(i, cj, k);
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j) px[size_t((h - 1 - k) * w + 2 * nx + 4 + j)] = at(ci, j, k);
  return png_gray(px, int(w), int(h));
}

namespace {
std::string html_escape(const std::string& in) {
  std::string o;
  for (char c : in) {
    switch (c) {
    case '&': o += "&amp;"; break;
    case '<': o += "&lt;"; break;
    case '>': o += "&gt;"; break;
    case '"': o += "&quot;"; break;
    default: o += c;
    }
  }
  return o;
}
} // namespace

void write_realign_report(const std::string& dir, const std::string& input_name_raw, const RealignResult& r,
                          const Image<float>& mean_before, const Image<float>& mean_after, double seconds) {
  const std::string input_name = html_escape(input_name_raw);
  create_output_directory(dir); // removed again when the CLI's command fails
  const size_t T = r.spm.size();
  std::vector<std::vector<double>> tr(3, std::vector<double>(T)), rot(3, std::vector<double>(T)), fd(1, r.fd);
  double fd_mean = 0, fd_max = 0;
  for (size_t t = 0; t < T; ++t) {
    for (int k = 0; k < 3; ++k) tr[size_t(k)][t] = r.spm[t][size_t(k)], rot[size_t(k)][t] = r.spm[t][size_t(3 + k)] * 180.0 / M_PI;
    fd_mean += r.fd[t] / double(std::max<size_t>(1, T - 1));
    fd_max = std::max(fd_max, r.fd[t]);
  }
  const std::string s_tr = svg_line_plot("Translation (SPM rp, relative to frame 0)", "mm", {"x", "y", "z"}, tr);
  const std::string s_rot = svg_line_plot("Rotation (SPM rp: pitch, roll, yaw)", "degrees", {"pitch", "roll", "yaw"}, rot);
  const std::string s_fd = svg_line_plot("Framewise displacement (Power, 50 mm)", "mm", {"FD"}, fd);
  const std::string before = orthogonal_slices_png(mean_before), after = orthogonal_slices_png(mean_after);
  write_text_file(dir + "/translation.svg", s_tr);
  write_text_file(dir + "/rotation.svg", s_rot);
  write_text_file(dir + "/fd.svg", s_fd);
  write_text_file(dir + "/mean_before.png", before);
  write_text_file(dir + "/mean_after.png", after);
  std::ostringstream h;
  char buf[512];
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>voxalign realign: " << input_name
    << "</title>\n<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
       "img{image-rendering:pixelated;width:100%;background:#000}td,th{padding:2px 10px;text-align:right}</style></head><body>\n";
  h << "<h1>Motion correction</h1>\n<p>Input <code>" << input_name << "</code>, " << T << " frames, "
    << r.samples << " reference samples.</p>\n";
  std::snprintf(buf, sizeof buf,
                "<table><tr><th>mean FD</th><td>%.4f mm</td></tr><tr><th>max FD</th><td>%.4f mm</td></tr>"
                "<tr><th>estimation time</th><td>%.2f s</td></tr></table>\n",
                fd_mean, fd_max, seconds);
  h << buf;
  h << "<h2>Motion parameters</h2>\n" << s_tr << s_rot << s_fd;
  h << "<h2>Mean image before and after</h2>\n<p>Axial, coronal and sagittal middle slices. Before: the mean of the "
       "frames as acquired; after: the mean of the realigned frames (sharper when the motion was corrected).</p>\n";
  h << "<h3>Before</h3><img alt=\"mean before\" src=\"data:image/png;base64," << base64(before) << "\">\n";
  h << "<h3>After</h3><img alt=\"mean after\" src=\"data:image/png;base64," << base64(after) << "\">\n";
  h << "<p>Files: translation.svg, rotation.svg, fd.svg, mean_before.png, mean_after.png.</p>\n</body></html>\n";
  write_text_file(dir + "/index.html", h.str());
}

} // namespace voxalign
