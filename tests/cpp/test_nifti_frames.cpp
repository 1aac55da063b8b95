// NIfTI frame by frame (NiftiFrameReader, NiftiWriter): frames read on demand equal the whole read for
// .nii and multi-member .nii.gz, in order and out of order; a writer fed in uneven pieces writes the
// bytes write_nifti writes; an unfinished writer leaves no file; a truncated .nii.gz is refused when
// reached, naming the file. realign from a frame reader equals realign in memory, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"
#include "temp_dir.hpp"
#include "voxalign/realign/realign.hpp"

using namespace voxalign;
using voxalign::test::TempDir;
namespace fs = std::filesystem;

namespace {

// 48x40x36 x 16 frames of float32: 4.4 MB, two gzip members of voxalign's writer.
Image<float> series(int64_t T = 16) {
  Geometry g;
  g.ndim = 4;
  g.dims = {48, 40, 36, T};
  g.affine << 2.5, 0, 0, -60, 0, 2.5, 0, -50, 0, 0, 3, -50, 0, 0, 0, 1;
  g.time_step = 2.0;
  Image<float> img(g);
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 2.f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < 36; ++k)
      for (int64_t j = 0; j < 40; ++j)
        for (int64_t i = 0; i < 48; ++i) {
          const double x = (i - 24 - 0.3 * std::sin(double(t))) / 10.0, y = (j - 20 + 0.2 * t / 8.0) / 8.0, z = (k - 18) / 7.0;
          img.data()[i + 48 * (j + 40 * (k + 36 * t))] = float(800 * std::exp(-(x * x + y * y + z * z)) + 100 * (x > 0.4)) + noise(rng);
        }
  return img;
}

std::string bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
} // namespace

TEST(NiftiFrames, ReaderMatchesWholeReadInAndOutOfOrder) {
  TempDir d;
  const Image<float> img = series();
  const int64_t n = img.geometry().frame_size();
  for (const char* name : {"s.nii", "s.nii.gz"}) {
    NiftiWriteOptions w; // int16 .nii; float32 .nii.gz: two gzip members
    w.dtype = std::string(name) == "s.nii" ? DataType::Int16 : DataType::Float32;
    write_nifti(d / name, img, w);
    const Image<float> whole = read_nifti<float>(d / name);
    for (bool spool : {false, true}) {
      NiftiFrameReader r(d / name, spool);
      ASSERT_EQ(r.frames(), 16);
      std::vector<float> f(static_cast<size_t>(n));
      for (int64_t t : {0, 1, 5, 15, 3, 3, 14, 0}) { // backwards: the gzip stream restarts, or the spool is read
        r.read(t, f.data());
        EXPECT_TRUE(std::equal(f.begin(), f.end(), whole.data() + t * n)) << name << " frame " << t << " spool " << spool;
      }
    }
  }
}

TEST(NiftiFrames, WriterInPiecesWritesWhatWriteNiftiWrites) {
  TempDir d;
  const Image<float> img = series();
  for (const char* ext : {".nii", ".nii.gz"}) {
    write_nifti(d / (std::string("whole") + ext), img);
    NiftiWriter w(d / (std::string("pieces") + ext), img.geometry());
    for (int64_t a = 0; a < img.size();) { // uneven pieces, none aligned with frames or chunks
      const int64_t k = std::min<int64_t>(img.size() - a, 77777 + a % 1000);
      w.append(img.data() + a, k);
      a += k;
    }
    w.finish();
    EXPECT_EQ(bytes(d / (std::string("whole") + ext)), bytes(d / (std::string("pieces") + ext))) << ext;
  }
}

TEST(NiftiFrames, UnfinishedWriterLeavesNoFile) {
  TempDir d;
  const Image<float> img = series(2);
  {
    NiftiWriter w(d / "x.nii.gz", img.geometry());
    w.append(img.data(), img.size() / 2);
    EXPECT_THROW(w.finish(), InvalidArgument); // half the voxels
  }
  EXPECT_TRUE(fs::is_empty(d.p));
}

TEST(NiftiFrames, TruncatedGzipRefusedWhenReached) {
  TempDir d;
  write_nifti(d / "s.nii.gz", series());
  const std::string all = bytes(d / "s.nii.gz");
  std::ofstream(d / "cut.nii.gz", std::ios::binary) << all.substr(0, all.size() * 3 / 4);
  NiftiFrameReader r(d / "cut.nii.gz");
  std::vector<float> f(48 * 40 * 36);
  r.read(0, f.data());
  try {
    r.read(15, f.data());
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.nii.gz: truncated"), std::string::npos) << e.what();
  }
}

TEST(NiftiFrames, RealignFromReaderEqualsInMemoryForAnyThreads) {
  TempDir d;
  const Image<float> img = series(20);
  write_nifti(d / "s.nii.gz", img);
  RealignOptions o;
  o.fwhm = 4;
  set_num_threads(1);
  const RealignResult a = realign(img, o);
  Image<float> mean_a, out_a;
  reslice_series(img, a.matrices, 4, &out_a, &mean_a);
  set_num_threads(2);
  NiftiFrameReader r(d / "s.nii.gz");
  const FrameSource src{r.info().geometry, [&](int64_t t, float* dst) { r.read(t, dst); }};
  const RealignResult b = realign(src, o);
  Image<float> mean_b;
  std::vector<float> out_b;
  reslice_series(src, b.matrices, 4, [&](int64_t, const float* f) { out_b.insert(out_b.end(), f, f + img.geometry().frame_size()); },
                 &mean_b);
  set_num_threads(0);
  ASSERT_EQ(a.matrices.size(), b.matrices.size());
  for (size_t t = 0; t < a.matrices.size(); ++t) EXPECT_TRUE(a.matrices[t] == b.matrices[t]) << t;
  EXPECT_TRUE(std::equal(out_b.begin(), out_b.end(), out_a.data()));
  EXPECT_TRUE(std::equal(mean_a.data(), mean_a.data() + mean_a.size(), mean_b.data()));
}
