#!/usr/bin/env python3
"""Field-of-view edges: voxalign's resampling against SimpleITK (ITK's ResampleImageFilter, as
antsApplyTransforms uses it) on a real T1 pair, per boundary mode.

The input is Debian mricron-data's ch2.nii.gz (181 x 217 x 181, 1 mm, 0..254). Three cases:
rigid 10 degrees / 10 mm onto ch2's own grid (cubic and linear), and the same transform onto
ch2better's grid (0.5 mm, --like). SimpleITK gets the same arrays and geometry (converted to LPS
here, not read from the file, so that header rules play no part) and default value 0. Prints, per
case and mode, the voxels differing by more than 1 and the largest difference.

    python3 bench/edges_vs_sitk.py [--modes itk,grid-constant,mirror] [--skip-like]
"""
import argparse
import time

import numpy as np
import SimpleITK as sitk

import voxalign as va

T1 = "/usr/share/mricron/templates/ch2.nii.gz"
LIKE = "/usr/share/mricron/templates/ch2better.nii.gz"
F = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS


def to_sitk(arr, affine):
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(arr).transpose(2, 1, 0)))
    L = F @ affine
    sp = np.linalg.norm(L[:3, :3], axis=0)
    img.SetSpacing(sp.tolist())
    img.SetOrigin(L[:3, 3].tolist())
    img.SetDirection((L[:3, :3] / sp).ravel().tolist())
    return img


def sitk_resample(arr, affine, shape, target_affine, T, interp):
    L = F @ T @ F
    t = sitk.AffineTransform(3)
    t.SetMatrix(L[:3, :3].ravel().tolist())
    t.SetTranslation(L[:3, 3].tolist())
    ref = to_sitk(np.zeros(shape, np.uint8), target_affine)
    out = sitk.Resample(to_sitk(arr, affine), ref, t, interp, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def rigid(affine, shape, deg=10.0, mm=(10.0, 0.0, 0.0)):
    """Rotation by `deg` about an oblique axis through the centre of the grid, then `mm`."""
    ax = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    a = np.deg2rad(deg)
    K = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    R = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
    c = affine[:3, :3] @ ((np.array(shape) - 1) / 2) + affine[:3, 3]
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = c - R @ c + np.array(mm)
    return T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="itk,grid-constant,mirror,constant")
    ap.add_argument("--skip-like", action="store_true")
    args = ap.parse_args()
    data, aff, _ = va.read_nifti(T1, dtype=np.float32)
    T = rigid(aff, data.shape)
    cases = [("ch2 -> ch2 grid, cubic", data.shape, aff, 3, sitk.sitkBSpline),
             ("ch2 -> ch2 grid, linear", data.shape, aff, 1, sitk.sitkLinear)]
    if not args.skip_like:
        _, laff, _ = va.read_nifti(LIKE, dtype=np.float32)
        import nibabel as nib
        lshape = nib.load(LIKE).shape[:3]
        cases.append(("ch2 -> ch2better grid (0.5 mm, --like), cubic", lshape, laff, 3, sitk.sitkBSpline))
    print(f"SimpleITK {sitk.Version.VersionString()}, voxalign {va.__version__}; transform: 10 deg about (1,2,3), "
          "10 mm along x; default value 0")
    print("\n| case | mode | voxels > 1 | max abs diff | voxalign s | SimpleITK s |\n|---|---|---|---|---|---|")
    for name, shape, taff, deg, interp in cases:
        t0 = time.perf_counter()
        ref = sitk_resample(data, aff, shape, taff, T, interp)
        ts = time.perf_counter() - t0
        for mode in args.modes.split(","):
            t0 = time.perf_counter()
            ours = va.resample(data, aff, shape, taff, transform=T, degree=deg, mode=mode)
            tv = time.perf_counter() - t0
            d = np.abs(ours.astype(np.float64) - ref)
            print(f"| {name} | {mode} | {int((d > 1).sum())} | {d.max():.3g} | {tv:.2f} | {ts:.2f} |")


if __name__ == "__main__":
    main()
