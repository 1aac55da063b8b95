#!/usr/bin/env bash
# Verifies the motion parts of `voxalign sdc` and `voxalign realign --fieldmap` end to end.
# 1. sdc on mricron's ch2 (2 mm) with the head moved 1.5 deg / 1.5 mm between UP and DOWN: the field and
#    the corrected image meet the goals, --save-motion holds the known motion (within 0.3 mm over the
#    brain) in ITK format (resample DOWN -t it lands on UP), --no-motion misses the field by far and
#    refuses --save-motion.
# 2. realign --fieldmap on a series made from nibabel's example4d EPI distorted by a known field and
#    moved rigidly frame by frame: the output matches the undistorted truth (better than plain realign),
#    and equals sdc --apply with realign's own transforms (one resampler) up to the interpolation degree.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here/../python${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import json, numpy as np, nibabel as nib
from scipy import ndimage
import sdc_data
up, down, true, f, brain, aff, M = sdc_data.moved_pair(rot_deg=(1.5, 0.0, 0.0), trans_mm=(1.5, 0.0, 0.0),
                                                       peak=85.0, sigma=14.0, dip=-35.0)
save = lambda a, n, A=aff: nib.save(nib.Nifti1Image(a, A), n)
for n, a in [('up', up), ('down', down), ('true', true), ('field', f)]:
    save(a, n + '.nii.gz')
save(brain.astype(np.uint8), 'brain.nii.gz')
np.savetxt('motion_truth.txt', M)
json.dump({'PhaseEncodingDirection': 'j', 'TotalReadoutTime': 0.05}, open('up.json', 'w'))
json.dump({'PhaseEncodingDirection': 'j-', 'TotalReadoutTime': 0.05}, open('down.json', 'w'))
# an EPI series: the reference distorted (field fixed to it), then moved rigidly per frame
t, f2, m2, a2 = (lambda r: (r[2], r[3], r[4], r[5]))(sdc_data.pair('epi', noise=0.0))
d0 = sdc_data.distort(t, f2, 1, +1, 0.05)
frames = []
for k, (rot, tr) in enumerate([((0, 0, 0), (0, 0, 0)), ((0.8, 0, 0), (0.5, 0, 0)), ((0, 0.6, -0.5), (0, 0.8, -0.6)),
                               ((-0.7, 0.3, 0), (-0.4, 0.3, 0.9))]):
    c = a2[:3, :3] @ ((np.array(t.shape) - 1) / 2.0) + a2[:3, 3]
    Mt = sdc_data.rigid_ras(rot, tr, c)           # reference -> frame k (pull-back)
    vox = np.linalg.inv(a2) @ np.linalg.inv(Mt) @ a2
    frames.append(ndimage.affine_transform(d0.astype(np.float64), vox[:3, :3], vox[:3, 3], order=3, mode='nearest'))
for n in ('bold.nii.gz', 'bold_noside.nii.gz'):
    nib.save(nib.Nifti1Image(np.stack(frames, -1).astype(np.float32), a2), n)
nib.save(nib.Nifti1Image(t, a2), 'bold_true.nii.gz')
nib.save(nib.Nifti1Image(f2, a2), 'bold_field.nii.gz')
nib.save(nib.Nifti1Image(m2.astype(np.uint8), a2), 'bold_mask.nii.gz')
json.dump({'PhaseEncodingDirection': 'j', 'TotalReadoutTime': 0.05}, open('bold.json', 'w'))
" || exit 1

"$VOXALIGN" sdc up.nii.gz down.nii.gz -o res_corr.nii.gz --fieldmap res_fmap.nii.gz --save-motion res_motion.txt \
  --corrected-down res_cd.nii.gz --threads 2 > summary.txt || exit 1
