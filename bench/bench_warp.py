"""Warp operators: forward, exact adjoint and field derivative of a cubic B-spline warp, against
scipy.ndimage.map_coordinates (order 3, prefilter included) in the same run.

Input: a 200^3 float32 random image and a random smooth displacement field (a few voxels).
Usage: python3 bench/bench_warp.py [--size 200] [--repeat 7] [--threads N]
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "release", "python"))
import voxalign as vx  # noqa: E402


def best(f, repeat):
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    vx.set_num_threads(a.threads)
    n = a.size
    rng = np.random.default_rng(0)
    img = np.asfortranarray(rng.standard_normal((n, n, n)).astype(np.float32))
    y = np.asfortranarray(rng.standard_normal((n, n, n)).astype(np.float32))
    # random smooth field: low-pass filtered noise, about +-3 voxels
    u = np.stack([ndi.gaussian_filter(rng.standard_normal((n, n, n)), 8) for _ in range(3)], -1)
    u = np.asfortranarray((u / np.abs(u).max() * 3).astype(np.float32))
    coords = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32)] * 3, indexing="ij"), 0) + np.moveaxis(u, -1, 0)
    t_scipy = best(lambda: ndi.map_coordinates(img, coords, order=3, mode="mirror"), 1)
    ref = ndi.map_coordinates(img, coords, order=3, mode="mirror")
    diff = np.abs(vx.warp(img, u, 3, "mirror") - ref).max()
    # the three operators in turn, best of `repeat` each: a slow spell of the machine hits all three
    calls = [lambda: vx.warp(img, u, 3, "mirror"), lambda: vx.adjoint_warp(y, u, (n, n, n), 3, "mirror"),
             lambda: vx.warp_gradient(img, u, 3, "mirror")]
    t = [[] for _ in calls]
    for _ in range(a.repeat):
        for f, tf in zip(calls, t):
            s = time.perf_counter()
            f()
            tf.append(time.perf_counter() - s)
    t_fwd, t_adj, t_grad = (min(x) for x in t)
    print(f"{n}^3 float32, cubic, mirror, {a.threads} threads (voxalign), scipy {__import__('scipy').__version__} 1 thread")
    print(f"| scipy map_coordinates | {t_scipy:.3f} s |")
    print(f"| voxalign forward | {t_fwd:.3f} s | {t_scipy / t_fwd:.1f}x scipy | max diff {diff:.1e} |")
    print(f"| voxalign exact adjoint | {t_adj:.3f} s | {t_adj / t_fwd:.2f}x forward |")
    print(f"| voxalign value + 3 derivative components | {t_grad:.3f} s | {t_grad / t_fwd:.2f}x forward |")


if __name__ == "__main__":
    main()
