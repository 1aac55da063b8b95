// NIfTI I/O: round trips for every datatype, and bad input gets a clear error naming the file
// with no output left behind. (Agreement with nibabel is checked in tests/python.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "voxalign/core/error.hpp"
#include "voxalign/image/nifti.hpp"
#include "temp_dir.hpp"

using namespace voxalign;
using voxalign::test::TempDir;
namespace fs = std::filesystem;

namespace {

Image<double> sample_image() {
  Geometry g;
  g.ndim = 4;
  g.dims = {5, 4, 3, 2};
  g.affine << 0, -2, 0, 10, 1.5, 0, 0, -20, 0, 0, 3, 5, 0, 0, 0, 1;
  g.time_step = 2.5;
  Image<double> img(g);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = double(i) - 30.25;
  return img;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST(Nifti, RoundTripEveryDatatype) {
  TempDir dir;
  const Image<double> img = sample_image();
  for (const char* t : {"uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"})
    for (const char* ext : {".nii", ".nii.gz"}) {
      const std::string path = dir / (std::string("x_") + t + ext);
      NiftiWriteOptions o;
      o.dtype = parse_dtype(t);
      write_nifti(path, img, o);
      NiftiHeaderInfo info;
      const Image<double> back = read_nifti<double>(path, &info);
      EXPECT_EQ(info.dtype, o.dtype);
      EXPECT_EQ(back.geometry().dims, img.geometry().dims);
      EXPECT_NEAR((back.geometry().affine - img.geometry().affine).cwiseAbs().maxCoeff(), 0.0, 1e-6);
      EXPECT_DOUBLE_EQ(back.geometry().time_step, 2.5);
      for (int64_t i = 0; i < img.size(); ++i) {
        double expect = img.data()[i];
        if (o.dtype != DataType::Float32 && o.dtype != DataType::Float64) {
          expect = expect > 0 ? std::floor(expect + 0.5) : std::ceil(expect - 0.5);
          const bool is_unsigned = t[0] == 'u';
          if (is_unsigned && expect < 0) expect = 0;
          if (o.dtype == DataType::Int8 && expect > 127) expect = 127;
          if (o.dtype == DataType::UInt8 && expect > 255) expect = 255;
        }
        ASSERT_EQ(back.data()[i], expect) << t << ext << " voxel " << i;
      }
    }
}

TEST(Nifti, MissingFileNamesTheFile) {
  const std::string e = error_of([] { read_nifti<float>("/nonexistent/dir/x.nii.gz"); });
  EXPECT_NE(e.find("/nonexistent/dir/x.nii.gz"), std::string::npos);
  EXPECT_NE(e.find("no such file"), std::string::npos);
}

TEST(Nifti, NotNiftiAndTruncatedAreRefused) {
  TempDir dir;
  {
    std::ofstream f(dir / "junk.nii");
    f << "this is not a nifti file at all, just some text that is long enough to fill a header? no.";
  }
  EXPECT_NE(error_of([&] { read_nifti<float>(dir / "junk.nii"); }).find("not a valid NIfTI"), std::string::npos);
  // Truncate a valid file.
  const std::string good = dir / "good.nii";
  write_nifti(good, sample_image());
  const auto size = fs::file_size(good);
  fs::resize_file(good, size - 17);
  const std::string e = error_of([&] { read_nifti<float>(good); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find(good), std::string::npos);
}

TEST(Nifti, BadOutputLeavesNothing) {
  TempDir dir;
  EXPECT_NE(error_of([&] { write_nifti(dir / "out.png", sample_image()); }).find(".nii"), std::string::npos);
  EXPECT_NE(error_of([&] { write_nifti(dir / "nodir/out.nii", sample_image()); }).find("does not exist"),
            std::string::npos);
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.p)) (void)e, ++files;
  EXPECT_EQ(files, 0);
}
