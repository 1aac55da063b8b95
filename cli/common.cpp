#include "common.hpp"

#include <filesystem>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"

namespace voxalign::cli {

void add_threads_option(CLI::App* cmd, int& threads) {
  cmd->add_option("--threads", threads,
                  "Worker threads (default: all cores, or $VOXALIGN_NUM_THREADS). Results are identical for any "
                  "number of threads.")
      ->check(CLI::Range(1, 1024));
}

Image<float> read_image(const std::string& path, const std::string& what, NiftiHeaderInfo* info) {
  try {
    return read_nifti<float>(path, info);
  } catch (...) {
    rethrow_with_context("reading " + what);
  }
}

void check_output_dir(const std::string& path) {
  if (path.empty()) return;
  const auto dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  VX_CHECK(dir.empty() || std::filesystem::is_directory(dir, ec), InvalidArgument, path,
           ": the output directory does not exist");
}

void apply_threads(int threads) {
  if (threads > 0) set_num_threads(threads);
}

} // namespace voxalign::cli
