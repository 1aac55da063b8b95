#!/usr/bin/env python3
"""voxalign's CUDA backend against the CPU and CuPy on the same device (issue 17's GPU goals).

Runs build/release/voxalign_bench_gpu (GPU and CPU timings of the voxalign operators, float32,
cubic B-spline, mode mirror, data resident on the device; accuracy against the CPU; the adjoint's
run-to-run bits), then times CuPy's cupyx.scipy.ndimage on the same volumes and points, side by
side: map_coordinates(order=3) at x + u(x) for the 200^3 field warp, and affine_transform(order=3)
(prefilter included) for the 256^3 affine resampling. Prints a table and the JSON (--json FILE
writes it).

    python3 bench/bench_gpu.py [--build build/release] [--field-size 200] [--affine-size 256]
"""
import argparse
import json
import subprocess
import sys
import time


def volume(n, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    # Same formula as bench_gpu.cpp's smooth_volume (std::mt19937 there: the constants differ, the
    # cost does not).
    a, b, c = rng.uniform(0.5, 2.0, 3)
    i, j, k = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    return (np.sin(a * i * 0.1) * np.cos(b * j * 0.07) + 0.5 * np.sin(c * k * 0.05 + 0.3)).astype(np.float32)


def field(n, amplitude):
    import numpy as np
    i, j, k = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    return np.stack([amplitude * np.sin(0.05 * (i + 2 * d)) * np.cos(0.04 * (j - d)) * np.sin(0.03 * k + d)
                     for d in range(3)]).astype(np.float32)


def cupy_times(nf, na, repeat):
    try:
        import cupy as cp
        import cupyx.scipy.ndimage as cnd
        import numpy as np
    except ImportError as e:
        return {"cupy": f"not available ({e})"}

    def best(f):
        f()
        cp.cuda.Device().synchronize()
        out = 1e300
        for _ in range(repeat):
            t0 = time.perf_counter()
            f()
            cp.cuda.Device().synchronize()
            out = min(out, (time.perf_counter() - t0) * 1e3)
        return out

    f = cp.asarray(volume(nf, 1))
    u = cp.asarray(field(nf, 3.0))
    grid = cp.stack(cp.meshgrid(*(cp.arange(nf, dtype=cp.float32),) * 3, indexing="ij"))
    coords = grid + u
    res = {"cupy_version": cp.__version__,
           "cupy_map_coordinates_ms": best(lambda: cnd.map_coordinates(f, coords, order=3, mode="mirror")),
           "cupy_map_coordinates_prefiltered_ms": None}
    coef = cnd.spline_filter(f, order=3, mode="mirror")
    res["cupy_map_coordinates_prefiltered_ms"] = best(
        lambda: cnd.map_coordinates(coef, coords, order=3, mode="mirror", prefilter=False))
    a = cp.asarray(volume(na, 2))
    th = 0.2
    M = np.array([[np.cos(th), -np.sin(th), 0, na * 0.1], [np.sin(th), np.cos(th), 0, -na * 0.05],
                  [0, 0, 1.02, 1.5], [0, 0, 0, 1]])
    res["cupy_affine_with_prefilter_ms"] = best(lambda: cnd.affine_transform(a, cp.asarray(M), order=3, mode="mirror"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--field-size", type=int, default=200)
    ap.add_argument("--affine-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    out = subprocess.run([f"{a.build}/voxalign_bench_gpu", str(a.field_size), str(a.affine_size), str(a.repeat)],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    if "skipped" in r:
        print("bench_gpu: no GPU:", r["skipped"])
        sys.exit(1)
    r.update(cupy_times(a.field_size, a.affine_size, a.repeat))
    print(f"device: {r['device']}  (float32, cubic, mirror, best of {a.repeat}, data on the device)")
    rows = [
        (f"{a.field_size}^3 field warp", r["field_warp_ms"], r["cpu_field_warp_ms"], r.get("cupy_map_coordinates_prefiltered_ms")),
        (f"{a.field_size}^3 value + field gradient", r["field_value_and_gradient_ms"], None, None),
        (f"{a.field_size}^3 exact adjoint (deterministic)", r["adjoint_ms"], r["cpu_adjoint_ms"], None),
        (f"{a.field_size}^3 exact adjoint (fast, atomics)", r["adjoint_fast_ms"], None, None),
        (f"{a.affine_size}^3 affine incl. prefilter", r["affine_with_prefilter_ms"], r["cpu_affine_with_prefilter_ms"],
         r.get("cupy_affine_with_prefilter_ms")),
    ]
    print(f"{'operation':44s} {'GPU ms':>9s} {'CPU ms':>9s} {'CPU/GPU':>8s} {'CuPy ms':>9s} {'CuPy/vx':>8s}")
    for name, g, c, cu in rows:
        fmt = lambda v: f"{v:9.3f}" if isinstance(v, (int, float)) else f"{'-':>9s}"
        ratio = lambda x, y: f"{x / y:8.1f}" if isinstance(x, (int, float)) and y else f"{'-':>8s}"
        print(f"{name:44s} {fmt(g)} {fmt(c)} {ratio(c, g)} {fmt(cu)} {ratio(cu, g)}")
    print(f"adjoint / forward: {r['adjoint_ms'] / r['field_warp_ms']:.2f}; value+gradient / forward: "
          f"{r['field_value_and_gradient_ms'] / r['field_warp_ms']:.2f}")
    print(f"GPU vs CPU (max rel): field {r['field_rel_err']:.2g}, adjoint {r['adjoint_rel_err']:.2g}, "
          f"affine {r['affine_rel_err']:.2g}; adjoint bit-identical run to run: {r['adjoint_bit_identical']}")
    print(json.dumps(r))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(r, fh, indent=1)


if __name__ == "__main__":
    main()
