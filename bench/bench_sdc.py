"""Susceptibility distortion correction benchmark (issue 18): `voxalign sdc` end to end on 2 mm whole
heads, and the convergence of Gauss-Newton with the exact derivative against the usual approximation
(ImWIP's comparison). No peer runs here: FSL topup and AFNI 3dQwarp are not packaged for this machine.

Data (tests/python/sdc_data.py): mricron's ch2 T1 block-averaged to 2 mm (90x108x90, 875k voxels),
ch2bet as the brain; distorted along j with topup's model (shift s T f, intensity / Jacobian) by a
field of a Gaussian peak behind the frontal sinus, a dip at the left temporal pole and a linear term;
readout 0.05 s; Gaussian noise of 1 % of the mean brain intensity. Cases vary the peak, width and dip.

timing    `voxalign sdc UP DOWN -o ... --fieldmap ... --threads N` on .nii.gz files (read, fit, write),
          best of --repeat runs; field error in the brain (Hz RMS and max), correlation of the corrected
          mean with the undistorted T1 in the brain (and of the uncorrected mean).
converge  the same schedule with the exact and with the approximate derivative (the image gradient by
          central finite differences instead of the spline's own derivative), the cost after each
          Gauss-Newton iteration; and one full-resolution level from a zero field, 25 iterations.

motion    pairs with the head moved between UP and DOWN (sdc_data.moved_pair: rigid, about the grid's
          centre, the field moving with the head, the physical model), CLI with the default (--motion)
          and --no-motion: time, field error, correlation, and the motion's error (largest distance
          over the brain between the estimated and the true map, from --save-motion).

fine      (a timing case) the pair distorted at 1 mm and block-averaged to 2 mm: not voxalign's own
          interpolation, with partial volumes.

Usage: python3 bench/bench_sdc.py [--threads 2] [--repeat 3] [--plot bench/sdc_convergence.png]
       [--cases timing,motion,converge]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "release", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
import sdc_data  # noqa: E402
import voxalign as vx  # noqa: E402

VOXALIGN = os.path.join(HERE, "..", "build", "release", "voxalign")
CASES = {
    "peak 85 Hz, 14 mm; dip -35 Hz": dict(peak=85.0, sigma=14.0, dip=-35.0),
    "peak 90 Hz, 10 mm; dip -40 Hz": dict(peak=90.0, sigma=10.0, dip=-40.0),
    "peak 60 Hz, 25 mm; steep gradient": dict(peak=60.0, sigma=25.0, gradient=(0.2, 0.1, 0.2)),
    "peak 80 Hz, 15 mm; 3 % noise": dict(peak=80.0, sigma=15.0, noise=0.03),
    "peak 100 Hz, 6 mm (sharp); dip -40 Hz": dict(peak=100.0, sigma=6.0, dip=-40.0),
    "peak 85 Hz, 14 mm; distorted at 1 mm, then 2 mm blocks": dict(peak=85.0, sigma=14.0, dip=-35.0, fine=True),
}


def fine_pair(noise=0.01, **field_args):
    """The pair distorted on ch2's own 1 mm grid (readout doubled: the same shift in mm) and then
    block-averaged to 2 mm: partial volumes and an interpolation that is not voxalign's model."""
    img = nib.load(sdc_data.CH2)
    t1 = np.asarray(img.dataobj, np.float64)[:180, :216, :180]
    f1 = sdc_data.field_hz(t1.shape, img.affine, **field_args)
    up1 = sdc_data.distort(t1, f1, 1, +1, 0.10, upsample=4)
    dn1 = sdc_data.distort(t1, f1, 1, -1, 0.10, upsample=4)
    b = lambda v: sdc_data.block_average(v, 2)
    up, down, true = b(up1).astype(np.float32), b(dn1).astype(np.float32), b(t1).astype(np.float32)
    brain = b((np.asarray(nib.load(sdc_data.CH2BET).dataobj) > 0)[:180, :216, :180].astype(np.float64)) > 0.5
    aff = img.affine.copy()
    aff[:3, :3] *= 2
    aff[:3, 3] += 0.5
    field = sdc_data.field_hz(true.shape, aff, **field_args)
    rng = np.random.default_rng(0)
    s = noise * float(true[brain].mean())
    up = (up + rng.normal(0, s, up.shape)).astype(np.float32)
    down = (down + rng.normal(0, s, down.shape)).astype(np.float32)
    return up, down, true, field.astype(np.float32), brain, aff


