#include "voxalign/core/memory.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace voxalign {
namespace {

constexpr std::size_t kRecycleMin = std::size_t(1) << 20; // smaller blocks: plain operator new
constexpr std::size_t kGranule = std::size_t(1) << 16;    // recycled sizes are rounded up to this
constexpr std::size_t kCacheBlocks = 8;
constexpr std::size_t kAlign = 64;

std::size_t rounded(std::size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }

struct Cache {
  std::mutex m;
  std::vector<std::pair<void*, std::size_t>> blocks; // oldest first
  std::size_t held = 0;
};
Cache& cache() {
  static Cache* c = new Cache; // never destroyed: blocks may be freed during static destruction
  return *c;
}

std::size_t compute_limit() {
  if (const char* e = std::getenv("VOXALIGN_BUFFER_CACHE_MB")) {
    char* end = nullptr;
    const long long mb = std::strtoll(e, &end, 10);
    if (end != e && mb >= 0) return std::size_t(mb) << 20;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  std::size_t phys = pages > 0 && page > 0 ? std::size_t(pages) * std::size_t(page) : (std::size_t(8) << 30);
  const std::size_t cap = std::size_t(4) << 30;
  return std::min(phys / 8, cap);
}

} // namespace

std::size_t cache_limit() noexcept {
  static const std::size_t limit = compute_limit();
  return limit;
}

void* buffer_allocate(std::size_t bytes) {
  if (bytes < kRecycleMin) return ::operator new(bytes == 0 ? 1 : bytes, std::align_val_t(kAlign));
  const std::size_t size = rounded(bytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.m);
    for (std::size_t i = c.blocks.size(); i-- > 0;) { // newest first: most likely still in cache
      if (c.blocks[i].second == size) {
        void* p = c.blocks[i].first;
        c.blocks.erase(c.blocks.begin() + std::ptrdiff_t(i));
        c.held -= size;
        return p;
      }
    }
  }
  return ::operator new(size, std::align_val_t(kAlign));
}

void buffer_deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (bytes < kRecycleMin) {
    ::operator delete(p, std::align_val_t(kAlign));
    return;
  }
  const std::size_t size = rounded(bytes), limit = cache_limit();
  std::vector<void*> evicted;
  if (size <= limit) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.m);
    try {
      c.blocks.emplace_back(p, size);
      c.held += size;
      p = nullptr;
    } catch (...) { // no memory for the list entry: free the block below
    }
    while (c.held > limit || c.blocks.size() > kCacheBlocks) {
      evicted.push_back(c.blocks.front().first);
      c.held -= c.blocks.front().second;
      c.blocks.erase(c.blocks.begin());
    }
  }
  if (p) ::operator delete(p, std::align_val_t(kAlign));
  for (void* q : evicted) ::operator delete(q, std::align_val_t(kAlign));
}

std::size_t release_cached_buffers() noexcept {
  std::vector<std::pair<void*, std::size_t>> blocks;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.m);
    blocks.swap(c.blocks);
    c.held = 0;
  }
  std::size_t n = 0;
  for (auto& [p, s] : blocks) {
    ::operator delete(p, std::align_val_t(kAlign));
    n += s;
  }
  return n;
}

std::size_t cached_bytes() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  return c.held;
}

} // namespace voxalign
