#include "voxalign/transform/affine_io.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "voxalign/core/error.hpp"
#include "voxalign/core/file_read.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/transform/itk_hdf5.hpp"

namespace voxalign {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<double> parse_numbers(const std::string& s, const std::string& what) {
  std::istringstream in(s);
  std::vector<double> v;
  std::string tok;
  while (in >> tok) {
    char* end = nullptr;
    const double x = std::strtod(tok.c_str(), &end);
    VX_CHECK(end && *end == '\0' && std::isfinite(x), IoError, what, ": '", tok, "' is not a finite number");
    v.push_back(x);
  }
  return v;
}

Eigen::Matrix3d rot_x(double a) {
  Eigen::Matrix3d r;
  r << 1, 0, 0, 0, std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a);
  return r;
}
Eigen::Matrix3d rot_y(double a) {
  Eigen::Matrix3d r;
  r << std::cos(a), 0, std::sin(a), 0, 1, 0, -std::sin(a), 0, std::cos(a);
  return r;
}
Eigen::Matrix3d rot_z(double a) {
  Eigen::Matrix3d r;
  r << std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1;
  return r;
}
Eigen::Matrix3d versor_matrix(double x, double y, double z, const std::string& what) {
  const double n2 = x * x + y * y + z * z;
  VX_CHECK(n2 <= 1.0 + 1e-12, IoError, what, ": versor parameters have norm > 1");
  const double w = std::sqrt(std::max(0.0, 1.0 - n2));
  return Eigen::Quaterniond(w, x, y, z).toRotationMatrix();
}

// One ITK transform (LPS) as a 4x4 matrix: y = M (x - c) + t + c.
Mat4 itk_matrix_offset(const Eigen::Matrix3d& M, const Vec3& t, const Vec3& c) {
  Mat4 A = Mat4::Identity();
  A.block<3, 3>(0, 0) = M;
  A.block<3, 1>(0, 3) = t + c - M * c;
  return A;
}

} // namespace

Mat4 itk_transform_lps(const std::string& type, const std::vector<double>& p, const std::vector<double>& f,
                       const std::string& what) {
  auto base = type.substr(0, type.find('_'));
  const bool dim3 = type.size() >= 4 && type.compare(type.size() - 4, 4, "_3_3") == 0;
  const bool dim3single = type.size() >= 2 && type.compare(type.size() - 2, 2, "_3") == 0;
  auto need = [&](size_t np, size_t nf_min) {
    VX_CHECK(p.size() == np, IoError, what, ": ", type, " needs ", np, " parameters, found ", p.size());
    VX_CHECK(f.size() >= nf_min, IoError, what, ": ", type, " needs ", nf_min, " fixed parameters, found ", f.size());
  };
  Vec3 c = Vec3::Zero();
  auto centre = [&] {
    if (f.size() >= 3) c = Vec3(f[0], f[1], f[2]);
  };
  if ((base == "AffineTransform" || base == "MatrixOffsetTransformBase") && dim3) {
    need(12, 0);
    centre();
    Eigen::Matrix3d M;
    M << p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8];
    return itk_matrix_offset(M, Vec3(p[9], p[10], p[11]), c);
  }
  if (base == "Euler3DTransform" && dim3single) {
    need(6, 3);
    centre();
    const bool zyx = f.size() >= 4 && f[3] != 0.0;
    const Eigen::Matrix3d R = zyx ? Eigen::Matrix3d(rot_z(p[2]) * rot_y(p[1]) * rot_x(p[0]))
                                  : Eigen::Matrix3d(rot_z(p[2]) * rot_x(p[0]) * rot_y(p[1]));
    return itk_matrix_offset(R, Vec3(p[3], p[4], p[5]), c);
  }
  if (base == "VersorRigid3DTransform" && dim3single) {
    need(6, 3);
    centre();
    return itk_matrix_offset(versor_matrix(p[0], p[1], p[2], what), Vec3(p[3], p[4], p[5]), c);
  }
  if (base == "Similarity3DTransform" && dim3single) {
    need(7, 3);
    centre();
    return itk_matrix_offset(p[6] * versor_matrix(p[0], p[1], p[2], what), Vec3(p[3], p[4], p[5]), c);
  }
  if (base == "TranslationTransform" && dim3single) {
    need(3, 0);
    return itk_matrix_offset(Eigen::Matrix3d::Identity(), Vec3(p[0], p[1], p[2]), c);
  }
  if (base == "IdentityTransform" && dim3single) return Mat4::Identity();
  throw IoError(what + ": unsupported ITK transform type '" + type +
                "' (supported: AffineTransform, MatrixOffsetTransformBase, Euler3DTransform, "
                "VersorRigid3DTransform, Similarity3DTransform, TranslationTransform, 3D)");
}

