#!/usr/bin/env bash
# Verifies `voxalign n4`: output * bias = input with the input's geometry; the Python and CLI faces
# agree bit for bit; bad input (4D, NaN, mask on another grid, empty mask, conflicting options,
# missing files) gives a one-line error naming the problem, a non-zero exit and no output file.
set -uo pipefail
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (30, 34, 26)], indexing='ij')
r = np.sqrt(x**2 + y**2 + z**2)
img = (np.where(r < 0.8, 100.0, 5.0) + np.where(r < 0.4, 50.0, 0) + rng.normal(0, 2, r.shape)) * np.exp(0.3 * x - 0.2 * z)
img = np.maximum(img, 1).astype(np.float32)
aff = np.array([[-1.5, 0, 0, 20], [0, 1.2, 0, -30], [0, 0, 2.0, 5], [0, 0, 0, 1]])
nib.save(nib.Nifti1Image(img, aff), 'in.nii.gz')
nib.save(nib.Nifti1Image((r < 0.85).astype(np.uint8), aff), 'mask.nii.gz')
nib.save(nib.Nifti1Image(np.zeros(r.shape, np.uint8), aff), 'empty.nii.gz')
nib.save(nib.Nifti1Image((r < 0.85).astype(np.uint8)[:-1], aff), 'mask_small.nii.gz')
a2 = aff.copy(); a2[0, 3] += 3
nib.save(nib.Nifti1Image((r < 0.85).astype(np.uint8), a2), 'mask_moved.nii.gz')
nib.save(nib.Nifti1Image(np.stack([img, img], -1), aff), 'four_d.nii.gz')
bad = img.copy(); bad[3, 4, 5] = np.nan
nib.save(nib.Nifti1Image(bad, aff), 'nan.nii.gz')
" || exit 1

"$VOXALIGN" n4 in.nii.gz -o corr.nii.gz --mask mask.nii.gz --bias-out bias.nii.gz --shrink 2 --iterations 20x20 \
  --threads 2 || exit 1
"$VOXALIGN" n4 in.nii.gz -o corr_otsu.nii.gz --shrink 2 --iterations 5x5 -v > verbose.txt || exit 1
grep -q "level 2 iteration   5" verbose.txt || { echo "verbose output lacks iterations"; cat verbose.txt; exit 1; }
python3 -c "
import numpy as np, nibabel as nib, voxalign as vx
i, c, b = (nib.load(f) for f in ('in.nii.gz', 'corr.nii.gz', 'bias.nii.gz'))
assert np.allclose(c.affine, i.affine) and np.allclose(b.affine, i.affine) and c.shape == i.shape
I, C, B = (np.asarray(x.dataobj, dtype=np.float32) for x in (i, c, b))
assert np.allclose(C * B, I, rtol=1e-6), 'corrected * bias != input'
m = np.asarray(nib.load('mask.nii.gz').dataobj)
pc, pb = vx.n4(I, m, spacing=i.header.get_zooms(), iterations=[20, 20], shrink=2)
assert np.array_equal(pc, C) and np.array_equal(pb, B), 'CLI and Python differ'
# the correction flattens the bright class: its coefficient of variation drops
r = np.sqrt(sum(g**2 for g in np.meshgrid(*[np.linspace(-1, 1, n) for n in I.shape], indexing='ij')))
inner = (r < 0.35)
assert C[inner].std() / C[inner].mean() < 0.5 * I[inner].std() / I[inner].mean()
print('ok')
" || exit 1
rm -f corr*.nii.gz bias.nii.gz

source "$(dirname "$0")/lib.sh"
expect_fail "four_d.nii.gz is 4D" n4 four_d.nii.gz -o out.nii.gz
expect_fail "nan.nii.gz: n4: the image has a non-finite value" n4 nan.nii.gz -o out.nii.gz
expect_fail "mask_small.nii.gz is not on the input's grid" n4 in.nii.gz -o out.nii.gz --mask mask_small.nii.gz
expect_fail "mask_moved.nii.gz is not on the input's grid" n4 in.nii.gz -o out.nii.gz --mask mask_moved.nii.gz
expect_fail "no voxel to estimate the bias from" n4 in.nii.gz -o out.nii.gz --mask empty.nii.gz
expect_fail "excludes" n4 in.nii.gz -o out.nii.gz --spline-distance 50 --control-points 5
expect_fail "too small for shrink factor" n4 in.nii.gz -o out.nii.gz --shrink 20
expect_fail "greater than the spline order" n4 in.nii.gz -o out.nii.gz --control-points 3
expect_fail "--iterations" n4 in.nii.gz -o out.nii.gz --iterations 50by50
expect_fail "missing.nii.gz: no such file" n4 missing.nii.gz -o out.nii.gz
expect_fail "no_mask.nii.gz: no such file" n4 in.nii.gz -o out.nii.gz --mask no_mask.nii.gz
"$VOXALIGN" n4 --help | grep -q -- "--spline-distance" || { echo "help lacks options"; exit 1; }
echo "all ok"
