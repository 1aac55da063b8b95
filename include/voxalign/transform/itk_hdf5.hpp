// ITK HDF5 transform files (.h5), the layout ITK's HDF5TransformIO writes (SimpleITK, ANTs'
// composite transforms): /TransformGroup/<i>/{TransformType, TransformParameters,
// TransformFixedParameters}; a CompositeTransform is group 0 and its transforms follow as 1..N.
// Read and written through libhdf5's C API.
#pragma once
#include <string>

#include "voxalign/transform/displacement.hpp"

namespace voxalign {

/// Whether `path` names an HDF5 transform file (.h5, .hdf5, .hdf in any case: ITK's extensions).
bool is_hdf5_transform_name(const std::string& path);

/// Read an ITK HDF5 transform file as a chain in application order (RAS). Holds one transform or a
/// CompositeTransform (applied as ITK does: its last transform first) of the affine-family types
/// read_transform reads and DisplacementFieldTransform (the field in LPS in the parameters, its grid
/// -- size, origin, spacing, direction -- in the fixed parameters). Throws IoError naming the file.
TransformChain read_itk_hdf5(const std::string& path);

/// Write a RAS pull-back matrix as ITK's HDF5TransformIO writes an AffineTransform_double_3_3 (LPS,
/// centre 0), through a temporary name.
void write_itk_hdf5(const std::string& path, const Mat4& ras_pullback);

} // namespace voxalign
