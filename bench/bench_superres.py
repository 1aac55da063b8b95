"""Super-resolution reconstruction (voxalign superres) on stacks simulated from a real 0.5 mm T1.

Truth: mricron-data's ch2better (0.5 mm), a brain region of 80 x 100 x 66 mm averaged to 1 mm
(528,000 voxels). Stacks: four (axial, coronal, sagittal, oblique axial tilted 20 deg) of 1 x 1 x 3 mm
voxels covering that region, each simulated from the 0.5 mm image (cubic B-spline, scipy.ndimage)
smoothed in plane (FWHM 1 mm) and integrated along the slice normal with a Gaussian profile (FWHM
3 mm, 15 samples), under a known rigid motion (stack 1 still; the others a few degrees and mm), plus
Gaussian noise (2 % of the brain's 99th percentile). This simulation does not use voxalign's model.

Reported, PSNR in the brain (truth > 10 % of its 99th percentile) after a least-squares linear fit of
each image to the truth:
  recon        voxalign superres (default options, 2 threads)
  naive        the stacks interpolated (cubic) on the output grid without motion correction, averaged
  aligned avg  the same with each stack's estimated motion (what registration alone gives)
  ref stack    the first stack alone, interpolated (cubic)
  best stack   the best single stack, interpolated with its TRUE motion
motion error: RMS over each stack's brain voxels of |estimated - true| (mm); time: the superres call.
--slice-motion case: every slice of stacks 2-4 moves on its own (+-2 deg, +-1 mm about the stack's
motion); error per slice, RMS over the slices with data inside the output grid (slices whose profile
leaves the grid keep their stack's motion; the RMS over all slices is printed too). NiftyMIC and SVRTK are not installable here (no peer run).

python3 bench/bench_superres.py [--seeds 0 1] [--png bench/superres_slices.png]
"""
import argparse
import time

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

import voxalign as vx

T1 = "/usr/share/mricron/templates/ch2better.nii.gz"


def rigid(angles_deg, t_mm, centre):
    T = np.eye(4)
    R = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    T[:3, :3] = R
    T[:3, 3] = centre - R @ centre + np.asarray(t_mm, float)
    return T


def load_truth():
    img = nib.load(T1)
    a = np.asarray(img.dataobj, dtype=np.float32)
    A = img.affine
    # brain region: 80 x 100 x 66 mm around the centre of the head's bounding box (1 mm voxels)
    idx = np.argwhere(a > np.percentile(a, 60))
    c = (idx.min(0) + idx.max(0)) // 2
    size_mm = np.array([80, 100, 66])
    lo = c - size_mm  # 0.5 mm voxels: size_mm * 2 / 2
    src = a[lo[0]:lo[0] + 2 * size_mm[0], lo[1]:lo[1] + 2 * size_mm[1], lo[2]:lo[2] + 2 * size_mm[2]]
    truth = src.reshape(size_mm[0], 2, size_mm[1], 2, size_mm[2], 2).mean((1, 3, 5))
    A_src = A.copy()
    A_src[:3, 3] = A[:3, :3] @ lo + A[:3, 3]
    A_truth = A_src.copy()
    A_truth[:3, :3] = A_src[:3, :3] * 2
    A_truth[:3, 3] = A_src[:3, :3] @ np.array([0.5, 0.5, 0.5]) + A_src[:3, 3]
    # the 0.5 mm source with a margin (for moved samples), smoothed in plane (FWHM 1 mm = 2 voxels)
    m = 24
    big = a[lo[0] - m:lo[0] + 2 * size_mm[0] + m, lo[1] - m:lo[1] + 2 * size_mm[1] + m,
            lo[2] - m:lo[2] + 2 * size_mm[2] + m]
    big = ndimage.gaussian_filter(big, 2 / 2.3548)
    A_big = A.copy()
    A_big[:3, 3] = A[:3, :3] @ (lo - m) + A[:3, 3]
    coef = ndimage.spline_filter(big, order=3)
    return truth, A_truth, coef, A_big


def stack_geometry(kind, A_truth, shape):
    """Stack voxel->world: 1 x 1 x 3 mm covering the truth's box, slices along its kind's axis."""
    R = np.eye(3)
    if kind == "oblique":
        R = Rotation.from_euler("x", 20, degrees=True).as_matrix()
    cols = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0), "oblique": (0, 1, 2)}[kind]
    centre = A_truth[:3, :3] @ ((np.array(shape) - 1) / 2) + A_truth[:3, 3]
    ext = np.array(shape, float)  # mm
    dirs = R @ np.diag(np.sign(np.diag(A_truth[:3, :3])))
    n, sp, D = [], [], np.zeros((3, 3))
    for d, ax in enumerate(cols):
        s = 3.0 if d == 2 else 1.0
        n.append(int(np.ceil(ext[ax] / s)))
        sp.append(s)
        D[:, d] = dirs[:, ax] * s
    n = np.array(n)
    A = np.eye(4)
    A[:3, :3] = D
    A[:3, 3] = centre - D @ ((n - 1) / 2)
    return A, tuple(int(v) for v in n)


