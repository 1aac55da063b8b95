#!/usr/bin/env bash
# Verifies `voxalign sdc` end to end on nibabel's example4d EPI distorted by a known field: the field
# (Hz, topup's sign) and the corrected image are close to the truth; PE direction and readout time
# from BIDS sidecars and from topup's --datain give the same result bit for bit; the displacement
# field, applied by `voxalign resample -t`, moves UP as the correction does (up to the Jacobian);
# --apply corrects a 4D series frame by frame as UP itself, also with realign's transforms in the same
# interpolation (--apply-transforms); --report writes its overlays and field;
# 1 and 2 threads agree bit for bit; bad input gives a one-line error, a non-zero exit and no output
# file (nor report directory).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here/../python${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import json, numpy as np, nibabel as nib, sdc_data
up, down, true, f, mask, aff = sdc_data.pair('epi')
save = lambda a, n, A=aff: nib.save(nib.Nifti1Image(a, A), n)
for n, a in [('up', up), ('down', down), ('true', true), ('field', f)]:
    save(a, n + '.nii.gz'); save(a, n + '_noside.nii.gz')
save(mask.astype(np.uint8), 'mask.nii.gz')
save(np.stack([up, up], -1), 'series.nii.gz')
save(down[:, :-1], 'down_small.nii.gz')
json.dump({'PhaseEncodingDirection': 'j', 'TotalReadoutTime': 0.05}, open('up.json', 'w'))
json.dump({'PhaseEncodingDirection': 'j-', 'TotalReadoutTime': 0.05}, open('down.json', 'w'))
json.dump({'PhaseEncodingDirection': 'j', 'TotalReadoutTime': 0.05}, open('series.json', 'w'))
open('datain.txt', 'w').write('0 1 0 0.05\n0 -1 0 0.05\n')
open('datain_bad.txt', 'w').write('0 1 0 0.05\n0 -1 1 0.05\n')
" || exit 1

"$VOXALIGN" sdc up.nii.gz down.nii.gz -o res_corr.nii.gz --fieldmap res_fmap.nii.gz --displacement res_u.nii.gz \
  --corrected-up res_cu.nii.gz --apply series.nii.gz -O res_series.nii.gz --report res_report --threads 2 \
  > summary.txt || exit 1
for f in index.html overlay_before.png overlay_after.png fieldmap.png; do
  [ -s "res_report/$f" ] || { echo "report lacks $f"; exit 1; }
done
[ "$(grep -o 'data:image/png;base64' res_report/index.html | wc -l)" -eq 3 ] || { echo "report lacks its images"; exit 1; }
grep -q "j, 0.05 s" summary.txt || { echo "summary lacks the sidecar's values"; cat summary.txt; exit 1; }
"$VOXALIGN" sdc up_noside.nii.gz down_noside.nii.gz --datain datain.txt -o res_corr2.nii.gz \
  --fieldmap res_fmap2.nii.gz --threads 1 -q || exit 1
