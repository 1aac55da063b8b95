#!/usr/bin/env bash
# Verifies `voxalign register`: a known rigid transform is recovered (ITK, FSL and RAS files all
# describe it: SimpleITK reads the ITK files, text .txt and binary .mat, --init from the FSL file with 0 iterations gives the same
# matrix), the moved image lies on the fixed grid and matches the fixed image, two moving images in
# one call, --keep-fill (compare zero-valued fill too) accepted and still recovering the transform,
# the transform alone (no -o: the same transform files, no image written; -o still one per moving
# image when given; no output at all refused by name), and bad input refused with a one-line error
# and no output.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
python3 -c "
import numpy as np, nibabel as nib
from scipy.ndimage import gaussian_filter
import voxalign as vx
rng = np.random.default_rng(0)
shape = (40, 44, 36)
A = np.array([[1.2, 0, 0, -24], [0, 1.1, 0, -24], [0, 0, 1.3, -23], [0, 0, 0, 1.]])
g = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing='ij')
inside = sum((x / 0.7) ** 2 for x in g) < 1
f = gaussian_filter(gaussian_filter(rng.normal(size=shape), 2) * 40 * inside + 100 * inside, 1).astype(np.float32)
c = (A @ np.r_[(np.array(shape) - 1) / 2, 1])[:3]
def rig(a, t):
    ca, sa = np.cos(a), np.sin(a)
    R = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    T = np.eye(4); T[:3, :3] = R; T[:3, 3] = c + t - R @ c; return T
T1, T2 = rig(0.12, np.array([3., -2., 1.5])), rig(-0.08, np.array([-1., 2.5, -2.]))
np.savetxt('truth1.txt', T1); np.savetxt('truth2.txt', T2)
nib.save(nib.Nifti1Image(f, A), 'fixed.nii.gz')
for n, T in (('1', T1), ('2', T2)):
    m = vx.resample(f, A, shape, A, transform=np.linalg.inv(T), degree=3, mode='constant')
    nib.save(nib.Nifti1Image(m.astype(np.float32), A), 'moving' + n + '.nii.gz')
nib.save(nib.Nifti1Image(np.zeros(shape + (3,), np.float32), A), 'four.nii.gz')
nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), A), 'empty_mask.nii.gz')
" || exit 1
"$VOXALIGN" register moving1.nii.gz moving2.nii.gz --fixed fixed.nii.gz -o moved1.nii.gz moved2.nii.gz \
  --save-transform x1.txt x2.itk.mat --save-fsl x1.mat x2.mat --save-matrix r1.txt r2.txt --levels 2,1 || exit 1
"$VOXALIGN" register moving1.nii.gz --fixed fixed.nii.gz -o again1.nii.gz --init x1.mat --iterations 0 \
  --save-matrix again1.txt -q || exit 1
"$VOXALIGN" register moving1.nii.gz --fixed fixed.nii.gz -o keep1.nii.gz --levels 2,1 --keep-fill \
  --save-matrix k1.txt -q || exit 1
# the transform only: no -o, no image written, the same transform as with -o
mkdir only && cd only || exit 1
"$VOXALIGN" register ../moving1.nii.gz ../moving2.nii.gz --fixed ../fixed.nii.gz --levels 2,1 \
  --save-transform x1.txt x2.itk.mat --save-fsl x1.mat x2.mat --save-matrix r1.txt r2.txt >log.txt || exit 1
cd .. || exit 1
[ "$(ls only | sort | tr '\n' ' ')" = "log.txt r1.txt r2.txt x1.mat x1.txt x2.itk.mat x2.mat " ] || { echo "transform only wrote: $(ls only)"; exit 1; }
grep -q "wrote r2.txt" only/log.txt || { echo "no 'wrote' line"; cat only/log.txt; exit 1; }
for f in x1.txt x2.itk.mat x1.mat x2.mat r1.txt r2.txt; do
  cmp -s "$f" "only/$f" || { echo "transform only: $f differs from the run with -o"; exit 1; }
done
python3 -c "
import numpy as np, nibabel as nib, SimpleITK as sitk, voxalign as vx
A = nib.load('fixed.nii.gz').affine
f = np.asarray(nib.load('fixed.nii.gz').dataobj)
ijk = np.argwhere(f > 50); X = np.c_[(A @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3], np.ones(len(ijk))]
for n, itk in (('1', 'x1.txt'), ('2', 'x2.itk.mat')):
    T, R = np.loadtxt('truth' + n + '.txt'), np.loadtxt('r' + n + '.txt')
    err = np.sqrt((((X @ R.T) - (X @ T.T))[:, :3] ** 2).sum(1).mean())
    assert err < 0.05, (n, err)
    assert np.allclose(vx.read_transform(itk), R, atol=1e-9), 'ITK file differs from the RAS matrix'
    moved = np.asarray(nib.load('moved' + n + '.nii.gz').dataobj)
    assert moved.shape == f.shape and np.allclose(nib.load('moved' + n + '.nii.gz').affine, A)
    inner = (slice(6, -6),) * 3
    assert np.abs(moved - f)[inner].max() < 0.05 * f.max(), np.abs(moved - f)[inner].max()
    tx = sitk.ReadTransform(itk)  # SimpleITK reads our ITK file: LPS points map as ours do
    p = np.array([5.0, -3.0, 4.0]); q = np.array(tx.TransformPoint((-p[0], -p[1], p[2])))
    assert np.allclose([-q[0], -q[1], q[2]], (R @ np.r_[p, 1])[:3], atol=1e-9)
assert np.allclose(np.loadtxt('again1.txt'), np.loadtxt('r1.txt'), atol=1e-9), 'FSL --init round trip'
K, T = np.loadtxt('k1.txt'), np.loadtxt('truth1.txt')
assert np.sqrt((((X @ K.T) - (X @ T.T))[:, :3] ** 2).sum(1).mean()) < 0.05, '--keep-fill'
print('ok')
" || exit 1
rm -rf moved* again* keep1.nii.gz k1.txt x1.* x2.* r1.txt r2.txt only
expect_fail "4D" register four.nii.gz --fixed fixed.nii.gz -o out.nii.gz
expect_fail "mask is empty" register moving1.nii.gz --fixed fixed.nii.gz -o out.nii.gz --fixed-mask empty_mask.nii.gz
expect_fail "one output per moving image" register moving1.nii.gz moving2.nii.gz --fixed fixed.nii.gz -o out.nii.gz
expect_fail "one output per moving image" register moving1.nii.gz moving2.nii.gz --fixed fixed.nii.gz -o out.nii.gz \
  --save-matrix out1.txt out2.txt
expect_fail "nothing to write: give -o (the moved images) and/or --save-transform, --save-fsl or --save-matrix" \
  register moving1.nii.gz --fixed fixed.nii.gz
expect_fail "one file per moving image" register moving1.nii.gz moving2.nii.gz --fixed fixed.nii.gz --save-matrix out1.txt
expect_fail "nothere.nii.gz: no such file" register nothere.nii.gz --fixed fixed.nii.gz -o out.nii.gz
expect_fail "--metric" register moving1.nii.gz --fixed fixed.nii.gz -o out.nii.gz --metric cc
expect_fail "output directory does not exist" register moving1.nii.gz --fixed fixed.nii.gz -o out.nii.gz --save-transform nodir/x.txt
expect_fail "save-transform: out.xfm: name an ITK transform file .txt or .tfm (ITK text), .mat (ITK/ANTs binary MATLAB v4) or .h5" register moving1.nii.gz \
  --fixed fixed.nii.gz -o out.nii.gz --save-transform out.xfm
echo "all ok"
