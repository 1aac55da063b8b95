// NIfTI-1 / NIfTI-2 reading and writing (.nii, .nii.gz): headers through nifti_clib, data bytes
// through libdeflate/zlib (see docs/nifti.md for why).
//
// The world matrix follows nibabel's rule: the sform when sform_code > 0, else the qform when
// qform_code > 0, else nibabel's fall-back (pixdim scaling, x flipped, origin at the centre).
// scl_slope / scl_inter are applied on reading (slope 0 or non-finite means no scaling).
#pragma once
#include <string>

#include "voxalign/image/image.hpp"

namespace voxalign {

enum class DataType { UInt8, Int8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64 };
/// "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
DataType parse_dtype(const std::string& name);
std::string dtype_name(DataType t);

struct NiftiHeaderInfo {
  Geometry geometry;
  DataType dtype = DataType::Float32;   ///< on-disk type
  int version = 1;                      ///< 1 or 2
  int sform_code = 0, qform_code = 0;
  double scl_slope = 1.0, scl_inter = 0.0; ///< as applied (1, 0 when unscaled)
};

/// Read the header only (geometry, datatype). Throws IoError naming the file on any problem.
NiftiHeaderInfo read_nifti_header(const std::string& path);

/// Read a whole image as T (float or double), scaling applied. Throws IoError naming the file.
template <class T> Image<T> read_nifti(const std::string& path, NiftiHeaderInfo* info = nullptr);

struct NiftiWriteOptions {
  DataType dtype = DataType::Float32;
  int xform_code = 2;  ///< sform_code and qform_code written (2 = aligned anat, 1 = scanner anat)
  int gzip_level = 1;  ///< libdeflate level for .nii.gz (1..12; 1 is fastest and, like nibabel's zlib level 1, nearly as small)
};

/// Write an image to .nii or .nii.gz (NIfTI-1, or NIfTI-2 when a dimension exceeds 32767), with
/// both sform and qform set from the geometry. Integer types are rounded (half away from zero) and
/// clamped. The file is written under a temporary name and renamed when complete.
template <class T> void write_nifti(const std::string& path, const Image<T>& img, const NiftiWriteOptions& opts = {});

/// Check that `path` can be used for an output image (.nii / .nii.gz, directory exists).
void check_nifti_output_path(const std::string& path);

} // namespace voxalign
