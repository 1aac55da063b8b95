#!/usr/bin/env bash
# Verifies progress reporting on long work when stderr is a log (not a terminal): with
# VOXALIGN_PROGRESS_INTERVAL=0 n4, realign (estimation and reslicing) and register (one report per
# moving image) write progress lines and a closing "done in" line to stderr and nothing of it to
# stdout; -q silences them; with the default interval (5 s) a short run writes nothing to stderr;
# register's summary gives the parameters with units; a bad VOXALIGN_PROGRESS_INTERVAL is refused
# with one line naming it.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
f = np.zeros((20, 18, 14), np.float32); f[4:16, 4:14, 3:11] = 100; f[8:12, 6:10, 5:9] = 160
f += rng.normal(size=f.shape).astype(np.float32) + 5
nib.save(nib.Nifti1Image(f, np.eye(4)), 'fixed.nii.gz')
nib.save(nib.Nifti1Image(np.roll(f, 1, 0), np.eye(4)), 'moving.nii.gz')
nib.save(nib.Nifti1Image(np.roll(f, -1, 1), np.eye(4)), 'moving2.nii.gz')
nib.save(nib.Nifti1Image(np.stack([np.roll(f, t % 2, 0) for t in range(4)], -1), np.eye(4)), 'bold.nii.gz')
" || exit 1

# run NAME LABEL ARGS...: with interval 0, stderr has progress lines for LABEL and a "done in" line;
# stdout has none; with -q stderr is empty; with the default interval stderr is empty.
run() {
  local name=$1 label=$2; shift 2
  VOXALIGN_PROGRESS_INTERVAL=0 "$VOXALIGN" "$@" >stdout.txt 2>stderr.txt || { echo "$name failed"; cat stderr.txt; exit 1; }
  grep -qE "^$label: [0-9]+% after [0-9]+:[0-9]{2}, about .* left" stderr.txt || { echo "$name: no progress line"; cat stderr.txt; exit 1; }
  grep -qE "^$label: done in [0-9]+:[0-9]{2}$" stderr.txt || { echo "$name: no closing line"; cat stderr.txt; exit 1; }
  if grep -q "% after" stdout.txt; then echo "$name: progress on stdout"; exit 1; fi
  [ -s stdout.txt ] || { echo "$name: no summary on stdout"; exit 1; }
  VOXALIGN_PROGRESS_INTERVAL=0 "$VOXALIGN" "$@" -q >stdout.txt 2>stderr.txt || { echo "$name -q failed"; exit 1; }
  [ -s stderr.txt ] && { echo "$name -q: stderr not empty"; cat stderr.txt; exit 1; }
  [ -s stdout.txt ] && { echo "$name -q: stdout not empty"; cat stdout.txt; exit 1; }
  env -u VOXALIGN_PROGRESS_INTERVAL "$VOXALIGN" "$@" >stdout.txt 2>stderr.txt || { echo "$name (default) failed"; exit 1; }
  [ -s stderr.txt ] && { echo "$name: a short run wrote to the log"; cat stderr.txt; exit 1; }
  echo "ok: $name"
}
run n4 n4 n4 fixed.nii.gz -o out_n4.nii.gz --iterations 3x2 --shrink 2
run realign realign realign bold.nii.gz -o out_mc.nii.gz --ref first
grep -q "reslice" <(VOXALIGN_PROGRESS_INTERVAL=0 "$VOXALIGN" realign bold.nii.gz -o out_mc.nii.gz 2>&1 >/dev/null) \
  || { echo "realign: no progress for reslicing"; exit 1; }
run register "register moving.nii.gz" register moving.nii.gz moving2.nii.gz --fixed fixed.nii.gz -o out_r1.nii.gz out_r2.nii.gz --levels 2,1 --iterations 3
grep -q "^register moving2.nii.gz: done in" <(VOXALIGN_PROGRESS_INTERVAL=0 "$VOXALIGN" register moving.nii.gz moving2.nii.gz \
  --fixed fixed.nii.gz -o out_r1.nii.gz out_r2.nii.gz --levels 1 --iterations 2 2>&1 >/dev/null) \
  || { echo "register: no report for the second moving image"; exit 1; }

# register's summary: parameters with units
"$VOXALIGN" register moving.nii.gz --fixed fixed.nii.gz --save-matrix m.txt --levels 1 --iterations 3 >stdout.txt 2>&1 || exit 1
grep -qE "translation \(-?[0-9.]+, -?[0-9.]+, -?[0-9.]+\) mm, rotation \(-?[0-9.]+, -?[0-9.]+, -?[0-9.]+\) deg" stdout.txt \
  || { echo "register summary lacks units:"; cat stdout.txt; exit 1; }
"$VOXALIGN" register moving.nii.gz --fixed fixed.nii.gz --save-matrix m.txt --levels 1 --iterations 3 --transform affine >stdout.txt 2>&1 || exit 1
grep -qE "deg, zoom \(.*\), shear \(.*\)" stdout.txt || { echo "affine summary lacks zoom/shear:"; cat stdout.txt; exit 1; }
echo "ok: register summary: $(grep " mm, rotation" stdout.txt)"
rm -f out*
VOXALIGN_PROGRESS_INTERVAL=soon expect_fail "VOXALIGN_PROGRESS_INTERVAL" n4 fixed.nii.gz -o out_n4.nii.gz --iterations 2 --shrink 2
echo "all ok"