namespace {

Mat4 read_plain_matrix(const std::string& text, const std::string& what) {
  std::string stripped;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto h = line.find('#');
    if (h != std::string::npos) line = line.substr(0, h);
    for (char& ch : line)
      if (ch == ',' || ch == '[' || ch == ']' || ch == ';') ch = ' ';
    stripped += line + "\n";
  }
  const std::vector<double> v = parse_numbers(stripped, what);
  VX_CHECK(v.size() == 16 || v.size() == 12, IoError, what, ": expected a 4x4 matrix (16 numbers), found ", v.size(),
           " numbers");
  Mat4 A = Mat4::Identity();
  for (size_t i = 0; i < v.size(); ++i) A(int(i / 4), int(i % 4)) = v[i];
  VX_CHECK(std::abs(A(3, 0)) < 1e-9 && std::abs(A(3, 1)) < 1e-9 && std::abs(A(3, 2)) < 1e-9 &&
               std::abs(A(3, 3) - 1.0) < 1e-9,
           IoError, what, ": the last row of an affine matrix must be 0 0 0 1");
  return A;
}

// MATLAB v4 binary file as written by ITK's MatlabTransformIO (ANTs' default .mat output).
Mat4 read_itk_mat(const std::string& bytes, const std::string& what) {
  size_t pos = 0;
  std::vector<double> params, fixed;
  std::string type;
  while (pos + 20 <= bytes.size()) {
    int32_t hdr[5];
    std::memcpy(hdr, bytes.data() + pos, 20);
    pos += 20;
    const int32_t mopt = hdr[0], mrows = hdr[1], ncols = hdr[2], namelen = hdr[4];
    VX_CHECK(mopt == 0 || mopt == 10, IoError, what,
             ": not a little-endian MATLAB v4 file of doubles/floats (ITK .mat transform)");
    VX_CHECK(mrows > 0 && ncols > 0 && namelen > 0 && mrows * int64_t(ncols) < 1000, IoError, what,
             ": malformed MATLAB v4 record");
    VX_CHECK(pos + size_t(namelen) <= bytes.size(), IoError, what, ": truncated file");
    std::string name(bytes.data() + pos, size_t(namelen));
    name = name.c_str();
    pos += size_t(namelen);
    const size_t n = size_t(mrows) * size_t(ncols), esz = mopt == 0 ? 8 : 4;
    VX_CHECK(pos + n * esz <= bytes.size(), IoError, what, ": truncated file");
    std::vector<double> vals(n);
    for (size_t i = 0; i < n; ++i) {
      if (esz == 8) std::memcpy(&vals[i], bytes.data() + pos + 8 * i, 8);
      else {
        float fl;
        std::memcpy(&fl, bytes.data() + pos + 4 * i, 4);
        vals[i] = fl;
      }
      VX_CHECK(std::isfinite(vals[i]), IoError, what, ": '", name.c_str(), "' holds a value that is not finite (",
               vals[i], ")");
    }
    pos += n * esz;
    if (name == "fixed") fixed = vals;
    else {
      type = name;
      params = vals;
    }
  }
  VX_CHECK(!type.empty(), IoError, what, ": no transform found in the .mat file");
  return lps_ras_flip(itk_transform_lps(type, params, fixed, what));
}

} // namespace

bool name_ends_with(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) != suffix[i]) return false;
  return true;
}

Mat4 lps_ras_flip(const Mat4& m) {
  Mat4 F = Mat4::Identity();
  F(0, 0) = F(1, 1) = -1;
  return F * m * F;
}

Mat4 compose_in_order(const std::vector<Mat4>& ts) {
  Mat4 A = Mat4::Identity();
  for (const Mat4& t : ts) A = t * A;
  return A;
}

