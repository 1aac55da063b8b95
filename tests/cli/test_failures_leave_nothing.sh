#!/usr/bin/env bash
# Verifies: a command that fails leaves no new file at all -- register whose image cannot be written
# (its transform files must not stay), realign whose series cannot be written (rp, par, confounds,
# json, transforms, mean must not stay), realign whose --report fails (the series and the report's
# first files must not stay, nor the report directory), n4 whose --bias-out fails (the corrected
# image must not stay), n4 and realign killed by SIGTERM/SIGINT while writing (no .vxtmp-* file,
# exit status 128 + signal); and an output equal to an input, or two outputs naming one file, is
# refused before anything is written. Write failures come from a file-size limit (ulimit -f with
# SIGXFSZ ignored, so write() fails with EFBIG: works as root too).
set -uo pipefail
set -m # background jobs get SIGINT's default action (without job control bash ignores it for them)
mkdir -p w && cd w || exit 1
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
shape = (40, 44, 36)
A = np.diag([1.2, 1.1, 1.3, 1.0]); A[:3, 3] = -24
g = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing='ij')
r = np.sqrt(sum(x ** 2 for x in g))
f = (100 * (r < 0.7) + 40 * (r < 0.4) + rng.normal(0, 2, shape) + 5).astype(np.float32)
nib.save(nib.Nifti1Image(f, A), 'fixed.nii')
nib.save(nib.Nifti1Image(np.roll(f, 1, 0), A), 'moving.nii')
series = np.stack([np.roll(f, t % 2, 1) for t in range(6)], -1)
nib.save(nib.Nifti1Image(series, A), 'bold.nii')
big = np.broadcast_to(f[:, :, :, None], shape + (60,))
nib.save(nib.Nifti1Image(np.ascontiguousarray(big), A), 'bold_long.nii')
# a large image (n4 spends its time writing it)
bshape = (200, 200, 150)
gb = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in bshape], indexing='ij', sparse=True)
rb = np.sqrt(gb[0] ** 2 + gb[1] ** 2 + gb[2] ** 2)
nib.save(nib.Nifti1Image((100 * (rb < 0.7) + 5 + 10 * gb[0]).astype(np.float32), np.eye(4)), 'big.nii')
" || exit 1

snapshot() { ls -A | sort; }
# fails WHAT ARGS...: voxalign ARGS must exit non-zero (files limited to $LIMIT KiB, default 64) and
# leave the directory exactly as it was.
fails() {
  local what=$1; shift
  local before; before=$(snapshot)
  ( trap '' XFSZ; ulimit -f "${LIMIT:-64}"; exec "$VOXALIGN" "$@" ) >../stdout.txt 2>../stderr.txt
  local rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL $what: exit status 0"; exit 1; fi
  local after; after=$(snapshot)
  if [ "$before" != "$after" ]; then
    echo "FAIL $what: the directory changed:"; diff <(echo "$before") <(echo "$after"); cat ../stderr.txt; exit 1
  fi
  echo "ok $what ($rc): $(cat ../stderr.txt)"
}

# register writes its transforms before the image: the image (250 KB) is over the limit.
fails "register: image not writable" register moving.nii --fixed fixed.nii -o moved.nii --save-transform t.txt \
  --save-fsl t.mat --save-matrix r.txt --levels 2 --iterations 2 -q
# realign writes rp, par, confounds (+json), transforms and the mean before the series (1.5 MB).
fails "realign: series not writable" realign bold.nii -o out.nii --rp rp.txt --par p.par --confounds c.tsv \
  --save-transforms x.txt --mean mean.nii --dtype uint8 --sep 8 -q
# --report fails after the series has been written: its index.html is taken by a directory.
mkdir -p rep/index.html
LIMIT=10000000 fails "realign: --report fails" realign bold.nii -o out.nii --report rep --sep 8 --dtype uint8 -q
rmdir rep/index.html rep
# --report names an existing file: refused before anything is written (the report directory is not made).
echo x > rep_file
LIMIT=unlimited fails "realign: --report is a file" realign bold.nii -o out.nii --rp rp.txt --report rep_file --sep 8 --dtype uint8 -q
rm rep_file
# n4: the corrected image (uint8, 63 KB) fits, the bias field (float32, 250 KB) does not.
fails "n4: --bias-out not writable" n4 fixed.nii -o corr.nii --dtype uint8 --bias-out bias.nii --iterations 2x2 -q

# Outputs that would overwrite an input, or each other: refused, nothing written.
cp fixed.nii copy.nii
LIMIT=unlimited fails "-o equal to the input" resample copy.nii -o ./copy.nii
cmp -s fixed.nii copy.nii || { echo "FAIL: the input was changed"; exit 1; }
ln -s copy.nii link.nii
LIMIT=unlimited fails "-o a symbolic link to the input" resample copy.nii -o link.nii
LIMIT=unlimited fails "realign -o X --mean X" realign bold.nii -o same.nii --mean same.nii -q
LIMIT=unlimited fails "n4 -o X --bias-out X" n4 fixed.nii -o same.nii --bias-out same.nii -q
LIMIT=unlimited fails "register --save-transform = --save-matrix" register moving.nii --fixed fixed.nii -o m.nii --save-transform t.txt \
  --save-matrix t.txt -q
LIMIT=unlimited fails "register -o = --fixed" register moving.nii --fixed fixed.nii -o fixed.nii -q
LIMIT=unlimited fails "--confounds' sidecar = --rp" realign bold.nii --estimate-only --confounds c.tsv --rp c.json -q
rm -f link.nii copy.nii

# SIGTERM / SIGINT while the outputs are being written: no temporary file stays, no output appears,
# and the exit status says the signal ended it.
killed() {
  local sig=$1; shift
  local before; before=$(snapshot)
  "$VOXALIGN" "$@" >../stdout.txt 2>../stderr.txt &
  local pid=$!
  local n=0
  until compgen -G ".vxtmp-*" >/dev/null; do
    sleep 0.005; n=$((n + 1))
    if ! kill -0 $pid 2>/dev/null || [ $n -gt 6000 ]; then echo "FAIL $sig: no temporary file seen"; exit 1; fi
  done
  kill -s "$sig" $pid
  wait $pid
  local rc=$?
  local after; after=$(snapshot)
  if [ $rc -lt 128 ]; then echo "FAIL $sig: exit status $rc, not 128 + signal"; exit 1; fi
  if [ "$before" != "$after" ]; then
    echo "FAIL $sig: the directory changed:"; diff <(echo "$before") <(echo "$after"); exit 1
  fi
  echo "ok $sig ($rc): $*"
}
killed TERM n4 big.nii -o big_corr.nii.gz --bias-out big_bias.nii.gz --iterations 1 --shrink 4 -q --threads 1
killed INT n4 big.nii -o big_corr.nii.gz --bias-out big_bias.nii.gz --iterations 1 --shrink 4 -q --threads 1
killed TERM realign bold_long.nii -o long_out.nii.gz --rp long_rp.txt --mean long_mean.nii.gz --sep 8 -q --threads 1
echo "all ok"
