#!/usr/bin/env bash
# Verifies the thread count a command uses, as its summary line reports it ("on N threads (SOURCE)"):
# --threads, then VOXALIGN_NUM_THREADS, then OMP_NUM_THREADS (a list: its first item), then
# ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS, then all cores; an invalid variable (empty, 0, negative,
# not a number, > 1024) is skipped, never used and never an error; --threads 0 is still refused.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
f = np.zeros((16, 16, 12), np.float32); f[3:13, 4:12, 3:9] = 100
f += rng.normal(size=f.shape).astype(np.float32)
nib.save(nib.Nifti1Image(f, np.eye(4)), 'fixed.nii.gz')
nib.save(nib.Nifti1Image(np.roll(f, 1, 0), np.eye(4)), 'moving.nii.gz')
" || exit 1
unset VOXALIGN_NUM_THREADS OMP_NUM_THREADS ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS
cores=$(python3 -c "import os; print(os.cpu_count())")  # sysconf, as std::thread::hardware_concurrency
# threads_line WANT [VAR=VALUE...] [-- EXTRA ARGS]: register's summary line must contain WANT
threads_line() {
  local want=$1; shift
  local envs=() extra=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@")
  env "${envs[@]}" "$VOXALIGN" register moving.nii.gz --fixed fixed.nii.gz --save-matrix m.txt --levels 1 \
    --iterations 2 "${extra[@]}" >stdout.txt 2>stderr.txt || { echo "failed: ${envs[*]} ${extra[*]}"; cat stderr.txt; exit 1; }
  if ! grep -qF -- "$want" stdout.txt; then echo "want '$want' with ${envs[*]} ${extra[*]}, got:"; cat stdout.txt; exit 1; fi
  if [ -s stderr.txt ]; then echo "stderr not empty: ${envs[*]}"; cat stderr.txt; exit 1; fi
  echo "ok: ${envs[*]} ${extra[*]} -> $want"
}
one() { [ "$1" = 1 ] && echo "on 1 thread" || echo "on $1 threads"; }
threads_line "$(one "$cores") (all cores)"
threads_line "on 1 thread (OMP_NUM_THREADS)" OMP_NUM_THREADS=1
threads_line "on 3 threads (OMP_NUM_THREADS)" OMP_NUM_THREADS=3,2 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=5
threads_line "on 5 threads (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS)" ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=5
threads_line "on 2 threads (VOXALIGN_NUM_THREADS)" VOXALIGN_NUM_THREADS=2 OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=5
threads_line "on 4 threads (--threads)" VOXALIGN_NUM_THREADS=2 OMP_NUM_THREADS=1 -- --threads 4
for bad in "" 0 -2 abc 2.5 1025 99999999999999999999 "4,"; do
  threads_line "on 1 thread (OMP_NUM_THREADS)" "VOXALIGN_NUM_THREADS=$bad" OMP_NUM_THREADS=1
  threads_line "on 1 thread (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS)" "OMP_NUM_THREADS=$bad" ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
  threads_line "$(one "$cores") (all cores)" "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=$bad"
done
rm -f m.txt
expect_fail "--threads" register moving.nii.gz --fixed fixed.nii.gz --save-matrix out.txt --threads 0
expect_fail "--threads" register moving.nii.gz --fixed fixed.nii.gz --save-matrix out.txt --threads 2000
echo "all ok"
