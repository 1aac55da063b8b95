#!/usr/bin/env python3
"""Side-by-side benchmark: voxalign vs scipy.ndimage (interpolation) and nibabel (NIfTI I/O).

Same input, same machine, one run; each timing is the best of --repeat runs (the machines are
shared and noisy). Prints a markdown table of throughputs and ratios for bench/RESULTS.md.

    python3 bench/bench_resample.py [--size 256] [--repeat 3] [--threads N] [--skip-io]
                                    [--layout-modes constant,mirror,...] [--skip-layouts]

The layout table resamples the same volume held in Fortran order (as nibabel returns it), C order
(what most numpy code makes) and as a strided view (every other sample of a volume twice as long on
axis 0), in each mode, against scipy.ndimage.affine_transform on the same array (one scipy run
per case; voxalign: first call and best of --repeat). voxalign's 'itk' is timed against scipy's
'constant'.
"""
import argparse
import os
import platform
import tempfile
import time

import nibabel as nib
import numpy as np
import scipy
import scipy.ndimage as ndi

import voxalign as va


FIRST = {}  # time of the first call of each voxalign task (cold buffers: no recycled memory yet)


def best(fn, repeat, first=None):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    if first:
        FIRST[first] = times[0]
    return min(times)


def smooth_volume(n, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.normal(size=(n // 8,) * 3).astype(np.float32)
    vol = ndi.zoom(small, 8, order=1)[:n, :n, :n]
    return np.asfortranarray(vol + 0.1 * rng.normal(size=vol.shape).astype(np.float32))


def layouts(vol, M, args):
    """Cubic affine resampling of one volume in three memory layouts, every mode."""
    n = vol.shape[0]
    twice = np.asfortranarray(np.repeat(vol, 2, axis=0))
    cases = [("F order", vol), ("C order", np.ascontiguousarray(vol)), ("strided view a[::2]", twice[::2])]
    eye = np.eye(4)
    print(f"\ncubic affine resample by memory layout, {n}^3 float32; scipy affine_transform once per case, "
          f"voxalign first call and best of {args.repeat}")
    print("\n| layout | mode | scipy s | voxalign first s | voxalign best s | speed-up (best) | speed-up (first) |")
    print("|---|---|---|---|---|---|---|")
    for name, a in cases:
        for mode in args.layout_modes.split(","):
            if mode not in va.MODES:
                continue
            t = time.perf_counter()
            ndi.affine_transform(a, M, order=3, mode="constant" if mode == "itk" else mode)
            t_sp = time.perf_counter() - t
            key = f"{name} {mode}"
            va.release_memory()
            t_va = best(lambda: va.resample(a, eye, a.shape, eye, transform=M, degree=3, mode=mode), args.repeat, key)
            first = FIRST.pop(key)
            print(f"| {name} | {mode} | {t_sp:.3f} | {first:.3f} | {t_va:.3f} | {t_sp / t_va:.1f}x | {t_sp / first:.1f}x |",
                  flush=True)
    del twice


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-io", action="store_true")
    ap.add_argument("--skip-layouts", action="store_true")
    ap.add_argument("--layout-modes", default="constant,grid-constant,nearest,mirror,reflect,wrap,grid-wrap,itk")
    args = ap.parse_args()
    if args.threads:
        va.set_num_threads(args.threads)
    n = args.size
    vol = smooth_volume(n)
    nvox = vol.size / 1e6
    c, s = np.cos(0.2), np.sin(0.2)
    M = np.array([[c, -s, 0.02, 10.0], [s, c, -0.03, -7.5], [0.01, 0.04, 1.05, 3.2], [0, 0, 0, 1]])
    rows = []

    # 1. Prefilter alone (cubic), float32 output on both sides.
    t_sp = best(lambda: ndi.spline_filter(vol, 3, output=np.float32, mode="mirror"), args.repeat)
    t_va = best(lambda: va.spline_coefficients(vol, 3, "mirror"), args.repeat)
    ref = ndi.spline_filter(vol.astype(np.float64), 3, mode="mirror")
    err = np.abs(va.spline_coefficients(vol, 3, "mirror").array - ref).max()
    rows.append(("cubic prefilter (spline_filter)", t_sp, t_va, err))

    # 2. Cubic resampling through an affine map, prefilter included (scipy: affine_transform).
    t_sp = best(lambda: ndi.affine_transform(vol, M, order=3, mode="constant"), args.repeat)
    eye = np.eye(4)
    va.release_memory()
    t_va = best(lambda: va.resample(vol, eye, vol.shape, eye, transform=M, degree=3, mode="constant"), args.repeat,
                "affine")
    a = ndi.affine_transform(vol.astype(np.float64), M, order=3, mode="constant")
    b = va.resample(vol, eye, vol.shape, eye, transform=M, degree=3, mode="constant")
    grid = np.indices(vol.shape, dtype=np.float64).reshape(3, -1)
    x = M[:3, :3] @ grid + M[:3, 3:4]
    edge = np.any((np.abs(x) < 1e-6) | (np.abs(x - (n - 1)) < 1e-6), axis=0).reshape(vol.shape)
    rows.append(("cubic affine resample (affine_transform)", t_sp, t_va, np.abs(a - b)[~edge].max()))
    # The resampling defaults, same transform: 'grid-constant' (until issue 21) and 'itk' (since),
    # against the same scipy run; compared with scipy where every coordinate is inside [0, n-1].
    inside = np.all((x > 1e-6) & (x < n - 1 - 1e-6), axis=0).reshape(vol.shape)
    for mode in ("grid-constant", "itk"):
        if mode not in va.MODES:
            continue
        va.release_memory()
        t_m = best(lambda: va.resample(vol, eye, vol.shape, eye, transform=M, degree=3, mode=mode), args.repeat)
        bm = va.resample(vol, eye, vol.shape, eye, transform=M, degree=3, mode=mode)
        rows.append((f"cubic affine resample, voxalign mode {mode} (vs affine_transform constant)", t_sp, t_m,
                     np.abs(a - bm)[inside].max()))
    del grid, x, edge, a, b, inside

    # 3. Cubic resampling through a smooth dense displacement field (voxels), prefilter included.
    #    scipy is given the coordinates x + u(x) ready-made (not timed); voxalign takes u itself.
    rng = np.random.default_rng(1)
    u = np.stack([ndi.zoom(rng.normal(scale=3.0, size=(n // 16,) * 3).astype(np.float32), 16, order=1)[:n, :n, :n]
                  for _ in range(3)], axis=-1)
    u = np.asfortranarray(u)  # as nibabel returns a (X, Y, Z, 3) field
    coords = np.indices(vol.shape, dtype=np.float32) + np.moveaxis(u, -1, 0)
    t_sp = best(lambda: ndi.map_coordinates(vol, coords, order=3, mode="nearest"), args.repeat)
    va.release_memory()
    t_va = best(lambda: va.warp(vol, u, degree=3, mode="nearest"), args.repeat, "field")
    a = ndi.map_coordinates(vol.astype(np.float64), coords, order=3, mode="nearest")
    b = va.warp(vol, u, degree=3, mode="nearest")
    rows.append(("cubic displacement-field warp (map_coordinates)", t_sp, t_va, np.abs(a - b).max()))
    del coords, a, b, u

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"voxalign threads {va.get_num_threads()}; scipy {scipy.__version__} (1 thread); "
          f"nibabel {nib.__version__}; volume {n}^3 float32 ({nvox:.1f} Mvox); best of {args.repeat}")
    print("\n| task | scipy s | voxalign s | scipy Mvox/s | voxalign Mvox/s | speed-up | max abs diff (data range ~%.1f) |"
          % float(np.ptp(vol)))
    print("|---|---|---|---|---|---|---|")
    for name, ts, tv, e in rows:
        print(f"| {name} | {ts:.3f} | {tv:.3f} | {nvox / ts:.1f} | {nvox / tv:.1f} | {ts / tv:.1f}x | {e:.1e} |")

    print("\nfirst call (no recycled buffers yet, page faults included): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in FIRST.items()))

    if not args.skip_layouts:
        layouts(vol, M, args)
    if args.skip_io:
        return
    # 4. NIfTI I/O of a ~100 MB .nii.gz (float32 noise-like data compresses poorly).
    with tempfile.TemporaryDirectory() as d:
        big = np.asfortranarray(np.random.default_rng(2).normal(size=(300, 300, 300)).astype(np.float32))
        aff = np.diag([0.8, 0.8, 0.8, 1.0])
        p_nib, p_va = os.path.join(d, "nib.nii.gz"), os.path.join(d, "va.nii.gz")
        t_wn = best(lambda: nib.save(nib.Nifti1Image(big, aff), p_nib), args.repeat)
        t_wv = best(lambda: va.write_nifti(p_va, big, aff, dtype="float32"), args.repeat)
        t_rn = best(lambda: np.asarray(nib.load(p_nib).dataobj, dtype=np.float32), args.repeat)
        t_rv = best(lambda: va.read_nifti(p_nib, dtype=np.float32), args.repeat)
        same = np.array_equal(va.read_nifti(p_nib, dtype=np.float32)[0], nib.load(p_va).get_fdata(dtype=np.float32))
        mb = os.path.getsize(p_nib) / 1e6
        print(f"\n.nii.gz of {mb:.0f} MB ({big.nbytes / 1e6:.0f} MB uncompressed), gzip level 1 on both sides; "
              f"voxalign and nibabel files decode identically: {same}")
        print("\n| task | nibabel s | voxalign s | speed-up |\n|---|---|---|---|")
        print(f"| read .nii.gz | {t_rn:.2f} | {t_rv:.2f} | {t_rn / t_rv:.1f}x |")
        print(f"| write .nii.gz | {t_wn:.2f} | {t_wv:.2f} | {t_wn / t_wv:.1f}x |")


if __name__ == "__main__":
    main()
