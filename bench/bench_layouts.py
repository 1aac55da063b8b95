#!/usr/bin/env python3
"""voxalign alone: cubic affine resampling of one smooth 256^3 float32 volume (bench_resample_modes.py's
volume and affine) held in Fortran order, C order and as a strided view (every other sample of a
volume twice as long on axis 0), per mode, best of 5. One line per run, so that two builds can be
alternated on a noisy machine (run it with each build's PYTHONPATH in turn); bench_resample.py has
the same cases against scipy.

    python3 bench/bench_layouts.py [modes]      e.g. constant,mirror,itk,nearest"""
import sys
import time

import numpy as np
import scipy.ndimage as ndi

import voxalign as va


def main():
    modes = sys.argv[1] if len(sys.argv) > 1 else "constant,mirror,itk,nearest"
    n = 256
    small = np.random.default_rng(0).normal(size=(n // 8,) * 3).astype(np.float32)
    vol = np.asfortranarray(ndi.zoom(small, 8, order=1)[:n, :n, :n])
    twice = np.asfortranarray(np.repeat(vol, 2, axis=0))
    c, s = np.cos(0.2), np.sin(0.2)
    M = np.array([[c, -s, 0.02, 10.0], [s, c, -0.03, -7.5], [0.01, 0.04, 1.05, 3.2], [0, 0, 0, 1]])
    eye = np.eye(4)
    out = []
    for name, a in (("F", vol), ("C", np.ascontiguousarray(vol)), ("strided", twice[::2])):
        for mode in modes.split(","):
            if mode not in va.MODES:
                continue
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                va.resample(a, eye, a.shape, eye, transform=M, degree=3, mode=mode)
                ts.append(time.perf_counter() - t)
            out.append(f"{name}/{mode} {min(ts):.3f}")
    print(" ".join(out), "| load", open("/proc/loadavg").read().split()[0])


if __name__ == "__main__":
    main()
