// Large-buffer recycling (core/memory.hpp): a freed block is handed out again for the same size,
// blocks of other sizes are not, and release_cached_buffers empties the cache.
#include <gtest/gtest.h>

#include <cstring>

#include "voxalign/core/memory.hpp"
#include "voxalign/image/image.hpp"

using namespace voxalign;

TEST(Memory, RecyclesBlocksOfTheSameSize) {
  if (cache_limit() < (std::size_t(64) << 20)) GTEST_SKIP() << "cache disabled or small";
  release_cached_buffers();
  const std::size_t bytes = std::size_t(6) << 20;
  void* a = buffer_allocate(bytes);
  std::memset(a, 1, bytes);
  buffer_deallocate(a, bytes);
  EXPECT_EQ(cached_bytes(), bytes);
  void* other = buffer_allocate(bytes * 2); // a different size does not take it
  EXPECT_NE(other, a);
  void* b = buffer_allocate(bytes);
  EXPECT_EQ(b, a);
  EXPECT_EQ(cached_bytes(), 0u);
  buffer_deallocate(b, bytes);
  buffer_deallocate(other, bytes * 2);
  EXPECT_EQ(release_cached_buffers(), bytes * 3);
  EXPECT_EQ(cached_bytes(), 0u);
}

TEST(Memory, SmallBlocksAreNotCached) {
  release_cached_buffers();
  void* a = buffer_allocate(1000);
  buffer_deallocate(a, 1000);
  EXPECT_EQ(cached_bytes(), 0u);
}

TEST(Memory, ImagesReuseStorageAndKeepTheirFill) {
  if (cache_limit() < (std::size_t(64) << 20)) GTEST_SKIP() << "cache disabled or small";
  release_cached_buffers();
  Geometry g;
  g.dims = {128, 128, 64, 1};
  const float* first;
  {
    Image<float> a(g, 3.0f);
    first = a.data();
  }
  Image<float> b(g); // value-initialised: zeros, even on a recycled block
  EXPECT_EQ(b.data(), first);
  for (int64_t i = 0; i < b.size(); i += 4097) ASSERT_EQ(b.data()[i], 0.0f);
  release_cached_buffers();
}