def simulate(kind, T, coef, A_big, A_truth, shape, noise, rng, slice_T=None):
    A, n = stack_geometry(kind, A_truth, shape)
    sigma = 3.0 / 2.3548
    zq = np.linspace(-3 * sigma, 3 * sigma, 15)
    wq = np.exp(-0.5 * (zq / sigma) ** 2)
    wq /= wq.sum()
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in n], indexing="ij")
    X = np.stack([ii, jj, kk, np.ones_like(ii)], -1).astype(float) @ A.T
    normal = A[:3, 2] / np.linalg.norm(A[:3, 2])
    Binv = np.linalg.inv(A_big)
    y = np.zeros(n)
    for z, w in zip(zq, wq):
        P = X.copy()
        P[..., :3] += z * normal
        Q = P @ T.T if slice_T is None else np.einsum("kab,ijkb->ijka", slice_T, P)
        v = Q @ Binv.T
        y += w * ndimage.map_coordinates(coef, [v[..., 0], v[..., 1], v[..., 2]], order=3, prefilter=False,
                                         mode="nearest")
    y += noise * rng.standard_normal(n)
    return y.astype(np.float32), A


def interp_on(stack, A_stack, A_out, shape, T=np.eye(4)):
    """stack sampled (cubic) at the output voxels' world points moved by the pull-back T (output world ->
    stack world); (values, inside)."""
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    X = np.stack([ii, jj, kk, np.ones_like(ii)], -1).astype(float) @ A_out.T @ T.T @ np.linalg.inv(A_stack).T
    inside = np.all([(X[..., d] >= -0.5) & (X[..., d] <= stack.shape[d] - 0.5) for d in range(3)], axis=0)
    v = ndimage.map_coordinates(stack, [X[..., d] for d in range(3)], order=3, mode="nearest")
    return np.where(inside, v, 0), inside


def psnr_fit(x, truth, region):
    a = np.vstack([x[region], np.ones(region.sum())]).T
    coef, *_ = np.linalg.lstsq(a, truth[region], rcond=None)
    err = a @ coef - truth[region]
    peak = np.percentile(truth[region], 99.5) - truth[region].min()
    return 10 * np.log10(peak ** 2 / np.mean(err ** 2))


def motion_err(est_pullback, T_true, X):
    """RMS of |est(T_true(X)) - X| over stack-world points X (N, 3)."""
    P = np.hstack([X, np.ones((len(X), 1))])
    d = P @ T_true.T @ est_pullback.T - P
    return float(np.sqrt(np.mean(np.sum(d[:, :3] ** 2, 1))))


def brain_points(stack, A, sl=None, thr=None):
    idx = np.argwhere(stack > thr)
    if sl is not None:
        idx = idx[idx[:, 2] == sl]
    return (np.hstack([idx, np.ones((len(idx), 1))]) @ A.T)[:, :3]


