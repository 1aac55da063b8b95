// Every input the fuzzers ever found (tests/fuzz/regressions/) and the seed corpus, replayed through
// the same target bodies: each must end in an image/matrix or a voxalign::Error. Under `make asan`
// this is the fuzzers' own check, sanitizers included.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "../fuzz/targets.hpp"

namespace fs = std::filesystem;

namespace {
std::vector<fs::path> inputs(const char* kind) {
  std::vector<fs::path> out;
  for (const char* set : {"regressions", "corpus"}) {
    const fs::path dir = fs::path(VX_SOURCE_DIR) / "tests" / "fuzz" / set / kind;
    if (fs::is_directory(dir))
      for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != "README") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
} // namespace

TEST(FuzzRegressions, NiftiInputsGiveAnImageOrAnError) {
  const auto files = inputs("nifti");
  ASSERT_GE(files.size(), 5u) << "the seed corpus is missing";
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.filename().string());
    const std::vector<uint8_t> b = bytes(p);
    EXPECT_NO_THROW(vxfuzz::nifti_one(b.data(), b.size()));
  }
}

TEST(FuzzRegressions, TransformInputsGiveAMatrixOrAnError) {
  const auto files = inputs("transform");
  ASSERT_GE(files.size(), 4u) << "the seed corpus is missing";
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.filename().string());
    const std::vector<uint8_t> b = bytes(p);
    EXPECT_NO_THROW(vxfuzz::transform_one(b.data(), b.size()));
  }
}
