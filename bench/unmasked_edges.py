"""Issue 21 §5 reproducer: registration of a real T1 without a mask, where the moving image is cut.

Pairs: the fixed image is mricron-data's ch2 (181x217x181, 1 mm; its head touches the field of view,
non-zero voxels on every face, the neck cut at the bottom). The moving image is ch2 moved by a
seeded random rigid transform (a rotation of `--deg` degrees about a random axis and a translation of
`--mm` mm in a random direction, about the image centre) with scipy.ndimage.affine_transform
(order 3, mode 'constant', cval 0: zero outside ch2's grid, so the moving image is cut along the
image of ch2's faces).

Conventions: T is the true pull-back in world (RAS mm), fixed point -> moving point, so that
fixed(x) = moving(T x); the moving image is moving[v] = ch2[V v] with V = A^-1 T^-1 A (A the
voxel -> world affine of both images: scipy's affine_transform is a pull-back in voxel indices).
voxalign.register returns the same kind of pull-back (fixed world -> moving world).

Error: RMS over the brain (ch2bet > 0, every voxel) of |T_est(x) - T(x)| in mm.

Usage:
  python3 bench/unmasked_edges.py [--pairs 4] [--metrics ssd,ncc,mi] [--sitk] [--masked]
  python3 bench/unmasked_edges.py --bands      # where the bias at the truth comes from (ssd)
  python3 bench/unmasked_edges.py --experiments --pairs 2   # the optimum with parts of the samples
                                               # left out through masks (candidate fixes)
Figures: bench/RESULTS.md, "2026-12-04, issue 21 §5". Side by side with SimpleITK and ANTsPy:
bench/bench_register.py --cases unmasked-ssd,unmasked-ncc,unmasked-mi.
"""
import argparse
import os
import sys
import time

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "release", "python"))
import voxalign as vx  # noqa: E402

T1 = "/usr/share/mricron/templates/ch2.nii.gz"
BET = "/usr/share/mricron/templates/ch2bet.nii.gz"


def rotation(axis, angle):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def load():
    img = nib.load(T1)
    F = np.asarray(img.get_fdata(dtype=np.float32))
    brain = np.asarray(nib.load(BET).dataobj) > 0
    return F, img.affine, brain


def make_pair(F, A, seed, deg=10.0, mm=10.0):
    """(moving, T): T the true fixed -> moving world pull-back."""
    rng = np.random.default_rng(seed)
    c = (A @ np.r_[(np.array(F.shape) - 1) / 2.0, 1.0])[:3]
    R = rotation(rng.normal(size=3), np.deg2rad(deg))
    d = rng.normal(size=3)
    t = mm * d / np.linalg.norm(d)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = c + t - R @ c
    V = np.linalg.inv(A) @ np.linalg.inv(T) @ A  # moving voxel -> fixed voxel
    M = ndi.affine_transform(F, V[:3, :3], offset=V[:3, 3], order=3, mode="constant", cval=0.0)
    return M.astype(np.float32), T


def brain_points(A, brain, step=1):
    ijk = np.argwhere(brain)[::step]
    return (A @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]


def rms_error(Te, T, pts):
    P = np.c_[pts, np.ones(len(pts))]
    d = (P @ Te.T)[:, :3] - (P @ T.T)[:, :3]
    return float(np.sqrt((d ** 2).sum(1).mean()))


def run_sitk(F, M, A, metric, mask=None):
    """SimpleITK's registration framework, the bench's settings (bench_register.py), no mask."""
    sys.path.insert(0, HERE)
    from bench_register import run_sitk as rs
    return rs(F, M, A, mask, "mi" if metric == "mi" else "rigid")


def bands(F, A, brain, pairs):
    """Where the SSD bias at the truth comes from: the gradient of the level-1 cost (every voxel, cubic
    B-spline of the moving image as voxalign's estimation uses) at the true transform, split by the
    distance (voxels) of the mapped point from the cut and from the moving grid's edge; each part's
    Gauss-Newton step -H^-1 g_part, as RMS mm over the brain."""
    pts = brain_points(A, brain, 5)
    n = np.array(F.shape)
    idx = np.indices(F.shape).reshape(3, -1).T[::2]  # every second voxel (in raster order)
    fv = F.reshape(-1)[::2].astype(np.float64)
    xw = (A @ np.c_[idx, np.ones(len(idx))].T).T[:, :3]
    for seed in pairs:
        M, T = make_pair(F, A, seed)
        Ai = np.linalg.inv(A)
        p = (Ai @ T @ np.c_[xw, np.ones(len(xw))].T).T[:, :3]  # moving voxel coordinates
        inside = np.all((p >= -0.5) & (p <= n - 0.5), axis=1)
        coef = ndi.spline_filter(M.astype(np.float64), order=3, mode="mirror")
        m = ndi.map_coordinates(coef, p.T, order=3, mode="mirror", prefilter=False)
        # gradient by central differences of the spline (exact enough for a split of the gradient)
        h = 1e-3
        g = np.zeros((len(p), 3))
        for a in range(3):
            e = np.zeros(3)
            e[a] = h
            g[:, a] = (ndi.map_coordinates(coef, (p + e).T, order=3, mode="mirror", prefilter=False) -
                       ndi.map_coordinates(coef, (p - e).T, order=3, mode="mirror", prefilter=False)) / (2 * h)
        r = m - fv
        # distance of the sample itself from the fixed grid's faces = distance of the mapped point from the cut
        dcut = np.min(np.minimum(idx, n - 1 - idx), axis=1)
        dgrid = np.min(np.minimum(p + 0.5, n - 0.5 - p), axis=1)
        # Jacobian of p w.r.t. (translation mm, small rotation rad about the centre) in moving voxels
        c = (A @ np.r_[(n - 1) / 2.0, 1.0])[:3]
        Lm = Ai[:3, :3] @ T[:3, :3]  # d p / d (fixed-side world displacement)
        xc = xw - c
        J = np.zeros((len(p), 6))
        gw = g @ Lm  # d m / d (world displacement before T)
        J[:, :3] = gw
        J[:, 3:] = np.cross(xc, gw)  # d/d omega of (omega x xc) . gw = (xc x gw) . omega
        ok = inside
        H = J[ok].T @ J[ok]
        parts = {
            "cut: sample within 3 voxels of the fixed faces (maps within 3 of the cut)": ok & (dcut < 3),
            "moving grid edge within 3 voxels (not near the cut)": ok & (dcut >= 3) & (dgrid < 3),
            "interior": ok & (dcut >= 3) & (dgrid >= 3),
        }
        print(f"pair {seed}: {ok.sum()} valid samples of {len(p)}; |residual| at the truth:")
        for name, sel in parts.items():
            d = -np.linalg.solve(H, J[sel].T @ r[sel])
            # the step as a world transform composed before T: x -> x + t + omega x (x - c)
            W = np.eye(4)
            Om = np.array([[0, -d[5], d[4]], [d[5], 0, -d[3]], [-d[4], d[3], 0]])
            W[:3, :3] += Om
            W[:3, 3] = d[:3] - Om @ c
            err = rms_error(T @ W, T, pts)
            print(f"  {name:75s} n {sel.sum():8d}  RMS residual {np.sqrt((r[sel] ** 2).mean()):7.2f}  "
                  f"GN step from this part {err:.4f} mm")


