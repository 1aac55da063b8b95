// The fuzz targets' bodies, shared by the libFuzzer programs (tests/fuzz/fuzz_*.cpp, built by
// `make fuzz`) and the regression test that replays every kept input in CI
// (tests/cpp/test_fuzz_regressions.cpp). Each returns normally or throws voxalign::Error; anything
// else (a crash, a sanitizer report, another exception) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "voxalign/core/error.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace vxfuzz {

inline std::string scratch(const char* name) {
  const char* d = std::getenv("VX_FUZZ_DIR");
  return std::string(d ? d : "/tmp") + "/vxfuzz-" + std::to_string(::getpid()) + "-" + name;
}

inline void write(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

// Any bytes as a NIfTI file. The first byte picks the layout: a single .nii (gzipped or not: the
// reader tells by content), or a .hdr/.img pair whose .img holds the bytes after the 348th.
inline void nifti_one(const uint8_t* data, size_t size) {
  if (size < 1) return;
  const bool as_pair = data[0] & 1;
  ++data, --size;
  std::string path;
  if (as_pair) {
    const size_t h = size < 348 ? size : 348;
    write(scratch("p.hdr"), data, h);
    write(scratch("p.img"), data + h, size - h);
    path = scratch("p.hdr");
  } else {
    path = scratch("s.nii");
    write(path, data, size);
  }
  try {
    voxalign::NiftiHeaderInfo info;
    const voxalign::Image<float> img = voxalign::read_nifti<float>(path, &info);
    volatile float sink = img.size() ? img.data()[img.size() - 1] : 0.0f;
    (void)sink;
    (void)voxalign::read_nifti_header(path);
  } catch (const voxalign::Error&) {
  }
}

// Any bytes as a transform file, under each name a user might give it (the first byte picks: ITK
// text .txt, .mat -- ANTs binary or FLIRT text --, .tfm, AFNI .1D), without and with the two grids
// a FLIRT matrix needs. Every matrix returned must be finite.
inline void transform_one(const uint8_t* data, size_t size) {
  if (size < 1) return;
  static const char* names[] = {"t.txt", "t.mat", "t.tfm", "t.aff12.1D"};
  const std::string path = scratch(names[data[0] & 3]);
  write(path, data + 1, size - 1);
  voxalign::Geometry ref, in;
  ref.dims = {64, 64, 40, 1};
  in.dims = {32, 40, 30, 1};
  in.affine.diagonal() << -2.0, 2.0, 2.5, 1.0;
  try {
    if (!voxalign::read_transform(path).allFinite()) std::abort();
  } catch (const voxalign::Error&) {
  }
  try {
    if (!voxalign::read_transform(path, &ref, &in).allFinite()) std::abort();
  } catch (const voxalign::Error&) {
  }
}

} // namespace vxfuzz