Mat4 parse_itk_transform_text(const std::string& text, const std::string& what) {
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> types;
  std::vector<std::vector<double>> params, fixed;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto colon = line.find(':');
    VX_CHECK(colon != std::string::npos, IoError, what, ": unexpected line '", line, "'");
    const std::string key = trim(line.substr(0, colon)), val = trim(line.substr(colon + 1));
    if (key == "Transform") {
      types.push_back(val);
      params.emplace_back();
      fixed.emplace_back();
    } else if (key == "Parameters") {
      VX_CHECK(!types.empty(), IoError, what, ": Parameters before any Transform line");
      params.back() = parse_numbers(val, what);
    } else if (key == "FixedParameters") {
      VX_CHECK(!types.empty(), IoError, what, ": FixedParameters before any Transform line");
      fixed.back() = parse_numbers(val, what);
    } else {
      throw IoError(what + ": unexpected key '" + key + "'");
    }
  }
  VX_CHECK(!types.empty(), IoError, what, ": no transform found");
  size_t first = 0;
  if (types[0].rfind("CompositeTransform", 0) == 0) first = 1;
  else VX_CHECK(types.size() == 1, IoError, what, ": contains ", types.size(),
                " transforms without a CompositeTransform header");
  VX_CHECK(first < types.size(), IoError, what, ": empty CompositeTransform");
  // ITK's CompositeTransform applies the last transform of its queue first.
  Mat4 A = Mat4::Identity();
  for (size_t i = first; i < types.size(); ++i) A = A * itk_transform_lps(types[i], params[i], fixed[i], what);
  return lps_ras_flip(A);
}

namespace {

constexpr const char* kRasHeader = "# voxalign RAS pull-back";

std::string transform_bytes(const std::string& path) {
  const std::vector<unsigned char> b = read_file_bytes(path, "transform file", kMaxTransformFileBytes);
  VX_CHECK(!b.empty(), IoError, path, ": empty file");
  return std::string(b.begin(), b.end());
}


TransformFormat format_of(const std::string& path, const std::string& bytes) {
  if (bytes.rfind("\x89HDF\r\n\x1a\n", 0) == 0) return TransformFormat::ItkHdf5;
  if (bytes.find('\0') != std::string::npos) return TransformFormat::ItkBinary;
  if (bytes.find("#Insight Transform File") != std::string::npos || bytes.find("Transform:") != std::string::npos)
    return TransformFormat::ItkText;
  if (bytes.find(kRasHeader) != std::string::npos) return TransformFormat::VoxalignRas;
  if (name_ends_with(path, ".1d")) return TransformFormat::Afni;
  // AFNI writes a 3x4 matrix as one row of 12 numbers (aff12.1D); no other format does.
  std::istringstream in(bytes);
  std::string line;
  while (std::getline(in, line)) {
    const auto h = line.find('#');
    if (h != std::string::npos) line.resize(h);
    std::istringstream ls(line);
    int count = 0;
    std::string tok;
    while (ls >> tok) ++count;
    if (count == 12) return TransformFormat::Afni;
  }
  if (name_ends_with(path, ".mat")) return TransformFormat::FslFlirt;
  return TransformFormat::RasText;
}

Mat4 read_hdf5_affine(const std::string& path) {
  const TransformChain chain = read_itk_hdf5(path);
  VX_CHECK(chain.is_affine(), IoError, path,
           ": holds a displacement field, not an affine transform: give it where displacement fields are accepted "
           "(voxalign resample -t, Python resample(transform=...))");
  return chain.affine();
}

Mat4 read_transform_unchecked(const std::string& path, const Geometry* reference, const Geometry* input) {
  // HDF5 files are told by name (as ITK does) and read by libhdf5, not loaded here: fields may be large.
  if (is_hdf5_transform_name(path)) return read_hdf5_affine(path);
  VX_CHECK(!is_displacement_field_name(path), IoError, path,
           ": a displacement field (NIfTI image), not an affine transform: give it where displacement fields are "
           "accepted (voxalign resample -t, Python resample(transform=...))");
  const std::string bytes = transform_bytes(path);
  switch (format_of(path, bytes)) {
  case TransformFormat::ItkHdf5: // only under another name: read by name, as ITK does
    throw IoError(path + ": an HDF5 file under a name that does not end in .h5: ITK HDF5 transforms are told by "
                         "their extension (.h5, .hdf5, .hdf); rename it");
  case TransformFormat::ItkBinary: return read_itk_mat(bytes, path);
  case TransformFormat::ItkText: return parse_itk_transform_text(bytes, path);
  case TransformFormat::VoxalignRas:
  case TransformFormat::RasText: return read_plain_matrix(bytes, path);
  case TransformFormat::Afni:
    throw IoError(path + ": an AFNI affine matrix (12 numbers on a line / .1D), which voxalign does not read: AFNI "
                         "matrices map DICOM-order coordinates; convert it to ITK text (e.g. with c3d_affine_tool or "
                         "antsApplyTransforms' tools) or to a 4x4 RAS pull-back matrix in a .txt file");
  case TransformFormat::FslFlirt: {
    VX_CHECK(reference && input, IoError, path,
             ": an FSL FLIRT matrix (text .mat), which maps between two images' voxel grids: give it where both "
             "images are known (voxalign resample IN -t, register --init; Python read_transform(path, reference, "
             "moving)), or convert it to ITK text; ANTs' own .mat files are binary");
    const Mat4 flirt = read_plain_matrix(bytes, path);
    const double det = flirt.topLeftCorner<3, 3>().determinant();
    VX_CHECK(std::isfinite(det) && std::fabs(det) > 1e-12, IoError, path, ": the FLIRT matrix is singular");
    return fsl_to_ras_pullback(flirt, *reference, *input);
  }
  }
  throw IoError(path + ": unknown transform format");
}

} // namespace

