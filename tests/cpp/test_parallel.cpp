// parallel_for (core/parallel.hpp) on its pool of worker threads: every block exactly once, for
// any thread count; exceptions rethrown by block order with the pool still usable after;
// nested loops; callers on several threads at once (one uses the pool, the others threads of
// their own); a forked child (whose pool's workers did not survive the fork); and the default
// count: set_num_threads, then VOXALIGN_NUM_THREADS, OMP_NUM_THREADS, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS,
// then the cores, invalid values skipped.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "voxalign/core/parallel.hpp"

using namespace voxalign;

namespace {
// Sum of i over [0, n) by blocks of `grain`, each block's partial sum in its own slot.
int64_t block_sum(int64_t n, int64_t grain) {
  std::vector<int64_t> part(static_cast<size_t>((n + grain - 1) / grain), -1);
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    int64_t s = 0;
    for (int64_t i = b; i < e; ++i) s += i;
    part[static_cast<size_t>(b / grain)] = s;
  });
  int64_t total = 0;
  for (int64_t s : part) total += s;
  return total;
}
} // namespace

TEST(Parallel, EveryBlockOnceForAnyThreadCount) {
  for (int t : {1, 2, 3, 5, 8}) {
    set_num_threads(t);
    for (int64_t n : {1, 7, 1000, 100003}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallel_for(n, 13, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "threads " << t << " n " << n;
      EXPECT_EQ(block_sum(n, 64), n * (n - 1) / 2);
    }
  }
  set_num_threads(0);
}

TEST(Parallel, FirstExceptionByBlockOrderAndPoolStillWorks) {
  set_num_threads(3);
  try {
    parallel_for(100, 1, [](int64_t b, int64_t) {
      if (b == 70) throw std::runtime_error("block 70");
      if (b == 40) throw std::runtime_error("block 40");
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "block 40");
  }
  EXPECT_EQ(block_sum(5000, 7), int64_t(5000) * 4999 / 2);
  set_num_threads(0);
}

TEST(Parallel, NestedLoopsRunInline) {
  set_num_threads(2);
  std::vector<int64_t> out(16, 0);
  parallel_for(16, 1, [&](int64_t b, int64_t) { out[static_cast<size_t>(b)] = block_sum(1000, 10); });
  for (int64_t v : out) EXPECT_EQ(v, int64_t(1000) * 999 / 2);
  set_num_threads(0);
}

TEST(Parallel, CallersOnSeveralThreadsAtOnce) {
  set_num_threads(2);
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int r = 0; r < 50; ++r)
        if (block_sum(2000 + c, 9) != int64_t(2000 + c) * (1999 + c) / 2) wrong.fetch_add(1);
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
  set_num_threads(0);
}

TEST(Parallel, ForkedChildStartsItsOwnPool) {
  set_num_threads(2);
  EXPECT_EQ(block_sum(10000, 10), int64_t(10000) * 9999 / 2); // the parent's pool exists
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(30); // a hang in the child fails the test instead of stalling it
    _exit(block_sum(10000, 10) == int64_t(10000) * 9999 / 2 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
  set_num_threads(0);
}

namespace {
// Sets (or, with nullptr, unsets) the thread-count variables for one test and restores them after.
class ThreadEnv {
public:
  static constexpr const char* kNames[3] = {"VOXALIGN_NUM_THREADS", "OMP_NUM_THREADS",
                                            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"};
  ThreadEnv() {
    for (int i = 0; i < 3; ++i) {
      const char* v = std::getenv(kNames[i]);
      saved_[i] = v ? std::optional<std::string>(v) : std::nullopt;
      unsetenv(kNames[i]);
    }
    set_num_threads(0);
  }
  ~ThreadEnv() {
    for (int i = 0; i < 3; ++i) {
      if (saved_[i]) setenv(kNames[i], saved_[i]->c_str(), 1);
      else unsetenv(kNames[i]);
    }
    set_num_threads(0);
  }
  void set(const char* name, const char* value) { value ? setenv(name, value, 1) : unsetenv(name); }

private:
  std::optional<std::string> saved_[3];
};

int cores() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}
} // namespace

TEST(Parallel, ThreadCountPrecedence) {
  ThreadEnv env;
  EXPECT_EQ(num_threads(), cores());
  EXPECT_STREQ(thread_count().source, "cores");
  env.set("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "5");
  EXPECT_EQ(num_threads(), 5);
  EXPECT_STREQ(thread_count().source, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS");
  env.set("OMP_NUM_THREADS", "4,2"); // a list: the first item, as OpenMP takes it
  EXPECT_EQ(num_threads(), 4);
  EXPECT_STREQ(thread_count().source, "OMP_NUM_THREADS");
  env.set("VOXALIGN_NUM_THREADS", "3");
  EXPECT_EQ(num_threads(), 3);
  EXPECT_STREQ(thread_count().source, "VOXALIGN_NUM_THREADS");
  set_num_threads(7); // --threads / voxalign.set_num_threads win over the environment
  EXPECT_EQ(num_threads(), 7);
  EXPECT_STREQ(thread_count().source, "set_num_threads");
  set_num_threads(0);
  EXPECT_EQ(num_threads(), 3);
  env.set("VOXALIGN_NUM_THREADS", nullptr);
  env.set("OMP_NUM_THREADS", nullptr);
  EXPECT_EQ(num_threads(), 5);
  // the count read is the one used: 5 threads run the blocks, every block once
  EXPECT_EQ(block_sum(100003, 64), int64_t(100003) * 100002 / 2);
}

TEST(Parallel, InvalidThreadVariablesAreSkipped) {
  ThreadEnv env;
  env.set("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2");
  for (const char* bad : {"", " ", "0", "-3", "+2", "2.5", "4x", "x4", "1e3", "1025", "99999999999999999999", "4,",
                          ",4", "0,2", "4,,2", "4,-1", "4;2"}) {
    for (const char* name : {"VOXALIGN_NUM_THREADS", "OMP_NUM_THREADS"}) {
      env.set(name, bad);
      EXPECT_EQ(num_threads(), 2) << name << "='" << bad << "'";
      EXPECT_STREQ(thread_count().source, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS") << name << "='" << bad << "'";
      env.set(name, nullptr);
    }
  }
  env.set("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "0");
  EXPECT_EQ(num_threads(), cores());
  EXPECT_STREQ(thread_count().source, "cores");
}

TEST(Parallel, ParseThreadCount) {
  EXPECT_EQ(parse_thread_count(nullptr), 0);
  EXPECT_EQ(parse_thread_count("1"), 1);
  EXPECT_EQ(parse_thread_count(" 8\t"), 8);
  EXPECT_EQ(parse_thread_count("1024"), 1024);
  EXPECT_EQ(parse_thread_count("1025"), 0);
  EXPECT_EQ(parse_thread_count("4,2"), 0); // a list only where one is allowed
  EXPECT_EQ(parse_thread_count("4,2", true), 4);
  EXPECT_EQ(parse_thread_count(" 6 , 3 ,1", true), 6);
  EXPECT_EQ(parse_thread_count("16", true), 16);
  EXPECT_EQ(parse_thread_count("2,5000", true), 2); // nested levels are not ours to bound
  EXPECT_EQ(parse_thread_count("2000,4", true), 0);
}
