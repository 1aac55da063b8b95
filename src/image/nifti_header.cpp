#include "nifti_header.hpp"

#include <nifti2_io.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "voxalign/core/error.hpp"

static_assert(sizeof(nifti_1_header) == 348 && sizeof(nifti_2_header) == 540);

namespace voxalign::nifti_detail {

namespace {

// Both versions' fields in one shape, so that one set of checks serves both.
struct Fields {
  int version = 1;
  int64_t dim[8]{};
  double pixdim[8]{};
  double vox_offset = 0;
  int datatype = 0;
  double scl_slope = 0, scl_inter = 0;
  int qform_code = 0, sform_code = 0;
  double quatern[6]{};
  double srow[3][4]{};
  NiftiMeta meta;
};

template <class H> void common_fields(const H& h, Fields& f) {
  for (int i = 0; i < 8; ++i) f.dim[i] = int64_t(h.dim[i]), f.pixdim[i] = double(h.pixdim[i]);
  f.datatype = h.datatype;
  f.scl_slope = h.scl_slope, f.scl_inter = h.scl_inter;
  f.qform_code = h.qform_code, f.sform_code = h.sform_code;
  const double q[6] = {double(h.quatern_b), double(h.quatern_c), double(h.quatern_d),
                       double(h.qoffset_x), double(h.qoffset_y), double(h.qoffset_z)};
  for (int i = 0; i < 6; ++i) f.quatern[i] = q[i];
  for (int c = 0; c < 4; ++c)
    f.srow[0][c] = h.srow_x[c], f.srow[1][c] = h.srow_y[c], f.srow[2][c] = h.srow_z[c];
  NiftiMeta& m = f.meta;
  m.intent_code = h.intent_code;
  m.intent_p[0] = h.intent_p1, m.intent_p[1] = h.intent_p2, m.intent_p[2] = h.intent_p3;
  m.intent_name.assign(h.intent_name, strnlen(h.intent_name, sizeof(h.intent_name)));
  m.descrip.assign(h.descrip, strnlen(h.descrip, sizeof(h.descrip)));
  m.aux_file.assign(h.aux_file, strnlen(h.aux_file, sizeof(h.aux_file)));
  m.dim_info = static_cast<unsigned char>(h.dim_info);
  m.slice_code = static_cast<unsigned char>(h.slice_code);
  m.slice_start = h.slice_start, m.slice_end = h.slice_end;
  m.slice_duration = h.slice_duration, m.toffset = h.toffset;
  m.cal_min = h.cal_min, m.cal_max = h.cal_max;
  m.xyz_units = XYZT_TO_SPACE(h.xyzt_units);
  m.time_units = XYZT_TO_TIME(h.xyzt_units);
}

const char* unsupported_type_name(int code) {
  switch (code) {
  case DT_BINARY: return "binary (1 bit)";
  case NIFTI_TYPE_COMPLEX64: return "complex64";
  case NIFTI_TYPE_COMPLEX128: return "complex128";
  case NIFTI_TYPE_COMPLEX256: return "complex256";
  case NIFTI_TYPE_RGB24: return "RGB24";
  case NIFTI_TYPE_RGBA32: return "RGBA32";
  case NIFTI_TYPE_FLOAT128: return "float128";
  default: return nullptr;
  }
}

bool from_code(int code, DataType& t) {
  for (DataType d : {DataType::UInt8, DataType::Int8, DataType::Int16, DataType::UInt16, DataType::Int32,
                     DataType::UInt32, DataType::Int64, DataType::UInt64, DataType::Float32, DataType::Float64})
    if (nifti_code(d) == code) return t = d, true;
  return false;
}

// nibabel's quaternion -> rotation (fillpositive, then quat2mat). w^2 = 1 - (b^2 + c^2 + d^2) is
// computed in the header's precision, as nibabel does: in float32 a nearly-unit (b, c, d) of a
// NIfTI-1 file gives w = 0 exactly, where double arithmetic would make a 1e-4 rad rotation out of
// rounding. Refuses what nibabel refuses: w^2 below -3 eps.
Eigen::Matrix3d quat_to_rot(double b, double c, double d, bool single, const std::string& path) {
  const double w2 = single ? double(1.0f - (float(b) * float(b) + float(c) * float(c) + float(d) * float(d)))
                           : 1.0 - (b * b + c * c + d * d);
  const double eps = single ? double(std::numeric_limits<float>::epsilon()) : std::numeric_limits<double>::epsilon();
  VX_CHECK(w2 >= -3.0 * eps, IoError, path, ": invalid qform quaternion (b^2 + c^2 + d^2 = ", 1.0 - w2, " > 1)");
  const double a = w2 < 0 ? 0.0 : std::sqrt(w2);
  const double nq = a * a + b * b + c * c + d * d;
  if (nq < std::numeric_limits<double>::epsilon()) return Eigen::Matrix3d::Identity();
  const double s = 2.0 / nq;
  const double X = b * s, Y = c * s, Z = d * s;
  const double wX = a * X, wY = a * Y, wZ = a * Z;
  const double xX = b * X, xY = b * Y, xZ = b * Z;
  const double yY = c * Y, yZ = c * Z, zZ = d * Z;
  Eigen::Matrix3d R;
  R << 1.0 - (yY + zZ), xY - wZ, xZ + wY, xY + wZ, 1.0 - (xX + zZ), yZ - wX, xZ - wY, yZ + wX, 1.0 - (xX + yY);
  return R;
}

// nibabel's rule: sform if sform_code > 0, else qform if qform_code > 0, else the fall-back
// (pixdim scaling, x flipped, origin at the centre). Whichever is used must be finite and invertible:
// nifti_clib "repairs" a bad qform, nibabel returns NaN; both give a silently wrong image.
Mat4 world_matrix(const Fields& f, int ndim, const std::string& path) {
  Mat4 A = Mat4::Identity();
  const char* which;
  if (f.sform_code > 0) {
    which = "sform";
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) A(r, c) = f.srow[r][c];
  } else if (f.qform_code > 0) {
    which = "qform";
    for (int i = 0; i < 6; ++i)
      VX_CHECK(std::isfinite(f.quatern[i]), IoError, path, ": the qform is not finite (quaternion or qoffset)");
    for (int i = 1; i <= 3; ++i)
      VX_CHECK(std::isfinite(f.pixdim[i]), IoError, path, ": the qform is not finite (pixdim[", i, "] = ",
               f.pixdim[i], ")");
    const Eigen::Matrix3d R = quat_to_rot(f.quatern[0], f.quatern[1], f.quatern[2], f.version == 1, path);
    Eigen::Vector3d zooms(std::fabs(f.pixdim[1]), std::fabs(f.pixdim[2]), std::fabs(f.pixdim[3]));
    zooms[2] *= f.pixdim[0] < 0 ? -1.0 : 1.0;
    A.block<3, 3>(0, 0) = R * zooms.asDiagonal();
    for (int r = 0; r < 3; ++r) A(r, 3) = f.quatern[3 + r];
  } else {
    which = "fall-back matrix (from pixdim; no sform or qform)";
    const int nd = std::min(ndim, 3);
    for (int d = 0; d < 3; ++d) {
      const double n = d < nd ? double(f.dim[d + 1]) : 1.0;
      double z = d < nd ? f.pixdim[d + 1] : 1.0;
      if (d == 0) z = -z;
      A(d, d) = z;
      A(d, 3) = -(n - 1) / 2.0 * z;
    }
  }
  VX_CHECK(A.allFinite(), IoError, path, ": the ", which, " is not finite");
  const double det = A.block<3, 3>(0, 0).determinant();
  VX_CHECK(std::isfinite(det) && std::fabs(det) > 1e-12, IoError, path, ": the ", which,
           " is singular (a voxel size of 0?)");
  return A;
}

// Extensions: records of (esize, ecode, data) after the 4-byte flag, up to the data (single file)
// or the end of the .hdr. A record that does not fit is a corrupt header: refused, as nibabel does.
std::vector<NiftiExtension> read_extensions(const unsigned char* p, size_t n, size_t start, size_t end, bool swap,
                                            const std::string& path) {
  std::vector<NiftiExtension> out;
  if (start + 4 > n || p[start] == 0) return out;
  end = std::min(end, n);
  size_t pos = start + 4;
  while (pos + 8 <= end) {
    int32_t esize, ecode;
    std::memcpy(&esize, p + pos, 4);
    std::memcpy(&ecode, p + pos + 4, 4);
    if (swap) esize = int32_t(__builtin_bswap32(uint32_t(esize))), ecode = int32_t(__builtin_bswap32(uint32_t(ecode)));
    VX_CHECK(esize >= 8 && esize % 4 == 0 && size_t(esize) <= end - pos, IoError, path,
             ": corrupt header extension (esize ", esize, " at byte ", pos, ")");
    out.push_back({ecode, std::vector<unsigned char>(p + pos + 8, p + pos + size_t(esize))});
    pos += size_t(esize);
  }
  return out;
}

} // namespace

