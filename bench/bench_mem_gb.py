"""Peak resident memory of each voxalign command at two input sizes (/usr/bin/time -v), and the linear
rule fixed MB + bytes per input voxel through the two points: the figures behind
voxalign.interfaces.mem_gb (docs/pipelines.md, "Memory"). Real data: ch2 (mricron-data) and nibabel's
example4d EPI, tiled in time with small shifts.

    PYTHONPATH=build/release/python python3 bench/bench_mem_gb.py [build/release/voxalign [COMMAND,...]]
"""
import os
import re
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from nibabel.testing import data_path
from scipy import ndimage

EXE = sys.argv[1] if len(sys.argv) > 1 else "build/release/voxalign"
ONLY = sys.argv[2].split(",") if len(sys.argv) > 2 else None
CH2 = "/usr/share/mricron/templates/ch2.nii.gz"


def peak_mb(args):
    p = subprocess.run(["/usr/bin/time", "-v", EXE, *args, "-q"], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024


def voxels(*paths):
    return sum(int(np.prod(nib.load(p).shape)) for p in paths)


def main():
    d = tempfile.mkdtemp()
    t1 = nib.load(CH2)
    big = os.path.join(d, "t1.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32) + 1, t1.affine), big)
    small = os.path.join(d, "t1_half.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32)[:, :, 45:135] + 1, t1.affine), small)
    rot = os.path.join(d, "t1_rot.nii.gz")
    a = t1.affine.copy()
    a[:3, 3] += 2.0
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32) + 1, a), rot)
    rot_small = os.path.join(d, "t1_rot_half.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32)[:, :, 45:135] + 1, a), rot_small)
    epi = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    e = np.asarray(epi.dataobj)
    bolds = {}
    for frames in (50, 100):
        series = np.stack([ndimage.shift(e[..., t % 2].astype(np.float32), (0.1 * (t % 5), 0, 0), order=1)
                           for t in range(frames)], axis=-1).astype(np.int16)
        bolds[frames] = os.path.join(d, f"bold{frames}.nii.gz")
        nib.save(nib.Nifti1Image(series, epi.affine), bolds[frames])
    # sdc: a blip pair on one grid (the second copy shifted along j by 2 voxels), 2 mm and 1 mm halves
    pairs = {}
    for name, vol, aff in (("2mm", np.asarray(t1.dataobj, np.float32)[::2, ::2, ::2] + 1, t1.affine @ np.diag([2, 2, 2, 1])),
                           ("half", np.asarray(t1.dataobj, np.float32)[:, :, 45:135] + 1, t1.affine)):
        pairs[name] = (os.path.join(d, f"up_{name}.nii.gz"), os.path.join(d, f"down_{name}.nii.gz"))
        nib.save(nib.Nifti1Image(vol, aff), pairs[name][0])
        nib.save(nib.Nifti1Image(np.roll(vol, 2, axis=1), aff), pairs[name][1])
    fields = {}
    for name, src in (("big", big), ("small", small)):
        img = nib.load(src)
        fields[name] = os.path.join(d, f"field_{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.full(img.shape + (3,), 0.3, np.float32), img.affine), fields[name])
    cases = {
        "n4": [(["n4", small, "-o", f"{d}/o.nii.gz"], [small]), (["n4", big, "-o", f"{d}/o.nii.gz"], [big])],
        "register": [(["register", rot_small, "--fixed", small, "-o", f"{d}/o.nii.gz"], [rot_small, small]),
                     (["register", rot, "--fixed", big, "-o", f"{d}/o.nii.gz"], [rot, big])],
        "realign": [(["realign", bolds[50], "-o", f"{d}/o.nii.gz"], [bolds[50]]),
                    (["realign", bolds[100], "-o", f"{d}/o.nii.gz"], [bolds[100]])],
        "resample": [(["resample", bolds[50], "-o", f"{d}/o.nii.gz"], [bolds[50]]),
                     (["resample", bolds[100], "-o", f"{d}/o.nii.gz"], [bolds[100]])],
        "warp": [(["warp", small, "--field", fields["small"], "-o", f"{d}/o.nii.gz"], [small, fields["small"]]),
                 (["warp", big, "--field", fields["big"], "-o", f"{d}/o.nii.gz"], [big, fields["big"]])],
        "sdc": [(["sdc", *pairs[n], "-o", f"{d}/o.nii.gz", "--fieldmap", f"{d}/f.nii.gz", "--pe-dir", "j",
                  "--readout-time", "0.05"], list(pairs[n])) for n in ("2mm", "half")],
    }
    if ONLY:
        cases = {k: v for k, v in cases.items() if k in ONLY}
    print("| command | input voxels | peak RSS (MB) | fitted fixed MB | bytes / input voxel |")
    print("|---|---|---|---|---|")
    for cmd, pts in cases.items():
        meas = [(voxels(*paths), peak_mb(args)) for args, paths in pts]
        (v0, m0), (v1, m1) = meas
        slope = (m1 - m0) * 2**20 / (v1 - v0)
        fixed = m0 - slope * v0 / 2**20
        for v, m in meas:
            print(f"| {cmd} | {v:,} | {m:.0f} | {fixed:.0f} | {slope:.1f} |")


if __name__ == "__main__":
    main()
