// Deterministic CPU parallel loops.
//
// Work is cut into fixed blocks whose boundaries depend only on the problem size and the grain,
// never on the thread count, and every output element is written by exactly one block. Any
// reduction must be done per block and combined in block order by the caller. Results are
// therefore bit-identical for any number of threads.
#pragma once
#include <cstdint>
#include <functional>

namespace voxalign {

/// Number of worker threads used by parallel_for: thread_count().n.
int num_threads();
/// Set the number of threads (n <= 0 restores the default).
void set_num_threads(int n);

/// The thread count and where it came from. The first of these that applies wins:
///   1. set_num_threads(n) (the CLI's --threads, Python's voxalign.set_num_threads);
///   2. the environment: VOXALIGN_NUM_THREADS, then OMP_NUM_THREADS (a list such as "4,2": its
///      first item, as OpenMP takes it), then ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS (what Nipype
///      and ANTs users set);
///   3. the machine's cores (std::thread::hardware_concurrency).
/// A variable whose value is not a valid count (see parse_thread_count) is skipped, as if unset:
/// it never stops a run and is never used in part. The environment is read at each call.
struct ThreadCount {
  int n;
  /// "set_num_threads", "VOXALIGN_NUM_THREADS", "OMP_NUM_THREADS",
  /// "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS" or "cores".
  const char* source;
};
ThreadCount thread_count();

/// The count an environment value asks for, or 0 when it is not a valid one: a whole number in
/// 1..1024 in decimal digits, spaces or tabs around it allowed. With `list` (OMP_NUM_THREADS), a
/// comma-separated list of positive whole numbers whose first item, in 1..1024, is the count.
/// Empty, signs, "0", "-2", "2.5", "4x", "1e3", "2000" and a null pointer give 0.
int parse_thread_count(const char* value, bool list = false);

/// Call fn(begin, end) for consecutive blocks of [0, n) of `grain` elements (the last may be
/// shorter), spread over num_threads() threads. Exceptions thrown by fn are rethrown (the first
/// one by block order). Called from inside a block of another parallel_for, it runs its blocks in
/// order on the calling thread (nested loops do not multiply the threads).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

} // namespace voxalign
