"""Registration benchmark: voxalign vs SimpleITK's registration framework, ANTsPy and torchreg (CPU)
on the same pairs, in one run. Figures go to bench/RESULTS.md.

Input: the real T1 (Debian mricron-data's ch2.nii.gz, 181x217x181, 1 mm) and its brain mask
(ch2bet). Each pair: a random transform (rotations up to 15 degrees, translations up to 20 mm; for
'affine' also zooms up to 10 % and shears up to 0.05) applied with voxalign.resample (cubic, zero
outside); for 'mi' the moving image gets a non-monotonic intensity map plus noise. Every tool gets
the same images (in memory), the same brain mask as the fixed mask, the same transform type,
metric and 3-level pyramid (shrink 4, 2, 1; smoothing 2, 1, 0 voxels), 2 threads. Accuracy: RMS
over the brain of |T_est(x) - T_true(x)| in mm. Time: the registration call alone (no file I/O).

Peers and their settings:
  sitk      ImageRegistrationMethod, Euler3DTransform / AffineTransform, MeanSquares or Mattes MI
            (32 bins), linear interpolation (ITK's usual choice), regular sampling of 5 % of the fixed
            voxels (voxalign uses <= 2^18 per level, 3.7 % at full resolution), RegularStepGradientDescent
            with scales from the physical shift, centred (geometry) initialisation.
  ants      ants.registration(type_of_transform='Rigid' / 'Affine', aff_metric 'meansquares' / 'mattes',
            mask = the brain), ANTs' own defaults otherwise (2100x1200x1200x10 iterations, 4 levels).
  torchreg  AffineRegistration (Adam on MSE, trilinear, scales 4, 2, 1 with 500, 100, 50 iterations;
            'rigid' = rotation matrix + translation, 'affine' adds zoom and shear). Its rotation is a
            free 3x3 matrix, so its 'rigid' is not exactly rigid; it takes no mask and no MI.

Unmasked cases (issue 21 §5; `--cases unmasked-ssd,unmasked-ncc,unmasked-mi`): the pairs of
bench/unmasked_edges.py -- ch2 moved by a seeded rigid transform of 10 degrees and 10 mm with scipy's
cubic affine_transform (zero outside: the moving image is cut along the image of ch2's faces) -- and
no mask for any tool, same contrast, rigid; metric ssd / ncc / mi (SimpleITK MeanSquares / Correlation
/ Mattes, ANTsPy meansquares / GC / mattes). `voxalign-keepfill` is voxalign with skip_fill=False: the
code before fill was left out (the bias it shows is the issue).

Peers not installed by `make deps` (bench only): python3 -m pip install antspyx torchreg
(a missing peer is reported and skipped).

Usage: python3 bench/bench_register.py [--cases rigid,affine,mi] [--pairs 3] [--peers sitk,ants,torchreg]
"""
import argparse
import os
import sys
import time

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "release", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
sys.path.insert(0, HERE)
import voxalign as vx  # noqa: E402
import unmasked_edges  # noqa: E402
from test_register import about, euler, rms_error  # noqa: E402

T1 = "/usr/share/mricron/templates/ch2.nii.gz"
BET = "/usr/share/mricron/templates/ch2bet.nii.gz"
THREADS = 2


def make_pair(F, A, seed, case):
    rng = np.random.default_rng(seed)
    c = (A @ np.r_[(np.array(F.shape) - 1) / 2, 1])[:3]
    ang = rng.uniform(-1, 1, 3)
    ang *= np.deg2rad(15) / np.abs(ang).max() * rng.uniform(0.2, 1.0)
    t = rng.uniform(-1, 1, 3)
    t *= 20 / np.linalg.norm(t) * rng.uniform(0.2, 1.0)
    L = euler(*ang)
    if case == "affine":
        S = np.eye(3)
        S[0, 1], S[0, 2], S[1, 2] = rng.uniform(-0.05, 0.05, 3)
        L = L @ np.diag(1 + rng.uniform(-0.1, 0.1, 3)) @ S
    T = about(L, t, c)
    M = vx.resample(F, A, F.shape, A, transform=np.linalg.inv(T), degree=3, mode="constant").astype(np.float32)
    if case == "mi":
        M = (120 + 90 * np.cos(2.6 * np.pi * M / 254.0) + rng.normal(0, 4.0, M.shape)).astype(np.float32)
    return M, T


