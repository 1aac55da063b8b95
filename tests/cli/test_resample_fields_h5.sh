#!/usr/bin/env bash
# Verifies: `voxalign resample -t` takes an ITK/ANTs displacement field (.nii.gz vector image written by
# SimpleITK) and an ITK .h5 composite, giving SimpleITK's answer (linear, mode itk); `register
# --save-transform x.h5` writes a file SimpleITK reads; malformed .h5 and non-vector fields fail with
# one line naming the file and leave no output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
python3 - <<'PY'
import numpy as np, nibabel as nib, SimpleITK as sitk
from scipy.ndimage import gaussian_filter
rng = np.random.default_rng(1)
d = gaussian_filter(rng.normal(size=(40, 44, 36)), 3).astype(np.float32) * 100
aff = np.array([[-1.2, 0, 0, 24.0], [0, 1.1, 0, -24.0], [0, 0, 1.3, -23.0], [0, 0, 0, 1]])
nib.Nifti1Image(d, aff).to_filename("in.nii.gz")
u = np.stack([gaussian_filter(rng.normal(size=(24, 26, 22)), 3) for _ in range(3)], -1)
u *= 3.0 / np.abs(u).max()
f = sitk.GetImageFromArray(np.ascontiguousarray(u.transpose(2, 1, 0, 3)), isVector=True)
f.SetOrigin([-26.0, -26.0, -25.0]); f.SetSpacing([2.2, 2.1, 2.3])
sitk.WriteImage(f, "warp.nii.gz")
a = sitk.AffineTransform(3); a.SetMatrix([1, 0.05, 0, -0.04, 1, 0.02, 0, 0, 0.98]); a.SetTranslation([1.5, -2, 0.5])
sitk.WriteTransform(sitk.CompositeTransform([a, sitk.DisplacementFieldTransform(sitk.Cast(f, sitk.sitkVectorFloat64))]), "comp.h5")
img = sitk.ReadImage("in.nii.gz", sitk.sitkFloat32)
for name, t in (("warp", sitk.DisplacementFieldTransform(sitk.Cast(f, sitk.sitkVectorFloat64))), ("comp", sitk.ReadTransform("comp.h5"))):
    sitk.WriteImage(sitk.Resample(img, img, t, sitk.sitkLinear, 0.0, sitk.sitkFloat32), f"ref_{name}.nii.gz")
open("bad.h5", "wb").write(b"not an hdf5 file\n" * 10)
nib.Nifti1Image(d, aff).to_filename("scalar.nii.gz")
PY
"$VOXALIGN" resample in.nii.gz -o warped.nii.gz -t warp.nii.gz --degree 1 --quiet
"$VOXALIGN" resample in.nii.gz -o comp.nii.gz -t comp.h5 --degree 1 --quiet
python3 - <<'PY'
import nibabel as nib, numpy as np
for name, ref in (("warped", "ref_warp"), ("comp", "ref_comp")):
    a, b = (np.asarray(nib.load(f + ".nii.gz").dataobj, dtype=np.float64) for f in (name, ref))
    err = np.abs(a - b).max() / np.ptp(b)
    moved = np.abs(a - np.asarray(nib.load("in.nii.gz").dataobj)).max() / np.ptp(b)
    print(f"{name}: {err:.1e} of the range from SimpleITK; moved {moved:.2f}")
    assert err < 1e-5 and moved > 0.05
PY
"$VOXALIGN" register in.nii.gz --fixed in.nii.gz --save-transform self.h5 --levels 2,1 --quiet
python3 -c "
import SimpleITK as sitk, numpy as np
t = sitk.ReadTransform('self.h5'); print(t.GetName())
assert np.abs(np.array(t.TransformPoint((3.0, -4.0, 5.0))) - (3, -4, 5)).max() < 0.5"
set +e # expect_fail runs commands that fail
expect_fail "bad.h5: not an HDF5 file" resample in.nii.gz -o out.nii.gz -t bad.h5
expect_fail "scalar.nii.gz: not a vector image" resample in.nii.gz -o out.nii.gz -t scalar.nii.gz
expect_fail "holds a displacement field" register in.nii.gz --fixed in.nii.gz --init comp.h5 -o out.nii.gz