std::string transform_format_name(TransformFormat f) {
  switch (f) {
  case TransformFormat::ItkBinary: return "ITK/ANTs binary .mat";
  case TransformFormat::ItkText: return "ITK transform text";
  case TransformFormat::VoxalignRas: return "voxalign RAS matrix";
  case TransformFormat::Afni: return "AFNI affine matrix";
  case TransformFormat::FslFlirt: return "FSL FLIRT matrix";
  case TransformFormat::RasText: return "RAS matrix text";
  case TransformFormat::ItkHdf5: return "ITK HDF5";
  }
  return "?";
}

TransformFormat transform_file_format(const std::string& path) {
  if (is_hdf5_transform_name(path)) return TransformFormat::ItkHdf5;
  return format_of(path, transform_bytes(path));
}

Mat4 read_transform(const std::string& path, const Geometry* reference, const Geometry* input) {
  const Mat4 m = read_transform_unchecked(path, reference, input);
  // Finite numbers can still compose or invert to inf/NaN (a huge ITK composite, a singular FLIRT matrix).
  VX_CHECK(m.allFinite(), IoError, path, ": the transform is not finite (overflow or a singular matrix)");
  return m;
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_output(path);
  bool ok = false;
  {
    std::ofstream f(tmp, std::ios::binary);
    if (f.good()) {
      f << text;
      f.close();
      ok = !f.fail();
    }
  }
  if (!ok) {
    discard_output(tmp);
    throw IoError(path + ": cannot write (disk full or not writable?)");
  }
  finish_output(tmp, path);
}

std::string itk_affine_text(const Mat4& ras) {
  const Mat4 lps = lps_ras_flip(ras);
  std::ostringstream o;
  o << std::setprecision(17);
  o << "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\nParameters:";
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) o << ' ' << lps(r, c);
  for (int r = 0; r < 3; ++r) o << ' ' << lps(r, 3);
  o << "\nFixedParameters: 0 0 0\n";
  return o.str();
}

void write_itk_affine(const std::string& path, const Mat4& ras) { write_text_file(path, itk_affine_text(ras)); }

namespace {
// One MATLAB v4 record of doubles as vnl_matlab_write writes a vector (ITK's MatlabTransformIO): a header
// of five little-endian int32 (type 0 = little-endian + column-wise + double, rows n, cols 1, imag 0,
// name length with its NUL), the name with its NUL, then the n doubles, little-endian.
void append_matlab_v4_vector(std::string& out, const std::string& name, const std::vector<double>& v) {
  auto put = [&out](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    if constexpr (std::endian::native == std::endian::little) out.append(reinterpret_cast<const char*>(b), n);
    else
      for (size_t i = n; i-- > 0;) out.push_back(char(b[i]));
  };
  const int32_t hdr[5] = {0, int32_t(v.size()), 1, 0, int32_t(name.size() + 1)};
  for (int32_t h : hdr) put(&h, 4);
  out.append(name.c_str(), name.size() + 1);
  for (double x : v) put(&x, 8);
}
} // namespace

