// Transform chains with displacement fields, and ITK HDF5 files: what a field step does (linear,
// zero outside its grid, as ITK's DisplacementFieldTransform), the order of steps, resampling through
// a chain against resampling through the equivalent matrix, and .h5 round trips and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/transform/affine_io.hpp"
#include "voxalign/transform/displacement.hpp"
#include "voxalign/transform/itk_hdf5.hpp"

using namespace voxalign;

namespace {

std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("vx_disp_" + std::to_string(::getpid()) + "_" + name)).string();
}

Image<float> smooth_image() {
  Geometry g;
  g.dims = {24, 20, 18, 1};
  g.affine.diagonal() << 1.5, 1.2, 1.4, 1.0;
  g.affine.col(3) << -15.0, -12.0, -11.0, 1.0;
  Image<float> img(g);
  for (int64_t k = 0; k < 18; ++k)
    for (int64_t j = 0; j < 20; ++j)
      for (int64_t i = 0; i < 24; ++i)
        img.view()(i, j, k) = float(std::sin(0.3 * double(i)) * std::cos(0.25 * double(j)) + 0.05 * double(k));
  return img;
}

// A field of constant displacement d (RAS mm) on a grid of its own covering `g`'s world box.
std::shared_ptr<DisplacementField> constant_field(const Vec3& d, const Geometry& over) {
  auto f = std::make_shared<DisplacementField>();
  Geometry fg;
  fg.ndim = 4;
  fg.dims = {30, 30, 30, 3};
  fg.affine.diagonal() << 2.5, 2.0, 2.2, 1.0;
  fg.affine.col(3) << -35.0, -30.0, -32.0, 1.0;
  const Vec3 lo = (fg.affine * Eigen::Vector4d(0, 0, 0, 1)).head<3>(), hi = (fg.affine * Eigen::Vector4d(29, 29, 29, 1)).head<3>();
  for (int64_t c = 0; c < 8; ++c) { // the corners of `over` lie well inside the field's grid
    const Eigen::Vector4d v(c & 1 ? double(over.dims[0] - 1) : 0.0, c & 2 ? double(over.dims[1] - 1) : 0.0,
                            c & 4 ? double(over.dims[2] - 1) : 0.0, 1.0);
    const Vec3 w = (over.affine * v).head<3>();
    EXPECT_TRUE((w.array() > lo.array() + 5).all() && (w.array() < hi.array() - 5).all());
  }
  f->u = Image<double>(fg);
  const int64_t n = fg.frame_size();
  for (int c = 0; c < 3; ++c)
    for (int64_t v = 0; v < n; ++v) f->u.data()[c * n + v] = d[c];
  return f;
}

double max_diff(const Image<float>& a, const Image<float>& b) {
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}

} // namespace

TEST(TransformChain, StepsApplyInOrder) {
  Mat4 A = Mat4::Identity(), B = Mat4::Identity();
  A(0, 3) = 5.0;
  B(0, 0) = 2.0;
  TransformChain c;
  c.append(A);
  c.append(B);
  double p[3] = {1.0, 2.0, 3.0};
  c.map_points(p, 1);
  EXPECT_DOUBLE_EQ(p[0], 12.0); // B(A(x)) = 2 * (1 + 5)
  EXPECT_TRUE(c.is_affine());
  EXPECT_LT((c.affine() - compose_in_order({A, B})).norm(), 1e-15);
}

TEST(TransformChain, FieldIsLinearAndZeroOutsideItsGrid) {
  auto f = std::make_shared<DisplacementField>();
  Geometry g;
  g.ndim = 4;
  g.dims = {4, 4, 4, 3};
  f->u = Image<double>(g);
  // u_x = voxel index i (mm): linear in x, so linear interpolation reproduces it exactly.
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t i = 0; i < 4; ++i) f->u.view()(i, j, k, 0) = double(i);
  TransformChain c;
  c.append(f);
  double p[9] = {1.25, 2.0, 1.0, /* half a voxel beyond the last sample: clamped */ 3.4, 1.0, 1.0,
                 /* more than half a voxel outside: no displacement */ 3.6, 1.0, 1.0};
  c.map_points(p, 3);
  EXPECT_DOUBLE_EQ(p[0], 2.5);
  EXPECT_DOUBLE_EQ(p[3], 6.4);
  EXPECT_DOUBLE_EQ(p[6], 3.6);
  EXPECT_FALSE(c.is_affine());
  EXPECT_THROW(c.affine(), InvalidArgument);
}

TEST(TransformChain, ConstantFieldResamplesAsTranslation) {
  const Image<float> in = smooth_image();
  const Vec3 d(1.7, -0.6, 2.3);
  TransformChain c;
  c.append(std::shared_ptr<const DisplacementField>(constant_field(d, in.geometry())));
  Mat4 T = Mat4::Identity();
  T.block<3, 1>(0, 3) = d;
  for (int order : {1, 3}) {
    ResampleOptions o;
    o.order = order;
    const Image<float> a = resample_chain(in, in.geometry(), c, o), b = resample(in, in.geometry(), T, o);
    EXPECT_LT(max_diff(a, b), 2e-5) << "order " << order;
  }
}

