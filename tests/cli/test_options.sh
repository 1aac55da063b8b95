#!/usr/bin/env bash
# Verifies: option names as one source: enum values in any case (--metric MI, --mode Grid-Constant),
# a bad enum value refused with exit status 2 and one line naming the option and the choices, a
# misspelt command or long option answered with the nearest name, and help-json (every command's
# defaults) valid JSON holding the documented defaults.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
python3 -c "
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
g = np.meshgrid(*[np.linspace(-1, 1, n) for n in (24, 22, 20)], indexing='ij')
img = (100.0 * np.exp(-4 * sum(x ** 2 for x in g)) + rng.normal(0, 1, g[0].shape)).astype(np.float32)
A = np.diag([2.0, 2.0, 2.0, 1.0])
nib.save(nib.Nifti1Image(img, A), 'in.nii.gz')
nib.save(nib.Nifti1Image(np.roll(img, 1, 0), A), 'moving.nii.gz')
" || exit 1

# Any case; the same output as the canonical spelling, bit for bit.
"$VOXALIGN" resample in.nii.gz -o a.nii.gz --mode grid-constant --degree keys --dtype float32 -q || exit 1
"$VOXALIGN" resample in.nii.gz -o b.nii.gz --mode Grid-Constant --degree KEYS --dtype FLOAT32 -q || exit 1
cmp a.nii.gz b.nii.gz || { echo "any-case names gave another output"; exit 1; }
"$VOXALIGN" register moving.nii.gz --fixed in.nii.gz --save-matrix m1.txt --metric NCC --transform Rigid --levels 2,1 -q || exit 1
"$VOXALIGN" register moving.nii.gz --fixed in.nii.gz --save-matrix m2.txt --metric ncc --transform rigid --levels 2,1 -q || exit 1
cmp m1.txt m2.txt || { echo "--metric NCC and --metric ncc differ"; exit 1; }
rm -f a.nii.gz b.nii.gz m1.txt m2.txt

# expect_usage TEXT ARGS...: as expect_fail, with exit status 2 (a bad command line).
expect_usage() {
  expect_fail "$@"
  "$VOXALIGN" "${@:2}" >/dev/null 2>&1
  [ $? -eq 2 ] || { echo "exit status not 2: ${*:2}"; exit 1; }
}
expect_usage "--mode: unknown boundary mode 'sideways' (choose from itk, grid-constant, constant, nearest, mirror, reflect, wrap, grid-wrap)" \
  resample in.nii.gz -o out.nii.gz --mode sideways
expect_usage "--metric: unknown metric 'mse' (choose from ssd, ncc, lncc, mi)" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --metric mse
expect_usage "--units: unknown field unit 'cm'" warp in.nii.gz --field in.nii.gz -o out.nii.gz --units cm
expect_usage "--dtype: unknown data type 'float16'" n4 in.nii.gz -o out.nii.gz --dtype float16
expect_usage "--write-degree: unknown interpolation '9'" register moving.nii.gz --fixed in.nii.gz -o out.nii.gz --write-degree 9
expect_usage "--ref: 'middle' is not first, mean or a frame number" realign in.nii.gz -o out.nii.gz --ref middle
expect_usage "unknown command 'regster'; did you mean 'register'?" regster moving.nii.gz --fixed in.nii.gz
expect_usage "unknown command 'smooth' (choose from resample, n4, warp, register, realign, sdc, superres)" smooth in.nii.gz
expect_usage "unknown option '--metrc'; did you mean '--metric'?" register moving.nii.gz --fixed in.nii.gz --metrc mi

# help-json: valid JSON with the options structs' defaults.
"$VOXALIGN" help-json > defaults.json || exit 1
python3 -m json.tool defaults.json >/dev/null || { echo "help-json is not JSON"; exit 1; }
python3 - <<'PY' || exit 1
import json
d = json.load(open("defaults.json"))
want = {("resample", "mode"): "itk", ("resample", "degree"): 3, ("resample", "cval"): 0, ("n4", "shrink"): 4,
        ("n4", "iterations"): "50x50x50x50", ("n4", "fwhm"): 0.15, ("warp", "units"): "voxel",
        ("register", "transform"): "rigid", ("register", "metric"): "ssd", ("register", "levels"): "4,2,1",
        ("register", "samples"): 65536, ("register", "keep-fill"): False, ("realign", "ref"): "mean",
        ("realign", "write-degree"): 4, ("realign", "sep"): 4, ("realign", "dtype"): "float32"}
bad = [f"{c} --{o}: {d.get(c, {}).get(o)!r} != {v!r}" for (c, o), v in want.items() if d.get(c, {}).get(o) != v]
assert not bad, bad
assert set(d) == {"resample", "n4", "warp", "register", "realign", "sdc", "superres"}, sorted(d)
print("help-json ok:", ", ".join(f"{c} ({len(o)} options)" for c, o in d.items()))
PY
