#!/usr/bin/env python3
"""Time voxalign's affine resampling per boundary mode: a smooth 256^3 float32 volume (as
bench_resample.py's, without its noise term) and bench_resample.py's affine (rotation + shear +
shift), best of 7 per mode.

    python3 bench/bench_resample_modes.py [modes] [degree]     e.g. constant,grid-constant,mirror,itk 3

Modes the build does not know are skipped, so the same command times an older build."""
import sys
import time

import numpy as np
import scipy.ndimage as ndi

import voxalign as va


def main():
    modes = sys.argv[1] if len(sys.argv) > 1 else "constant,grid-constant,mirror,itk"
    degree = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rng = np.random.default_rng(0)
    n = 256
    small = rng.normal(size=(n // 8,) * 3).astype(np.float32)
    vol = np.asfortranarray(ndi.zoom(small, 8, order=1)[:n, :n, :n])
    c, s = np.cos(0.2), np.sin(0.2)
    M = np.array([[c, -s, 0.02, 10.0], [s, c, -0.03, -7.5], [0.01, 0.04, 1.05, 3.2], [0, 0, 0, 1]])
    eye = np.eye(4)
    res = []
    for mode in modes.split(","):
        if mode not in va.MODES:
            continue
        ts = []
        for _ in range(7):
            t = time.perf_counter()
            va.resample(vol, eye, vol.shape, eye, transform=M, degree=degree, mode=mode)
            ts.append(time.perf_counter() - t)
        res.append(f"{mode} {min(ts):.3f}")
    print(" | ".join(res))


if __name__ == "__main__":
    main()