"$VOXALIGN" resample up.nii.gz -t res_u.nii.gz -o res_up_moved.nii.gz -q || exit 1
python3 -c "
import numpy as np, nibabel as nib
L = lambda n: np.asarray(nib.load(n).dataobj, np.float64)
m = L('mask.nii.gz') > 0
F, T = L('res_fmap.nii.gz'), L('field.nii.gz')
rms = np.sqrt(((F - T)[m] ** 2).mean())
assert rms < 2.0, f'field error {rms:.3f} Hz RMS'
c = np.corrcoef(L('res_corr.nii.gz')[m], L('true.nii.gz')[m])[0, 1]
c0 = np.corrcoef(0.5 * (L('up.nii.gz') + L('down.nii.gz'))[m], L('true.nii.gz')[m])[0, 1]
assert c > 0.995 and c > c0, (c, c0)
# sidecars and --datain (with 1 thread instead of 2): the same field, bit for bit
assert np.array_equal(F, L('res_fmap2.nii.gz')) and np.array_equal(L('res_corr.nii.gz'), L('res_corr2.nii.gz'))
# the displacement field: ITK layout, and resample -t gives UP corrected up to the Jacobian 1 + T dF/dj
u = nib.load('res_u.nii.gz')
assert u.shape == F.shape + (1, 3) and int(u.header['intent_code']) == 1007
J = 1 + 0.05 * np.gradient(F, axis=1)
moved, cu = L('res_up_moved.nii.gz'), L('res_cu.nii.gz')
inner = m.copy(); inner[:, :4] = inner[:, -4:] = False
err = np.abs(moved * J - cu)[inner].mean() / np.abs(cu[inner]).mean()
assert err < 0.01, f'resample -t vs the correction: mean relative difference {err:.4f}'
# --apply: each frame of the series (two copies of UP) is UP corrected
S = L('res_series.nii.gz')
assert S.shape == F.shape + (2,) and np.array_equal(S[..., 0], cu) and np.array_equal(S[..., 1], cu)
print(f'ok: field error {rms:.3f} Hz RMS, correlation {c:.5f} (uncorrected {c0:.5f}), resample vs correction {err:.4f}')
" || exit 1
rm -rf res_*.nii.gz res_report

# One-shot: realign's transforms of the series (two copies of UP: identities) with the field.
"$VOXALIGN" realign series.nii.gz --estimate-only --rp res_rp.txt --save-transforms res_hmc.txt -q || exit 1
"$VOXALIGN" sdc up.nii.gz down.nii.gz -o res_corr.nii.gz --corrected-up res_cu.nii.gz --apply series.nii.gz \
  --apply-transforms res_hmc.txt -O res_series.nii.gz -q || exit 1
python3 -c "
import numpy as np, nibabel as nib
L = lambda n: np.asarray(nib.load(n).dataobj, np.float64)
S, cu, m = L('res_series.nii.gz'), L('res_cu.nii.gz'), L('mask.nii.gz') > 0
for t in range(2):
    err = np.abs(S[..., t] - cu)[m].mean() / np.abs(cu[m]).mean()
    assert err < 2e-3, (t, err)
print('one-shot ok')
" || exit 1
head -n 5 res_hmc.txt > one_transform.txt
rm -rf res_*

source "$here/lib.sh"
expect_fail "not on UP's grid" sdc up.nii.gz down_small.nii.gz -o out.nii.gz
expect_fail "both images have phase-encoding direction j" sdc up_noside.nii.gz down_noside.nii.gz -o out.nii.gz \
  --pe-dir j --pe-dir-down j --readout-time 0.05
expect_fail "no total readout time for UP" sdc up_noside.nii.gz down_noside.nii.gz -o out.nii.gz --pe-dir j
expect_fail "no phase-encoding direction for UP" sdc up_noside.nii.gz down_noside.nii.gz -o out.nii.gz --readout-time 0.05
expect_fail "unknown phase-encoding direction 'q'" sdc up.nii.gz down.nii.gz -o out.nii.gz --pe-dir q
expect_fail "--readout-time" sdc up.nii.gz down.nii.gz -o out.nii.gz --readout-time 0
expect_fail "datain_bad.txt: line 2" sdc up.nii.gz down.nii.gz -o out.nii.gz --datain datain_bad.txt
expect_fail "--mask" sdc up.nii.gz down.nii.gz -o out.nii.gz --mask down_small.nii.gz --fieldmap out_f.nii.gz
expect_fail "one value per level" sdc up.nii.gz down.nii.gz -o out.nii.gz --warpres 20,10
expect_fail "--apply and -O" sdc up.nii.gz down.nii.gz -o out.nii.gz --apply series.nii.gz
expect_fail "has 1 transforms for the 2 frames" sdc up.nii.gz down.nii.gz -o out.nii.gz --apply series.nii.gz \
  -O out_s.nii.gz --apply-transforms one_transform.txt
expect_fail "missing.nii.gz: no such file" sdc missing.nii.gz down.nii.gz -o out.nii.gz
expect_fail "not on UP's grid" sdc up.nii.gz down_small.nii.gz -o out.nii.gz --report out_report
echo "all ok"
