// A scratch directory for one test, removed with everything in it when the test ends.
#pragma once
#include <filesystem>
#include <random>
#include <string>

namespace voxalign::test {

struct TempDir {
  std::filesystem::path p;
  explicit TempDir(const std::string& prefix = "vxtest-") {
    p = std::filesystem::temp_directory_path() / (prefix + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(p);
  }
  ~TempDir() { std::filesystem::remove_all(p); }
  std::string operator/(const std::string& n) const { return (p / n).string(); }
};

} // namespace voxalign::test