TEST(TransformChain, FieldOnTheOutputGridResamplesAsTranslation) {
  // A first field on the output grid is read at the voxels (no interpolation): same answer.
  const Image<float> in = smooth_image();
  auto f = std::make_shared<DisplacementField>();
  Geometry fg = in.geometry();
  fg.ndim = 4;
  fg.dims[3] = 3;
  f->u = Image<double>(fg);
  const Vec3 d(-0.9, 1.3, 0.4);
  for (int c = 0; c < 3; ++c)
    for (int64_t v = 0; v < fg.frame_size(); ++v) f->u.data()[c * fg.frame_size() + v] = d[c];
  TransformChain c;
  c.append(std::shared_ptr<const DisplacementField>(f));
  Mat4 T = Mat4::Identity();
  T.block<3, 1>(0, 3) = d;
  ResampleOptions o;
  const Image<float> a = resample_chain(in, in.geometry(), c, o), b = resample(in, in.geometry(), T, o);
  EXPECT_LT(max_diff(a, b), 2e-5);
}

TEST(TransformChain, FieldBetweenMatricesMatchesComposedMatrix) {
  const Image<float> in = smooth_image();
  Mat4 A = Mat4::Identity(), B = Mat4::Identity(), T = Mat4::Identity();
  A.block<3, 3>(0, 0) = Eigen::AngleAxisd(0.1, Vec3(0.2, 0.3, 0.9).normalized()).toRotationMatrix();
  B(1, 3) = -1.5;
  const Vec3 d(0.8, 0.4, -1.1);
  T.block<3, 1>(0, 3) = d;
  TransformChain c;
  c.append(A);
  c.append(std::shared_ptr<const DisplacementField>(constant_field(d, in.geometry())));
  c.append(B);
  ResampleOptions o;
  o.order = 3;
  const Image<float> a = resample_chain(in, in.geometry(), c, o);
  const Image<float> b = resample(in, in.geometry(), compose_in_order({A, T, B}), o);
  EXPECT_LT(max_diff(a, b), 2e-5);
}

TEST(TransformChain, ResultDoesNotDependOnThreadCount) {
  const Image<float> in = smooth_image();
  auto f = constant_field(Vec3(0.3, 0.2, -0.4), in.geometry());
  for (int64_t v = 0; v < f->u.size(); ++v) f->u.data()[v] += 0.7 * std::sin(0.01 * double(v));
  TransformChain c;
  c.append(std::shared_ptr<const DisplacementField>(f));
  ResampleOptions o;
  set_num_threads(1);
  const Image<float> a = resample_chain(in, in.geometry(), c, o);
  set_num_threads(3);
  const Image<float> b = resample_chain(in, in.geometry(), c, o);
  set_num_threads(0);
  EXPECT_EQ(max_diff(a, b), 0.0);
}

TEST(ItkHdf5, AffineRoundTrip) {
  Mat4 M = Mat4::Identity();
  M.block<3, 3>(0, 0) = Eigen::AngleAxisd(0.2, Vec3(1, 2, 3).normalized()).toRotationMatrix() * 1.1;
  M.block<3, 1>(0, 3) = Vec3(3.5, -2.25, 7.0);
  const std::string p = tmp("a.h5");
  write_itk_transform(p, M, "test");
  EXPECT_EQ(transform_file_format(p), TransformFormat::ItkHdf5);
  EXPECT_LT((read_transform(p) - M).norm(), 1e-13);
  const TransformChain c = read_itk_hdf5(p);
  ASSERT_EQ(c.steps.size(), 1u);
  EXPECT_LT((c.affine() - M).norm(), 1e-13);
  std::filesystem::remove(p);
}

TEST(ItkHdf5, MalformedFilesNameTheFile) {
  const std::string p = tmp("bad.h5");
  {
    std::ofstream f(p, std::ios::binary);
    f << "#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\n";
  }
  try {
    read_transform(p);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos);
  }
  // An HDF5 file under another name is refused by name, never read as something else.
  const std::string h5 = tmp("good.h5"), renamed = tmp("renamed.mat");
  write_itk_hdf5(h5, Mat4::Identity());
  std::filesystem::copy_file(h5, renamed, std::filesystem::copy_options::overwrite_existing);
  EXPECT_THROW(read_transform(renamed), IoError);
  EXPECT_THROW(read_itk_hdf5(tmp("missing.h5")), IoError);
  for (const auto& f : {p, h5, renamed}) std::filesystem::remove(f);
}

TEST(ItkHdf5, OnlyHdf5NamesAreWrittenAsHdf5) {
  EXPECT_TRUE(is_hdf5_transform_name("x.H5"));
  EXPECT_TRUE(is_hdf5_transform_name("dir/x.hdf5"));
  EXPECT_FALSE(is_hdf5_transform_name("x.h5.txt"));
  EXPECT_TRUE(is_itk_transform_name("x.h5"));
  EXPECT_TRUE(is_displacement_field_name("warp.nii.gz"));
  EXPECT_FALSE(is_displacement_field_name("affine.mat"));
}
