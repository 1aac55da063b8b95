#!/usr/bin/env bash
# The GPU check (make test-gpu; docs/cuda.md): on a machine with an NVIDIA GPU and nvcc, build
# with the CUDA backend in its own build folder, run the GPU tests (which must run, not skip), the
# host-loop tests of the kernel bodies, and the GPU benchmark against the CPU and CuPy. One run,
# well under 8 minutes on 16 cores.
# Usage: tools/test_gpu.sh [build-dir (build/gpu)] [extra cmake arguments...]
set -euo pipefail
BUILD=${1:-build/gpu}
shift || true
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVOXALIGN_CUDA=ON -DVOXALIGN_BUILD_PYTHON=OFF \
  -DVOXALIGN_BUILD_CLI=OFF "$@" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target voxalign_tests voxalign_tests_cuda voxalign_bench_gpu
echo "== GPU tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$BUILD/voxalign_tests_cuda" --gtest_brief=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -q "no GPU check here" "$log"; then
  echo "test-gpu: no usable GPU (the reason is above)" >&2
  exit 1
fi
[ "$rc" = 0 ] || exit "$rc"
echo "== kernel bodies through host loops"
"$BUILD/voxalign_tests" --gtest_filter='KernelBodies.*' --gtest_brief=1
echo "== GPU benchmark"
python3 bench/bench_gpu.py --build "$BUILD"
