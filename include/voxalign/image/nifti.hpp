// NIfTI-1 / NIfTI-2 reading and writing (.nii, .nii.gz, .hdr/.img): headers parsed and checked here
// (nifti_clib's struct definitions), data bytes through libdeflate/zlib (see docs/nifti.md for why).
//
// The world matrix follows nibabel's rule: the sform when sform_code > 0, else the qform when
// qform_code > 0, else nibabel's fall-back (pixdim scaling, x flipped, origin at the centre).
// scl_slope / scl_inter are applied on reading (slope 0 or non-finite means no scaling).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "voxalign/core/names.hpp"
#include "voxalign/image/image.hpp"

namespace voxalign {

enum class DataType { UInt8, Int8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64 };
/// "float32", "float64", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64"
/// ("float" and "double" are accepted for the first two), any case.
const NameTable<DataType>& dtype_names();
/// dtype_names().parse / .name.
DataType parse_dtype(const std::string& name);
std::string dtype_name(DataType t);

/// One NIfTI header extension (esize, ecode, data): kept byte for byte.
struct NiftiExtension {
  int32_t code = 0;
  std::vector<unsigned char> data; ///< esize - 8 bytes
};

/// What a header says beyond the grid and the datatype. Read with every image and handed back to
/// write_nifti (NiftiWriteOptions::meta) so that outputs keep what nibabel-based tools keep.
struct NiftiMeta {
  // The grid these fields were read with: the xforms below describe it, and slice timing and
  // extensions only hold on it (write_nifti compares the written grid to it).
  // Dimensions 0 (no image has them) until read: a meta never read matches no grid.
  Geometry grid{3, {0, 0, 0, 0}};
  int sform_code = 0, qform_code = 0;
  double quatern[6] = {0, 0, 0, 0, 0, 0}; ///< quatern_b, c, d, qoffset_x, y, z
  double qfac = 1.0;
  double pixdim[4] = {1, 1, 1, 0};        ///< pixdim[1..4] as stored (pixdim[4] in time_units)
  double time_step_read = 1.0;           ///< Geometry::time_step as read (seconds)
  int xyz_units = 2, time_units = 8;     ///< NIFTI_UNITS_* (mm, s by default)
  int intent_code = 0;
  double intent_p[3] = {0, 0, 0};
  std::string intent_name, descrip, aux_file;
  int dim_info = 0, slice_code = 0;
  int64_t slice_start = 0, slice_end = 0;
  double slice_duration = 0, toffset = 0, cal_min = 0, cal_max = 0;
  std::vector<NiftiExtension> extensions;
};

/// Meta for an output whose values come from `content` (an image read) on the grid of `grid`
/// (another image read): the xform codes and quaternion of `grid`, the descriptive fields of
/// `content`; slice timing and extensions are dropped unless both describe the same grid.
NiftiMeta meta_on_grid(const NiftiMeta& content, const NiftiMeta& grid);

struct NiftiHeaderInfo {
  Geometry geometry;
  DataType dtype = DataType::Float32;   ///< on-disk type
  int version = 1;                      ///< 1 or 2
  int sform_code = 0, qform_code = 0;
  double scl_slope = 1.0, scl_inter = 0.0; ///< as applied (1, 0 when unscaled)
  NiftiMeta meta;
};

/// Read the header only (geometry, datatype). Throws IoError naming the file on any problem.
NiftiHeaderInfo read_nifti_header(const std::string& path);

/// Read a whole image as T (float or double), scaling applied. Throws IoError naming the file.
template <class T> Image<T> read_nifti(const std::string& path, NiftiHeaderInfo* info = nullptr);
/// Whether an image stored as `stored` is computed in double: its type holds more than a float keeps
/// (float64, 32- and 64-bit integers), or the output type `wanted` is float64.
bool read_in_double(DataType stored, DataType wanted);
/// The image as float, or as double when its on-disk type holds more than a float keeps (float64,
/// 32- and 64-bit integers) or `want_double`: the header is read once and decides.
std::variant<Image<float>, Image<double>> read_nifti_float_or_double(const std::string& path, bool want_double,
                                                                     NiftiHeaderInfo* info = nullptr);

/// Read a vector image as ITK and ANTs write them (displacement fields: X x Y x Z x 1 x C, dim[0] = 5,
/// dim[4] = 1, usually intent vector): the C components land in dims[3]. Anything else is refused.
template <class T> Image<T> read_nifti_vector(const std::string& path, NiftiHeaderInfo* info = nullptr);

struct NiftiWriteOptions {
  DataType dtype = DataType::Float32;
  int xform_code = 2;  ///< sform_code and qform_code written (2 = aligned anat, 1 = scanner anat)
  int gzip_level = 1;  ///< libdeflate level for .nii.gz (1..12; 1 is fastest and, like nibabel's zlib level 1, nearly as small)
  /// Header fields to keep (from NiftiHeaderInfo::meta or meta_on_grid). On the grid they were read
  /// with, everything is kept (xform codes and both xforms, units, intent, descrip, aux_file,
  /// dim_info, slice timing, toffset, cal_min/max, extensions); on another grid, the codes, intent,
  /// descrip, aux_file, cal_min/max, toffset and time unit are kept and slice timing and extensions
  /// dropped. xform_code is used only without meta.
  const NiftiMeta* meta = nullptr;
};

/// Write an image to .nii or .nii.gz (NIfTI-1, or NIfTI-2 when a dimension exceeds 32767), with
/// both sform and qform set from the geometry (see NiftiWriteOptions::meta). Integer types are rounded (half away from zero) and
/// clamped. The file is written under a temporary name and renamed when complete.
template <class T> void write_nifti(const std::string& path, const Image<T>& img, const NiftiWriteOptions& opts = {});

/// A NIfTI image read a frame (the first three dimensions) at a time, scaling applied per frame as
/// read_nifti applies it: .nii (and .hdr/.img) by reading the frame's bytes, .nii.gz by streaming
/// decompression -- frames read in increasing order cost one pass over the file; going back restarts
/// it, unless `spool`: then the decompressed bytes are kept in an unlinked temporary file (in
/// $TMPDIR; the system removes it when the reader closes or the process ends) and read from there.
/// Not thread-safe. Throws IoError naming the file (bad header; truncated data when reached).
class NiftiFrameReader {
public:
  explicit NiftiFrameReader(const std::string& path, bool spool = false);
  ~NiftiFrameReader();
  NiftiFrameReader(const NiftiFrameReader&) = delete;
  NiftiFrameReader& operator=(const NiftiFrameReader&) = delete;
  const NiftiHeaderInfo& info() const;
  int64_t frames() const;                 ///< product of the dimensions past the third
  void read(int64_t t, float* dst);       ///< frame t: info().geometry.frame_size() values

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes an image as its values arrive (append, in voxel order), to the same bytes write_nifti
/// writes: the header, then the converted values, gzip members compressed in parallel. The file is
/// under a temporary name until finish() (which checks that every voxel came); destroyed
/// unfinished, it removes the temporary. Throws as write_nifti.
class NiftiWriter {
public:
  NiftiWriter(const std::string& path, const Geometry& g, const NiftiWriteOptions& opts = {});
  ~NiftiWriter();
  NiftiWriter(const NiftiWriter&) = delete;
  NiftiWriter& operator=(const NiftiWriter&) = delete;
  template <class T> void append(const T* values, int64_t n);
  void finish();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Check that `path` can be used for an output image (.nii / .nii.gz, directory exists).
void check_nifti_output_path(const std::string& path);

} // namespace voxalign
