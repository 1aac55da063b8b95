#!/usr/bin/env bash
# The GPU check (make test-gpu; docs/cuda.md): on a machine with an NVIDIA GPU and nvcc, build
# with the CUDA backend, run the GPU tests (which must run, not skip), the host-loop tests of the
# kernel bodies, and the GPU benchmark against the CPU and CuPy. One run, well under 8 minutes on
# 16 cores. Usage: tools/test_gpu.sh [build-dir]
set -euo pipefail
BUILD=${1:-build/release}
JOBS=${JOBS:-$(nproc)}
cmake --preset release -DVOXALIGN_CUDA=ON -DVOXALIGN_BUILD_PYTHON=OFF -DVOXALIGN_BUILD_CLI=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target voxalign_tests voxalign_tests_cuda voxalign_bench_gpu
echo "== GPU tests"
if "$BUILD/voxalign_tests_cuda" 2>&1 | tee /dev/stderr | grep -q "no GPU check here"; then
  echo "test-gpu: no usable GPU (see the skip reason above)" >&2
  exit 1
fi
"$BUILD/voxalign_tests_cuda" --gtest_brief=1
echo "== kernel bodies through host loops"
"$BUILD/voxalign_tests" --gtest_filter='KernelBodies.*' --gtest_brief=1
echo "== GPU benchmark"
python3 bench/bench_gpu.py --build "$BUILD"