int nifti_code(DataType t) {
  switch (t) {
  case DataType::UInt8: return NIFTI_TYPE_UINT8;
  case DataType::Int8: return NIFTI_TYPE_INT8;
  case DataType::Int16: return NIFTI_TYPE_INT16;
  case DataType::UInt16: return NIFTI_TYPE_UINT16;
  case DataType::Int32: return NIFTI_TYPE_INT32;
  case DataType::UInt32: return NIFTI_TYPE_UINT32;
  case DataType::Int64: return NIFTI_TYPE_INT64;
  case DataType::UInt64: return NIFTI_TYPE_UINT64;
  case DataType::Float32: return NIFTI_TYPE_FLOAT32;
  case DataType::Float64: return NIFTI_TYPE_FLOAT64;
  }
  return 0;
}

int nifti_size(DataType t) {
  switch (t) {
  case DataType::UInt8: case DataType::Int8: return 1;
  case DataType::Int16: case DataType::UInt16: return 2;
  case DataType::Int32: case DataType::UInt32: case DataType::Float32: return 4;
  case DataType::Int64: case DataType::UInt64: case DataType::Float64: return 8;
  }
  return 0;
}

ParsedHeader parse_header(const unsigned char* p, size_t n, const std::string& path, bool pair, bool vector) {
  VX_CHECK(n >= 348, IoError, path, ": not a valid NIfTI file (shorter than a header: ", n, " bytes)");
  ParsedHeader out;
  int32_t sz;
  std::memcpy(&sz, p, 4);
  out.swapped = sz != 348 && sz != 540;
  if (out.swapped) sz = int32_t(__builtin_bswap32(uint32_t(sz)));
  VX_CHECK(sz == 348 || sz == 540, IoError, path, ": not a valid NIfTI file (header size field is not 348 or 540)");
  Fields f;
  std::string magic;
  if (sz == 348) {
    nifti_1_header h;
    std::memcpy(&h, p, sizeof h);
    if (out.swapped) nifti_swap_as_nifti1(&h);
    magic.assign(h.magic, strnlen(h.magic, 4));
    VX_CHECK(magic == "n+1" || magic == "ni1", IoError, path,
             ": ANALYZE 7.5 files are not supported (no reliable orientation); convert to NIfTI");
    common_fields(h, f);
    f.version = 1;
    f.vox_offset = h.vox_offset;
    f.meta.dim_info = static_cast<unsigned char>(h.dim_info);
    out.header_size = 348;
  } else {
    VX_CHECK(n >= 540, IoError, path, ": not a valid NIfTI file (truncated NIfTI-2 header)");
    nifti_2_header h;
    std::memcpy(&h, p, sizeof h);
    if (out.swapped) nifti_swap_as_nifti2(&h);
    magic.assign(h.magic, strnlen(h.magic, 4));
    VX_CHECK((magic == "n+2" || magic == "ni2") && std::memcmp(h.magic + 3, "\0\r\n\032\n", 5) == 0, IoError, path,
             ": not a valid NIfTI-2 file (bad magic)");
    common_fields(h, f);
    f.version = 2;
    f.vox_offset = double(h.vox_offset);
    out.header_size = 540;
  }
  out.info.version = sz == 348 ? 1 : 2;
  out.single_file = magic[1] == '+';
  VX_CHECK(out.single_file != pair, IoError, path, ": the header's magic '", magic, "' says ",
           out.single_file ? "single file (.nii)" : ".hdr/.img pair", " but the file name says ",
           pair ? ".hdr/.img pair" : "single file (.nii)");

  // Dimensions: nifti_clib silently turns non-positive ones into 1.
  const int64_t ndim = f.dim[0];
  VX_CHECK(ndim >= 1 && ndim <= 7, IoError, path, ": invalid number of dimensions dim[0] = ", ndim);
  for (int d = 1; d <= ndim; ++d)
    VX_CHECK(f.dim[d] >= 1, IoError, path, ": dimension ", d, " is ", f.dim[d], " (must be positive)");
  // A vector image (ITK's layout: dim[4] = 1, the components in dim[5]) only where the caller asks for one.
  if (vector)
    VX_CHECK(ndim == 5 && f.dim[4] == 1, IoError, path, ": not a vector image (ITK/ANTs layout X x Y x Z x 1 x C, ",
             "dim[0] = 5, dim[4] = 1); found dim[0] = ", ndim, ndim >= 4 ? ", dim[4] = " + std::to_string(f.dim[4]) : "");
  for (int d = vector ? 6 : 5; d <= ndim; ++d)
    VX_CHECK(f.dim[d] == 1, IoError, path, ": images with more than 4 dimensions are not supported (dim[", d,
             "] = ", f.dim[d], ")");
  Geometry& g = out.info.geometry;
  g.ndim = int(std::min<int64_t>(ndim, 4));
  for (int d = 0; d < 4; ++d) g.dims[d] = d < g.ndim ? f.dim[d + 1] : 1;
  if (vector) g.dims[3] = f.dim[5];
  try {
    validate_dims(g.dims, g.ndim);
  } catch (const Error& e) {
    throw IoError(path + ": " + e.what());
  }

  DataType dt;
  if (!from_code(f.datatype, dt)) {
    const char* name = unsupported_type_name(f.datatype);
    if (name) throw IoError(path + ": unsupported datatype " + name + " (code " + std::to_string(f.datatype) + ")");
    throw IoError(path + ": invalid datatype code " + std::to_string(f.datatype));
  }
  out.info.dtype = dt;
  out.nbyper = nifti_size(dt);
  VX_CHECK(!__builtin_mul_overflow(g.size(), int64_t(out.nbyper), &out.nbytes), IoError, path,
           ": dimensions overflow (too many bytes)");

  // vox_offset: bytes (a fraction is dropped, as nibabel does), not inside the header. In a single
  // file 0 means "right after the header and extension flag" (352 / 544), as nibabel reads it.
  const double vo = f.vox_offset;
  VX_CHECK(std::isfinite(vo) && vo >= 0 && vo < 9.2e18, IoError, path, ": invalid vox_offset ", vo,
           " (must be a number of bytes >= 0)");
  int64_t off = int64_t(vo);
  if (out.single_file) {
    const int64_t min_off = int64_t(out.header_size) + 4;
    if (off == 0) off = min_off;
    VX_CHECK(off >= min_off, IoError, path, ": vox_offset ", off, " is inside the header (must be 0 or >= ", min_off,
             " in a single-file NIfTI-", out.info.version, ")");
  }
  int64_t end;
  VX_CHECK(!__builtin_add_overflow(off, out.nbytes, &end), IoError, path, ": vox_offset ", off,
           " plus the data size overflows");
  out.vox_offset = off;

  // Scaling, as nibabel: a slope of 0 or not finite means none; a valid slope needs a finite intercept.
  if (f.scl_slope == 0 || !std::isfinite(f.scl_slope)) {
    out.info.scl_slope = 1.0, out.info.scl_inter = 0.0;
  } else {
    VX_CHECK(std::isfinite(f.scl_inter), IoError, path, ": valid scl_slope ", f.scl_slope, " but invalid scl_inter ",
             f.scl_inter);
    out.info.scl_slope = f.scl_slope, out.info.scl_inter = f.scl_inter;
  }

  g.affine = world_matrix(f, g.ndim, path);
  out.info.sform_code = f.sform_code;
  out.info.qform_code = f.qform_code;
  // Geometry::time_step is in seconds: pixdim[4] in ms or us is converted (the unit is kept in meta).
  NiftiMeta& m = f.meta;
  const double tscale = m.time_units == NIFTI_UNITS_MSEC ? 1e-3 : m.time_units == NIFTI_UNITS_USEC ? 1e-6 : 1.0;
  const double tr = f.pixdim[4];
  g.time_step = (ndim >= 4 && std::isfinite(tr) && tr > 0) ? tr * tscale : 1.0;

  m.grid = g;
  m.sform_code = f.sform_code, m.qform_code = f.qform_code;
  for (int i = 0; i < 6; ++i) m.quatern[i] = f.quatern[i];
  m.qfac = f.pixdim[0] < 0 ? -1.0 : 1.0;
  for (int i = 0; i < 4; ++i) m.pixdim[i] = f.pixdim[i + 1];
  m.time_step_read = g.time_step;
  // Only when all of them are at hand (the reader asks for them when it needs them).
  const size_t ext_end = out.single_file ? size_t(off) : n;
  if (ext_end <= n) m.extensions = read_extensions(p, n, out.header_size, ext_end, out.swapped, path);
  out.info.meta = std::move(m);
  return out;
}

