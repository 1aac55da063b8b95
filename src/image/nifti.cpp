#include "voxalign/image/nifti.hpp"

#include <nifti2_io.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <unistd.h>
#include <zlib.h>
#include <libdeflate.h>

#include "voxalign/core/error.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/core/parallel.hpp"

namespace fs = std::filesystem;

namespace voxalign {

DataType parse_dtype(const std::string& s) {
  static const std::pair<const char*, DataType> names[] = {
      {"uint8", DataType::UInt8},   {"int8", DataType::Int8},       {"int16", DataType::Int16},
      {"uint16", DataType::UInt16}, {"int32", DataType::Int32},     {"uint32", DataType::UInt32},
      {"int64", DataType::Int64},   {"uint64", DataType::UInt64},   {"float32", DataType::Float32},
      {"float64", DataType::Float64}, {"float", DataType::Float32}, {"double", DataType::Float64}};
  for (auto& [n, t] : names)
    if (s == n) return t;
  throw InvalidArgument("unknown data type '" + s +
                        "' (use uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32 or float64)");
}

std::string dtype_name(DataType t) {
  switch (t) {
  case DataType::UInt8: return "uint8";
  case DataType::Int8: return "int8";
  case DataType::Int16: return "int16";
  case DataType::UInt16: return "uint16";
  case DataType::Int32: return "int32";
  case DataType::UInt32: return "uint32";
  case DataType::Int64: return "int64";
  case DataType::UInt64: return "uint64";
  case DataType::Float32: return "float32";
  case DataType::Float64: return "float64";
  }
  return "?";
}

namespace {

int to_nifti_code(DataType t) {
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

bool from_nifti_code(int code, DataType& t) {
  switch (code) {
  case NIFTI_TYPE_UINT8: t = DataType::UInt8; return true;
  case NIFTI_TYPE_INT8: t = DataType::Int8; return true;
  case NIFTI_TYPE_INT16: t = DataType::Int16; return true;
  case NIFTI_TYPE_UINT16: t = DataType::UInt16; return true;
  case NIFTI_TYPE_INT32: t = DataType::Int32; return true;
  case NIFTI_TYPE_UINT32: t = DataType::UInt32; return true;
  case NIFTI_TYPE_INT64: t = DataType::Int64; return true;
  case NIFTI_TYPE_UINT64: t = DataType::UInt64; return true;
  case NIFTI_TYPE_FLOAT32: t = DataType::Float32; return true;
  case NIFTI_TYPE_FLOAT64: t = DataType::Float64; return true;
  default: return false;
  }
}

struct NimDeleter {
  void operator()(nifti_image* n) const { nifti_image_free(n); }
};
using NimPtr = std::unique_ptr<nifti_image, NimDeleter>;

void quiet_nifti() {
  static std::atomic<bool> done{false};
  if (!done.exchange(true)) nifti_set_debug_level(0);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// nibabel's quaternion -> rotation (quat2mat after fillpositive).
Eigen::Matrix3d nibabel_quat_to_rot(double b, double c, double d) {
  double w2 = 1.0 - (b * b + c * c + d * d);
  double a = w2 < 0 ? 0.0 : std::sqrt(w2);
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

Mat4 nibabel_affine(const nifti_image* nim) {
  Mat4 A = Mat4::Identity();
  if (nim->sform_code > 0) {
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) A(r, c) = nim->sto_xyz.m[r][c];
    return A;
  }
  if (nim->qform_code > 0) {
    const Eigen::Matrix3d R = nibabel_quat_to_rot(nim->quatern_b, nim->quatern_c, nim->quatern_d);
    Eigen::Vector3d zooms(std::fabs(nim->pixdim[1]), std::fabs(nim->pixdim[2]), std::fabs(nim->pixdim[3]));
    zooms[2] *= nim->qfac < 0 ? -1.0 : 1.0;
    A.block<3, 3>(0, 0) = R * zooms.asDiagonal();
    A(0, 3) = nim->qoffset_x;
    A(1, 3) = nim->qoffset_y;
    A(2, 3) = nim->qoffset_z;
    return A;
  }
  // nibabel's shape_zoom_affine(shape, zooms, x_flip=True) on the first min(ndim, 3) axes.
  const int nd = static_cast<int>(std::min<int64_t>(nim->ndim, 3));
  for (int d = 0; d < 3; ++d) {
    const double n = d < nd ? double(nim->dim[d + 1]) : 1.0;
    double z = d < nd ? double(nim->pixdim[d + 1]) : 1.0;
    if (d == 0) z = -z;
    A(d, d) = z;
    A(d, 3) = -(n - 1) / 2.0 * z;
  }
  return A;
}

// Read the raw header ourselves to check what nifti_clib silently "fixes" (it sets non-positive
// dimensions to 1) and to learn the NIfTI version. Returns 1 or 2, or 0 for ANALYZE/unknown.
int check_raw_header(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  VX_CHECK(f, IoError, path, ": cannot open for reading");
  unsigned char h[540];
  const int got = gzread(f, h, sizeof(h));
  gzclose(f);
  VX_CHECK(got >= 348, IoError, path, ": not a valid NIfTI file (shorter than a header)");
  int32_t sz;
  std::memcpy(&sz, h, 4);
  const bool swap = sz != 348 && sz != 540;
  if (swap) sz = int32_t(__builtin_bswap32(uint32_t(sz)));
  VX_CHECK(sz == 348 || sz == 540, IoError, path, ": not a valid NIfTI file (bad header size)");
  VX_CHECK(sz == 348 || got >= 540, IoError, path, ": not a valid NIfTI file (truncated NIfTI-2 header)");
  int64_t dim[8];
  for (int i = 0; i < 8; ++i) {
    if (sz == 348) {
      uint16_t v;
      std::memcpy(&v, h + 40 + 2 * i, 2);
      if (swap) v = __builtin_bswap16(v);
      dim[i] = int16_t(v);
    } else {
      uint64_t v;
      std::memcpy(&v, h + 16 + 8 * i, 8);
      if (swap) v = __builtin_bswap64(v);
      dim[i] = int64_t(v);
    }
  }
  VX_CHECK(dim[0] >= 1 && dim[0] <= 7, IoError, path, ": invalid number of dimensions dim[0] = ", dim[0]);
  for (int d = 1; d <= dim[0]; ++d)
    VX_CHECK(dim[d] >= 1, IoError, path, ": dimension ", d, " is ", dim[d], " (must be positive)");
  const bool magic1 = std::memcmp(h + 344, "n+1", 4) == 0 || std::memcmp(h + 344, "ni1", 4) == 0;
  const bool magic2 = sz == 540 && (std::memcmp(h + 4, "n+2", 3) == 0 || std::memcmp(h + 4, "ni2", 3) == 0);
  return magic2 ? 2 : (sz == 348 && magic1 ? 1 : 0);
}

NimPtr open_header(const std::string& path, NiftiHeaderInfo& info) {
  quiet_nifti();
  std::error_code ec;
  VX_CHECK(fs::exists(path, ec), IoError, path, ": no such file");
  VX_CHECK(!fs::is_directory(path, ec), IoError, path, ": is a directory, not a NIfTI file");
  {
    std::ifstream f(path, std::ios::binary);
    VX_CHECK(f.good(), IoError, path, ": cannot open for reading");
  }
  VX_CHECK(ends_with(path, ".nii") || ends_with(path, ".nii.gz") || ends_with(path, ".hdr") ||
               ends_with(path, ".hdr.gz") || ends_with(path, ".img") || ends_with(path, ".img.gz"),
           IoError, path, ": not a NIfTI file name (expected .nii, .nii.gz or .hdr/.img)");
  // For a .img/.img.gz name the header is the matching .hdr.
  std::string header_path = path;
  if (ends_with(path, ".img") || ends_with(path, ".img.gz")) {
    char* h = nifti_findhdrname(path.c_str());
    VX_CHECK(h, IoError, path, ": no header (.hdr) found for this .img file");
    header_path = h;
    std::free(h);
  }
  const int version = check_raw_header(header_path);
  VX_CHECK(version != 0, IoError, path,
           ": ANALYZE 7.5 files are not supported (no reliable orientation); convert to NIfTI");
  NimPtr nim(nifti_image_read(path.c_str(), 0));
  VX_CHECK(nim, IoError, path, ": not a valid NIfTI file (unreadable or invalid header)");
  VX_CHECK(nim->nifti_type != NIFTI_FTYPE_ANALYZE, IoError, path,
           ": ANALYZE 7.5 files are not supported (no reliable orientation); convert to NIfTI");
  DataType dt;
  VX_CHECK(from_nifti_code(nim->datatype, dt), IoError, path, ": unsupported datatype ",
           nifti_datatype_string(nim->datatype), " (code ", nim->datatype, ")");
  VX_CHECK(nim->ndim >= 1 && nim->ndim <= 7, IoError, path, ": invalid number of dimensions ", nim->ndim);
  // Non-positive dimensions were refused by check_raw_header (nifti_clib would have set them to 1).
  for (int d = 5; d <= nim->ndim; ++d)
    VX_CHECK(nim->dim[d] == 1, IoError, path, ": images with more than 4 dimensions are not supported (dim[", d,
             "] = ", nim->dim[d], ")");
  Geometry& g = info.geometry;
  g.ndim = static_cast<int>(std::min<int64_t>(nim->ndim, 4));
  for (int d = 0; d < 4; ++d) g.dims[d] = d < g.ndim ? nim->dim[d + 1] : 1;
  try {
    validate_dims(g.dims, g.ndim);
  } catch (const Error& e) {
    throw IoError(path + ": " + e.what());
  }
  g.affine = nibabel_affine(nim.get());
  VX_CHECK(g.affine.allFinite(), IoError, path, ": the voxel-to-world matrix is not finite");
  g.time_step = (nim->ndim >= 4 && nim->pixdim[4] > 0) ? nim->pixdim[4] : 1.0;
  info.dtype = dt;
  info.version = version;
  info.sform_code = nim->sform_code;
  info.qform_code = nim->qform_code;
  if (nim->scl_slope == 0 || !std::isfinite(nim->scl_slope)) {
    info.scl_slope = 1.0;
    info.scl_inter = 0.0;
  } else {
    VX_CHECK(std::isfinite(nim->scl_inter), IoError, path, ": valid scl_slope but invalid scl_inter");
    info.scl_slope = nim->scl_slope;
    info.scl_inter = nim->scl_inter;
  }
  return nim;
}

template <class S, class T> void convert_in(const void* src, T* dst, int64_t n, double slope, double inter) {
  const S* s = static_cast<const S*>(src);
  const bool scaled = !(slope == 1.0 && inter == 0.0);
  parallel_for(n, 1 << 18, [&](int64_t a, int64_t b) {
    if (scaled)
      for (int64_t i = a; i < b; ++i) dst[i] = T(double(s[i]) * slope + inter);
    else
      for (int64_t i = a; i < b; ++i) dst[i] = T(s[i]);
  });
}

template <class D, class T> void convert_out(const T* src, void* dst, int64_t n) {
  D* d = static_cast<D*>(dst);
  parallel_for(n, 1 << 18, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      if constexpr (std::is_floating_point_v<D>) {
        d[i] = D(src[i]);
      } else {
        double v = double(src[i]);
        if (std::isnan(v)) { d[i] = D(0); continue; }
        v = v > 0 ? v + 0.5 : (std::is_signed_v<D> ? v - 0.5 : 0.0);
        const double lo = double(std::numeric_limits<D>::lowest()), hi = double(std::numeric_limits<D>::max());
        if (v <= lo) d[i] = std::numeric_limits<D>::lowest();
        else if (v >= hi) d[i] = std::numeric_limits<D>::max();
        else d[i] = D(v); // truncation after the +-0.5: round half away from zero
      }
    }
  });
}


std::vector<unsigned char> slurp(const std::string& path, const std::string& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  VX_CHECK(f, IoError, path, ": cannot open image data ", file);
  std::vector<unsigned char> buf;
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (!ec) buf.resize(size_t(size));
  const size_t got = buf.empty() ? 0 : std::fread(buf.data(), 1, buf.size(), f);
  std::fclose(f);
  VX_CHECK(got == buf.size(), IoError, path, ": read error on ", file);
  return buf;
}

// Bytes [offset, offset + nbytes) of the (possibly gzipped, possibly multi-member) file, returned
// as a buffer that holds them from byte `offset` on (the caller skips the first `offset` bytes).
void read_image_bytes(const std::string& path, const std::string& file, int64_t offset, int64_t nbytes,
                      std::vector<unsigned char>& out) {
  std::vector<unsigned char> in = slurp(path, file);
  const bool gz = in.size() >= 2 && in[0] == 0x1f && in[1] == 0x8b;
  auto truncated = [&](int64_t got) {
    return IoError(path + ": truncated or corrupt image data (expected " + std::to_string(nbytes) +
                   " bytes after offset " + std::to_string(offset) + ", got " + std::to_string(std::max<int64_t>(got, 0)) +
                   ")");
  };
  if (!gz) {
    if (int64_t(in.size()) < offset + nbytes) throw truncated(int64_t(in.size()) - offset);
    out = std::move(in);
    return;
  }
  const int64_t total = offset + nbytes;
  // DEFLATE expands at most ~1032:1: a header claiming more data than that is corrupt (and would
  // otherwise make us allocate its claimed size).
  if (double(total) > 1032.0 * double(in.size()) + 1e6) throw truncated(0);
  std::vector<unsigned char> all(static_cast<size_t>(total));
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  VX_CHECK(d, IoError, path, ": out of memory");
  size_t in_pos = 0;
  int64_t pos = 0;
  bool overflow = false;
  while (pos < total && in_pos + 18 <= in.size()) {
    size_t used_in = 0, used_out = 0;
    const libdeflate_result r = libdeflate_gzip_decompress_ex(d, in.data() + in_pos, in.size() - in_pos,
                                                              all.data() + pos, size_t(total - pos), &used_in, &used_out);
    if (r == LIBDEFLATE_INSUFFICIENT_SPACE) { overflow = true; break; }
    if (r != LIBDEFLATE_SUCCESS) break;
    in_pos += used_in;
    pos += int64_t(used_out);
  }
  libdeflate_free_decompressor(d);
  if (overflow) { // a member holds more than the image (trailing data): stream it with zlib instead
    gzFile f = gzopen(file.c_str(), "rb");
    VX_CHECK(f, IoError, path, ": cannot open image data ", file);
    gzbuffer(f, 1 << 20);
    pos = 0;
    while (pos < total) {
      const int r = gzread(f, all.data() + pos, unsigned(std::min<int64_t>(total - pos, 1 << 30)));
      if (r <= 0) break;
      pos += r;
    }
    gzclose(f);
  }
  if (pos < total) throw truncated(pos - offset);
  out = std::move(all);
}

} // namespace

NiftiHeaderInfo read_nifti_header(const std::string& path) {
  NiftiHeaderInfo info;
  open_header(path, info);
  return info;
}

template <class T> Image<T> read_nifti(const std::string& path, NiftiHeaderInfo* info_out) {
  NiftiHeaderInfo info;
  NimPtr nim = open_header(path, info);
  const int64_t n = info.geometry.size();
  VX_CHECK(nim->nvox == n, IoError, path, ": header voxel count ", nim->nvox, " does not match its dimensions");
  // Raw data read here rather than by nifti_image_load, which replaces NaN/Inf by 0 (nibabel, the
  // reference, keeps them) -- and so that gzip data is inflated by libdeflate (2-3x zlib's speed).
  const int64_t nbytes = n * nim->nbyper;
  std::vector<unsigned char> raw;
  read_image_bytes(path, nim->iname, nim->iname_offset, nbytes, raw);
  unsigned char* bytes = raw.data() + nim->iname_offset; // owned by raw, never by nim
  if (nim->nbyper > 1 && nim->byteorder != nifti_short_order()) nifti_swap_Nbytes(n, nim->nbyper, bytes);
  Image<T> img(info.geometry, no_init);
  const double sl = info.scl_slope, ic = info.scl_inter;
  T* dst = img.data();
  switch (info.dtype) {
  case DataType::UInt8: convert_in<uint8_t>(bytes, dst, n, sl, ic); break;
  case DataType::Int8: convert_in<int8_t>(bytes, dst, n, sl, ic); break;
  case DataType::Int16: convert_in<int16_t>(bytes, dst, n, sl, ic); break;
  case DataType::UInt16: convert_in<uint16_t>(bytes, dst, n, sl, ic); break;
  case DataType::Int32: convert_in<int32_t>(bytes, dst, n, sl, ic); break;
  case DataType::UInt32: convert_in<uint32_t>(bytes, dst, n, sl, ic); break;
  case DataType::Int64: convert_in<int64_t>(bytes, dst, n, sl, ic); break;
  case DataType::UInt64: convert_in<uint64_t>(bytes, dst, n, sl, ic); break;
  case DataType::Float32: convert_in<float>(bytes, dst, n, sl, ic); break;
  case DataType::Float64: convert_in<double>(bytes, dst, n, sl, ic); break;
  }
  if (info_out) *info_out = info;
  return img;
}

void check_nifti_output_path(const std::string& path) {
  VX_CHECK(ends_with(path, ".nii") || ends_with(path, ".nii.gz"), IoError, path,
           ": output file name must end in .nii or .nii.gz");
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  VX_CHECK(parent.empty() || fs::is_directory(parent, ec), IoError, path, ": output directory ", parent.string(),
           " does not exist");
  VX_CHECK(!fs::is_directory(path, ec), IoError, path, ": is a directory");
}

template <class T> void write_nifti(const std::string& path, const Image<T>& img, const NiftiWriteOptions& opts) {
  quiet_nifti();
  check_nifti_output_path(path);
  const Geometry& g = img.geometry();
  validate_dims(g.dims, g.ndim);
  VX_CHECK(g.affine.allFinite(), InvalidArgument, path, ": refusing to write a non-finite voxel-to-world matrix");
  int64_t dims[8] = {g.ndim, g.dims[0], g.dims[1], g.dims[2], g.dims[3], 1, 1, 1};
  bool big = false;
  for (int d = 0; d < 4; ++d) big |= g.dims[d] > 32767;
  NimPtr nim(nifti_make_new_nim(dims, to_nifti_code(opts.dtype), 0));
  VX_CHECK(nim, IoError, path, ": cannot create a NIfTI header");
  nim->nifti_type = big ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;

  nifti_dmat44 S;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) S.m[r][c] = g.affine(r, c);
  nim->sto_xyz = S;
  nim->sto_ijk = nifti_dmat44_inverse(S);
  nim->sform_code = opts.xform_code;
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(S, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  nim->quatern_b = qb, nim->quatern_c = qc, nim->quatern_d = qd;
  nim->qoffset_x = qx, nim->qoffset_y = qy, nim->qoffset_z = qz;
  nim->qfac = qfac;
  nim->qform_code = opts.xform_code;
  const Vec3 sp = g.spacing();
  nim->dx = nim->pixdim[1] = sp[0];
  nim->dy = nim->pixdim[2] = sp[1];
  nim->dz = nim->pixdim[3] = sp[2];
  nim->qto_xyz = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, nim->dx, nim->dy, nim->dz, qfac);
  nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
  if (g.ndim >= 4) nim->dt = nim->pixdim[4] = g.time_step;
  nim->xyz_units = NIFTI_UNITS_MM;
  nim->time_units = NIFTI_UNITS_SEC;
  nim->scl_slope = 1.0;
  nim->scl_inter = 0.0;
  std::snprintf(nim->descrip, sizeof(nim->descrip), "voxalign");

