"""Peak memory (RSS) and wall time of `voxalign realign` on a long series (issue 20 §1).

The series: the first frame of nibabel's example4d.nii.gz (a real EPI volume) resampled to
104x90x72 voxels (2.2 x 2.1 x 1.9 mm), moved by a small smooth rigid drift plus jitter per frame
(up to ~1.5 mm / 1 degree), with noise, stored as int16 -- the shape of the issue's 600-frame case.
Written once per (frames, extension) under --cache and reused. Each run is
`/usr/bin/time -v voxalign realign IN ...` with and without --estimate-only; the figures are its
"Maximum resident set size" and "Elapsed (wall clock) time", beside the goals of issue 20:
  estimate-only peak <= 0.3 x (series as float32) + 300 MB
  reslicing peak     <= input as stored + output as stored + 300 MB

  python3 bench/bench_memory.py --frames 600 --ext .nii .nii.gz [--exe build/release/voxalign]
  [--compare OLD_EXE]   each run also with another build, side by side (the before figures)
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

SHAPE = (104, 90, 72)


def make_series(path, frames, seed=0):
    import nibabel as nib
    from nibabel.testing import data_path
    from scipy import ndimage as ndi

    src = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    vol0 = np.asarray(src.dataobj[..., 0], dtype=np.float32)
    zoom = [n / m for n, m in zip(SHAPE, vol0.shape)]
    vol = ndi.zoom(vol0, zoom, order=3, mode="nearest")[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    sp = np.array([2.2, 2.1, 1.9])
    A = np.diag(np.r_[sp, 1.0])
    A[:3, 3] = -sp * (np.array(SHAPE) - 1) / 2
    rng = np.random.default_rng(seed)
    c = (np.array(SHAPE) - 1) / 2
    data = np.empty(SHAPE + (frames,), dtype=np.int16, order="F")
    for t in range(frames):
        s = t / max(frames - 1, 1)
        trans = np.array([1.0, -0.6, 0.8]) * s + rng.normal(0, 0.08, 3)       # voxels
        ang = np.deg2rad(np.array([0.8, -0.5, 0.6]) * s + rng.normal(0, 0.05, 3))
        cx, cy, cz = np.cos(ang)
        sx, sy, sz = np.sin(ang)
        R = (np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
             @ np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]]))
        f = ndi.affine_transform(vol, R, offset=c - R @ c + trans, order=1, mode="nearest")
        f += rng.normal(0, 4.0, SHAPE).astype(np.float32)
        data[..., t] = np.clip(np.rint(f), -32768, 32767)
    img = nib.Nifti1Image(data, A)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    img.header.set_slope_inter(1.0, 0.0)
    nib.save(img, path)


def measure(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed: " + " ".join(cmd) + "\n" + p.stdout + p.stderr[-2000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024.0
    return rss, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[600])
    ap.add_argument("--ext", nargs="+", default=[".nii", ".nii.gz"])
    ap.add_argument("--exe", default="build/release/voxalign")
    ap.add_argument("--cache", default="/tmp/voxalign_bench_memory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", default="", help="more options for realign (e.g. '--dtype float32')")
    ap.add_argument("--compare", default=None, help="another voxalign build, run on the same inputs just before")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    nvox = int(np.prod(SHAPE))
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores; voxalign --threads {args.threads}; "
          f"series {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} int16")
    print("| frames | input | mode | build | input MB | output MB | peak RSS MB | goal MB | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for T in args.frames:
        for ext in args.ext:
            src = os.path.join(args.cache, f"series_{T}{ext}")
            if not os.path.exists(src):
                make_series(src, T)
            in_mb = os.path.getsize(src) / 1e6
            f32_mb = nvox * T * 4 / 1e6
            for mode in ("estimate-only", "reslice"):
                for build in ([args.compare] if args.compare else []) + [args.exe]:
                    out = os.path.join(args.cache, f"out_{T}{ext}")
                    cmd = [build, "realign", src, "--rp", os.path.join(args.cache, "rp.txt"), "-q",
                           "--threads", str(args.threads)] + args.extra.split()
                    cmd += ["--estimate-only"] if mode == "estimate-only" else ["-o", out]
                    rss, wall = measure(cmd)
                    out_mb = os.path.getsize(out) / 1e6 if mode == "reslice" else 0.0
                    goal = 0.3 * f32_mb + 300 if mode == "estimate-only" else in_mb + out_mb + 300
                    print(f"| {T} | {ext} | {mode} | {build} | {in_mb:.0f} | {out_mb:.0f} | {rss:.0f} | {goal:.0f} | "
                          f"{wall:.1f} |", flush=True)
                    if os.path.exists(out):
                        os.remove(out)


if __name__ == "__main__":
    main()
