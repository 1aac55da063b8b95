// Device discovery, device arrays and timing for the CUDA backend.
#include <chrono>
#include <utility>
#include <vector>

#include "internal.cuh"

namespace voxalign::cuda {

bool available(std::string* reason) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (reason) *reason = std::string("no usable CUDA driver or device (") + cudaGetErrorString(e) + ")";
    return false;
  }
  if (n == 0) {
    if (reason) *reason = "no CUDA device";
    return false;
  }
  return true;
}

std::string device_name() {
  if (!available()) return "";
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return "";
  return p.name;
}

template <class T> DeviceGrid<T>::DeviceGrid(const int64_t* dims4) {
  for (int d = 0; d < 4; ++d) {
    VX_CHECK(dims4[d] >= 1, InvalidArgument, "device array: axis ", d, " has size ", dims4[d]);
    dims_[d] = dims4[d];
  }
  detail::check(cudaMalloc(reinterpret_cast<void**>(&data_), size_t(size()) * sizeof(T)), "allocating a device array");
}

template <class T> DeviceGrid<T>::DeviceGrid(DeviceGrid&& o) noexcept : data_(std::exchange(o.data_, nullptr)) {
  for (int d = 0; d < 4; ++d) dims_[d] = o.dims_[d];
}

template <class T> DeviceGrid<T>& DeviceGrid<T>::operator=(DeviceGrid&& o) noexcept {
  if (this != &o) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(o.data_, nullptr);
    for (int d = 0; d < 4; ++d) dims_[d] = o.dims_[d];
  }
  return *this;
}

template <class T> DeviceGrid<T>::~DeviceGrid() {
  if (data_) cudaFree(data_);
}

template <class T> void DeviceGrid<T>::upload(ImageView<const T> host) {
  for (int d = 0; d < 4; ++d)
    VX_CHECK(host.dims[d] == dims_[d], InvalidArgument, "device upload: axis ", d, " has ", host.dims[d],
             " samples, the device array ", dims_[d]);
  if (host.contiguous()) {
    detail::check(cudaMemcpy(data_, host.data, size_t(size()) * sizeof(T), cudaMemcpyHostToDevice), "upload");
    return;
  }
  std::vector<T> staged(static_cast<size_t>(size()));
  ImageView<T> s{staged.data(), {dims_[0], dims_[1], dims_[2], dims_[3]}, {}};
  detail::contiguous_strides(dims_, s.strides);
  copy_view<T>(host, s);
  detail::check(cudaMemcpy(data_, staged.data(), staged.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
}

template <class T> void DeviceGrid<T>::download(ImageView<T> host) const {
  for (int d = 0; d < 4; ++d)
    VX_CHECK(host.dims[d] == dims_[d], InvalidArgument, "device download: axis ", d, " has ", host.dims[d],
             " samples, the device array ", dims_[d]);
  if (host.contiguous()) {
    detail::check(cudaMemcpy(host.data, data_, size_t(size()) * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return;
  }
  std::vector<T> staged(static_cast<size_t>(size()));
  detail::check(cudaMemcpy(staged.data(), data_, staged.size() * sizeof(T), cudaMemcpyDeviceToHost), "download");
  ImageView<const T> s{staged.data(), {dims_[0], dims_[1], dims_[2], dims_[3]}, {}};
  detail::contiguous_strides(dims_, s.strides);
  copy_view<T>(s, host);
}

double synchronize_ms() {
  static auto last = std::chrono::steady_clock::now();
  detail::check(cudaDeviceSynchronize(), "synchronize");
  const auto now = std::chrono::steady_clock::now();
  const double ms = std::chrono::duration<double, std::milli>(now - last).count();
  last = now;
  return ms;
}

template class DeviceGrid<float>;
template class DeviceGrid<double>;

} // namespace voxalign::cuda
