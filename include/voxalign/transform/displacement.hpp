// Transform chains: affine matrices and displacement fields applied one after the other, as
// antsApplyTransforms and ITK's CompositeTransform apply them, and resampling through them.
//
// Every step is a pull-back in RAS+ millimetres (output/fixed point -> input/moving point). A
// displacement field step maps y to y + u(y), with u interpolated linearly on its grid and zero
// outside it, as ITK's DisplacementFieldTransform does. ITK/ANTs files hold fields in LPS; they are
// converted where they are read (read_displacement_field, read_itk_hdf5).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "voxalign/image/geometry.hpp"
#include "voxalign/image/image.hpp"
#include "voxalign/resample/resample.hpp"

namespace voxalign {

/// A displacement field in world millimetres (RAS): dims[0..2] its grid, dims[3] = 3 components
/// (x, y, z), geometry().affine the grid's voxel -> world (RAS) matrix.
struct DisplacementField {
  Image<double> u;
};

/// One step of a chain: y -> matrix * y, or y -> y + u(y) when `field` is set (matrix unused).
struct TransformStep {
  Mat4 matrix = Mat4::Identity();
  std::shared_ptr<const DisplacementField> field;
};

/// Steps in application order: the output point is mapped by steps[0] first, then steps[1], ...
/// (the order of voxalign's -t options, which is antsApplyTransforms' -t order: docs/transforms.md).
struct TransformChain {
  std::vector<TransformStep> steps;

  bool is_affine() const;
  /// The composed matrix of an all-affine chain; InvalidArgument when a step is a field.
  Mat4 affine() const;
  void append(const Mat4& m);
  void append(std::shared_ptr<const DisplacementField> f);
  void append(const TransformChain& c);
  /// Map `n` world points (x, y, z interleaved, RAS mm) through the chain, in place.
  void map_points(double* xyz, int64_t n) const;
};

/// Check a displacement field (3 components on a 3D grid, finite values, invertible grid matrix);
/// throws IoError naming `what`.
void check_displacement_field(const DisplacementField& f, const std::string& what);

/// Read an ITK/ANTs displacement field: a NIfTI vector image X x Y x Z x 1 x 3 (dim[5] = 3) holding
/// fixed point -> moving point displacements in LPS millimetres, as antsRegistration and SimpleITK
/// write them. Returned in RAS. Throws IoError naming the file.
DisplacementField read_displacement_field(const std::string& path);
/// Write a displacement field as ITK/ANTs read it (NIfTI X x Y x Z x 1 x 3, intent vector, LPS mm).
void write_displacement_field(const std::string& path, const DisplacementField& field);

/// Whether a transform argument names a displacement-field image (.nii / .nii.gz).
bool is_displacement_field_name(const std::string& path);

/// Read transforms given in application order (voxalign's -t order) into one chain: NIfTI
/// displacement fields, ITK HDF5 files (.h5: affine, displacement field, or composites of those) and
/// every affine file read_transform reads (the grids as read_transform takes them, for a FLIRT
/// matrix given alone). Throws IoError naming the file.
TransformChain read_transform_chain(const std::vector<std::string>& paths, const Geometry* reference = nullptr,
                                    const Geometry* input = nullptr);

/// Resample `in` onto the spatial grid of `target` through `chain` (as resample(), which it calls
/// for an all-affine chain). Otherwise the input points of the whole output grid are computed once
/// (3 values of T per voxel) and every frame is interpolated at them.
template <class T>
Image<T> resample_chain(const Image<T>& in, const Geometry& target, const TransformChain& chain,
                        const ResampleOptions& opts);

/// Same on a view, writing into `out` (dims[0..2] the target grid, dims[3] the frames of `in`).
template <class T>
void resample_chain_into(ImageView<const T> in, const Mat4& in_affine, int in_axes, ImageView<T> out,
                         const Mat4& out_affine, const TransformChain& chain, const ResampleOptions& opts);

} // namespace voxalign