def face_band_mask(shape, k):
    """Fixed mask: the grid without its k outer voxel layers."""
    m = np.zeros(shape, bool)
    m[k:shape[0] - k, k:shape[1] - k, k:shape[2] - k] = True
    return m


def data_domain(F, A, T, k):
    """Moving mask: the moving voxels whose source point lies in ch2's grid (where the moving image
    has data, from the known transform), eroded by k voxels (a (2k+1)^3 box)."""
    n = np.array(F.shape)
    V = np.linalg.inv(A) @ np.linalg.inv(T) @ A
    idx = np.indices(F.shape).reshape(3, -1)
    q = V[:3, :3] @ idx + V[:3, 3:4]
    dom = np.all((q >= 0) & (q <= (n - 1)[:, None]), axis=0).reshape(F.shape)
    return ndi.minimum_filter(dom, size=2 * k + 1, mode="constant", cval=0) if k else dom


def experiments(F, A, brain, seeds, metrics):
    """Optimum of the default cost with parts of the samples left out (default pyramid and start)."""
    pts = brain_points(A, brain)
    out = {}
    for seed in seeds:
        M, T = make_pair(F, A, seed)
        cases = [("none", {})]
        cases += [(f"fixed faces -{k}", dict(fixed_mask=face_band_mask(F.shape, k))) for k in (2, 4, 6)]
        cases += [(f"moving data domain -{k}", dict(moving_mask=data_domain(F, A, T, k))) for k in (0, 2, 3, 4)]
        nz = M != 0
        cases += [(f"moving nonzero -{k}", dict(moving_mask=ndi.minimum_filter(nz, size=2 * k + 1, mode="constant", cval=0)))
                  for k in (2, 3)]
        cases += [("degree 1", dict(degree=1))]
        for metric in metrics:
            for name, kw in cases:
                r = vx.register(M, F, moving_affine=A, fixed_affine=A, metric=metric, **kw)
                out.setdefault((metric, name), []).append(rms_error(r.matrix, T, pts))
        print(f"pair {seed} done", flush=True)
    for (metric, name), e in out.items():
        print(f"  {metric:4s} {name:26s} max {max(e):.4f}  errors {' '.join(f'{x:.4f}' for x in e)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--metrics", default="ssd,ncc,mi")
    ap.add_argument("--sitk", action="store_true", help="also SimpleITK, unmasked, same pairs")
    ap.add_argument("--masked", action="store_true", help="also voxalign with the brain mask")
    ap.add_argument("--bands", action="store_true")
    ap.add_argument("--experiments", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    vx.set_num_threads(a.threads)
    F, A, brain = load()
    seeds = list(range(a.first, a.first + a.pairs))
    if a.bands:
        bands(F, A, brain, seeds)
        return
    if a.experiments:
        experiments(F, A, brain, seeds, a.metrics.split(","))
        return
    pts = brain_points(A, brain)
    rows = {}
    for seed in seeds:
        M, T = make_pair(F, A, seed)
        for metric in a.metrics.split(","):
            runs = [("voxalign", None)] + ([("voxalign+brain", brain)] if a.masked else [])
            for name, mask in runs:
                t0 = time.perf_counter()
                r = vx.register(M, F, moving_affine=A, fixed_affine=A, metric=metric, fixed_mask=mask)
                dt = time.perf_counter() - t0
                rows.setdefault((name, metric), []).append((rms_error(r.matrix, T, pts), dt))
            if a.sitk and metric in ("ssd", "mi"):
                Me, dt = run_sitk(F, M, A, metric)
                rows.setdefault(("sitk", metric), []).append((rms_error(Me, T, pts), dt))
        print(f"pair {seed} done", flush=True)
    print("\ntool, metric: RMS error over the brain (mm) per pair; time median (s)")
    for (name, metric), v in rows.items():
        e = [x[0] for x in v]
        print(f"  {name:15s} {metric:4s} max {max(e):.4f}  errors {' '.join(f'{x:.4f}' for x in e)}"
              f"   time {np.median([x[1] for x in v]):.2f}")


if __name__ == "__main__":
    main()