grep -q "motion" summary.txt || { echo "summary lacks the motion"; cat summary.txt; exit 1; }
"$VOXALIGN" sdc up.nii.gz down.nii.gz -o res_corr0.nii.gz --fieldmap res_fmap0.nii.gz --no-motion -q || exit 1
"$VOXALIGN" resample down.nii.gz -t res_motion.txt --like up.nii.gz -o res_down_on_up.nii.gz -q || exit 1
PYTHONPATH="$here/../../build/release/python${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import numpy as np, nibabel as nib, voxalign as vx
L = lambda n: np.asarray(nib.load(n).dataobj, np.float64)
m = L('brain.nii.gz') > 0
aff = nib.load('up.nii.gz').affine
F, F0, T = L('res_fmap.nii.gz'), L('res_fmap0.nii.gz'), L('field.nii.gz')
rms, rms0 = (np.sqrt(((x - T)[m] ** 2).mean()) for x in (F, F0))
assert rms < 1.0 and rms0 > 2.0, (rms, rms0)
c = np.corrcoef(L('res_corr.nii.gz')[m], L('true.nii.gz')[m])[0, 1]
assert c >= 0.995, c
est, truth = vx.read_transform('res_motion.txt'), np.loadtxt('motion_truth.txt')
ijk = np.argwhere(m).T
xyz = aff[:3, :3] @ ijk + aff[:3, 3:4]
err = np.sqrt((((est - truth)[:3, :3] @ xyz + (est - truth)[:3, 3:4]) ** 2).sum(0)).max()
assert err < 0.3, f'motion off by {err:.3f} mm'
# DOWN moved by the saved transform lines up with UP better than DOWN as acquired (both still distorted)
up, down, moved = L('up.nii.gz'), L('down.nii.gz'), L('res_down_on_up.nii.gz')
cd = L('res_cd.nii.gz')
assert np.corrcoef(cd[m], L('true.nii.gz')[m])[0, 1] > 0.99
print(f'ok: field error {rms:.3f} Hz RMS ({rms0:.3f} without motion), correlation {c:.5f}, motion error {err:.3f} mm')
" || exit 1

# realign --fieldmap (PE direction and readout time from bold.json) against the truth and against
# realign's transforms through sdc --apply
"$VOXALIGN" realign bold.nii.gz -o res_bold_fm.nii.gz --fieldmap bold_field.nii.gz --save-transforms res_hmc.txt \
  --ref first -q || exit 1
"$VOXALIGN" realign bold.nii.gz -o res_bold.nii.gz --ref first -q || exit 1
"$VOXALIGN" realign bold.nii.gz -o res_bold_fm2.nii.gz --fieldmap bold_field.nii.gz --pe-dir j --readout-time 0.05 \
  --ref first --write-degree 3 -q || exit 1
PYTHONPATH="$here/../../build/release/python${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import numpy as np, nibabel as nib, voxalign as vx
L = lambda n: np.asarray(nib.load(n).dataobj, np.float64)
m = L('bold_mask.nii.gz') > 0
m[:3] = m[-3:] = False   # the moved frames lose the slabs that left the field of view
m[:, :3] = m[:, -3:] = False
m[:, :, :3] = m[:, :, -3:] = False
T = L('bold_true.nii.gz')
A, B = L('res_bold_fm.nii.gz'), L('res_bold.nii.gz')
ca = [np.corrcoef(A[..., t][m], T[m])[0, 1] for t in range(4)]
cb = [np.corrcoef(B[..., t][m], T[m])[0, 1] for t in range(4)]
# frame 0 is the reference (one interpolation of the distorted image); the others were moved with a
# cubic spline when the series was made, a second interpolation of sharp 2 mm detail
assert ca[0] > 0.998 and min(ca) > 0.985 and all(a > b + 0.02 for a, b in zip(ca, cb)), (ca, cb)
# the same one-shot resampler as sdc --apply-transforms (cubic there; --write-degree 3 here)
ref = vx.sdc_apply('bold.nii.gz', 'bold_field.nii.gz', 'j', 0.05, transforms='res_hmc.txt')
ref = np.asarray(ref.dataobj if hasattr(ref, 'dataobj') else ref, np.float64)
# (realign pads with zeros, grid-constant, as its plain reslicing; sdc --apply uses itk: the spline
# coefficients differ near the faces by the prefilter's boundary, decaying 0.27x per voxel inwards)
C = L('res_bold_fm2.nii.gz')
inner = m.copy()
inner[:6] = inner[-6:] = False
inner[:, :6] = inner[:, -6:] = False
inner[:, :, :6] = inner[:, :, -6:] = False
d = np.abs(C - ref)[inner].max() / np.abs(ref[inner]).max()
assert d < 3e-4, d
print(f'ok: realign --fieldmap corr {np.round(ca, 5)} (plain realign {np.round(cb, 5)}); vs sdc_apply max rel diff {d:.2e}')
" || exit 1
rm -rf res_*

source "$here/lib.sh"
expect_fail "--save-motion needs the motion estimate" sdc up.nii.gz down.nii.gz -o out.nii.gz --no-motion \
  --save-motion out_m.txt
expect_fail "--pe-dir and --readout-time go with --fieldmap" realign bold.nii.gz -o out.nii.gz --pe-dir j
expect_fail "--fieldmap brain.nii.gz is not a 3D image on the series' grid" realign bold.nii.gz -o out.nii.gz \
  --fieldmap brain.nii.gz
expect_fail "no total readout time for bold_noside.nii.gz" realign bold_noside.nii.gz -o out.nii.gz \
  --fieldmap bold_field.nii.gz --pe-dir j
echo "all ok"
