#!/usr/bin/env python3
"""Side-by-side benchmark: resampling through a displacement field (+ an affine) with voxalign,
SimpleITK and ANTsPy, on the same real T1 (mricron's ch2, 181 x 217 x 181) and the same files.

The chain is the one antsRegistration produces: -t warp.nii.gz -t affine.mat (field first, then the
affine, applied to the fixed point). voxalign and ANTsPy read the two files on every call (as
`voxalign resample -t` and antsApplyTransforms do); SimpleITK gets the transforms built once in memory
(its usual use), so its figure leaves out reading the field. Each timing is the best of --repeat
runs; every tool uses the same number of threads. Prints a markdown table for bench/RESULTS.md.

    python3 bench/bench_fields.py [--repeat 5] [--threads N]
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--t1", default="/usr/share/mricron/templates/ch2.nii.gz")
    args = ap.parse_args()
    # Every tool's thread count, set before the libraries start their pools.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import ants
    import SimpleITK as sitk

    import voxalign as vx
    vx.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)

    img = nib.load(args.t1)
    data = np.asarray(img.dataobj, dtype=np.float32)
    aff = img.affine
    tmp = Path(tempfile.mkdtemp())
    t1 = tmp / "t1.nii"
    nib.Nifti1Image(data, aff).to_filename(str(t1))

    # A smooth field (up to 5 mm) on the image's own grid, LPS, written as ITK/ANTs write fields.
    rng = np.random.default_rng(0)
    u = np.stack([gaussian_filter(rng.normal(size=data.shape), 8) for _ in range(3)], -1)
    u = (u * (5.0 / np.abs(u).max())).astype(np.float32)  # float32 vectors, as antsRegistration writes
    ref = sitk.ReadImage(str(t1), sitk.sitkFloat32)
    field = sitk.GetImageFromArray(np.ascontiguousarray(u.transpose(2, 1, 0, 3)), isVector=True)  # on the T1 grid
    field.CopyInformation(ref)
    warp = tmp / "warp.nii.gz"
    sitk.WriteImage(field, str(warp))
    a = sitk.AffineTransform(3)
    a.SetMatrix([1.02, 0.03, 0.0, -0.02, 0.99, 0.04, 0.01, -0.03, 1.01])
    a.SetTranslation([2.0, -3.0, 1.5])
    mat = tmp / "affine.mat"
    sitk.WriteTransform(a, str(mat))
    files = [str(warp), str(mat)]

    comp = sitk.CompositeTransform([a, sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))])
    ants_img = ants.image_read(str(t1))
    rows = []
    for degree, sitk_interp, ants_interp in ((1, sitk.sitkLinear, "linear"), (3, sitk.sitkBSpline, "bSpline")):
        t_vx, o_vx = best(lambda: vx.resample(data, aff, data.shape, aff, transform=files, degree=degree), args.repeat)
        t_sitk, o_sitk = best(lambda: sitk.Resample(ref, ref, comp, sitk_interp, 0.0, sitk.sitkFloat32), args.repeat)
        t_ants, o_ants = best(lambda: ants.apply_transforms(ants_img, ants_img, transformlist=files,
                                                            interpolator=ants_interp), args.repeat)
        rng_ = np.ptp(data)
        d_sitk = np.abs(o_vx - sitk.GetArrayFromImage(o_sitk).transpose(2, 1, 0)).max() / rng_
        d_ants = np.abs(o_vx - o_ants.numpy()).max() / rng_
        rows.append((degree, t_vx, t_sitk, t_ants, d_sitk, d_ants))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"SimpleITK {sitk.Version.VersionString()}, ANTsPy {ants.__version__}; input {data.shape} float32")
    print()
    print("| interpolation | voxalign (s) | SimpleITK (s) | ANTsPy (s) | SimpleITK / voxalign | ANTsPy / voxalign "
          "| max diff vs SimpleITK | vs ANTsPy |")
    print("|---|---|---|---|---|---|---|---|")
    for degree, tv, ts, ta, ds, da in rows:
        name = "linear" if degree == 1 else "cubic B-spline"
        print(f"| {name} | {tv:.3f} | {ts:.3f} | {ta:.3f} | {ts / tv:.2f} | {ta / tv:.2f} | {ds:.1e} | {da:.1e} |")


if __name__ == "__main__":
    main()
