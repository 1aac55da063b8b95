// Transform files: ITK (LPS) to RAS conversion, Euler angle convention, composite order, plain
// matrices, and clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "voxalign/core/error.hpp"
#include "voxalign/transform/affine_io.hpp"

using namespace voxalign;

TEST(TransformIO, ItkTranslationFlipsXY) {
  const Mat4 A = parse_itk_transform_text(
      "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
      "Parameters: 1 0 0 0 1 0 0 0 1 1 2 3\nFixedParameters: 0 0 0\n",
      "t");
  EXPECT_NEAR(A(0, 3), -1, 1e-15);
  EXPECT_NEAR(A(1, 3), -2, 1e-15);
  EXPECT_NEAR(A(2, 3), 3, 1e-15);
}

TEST(TransformIO, EulerIsZXYAboutCentre) {
  const double ax = 0.1, ay = -0.2, az = 0.3;
  const Mat4 A = parse_itk_transform_text("Transform: Euler3DTransform_double_3_3\nParameters: 0.1 -0.2 0.3 0 0 0\n"
                                          "FixedParameters: 10 20 30 0\n",
                                          "e");
  const Mat4 L = lps_ras_flip(A);
  const Eigen::Matrix3d R = (Eigen::AngleAxisd(az, Vec3::UnitZ()) * Eigen::AngleAxisd(ax, Vec3::UnitX()) *
                             Eigen::AngleAxisd(ay, Vec3::UnitY()))
                                .toRotationMatrix();
  EXPECT_LT((L.block<3, 3>(0, 0) - R).cwiseAbs().maxCoeff(), 1e-14);
  // The centre is a fixed point.
  const Eigen::Vector4d c(10, 20, 30, 1);
  EXPECT_LT((L * c - c).norm(), 1e-12);
}

TEST(TransformIO, CompositeAppliesLastFirst) {
  const Mat4 A = parse_itk_transform_text(
      "Transform: CompositeTransform_double_3_3\n"
      "Transform: AffineTransform_double_3_3\nParameters: 2 0 0 0 2 0 0 0 2 0 0 0\nFixedParameters: 0 0 0\n"
      "Transform: TranslationTransform_double_3_3\nParameters: 0 0 5\nFixedParameters:\n",
      "c");
  // T0(T1(x)) = 2 (x + 5 e_z): the translation is doubled.
  EXPECT_NEAR(A(2, 3), 10, 1e-12);
}

TEST(TransformIO, PlainMatrixAndErrors) {
  namespace fs = std::filesystem;
  const fs::path p = fs::temp_directory_path() / "vx_plain_matrix.txt";
  {
    std::ofstream f(p);
    f << "# a RAS matrix\n1 0 0 4\n0 1 0 5\n0 0 1 6\n0 0 0 1\n";
  }
  EXPECT_EQ(read_transform(p.string())(1, 3), 5);
  {
    std::ofstream f(p);
    f << "1 0 0 4\n0 1 0 5\n";
  }
  try {
    read_transform(p.string());
    FAIL() << "expected an error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos);
  }
  fs::remove(p);
  EXPECT_THROW(read_transform("/no/such/transform.txt"), IoError);
  EXPECT_THROW(parse_itk_transform_text("Transform: BSplineTransform_double_3_3\nParameters: 1\n", "b"), IoError);
}

TEST(TransformIO, FslRasRoundTrip) {
  Geometry a, b;
  a.dims = {40, 50, 30, 1};
  b.dims = {32, 32, 20, 1};
  a.affine << -1.5, 0, 0, 30, 0, 1.5, 0, -40, 0, 0, 2, -20, 0, 0, 0, 1; // negative determinant (radiological)
  b.affine << 1, 0.1, 0, -15, 0, 1.2, 0, -10, 0.05, 0, 3, -5, 0, 0, 0, 1;
  Mat4 T = Mat4::Identity();
  T.topLeftCorner<3, 3>() = (Eigen::AngleAxisd(0.05, Vec3::UnitZ()) * Eigen::AngleAxisd(-0.2, Vec3::UnitY()) *
                             Eigen::AngleAxisd(0.1, Vec3::UnitX())).toRotationMatrix();
  T.block<3, 1>(0, 3) = Vec3(3, -2, 1);
  const Mat4 F = ras_pullback_to_fsl(T, a, b);
  EXPECT_LT((fsl_to_ras_pullback(F, a, b) - T).cwiseAbs().maxCoeff(), 1e-12);
}

// What ITK's MatlabTransformIO writes for an AffineTransform_double_3_3 (vnl_matlab_write): two MATLAB v4
// records, each a header of five little-endian int32 (type 0, rows, cols 1, imag 0, name length + NUL),
// the name, then the doubles. The bytes written by SimpleITK are compared in tests/python.
TEST(TransformIO, ItkMatIsMatlabV4AndReadsBack) {
  namespace fs = std::filesystem;
  Mat4 T = Mat4::Identity();
  T << 0.98, -0.1, 0.05, 3.0, 0.12, 1.02, -0.03, -2.5, -0.04, 0.02, 0.97, 1.25, 0, 0, 0, 1;
  const std::string b = itk_mat_bytes(T);
  ASSERT_EQ(b.size(), size_t(20 + 27 + 12 * 8 + 20 + 6 + 3 * 8));
  int32_t hdr[5];
  std::memcpy(hdr, b.data(), 20);
  EXPECT_EQ(hdr[0], 0);
  EXPECT_EQ(hdr[1], 12);
  EXPECT_EQ(hdr[2], 1);
  EXPECT_EQ(hdr[3], 0);
  EXPECT_EQ(hdr[4], 27);
  EXPECT_EQ(std::string(b.data() + 20), "AffineTransform_double_3_3");
  double p[12];
  std::memcpy(p, b.data() + 47, sizeof p);
  const Mat4 L = lps_ras_flip(T); // the LPS matrix row by row, then the translation
  for (int k = 0; k < 9; ++k) EXPECT_EQ(p[k], L(k / 3, k % 3));
  for (int k = 0; k < 3; ++k) EXPECT_EQ(p[9 + k], L(k, 3));
  std::memcpy(hdr, b.data() + 143, 20);
  EXPECT_EQ(hdr[1], 3);
  EXPECT_EQ(hdr[4], 6);
  EXPECT_EQ(std::string(b.data() + 163), "fixed");

  const fs::path p1 = fs::temp_directory_path() / "vx_itk_affine.mat";
  write_itk_transform(p1.string(), T);
  EXPECT_EQ(transform_file_format(p1.string()), TransformFormat::ItkBinary);
  EXPECT_EQ(read_transform(p1.string()), T);
  fs::remove(p1);
  const fs::path p2 = fs::temp_directory_path() / "vx_itk_affine.tfm";
  write_itk_transform(p2.string(), T);
  EXPECT_EQ(transform_file_format(p2.string()), TransformFormat::ItkText);
  EXPECT_LT((read_transform(p2.string()) - T).cwiseAbs().maxCoeff(), 1e-15);
  fs::remove(p2);
  const fs::path p3 = fs::temp_directory_path() / "vx_itk_affine.xfm";
  EXPECT_THROW(write_itk_transform(p3.string(), T), InvalidArgument);
  EXPECT_FALSE(fs::exists(p3));
}
