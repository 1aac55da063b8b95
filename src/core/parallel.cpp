#include "voxalign/core/parallel.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
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

// Digits only, spaces or tabs around: the number, or -1 (anything else, or more than 9 digits).
long whole_number(const char* b, const char* e) {
  while (b < e && (*b == ' ' || *b == '\t')) ++b;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t')) --e;
  if (b == e || e - b > 9) return -1;
  long v = 0;
  for (; b < e; ++b) {
    if (*b < '0' || *b > '9') return -1;
    v = v * 10 + (*b - '0');
  }
  return v;
}

/// One parallel_for call: its blocks are taken in turn by whichever thread is free.
struct Job {
  const std::function<void(int64_t, int64_t)>& fn;
  int64_t n, grain, nblocks;
  std::vector<std::exception_ptr> errors;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  Job(const std::function<void(int64_t, int64_t)>& f, int64_t n_, int64_t g, int64_t nb)
      : fn(f), n(n_), grain(g), nblocks(nb), errors(static_cast<size_t>(nb)) {}

  void run() {
    const bool was = t_in_parallel;
    t_in_parallel = true;
    struct Restore {
      bool v;
      ~Restore() { t_in_parallel = v; }
    } restore{was};
    for (;;) {
      const int64_t b = next.fetch_add(1);
      if (b >= nblocks || failed.load()) return;
      try {
        fn(b * grain, std::min(n, (b + 1) * grain));
      } catch (...) {
        errors[static_cast<size_t>(b)] = std::current_exception();
        failed.store(true);
      }
    }
  }
};

/// Threads kept between parallel_for calls. A thread started for each call begins on its parent's
/// CPU and waits there for the scheduler to move it (measured here: ~4 ms, a whole scheduler
/// tick, per call); pool workers sleep on a condition variable and wake on the CPU they ran on.
/// One job at a time: a call that finds the pool busy (another caller's thread) starts threads of
/// its own instead. The workers are never joined (detached; the pool is never destroyed), and a
/// process forked from this one starts a pool of its own (the workers do not survive the fork).
class Pool {
public:
  const pid_t pid = getpid();

  /// Runs job on the calling thread and up to `helpers` workers; false if the pool is busy.
  bool run(Job& job, int helpers) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lk(m_);
      while (int(nworkers_) < helpers) {
        try {
          std::thread(&Pool::worker, this, nworkers_).detach();
        } catch (const std::system_error&) {
          break; // fewer threads: the blocks, and so the results, are the same
        }
        ++nworkers_;
      }
      job_ = &job;
      wanted_ = helpers;
      ++epoch_;
    }
    cv_.notify_all();
    job.run();
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [&] { return active_ == 0; });
    job_ = nullptr; // a worker that wakes from now on finds nothing to do
    return true;
  }

private:
  std::mutex busy_, m_;
  std::condition_variable cv_, done_;
  Job* job_ = nullptr;
  uint64_t epoch_ = 0;
  int nworkers_ = 0, wanted_ = 0, active_ = 0;

  void worker(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_.wait(lk, [&] { return epoch_ != seen; });
      seen = epoch_;
      if (!job_ || index >= wanted_) continue;
      Job* job = job_;
      ++active_;
      lk.unlock();
      job->run();
      lk.lock();
      if (--active_ == 0) done_.notify_all();
    }
  }
};

Pool& pool() {
  static std::atomic<Pool*> p{nullptr};
  Pool* cur = p.load();
  if (!cur || cur->pid != getpid()) { // first use, or a forked child: a new pool (the old one leaks)
    static std::mutex m;
    std::lock_guard<std::mutex> lk(m);
    cur = p.load();
    if (!cur || cur->pid != getpid()) {
      cur = new Pool;
      p.store(cur);
    }
  }
  return *cur;
}

// Threads started for this call alone (when the pool is busy with another caller's job).
void run_with_own_threads(Job& job, int helpers) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(helpers));
  for (int t = 0; t < helpers; ++t) {
    try {
      threads.emplace_back([&job] { job.run(); });
    } catch (const std::system_error&) {
      break; // fewer threads: the blocks, and so the results, are the same
    }
  }
  job.run();
  for (auto& t : threads) t.join();
}
} // namespace

int parse_thread_count(const char* value, bool list) {
  if (!value) return 0;
  const char* end = value + std::strlen(value);
  const char* first_end = list ? std::find(value, end, ',') : end;
  const long n = whole_number(value, first_end);
  if (n < 1 || n > 1024) return 0;
  if (list) // the later items (nested levels) need not fit 1..1024, but must be positive numbers
    for (const char* b = first_end; b != end;) {
      const char* e = std::find(b + 1, end, ',');
      if (whole_number(b + 1, e) < 1) return 0;
      b = e;
    }
  return static_cast<int>(n);
}

ThreadCount thread_count() {
  if (const int n = g_threads.load(); n > 0) return {n, "set_num_threads"};
  struct Var {
    const char* name;
    bool list;
  };
  for (const Var v : {Var{"VOXALIGN_NUM_THREADS", false}, Var{"OMP_NUM_THREADS", true},
                      Var{"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", false}})
    if (const int n = parse_thread_count(std::getenv(v.name), v.list); n > 0) return {n, v.name};
  const unsigned hc = std::thread::hardware_concurrency();
  return {hc ? static_cast<int>(hc) : 1, "cores"};
}

int num_threads() { return thread_count().n; }

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
  Job job(fn, n, grain, nblocks);
  if (!pool().run(job, nthreads - 1)) run_with_own_threads(job, nthreads - 1);
  for (auto& e : job.errors)
    if (e) std::rethrow_exception(e);
}

} // namespace voxalign
