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

/// Number of worker threads used by parallel_for (default: hardware concurrency, or the
/// VOXALIGN_NUM_THREADS environment variable when set).
int num_threads();
/// Set the number of threads (n <= 0 restores the default).
void set_num_threads(int n);

/// Call fn(begin, end) for consecutive blocks of [0, n) of `grain` elements (the last may be
/// shorter), spread over num_threads() threads. Exceptions thrown by fn are rethrown (the first
/// one by block order). Called from inside a block of another parallel_for, it runs its blocks in
/// order on the calling thread (nested loops do not multiply the threads).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

} // namespace voxalign