namespace {

template <class H> void fill_common(H& h, const Geometry& g, DataType dtype, const NiftiMeta* meta, int xform_code,
                                    bool same_grid) {
  h.datatype = short(nifti_code(dtype));
  h.bitpix = short(8 * nifti_size(dtype));
  h.dim[0] = g.ndim;
  for (int d = 0; d < 7; ++d) h.dim[d + 1] = d < 4 ? g.dims[d] : 1;
  if (meta && meta->intent_code == NIFTI_INTENT_VECTOR && g.ndim == 4) {
    // A vector image in ITK's layout (displacement fields): X x Y x Z x 1 x C, as read_nifti_vector reads it.
    h.dim[0] = 5;
    h.dim[4] = 1;
    h.dim[5] = g.dims[3];
  }
  nifti_dmat44 S;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) S.m[r][c] = g.affine(r, c);
  double q[6], dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(S, &q[0], &q[1], &q[2], &q[3], &q[4], &q[5], &dx, &dy, &dz, &qfac);
  const Vec3 sp = g.spacing();
  double pix[3] = {sp[0], sp[1], sp[2]};
  int scode = xform_code, qcode = xform_code;
  int xyz_units = NIFTI_UNITS_MM, time_units = NIFTI_UNITS_SEC;
  if (meta) {
    time_units = meta->time_units;
    if (same_grid) {
      // The grid the header came with: its own xforms, exactly as read (the qform may differ from
      // the sform, e.g. scanner vs MNI space), and its own units.
      scode = meta->sform_code, qcode = meta->qform_code;
      xyz_units = meta->xyz_units;
      if (qcode > 0) {
        for (int i = 0; i < 6; ++i) q[i] = meta->quatern[i];
        qfac = meta->qfac;
        for (int i = 0; i < 3; ++i) pix[i] = std::fabs(meta->pixdim[i]);
      } else if (scode == 0) {
        for (int i = 0; i < 3; ++i) pix[i] = meta->pixdim[i]; // the fall-back matrix is made of these
      }
    } else {
      // Another grid in the same space: the codes still name the space.
      const int code = meta->sform_code > 0 ? meta->sform_code : meta->qform_code;
      scode = qcode = code > 0 ? code : xform_code;
    }
  }
  h.sform_code = short(scode), h.qform_code = short(qcode);
  for (int c = 0; c < 4; ++c) h.srow_x[c] = g.affine(0, c), h.srow_y[c] = g.affine(1, c), h.srow_z[c] = g.affine(2, c);
  h.quatern_b = q[0], h.quatern_c = q[1], h.quatern_d = q[2];
  h.qoffset_x = q[3], h.qoffset_y = q[4], h.qoffset_z = q[5];
  h.pixdim[0] = qfac < 0 ? -1 : 1;
  for (int i = 0; i < 3; ++i) h.pixdim[i + 1] = pix[i];
  for (int i = 4; i < 8; ++i) h.pixdim[i] = 0;
  if (g.ndim >= 4) {
    const double tscale = time_units == NIFTI_UNITS_MSEC ? 1e3 : time_units == NIFTI_UNITS_USEC ? 1e6 : 1.0;
    // An unknown TR (0 in the file, 1 s in Geometry) stays unknown.
    h.pixdim[4] = meta && g.time_step == meta->time_step_read ? meta->pixdim[3] : g.time_step * tscale;
  }
  h.xyzt_units = char(SPACE_TIME_TO_XYZT(xyz_units, time_units));
  h.scl_slope = 1.0, h.scl_inter = 0.0;
  if (!meta) {
    std::snprintf(h.descrip, sizeof h.descrip, "voxalign");
    return;
  }
  h.intent_code = short(meta->intent_code);
  h.intent_p1 = meta->intent_p[0], h.intent_p2 = meta->intent_p[1], h.intent_p3 = meta->intent_p[2];
  std::strncpy(h.intent_name, meta->intent_name.c_str(), sizeof h.intent_name);
  std::strncpy(h.descrip, meta->descrip.c_str(), sizeof h.descrip);
  std::strncpy(h.aux_file, meta->aux_file.c_str(), sizeof h.aux_file);
  h.cal_min = meta->cal_min, h.cal_max = meta->cal_max;
  h.toffset = meta->toffset;
  if (same_grid) {
    h.dim_info = char(meta->dim_info);
    h.slice_code = char(meta->slice_code);
    h.slice_start = meta->slice_start, h.slice_end = meta->slice_end;
    h.slice_duration = meta->slice_duration;
  }
}

} // namespace

