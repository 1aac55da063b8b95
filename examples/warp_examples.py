"""Worked inverse problems with voxalign's warp operators: exact adjoints and derivatives against
the usual approximations. Run `python3 examples/warp_examples.py` (full size; figures in
docs/warp.md); tests/python/test_warp_examples.py runs each at a small size.

1. rigid_motion: recover a 3D rigid motion (rotation 0.3, 0.2, 0.1 rad; translation 25, -10, 15
   voxels) of a phantom by Gauss-Newton, with the exact parameter derivatives and with the
   finite-difference gradient of the warped image.
2. epi_distortion: from a real EPI volume, simulate a blip-up/blip-down pair with a known smooth
   field along the phase-encode axis (with the Jacobian intensity modulation) and recover the
   field by regularised least squares (Andersson et al. 2003), exact vs approximate derivatives.
3. image_recovery: recover an image from a warped, noisy copy by CG on the normal equations with
   the exact adjoint and with the -u approximation.
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "release", "python"))
import voxalign as vx  # noqa: E402


def smooth(a, sigma):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma) if sigma > 0 else a


# ---------------------------------------------------------------- 1. rigid motion


def phantom(n):
    g = np.meshgrid(*[np.arange(n, dtype=float) - (n - 1) / 2] * 3, indexing="ij")
    r = n / 96.0  # object scale: fits the grid after the prescribed motion
    img = np.zeros((n,) * 3)
    for c, ax, v in (((0, 0, 0), (20, 15, 12), 1.0), ((6, -4, 2), (8, 5, 6), 0.8), ((-7, 5, -3), (5, 7, 4), -0.6),
                     ((2, 8, 6), (4, 3, 5), 0.5)):
        q = sum(((gi - ci * r) / (ai * r)) ** 2 for gi, ci, ai in zip(g, c, ax))
        img += v * (q < 1)
    return img


def rigid_motion(n=96, exact=True, levels=(4.0, 2.0, 1.0, 0.0), max_iterations=40):
    """Returns (estimated parameters, true parameters, iterations per level, RMS displacement
    error over the object in voxels)."""
    fixed = phantom(n)
    model = vx.AffineModel((n,) * 3, ["translation", "rotation"])
    truth = np.r_[np.array([25.0, -10.0, 15.0]) * n / 96.0, 0.3, 0.2, 0.1]
    # moving = fixed seen through the inverse motion, so that warping moving by `truth` gives fixed
    moving = vx.affine_warp(fixed, np.linalg.inv(model.matrix(truth)), None, 3, "constant")
    theta = np.zeros(model.size)
    its = []
    for sigma in levels:
        f_s, m_s = smooth(fixed, sigma), smooth(moving, sigma)

        def normal(th):
            w = vx.affine_warp(m_s, model.matrix(th), None, 3, "constant")
            r = (w - f_s).ravel()
            if exact:
                J = np.stack([vx.affine_param_jvp(m_s, model, th, np.eye(model.size)[j], None, 3, "constant").ravel()
                              for j in range(model.size)], 1)
            else:  # gradient of the warped image (output coordinates) times dp/dtheta
                grad = vx._core.fd_gradient(w)
                idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float)] * 3, indexing="ij"), -1)
                J = np.stack([np.einsum("...d,...d->...", grad, idx @ dM[:3, :3].T + dM[:3, 3]).ravel()
                              for dM in model.jacobian(th)], 1)
            return 0.5 * r @ r, J.T @ J, J.T @ r

        res = vx.gauss_newton(normal, theta, max_iterations=max_iterations, tol=1e-6)
        theta = res["x"]
        its.append(res["iterations"])
    # RMS displacement error over the object
    obj = np.argwhere(fixed != 0).astype(float)
    d = (obj @ (model.matrix(theta) - model.matrix(truth))[:3, :3].T + (model.matrix(theta) - model.matrix(truth))[:3, 3])
    return theta, truth, its, float(np.sqrt((d ** 2).sum(1).mean()))


# ---------------------------------------------------------------- 3. image recovery


def image_recovery(n=64, exact=True, iterations=30, noise=0.01, lam=1e-3, seed=0):
    """Recover x from y = M x + noise by CG on (M^T M + lam) x = M^T y. Returns (relative residual
    of the normal equations after each iteration, relative error of x against the truth)."""
    from scipy.sparse.linalg import LinearOperator, cg

    rng = np.random.default_rng(seed)
    shape = (n, n, n)
    truth = smooth(phantom(n), 1.0)
    g = np.meshgrid(*[np.arange(n, dtype=float)] * 3, indexing="ij")
    u = np.stack([2.5 * np.sin(g[1] / 7), 2.0 * np.cos(g[2] / 9), 1.5 * np.sin((g[0] + g[2]) / 11)], -1)
    y = vx.warp(truth, u, 3, "constant") + noise * rng.standard_normal(shape)
    fwd = lambda v: vx.warp(v.reshape(shape, order="F"), u, 3, "constant").ravel(order="F")  # noqa: E731
    if exact:
        adj = lambda v: vx.adjoint_warp(v.reshape(shape, order="F"), u, shape, 3, "constant").ravel(order="F")  # noqa: E731
    else:
        adj = lambda v: vx.approx.approx_adjoint_warp(v.reshape(shape, order="F"), u, 3, "constant").ravel(order="F")  # noqa: E731
    N = LinearOperator((truth.size,) * 2, matvec=lambda v: adj(fwd(v)) + lam * v, dtype=np.float64)
    b = adj(y.ravel(order="F"))
    # residuals of the true normal equations (exact adjoint), whatever operator CG was given
    true_adj = lambda v: vx.adjoint_warp(v.reshape(shape, order="F"), u, shape, 3, "constant").ravel(order="F")  # noqa: E731
    b_true = true_adj(y.ravel(order="F"))
    hist = []

    def cb(xk):
        r = true_adj(fwd(xk)) + lam * xk - b_true
        hist.append(float(np.linalg.norm(r) / np.linalg.norm(b_true)))

    x, _ = cg(N, b, maxiter=iterations, rtol=1e-12, callback=cb)
    err = float(np.linalg.norm(x - truth.ravel(order="F")) / np.linalg.norm(truth))
    return hist, err


# ---------------------------------------------------------------- 2. EPI distortion


def epi_volume():
    import nibabel as nib
    from nibabel.testing import data_path

    img = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    return np.asarray(img.dataobj[..., 0], dtype=np.float64)


def epi_distortion(exact=True, iterations=150, alpha=0.5, pe_axis=1, amplitude=2.0, data=None):
    """Blip-up/down distortion correction. Returns (relative field error inside the brain, final
    relative residual between the corrected pair, iterations run)."""
    f = epi_volume() if data is None else data
    f = f / np.percentile(f, 99)
    shape = f.shape
    g = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    b_true = amplitude * np.exp(-((g[0] - 0.2) ** 2 + (g[1] + 0.1) ** 2) / 0.3) * (1 + 0.3 * g[2])  # voxels along PE

    def along_pe(b):
        u = np.zeros(shape + (3,))
        u[..., pe_axis] = b
        return u

    def dpe(b):  # derivative along the PE axis (central differences) and its transpose
        return vx._core.fd_gradient(np.ascontiguousarray(b))[..., pe_axis]

    def dpe_T(v):
        # adjoint of the central-difference derivative used in dpe (one-sided at the edges)
        out = np.zeros_like(v)
        n = v.shape[pe_axis]
        sl = lambda i: tuple(slice(i, i + 1) if a == pe_axis else slice(None) for a in range(3))  # noqa: E731
        for i in range(n):
            lo, hi = max(i - 1, 0), min(i + 1, n - 1)
            w = v[sl(i)] / (hi - lo)
            out[sl(hi)] += w
            out[sl(lo)] -= w
        return out

    # The acquisitions: blip up moves the intensity at x to x + b(x), blip down to x - b(x), the
    # total intensity conserved: up(y) = f(x(y)) |dx/dy| with x(y) = y + v(y), v the inverse field.
    def acquire(sign):
        v = vx.invert_field(along_pe(sign * b_true), 3, iterations=100, tol=1e-8)
        return vx.warp(f, v, 3, "nearest") * (1 + dpe(v[..., pe_axis]))

    up, down = acquire(1.0), acquire(-1.0)
    mask = smooth(f, 1.0) > 0.1

    def objective(b):
        wu, gu = vx.warp_gradient(up, along_pe(b), 3, "nearest")
        wd, gd = vx.warp_gradient(down, along_pe(-b), 3, "nearest")
        if not exact:  # approximate derivative: gradient of the warped images
            gu = vx._core.fd_gradient(np.ascontiguousarray(wu))
            gd = vx._core.fd_gradient(np.ascontiguousarray(wd))
        db = dpe(b)
        cu, cd = wu * (1 + db), wd * (1 - db)  # corrected images
        r = cu - cd
        # d cu / db = gu_pe (1 + db) + wu * D;  d cd / db = -gd_pe (1 - db) - wd * D
        grad_b = r * (gu[..., pe_axis] * (1 + db) + gd[..., pe_axis] * (1 - db)) + dpe_T(r * (wu + wd))
        reg = sum(np.sum(np.diff(b, axis=a) ** 2) for a in range(3))
        greg = np.zeros(shape)
        for a in range(3):
            dd = np.diff(b, axis=a)
            pad_lo = [(0, 0)] * 3
            pad_hi = [(0, 0)] * 3
            pad_lo[a] = (1, 0)
            pad_hi[a] = (0, 1)
            greg += np.pad(dd, pad_lo) - np.pad(dd, pad_hi)
        return 0.5 * float(np.vdot(r, r)) + 0.5 * alpha * reg, grad_b + alpha * greg

    res = vx.bb_minimize(objective, np.zeros(shape), max_iterations=iterations, tol=1e-8, line_search=True)
    b = res["x"]
    ferr = float(np.linalg.norm((b - b_true)[mask]) / np.linalg.norm(b_true[mask]))
    wu = vx.warp(up, along_pe(b), 3, "nearest") * (1 + dpe(b))
    wd = vx.warp(down, along_pe(-b), 3, "nearest") * (1 - dpe(b))
    resid = float(np.linalg.norm((wu - wd)[mask]) / np.linalg.norm(up[mask] - down[mask]))
    return ferr, resid, res["iterations"]


def main():
    print("== 1. rigid motion recovery, 96^3 phantom, rotation (0.3, 0.2, 0.1) rad, translation (25, -10, 15) vox")
    for exact in (True, False):
        t = time.perf_counter()
        th, truth, its, rms = rigid_motion(96, exact)
        print(f"   {'exact' if exact else 'approximate'} derivatives: GN iterations per level {its} "
              f"(total {sum(its)}), RMS displacement error {rms:.2e} voxels, parameter error "
              f"{np.abs(th - truth).max():.2e}, {time.perf_counter() - t:.1f} s")
    print("== 2. EPI blip-up/down distortion correction (nibabel example4d.nii.gz, frame 0)")
    for exact in (True, False):
        t = time.perf_counter()
        ferr, resid, its = epi_distortion(exact)
        print(f"   {'exact' if exact else 'approximate'} derivatives: field error {ferr:.3f} (relative, in the brain), "
              f"corrected-pair residual {resid:.3f} of the uncorrected, {its} BB iterations, {time.perf_counter() - t:.1f} s")
    print("== 3. image recovery from a warped noisy copy (64^3), CG on the normal equations, 30 iterations")
    for exact in (True, False):
        hist, err = image_recovery(64, exact)
        print(f"   {'exact adjoint' if exact else '-u approximation'}: normal-equation residual after 5/15/30 iterations "
              f"{hist[4]:.2e} / {hist[14]:.2e} / {hist[-1]:.2e}, error against the truth {err:.3f}")


if __name__ == "__main__":
    main()