  nim->iname_offset = big ? 544 : 352;
  const size_t hsize = size_t(nim->iname_offset);
  std::vector<unsigned char> head(hsize, 0);
  if (big) {
    nifti_2_header h;
    VX_CHECK(nifti_convert_nim2n2hdr(nim.get(), &h) == 0, IoError, path, ": cannot build the NIfTI-2 header");
    std::memcpy(head.data(), &h, sizeof(h));
  } else {
    nifti_1_header h;
    VX_CHECK(nifti_convert_nim2n1hdr(nim.get(), &h) == 0, IoError, path, ": cannot build the NIfTI-1 header");
    std::memcpy(head.data(), &h, sizeof(h));
  }
  // The 4 bytes after the header (extension flag) stay zero: no extensions.
  const T* src = img.data();
  const size_t nbyper = size_t(nim->nbyper);
  const size_t total = hsize + size_t(img.size()) * nbyper;
  // Bytes [a, a + len) of the file's content (header, then the converted voxels), made on demand so
  // that the whole file never sits in memory. Chunk starts are multiples of 4 MiB and the header
  // size (352 or 544) is a multiple of every voxel size, so chunks never split a voxel.
  auto fill = [&](size_t a, size_t len, unsigned char* dst) {
    if (a < hsize) {
      const size_t k = std::min(hsize - a, len);
      std::memcpy(dst, head.data() + a, k);
      dst += k, a += k, len -= k;
    }
    if (len == 0) return;
    const T* s0 = src + (a - hsize) / nbyper;
    const int64_t m = int64_t(len / nbyper);
    switch (opts.dtype) {
    case DataType::UInt8: convert_out<uint8_t>(s0, dst, m); break;
    case DataType::Int8: convert_out<int8_t>(s0, dst, m); break;
    case DataType::Int16: convert_out<int16_t>(s0, dst, m); break;
    case DataType::UInt16: convert_out<uint16_t>(s0, dst, m); break;
    case DataType::Int32: convert_out<int32_t>(s0, dst, m); break;
    case DataType::UInt32: convert_out<uint32_t>(s0, dst, m); break;
    case DataType::Int64: convert_out<int64_t>(s0, dst, m); break;
    case DataType::UInt64: convert_out<uint64_t>(s0, dst, m); break;
    case DataType::Float32: convert_out<float>(s0, dst, m); break;
    case DataType::Float64: convert_out<double>(s0, dst, m); break;
    }
  };

