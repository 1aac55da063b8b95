#include "common.hpp"

#include "voxalign/core/parallel.hpp"

namespace voxalign::cli {

void add_threads_option(CLI::App* cmd, int& threads) {
  cmd->add_option("--threads", threads,
                  "Worker threads (default: all cores, or $VOXALIGN_NUM_THREADS). Results are identical for any "
                  "number of threads.")
      ->check(CLI::Range(1, 1024));
}

void apply_threads(int threads) {
  if (threads > 0) set_num_threads(threads);
}

} // namespace voxalign::cli
