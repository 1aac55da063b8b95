// Phase-encoding names, topup's acquisition-parameter file, applying a field to a series and the
// field as an ITK displacement field.
#include <cmath>
#include <fstream>
#include <sstream>

#include "internal.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/file_read.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/sdc/sdc.hpp"
#include "voxalign/spline/prefilter.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign {

PhaseEncoding parse_phase_encoding(std::string_view text, const std::string& what) {
  std::string t(text);
  PhaseEncoding pe;
  int sign = 1;
  if (!t.empty() && t.back() == '-') sign = -1, t.pop_back();
  else if (!t.empty() && t.front() == '-') sign = -1, t.erase(0, 1);
  else if (!t.empty() && t.back() == '+') t.pop_back();
  static const char* names[3][2] = {{"i", "x"}, {"j", "y"}, {"k", "z"}};
  for (int a = 0; a < 3; ++a)
    if (t == names[a][0] || t == names[a][1]) {
      pe.axis = a;
      pe.sign = sign;
      return pe;
    }
  throw InvalidArgument(what + ": unknown phase-encoding direction '" + std::string(text) +
                        "' (choose from i, j, k, i-, j-, k-)");
}

std::string phase_encoding_name(PhaseEncoding pe) {
  std::string s(1, "ijk"[pe.axis < 0 || pe.axis > 2 ? 0 : pe.axis]);
  if (pe.sign < 0) s += '-';
  return s;
}

std::vector<AcquisitionRow> read_acquisition_parameters(const std::string& path) {
  std::ifstream f(path);
  VX_CHECK(f, IoError, path, ": cannot open the acquisition parameters");
  std::vector<AcquisitionRow> rows;
  std::string line;
  int no = 0;
  while (std::getline(f, line)) {
    ++no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream s(line);
    double v[4];
    std::string extra;
    VX_CHECK(bool(s >> v[0] >> v[1] >> v[2] >> v[3]) && !(s >> extra), IoError, path, ": line ", no,
             " is not 4 numbers (\"0 1 0 0.05\": the phase-encoding vector and the total readout time)");
    int axis = -1, sign = 0, nonzero = 0;
    for (int a = 0; a < 3; ++a)
      if (v[a] != 0) ++nonzero, axis = a, sign = v[a] > 0 ? 1 : -1;
    VX_CHECK(nonzero == 1 && std::fabs(v[axis]) == 1, IoError, path, ": line ", no,
             ": the phase-encoding vector must be one of +-1 along one axis");
    VX_CHECK(std::isfinite(v[3]) && v[3] > 0, IoError, path, ": line ", no, ": the readout time must be > 0 s");
    rows.push_back({PhaseEncoding{axis, sign}, v[3]});
  }
  VX_CHECK(!rows.empty(), IoError, path, ": no acquisition parameters");
  return rows;
}

Image<float> sdc_apply(ImageView<const float> series, ImageView<const float> field, PhaseEncoding pe, double readout) {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(series.dims[d] == field.dims[d], InvalidArgument, "the series is not on the field's grid (", series.dims[0],
             "x", series.dims[1], "x", series.dims[2], " vs ", field.dims[0], "x", field.dims[1], "x", field.dims[2], ")");
  VX_CHECK(pe.axis >= 0 && pe.axis < 3, InvalidArgument, "bad phase-encoding axis");
  VX_CHECK(std::isfinite(readout) && readout > 0, InvalidArgument, "the total readout time must be > 0 s");
  const int ax = pe.axis;
  const double a = pe.sign * readout;
  const int64_t n = series.dims[ax], T = series.dims[3];
  Geometry g;
  g.ndim = T > 1 ? 4 : 3;
  for (int d = 0; d < 4; ++d) g.dims[size_t(d)] = series.dims[d];
  Image<float> out(g, no_init);
  const ImageView<float> ov = out.view();
  // Lines along the phase-encoding axis: the other two axes index them.
  const int o1 = ax == 0 ? 1 : 0, o2 = ax == 2 ? 1 : 2;
  const int64_t lines = series.dims[o1] * series.dims[o2];
  parallel_for(lines, 16, [&](int64_t b, int64_t e) {
    std::vector<double> fc(static_cast<size_t>(n)), ic(static_cast<size_t>(n)), F(static_cast<size_t>(n)), Fp(static_cast<size_t>(n));
    int64_t idx[3] = {0, 0, 0};
    for (int64_t line = b; line < e; ++line) {
      idx[o1] = line % series.dims[o1];
      idx[o2] = line / series.dims[o1];
      for (int64_t i = 0; i < n; ++i) {
        idx[ax] = i;
        fc[size_t(i)] = field(idx[0], idx[1], idx[2]);
      }
      // The field's cubic spline along the line gives its derivative, consistent with its samples.
      prefilter_lines(fc.data(), n, 1, 3, Mode::Mirror);
      for (int64_t i = 0; i < n; ++i) sdc_detail::sample_line(fc.data(), n, double(i), F[size_t(i)], Fp[size_t(i)]);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < n; ++i) {
          idx[ax] = i;
          ic[size_t(i)] = series(idx[0], idx[1], idx[2], t);
        }
        prefilter_lines(ic.data(), n, 1, 3, Mode::Mirror);
        for (int64_t i = 0; i < n; ++i) {
          double v, dv;
          sdc_detail::sample_line(ic.data(), n, double(i) + a * F[size_t(i)], v, dv);
          idx[ax] = i;
          ov(idx[0], idx[1], idx[2], t) = float(v * (1.0 + a * Fp[size_t(i)]));
        }
      }
    }
  });
  return out;
}

