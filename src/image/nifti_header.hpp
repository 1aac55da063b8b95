// NIfTI-1/2 headers: parsing with every check nibabel makes (and a few it should), and building the
// bytes that precede the data when writing. Private to src/image.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "voxalign/image/nifti.hpp"

namespace voxalign::nifti_detail {

/// A header as parsed and checked: everything the reader needs to find and convert the data.
struct ParsedHeader {
  NiftiHeaderInfo info;   ///< geometry, datatype, version, codes, scaling, meta
  bool single_file = true; ///< n+1 / n+2 (data in the same file) or ni1 / ni2 (.hdr/.img pair)
  bool swapped = false;    ///< the file's byte order differs from this machine's
  int nbyper = 0;          ///< bytes per voxel
  int64_t vox_offset = 0;  ///< where the data start, resolved (0 in a single file means 352 / 544)
  int64_t nbytes = 0;      ///< data bytes (voxels x nbyper), checked against overflow
  size_t header_size = 0;  ///< 348 or 540
};

/// Two grids are the same for the header's purposes (xforms, slice timing, extensions kept) when their
/// dims agree and their matrices within this many mm: float32 header rounding, nothing more.
constexpr double kSameGridTol = 1e-6;

/// Bytes of the header to read before parse_header can run (the larger of the two versions).
constexpr size_t kHeaderProbe = 540;

/// Parse and check a header held in bytes [p, p + n) -- at least the header, and for a single file
/// also whatever of the extensions follow. `path` names the file in errors; `pair` says the name is
/// .hdr/.img. Throws IoError naming the file and the problem. With `vector`, the image must be a vector
/// image (dim[0] = 5, dim[4] = 1) and its dim[5] components become Geometry::dims[3].
ParsedHeader parse_header(const unsigned char* p, size_t n, const std::string& path, bool pair, bool vector = false);

/// NIfTI datatype code of a DataType, and its size in bytes.
int nifti_code(DataType t);
int nifti_size(DataType t);

/// The bytes of a single-file header (NIfTI-1, or NIfTI-2 when `big`), extension flag and extensions
/// included: the data start right after them. See NiftiWriteOptions::meta for what meta keeps.
std::vector<unsigned char> build_header(const Geometry& g, DataType dtype, const NiftiMeta* meta, int xform_code,
                                        bool big, const std::string& path);

} // namespace voxalign::nifti_detail
