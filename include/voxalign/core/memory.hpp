// Large-buffer allocation with recycling.
//
// Every fresh page of a large buffer costs a page fault and a kernel-side clear: about 50 ms for a
// 64 MiB image on the project's VM, as much as the cubic prefilter of that image. Images, spline
// coefficients and the arrays handed to Python are allocated here: blocks of at least
// kRecycleMin bytes are kept, when freed, in a small process-wide cache (at most kCacheBlocks
// blocks and cache_limit() bytes) and handed out again to the next request of the same rounded
// size, so repeated calls on images of one size (frames of a series, iterations of a solver,
// repeated resampling) touch no fresh pages. Contents of a recycled block are unspecified, as for
// any allocation. Thread-safe.
#pragma once
#include <cstddef>

namespace voxalign {

/// Allocate `bytes` (64-byte aligned). Never returns null (throws std::bad_alloc).
void* buffer_allocate(std::size_t bytes);
/// Release a block from buffer_allocate with the same `bytes`.
void buffer_deallocate(void* p, std::size_t bytes) noexcept;
/// Free every cached block now (returns the bytes released).
std::size_t release_cached_buffers() noexcept;
/// Bytes the cache may hold: VOXALIGN_BUFFER_CACHE_MB when set (0 disables recycling), else an
/// eighth of physical memory, at most 4 GiB.
std::size_t cache_limit() noexcept;
/// Bytes held by the cache now.
std::size_t cached_bytes() noexcept;

} // namespace voxalign
