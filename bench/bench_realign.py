"""Realign benchmark: voxalign realign vs SimpleITK (rigid registration of each frame), ANTsPy's
motion_correction and nipy's Realign4d (when installed) on the same simulated series, one run.
Figures go to bench/RESULTS.md.

Series: the real T1 (mricron-data ch2) resampled to an EPI-like 64x64x36 grid of 3 x 3.4 x 4 mm
centred on the head, then a random rigid motion per frame (up to 2 mm and 2 degrees; frame 0
unmoved) plus Gaussian noise (1 % of the brain's intensity). Every tool registers every frame to
frame 0. Accuracy: per frame, the RMS over the brain of |E_t E_0^-1 x - T_t x| (mm); time: the
estimation alone, in memory, 2 threads; voxalign also "estimated and resliced" (degree 4) for 200
frames (the issue's 3 s target).

Peers and settings:
  sitk   ImageRegistrationMethod per frame: Euler3DTransform about the centre, MeanSquares, linear
         interpolation, all voxels, Gaussian smoothing 2.1 mm (voxalign's 5 mm FWHM), one level,
         RegularStepGradientDescent (scales from physical shift), identity start.
  ants   ants.motion_correction(series, fixed=frame 0, type_of_transform="Rigid") (ANTs' defaults:
         mattes metric, its own sampling).
  nipy   Realign4d(series, tr=2) without slice timing, estimate(refscan=0) with nipy's defaults
         (speedup 5, 5 loops, conjugate gradient), when `import nipy` works.

Peers not installed by `make deps` (bench only): python3 -m pip install antspyx nipy
(a missing peer is reported and skipped).

Usage: python3 bench/bench_realign.py [--frames 200] [--peer-frames 30] [--peers sitk,ants,nipy]
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
import voxalign as vx  # noqa: E402
from test_register import about, euler  # noqa: E402

T1 = "/usr/share/mricron/templates/ch2.nii.gz"
THREADS = 2


def epi_like():
    img = nib.load(T1)
    F = np.asarray(img.get_fdata(dtype=np.float32))
    shape = (64, 64, 36)
    A = np.diag([3.0, 3.4, 4.0, 1.0])
    c = (img.affine @ np.r_[(np.array(F.shape) - 1) / 2, 1])[:3]
    A[:3, 3] = c - A[:3, :3] @ ((np.array(shape) - 1) / 2)
    vol = vx.resample(F, img.affine, shape, A, degree=3, mode="grid-constant")
    return np.asarray(vol, dtype=np.float32), A


def simulate(vol, A, n, seed=0):
    rng = np.random.default_rng(seed)
    c = (A @ np.r_[(np.array(vol.shape) - 1) / 2, 1])[:3]
    Ts = [np.eye(4)]
    for _ in range(n - 1):
        t = rng.uniform(-1, 1, 3)
        t *= rng.uniform(0, 2) / max(np.linalg.norm(t), 1e-9)
        Ts.append(about(euler(*np.deg2rad(rng.uniform(-2, 2, 3))), t, c))
    noise = 0.01 * np.percentile(vol, 99)
    frames = [vx.resample(vol, A, vol.shape, A, transform=np.linalg.inv(T), degree=3, mode="nearest") for T in Ts]
    data = np.stack(frames, axis=3) + rng.normal(0, noise, vol.shape + (n,))
    return np.asfortranarray(data, dtype=np.float32), Ts


def errors(mats, Ts, vol, A):
    brain = vol > 0.3 * np.percentile(vol, 99)
    ijk = np.argwhere(brain)
    X = np.c_[(A @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3], np.ones(len(ijk))]
    E0 = np.linalg.inv(mats[0])
    return np.array([np.sqrt((((X @ (E @ E0).T) - X @ T.T)[:, :3] ** 2).sum(1).mean()) for E, T in zip(mats, Ts)])


def run_voxalign(data, A):
    t0 = time.perf_counter()
    r = vx.realign(data, A, ref="first")
    return list(r.matrices), time.perf_counter() - t0


def to_sitk(a, A):
    import SimpleITK as sitk
    im = sitk.GetImageFromArray(np.ascontiguousarray(a.transpose(2, 1, 0)))
    sp = np.linalg.norm(A[:3, :3], axis=0)
    im.SetSpacing([float(s) for s in sp])
    flip = np.diag([-1, -1, 1])
    im.SetDirection([float(v) for v in (flip @ (A[:3, :3] / sp)).ravel()])
    im.SetOrigin([float(v) for v in flip @ A[:3, 3]])
    return im


def run_sitk(data, A):
    import SimpleITK as sitk
    from bench_register import itk_matrix, lps_to_ras
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(THREADS)
    fixed = sitk.SmoothingRecursiveGaussian(to_sitk(data[..., 0], A), 2.12)
    mats = [np.eye(4)]
    t0 = time.perf_counter()
    for t in range(1, data.shape[3]):
        moving = sitk.SmoothingRecursiveGaussian(to_sitk(data[..., t], A), 2.12)
        tx0 = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.GEOMETRY)
        R = sitk.ImageRegistrationMethod()
        R.SetMetricAsMeanSquares()
        R.SetInterpolator(sitk.sitkLinear)
        R.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200,
                                                   gradientMagnitudeTolerance=1e-8)
        R.SetOptimizerScalesFromPhysicalShift()
        R.SetInitialTransform(tx0, inPlace=False)
        mats.append(lps_to_ras(itk_matrix(R.Execute(fixed, moving))))
    return mats, time.perf_counter() - t0


def run_ants(data, A):
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(THREADS)
    import ants
    img = ants.from_nibabel_nifti(nib.Nifti1Image(data, A))
    fixed = ants.from_nibabel_nifti(nib.Nifti1Image(np.ascontiguousarray(data[..., 0]), A))
    t0 = time.perf_counter()
    out = ants.motion_correction(img, fixed=fixed, type_of_transform="Rigid")
    dt = time.perf_counter() - t0
    mats = [vx.read_transform(p[0]) for p in out["motion_parameters"]]
    return mats, dt


def run_nipy(data, A):
    from nipy.algorithms.registration import Realign4d
    t0 = time.perf_counter()
    R = Realign4d(nib.Nifti1Image(data, A), tr=2.0)  # no slice timing: motion only
    R.estimate(refscan=0)
    dt = time.perf_counter() - t0
    # Rigid.as_affine(): world (RAS mm) pull-back from the reference scan to each scan (checked
    # against the known motion: the inverse gives errors of several mm)
    return [np.asarray(T.as_affine()) for T in R._transforms[0]], dt


TOOLS = {"voxalign": run_voxalign, "sitk": run_sitk, "ants": run_ants, "nipy": run_nipy}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--peer-frames", type=int, default=30)
    ap.add_argument("--peers", default="sitk,ants,nipy")
    a = ap.parse_args()
    vx.set_num_threads(THREADS)
    vol, A = epi_like()
    # 200 frames: estimate + reslice (the 3 s target) and estimate only
    data, Ts = simulate(vol, A, a.frames)
    t0 = time.perf_counter()
    r = vx.realign(data, A, reslice=True)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    r2 = vx.realign(data, A, ref="first")
    t_est = time.perf_counter() - t0
    e = errors(list(r.matrices), Ts, vol, A)
    e2 = errors(list(r2.matrices), Ts, vol, A)
    print(f"series {vol.shape} x {a.frames} frames, {THREADS} threads")
    print(f"  voxalign ref=mean, estimate + reslice (degree 4): {t_full:.2f} s; error mean {e.mean():.4f} max {e.max():.4f} mm")
    print(f"  voxalign ref=first, estimate only:                {t_est:.2f} s; error mean {e2.mean():.4f} max {e2.max():.4f} mm")
    # peers on the first peer-frames frames, everyone to frame 0
    n = a.peer_frames
    sub, Tsub = np.asfortranarray(data[..., :n]), Ts[:n]
    res = {}
    for tool in ["voxalign"] + [p for p in a.peers.split(",") if p]:
        try:
            mats, dt = TOOLS[tool](sub, A)
        except ImportError as ex:
            print(f"  {tool}: not installed ({ex})")
            continue
        except Exception as ex:  # a peer failing is reported, not fatal
            print(f"  {tool}: failed ({type(ex).__name__}: {ex})")
            continue
        res[tool] = (errors(mats, Tsub, vol, A), dt)
    print(f"\n{n} frames, every frame to frame 0: RMS error over the brain (mm), time per frame")
    vt = res["voxalign"][1]
    for tool, (err, dt) in res.items():
        print(f"  {tool:9s} error mean {err[1:].mean():.4f} max {err[1:].max():.4f}   time {dt:7.2f} s"
              f" ({1000 * dt / (n - 1):6.1f} ms/frame)   x voxalign {dt / vt:6.1f}")


if __name__ == "__main__":
    main()
