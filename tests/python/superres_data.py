"""Synthetic thick-slice stacks for the superres tests: an analytic phantom (ellipsoids and small
spheres with 0.5 mm soft edges) sampled by three orthogonal stacks of 1 x 1 x 3 mm voxels with a
Gaussian slice profile (FWHM 3 mm, 15 samples), known rigid motions and Gaussian noise. The phantom
is evaluated directly at every sample point (not through voxalign's own model)."""
import numpy as np
from scipy.spatial.transform import Rotation

# (centre mm, radii mm, value added)
_SHAPES = [((0, 0, 0), (17, 15, 13), 100.0), ((-5, 2, 1), (6, 8, 5), -60.0), ((6, -3, -2), (5, 4, 7), 60.0),
           ((2, 8, 4), (3, 3, 3), 80.0), ((-7, -8, -5), (2.5, 2.5, 2.5), 90.0), ((8, 6, -6), (2, 4, 2), -70.0),
           ((0, -2, 7), (8, 2, 2), 50.0)]


def phantom(P):
    """Phantom values at world points P (..., 3)."""
    out = np.zeros(P.shape[:-1])
    for c, r, v in _SHAPES:
        d = np.sqrt((((P - np.asarray(c, float)) / np.asarray(r, float)) ** 2).sum(-1))
        out += v / (1 + np.exp((d - 1) * min(r) / 0.5 * 2.0))  # edge width about 0.5 mm
    return out


def rigid(angles_deg, t_mm, centre=(0, 0, 0)):
    """Rotation (degrees, xyz Euler) about `centre` then translation: a 4x4 world -> world."""
    T = np.eye(4)
    R = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    c = np.asarray(centre, float)
    T[:3, :3] = R
    T[:3, 3] = c - R @ c + np.asarray(t_mm, float)
    return T


def stack_affine(orientation, n_in=40, n_sl=14, fov=40.0):
    """Voxel -> world of a stack: slices of 3 mm along z (axial), y (coronal) or x (sagittal)."""
    cols = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}[orientation]
    A = np.zeros((4, 4))
    A[3, 3] = 1
    n = [n_in, n_in, n_sl]
    for d, world_axis in enumerate(cols):
        sp = 3.0 if d == 2 else 1.0
        A[world_axis, d] = sp
        A[world_axis, 3] = -(n[d] - 1) / 2 * sp
    return A, tuple(n)


def make_stack(orientation, motion, noise, rng, slice_motions=None):
    """One stack: y(v) = sum_q w_q phantom(T(X_v + z_q n)) + noise. `slice_motions`: one 4x4 per
    slice instead of `motion`."""
    A, n = stack_affine(orientation)
    sigma = 3.0 / 2.3548
    zq = np.linspace(-3 * sigma, 3 * sigma, 15)
    wq = np.exp(-0.5 * (zq / sigma) ** 2)
    wq /= wq.sum()
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in n], indexing="ij")
    X = np.stack([ii, jj, kk, np.ones_like(ii)], -1).astype(float) @ A.T
    normal = A[:3, 2] / np.linalg.norm(A[:3, 2])
    y = np.zeros(n)
    for z, w in zip(zq, wq):
        P = X.copy()
        P[..., :3] += z * normal
        if slice_motions is None:
            Q = P @ motion.T
        else:
            Q = np.einsum("kab,ijkb->ijka", np.asarray(slice_motions), P)
        y += w * phantom(Q[..., :3])
    y += noise * rng.standard_normal(n)
    return y.astype(np.float32), A


MOTIONS = [rigid((0, 0, 0), (0, 0, 0)), rigid((3, -2, 2), (1.0, -0.8, 0.6)), rigid((-2, 3, -3), (-0.7, 1.2, -1.0))]
ORIENTATIONS = ["axial", "coronal", "sagittal"]


def stacks(noise=2.0, seed=0):
    """The three moved stacks: (list of arrays, list of affines, list of true motions)."""
    rng = np.random.default_rng(seed)
    out = [make_stack(o, m, noise, rng) for o, m in zip(ORIENTATIONS, MOTIONS)]
    return [a for a, _ in out], [A for _, A in out], MOTIONS


def naive_average(arrays, affines, out_affine, shape):
    """Each stack interpolated linearly (scipy, no motion correction) on the output grid, averaged."""
    from scipy.ndimage import map_coordinates
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    X = np.stack([ii, jj, kk, np.ones_like(ii)], -1).astype(float) @ np.asarray(out_affine).T
    acc = np.zeros(shape)
    cnt = np.zeros(shape)
    for a, A in zip(arrays, affines):
        v = X @ np.linalg.inv(A).T
        inside = np.all([(v[..., d] >= 0) & (v[..., d] <= a.shape[d] - 1) for d in range(3)], axis=0)
        vals = map_coordinates(a, [v[..., d] for d in range(3)], order=1, mode="nearest")
        acc += np.where(inside, vals, 0)
        cnt += inside
    return acc / np.maximum(cnt, 1)


def truth_on(out_affine, shape):
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    X = np.stack([ii, jj, kk, np.ones_like(ii)], -1).astype(float) @ np.asarray(out_affine).T
    return phantom(X[..., :3])


def psnr_fit(x, truth, region):
    """PSNR (peak = truth's range in the region) after a least-squares linear fit of x to truth."""
    a = np.vstack([x[region], np.ones(region.sum())]).T
    coef, *_ = np.linalg.lstsq(a, truth[region], rcond=None)
    err = a @ coef - truth[region]
    peak = truth[region].max() - truth[region].min()
    return 10 * np.log10(peak ** 2 / np.mean(err ** 2))


def motion_rms(est_pullback, true_motion, points):
    """RMS over world points (N, 3) of |est(p) - true^-1(p)| in mm; est is the output -> stack pull-back."""
    P = np.hstack([points, np.ones((len(points), 1))])
    d = P @ np.asarray(est_pullback).T - P @ np.linalg.inv(true_motion).T
    return float(np.sqrt(np.mean(np.sum(d[:, :3] ** 2, 1))))