def unmasked(case):
    return case.startswith("unmasked-")


def metric_of(case):
    return case.split("-", 1)[1] if unmasked(case) else "mi" if case == "mi" else "ssd"


# ------------------------------------------------------------------ the tools
def run_voxalign(F, M, A, brain, case, **kw):
    t0 = time.perf_counter()
    r = vx.register(M, F, moving_affine=A, fixed_affine=A, fixed_mask=brain,
                    transform="affine" if case == "affine" else "rigid", metric=metric_of(case), **kw)
    return r.matrix, time.perf_counter() - t0


def run_voxalign_keepfill(F, M, A, brain, case):
    return run_voxalign(F, M, A, brain, case, skip_fill=False)


def to_sitk(a, A):
    import SimpleITK as sitk
    im = sitk.GetImageFromArray(np.ascontiguousarray(a.transpose(2, 1, 0)))
    # RAS -> LPS; the T1's axes are aligned with the world's
    sp = np.linalg.norm(A[:3, :3], axis=0)
    im.SetSpacing([float(s) for s in sp])
    D = A[:3, :3] / sp
    flip = np.diag([-1, -1, 1])
    im.SetDirection([float(v) for v in (flip @ D).ravel()])
    im.SetOrigin([float(v) for v in flip @ A[:3, 3]])
    return im


def lps_to_ras(M):
    F = np.diag([-1.0, -1.0, 1.0, 1.0])
    return F @ M @ F


def run_sitk(F, M, A, brain, case):
    import SimpleITK as sitk
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(THREADS)
    fi, mi = to_sitk(F, A), to_sitk(M, A)
    tx0 = sitk.Euler3DTransform() if case != "affine" else sitk.AffineTransform(3)
    tx0 = sitk.CenteredTransformInitializer(fi, mi, tx0, sitk.CenteredTransformInitializerFilter.GEOMETRY)
    R = sitk.ImageRegistrationMethod()
    metric = metric_of(case)
    if metric == "mi":
        R.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    elif metric == "ncc":
        R.SetMetricAsCorrelation()
    else:
        R.SetMetricAsMeanSquares()
    R.SetMetricSamplingStrategy(R.REGULAR)
    R.SetMetricSamplingPercentage(0.05, seed=1)
    if brain is not None:
        R.SetMetricFixedMask(sitk.Cast(to_sitk(brain.astype(np.float32), A), sitk.sitkUInt8))
    R.SetInterpolator(sitk.sitkLinear)
    R.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=200,
                                               gradientMagnitudeTolerance=1e-8)
    R.SetOptimizerScalesFromPhysicalShift()
    R.SetShrinkFactorsPerLevel([4, 2, 1])
    R.SetSmoothingSigmasPerLevel([2, 1, 0])
    R.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    R.SetInitialTransform(tx0, inPlace=False)
    t0 = time.perf_counter()
    out = R.Execute(fi, mi)
    dt = time.perf_counter() - t0
    return lps_to_ras(itk_matrix(out)), dt


def itk_matrix(tx):
    """4x4 LPS matrix of a (possibly composite) SimpleITK affine-like transform."""
    import SimpleITK as sitk
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]]) * 50.0
    out = np.array([tx.TransformPoint(tuple(float(v) for v in p)) for p in pts])
    M = np.eye(4)
    M[:3, 3] = out[0]
    M[:3, :3] = (out[1:] - out[0]).T / 50.0
    return M


