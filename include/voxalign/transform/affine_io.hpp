// Reading world-space affine transforms from files.
//
// Every transform is a pull-back in RAS+ millimetres: it maps a point of the output (fixed) space
// to the point of the input (moving) space that is sampled there -- the convention of ITK/ANTs
// transform files. ITK files are in LPS and are converted here, at the file boundary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "voxalign/image/geometry.hpp"

namespace voxalign {

/// What a transform file holds, told by its content and name -- never guessed (docs/register.md,
/// "Transform files"):
///  - ItkBinary: binary content (NUL bytes): an ITK MATLAB v4 .mat as ANTs writes it;
///  - ItkText: an "#Insight Transform File" / "Transform:" text;
///  - VoxalignRas: a text matrix with voxalign's "# voxalign RAS" header (--save-matrix);
///  - Afni: 12 numbers on one line, or a name ending .1D (AFNI 3dAllineate/cat_matvec): refused;
///  - FslFlirt: any other text matrix named .mat (flirt -omat): needs the two images' grids;
///  - RasText: any other text matrix (4x4, or 3x4 with 0 0 0 1 implied), RAS pull-back;
///  - ItkHdf5: a name ending .h5/.hdf5/.hdf (ITK's rule): ITK HDF5 (itk_hdf5.hpp); HDF5's signature
///    under another name is refused by name.
enum class TransformFormat { ItkBinary, ItkText, VoxalignRas, Afni, FslFlirt, RasText, ItkHdf5 };
TransformFormat transform_file_format(const std::string& path);
std::string transform_format_name(TransformFormat f);

/// Most bytes a transform file may have (a /dev/zero or a mistaken image is refused, not read).
constexpr uint64_t kMaxTransformFileBytes = uint64_t(64) << 20;

/// Read one transform file and return it as a 4x4 RAS pull-back matrix (reference/output/fixed
/// world -> input/moving world). Formats as transform_file_format says; ITK text may hold
/// AffineTransform, MatrixOffsetTransformBase, Euler3DTransform, VersorRigid3DTransform,
/// Similarity3DTransform, TranslationTransform (double or float, 3D), alone or inside a
/// CompositeTransform (applied as ITK does: last first); ITK HDF5 files the same types (a
/// displacement field is refused here: see read_transform_chain). An FSL FLIRT matrix is converted when both
/// grids are given (reference = FLIRT's -ref, the output grid; input = FLIRT's -in) and refused by
/// name otherwise; an AFNI matrix is refused by name. Every number must be finite. Throws IoError
/// naming the file and the problem.
Mat4 read_transform(const std::string& path, const Geometry* reference = nullptr, const Geometry* input = nullptr);

/// One ITK transform of an affine-family type (`type` as ITK names it, e.g. AffineTransform_double_3_3)
/// from its parameters and fixed parameters, as the LPS matrix y = M (x - c) + t + c. Shared by the
/// text, .mat and HDF5 readers. Throws IoError naming `what` for other types or wrong counts.
Mat4 itk_transform_lps(const std::string& type, const std::vector<double>& params, const std::vector<double>& fixed,
                       const std::string& what);

/// Parse ITK transform text (LPS) and return the RAS pull-back matrix. `what` names the source in errors.
Mat4 parse_itk_transform_text(const std::string& text, const std::string& what);

/// Whether a file name ends in `lower_suffix` (given in lower case), in any case: how transform files
/// are told by name.
bool name_ends_with(const std::string& path, const std::string& lower_suffix);

/// Convert between LPS and RAS (the same operation both ways: conjugation by diag(-1,-1,1,1)).
Mat4 lps_ras_flip(const Mat4& m);

/// Write a RAS pull-back matrix as an ITK AffineTransform_double_3_3 text file (LPS, centre 0).
void write_itk_affine(const std::string& path, const Mat4& ras_pullback);

/// The same, as text (what write_itk_affine writes).
std::string itk_affine_text(const Mat4& ras_pullback);

/// Write a RAS pull-back matrix as an ITK/ANTs binary .mat: what ITK's MatlabTransformIO writes (and so
/// ANTs, e.g. its 0GenericAffine.mat) and SimpleITK.ReadTransform / antsApplyTransforms read. Two MATLAB
/// v4 records (little-endian, doubles, column vectors): "AffineTransform_double_3_3" (12x1: the LPS
/// matrix row by row, then the translation, as in itk_affine_text) and "fixed" (3x1: the centre, 0 0 0).
void write_itk_mat(const std::string& path, const Mat4& ras_pullback);

/// The same, as bytes (what write_itk_mat writes).
std::string itk_mat_bytes(const Mat4& ras_pullback);

/// Whether `path` names an ITK transform file that write_itk_transform writes: .txt or .tfm (ITK text),
/// .mat (ITK/ANTs binary MATLAB v4) or .h5/.hdf5/.hdf (ITK HDF5), in any case.
bool is_itk_transform_name(const std::string& path);

/// Throw InvalidArgument ("<option>: <path>: ...", one line naming the accepted extensions) unless
/// is_itk_transform_name(path).
void check_itk_transform_name(const std::string& path, const std::string& option);

/// Write an ITK affine transform file in the encoding its name asks for, as ITK's TransformFileWriter
/// does: .mat -> write_itk_mat (binary), .h5 -> write_itk_hdf5, .txt/.tfm -> write_itk_affine (text); any other name is refused
/// (InvalidArgument, as check_itk_transform_name).
void write_itk_transform(const std::string& path, const Mat4& ras_pullback, const std::string& option = "ITK transform");

/// Write a 4x4 RAS pull-back matrix as text: a "# voxalign RAS" comment line, then four rows of
/// four numbers (the comment makes the file's meaning known whatever its name).
void write_ras_matrix(const std::string& path, const Mat4& ras_pullback);

/// Write `text` to `path` through a temporary name (no half-written file on failure). The bytes are
/// written as they are (binary mode; NUL bytes included), so binary files go through it too.
void write_text_file(const std::string& path, const std::string& text);

/// FSL FLIRT matrices (.mat text, as flirt -omat writes them): M maps the input (moving) image's
/// scaled-voxel coordinates to the reference (fixed) image's, where scaled-voxel = voxel * pixdim
/// with the i axis flipped when the voxel->world determinant is positive. These convert between a
/// FLIRT matrix and the RAS pull-back (reference world -> input world) for the two images' grids.
Mat4 fsl_scaled_voxel_matrix(const Geometry& g);
Mat4 fsl_to_ras_pullback(const Mat4& flirt, const Geometry& reference, const Geometry& input);
Mat4 ras_pullback_to_fsl(const Mat4& ras_pullback, const Geometry& reference, const Geometry& input);
/// The file name must end in .mat (what FLIRT writes, and how readers tell a FLIRT matrix).
void write_fsl_matrix(const std::string& path, const Mat4& ras_pullback, const Geometry& reference,
                      const Geometry& input);

/// Compose pull-back transforms given in application order: the output point is mapped by
/// transforms[0] first, then transforms[1], ... Returns T_n * ... * T_1.
Mat4 compose_in_order(const std::vector<Mat4>& transforms);

} // namespace voxalign
