// Transform files: ITK (LPS) to RAS conversion, Euler angle convention, composite order, plain
// matrices, and clear errors.
#include <gtest/gtest.h>

#include <cmath>
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
