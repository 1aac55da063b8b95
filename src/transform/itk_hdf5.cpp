// ITK HDF5 transform files through libhdf5's C API (layout: itk_hdf5.hpp). libhdf5 prints its error
// stack to stderr unless told not to; every entry point here silences it (the library never prints)
// and turns each failure into one IoError naming the file.
#include "voxalign/transform/itk_hdf5.hpp"

#include <hdf5.h>
#include <sys/utsname.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <vector>

#include "voxalign/core/error.hpp"
#include "voxalign/core/file_read.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign {
namespace {

// An HDF5 identifier closed when it goes out of scope.
class H5Id {
public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  operator hid_t() const { return id_; }
  bool ok() const { return id_ >= 0; }

private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

bool link_exists(hid_t loc, const std::string& name) { return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0; }

// Most values one dataset may hold: a 1024^3 field's 3 components.
constexpr hssize_t kMaxValues = hssize_t(3) << 30;

std::string read_string(hid_t loc, const std::string& name, const std::string& what) {
  VX_CHECK(link_exists(loc, name), IoError, what, ": no ", name, " dataset");
  const H5Id ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  VX_CHECK(ds.ok(), IoError, what, ": cannot open ", name);
  const H5Id type(H5Dget_type(ds), H5Tclose), space(H5Dget_space(ds), H5Sclose);
  VX_CHECK(type.ok() && space.ok() && H5Tget_class(type) == H5T_STRING, IoError, what, ": ", name,
           " is not a string");
  VX_CHECK(H5Sget_simple_extent_npoints(space) == 1, IoError, what, ": ", name, " must hold one string");
  std::string out;
  if (H5Tis_variable_str(type) > 0) {
    const H5Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem, H5T_VARIABLE);
    char* p = nullptr;
    VX_CHECK(H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) >= 0, IoError, what, ": cannot read ", name);
    if (p) out = std::string(p, strnlen(p, 4096));
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, &p);
  } else {
    const size_t n = H5Tget_size(type);
    VX_CHECK(n > 0 && n <= 4096, IoError, what, ": ", name, " has an implausible length");
    std::vector<char> buf(n + 1, '\0');
    VX_CHECK(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0, IoError, what, ": cannot read ", name);
    out = std::string(buf.data(), strnlen(buf.data(), n));
    while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  }
  return out;
}

// A float dataset of any rank, flattened; at most `max_values` values, each finite. Absent: empty.
std::vector<double> read_doubles(hid_t loc, const std::string& name, hssize_t max_values, const std::string& what) {
  if (!link_exists(loc, name)) return {};
  const H5Id ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  VX_CHECK(ds.ok(), IoError, what, ": cannot open ", name);
  const H5Id type(H5Dget_type(ds), H5Tclose), space(H5Dget_space(ds), H5Sclose);
  VX_CHECK(type.ok() && space.ok() && H5Tget_class(type) == H5T_FLOAT, IoError, what, ": ", name,
           " is not an array of floating-point numbers");
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  VX_CHECK(n >= 0 && n <= max_values, IoError, what, ": ", name, " holds ", n, " values (at most ", max_values,
           " expected)");
  std::vector<double> v(static_cast<size_t>(n));
  if (n > 0)
    VX_CHECK(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0, IoError, what,
             ": cannot read ", name, " (truncated or corrupt file?)");
  for (double x : v) VX_CHECK(std::isfinite(x), IoError, what, ": ", name, " holds a value that is not finite");
  return v;
}

// DisplacementFieldTransform: fixed = size (3), origin (3), spacing (3), direction (9, row by row),
// all LPS; parameters = the field's vectors (LPS mm), voxel by voxel (i fastest), components interleaved.
std::shared_ptr<const DisplacementField> field_from_itk(hid_t g, const std::string& what) {
  const std::vector<double> f = read_doubles(g, "TransformFixedParameters", 1000, what);
  VX_CHECK(f.size() == 18, IoError, what, ": a 3D DisplacementFieldTransform needs 18 fixed parameters (size, origin, ",
           "spacing, direction), found ", f.size());
  Geometry geo;
  geo.ndim = 4;
  for (int d = 0; d < 3; ++d) {
    VX_CHECK(f[d] >= 1 && f[d] <= (1 << 20) && f[d] == std::floor(f[d]), IoError, what,
             ": DisplacementFieldTransform size ", f[d], " is not a positive whole number");
    geo.dims[d] = int64_t(f[d]);
    VX_CHECK(f[6 + d] > 0, IoError, what, ": DisplacementFieldTransform spacing must be positive");
  }
  geo.dims[3] = 3;
  validate_dims(geo.dims, 4);
  Mat4 lps = Mat4::Identity();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) lps(r, c) = f[9 + 3 * r + c] * f[6 + c];
    lps(r, 3) = f[3 + r];
  }
  geo.affine = lps; // voxel -> LPS world; RAS flips the world's x and y
  geo.affine.topRows<2>() *= -1.0;
  const int64_t nvox = geo.frame_size();
  const std::vector<double> p = read_doubles(g, "TransformParameters", std::min<hssize_t>(kMaxValues, 3 * nvox), what);
  VX_CHECK(int64_t(p.size()) == 3 * nvox, IoError, what, ": a DisplacementFieldTransform of ", geo.dims[0], "x",
           geo.dims[1], "x", geo.dims[2], " needs ", 3 * nvox, " parameters, found ", p.size());
  auto field = std::make_shared<DisplacementField>();
  field->u = Image<double>(geo, no_init);
  double* u = field->u.data();
  for (int64_t v = 0; v < nvox; ++v) {
    u[v] = -p[3 * v];
    u[nvox + v] = -p[3 * v + 1];
    u[2 * nvox + v] = p[3 * v + 2];
  }
  check_displacement_field(*field, what);
  return field;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

