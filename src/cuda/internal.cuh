// Internal to the CUDA backend: error checks, launch shapes and the coefficient view of device
// coefficients.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "voxalign/core/error.hpp"
#include "voxalign/cuda/cuda.hpp"
#include "voxalign/kernel/stencil.hpp"

namespace voxalign::cuda::detail {

/// Throw voxalign's Error with CUDA's message when a runtime call fails.
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(::voxalign::detail::concat("CUDA: ", what, ": ", cudaGetErrorString(e)));
}
/// After a launch: the launch error, if any (kernels run asynchronously; errors inside them are
/// reported by the next synchronising call).
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

constexpr int kBlock = 256;
/// Blocks for n threads of kBlock (grid-stride loops cover the rest beyond the cap).
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kBlock - 1) / kBlock;
  return unsigned(b < 1 ? 1 : b > (int64_t(1) << 30) ? (int64_t(1) << 30) : b);
}

/// Contiguous (x fastest) strides of dims.
inline void contiguous_strides(const int64_t* dims, int64_t* strides) {
  strides[0] = 1;
  for (int d = 1; d < 4; ++d) strides[d] = strides[d - 1] * dims[d - 1];
}

template <class T, int D> kernel::CoefView<T, D> coef_view(const DeviceCoefficients<T>& c) {
  kernel::CoefView<T, D> v;
  v.c = c.grid.data();
  int64_t st[4];
  contiguous_strides(c.grid.dims(), st);
  for (int d = 0; d < 3; ++d) v.dims[d] = c.grid.dims()[d], v.strides[d] = st[d];
  v.mode = c.mode;
  v.pad = c.pad;
  v.cval = T(c.cval);
  return v;
}

} // namespace voxalign::cuda::detail