  // Temporary name in the same directory (same file system), keeping the extension; registered
  // for cleanup (core/output.hpp).
  const std::string tmp = temporary_output(path);
  const bool gz = ends_with(path, ".gz");
  const int level = std::clamp(opts.gzip_level, 1, 12);
  constexpr size_t chunk = size_t(4) << 20;
  bool ok = false;
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  try {
    if (f) {
      ok = true;
      const int64_t nchunks = int64_t((total + chunk - 1) / chunk);
      if (gz) {
        // gzip as independent members of `chunk` bytes (a valid gzip file: every reader
        // concatenates members), compressed in parallel a group at a time and written in order.
        // The chunks do not depend on the thread count: the bytes are the same for any.
        constexpr int64_t group = 16;
        for (int64_t g0 = 0; g0 < nchunks && ok; g0 += group) {
          const int64_t g1 = std::min(nchunks, g0 + group);
          std::vector<std::vector<unsigned char>> parts(size_t(g1 - g0));
          parallel_for(g1 - g0, 1, [&](int64_t c0, int64_t c1) {
            std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> c(libdeflate_alloc_compressor(level),
                                                                                        &libdeflate_free_compressor);
            if (!c) throw IoError("out of memory (gzip compressor)");
            std::vector<unsigned char> raw(chunk);
            for (int64_t ci = c0; ci < c1; ++ci) {
              const size_t a = size_t(g0 + ci) * chunk, len = std::min(chunk, total - a);
              fill(a, len, raw.data());
              auto& out = parts[size_t(ci)];
              out.resize(libdeflate_gzip_compress_bound(c.get(), len));
              out.resize(libdeflate_gzip_compress(c.get(), raw.data(), len, out.data(), out.size()));
            }
          });
          for (const auto& p : parts) ok = ok && std::fwrite(p.data(), 1, p.size(), f) == p.size();
        }
      } else {
        std::vector<unsigned char> raw(std::min(chunk, total));
        for (int64_t ci = 0; ci < nchunks && ok; ++ci) {
          const size_t a = size_t(ci) * chunk, len = std::min(chunk, total - a);
          fill(a, len, raw.data());
          ok = std::fwrite(raw.data(), 1, len, f) == len;
        }
      }
      ok = (std::fclose(f) == 0) && ok;
      f = nullptr;
    }
  } catch (...) {
    if (f) std::fclose(f);
    discard_output(tmp);
    throw;
  }
  if (!ok) {
    discard_output(tmp);
    throw IoError(path + ": writing failed (disk full or not writable?)");
  }
  finish_output(tmp, path); // now, or at the CLI's commit
}

template Image<float> read_nifti(const std::string&, NiftiHeaderInfo*);
template Image<double> read_nifti(const std::string&, NiftiHeaderInfo*);
template void write_nifti(const std::string&, const Image<float>&, const NiftiWriteOptions&);
template void write_nifti(const std::string&, const Image<double>&, const NiftiWriteOptions&);

} // namespace voxalign
