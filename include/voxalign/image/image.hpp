// Image<T>: owning storage plus geometry; ImageView<T>: trivially copyable view for kernels.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "voxalign/core/memory.hpp"
#include "voxalign/image/geometry.hpp"

namespace voxalign {

/// A non-owning, trivially copyable view of up to 4D data in NIfTI order. Strides are in elements,
/// so views of numpy arrays with any strides need no copy.
template <class T> struct ImageView {
  T* data = nullptr;
  int64_t dims[4] = {1, 1, 1, 1};
  int64_t strides[4] = {1, 1, 1, 1};

  int64_t offset(int64_t i, int64_t j = 0, int64_t k = 0, int64_t t = 0) const {
    return i * strides[0] + j * strides[1] + k * strides[2] + t * strides[3];
  }
  T& operator()(int64_t i, int64_t j = 0, int64_t k = 0, int64_t t = 0) const {
    return data[offset(i, j, k, t)];
  }
  int64_t size() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
  bool contiguous() const {
    return strides[0] == 1 && strides[1] == dims[0] && strides[2] == dims[0] * dims[1] &&
           strides[3] == dims[0] * dims[1] * dims[2];
  }
  /// The 3D frame t of a 4D view.
  ImageView frame(int64_t t) const {
    ImageView v = *this;
    v.data = data + t * strides[3];
    v.dims[3] = 1;
    return v;
  }
  operator ImageView<const T>() const {
    ImageView<const T> v;
    v.data = data;
    for (int d = 0; d < 4; ++d) v.dims[d] = dims[d], v.strides[d] = strides[d];
    return v;
  }
};
static_assert(std::is_trivially_copyable_v<ImageView<float>>);

/// View of contiguous data in NIfTI order (i fastest) with the given dims.
template <class T> ImageView<T> contiguous_view(T* data, const int64_t* dims) {
  ImageView<T> v;
  v.data = data;
  int64_t s = 1;
  for (int d = 0; d < 4; ++d) {
    v.dims[d] = dims[d];
    v.strides[d] = s;
    s *= dims[d];
  }
  return v;
}

/// Copy `src` (any strides, negative included) into `dst` (same dims; its axis-0 stride should be 1).
/// When the source's fastest-varying axis is not axis 0 (a C-order or transposed numpy array), the
/// copy runs in small tiles of (axis 0, that axis), so that both sides are read and written a cache
/// line at a time instead of one element per line. Threaded; an exact copy.
template <class T> void copy_view(ImageView<const T> src, ImageView<T> dst);

/// Allocator that leaves elements uninitialised on resize (value-initialisation of large buffers
/// that are overwritten right away costs a full extra pass over memory).
/// Large blocks come from buffer_allocate (recycled between calls; see core/memory.hpp).
template <class T> struct DefaultInitAllocator {
  using value_type = T;
  template <class U> struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <class U> DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(buffer_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { buffer_deallocate(p, n * sizeof(T)); }
  template <class U> bool operator==(const DefaultInitAllocator<U>&) const noexcept { return true; }
  template <class U> void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <class U, class... A> void construct(U* p, A&&... a) { ::new (static_cast<void*>(p)) U(std::forward<A>(a)...); }
};
template <class T> using Buffer = std::vector<T, DefaultInitAllocator<T>>;

/// Tag: allocate an image without initialising its voxels.
struct NoInit {};
inline constexpr NoInit no_init{};

/// An image owning contiguous storage (i fastest) together with its geometry.
template <class T> class Image {
public:
  Image() = default;
  explicit Image(const Geometry& g, T fill = T(0)) : geom_(g), data_(static_cast<size_t>(g.size()), fill) {}
  Image(const Geometry& g, NoInit) : geom_(g), data_(static_cast<size_t>(g.size())) {}

  const Geometry& geometry() const { return geom_; }
  Geometry& geometry() { return geom_; }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  Buffer<T>& storage() { return data_; }
  const Buffer<T>& storage() const { return data_; }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }

  ImageView<T> view() { return make_view<T>(data_.data()); }
  ImageView<const T> view() const { return make_view<const T>(data_.data()); }

private:
  template <class U> ImageView<U> make_view(U* p) const { return contiguous_view(p, geom_.dims.data()); }
  Geometry geom_;
  Buffer<T> data_;
};

} // namespace voxalign
