// Reading world-space affine transforms from files.
//
// Every transform is a pull-back in RAS+ millimetres: it maps a point of the output (fixed) space
// to the point of the input (moving) space that is sampled there -- the convention of ITK/ANTs
// transform files. ITK files are in LPS and are converted here, at the file boundary.
#pragma once
#include <string>
#include <vector>

#include "voxalign/image/geometry.hpp"

namespace voxalign {

/// Read one transform file and return it as a 4x4 RAS pull-back matrix. Accepted formats:
///  - a plain text 4x4 matrix (RAS, rows on lines; '#' starts a comment);
///  - an ITK Insight Transform text file (.txt/.tfm): AffineTransform, MatrixOffsetTransformBase,
///    Euler3DTransform, VersorRigid3DTransform, Similarity3DTransform, TranslationTransform
///    (double or float, 3D), alone or inside a CompositeTransform (applied as ITK does: last first);
///  - an ITK MATLAB v4 binary .mat file as written by ANTs (AffineTransform_double_3_3 + fixed).
/// Throws IoError naming the file and the problem.
Mat4 read_transform(const std::string& path);

/// Parse ITK transform text (LPS) and return the RAS pull-back matrix. `what` names the source in errors.
Mat4 parse_itk_transform_text(const std::string& text, const std::string& what);

/// Convert between LPS and RAS (the same operation both ways: conjugation by diag(-1,-1,1,1)).
Mat4 lps_ras_flip(const Mat4& m);

/// Write a RAS pull-back matrix as an ITK AffineTransform_double_3_3 text file (LPS, centre 0).
void write_itk_affine(const std::string& path, const Mat4& ras_pullback);

/// The same, as text (what write_itk_affine writes).
std::string itk_affine_text(const Mat4& ras_pullback);

/// Write a 4x4 RAS pull-back matrix as plain text (four rows of four numbers).
void write_ras_matrix(const std::string& path, const Mat4& ras_pullback);

/// Read a plain-text 4x4 matrix (no interpretation). Throws IoError naming the file.
Mat4 read_plain_matrix_file(const std::string& path);

/// True for a readable text file that holds no ITK transform header (a candidate plain matrix).
bool is_text_matrix_file(const std::string& path);

/// Write `text` to `path` through a temporary name (no half-written file on failure).
void write_text_file(const std::string& path, const std::string& text);

/// FSL FLIRT matrices (.mat text, as flirt -omat writes them): M maps the input (moving) image's
/// scaled-voxel coordinates to the reference (fixed) image's, where scaled-voxel = voxel * pixdim
/// with the i axis flipped when the voxel->world determinant is positive. These convert between a
/// FLIRT matrix and the RAS pull-back (reference world -> input world) for the two images' grids.
Mat4 fsl_scaled_voxel_matrix(const Geometry& g);
Mat4 fsl_to_ras_pullback(const Mat4& flirt, const Geometry& reference, const Geometry& input);
Mat4 ras_pullback_to_fsl(const Mat4& ras_pullback, const Geometry& reference, const Geometry& input);
void write_fsl_matrix(const std::string& path, const Mat4& ras_pullback, const Geometry& reference,
                      const Geometry& input);

/// Compose pull-back transforms given in application order: the output point is mapped by
/// transforms[0] first, then transforms[1], ... Returns T_n * ... * T_1.
Mat4 compose_in_order(const std::vector<Mat4>& transforms);

} // namespace voxalign