std::string itk_mat_bytes(const Mat4& ras) {
  const Mat4 lps = lps_ras_flip(ras);
  std::vector<double> p;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) p.push_back(lps(r, c));
  for (int r = 0; r < 3; ++r) p.push_back(lps(r, 3));
  std::string out;
  append_matlab_v4_vector(out, "AffineTransform_double_3_3", p);
  append_matlab_v4_vector(out, "fixed", {0.0, 0.0, 0.0});
  return out;
}

void write_itk_mat(const std::string& path, const Mat4& ras) { write_text_file(path, itk_mat_bytes(ras)); }

bool is_itk_transform_name(const std::string& path) {
  return name_ends_with(path, ".txt") || name_ends_with(path, ".tfm") || name_ends_with(path, ".mat") ||
         is_hdf5_transform_name(path);
}

void check_itk_transform_name(const std::string& path, const std::string& option) {
  VX_CHECK(is_itk_transform_name(path), InvalidArgument, option, ": ", path,
           ": name an ITK transform file .txt or .tfm (ITK text), .mat (ITK/ANTs binary MATLAB v4) or .h5 (ITK HDF5)");
}

void write_itk_transform(const std::string& path, const Mat4& ras, const std::string& option) {
  check_itk_transform_name(path, option);
  if (name_ends_with(path, ".mat")) write_itk_mat(path, ras);
  else if (is_hdf5_transform_name(path)) write_itk_hdf5(path, ras);
  else write_itk_affine(path, ras);
}

std::string matrix_text(const Mat4& m) {
  std::ostringstream o;
  o << std::setprecision(17);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) o << (c ? " " : "") << (m(r, c) == 0.0 ? 0.0 : m(r, c));
    o << "\n";
  }
  return o.str();
}

void write_ras_matrix(const std::string& path, const Mat4& ras) {
  write_text_file(path, std::string(kRasHeader) + " (output/fixed world mm -> input/moving world mm)\n" +
                            matrix_text(ras));
}

Mat4 fsl_scaled_voxel_matrix(const Geometry& g) {
  const Vec3 sp = g.spacing();
  Mat4 S = Mat4::Identity();
  for (int d = 0; d < 3; ++d) S(d, d) = sp[d];
  // FSL's scaled-voxel space is radiological: the i axis is flipped when the voxel->world matrix
  // has a positive determinant (neurological storage).
  if (g.affine.topLeftCorner<3, 3>().determinant() > 0) {
    S(0, 0) = -sp[0];
    S(0, 3) = double(g.dims[0] - 1) * sp[0];
  }
  return S;
}

Mat4 fsl_to_ras_pullback(const Mat4& flirt, const Geometry& reference, const Geometry& input) {
  // FLIRT: x_ref = M x_in in scaled-voxel mm. World pull-back T: w_in = T w_ref.
  const Mat4 Sr = fsl_scaled_voxel_matrix(reference), Si = fsl_scaled_voxel_matrix(input);
  return input.affine * Si.inverse() * flirt.inverse() * Sr * reference.affine.inverse();
}

Mat4 ras_pullback_to_fsl(const Mat4& ras, const Geometry& reference, const Geometry& input) {
  const Mat4 Sr = fsl_scaled_voxel_matrix(reference), Si = fsl_scaled_voxel_matrix(input);
  return Sr * reference.affine.inverse() * ras.inverse() * input.affine * Si.inverse();
}

void write_fsl_matrix(const std::string& path, const Mat4& ras, const Geometry& reference, const Geometry& input) {
  VX_CHECK(name_ends_with(path, ".mat"), InvalidArgument, path,
           ": an FSL FLIRT matrix file must be named .mat (how FSL and voxalign tell it from a RAS matrix)");
  write_text_file(path, matrix_text(ras_pullback_to_fsl(ras, reference, input)));
}

} // namespace voxalign