def corr(a, b, m):
    return float(np.corrcoef(np.asarray(a, np.float64)[m], np.asarray(b, np.float64)[m])[0, 1])


def timing(threads, repeat):
    print(f"## timing: voxalign sdc CLI, {threads} threads, best of {repeat}")
    print("| case | max shift (voxels) | time (s) | field error RMS / max (Hz) | corr corrected | corr uncorrected |")
    print("|---|---|---|---|---|---|")
    for name, args in CASES.items():
        args = dict(args)
        noise = args.pop("noise", 0.01)
        if args.pop("fine", False):
            up, down, true, field, brain, aff = fine_pair(noise=noise, **args)
        else:
            up, down, true, field, brain, aff = sdc_data.pair("ch2", noise=noise, **args)
        with tempfile.TemporaryDirectory() as d:
            p = lambda n: os.path.join(d, n)
            nib.save(nib.Nifti1Image(up, aff), p("up.nii.gz"))
            nib.save(nib.Nifti1Image(down, aff), p("down.nii.gz"))
            best = np.inf
            for _ in range(repeat):
                t0 = time.perf_counter()
                subprocess.run([VOXALIGN, "sdc", p("up.nii.gz"), p("down.nii.gz"), "-o", p("c.nii.gz"), "--fieldmap",
                                p("f.nii.gz"), "--pe-dir", "j", "--readout-time", "0.05", "--threads", str(threads), "-q"],
                               check=True)
                best = min(best, time.perf_counter() - t0)
            f = np.asarray(nib.load(p("f.nii.gz")).dataobj)
            c = np.asarray(nib.load(p("c.nii.gz")).dataobj)
        e = (f - field)[brain]
        print(f"| {name} | {np.abs(field[brain]).max() * 0.05:.2f} | {best:.2f} | {np.sqrt((e ** 2).mean()):.3f} / "
              f"{np.abs(e).max():.2f} | {corr(c, true, brain):.5f} | {corr(0.5 * (up + down), true, brain):.5f} |")


MOTION_CASES = {
    "none": dict(rot_deg=(0.0, 0.0, 0.0), trans_mm=(0.0, 0.0, 0.0)),
    "1.5 deg (x), 1.5 mm (x)": dict(rot_deg=(1.5, 0.0, 0.0), trans_mm=(1.5, 0.0, 0.0)),
    "1.5 deg (x) + 0.5 deg (z), 1.5 mm (x) + 1 mm (z)": dict(rot_deg=(1.5, 0.0, 0.5), trans_mm=(1.5, 0.0, 1.0)),
    "2 deg (z), 2 mm (z)": dict(rot_deg=(0.0, 0.0, 2.0), trans_mm=(0.0, 0.0, 2.0)),
}


def motion(threads, repeat):
    print(f"\n## motion between UP and DOWN: voxalign sdc CLI, {threads} threads, best of {repeat}")
    print("| motion | option | time (s) | field error RMS / max (Hz) | corr corrected | motion error (mm) | cost (last level) |")
    print("|---|---|---|---|---|---|---|")
    for name, mv in MOTION_CASES.items():
        up, down, true, field, brain, aff, M = sdc_data.moved_pair(peak=85.0, sigma=14.0, dip=-35.0, **mv)
        ijk = np.argwhere(brain).T
        xyz = aff[:3, :3] @ ijk + aff[:3, 3:4]
        with tempfile.TemporaryDirectory() as d:
            p = lambda n: os.path.join(d, n)
            nib.save(nib.Nifti1Image(up, aff), p("up.nii.gz"))
            nib.save(nib.Nifti1Image(down, aff), p("down.nii.gz"))
            for opt in ("--motion", "--no-motion"):
                best = np.inf
                extra = ["--save-motion", p("m.txt")] if opt == "--motion" else []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    out = subprocess.run([VOXALIGN, "sdc", p("up.nii.gz"), p("down.nii.gz"), "-o", p("c.nii.gz"),
                                          "--fieldmap", p("f.nii.gz"), "--pe-dir", "j", "--readout-time", "0.05",
                                          "--threads", str(threads), opt, *extra, "-v"],
                                         check=True, capture_output=True, text=True).stdout
                    best = min(best, time.perf_counter() - t0)
                cost = [ln.split()[-1] for ln in out.splitlines() if ln.strip().startswith("level")][-1]
                f = np.asarray(nib.load(p("f.nii.gz")).dataobj)
                c = np.asarray(nib.load(p("c.nii.gz")).dataobj)
                e = (f - field)[brain]
                merr = "-"
                if opt == "--motion":
                    est = vx.read_transform(p("m.txt"))
                    dm = (est - M)[:3, :3] @ xyz + (est - M)[:3, 3:4]
                    merr = f"{np.sqrt((dm ** 2).sum(0)).max():.3f}"
                print(f"| {name} | {opt} | {best:.2f} | {np.sqrt((e ** 2).mean()):.3f} / {np.abs(e).max():.2f} | "
                      f"{corr(c, true, brain):.5f} | {merr} | {cost} |")