std::vector<Mat4> read_frame_transforms(const std::string& path) {
  check_regular_file(path, "transform file");
  const RegularFile f(path, "transform file", path);
  VX_CHECK(f.size() <= kMaxTransformFileBytes, IoError, path, ": too large for a transform file");
  const std::vector<unsigned char> bytes = f.read(0, f.size());
  const std::string text(bytes.begin(), bytes.end());
  std::vector<Mat4> out;
  size_t at = text.find("#Transform ");
  VX_CHECK(at != std::string::npos, IoError, path, ": no \"#Transform\" (not an ITK transform text file)");
  while (at != std::string::npos) {
    const size_t body = text.find('\n', at);
    const size_t next = text.find("#Transform ", at + 1);
    VX_CHECK(body != std::string::npos, IoError, path, ": transform ", out.size(), " is empty");
    const std::string one = "#Insight Transform File V1.0\n#Transform 0\n" +
                            text.substr(body + 1, next == std::string::npos ? std::string::npos : next - body - 1);
    out.push_back(parse_itk_transform_text(one, path + " (transform " + std::to_string(out.size()) + ")"));
    at = next;
  }
  return out;
}

SdcOneShot::SdcOneShot(ImageView<const float> field, const Geometry& grid, PhaseEncoding pe, double readout,
                       const ResampleOptions& opts)
    : grid_(grid), opts_(opts) {
  grid_.ndim = 3;
  grid_.dims[3] = 1;
  // The Jacobian of the distortion on the reference grid: sdc_apply of an image of ones.
  const Image<float> ones(Geometry{3, {field.dims[0], field.dims[1], field.dims[2], 1}}, 1.0f);
  jacobian_ = sdc_apply(ones.view(), field, pe, readout);
  disp_ = std::make_shared<const DisplacementField>(sdc_displacement(field, grid_, pe, readout));
}

void SdcOneShot::frame(ImageView<const float> in, const Mat4& pullback, ImageView<float> out) const {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(in.dims[d] == grid_.dims[size_t(d)] && out.dims[d] == grid_.dims[size_t(d)], InvalidArgument,
             "one-shot resampling: the frame is not on the field's grid");
  TransformChain chain; // reference point -> its distorted position -> the frame's point
  chain.append(disp_);
  chain.append(pullback);
  resample_chain_into<float>(in, grid_.affine, 3, out, grid_.affine, chain, opts_);
  const float* jac = jacobian_.data();
  for (int64_t k = 0, v = 0; k < out.dims[2]; ++k)
    for (int64_t j = 0; j < out.dims[1]; ++j)
      for (int64_t i = 0; i < out.dims[0]; ++i, ++v) out(i, j, k) *= jac[v];
}

Image<float> sdc_apply_with_motion(ImageView<const float> series, ImageView<const float> field, const Geometry& grid,
                                   PhaseEncoding pe, double readout, const std::vector<Mat4>& pullbacks,
                                   const ResampleOptions& opts) {
  VX_CHECK(int64_t(pullbacks.size()) == series.dims[3], InvalidArgument, "the series has ", series.dims[3],
           " frames but ", pullbacks.size(), " transforms were given");
  const SdcOneShot one(field, grid, pe, readout, opts);
  Geometry g = grid;
  g.ndim = series.dims[3] > 1 ? 4 : 3;
  g.dims[3] = series.dims[3];
  Image<float> out(g, no_init);
  for (int64_t t = 0; t < series.dims[3]; ++t) one.frame(series.frame(t), pullbacks[size_t(t)], out.view().frame(t));
  return out;
}

DisplacementField sdc_displacement(ImageView<const float> field, const Geometry& grid, PhaseEncoding pe,
                                   double readout) {
  for (int d = 0; d < 3; ++d)
    VX_CHECK(field.dims[d] == grid.dims[size_t(d)], InvalidArgument, "the field is not on the grid");
  DisplacementField D;
  Geometry g = grid;
  g.ndim = 4;
  g.dims[3] = 3;
  D.u = Image<double>(g, no_init);
  const Vec3 col = grid.affine.block<3, 1>(0, pe.axis);
  const double a = pe.sign * readout;
  const int64_t n = grid.frame_size();
  for (int64_t k = 0, v = 0; k < grid.dims[2]; ++k)
    for (int64_t j = 0; j < grid.dims[1]; ++j)
      for (int64_t i = 0; i < grid.dims[0]; ++i, ++v)
        for (int c = 0; c < 3; ++c) D.u.data()[v + n * c] = col[c] * a * double(field(i, j, k));
  return D;
}

} // namespace voxalign
