#!/usr/bin/env bash
# Verifies: bad input (missing file, not NIfTI, truncated data, bad transform, bad option,
# unwritable output) gives a non-zero exit, a single-line error naming the file, and no output file.
set -uo pipefail
python3 -c "
import numpy as np, nibabel as nib, gzip
nib.Nifti1Image(np.ones((10, 10, 10), np.float32), np.eye(4)).to_filename('good.nii')
raw = open('good.nii', 'rb').read()
open('trunc.nii', 'wb').write(raw[:len(raw) - 100])
open('text.nii', 'w').write('hello' * 100)
open('bad_tfm.txt', 'w').write('1 2 3')
"
source "$(dirname "$0")/lib.sh"
expect_fail "missing.nii.gz: no such file" resample missing.nii.gz -o out.nii.gz
expect_fail "text.nii: not a valid NIfTI" resample text.nii -o out.nii.gz
expect_fail "trunc.nii: truncated" resample trunc.nii -o out.nii.gz
expect_fail "bad_tfm.txt" resample good.nii -o out.nii.gz -t bad_tfm.txt
expect_fail "no_tfm.txt: no such file" resample good.nii -o out.nii.gz -t no_tfm.txt
expect_fail "unknown boundary mode" resample good.nii -o out.nii.gz --mode sideways
expect_fail "unknown interpolation" resample good.nii -o out.nii.gz --degree 9
expect_fail "unknown data type" resample good.nii -o out.nii.gz --dtype float16
expect_fail "does not exist" resample good.nii -o nodir/out.nii.gz
expect_fail "must end in .nii" resample good.nii -o out.png
expect_fail "input" resample
