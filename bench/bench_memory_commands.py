"""Peak memory (RSS) of n4, register, warp and resample on large inputs (issue 20 §1: "check the other
commands the same way and fix any that hold more than two copies of their data").

Inputs (real data, written once under --cache):
  n4        ch2better (mricron-data, 0.5 mm, 301x370x316 = 35.2 M voxels) as float32, full resolution
            (--shrink 1, 4 levels of 20 iterations) and the default shrink 4
  register  ch2better and a copy shifted by 2 mm (two 0.5 mm volumes), rigid, -o
  warp      ch2 (1 mm) with a constant field of 0.3 voxels (X x Y x Z x 3 float32), mm and voxel units
  resample  bench_memory.py's 600-frame series (104x90x72 int16, .nii and .nii.gz), a rigid shift
"Data" is what the command must hold as float32 (n4, register, resample: the images; warp: computed in
float64, so image + field as float64). copies = peak / data.

  python3 bench/bench_memory_commands.py [--exe build/release/voxalign] [--compare OLD_EXE]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_memory import make_series, measure  # noqa: E402


def inputs(cache):
    import nibabel as nib
    os.makedirs(cache, exist_ok=True)
    p = {k: os.path.join(cache, k) for k in ("t1.nii.gz", "t1_moved.nii.gz", "ch2.nii.gz", "field.nii.gz",
                                              "shift.txt", "series_600.nii", "series_600.nii.gz")}
    if not os.path.exists(p["t1.nii.gz"]):
        t = nib.load("/usr/share/mricron/templates/ch2better.nii.gz")
        d = np.asarray(t.dataobj, np.float32) + 1
        nib.save(nib.Nifti1Image(d, t.affine), p["t1.nii.gz"])
        a = t.affine.copy()
        a[:3, 3] += 2.0
        nib.save(nib.Nifti1Image(d, a), p["t1_moved.nii.gz"])
        t = nib.load("/usr/share/mricron/templates/ch2.nii.gz")
        d = np.asarray(t.dataobj, np.float32) + 1
        nib.save(nib.Nifti1Image(d, t.affine), p["ch2.nii.gz"])
        nib.save(nib.Nifti1Image(np.full(d.shape + (3,), 0.3, np.float32), t.affine), p["field.nii.gz"])
        np.savetxt(p["shift.txt"], [[1, 0, 0, 1.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    for ext in (".nii", ".nii.gz"):
        if not os.path.exists(p["series_600" + ext]):
            make_series(p["series_600" + ext], 600)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exe", default="build/release/voxalign")
    ap.add_argument("--compare", default=None, help="another voxalign build, run on the same inputs just before")
    ap.add_argument("--cache", default="/tmp/voxalign_bench_memory")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    p = inputs(args.cache)
    out = os.path.join(args.cache, "out")
    big = 301 * 370 * 316 * 4 / 1e6
    ch2 = 181 * 217 * 181 * 8 / 1e6
    series = 104 * 90 * 72 * 600 * 4 / 1e6
    cases = [
        ("n4 --shrink 1", ["n4", p["t1.nii.gz"], "-o", out + ".nii.gz", "--shrink", "1", "--iterations", "20x20x20x20"], big),
        ("n4 (shrink 4)", ["n4", p["t1.nii.gz"], "-o", out + ".nii.gz"], big),
        ("register (two 0.5 mm)", ["register", p["t1_moved.nii.gz"], "--fixed", p["t1.nii.gz"], "-o", out + ".nii.gz"], 2 * big),
        ("warp --units voxel", ["warp", p["ch2.nii.gz"], "--field", p["field.nii.gz"], "-o", out + ".nii.gz"], 4 * ch2),
        ("warp --units mm", ["warp", p["ch2.nii.gz"], "--field", p["field.nii.gz"], "--units", "mm", "-o", out + ".nii.gz"], 4 * ch2),
        ("resample 600 frames .nii", ["resample", p["series_600.nii"], "-t", p["shift.txt"], "-o", out + ".nii"], series),
        ("resample 600 frames .nii.gz", ["resample", p["series_600.nii.gz"], "-t", p["shift.txt"], "-o", out + ".nii.gz"], series),
    ]
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores; voxalign --threads {args.threads}")
    print("| command | data MB | build | peak RSS MB | copies | wall s |")
    print("|---|---|---|---|---|---|")
    for name, cmd, data in cases:
        for build in ([args.compare] if args.compare else []) + [args.exe]:
            rss, wall = measure([build, *cmd, "-q", "--threads", str(args.threads)])
            print(f"| {name} | {data:.0f} | {build} | {rss:.0f} | {rss / data:.2f} | {wall:.1f} |", flush=True)
        for ext in (".nii", ".nii.gz"):
            if os.path.exists(out + ext):
                os.remove(out + ext)


if __name__ == "__main__":
    main()
