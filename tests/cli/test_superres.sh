#!/usr/bin/env bash
# Verifies `voxalign superres` end to end on three small synthetic moved stacks (tests/python/
# superres_data.py): it writes the reconstruction on the first stack's field of view at --resolution
# and one ITK transform file per stack that `voxalign resample` reads, and the reconstruction is closer
# to the truth than the naive average of the stacks; --save-residuals writes each stack's residual on
# the stack's grid (shape, affine, float32), near the noise's size inside the phantom; bad input (a 4D
# stack, a stack that does not overlap the first, --resolution 0, a resolution whose memory estimate
# is absurd, a --save-transforms/--save-residuals path that is a file) gives a one-line error, a
# non-zero exit and no output file.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here/../python${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "
import numpy as np, nibabel as nib, superres_data as sd
arrays, affines, _ = sd.stacks(noise=2.0, seed=0)
for k, (a, A) in enumerate(zip(arrays, affines)):
    nib.save(nib.Nifti1Image(a, A), f'stack{k}.nii.gz')
nib.save(nib.Nifti1Image(np.stack([arrays[0]] * 2, -1), affines[0]), 'four_d.nii.gz')
far = affines[1].copy(); far[:3, 3] += 500
nib.save(nib.Nifti1Image(arrays[1], far), 'far.nii.gz')
" || exit 1

"$VOXALIGN" superres stack0.nii.gz stack1.nii.gz stack2.nii.gz -o res_hr.nii.gz --resolution 1 \
  --save-transforms res_tfm --save-residuals res_resid > summary.txt || exit 1
cat summary.txt
grep -q "superres 3 stacks -> res_hr.nii.gz: 40x40x42 at 1 mm" summary.txt || { echo "bad summary"; exit 1; }
for k in 01 02 03; do [ -f res_tfm/stack$k.tfm ] || { echo "no stack$k.tfm"; exit 1; }; done
grep -q "residuals: res_resid/stack01_residual.nii.gz" summary.txt || { echo "no residuals line"; exit 1; }
"$VOXALIGN" resample stack1.nii.gz --like res_hr.nii.gz -t res_tfm/stack02.tfm -o res_s1.nii.gz -q || exit 1
python3 -c "
import numpy as np, nibabel as nib, superres_data as sd
hr = nib.load('res_hr.nii.gz')
x = np.asarray(hr.dataobj, np.float64)
truth = sd.truth_on(hr.affine, x.shape)
arrays = [np.asarray(nib.load(f'stack{k}.nii.gz').dataobj) for k in range(3)]
affines = [nib.load(f'stack{k}.nii.gz').affine for k in range(3)]
naive = sd.naive_average(arrays, affines, hr.affine, x.shape)
reg = truth > 20
p, pn = sd.psnr_fit(x, truth, reg), sd.psnr_fit(naive, truth, reg)
print(f'psnr {p:.2f} naive {pn:.2f}')
assert p > pn + 3, (p, pn)
# the moved stack resampled with its transform agrees with the reconstruction
s1 = np.asarray(nib.load('res_s1.nii.gz').dataobj, np.float64)
c = np.corrcoef(s1[reg], x[reg])[0, 1]
print(f'corr {c:.4f}')
assert c > 0.97, c
# residuals: on each stack's grid; inside the phantom about the noise (SD 2) plus model mismatch
for k in range(3):
    e = nib.load(f'res_resid/stack{k + 1:02d}_residual.nii.gz')
    assert e.shape == arrays[k].shape and np.allclose(e.affine, affines[k], atol=1e-5), (k, e.shape, e.affine)
    assert e.get_data_dtype() == np.float32, e.get_data_dtype()
    v = np.asarray(e.dataobj)[arrays[k] > 20]
    rms = float(np.sqrt(np.mean(v ** 2)))
    print(f'residual {k + 1} rms {rms:.3f}')
    assert 1.0 < rms < 4.0, (k, rms)
" || exit 1
rm -rf res_*

source "$here/lib.sh"
expect_fail "is 4D" superres stack0.nii.gz four_d.nii.gz -o out.nii.gz
expect_fail "does not overlap the first stack" superres stack0.nii.gz far.nii.gz -o out.nii.gz
expect_fail "--resolution" superres stack0.nii.gz stack1.nii.gz -o out.nii.gz --resolution 0
expect_fail "choose a coarser resolution" superres stack0.nii.gz stack1.nii.gz -o out.nii.gz --resolution 0.002
expect_fail "--slice-groups needs --slice-motion" superres stack0.nii.gz stack1.nii.gz -o out.nii.gz --slice-groups 2
touch tfm_file
expect_fail "exists and is not a directory" superres stack0.nii.gz stack1.nii.gz -o out.nii.gz --save-transforms tfm_file
expect_fail "--save-residuals tfm_file: exists and is not a directory" superres stack0.nii.gz stack1.nii.gz -o out.nii.gz --save-residuals tfm_file
rm -f tfm_file
expect_fail "--save-residuals nodir/res: its parent directory does not exist" superres stack0.nii.gz stack1.nii.gz -o out.nii.gz --save-residuals nodir/res
# a failure after the options are read leaves no residual directory either
expect_fail "does not overlap the first stack" superres stack0.nii.gz far.nii.gz -o out.nii.gz --save-residuals out_res
expect_fail "missing.nii.gz: no such file" superres stack0.nii.gz missing.nii.gz -o out.nii.gz
echo "all ok"
