// copy_view (src/image/copy.cpp) against an element-by-element copy: every layout the Python
// bindings hand it -- C order, a transposed view, negative strides, a strided view, a C-order
// (X, Y, Z, 3) field, 2D -- with sizes that leave partial 32 x 32 tiles and partial 8 x 8 (float)
// or 4 x 4 (double) register blocks, into a contiguous NIfTI-order image. Must be exact.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "voxalign/image/image.hpp"

using namespace voxalign;

namespace {

// A view of `store` with dims `d` laid out in axis order `perm` (perm[0] fastest), each axis
// stepped by `step` elements and reversed where `neg[axis]`.
template <class T>
ImageView<const T> layout(std::vector<T>& store, std::array<int64_t, 4> d, std::array<int, 4> perm, int64_t step,
                          std::array<bool, 4> neg) {
  int64_t s = step, strides[4];
  for (int q = 0; q < 4; ++q) strides[perm[q]] = s, s *= d[perm[q]];
  store.resize(size_t(s));
  std::iota(store.begin(), store.end(), T(1)); // distinct values
  ImageView<const T> v;
  v.data = store.data();
  for (int a = 0; a < 4; ++a) {
    v.dims[a] = d[a];
    v.strides[a] = neg[a] ? -strides[a] : strides[a];
    if (neg[a]) v.data += (d[a] - 1) * strides[a];
  }
  return v;
}

template <class T> void check(std::array<int64_t, 4> d, std::array<int, 4> perm, int64_t step, std::array<bool, 4> neg) {
  std::vector<T> store;
  const ImageView<const T> v = layout<T>(store, d, perm, step, neg);
  Geometry g;
  g.dims = d;
  Image<T> out(g, no_init);
  copy_view<T>(v, out.view());
  for (int64_t t = 0; t < d[3]; ++t)
    for (int64_t k = 0; k < d[2]; ++k)
      for (int64_t j = 0; j < d[1]; ++j)
        for (int64_t i = 0; i < d[0]; ++i)
          ASSERT_EQ(out.view()(i, j, k, t), v(i, j, k, t))
              << "dims " << d[0] << "x" << d[1] << "x" << d[2] << "x" << d[3] << " perm " << perm[0] << perm[1]
              << perm[2] << perm[3] << " step " << step << " at " << i << "," << j << "," << k << "," << t;
}

template <class T> void all_layouts() {
  const std::array<bool, 4> none{false, false, false, false};
  for (std::array<int64_t, 4> d : {std::array<int64_t, 4>{37, 11, 45, 1}, {64, 40, 8, 1}, {5, 70, 3, 1}, {33, 9, 1, 1}}) {
    check<T>(d, {2, 1, 0, 3}, 1, none);  // C order
    check<T>(d, {1, 0, 2, 3}, 1, none);  // axes 0 and 1 swapped (a transposed 2D slice)
    check<T>(d, {0, 1, 2, 3}, 2, none);  // a[::2] of an F-order array
    check<T>(d, {2, 0, 1, 3}, 1, {true, false, true, false});
    check<T>(d, {0, 2, 1, 3}, 1, {true, false, false, false});
  }
  check<T>({21, 13, 17, 3}, {3, 2, 1, 0}, 1, {false, false, false, false}); // a C-order field
  check<T>({21, 13, 17, 3}, {3, 0, 1, 2}, 1, {false, false, false, false}); // components first
  check<T>({19, 23, 6, 4}, {2, 3, 1, 0}, 1, {false, true, false, false});   // 4D, odd order
}

} // namespace

TEST(CopyView, EveryLayoutCopiesExactlyFloat) { all_layouts<float>(); }
TEST(CopyView, EveryLayoutCopiesExactlyDouble) { all_layouts<double>(); }
