// The one host/device marker of the kernel layer: functions marked VX_HD are plain inline
// functions in a CPU build and __host__ __device__ ones under nvcc, so a CPU loop and a CUDA
// kernel share their source.
#pragma once

#ifdef __CUDACC__
#define VX_HD __host__ __device__ inline
#define VX_FORCEINLINE __attribute__((always_inline))
#else
#define VX_HD inline
#define VX_FORCEINLINE __attribute__((always_inline))
#endif
