"""NIfTI reading, side by side: voxalign vs nibabel on the same ~100 MB files (.nii.gz and .nii, int16
and float32), best of N, in one run. Set PYTHONPATH to another voxalign build to compare builds.

    python3 bench/bench_nifti.py [--repeat 5] [--mb 100]
"""
import argparse
import os
import tempfile
import time

import nibabel as nib
import numpy as np

import voxalign as va


def best(f, repeat):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mb", type=float, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = int(round((args.mb * 1e6 / 4) ** (1 / 3)))
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    smooth = 1000 * np.exp(-2 * (x**2 + y**2 + z**2))
    print(f"voxalign from {os.path.dirname(va.__file__)}; nibabel {nib.__version__}; {n}^3 voxels; best of {args.repeat}")
    print("\n| file | nibabel s | voxalign s | speed-up |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for dtype, data in (("int16", (smooth + rng.normal(0, 20, smooth.shape)).astype(np.int16)),
                            ("float32", (smooth + rng.normal(0, 20, smooth.shape)).astype(np.float32))):
            for ext in (".nii.gz", ".nii"):
                p = os.path.join(d, dtype + ext)
                nib.save(nib.Nifti1Image(data, np.eye(4)), p)
                a, _, _ = va.read_nifti(p, dtype=np.float32)
                assert np.array_equal(a, data.astype(np.float32))
                # np.array(copy=True): a .nii is memory-mapped by nibabel; count the read itself.
                t_nib = best(lambda: np.array(nib.load(p).get_fdata(dtype=np.float32), copy=True), args.repeat)
                t_va = best(lambda: va.read_nifti(p, dtype=np.float32), args.repeat)
                mb = os.path.getsize(p) / 1e6
                print(f"| {dtype}{ext} ({mb:.0f} MB) | {t_nib:.3f} | {t_va:.3f} | {t_nib / t_va:.1f}x |")


if __name__ == "__main__":
    main()