def run_case(seed, slice_motion, data, args):
    truth, A_truth, coef, A_big = data
    rng = np.random.default_rng(seed)
    p99 = np.percentile(truth, 99)
    noise = 0.02 * p99
    centre = A_truth[:3, :3] @ ((np.array(truth.shape) - 1) / 2) + A_truth[:3, 3]
    kinds = ["axial", "coronal", "sagittal", "oblique"]
    motions, stacks, affines, slice_Ts = [], [], [], []
    for k, kind in enumerate(kinds):
        T = np.eye(4) if k == 0 else rigid(rng.uniform(-4, 4, 3), rng.uniform(-3, 3, 3), centre)
        sT = None
        if slice_motion and k > 0:
            nsl = stack_geometry(kind, A_truth, truth.shape)[1][2]
            sT = np.array([rigid(rng.uniform(-2, 2, 3), rng.uniform(-1, 1, 3), centre) @ T for _ in range(nsl)])
        y, A = simulate(kind, T, coef, A_big, A_truth, truth.shape, noise, rng, sT)
        motions.append(T), stacks.append(y), affines.append(A), slice_Ts.append(sT)
    vx.set_num_threads(args.threads)
    t0 = time.perf_counter()
    r = vx.superres(stacks, affines=affines, slice_motion=slice_motion, iterations=8 if slice_motion else 3)
    secs = time.perf_counter() - t0
    x = r.image
    # the reconstruction's grid is the first stack's field of view at 1 mm; the truth on it
    tv, tin = interp_on(truth, A_truth, r.affine, x.shape)
    region = tin & (tv > 0.1 * p99)
    # keep away from the edges of the truth's box
    region &= ndimage.binary_erosion(tin, iterations=3)
    naive_sum, naive_n, al_sum, al_n, singles = 0, 0, 0, 0, []
    for k in range(len(stacks)):
        v, inside = interp_on(stacks[k], affines[k], r.affine, x.shape)
        naive_sum = naive_sum + v
        naive_n = naive_n + inside
        est = r.transforms[k][len(r.transforms[k]) // 2]
        v2, in2 = interp_on(stacks[k], affines[k], r.affine, x.shape, est)
        al_sum, al_n = al_sum + v2, al_n + in2
        vt, _ = interp_on(stacks[k], affines[k], r.affine, x.shape, np.linalg.inv(motions[k]))
        singles.append(psnr_fit(vt, tv, region))
    naive = naive_sum / np.maximum(naive_n, 1)
    aligned = al_sum / np.maximum(al_n, 1)
    ref, _ = interp_on(stacks[0], affines[0], r.affine, x.shape)
    res = dict(recon=psnr_fit(x, tv, region), naive=psnr_fit(naive, tv, region),
               aligned=psnr_fit(aligned, tv, region), ref=psnr_fit(ref, tv, region), best=max(singles), secs=secs,
               voxels=int(np.prod(x.shape)))
    errs, errs_all = [], []
    thr = 0.1 * p99
    for k in range(1, len(stacks)):
        if not slice_motion:
            errs.append(motion_err(r.transforms[k][0], motions[k], brain_points(stacks[k], affines[k], None, thr)))
        else:
            for s in range(stacks[k].shape[2]):
                X = brain_points(stacks[k], affines[k], s, thr)
                if len(X) > 200:
                    e = motion_err(r.transforms[k][r.slice_group[k][s]], slice_Ts[k][s], X)
                    errs_all.append(e)
                    # slices with data inside the output grid (the others keep their stack's motion)
                    if r.slice_voxels[k][s] >= 200:
                        errs.append(e)
    res["motion_rms"] = float(np.sqrt(np.mean(np.square(errs))))
    res["motion_all"] = float(np.sqrt(np.mean(np.square(errs_all)))) if errs_all else res["motion_rms"]
    res["slices"] = (len(errs), len(errs_all))
    res["outliers"] = int(sum(w < 0.5 for ws in r.slice_weights for w in ws))
    return res, (tv, naive, x, region)


def save_png(path, tv, naive, x, region):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = np.vstack([x[region], np.ones(region.sum())]).T
    c, *_ = np.linalg.lstsq(a, tv[region], rcond=None)
    xf = x * c[0] + c[1]
    a = np.vstack([naive[region], np.ones(region.sum())]).T
    c, *_ = np.linalg.lstsq(a, tv[region], rcond=None)
    nf = naive * c[0] + c[1]
    vmax = np.percentile(tv, 99.5)
    fig, ax = plt.subplots(2, 3, figsize=(7.5, 5.6), dpi=72)
    mid = [s // 2 for s in tv.shape]
    for col, (name, im) in enumerate([("truth (1 mm)", tv), ("naive average", nf), ("voxalign superres", xf)]):
        ax[0, col].imshow(np.rot90(im[:, :, mid[2]]), cmap="gray", vmin=0, vmax=vmax)
        ax[1, col].imshow(np.rot90(im[mid[0], :, :]), cmap="gray", vmin=0, vmax=vmax)
        ax[0, col].set_title(name, fontsize=9)
        for r in range(2):
            ax[r, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=72)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--png", default="bench/superres_slices.png")
    ap.add_argument("--no-slice-motion", action="store_true")
    args = ap.parse_args()
    data = load_truth()
    print(f"truth {data[0].shape} at 1 mm from {T1}")
    print(f"{'case':<18}{'voxels':>8}{'recon':>8}{'naive':>8}{'aligned':>8}{'ref':>7}{'best':>7}"
          f"{'d naive':>9}{'d ref':>7}{'motion mm':>10}{'outl':>5}{'time s':>8}")
    cases = [(s, False) for s in args.seeds] + ([] if args.no_slice_motion else [(args.seeds[0], True)])
    for seed, sm in cases:
        res, imgs = run_case(seed, sm, data, args)
        name = f"seed {seed}" + (" slice-motion" if sm else "")
        print(f"{name:<18}{res['voxels']:>8}{res['recon']:>8.2f}{res['naive']:>8.2f}{res['aligned']:>8.2f}"
              f"{res['ref']:>7.2f}{res['best']:>7.2f}{res['recon'] - res['naive']:>+9.2f}{res['recon'] - res['ref']:>+7.2f}"
              f"{res['motion_rms']:>10.3f}{res['outliers']:>5}{res['secs']:>8.1f}", flush=True)
        if sm:
            print(f"  slice motion: RMS {res['motion_rms']:.3f} mm over the {res['slices'][0]} moving slices with data in "
                  f"the output grid; {res['motion_all']:.3f} mm over all {res['slices'][1]} with brain", flush=True)
        if args.png and seed == args.seeds[0] and not sm:
            save_png(args.png, *imgs)


if __name__ == "__main__":
    main()
