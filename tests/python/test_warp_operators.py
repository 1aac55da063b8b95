"""Warping operators: exact adjoints (dot tests and explicit transposes), derivatives with respect
to the displacement field (JVP against central differences, VJP against JVP), determinism.

Dot test bar (issue 3): |<Mx, y> - <x, M^T y>| <= 1e-12 ||Mx|| ||y|| in float64, 1e-5 in float32.
"""
import numpy as np
import pytest

import voxalign as vx
from conftest import adjoint_over_threads, stable_seed

DEGREES = [0, 1, 2, 3, 4, 5, "keys"]
SHAPES = {2: (23, 19), 3: (13, 11, 9)}


def dot_error(Mx, y, x, Mty):
    a = np.vdot(Mx.astype(np.float64), y.astype(np.float64))
    b = np.vdot(x.astype(np.float64), Mty.astype(np.float64))
    return abs(a - b) / (np.linalg.norm(Mx.astype(np.float64)) * np.linalg.norm(y.astype(np.float64)))


def field(rng, shape, scale=2.5, outside=True):
    u = rng.standard_normal(shape + (len(shape),)) * scale
    if outside:
        u[:3] += 7.0  # some points beyond the edge: every boundary path is exercised
    return u


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("mode", vx.MODES)
def test_displacement_warp_dot_test(nd, dtype, degree, mode):
    rng = np.random.default_rng(stable_seed(nd, degree, mode))
    shape = SHAPES[nd]
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    u = field(rng, shape).astype(dtype)
    err = dot_error(vx.warp(x, u, degree, mode), y, x, vx.adjoint_warp(y, u, shape, degree, mode))
    assert err <= (1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("mode", vx.MODES)
def test_affine_warp_dot_test(nd, dtype, degree, mode):
    rng = np.random.default_rng(stable_seed(nd, degree, mode, "affine"))
    in_shape = SHAPES[nd]
    out_shape = tuple(s + 3 for s in in_shape)  # another grid: the operator is not square
    A = np.eye(nd + 1)
    A[:nd, :nd] += rng.uniform(-0.15, 0.15, (nd, nd))
    A[:nd, nd] = rng.uniform(-3, 3, nd)
    x = rng.standard_normal(in_shape).astype(dtype)
    y = rng.standard_normal(out_shape).astype(dtype)
    Mx = vx.affine_warp(x, A, out_shape, degree, mode)
    assert Mx.shape == out_shape
    err = dot_error(Mx, y, x, vx.adjoint_affine_warp(y, A, in_shape, degree, mode))
    assert err <= (1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("degree", [1, 3, 5, "keys"])
@pytest.mark.parametrize("mode", ["constant", "nearest", "reflect", "mirror", "grid-wrap"])
def test_adjoint_is_the_explicit_transpose(degree, mode):
    rng = np.random.default_rng(1)
    shape = (7, 6)
    u = field(rng, shape, 1.5, outside=False)
    n = int(np.prod(shape))
    M = np.stack([vx.warp(np.eye(n)[i].reshape(shape, order="F"), u, degree, mode).ravel(order="F")
                  for i in range(n)], 1)
    MT = np.stack([vx.adjoint_warp(np.eye(n)[i].reshape(shape, order="F"), u, shape, degree, mode).ravel(order="F")
                   for i in range(n)], 1)
    np.testing.assert_allclose(MT, M.T, atol=1e-13)


def smooth_image(shape, rng):
    grids = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    img = sum(np.sin(2.3 * g + rng.uniform(0, 3)) for g in grids) + np.prod([np.cos(1.7 * g) for g in grids], 0)
    return img


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("degree", [2, 3, 4, 5, "keys"])
@pytest.mark.parametrize("mode", ["mirror", "nearest", "reflect", "grid-constant"])
def test_jvp_matches_central_differences(nd, degree, mode):
    rng = np.random.default_rng(2)
    shape = SHAPES[nd]
    img = smooth_image(shape, rng)
    u = field(rng, shape, 0.7, outside=False)
    du = rng.standard_normal(u.shape)
    h = 1e-5
    fd = (vx.warp(img, u + h * du, degree, mode) - vx.warp(img, u - h * du, degree, mode)) / (2 * h)
    jvp = vx.warp_jvp(img, u, du, degree, mode)
    assert np.abs(jvp - fd).max() <= 1e-6 * np.abs(jvp).max()


@pytest.mark.parametrize("degree", [1, 3, "keys"])
def test_vjp_is_the_transpose_of_jvp(degree):
    rng = np.random.default_rng(3)
    shape = SHAPES[3]
    img = rng.standard_normal(shape)
    u = field(rng, shape)
    du = rng.standard_normal(u.shape)
    ybar = rng.standard_normal(shape)
    lhs = np.vdot(vx.warp_jvp(img, u, du, degree, "mirror"), ybar)
    rhs = np.vdot(du, vx.warp_vjp(img, u, ybar, degree, "mirror"))
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(du) * np.linalg.norm(ybar) * np.abs(img).max() * 10
    warped, grad = vx.warp_gradient(img, u, degree, "mirror")
    np.testing.assert_array_equal(warped, vx.warp(img, u, degree, "mirror"))
    np.testing.assert_allclose(np.einsum("...d,...d->...", grad, du), vx.warp_jvp(img, u, du, degree, "mirror"),
                               rtol=1e-12, atol=1e-12)


def test_adjoint_bit_identical_across_threads():
    rng = np.random.default_rng(4)
    shape = (40, 37, 33)
    u = field(rng, shape, 4.0)
    y = rng.standard_normal(shape).astype(np.float32)
    out = []
    for t in (1, 2, 3):
        vx.set_num_threads(t)
        out.append(vx.adjoint_warp(y, u.astype(np.float32), shape, 3, "mirror"))
    vx.set_num_threads(None)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_linear_operator_with_scipy():
    from scipy.sparse.linalg import lsqr

    rng = np.random.default_rng(5)
    shape = (24, 20)
    gi, gj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    u = np.stack([0.8 * np.sin(gj / 4.0), 0.6 * np.cos(gi / 5.0)], -1)  # smooth and invertible
    op = vx.WarpOperator(u, degree=3, mode="mirror")
    x = rng.standard_normal(op.shape[1])
    y = rng.standard_normal(op.shape[0])
    assert abs(np.vdot(op.matvec(x), y) - np.vdot(x, op.rmatvec(y))) <= 1e-12 * np.linalg.norm(x) * np.linalg.norm(y) * 10
    # LSQR (which uses rmatvec) fits the warped image of a smooth truth; the warp attenuates the
    # highest frequencies (near-null space), so compare smooth parts: the fit and the truth agree
    truth = smooth_image(shape, rng).ravel(order="F")
    b = op.matvec(truth)
    sol = lsqr(op, b, atol=1e-12, btol=1e-12, iter_lim=500)[0]
    assert np.linalg.norm(op.matvec(sol) - b) <= 1e-6 * np.linalg.norm(b)
    err = np.abs(sol - truth).reshape(shape, order="F")[3:-3, 3:-3]  # the edges fold under the mirror
    assert err.mean() < 1e-2
    aop = vx.AffineWarpOperator(np.array([[1, 0.1, 0.5], [-0.1, 1, -0.3], [0, 0, 1.0]]), shape, degree=1)
    assert abs(np.vdot(aop.matvec(x), y) - np.vdot(x, aop.rmatvec(y))) <= 1e-12 * np.linalg.norm(x) * np.linalg.norm(y) * 10


def test_bad_input():
    img = np.zeros((10, 12))
    with pytest.raises(ValueError, match="field must have shape"):
        vx.warp(img, np.zeros((10, 12, 3)))
    with pytest.raises(ValueError, match="shape must have 2 entries"):
        vx.adjoint_warp(img, np.zeros((10, 12, 2)), (10, 12, 4))
    with pytest.raises(ValueError, match="displacement field grid"):
        vx.adjoint_warp(img, np.zeros((10, 11, 2)), (10, 12))
    with pytest.raises(ValueError, match="matrix must be"):
        vx.affine_warp(img, np.eye(5))


# ---------------------------------------------------------------- affine parameters


def _smooth3(shape):
    g = np.meshgrid(*[np.linspace(0, 3, s) for s in shape], indexing="ij")
    return np.sin(2 * g[0]) + np.cos(1.5 * g[1]) + (np.sin(g[2]) if len(shape) > 2 else 0)


@pytest.mark.parametrize(
    "groups",
    [["translation"], ["translation", "rotation"], ["translation", "versor", "zoom", "shear"], ["rotation", "zoom"],
     ["matrix", "translation"]],
)
@pytest.mark.parametrize("degree", [1, 3, "keys"])
def test_affine_parameter_jvp_vjp(groups, degree):
    rng = np.random.default_rng(len(groups))
    shape = (20, 18, 16)
    x = _smooth3(shape)
    m = vx.AffineModel(shape, groups)
    th = rng.uniform(-0.1, 0.1, m.size)
    dth = rng.standard_normal(m.size)
    h = 1e-6
    warp_at = lambda t: vx.affine_warp(x, m.matrix(t), shape, degree, "mirror")  # noqa: E731
    fd = (warp_at(th + h * dth) - warp_at(th - h * dth)) / (2 * h)
    jvp = vx.affine_param_jvp(x, m, th, dth, None, degree, "mirror")
    tol = 1e-6 if degree != 1 else 1e-4  # linear interpolation has kinks at the nodes
    assert np.abs(jvp - fd).mean() <= tol * np.abs(jvp).mean()
    ybar = rng.standard_normal(shape)
    g = vx.affine_param_vjp(x, m, th, ybar, degree, "mirror")
    assert abs(g @ dth - np.vdot(jvp, ybar)) <= 1e-10 * abs(np.vdot(jvp, ybar))


def test_affine_model_2d_and_operator_derivative():
    shape = (30, 26)
    x = _smooth3(shape)
    m = vx.AffineModel(shape, ["translation", "rotation", "zoom", "shear"])
    assert m.names == ["translation_x", "translation_y", "rotation", "zoom_x", "zoom_y", "shear"]
    th = np.array([1.0, -2.0, 0.1, 0.05, -0.05, 0.02])
    M = m.matrix(th)
    c = np.array([(s - 1) / 2 for s in shape])
    # the centre maps to itself plus the translation
    np.testing.assert_allclose(M[:2, :2] @ c + M[:2, 3], c + th[:2], atol=1e-12)
    op = vx.AffineWarpOperator(model=m, theta=th, degree=3, mode="nearest")
    cols = op.derivative(x, wrt=["translation", "rotation"])
    assert cols.shape == shape + (3,)
    for q, i in enumerate([0, 1, 2]):
        e = np.zeros(m.size)
        e[i] = 1.0
        np.testing.assert_allclose(cols[..., q], vx.affine_param_jvp(x, m, th, e, None, 3, "nearest"))
    with pytest.raises(ValueError, match="unknown parameter"):
        op.derivative(x, wrt=["spin"])
    with pytest.raises(ValueError, match="unknown parameter group"):
        vx.AffineModel(shape, ["translation", "twist"])
    with pytest.raises(ValueError, match="do not combine"):
        vx.AffineModel((5, 5, 5), ["matrix", "rotation"])


# ---------------------------------------------------------------- sparse matrix, inversion, approximations


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("degree", [0, 1, 2, 3, 5, "keys"])
@pytest.mark.parametrize("mode", ["constant", "grid-constant", "nearest", "mirror", "reflect", "wrap", "grid-wrap"])
def test_sparse_matrix_equals_matrix_free(nd, degree, mode):
    rng = np.random.default_rng(7)
    shape = SHAPES[nd]
    x = rng.standard_normal(shape)
    u = field(rng, shape)
    E = vx.warp_matrix(shape, field=u, degree=degree, mode=mode)
    c = vx.spline_coefficients(x, degree, mode).array if degree not in (0, 1, "keys") else x
    got = (E @ np.asarray(c).ravel(order="F")).reshape(shape, order="F")
    ref = vx.warp(x, u, degree, mode)
    assert np.abs(got - ref).max() <= 1e-12 * max(1.0, np.abs(ref).max())
    # affine, onto another grid
    A = np.eye(nd + 1)
    A[:nd, nd] = 0.7
    A[0, 1] = 0.1
    out_shape = tuple(s + 2 for s in shape)
    E = vx.warp_matrix(shape, matrix=A, out_shape=out_shape, degree=degree, mode=mode)
    got = (E @ np.asarray(c).ravel(order="F")).reshape(out_shape, order="F")
    assert np.abs(got - vx.affine_warp(x, A, out_shape, degree, mode)).max() <= 1e-12 * max(1.0, np.abs(ref).max())


def test_field_inversion_composes_to_identity():
    shape = (40, 36, 32)
    g = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    u = np.stack([2.5 * np.sin(g[1] / 6), 2.0 * np.cos(g[2] / 7), 1.5 * np.sin((g[0] + g[1]) / 8)], -1)
    v, its = vx.invert_field(u, degree=3, iterations=100, tol=1e-6, return_iterations=True)
    assert its < 100
    # x + v(x) + u(x + v(x)) = x away from the edges (points pushed beyond the grid are clamped)
    comp = v + np.stack([vx.warp(u[..., d], v, 3, "nearest") for d in range(3)], -1)
    inner = (slice(5, -5),) * 3
    assert np.abs(comp[inner]).max() < 0.01


def test_approximations_are_worse_than_the_exact_operators():
    rng = np.random.default_rng(8)
    shape = (30, 28, 26)
    g = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    u = np.stack([2.0 * np.sin(g[1] / 5), 1.5 * np.cos(g[2] / 6), 1.0 * np.sin(g[0] / 7)], -1)
    x = _smooth3(shape)
    y = rng.standard_normal(shape)
    Mx = vx.warp(x, u, 3, "mirror")
    exact = abs(np.vdot(Mx, y) - np.vdot(x, vx.adjoint_warp(y, u, shape, 3, "mirror")))
    for method in ("negative", "inverse"):
        approx = abs(np.vdot(Mx, y) - np.vdot(x, vx.approx.approx_adjoint_warp(y, u, 3, "mirror", method)))
        assert approx > 1e3 * exact
    du = rng.standard_normal(u.shape)
    h = 1e-6
    fd = (vx.warp(x, u + h * du, 3, "mirror") - vx.warp(x, u - h * du, 3, "mirror")) / (2 * h)
    err_exact = np.abs(vx.warp_jvp(x, u, du, 3, "mirror") - fd).mean()
    err_approx = np.abs(vx.approx.approx_warp_jvp(x, u, du, 3, "mirror") - fd).mean()
    assert err_approx > 100 * err_exact


def test_operators_work_with_pylops():
    import pylops

    rng = np.random.default_rng(9)
    shape = (16, 14, 12)
    u = field(rng, shape, 1.5)
    Op = pylops.LinearOperator(vx.WarpOperator(u, degree=3, mode="mirror"))
    assert pylops.utils.dottest(Op, Op.shape[0], Op.shape[1], rtol=1e-10)
    m = vx.AffineModel(shape, ["translation", "rotation"])
    Aop = pylops.LinearOperator(vx.AffineWarpOperator(model=m, theta=[1, 0, -1, 0.1, 0, 0.05], degree=5))
    assert pylops.utils.dottest(Aop, Aop.shape[0], Aop.shape[1], rtol=1e-10)
    # a PyLops solver on the exact operator: CGLS fits the data (this random field is far from
    # smooth, so the operator is ill-conditioned; 100 iterations get within 1 %)
    truth = _smooth3(shape).ravel(order="F")
    x = pylops.optimization.basic.cgls(Op, Op @ truth, niter=100, tol=1e-12)[0]
    assert np.linalg.norm(Op @ x - Op @ truth) <= 1e-2 * np.linalg.norm(Op @ truth)


def test_field_in_mm_through_the_geometry():
    rng = np.random.default_rng(10)
    shape = (12, 10, 8)
    A_img = np.array([[1.5, 0, 0, -10], [0, 0, 2.0, 4], [0, -1.2, 0, 7], [0, 0, 0, 1.0]])
    A_fld = A_img.copy()
    A_fld[:3, 3] += [0.5, -1.0, 2.0]  # the field's grid is shifted against the image's
    u_mm = rng.standard_normal(shape + (3,))
    u = vx.field_mm_to_voxels(u_mm, A_fld, A_img)
    idx = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"), -1)
    world = idx @ A_fld[:3, :3].T + A_fld[:3, 3] + u_mm
    want = (world - A_img[:3, 3]) @ np.linalg.inv(A_img[:3, :3]).T - idx
    np.testing.assert_allclose(u, want, atol=1e-12)


def test_2d_gradient_vjp_and_bad_shapes():
    rng = np.random.default_rng(11)
    shape = (15, 13)
    img = rng.standard_normal(shape)
    u = field(rng, shape, 1.0, outside=False)
    warped, grad = vx.warp_gradient(img, u, 3, "mirror")
    assert grad.shape == shape + (2,)
    ybar = rng.standard_normal(shape)
    du = rng.standard_normal(u.shape)
    v = vx.warp_vjp(img, u, ybar, 3, "mirror")
    assert abs(np.vdot(vx.warp_jvp(img, u, du, 3, "mirror"), ybar) - np.vdot(du, v)) < 1e-10
    with pytest.raises(ValueError):
        vx.invert_field(np.zeros((2, 2, 2, 2, 4)))
    with pytest.raises(ValueError, match="empty axis"):
        vx.invert_field(np.zeros((4, 0, 4, 3)))
    with pytest.raises(ValueError, match="positive"):
        vx.warp_matrix((0, 4), matrix=np.eye(3))


# The adjoint's output-slab schedule (two phases of slabs of output planes, used when the field
# moves points by a small fraction of the grid along the last axis and the mode does not wrap):
# grids long enough along the last axis for at least 4 such slabs (|u| <= 0.9 voxel: slabs of
# >= 19 planes, 43 with the 12-sample padding of 'nearest' / 'grid-constant').
SLAB_SHAPES = {2: (30, 180), 3: (14, 11, 180)}


def small_field(rng, shape):
    u = rng.uniform(-0.9, 0.9, shape + (len(shape),))
    u[0] -= 0.6  # first row/plane partly outside: the boundary paths
    return np.clip(u, -0.9, 0.9)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ["mirror", "reflect", "nearest", "grid-constant", "constant"])
@pytest.mark.parametrize("degree", [1, "keys"])
def test_adjoint_output_slabs_equal_matrix_transpose(nd, mode, degree):
    rng = np.random.default_rng(11)
    shape = SLAB_SHAPES[nd]
    u = small_field(rng, shape)
    y = rng.standard_normal(shape)
    y[:, 5] = 0.0  # zeros are skipped
    E = vx.warp_matrix(shape, field=u, degree=degree, mode=mode)
    ref = (E.T @ y.ravel("F")).reshape(shape, order="F")
    got = vx.adjoint_warp(y, u, shape, degree, mode)
    assert np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max()
    g32 = vx.adjoint_warp(y.astype(np.float32), u.astype(np.float32), shape, degree, mode)
    assert np.abs(g32 - ref).max() <= 2e-5 * np.abs(ref).max()


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ["mirror", "nearest", "grid-constant"])
def test_adjoint_output_slabs_cubic_dot_test(nd, mode):
    rng = np.random.default_rng(12)
    shape = SLAB_SHAPES[nd]
    u = small_field(rng, shape)
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    Mx = vx.warp(x, u, 3, mode)
    lhs, rhs = np.vdot(Mx, y), np.vdot(x, vx.adjoint_warp(y, u, shape, 3, mode))
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(Mx) * np.linalg.norm(y)


