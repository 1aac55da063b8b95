#include "voxalign/image/nifti.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <unistd.h>
#include <zlib.h>
#include <libdeflate.h>

#include "nifti_header.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/file_read.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/core/parallel.hpp"

namespace fs = std::filesystem;

namespace voxalign {

const NameTable<DataType>& dtype_names() {
  static const NameTable<DataType> t{"data type", {{DataType::Float32, "float32"}, {DataType::Float64, "float64"},
      {DataType::UInt8, "uint8"}, {DataType::Int8, "int8"}, {DataType::Int16, "int16"}, {DataType::UInt16, "uint16"},
      {DataType::Int32, "int32"}, {DataType::UInt32, "uint32"}, {DataType::Int64, "int64"},
      {DataType::UInt64, "uint64"}, {DataType::Float32, "float", true}, {DataType::Float64, "double", true}}};
  return t;
}

DataType parse_dtype(const std::string& s) { return dtype_names().parse(s); }
std::string dtype_name(DataType t) { return dtype_names().name(t); }

namespace {

using nifti_detail::ParsedHeader;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_gzip(const unsigned char* p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

// DEFLATE expands at most 1032:1, so a .nii.gz whose header declares more data than that (plus a
// margin for headers) cannot hold it: refused before anything is allocated.
constexpr double kMaxDeflateRatio = 1032.0;
// The header and its extensions must come within this many bytes (nibabel has no limit; real
// extensions -- dcm2niix JSON, CIFTI XML -- are kilobytes to a few megabytes).
constexpr uint64_t kMaxHeaderBytes = uint64_t(64) << 20;

// NIfTI files are opened as RegularFile (core/file_read.hpp): a FIFO is refused before it is opened.
class InFile : public RegularFile {
public:
  InFile(const std::string& path, const std::string& shown) : RegularFile(path, "NIfTI file", shown) {}
  std::vector<unsigned char> read_all() const { return read(0, size()); }
};

// The first `want` bytes of the gzip stream (all members, in order) by zlib; fewer when the input
// ends or is corrupt. Used for headers and for the tail of a member that holds more than the image.
size_t zlib_prefix(const unsigned char* in, size_t in_size, unsigned char* out, size_t want) {
  size_t produced = 0, consumed = 0;
  while (produced < want && consumed + 18 <= in_size && is_gzip(in + consumed, in_size - consumed)) {
    z_stream zs{};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) break;
    int r = Z_OK;
    while (produced < want && r == Z_OK) {
      const size_t in_left = in_size - consumed, out_left = want - produced;
      zs.next_in = const_cast<unsigned char*>(in + consumed);
      zs.avail_in = uInt(std::min<size_t>(in_left, 1u << 30));
      zs.next_out = out + produced;
      zs.avail_out = uInt(std::min<size_t>(out_left, 1u << 30));
      const uInt ai = zs.avail_in, ao = zs.avail_out;
      r = inflate(&zs, Z_NO_FLUSH);
      consumed += ai - zs.avail_in;
      produced += ao - zs.avail_out;
      if (r == Z_BUF_ERROR && zs.avail_in == 0) break; // the input ended
      if (r == Z_BUF_ERROR && zs.avail_out == 0) r = Z_OK;
    }
    inflateEnd(&zs);
    if (r != Z_STREAM_END) break;
  }
  return produced;
}

// The first `want` bytes of the gzip stream: libdeflate (2-3x zlib) for whole members, zlib for a
// member that holds more than is wanted (trailing data). Returns the bytes produced.
size_t gunzip(const unsigned char* in, size_t in_size, unsigned char* out, size_t want) {
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  if (!d) throw std::bad_alloc();
  size_t in_pos = 0, pos = 0;
  while (pos < want && in_pos + 18 <= in_size && is_gzip(in + in_pos, in_size - in_pos)) {
    size_t used_in = 0, used_out = 0;
    const libdeflate_result r =
        libdeflate_gzip_decompress_ex(d, in + in_pos, in_size - in_pos, out + pos, want - pos, &used_in, &used_out);
    if (r == LIBDEFLATE_SUCCESS) {
      in_pos += used_in, pos += used_out;
      continue;
    }
    // The member is larger than what is left to fill, or corrupt/truncated: zlib gives what it can.
    pos += zlib_prefix(in + in_pos, in_size - in_pos, out + pos, want - pos);
    break;
  }
  libdeflate_free_decompressor(d);
  return pos;
}

// The first `len` bytes of the header file, decompressed when it is gzipped.
std::vector<unsigned char> header_prefix(const InFile& f, uint64_t len) {
  const std::vector<unsigned char> head = f.read(0, 2);
  if (!is_gzip(head.data(), head.size())) return f.read(0, len);
  // The first compressed megabyte holds far more than a header; all of it only for long extensions.
  const std::vector<unsigned char> z = f.read(0, len <= 4096 ? uint64_t(1) << 20 : f.size());
  // No more than DEFLATE can produce from the compressed bytes at hand (a tiny file claiming long
  // extensions must not cost a 64 MiB buffer).
  len = std::min<uint64_t>(len, uint64_t(kMaxDeflateRatio * double(z.size())) + 1024);
  std::vector<unsigned char> out(static_cast<size_t>(len));
  out.resize(zlib_prefix(z.data(), z.size(), out.data(), out.size()));
  return out;
}

std::string partner_file(const std::string& path) {
  const std::pair<const char*, const char*> swaps[] = {{".hdr", ".img"}, {".img", ".hdr"}};
  const bool gz = ends_with(path, ".gz");
  const std::string stem = path.substr(0, path.size() - (gz ? 7 : 4));
  const std::string ext = path.substr(stem.size(), 4);
  for (auto [from, to] : swaps)
    if (ext == from)
      for (const std::string& cand : {stem + to + (gz ? ".gz" : ""), stem + to + (gz ? "" : ".gz")}) {
        std::error_code ec;
        if (fs::exists(cand, ec)) return cand;
      }
  throw IoError(path + ": no matching " + (ext == ".hdr" ? ".img" : ".hdr") + " file found for this " + ext + " file");
}

void check_name(const std::string& path) {
  VX_CHECK(ends_with(path, ".nii") || ends_with(path, ".nii.gz") || ends_with(path, ".hdr") ||
               ends_with(path, ".hdr.gz") || ends_with(path, ".img") || ends_with(path, ".img.gz"),
           IoError, path, ": not a NIfTI file name (expected .nii, .nii.gz or .hdr/.img)");
}

bool is_pair_name(const std::string& path) { return !(ends_with(path, ".nii") || ends_with(path, ".nii.gz")); }

// The header file of `path`: the file itself, or the .hdr of an .img.
std::string header_file(const std::string& path) {
  check_name(path);
  return ends_with(path, ".img") || ends_with(path, ".img.gz") ? partner_file(path) : path;
}

// The header in the open header file f of `path` (checked by header_file).
ParsedHeader parse_header_file(const InFile& f, const std::string& path, bool want_extensions, bool vector = false) {
  const bool pair = is_pair_name(path);
  // A .hdr holds the header and its extensions only; a single file, the header, then (when the
  // flag after it is set) extensions up to vox_offset.
  std::vector<unsigned char> h = header_prefix(f, pair ? kMaxHeaderBytes : nifti_detail::kHeaderProbe + 4);
  ParsedHeader ph = nifti_detail::parse_header(h.data(), h.size(), path, pair, vector);
  const size_t flag = ph.header_size;
  if (want_extensions && !pair && h.size() > flag && h[flag] != 0 && uint64_t(ph.vox_offset) > h.size()) {
    h = header_prefix(f, std::min<uint64_t>(uint64_t(ph.vox_offset), kMaxHeaderBytes));
    ph = nifti_detail::parse_header(h.data(), h.size(), path, pair, vector);
  }
  return ph;
}

template <class S, bool Swap> S load(const unsigned char* p) {
  S v;
  if constexpr (!Swap || sizeof(S) == 1) {
    std::memcpy(&v, p, sizeof(S));
  } else {
    unsigned char b[sizeof(S)];
    for (size_t i = 0; i < sizeof(S); ++i) b[i] = p[sizeof(S) - 1 - i];
    std::memcpy(&v, b, sizeof(S));
  }
  return v;
}

// Bytes to values: through memcpy, so data at any offset (vox_offset need not be a multiple of
// the type's size) are read without misaligned loads.
template <class S, bool Swap, class T>
void convert_in(const unsigned char* src, T* dst, int64_t n, double slope, double inter) {
  const bool scaled = !(slope == 1.0 && inter == 0.0);
  parallel_for(n, 1 << 18, [&](int64_t a, int64_t b) {
    if (scaled)
      for (int64_t i = a; i < b; ++i) dst[i] = T(double(load<S, Swap>(src + i * sizeof(S))) * slope + inter);
    else
      for (int64_t i = a; i < b; ++i) dst[i] = T(load<S, Swap>(src + i * sizeof(S)));
  });
}

template <class S, class T> void convert_in(const unsigned char* src, T* dst, int64_t n, double sl, double ic, bool swap) {
  if (swap) convert_in<S, true>(src, dst, n, sl, ic);
  else convert_in<S, false>(src, dst, n, sl, ic);
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

template <class T>
void convert_any(DataType dt, const unsigned char* b, T* dst, int64_t n, double sl, double ic, bool sw) {
  switch (dt) {
  case DataType::UInt8: convert_in<uint8_t>(b, dst, n, sl, ic, sw); break;
  case DataType::Int8: convert_in<int8_t>(b, dst, n, sl, ic, sw); break;
  case DataType::Int16: convert_in<int16_t>(b, dst, n, sl, ic, sw); break;
  case DataType::UInt16: convert_in<uint16_t>(b, dst, n, sl, ic, sw); break;
  case DataType::Int32: convert_in<int32_t>(b, dst, n, sl, ic, sw); break;
  case DataType::UInt32: convert_in<uint32_t>(b, dst, n, sl, ic, sw); break;
  case DataType::Int64: convert_in<int64_t>(b, dst, n, sl, ic, sw); break;
  case DataType::UInt64: convert_in<uint64_t>(b, dst, n, sl, ic, sw); break;
  case DataType::Float32: convert_in<float>(b, dst, n, sl, ic, sw); break;
  case DataType::Float64: convert_in<double>(b, dst, n, sl, ic, sw); break;
  }
}

// The voxels of the data file into img: gzip inflated whole (libdeflate, 2-3x zlib), then converted;
// raw data read straight into the image when no conversion is needed, else in chunks converted as
// they arrive (no file-sized buffer). Truncated or implausible files are refused before the image
// buffer is touched.
template <class T> void read_voxels(const std::string& path, const InFile& f, const ParsedHeader& h, Image<T>& img) {
  const NiftiHeaderInfo& info = h.info;
  const int64_t off = h.vox_offset, nbytes = h.nbytes, total = off + nbytes, n = info.geometry.size();
  auto truncated = [&](uint64_t got) {
    return IoError(path + ": truncated or corrupt image data (expected " + std::to_string(nbytes) +
                   " bytes after offset " + std::to_string(off) + ", got " + std::to_string(got) + ")");
  };
  auto allocate = [&] {
    try {
      img = Image<T>(info.geometry, no_init);
    } catch (const std::bad_alloc&) {
      throw IoError(path + ": not enough memory for its " + std::to_string(n) + " voxels");
    }
  };
  const double sl = info.scl_slope, ic = info.scl_inter;
  const std::vector<unsigned char> head = f.read(0, 2);
  if (!is_gzip(head.data(), head.size())) {
    if (f.size() < uint64_t(total)) throw truncated(f.size() > uint64_t(off) ? f.size() - uint64_t(off) : 0);
    allocate();
    constexpr DataType same = std::is_same_v<T, float> ? DataType::Float32 : DataType::Float64;
    if (info.dtype == same && !h.swapped && sl == 1.0 && ic == 0.0) {
      f.read_into(uint64_t(off), uint64_t(nbytes), reinterpret_cast<unsigned char*>(img.data()));
      return;
    }
    const int64_t per = int64_t(8 << 20) / h.nbyper; // voxels per chunk
    std::unique_ptr<unsigned char[]> buf(new unsigned char[size_t(std::min(n, per) * h.nbyper)]);
    for (int64_t v = 0; v < n; v += per) {
      const int64_t m = std::min(per, n - v);
      f.read_into(uint64_t(off + v * h.nbyper), uint64_t(m * h.nbyper), buf.get());
      convert_any(info.dtype, buf.get(), img.data() + v, m, sl, ic, h.swapped);
    }
    return;
  }
  const std::vector<unsigned char> z = f.read_all();
  if (double(total) > kMaxDeflateRatio * double(z.size()) + 1e6)
    throw IoError(path + ": the header declares " + std::to_string(nbytes) + " bytes of data, more than its " +
                  std::to_string(z.size()) + " compressed bytes can hold (corrupt header or truncated file)");
  std::unique_ptr<unsigned char[]> inflated;
  try {
    inflated.reset(new unsigned char[size_t(total)]); // not zeroed: pages are committed as they fill
  } catch (const std::bad_alloc&) {
    throw IoError(path + ": not enough memory for its " + std::to_string(total) + " bytes of data");
  }
  const size_t got = gunzip(z.data(), z.size(), inflated.get(), size_t(total));
  if (got < size_t(total)) throw truncated(got > size_t(off) ? got - size_t(off) : 0);
  allocate();
  convert_any(info.dtype, inflated.get() + off, img.data(), n, sl, ic, h.swapped);
}

} // namespace

NiftiHeaderInfo read_nifti_header(const std::string& path) {
  const InFile f(header_file(path), path);
  return parse_header_file(f, path, false).info;
}

namespace {

/// The voxels of a header parsed from `f` (opened on `hdr`): a single file is opened once, for its
/// header and its data. Raw data are read here rather than by nifti_image_load, which replaces
/// NaN/Inf by 0 (nibabel, the reference, keeps them).
template <class T>
Image<T> read_parsed(const std::string& path, const std::string& hdr, const InFile& f, const ParsedHeader& h,
                     NiftiHeaderInfo* info_out) {
  Image<T> img;
  if (h.single_file) {
    read_voxels(path, f, h, img);
  } else {
    const InFile data(hdr == path ? partner_file(path) : path, path); // the .img of the pair
    read_voxels(path, data, h, img);
  }
  if (info_out) *info_out = h.info;
  return img;
}
/// Every voxel of `path`; `vector` accepts ITK/ANTs displacement fields (intent vector, 5D).
template <class T> Image<T> read_whole(const std::string& path, NiftiHeaderInfo* info_out, bool vector) {
  const std::string hdr = header_file(path);
  const InFile f(hdr, path);
  return read_parsed<T>(path, hdr, f, parse_header_file(f, path, true, vector), info_out);
}

} // namespace

template <class T> Image<T> read_nifti(const std::string& path, NiftiHeaderInfo* info) {
  return read_whole<T>(path, info, false);
}

template <class T> Image<T> read_nifti_vector(const std::string& path, NiftiHeaderInfo* info) {
  return read_whole<T>(path, info, true);
}

bool read_in_double(DataType stored, DataType wanted) {
  return wanted == DataType::Float64 || stored == DataType::Float64 || stored == DataType::Int32 ||
         stored == DataType::UInt32 || stored == DataType::Int64 || stored == DataType::UInt64;
}

std::variant<Image<float>, Image<double>> read_nifti_float_or_double(const std::string& path, bool want_double,
                                                                     NiftiHeaderInfo* info_out) {
  const std::string hdr = header_file(path);
  const InFile f(hdr, path);
  const ParsedHeader h = parse_header_file(f, path, true);
  if (read_in_double(h.info.dtype, want_double ? DataType::Float64 : DataType::Float32))
    return read_parsed<double>(path, hdr, f, h, info_out);
  return read_parsed<float>(path, hdr, f, h, info_out);
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

// ---- frame by frame ----

struct NiftiFrameReader::Impl {
  std::string path;
  std::unique_ptr<InFile> hf, df; // header file; the .img of a pair
  InFile* data = nullptr;         // where the voxels are: df, or hf for .nii
  ParsedHeader h;
  int64_t nframes = 0, fvox = 0;
  uint64_t fbytes = 0;
  bool gz = false;
  std::vector<unsigned char> raw; // one frame's bytes
  // the gzip stream (zlib: it can stop anywhere), all members in order
  z_stream zs{};
  bool zopen = false, member_end = false;
  uint64_t file_pos = 0, out_pos = 0;
  std::vector<unsigned char> in;
  // With spooling: an unlinked temporary file holding the decompressed bytes [0, out_pos), so that
  // going back reads them instead of decompressing again (-1: none, or it failed: restart instead).
  int spool = -1;

  ~Impl() {
    if (zopen) inflateEnd(&zs);
    if (spool >= 0) ::close(spool);
  }
  void open_spool() {
    std::error_code ec;
    std::string name = (fs::temp_directory_path(ec) / "voxalign-frames-XXXXXX").string();
    if (ec) return;
    spool = ::mkstemp(name.data());
    if (spool >= 0) ::unlink(name.c_str()); // removed by the system when closed, even if the process is killed
  }
  void drop_spool() {
    if (spool >= 0) ::close(spool);
    spool = -1;
  }
  // Bytes [at, at + len) from the spool; false when it cannot give them.
  bool from_spool(uint64_t at, size_t len, unsigned char* dst) {
    if (spool < 0 || at + len > out_pos) return false;
    for (size_t done = 0; done < len;) {
      const ssize_t r = ::pread(spool, dst + done, len - done, off_t(at + done));
      if (r <= 0) return drop_spool(), false;
      done += size_t(r);
    }
    return true;
  }
  IoError truncated() const {
    return IoError(path + ": truncated or corrupt image data (expected " + std::to_string(h.nbytes) + " bytes after offset " +
                   std::to_string(h.vox_offset) + ", got fewer)");
  }
  void restart() {
    if (zopen) inflateEnd(&zs);
    zs = z_stream{};
    zopen = inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK;
    if (!zopen) throw std::bad_alloc();
    member_end = false, file_pos = 0, out_pos = 0;
  }
  // At least `need` compressed bytes at zs.next_in unless the file ends first; returns what there is.
  size_t fill_in(size_t need) {
    if (zs.avail_in >= need || file_pos >= data->size()) return zs.avail_in;
    if (zs.avail_in) std::memmove(in.data(), zs.next_in, zs.avail_in);
    const size_t k = size_t(std::min<uint64_t>(in.size() - zs.avail_in, data->size() - file_pos));
    data->read_into(file_pos, k, in.data() + zs.avail_in);
    file_pos += k;
    zs.next_in = in.data();
    zs.avail_in += uInt(k);
    return zs.avail_in;
  }
  // The next `len` bytes of the stream into dst; fewer when it ends or is corrupt.
  size_t inflate_out(unsigned char* dst, size_t len) {
    size_t got = 0;
    while (got < len) {
      if (member_end) { // another member needs its 18 bytes and the magic (as gunzip)
        if (fill_in(18) < 18 || !is_gzip(zs.next_in, zs.avail_in)) break;
        inflateReset(&zs);
        member_end = false;
      }
      if (zs.avail_in == 0 && fill_in(1) == 0) break;
      zs.next_out = dst + got;
      zs.avail_out = uInt(std::min<size_t>(len - got, 1u << 30));
      const uInt ao = zs.avail_out;
      const int r = inflate(&zs, Z_NO_FLUSH);
      got += ao - zs.avail_out;
      if (r == Z_STREAM_END) member_end = true;
      else if (r == Z_BUF_ERROR && zs.avail_in == 0) continue; // refilled at the top, or the end
      else if (r != Z_OK) break;
    }
    for (size_t done = 0; spool >= 0 && done < got;) { // a full disk ends spooling, not the read
      const ssize_t w = ::pwrite(spool, dst + done, got - done, off_t(out_pos + done));
      if (w <= 0) drop_spool();
      else done += size_t(w);
    }
    out_pos += got;
    return got;
  }
};

NiftiFrameReader::NiftiFrameReader(const std::string& path, bool spool) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  const std::string hdr = header_file(path);
  m.hf = std::make_unique<InFile>(hdr, path);
  m.h = parse_header_file(*m.hf, path, true);
  if (!m.h.single_file) m.df = std::make_unique<InFile>(hdr == path ? partner_file(path) : path, path);
  m.data = m.df ? m.df.get() : m.hf.get();
  InFile& d = *m.data;
  const Geometry& g = m.h.info.geometry;
  m.fvox = g.frame_size();
  m.nframes = m.fvox ? g.size() / m.fvox : 0;
  m.fbytes = uint64_t(m.fvox) * uint64_t(m.h.nbyper);
  const std::vector<unsigned char> head = d.read(0, 2);
  m.gz = is_gzip(head.data(), head.size());
  const uint64_t total = uint64_t(m.h.vox_offset + m.h.nbytes);
  if (!m.gz && d.size() < total) throw m.truncated();
  if (m.gz && double(total) > kMaxDeflateRatio * double(d.size()) + 1e6)
    throw IoError(path + ": the header declares " + std::to_string(m.h.nbytes) + " bytes of data, more than its " +
                  std::to_string(d.size()) + " compressed bytes can hold (corrupt header or truncated file)");
  m.raw.resize(size_t(m.fbytes));
  if (m.gz) m.in.resize(size_t(1) << 20);
  if (m.gz && spool) m.open_spool();
}

NiftiFrameReader::~NiftiFrameReader() = default;
const NiftiHeaderInfo& NiftiFrameReader::info() const { return impl_->h.info; }
int64_t NiftiFrameReader::frames() const { return impl_->nframes; }

void NiftiFrameReader::read(int64_t t, float* dst) {
  Impl& m = *impl_;
  VX_CHECK(t >= 0 && t < m.nframes, InvalidArgument, m.path, ": frame ", t, " is not in 0..", m.nframes - 1);
  InFile& d = *m.data;
  const uint64_t at = uint64_t(m.h.vox_offset) + uint64_t(t) * m.fbytes;
  if (!m.gz) {
    d.read_into(at, m.fbytes, m.raw.data());
  } else if (!m.from_spool(at, m.raw.size(), m.raw.data())) {
    if (!m.zopen || m.out_pos > at) m.restart();
    while (m.out_pos < at) {
      const size_t k = size_t(std::min<uint64_t>(m.raw.size(), at - m.out_pos));
      if (m.inflate_out(m.raw.data(), k) < k) throw m.truncated();
    }
    if (m.inflate_out(m.raw.data(), m.raw.size()) < m.raw.size()) throw m.truncated();
  }
  // On the calling thread, in pieces of one block of convert_in's loop: readers run beside the
  // computation (realign reads ahead while the frames are processed).
  const NiftiHeaderInfo& i = m.h.info;
  constexpr int64_t piece = int64_t(1) << 18;
  for (int64_t v = 0; v < m.fvox; v += piece)
    convert_any(i.dtype, m.raw.data() + v * m.h.nbyper, dst + v, std::min(piece, m.fvox - v), i.scl_slope, i.scl_inter,
                m.h.swapped);
}

struct NiftiWriter::Impl {
  // gzip members of kChunk bytes of the file (header included), compressed kGroup at a time in
  // parallel: the members do not depend on the thread count, so neither do the bytes.
  static constexpr size_t kChunk = size_t(4) << 20;
  static constexpr size_t kGroup = 16;
  std::string path, tmp;
  DataType dtype = DataType::Float32;
  size_t nbyper = 4;
  int level = 1;
  bool gz = false, done = false;
  std::FILE* f = nullptr;
  std::vector<unsigned char> buf; // bytes not yet written; chunk boundaries fall on multiples of kChunk
  size_t filled = 0;
  int64_t want = 0, got = 0;