def converge(threads, plot):
    vx.set_num_threads(threads)
    up, down, true, field, brain, aff = sdc_data.pair("ch2", **CASES["peak 85 Hz, 14 mm; dip -35 Hz"])
    runs = {}
    print("\n## convergence: exact vs approximate derivative (same data, same schedule)")
    single = dict(warp_res=(10.0,), subsample=(1,), fwhm=(0.0,), iterations=(25,), lambda_=(1e-4,))
    for label, kw in (("default schedule", {}), ("one full-resolution level, 10 mm lattice", single)):
        print(f"\n### {label}")
        print("| derivative | cost after each Gauss-Newton iteration (levels separated by /) | field error RMS (Hz) | time (s) |")
        print("|---|---|---|---|")
        for approx in (False, True):
            t0 = time.perf_counter()
            r = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05, approximate=approx, **kw)
            dt = time.perf_counter() - t0
            levels, trace, k = [], r.report["cost_trace"], 0
            for lv in r.report["levels"]:
                levels.append([lv["initial_cost"]] + trace[k:k + lv["iterations"]])
                k += lv["iterations"]
            runs[(label, approx)] = levels
            text = " / ".join(", ".join(f"{c:.1f}" for c in lv) for lv in levels)
            rms = np.sqrt(((r.fieldmap - field)[brain] ** 2).mean())
            print(f"| {'approximate (finite differences)' if approx else 'exact'} | {text} | {rms:.3f} | {dt:.2f} |")
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, label in zip(axes, ("default schedule", "one full-resolution level, 10 mm lattice")):
            for approx, style in ((False, "-o"), (True, "--s")):
                levels = runs[(label, approx)]
                x0 = 0
                for li, lv in enumerate(levels):
                    ax.plot(range(x0, x0 + len(lv)), lv, style, color="C1" if approx else "C0", ms=3,
                            label=("approximate" if approx else "exact") if li == 0 else None)
                    x0 += len(lv)
            ax.set_yscale("log")
            ax.set_xlabel("Gauss-Newton iteration (all levels)")
            ax.set_ylabel("cost")
            if label.startswith("one"):  # the excess over the lowest cost either run reached
                best = min(min(runs[(label, a)][-1]) for a in (False, True))
                ax.cla()
                for approx, style in ((False, "-o"), (True, "--s")):
                    lv = np.array(runs[(label, approx)][-1])
                    ax.plot(lv - best + 1e-3 * best, style, color="C1" if approx else "C0", ms=3,
                            label="approximate" if approx else "exact")
                ax.set_yscale("log")
                ax.set_xlabel("Gauss-Newton iteration")
                ax.set_ylabel("cost - lowest cost + 0.1 %")
            ax.set_title(label, fontsize=10)
            ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=100)
        print(f"\nplot: {plot}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plot", default="")
    ap.add_argument("--cases", default="timing,converge")
    a = ap.parse_args()
    if "timing" in a.cases:
        timing(a.threads, a.repeat)
    if "motion" in a.cases:
        motion(a.threads, a.repeat)
    if "converge" in a.cases:
        converge(a.threads, a.plot)


if __name__ == "__main__":
    main()
