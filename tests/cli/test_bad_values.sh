#!/usr/bin/env bash
# Verifies: bad option values that used to pass (or to end in "out of memory") are refused by every
# command with a one-line error naming the option or file and what is wrong, a non-zero exit and
# nothing written: empty, non-finite and out-of-range numbers, lists with an empty item, 4D masks
# (refused by register and n4 alike), and sizes that would blow up memory or time (n4
# --control-points / --spline-distance, realign --fwhm, register --smoothing, a moving image with
# 1.2e-4 mm voxels that does not overlap the fixed one: refused in well under a second, not after
# seconds of pyramid building -- minutes and 1 GB at 1e-5 mm).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
shape = (30, 34, 26)
g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing='ij')
r = np.sqrt(sum(x ** 2 for x in g))
img = (np.where(r < 0.8, 100.0, 5.0) + rng.normal(0, 2, shape)).astype(np.float32)
A = np.diag([1.5, 1.2, 2.0, 1.0])
nib.save(nib.Nifti1Image(img, A), 'in.nii.gz')
nib.save(nib.Nifti1Image(np.roll(img, 1, 0), A), 'moving.nii.gz')
nib.save(nib.Nifti1Image(img, np.diag([1.2e-4, 1.2e-4, 1.2e-4, 1.0])), 'tiny.nii.gz')
nib.save(nib.Nifti1Image(np.stack([r < 0.85] * 2, -1).astype(np.uint8), A), 'mask4d.nii.gz')
nib.save(nib.Nifti1Image(np.stack([img, np.roll(img, 1, 1), img], -1), A), 'bold.nii.gz')
u = np.zeros(shape + (3,), np.float32)
nib.save(nib.Nifti1Image(u, A), 'field.nii.gz')
" || exit 1
# no_oom ARGS...: as expect_fail, and the message must not be "out of memory".
no_oom() {
  expect_fail "$@"
  if grep -q "out of memory" stderr.txt; then echo "out of memory instead of naming the option"; exit 1; fi
}

# resample
expect_fail "--cval: an empty value is not a number" resample in.nii.gz -o out.nii.gz --cval ''
expect_fail "--cval: '1e400' is too large" resample in.nii.gz -o out.nii.gz --cval 1e400
expect_fail "--cval: 'nan' is not a finite number" resample in.nii.gz -o out.nii.gz --cval nan
expect_fail "--cval: '-inf' is not a finite number" resample in.nii.gz -o out.nii.gz --cval -inf
expect_fail "--cval: '3x' is not a number" resample in.nii.gz -o out.nii.gz --cval 3x
expect_fail "--threads: an empty value" resample in.nii.gz -o out.nii.gz --threads ''
expect_fail "--threads: 0 is out of range" resample in.nii.gz -o out.nii.gz --threads 0
expect_fail "--threads: 100000 is out of range" resample in.nii.gz -o out.nii.gz --threads 100000
# warp (its only number is --threads)
expect_fail "--threads: '2.5' is not a whole number" warp in.nii.gz --field field.nii.gz -o out.nii.gz --threads 2.5

# register
expect_fail "--levels: '4,2,1,' has an empty item" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --levels 4,2,1,
expect_fail "--levels: '4,,1' has an empty item" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --levels 4,,1
expect_fail "--levels: 0 is out of range" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --levels 2,0
expect_fail "--smoothing: 'nan' is not a finite number" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --levels 2,1 --smoothing 1,nan
expect_fail "--iterations: '10,' has an empty item" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --iterations 10,
expect_fail "--tolerance: 'inf' is not a finite number" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --tolerance inf
expect_fail "--tolerance: 0 must be > 0" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --tolerance 0
expect_fail "--samples: an empty value" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --samples ''
expect_fail "--bins: 7 is out of range" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --bins 7
expect_fail "--degree: '2.5' is not a whole number" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --degree 2.5
expect_fail "--freeze: 'rotation,' has an empty item" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --freeze rotation,
no_oom "--smoothing: 1e+09 mm is wider than the fixed image" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz \
  --levels 2,1 --smoothing 1e9,0
