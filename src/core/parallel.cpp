#include "voxalign/core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace voxalign {
namespace {
std::atomic<int> g_threads{0};
// Set while a thread runs blocks of a parallel_for: a parallel_for inside one of those blocks
// runs its blocks in order on that thread (same blocks, so the same results) instead of starting
// threads of its own.
thread_local bool t_in_parallel = false;

int default_threads() {
  if (const char* env = std::getenv("VOXALIGN_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}
} // namespace

int num_threads() {
  int n = g_threads.load();
  return n > 0 ? n : default_threads();
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t nblocks = (n + grain - 1) / grain;
  const int nthreads = t_in_parallel ? 1 : static_cast<int>(std::min<int64_t>(num_threads(), nblocks));
  if (nthreads <= 1) {
    for (int64_t b = 0; b < nblocks; ++b) fn(b * grain, std::min(n, (b + 1) * grain));
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(nblocks));
  std::atomic<bool> failed{false};
  auto worker = [&] {
    const bool was = t_in_parallel;
    t_in_parallel = true;
    struct Restore {
      bool v;
      ~Restore() { t_in_parallel = v; }
    } restore{was};
    for (;;) {
      int64_t b = next.fetch_add(1);
      if (b >= nblocks || failed.load()) return;
      try {
        fn(b * grain, std::min(n, (b + 1) * grain));
      } catch (...) {
        errors[static_cast<size_t>(b)] = std::current_exception();
        failed.store(true);
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(nthreads - 1));
  for (int t = 1; t < nthreads; ++t) {
    try {
      pool.emplace_back(worker);
    } catch (const std::system_error&) {
      break; // fewer threads: the blocks, and so the results, are the same
    }
  }
  worker();
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

} // namespace voxalign