void write_string(hid_t loc, const char* name, const std::string& value) {
  const H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, H5T_VARIABLE);
  const hsize_t one = 1;
  const H5Id space(H5Screate_simple(1, &one, nullptr), H5Sclose);
  const H5Id ds(H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  const char* p = value.c_str();
  if (!ds.ok() || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) < 0)
    throw IoError(std::string("cannot write ") + name);
}

void write_doubles(hid_t loc, const char* name, const std::vector<double>& v) {
  const hsize_t n = v.size();
  const H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  const H5Id ds(H5Dcreate2(loc, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!ds.ok() || H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    throw IoError(std::string("cannot write ") + name);
}

} // namespace

bool is_hdf5_transform_name(const std::string& path) {
  return name_ends_with(path, ".h5") || name_ends_with(path, ".hdf5") || name_ends_with(path, ".hdf");
}

TransformChain read_itk_hdf5(const std::string& path) {
  check_regular_file(path, "transform file");
  silence_hdf5();
  VX_CHECK(H5Fis_hdf5(path.c_str()) > 0, IoError, path, ": not an HDF5 file (an ITK .h5 transform is)");
  const H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  VX_CHECK(file.ok(), IoError, path, ": cannot open as HDF5 (corrupt file?)");
  VX_CHECK(link_exists(file, "TransformGroup"), IoError, path,
           ": no /TransformGroup: not an ITK HDF5 transform file");
  const H5Id group(H5Gopen2(file, "TransformGroup", H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  VX_CHECK(group.ok() && H5Gget_info(group, &info) >= 0, IoError, path, ": cannot read /TransformGroup");
  const hsize_t n = info.nlinks;
  VX_CHECK(n >= 1 && n <= 10000, IoError, path, ": /TransformGroup holds ", n, " transforms");
  // Transforms in file order; a CompositeTransform header (group 0) says the rest compose.
  std::vector<TransformStep> file_order;
  bool composite = false;
  for (hsize_t i = 0; i < n; ++i) {
    const std::string name = std::to_string(i), what = path + ": /TransformGroup/" + name;
    VX_CHECK(link_exists(group, name), IoError, path, ": /TransformGroup has no transform ", name,
             " (transforms are numbered from 0)");
    const H5Id g(H5Gopen2(group, name.c_str(), H5P_DEFAULT), H5Gclose);
    VX_CHECK(g.ok(), IoError, what, " is not a group");
    const std::string type = read_string(g, "TransformType", what);
    if (starts_with(type, "CompositeTransform")) {
      VX_CHECK(i == 0, IoError, what, ": a CompositeTransform may only come first");
      composite = true;
      continue;
    }
    TransformStep step;
    if (starts_with(type, "DisplacementFieldTransform")) {
      VX_CHECK(type.size() >= 4 && type.compare(type.size() - 4, 4, "_3_3") == 0, IoError, what,
               ": only 3D displacement fields are supported (", type, ")");
      step.field = field_from_itk(g, what);
    } else {
      const std::vector<double> p = read_doubles(g, "TransformParameters", 1000, what);
      const std::vector<double> f = read_doubles(g, "TransformFixedParameters", 1000, what);
      step.matrix = lps_ras_flip(itk_transform_lps(type, p, f, what));
    }
    file_order.push_back(std::move(step));
  }
  VX_CHECK(!file_order.empty(), IoError, path, ": empty CompositeTransform");
  VX_CHECK(composite || file_order.size() == 1, IoError, path, ": holds ", file_order.size(),
           " transforms without a CompositeTransform header");
  // ITK's CompositeTransform applies the last transform of its queue first.
  TransformChain chain;
  chain.steps.assign(file_order.rbegin(), file_order.rend());
  return chain;
}

void write_itk_hdf5(const std::string& path, const Mat4& ras) {
  const Mat4 lps = lps_ras_flip(ras);
  std::vector<double> p;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) p.push_back(lps(r, c));
  for (int r = 0; r < 3; ++r) p.push_back(lps(r, 3));
  const std::string tmp = temporary_output(path);
  try {
    silence_hdf5();
    {
      const H5Id file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
      if (!file.ok()) throw IoError("cannot create the file");
      unsigned maj = 0, min = 0, rel = 0;
      H5get_libversion(&maj, &min, &rel);
      // The descriptive strings ITK writes beside the transforms (its readers do not need them).
      write_string(file, "HDFVersion", "HDF5 library version: " + std::to_string(maj) + "." + std::to_string(min) +
                                           "." + std::to_string(rel));
      write_string(file, "ITKVersion", "written by voxalign (ITK HDF5TransformIO layout)");
      utsname u{};
      const bool have_uname = uname(&u) == 0;
      write_string(file, "OSName", have_uname ? u.sysname : "unknown");
      write_string(file, "OSVersion", have_uname ? u.release : "unknown");
      const H5Id tg(H5Gcreate2(file, "TransformGroup", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      const H5Id g0(H5Gcreate2(tg, "0", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      if (!tg.ok() || !g0.ok()) throw IoError("cannot create /TransformGroup/0");
      write_doubles(g0, "TransformFixedParameters", {0.0, 0.0, 0.0});
      write_doubles(g0, "TransformParameters", p);
      write_string(g0, "TransformType", "AffineTransform_double_3_3");
      if (H5Fflush(file, H5F_SCOPE_LOCAL) < 0) throw IoError("cannot flush (disk full?)");
    }
  } catch (const Error& e) {
    discard_output(tmp);
    throw IoError(path + ": " + e.what());
  }
  finish_output(tmp, path);
}

} // namespace voxalign