def run_ants(F, M, A, brain, case):
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(THREADS)
    import ants
    fi = ants.from_nibabel_nifti(nib.Nifti1Image(F, A))
    mi = ants.from_nibabel_nifti(nib.Nifti1Image(M, A))
    mk = None if brain is None else ants.from_nibabel_nifti(nib.Nifti1Image(brain.astype(np.float32), A))
    t0 = time.perf_counter()
    r = ants.registration(fi, mi, type_of_transform="Affine" if case == "affine" else "Rigid",
                          aff_metric={"mi": "mattes", "ncc": "GC", "ssd": "meansquares"}[metric_of(case)], mask=mk)
    dt = time.perf_counter() - t0
    return vx.read_transform(r["fwdtransforms"][0]), dt


def run_torchreg(F, M, A, brain, case):
    import torch
    from torchreg import AffineRegistration
    torch.set_num_threads(THREADS)
    reg = AffineRegistration(scales=(4, 2, 1), iterations=(500, 100, 50), is_3d=True, verbose=False,
                             with_zoom=case == "affine", with_shear=case == "affine")
    mt = torch.from_numpy(np.ascontiguousarray(M))[None, None]
    ft = torch.from_numpy(np.ascontiguousarray(F))[None, None]
    t0 = time.perf_counter()
    reg(mt, ft, return_moved=False)
    dt = time.perf_counter() - t0
    Aff = reg.get_affine()[0].numpy().astype(np.float64)  # normalised (x, y, z) = (k, j, i) coordinates
    n = np.array(F.shape, dtype=np.float64)
    # voxel (i, j, k) -> normalised (k, j, i): u = 2 v / (n - 1) - 1 with the axes reversed
    P = np.zeros((4, 4))
    P[3, 3] = 1
    for a in range(3):
        P[a, 2 - a] = 2.0 / (n[2 - a] - 1)
        P[a, 3] = -1.0
    N = np.eye(4)
    N[:3, :4] = Aff
    V = np.linalg.inv(P) @ N @ P  # fixed voxel -> moving voxel
    return A @ V @ np.linalg.inv(A), dt


TOOLS = {"voxalign": run_voxalign, "voxalign-keepfill": run_voxalign_keepfill, "sitk": run_sitk, "ants": run_ants,
         "torchreg": run_torchreg}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="rigid,affine,mi")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--peers", default="sitk,ants,torchreg")
    a = ap.parse_args()
    vx.set_num_threads(THREADS)
    img = nib.load(T1)
    F = np.asarray(img.get_fdata(dtype=np.float32))
    A = img.affine
    brain = np.asarray(nib.load(BET).dataobj) > 0
    ijk = np.argwhere(brain)[::5]
    pts = (A @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    tools = ["voxalign"] + [p for p in a.peers.split(",") if p]
    print(f"T1 {F.shape}, {a.pairs} pairs per case, {THREADS} threads")
    for case in a.cases.split(","):
        case_tools = tools + (["voxalign-keepfill"] if unmasked(case) else [])
        res = {t: ([], []) for t in case_tools}
        for seed in range(a.pairs):
            if unmasked(case):
                M, T = unmasked_edges.make_pair(F, A, seed)
            else:
                M, T = make_pair(F, A, 1000 + seed, case)
            for t in case_tools:
                if t == "torchreg" and metric_of(case) != "ssd":
                    continue
                try:
                    Me, dt = TOOLS[t](F, M, A, None if unmasked(case) else brain, case)
                except ImportError as e:
                    print(f"  {t}: not installed ({e})")
                    continue
                res[t][0].append(rms_error(Me, T, pts))
                res[t][1].append(dt)
        print(f"\ncase {case} ({'no mask' if unmasked(case) else 'brain mask'}): RMS error over the brain (mm) and "
              "time (s) per pair")
        vt = np.median(res["voxalign"][1])
        ve = np.mean(res["voxalign"][0])
        for t in case_tools:
            errs, times = res[t]
            if not errs:
                continue
            print(f"  {t:17s} error mean {np.mean(errs):.4f} max {np.max(errs):.4f} (x voxalign {np.mean(errs) / ve:6.1f})"
                  f"   time median {np.median(times):7.2f}   x voxalign {np.median(times) / vt:6.1f}"
                  f"   errors {np.round(errs, 4).tolist()}")


if __name__ == "__main__":
    main()