# 4D masks: register and n4 agree (refused, with the same words)
expect_fail "--fixed-mask mask4d.nii.gz is 4D (2 frames); a mask is one 2D or 3D image" register moving.nii.gz \
  --fixed in.nii.gz -o out.nii.gz --fixed-mask mask4d.nii.gz
expect_fail "--moving-mask mask4d.nii.gz is 4D (2 frames); a mask is one 2D or 3D image" register moving.nii.gz \
  --fixed in.nii.gz -o out.nii.gz --moving-mask mask4d.nii.gz
expect_fail "--mask mask4d.nii.gz is 4D (2 frames); a mask is one 2D or 3D image" n4 in.nii.gz -o out.nii.gz \
  --mask mask4d.nii.gz
# 1.2e-4 mm voxels: "do not overlap" at once (the pyramids were built first: seconds here, minutes
# and 1 GB at 1e-5 mm)
start=${EPOCHREALTIME/./}
expect_fail "the images do not overlap at the initial transform" register tiny.nii.gz --fixed in.nii.gz -o out.nii.gz
ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))
[ $ms -le 1500 ] || { echo "register took $ms ms to refuse non-overlapping images"; exit 1; }

# n4
expect_fail "--shrink: an empty value" n4 in.nii.gz -o out.nii.gz --shrink ''
expect_fail "--convergence: an empty value" n4 in.nii.gz -o out.nii.gz --convergence ''
expect_fail "--convergence: 'nan' is not a finite number" n4 in.nii.gz -o out.nii.gz --convergence nan
expect_fail "--wiener: 'inf' is not a finite number" n4 in.nii.gz -o out.nii.gz --wiener inf
expect_fail "--fwhm: 0 must be > 0" n4 in.nii.gz -o out.nii.gz --fwhm 0
expect_fail "--spline-distance: '1e999' is too large" n4 in.nii.gz -o out.nii.gz --spline-distance 1e999
expect_fail "--spline-distance: -5 must be > 0" n4 in.nii.gz -o out.nii.gz --spline-distance -5
expect_fail "--bins: 1 is out of range" n4 in.nii.gz -o out.nii.gz --bins 1
expect_fail "--iterations: expected numbers joined by 'x'" n4 in.nii.gz -o out.nii.gz --iterations 50x50x
no_oom "--control-points 2000 gives 1997 mesh elements along axis 0, more than its 30 voxels" n4 in.nii.gz \
  -o out.nii.gz --control-points 2000
no_oom "--spline-distance 1e+09 mm is more than twice the image's extent" n4 in.nii.gz -o out.nii.gz --spline-distance 1e9
no_oom "--control-points with 8 fitting levels (--iterations) gives a final B-spline lattice" n4 in.nii.gz -o out.nii.gz \
  --control-points 20 --iterations 1x1x1x1x1x1x1x1

# realign
no_oom "--fwhm 1e+09 mm is wider than the image" realign bold.nii.gz -o out.nii.gz --fwhm 1e9
expect_fail "--fwhm: 'nan' is not a finite number" realign bold.nii.gz -o out.nii.gz --fwhm nan
expect_fail "--sep: an empty value" realign bold.nii.gz -o out.nii.gz --sep ''
expect_fail "--sep: 0 must be > 0" realign bold.nii.gz -o out.nii.gz --sep 0
expect_fail "--quality: 0 is out of range (0, 1]" realign bold.nii.gz -o out.nii.gz --quality 0
expect_fail "--quality: 1.5 is out of range (0, 1]" realign bold.nii.gz -o out.nii.gz --quality 1.5
expect_fail "--write-degree: 9 is out of range" realign bold.nii.gz -o out.nii.gz --write-degree 9
expect_fail "--mask mask4d.nii.gz is 4D (2 frames); a mask is one 2D or 3D image" realign bold.nii.gz -o out.nii.gz \
  --mask mask4d.nii.gz
echo "all ok"