std::vector<unsigned char> build_header(const Geometry& g, DataType dtype, const NiftiMeta* meta, int xform_code,
                                        bool big, const std::string& path) {
  const bool same_grid = meta && meta->grid.same_grid(g, kSameGridTol);
  std::vector<unsigned char> ext;
  if (meta && same_grid) {
    for (const NiftiExtension& e : meta->extensions) {
      // esize: 8 bytes of (esize, ecode) plus the data, padded to a multiple of 16 as the standard asks.
      const size_t esize = (e.data.size() + 8 + 15) / 16 * 16;
      VX_CHECK(esize <= size_t(INT32_MAX), IoError, path, ": a header extension is too large");
      const size_t at = ext.size();
      ext.resize(at + esize, 0);
      const int32_t sz = int32_t(esize), code = e.code;
      std::memcpy(ext.data() + at, &sz, 4);
      std::memcpy(ext.data() + at + 4, &code, 4);
      if (!e.data.empty()) std::memcpy(ext.data() + at + 8, e.data.data(), e.data.size());
    }
  }
  const size_t hsize = big ? 540 : 348;
  std::vector<unsigned char> out(hsize + 4 + ext.size(), 0);
  if (big) {
    nifti_2_header h{};
    h.sizeof_hdr = 540;
    std::memcpy(h.magic, "n+2\0\r\n\032\n", 8);
    fill_common(h, g, dtype, meta, xform_code, same_grid);
    h.vox_offset = int64_t(out.size());
    std::memcpy(out.data(), &h, sizeof h);
  } else {
    nifti_1_header h{};
    h.sizeof_hdr = 348;
    std::memcpy(h.magic, "n+1", 4);
    h.regular = 'r';
    fill_common(h, g, dtype, meta, xform_code, same_grid);
    h.vox_offset = float(out.size());
    std::memcpy(out.data(), &h, sizeof h);
  }
  if (!ext.empty()) {
    out[hsize] = 1;
    std::memcpy(out.data() + hsize + 4, ext.data(), ext.size());
  }
  return out;
}

} // namespace voxalign::nifti_detail

namespace voxalign {

NiftiMeta meta_on_grid(const NiftiMeta& content, const NiftiMeta& grid) {
  NiftiMeta m = content;
  m.grid = grid.grid;
  m.sform_code = grid.sform_code, m.qform_code = grid.qform_code;
  for (int i = 0; i < 6; ++i) m.quatern[i] = grid.quatern[i];
  m.qfac = grid.qfac;
  for (int i = 0; i < 3; ++i) m.pixdim[i] = grid.pixdim[i];
  m.xyz_units = grid.xyz_units;
  if (!content.grid.same_grid(grid.grid, nifti_detail::kSameGridTol)) {
    m.dim_info = 0, m.slice_code = 0, m.slice_start = 0, m.slice_end = 0, m.slice_duration = 0;
    m.extensions.clear();
  }
  return m;
}

} // namespace voxalign