  ~Impl() {
    if (f) std::fclose(f);
    if (!done && !tmp.empty()) discard_output(tmp);
  }
  void fail() { throw IoError(path + ": writing failed (disk full or not writable?)"); }
  void flush() {
    if (!gz) {
      if (std::fwrite(buf.data(), 1, filled, f) != filled) fail();
      filled = 0;
      return;
    }
    const int64_t n = int64_t((filled + kChunk - 1) / kChunk);
    std::vector<std::vector<unsigned char>> parts(static_cast<size_t>(n));
    parallel_for(n, 1, [&](int64_t c0, int64_t c1) {
      std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> c(libdeflate_alloc_compressor(level),
                                                                                  &libdeflate_free_compressor);
      if (!c) throw IoError("out of memory (gzip compressor)");
      for (int64_t ci = c0; ci < c1; ++ci) {
        const size_t a = size_t(ci) * kChunk, len = std::min(kChunk, filled - a);
        auto& out = parts[size_t(ci)];
        out.resize(libdeflate_gzip_compress_bound(c.get(), len));
        out.resize(libdeflate_gzip_compress(c.get(), buf.data() + a, len, out.data(), out.size()));
      }
    });
    for (const auto& p : parts)
      if (std::fwrite(p.data(), 1, p.size(), f) != p.size()) fail();
    filled = 0;
  }
};

NiftiWriter::NiftiWriter(const std::string& path, const Geometry& g, const NiftiWriteOptions& opts)
    : impl_(std::make_unique<Impl>()) {
  check_nifti_output_path(path);
  validate_dims(g.dims, g.ndim);
  VX_CHECK(g.affine.allFinite(), InvalidArgument, path, ": refusing to write a non-finite voxel-to-world matrix");
  const double det = g.affine.block<3, 3>(0, 0).determinant();
  VX_CHECK(std::isfinite(det) && std::fabs(det) > 1e-12, InvalidArgument, path,
           ": refusing to write a singular voxel-to-world matrix");
  VX_CHECK(g.ndim < 4 || (std::isfinite(g.time_step) && g.time_step > 0), InvalidArgument, path,
           ": refusing to write a time step (TR) of ", g.time_step, " (must be finite and > 0)");
  bool big = false;
  for (int d = 0; d < 4; ++d) big |= g.dims[d] > 32767;
  // a multiple of 16 (header, extension flag, extensions): with chunks of 4 MiB no voxel is split
  const std::vector<unsigned char> head = nifti_detail::build_header(g, opts.dtype, opts.meta, opts.xform_code, big, path);
  Impl& m = *impl_;
  m.path = path;
  m.dtype = opts.dtype;
  m.nbyper = size_t(nifti_detail::nifti_size(opts.dtype));
  m.gz = ends_with(path, ".gz");
  m.level = std::clamp(opts.gzip_level, 1, 12);
  m.want = g.size();
  const size_t total = head.size() + size_t(m.want) * m.nbyper;
  m.buf.resize(std::min(total, m.gz ? Impl::kChunk * Impl::kGroup : Impl::kChunk));
  // Temporary name in the same directory (same file system), keeping the extension; registered
  // for cleanup (core/output.hpp).
  m.tmp = temporary_output(path);
  m.f = std::fopen(m.tmp.c_str(), "wb");
  if (!m.f) m.fail();
  for (size_t a = 0; a < head.size();) {
    const size_t k = std::min(head.size() - a, m.buf.size() - m.filled);
    std::memcpy(m.buf.data() + m.filled, head.data() + a, k);
    m.filled += k, a += k;
    if (m.filled == m.buf.size()) m.flush();
  }
}

NiftiWriter::~NiftiWriter() = default;

template <class T> void NiftiWriter::append(const T* v, int64_t n) {
  Impl& m = *impl_;
  VX_CHECK(m.got + n <= m.want, InvalidArgument, m.path, ": more values than the image holds");
  while (n > 0) {
    const int64_t k = std::min<int64_t>(n, int64_t((m.buf.size() - m.filled) / m.nbyper));
    unsigned char* dst = m.buf.data() + m.filled;
    switch (m.dtype) {
    case DataType::UInt8: convert_out<uint8_t>(v, dst, k); break;
    case DataType::Int8: convert_out<int8_t>(v, dst, k); break;
    case DataType::Int16: convert_out<int16_t>(v, dst, k); break;
    case DataType::UInt16: convert_out<uint16_t>(v, dst, k); break;
    case DataType::Int32: convert_out<int32_t>(v, dst, k); break;
    case DataType::UInt32: convert_out<uint32_t>(v, dst, k); break;
    case DataType::Int64: convert_out<int64_t>(v, dst, k); break;
    case DataType::UInt64: convert_out<uint64_t>(v, dst, k); break;
    case DataType::Float32: convert_out<float>(v, dst, k); break;
    case DataType::Float64: convert_out<double>(v, dst, k); break;
    }
    m.filled += size_t(k) * m.nbyper, m.got += k, v += k, n -= k;
    if (m.filled == m.buf.size()) m.flush();
  }
}

void NiftiWriter::finish() {
  Impl& m = *impl_;
  VX_CHECK(m.got == m.want, InvalidArgument, m.path, ": ", m.got, " of ", m.want, " values written");
  if (m.filled) m.flush();
  const bool ok = std::fclose(m.f) == 0;
  m.f = nullptr;
  if (!ok) m.fail();
  m.done = true;
  finish_output(m.tmp, m.path); // now, or at the CLI's commit
}

template <class T> void write_nifti(const std::string& path, const Image<T>& img, const NiftiWriteOptions& opts) {
  NiftiWriter w(path, img.geometry(), opts);
  w.append(img.data(), img.size());
  w.finish();
}

template void NiftiWriter::append(const float*, int64_t);
template void NiftiWriter::append(const double*, int64_t);
template Image<float> read_nifti(const std::string&, NiftiHeaderInfo*);
template Image<double> read_nifti(const std::string&, NiftiHeaderInfo*);
template Image<float> read_nifti_vector(const std::string&, NiftiHeaderInfo*);
template Image<double> read_nifti_vector(const std::string&, NiftiHeaderInfo*);
template void write_nifti(const std::string&, const Image<float>&, const NiftiWriteOptions&);
template void write_nifti(const std::string&, const Image<double>&, const NiftiWriteOptions&);

} // namespace voxalign
