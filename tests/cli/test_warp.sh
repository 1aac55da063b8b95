#!/usr/bin/env bash
# Verifies `voxalign warp`: the forward equals voxalign.warp (voxel units) and the mm-unit path
# (world displacements through the affines); --adjoint passes the dot test against the forward;
# bad fields are refused with a one-line error and no output.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
shape = (20, 18, 16)
aff = np.array([[1.5, 0, 0, -10], [0, 0, 2.0, 4], [0, -1.2, 0, 7], [0, 0, 0, 1]])  # oblique axes
img = rng.standard_normal(shape)
g = np.meshgrid(*[np.arange(s) for s in shape], indexing='ij')
u = np.stack([1.5 * np.sin(g[1] / 3), np.cos(g[2] / 4), 0.8 * np.sin(g[0] / 5)], -1)
nib.save(nib.Nifti1Image(img.astype(np.float32), aff), 'in.nii.gz')
nib.save(nib.Nifti1Image(u.astype(np.float32), aff), 'u_vox.nii.gz')
umm = np.einsum('ij,...j->...i', aff[:3, :3], u)  # the same displacement in world mm
nib.save(nib.Nifti1Image(umm.astype(np.float32), aff), 'u_mm.nii.gz')
nib.save(nib.Nifti1Image(rng.standard_normal(shape).astype(np.float32), aff), 'y.nii.gz')
nib.save(nib.Nifti1Image(u[..., :2].astype(np.float32), aff), 'u_bad.nii.gz')
" || exit 1
"$VOXALIGN" warp in.nii.gz --field u_vox.nii.gz -o w_vox.nii.gz --degree 3 --mode mirror --dtype float64 || exit 1
"$VOXALIGN" warp in.nii.gz --field u_mm.nii.gz --units mm -o w_mm.nii.gz --degree 3 --mode mirror --dtype float64 || exit 1
"$VOXALIGN" warp y.nii.gz --field u_vox.nii.gz -o wt.nii.gz --adjoint --degree 3 --mode mirror --dtype float64 || exit 1
python3 -c "
import numpy as np, nibabel as nib, voxalign as vx
ld = lambda f: np.asarray(nib.load(f).dataobj, dtype=np.float64)
x, y, u = ld('in.nii.gz'), ld('y.nii.gz'), ld('u_vox.nii.gz')
ref = vx.warp(x, u, 3, 'mirror')
assert np.abs(ld('w_vox.nii.gz') - ref).max() < 1e-12, 'voxel units differ from voxalign.warp'
assert np.abs(ld('w_mm.nii.gz') - ref).max() < 1e-5, 'mm units differ'
wx, wty = ld('w_vox.nii.gz'), ld('wt.nii.gz')
err = abs(np.vdot(wx, y) - np.vdot(x, wty)) / (np.linalg.norm(wx) * np.linalg.norm(y))
assert err < 1e-12, err
print('ok, dot test', err)
" || exit 1
rm -f w_*.nii.gz wt.nii.gz
expect_fail "must be 4D with 3 components" warp in.nii.gz --field u_bad.nii.gz -o out.nii.gz
expect_fail "no_field.nii.gz: no such file" warp in.nii.gz --field no_field.nii.gz -o out.nii.gz
expect_fail "--units" warp in.nii.gz --field u_vox.nii.gz -o out.nii.gz --units furlongs
echo "all ok"