def test_adjoint_output_slabs_bit_identical_across_threads():
    rng = np.random.default_rng(13)
    shape = SLAB_SHAPES[3]
    u = small_field(rng, shape).astype(np.float32)
    y = rng.standard_normal(shape).astype(np.float32)
    out = []
    try:
        for t in (1, 2, 3, 4):
            vx.set_num_threads(t)
            out.append(vx.adjoint_warp(y, u, shape, 3, "mirror"))
    finally:
        vx.set_num_threads(None)
    for o in out[1:]:
        np.testing.assert_array_equal(out[0], o)


@pytest.mark.parametrize("spike", [5.0, 12.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["mirror", "nearest"])
def test_adjoint_output_slabs_spike_beyond_the_sample(spike, dtype, mode):
    # The output-slab schedule sizes its slabs from every 13th row of the field; a spike along the
    # slab axis in an unsampled row (row 1) is beyond the slabs' reach, so the scatter must notice
    # it and start again: with slabs sized from the whole field (5 voxels), or by coefficient
    # slabs (12 voxels: too large for 4 output slabs). The dot test with the forward warp,
    # float32 against float64, and bit-identical for 1-3 threads.
    rng = np.random.default_rng(14)
    shape = SLAB_SHAPES[3]
    u = small_field(rng, shape)
    u[3:9, 1, 90, 2] = spike
    u[4, 1, 91, 2] = -spike
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    g64 = vx.adjoint_warp(y, u, shape, 3, mode)
    Mx = vx.warp(x, u, 3, mode)
    assert abs(np.vdot(Mx, y) - np.vdot(x, g64)) <= 1e-12 * np.linalg.norm(Mx) * np.linalg.norm(y)
    g = adjoint_over_threads(y.astype(dtype), u.astype(dtype), shape, mode)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert np.abs(g - g64).max() <= tol * np.abs(g64).max()
