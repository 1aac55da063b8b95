"""The AVX2 paths for float32 4-tap kernels (cubic B-spline, Keys) in 2D/3D -- fused interior
batches of 8 points, and batches with mapped coordinates / folded indices -- against the generic
float64 path and scipy.ndimage, in every mode, with many points at and beyond the edges; and bit
identity for 1 and 2 threads.

Tolerance: 2e-5 of the data's range (float32 arithmetic against float64)."""
import numpy as np
import pytest
from scipy import ndimage as ndi

import voxalign as va
from conftest import adjoint_over_threads

MODES = ["mirror", "reflect", "nearest", "constant", "grid-constant", "wrap", "grid-wrap", "itk"]
SCIPY_MODE = {"reflect": "grid-mirror", "wrap": "wrap", "grid-wrap": "grid-wrap"}
SHAPES = {2: (45, 37), 3: (37, 29, 23)}  # rows not a multiple of 8


def data(nd, seed=0):
    rng = np.random.default_rng(seed)
    return np.asfortranarray(rng.normal(size=SHAPES[nd]))


def field(nd, seed=1, scale=4.0):
    rng = np.random.default_rng(seed)
    shape = SHAPES[nd]
    u = ndi.gaussian_filter(rng.normal(size=shape + (nd,)), (2,) * nd + (0,)) * scale * 6
    u[: shape[0] // 6] += 9.0  # a slab pushed past the far edge: mapping and cval paths
    return np.asfortranarray(u)


def tol(a):
    return 2e-5 * float(np.ptp(a))


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("degree", [3, "keys"])
def test_warp_field_float32_equals_float64(nd, mode, degree):
    a, u = data(nd), field(nd)
    r64 = va.warp(a, u, degree=degree, mode=mode, cval=0.5)
    r32 = va.warp(a.astype(np.float32), u.astype(np.float32), degree=degree, mode=mode, cval=0.5)
    assert r32.dtype == np.float32
    assert np.abs(r32 - r64).max() <= tol(a)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ["mirror", "reflect", "nearest", "wrap", "grid-wrap"])
def test_warp_field_float32_matches_scipy(nd, mode):
    a, u = data(nd), field(nd)
    coords = np.indices(a.shape, dtype=np.float64) + np.moveaxis(u.astype(np.float32).astype(np.float64), -1, 0)
    ref = ndi.map_coordinates(a.astype(np.float32).astype(np.float64), coords, order=3,
                              mode=SCIPY_MODE.get(mode, mode))
    got = va.warp(a.astype(np.float32), u.astype(np.float32), degree=3, mode=mode)
    assert np.abs(got - ref).max() <= tol(a)


def affine(nd, angle, shift, zoom=1.0):
    c, s = np.cos(angle), np.sin(angle)
    M = np.eye(4)
    M[:2, :2] = [[c, -s], [s, c]]
    M[:3, :3] *= zoom
    M[:nd, 3] = shift[:nd]
    if nd == 2:
        M[2, :] = [0, 0, 1, 0]
    return M


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("degree", [3, "keys"])
@pytest.mark.parametrize("M", [(0.3, (6.0, -4.0, 2.5), 1.0), (0.0, (0.4, 0.3, 0.2), 1.0), (0.05, (2.0, 1.0, 1.0), 0.9)])
def test_affine_float32_equals_float64(nd, mode, degree, M):
    a = data(nd)
    A = affine(nd, *M)
    eye = np.eye(4)
    r64 = va.resample(a, eye, a.shape, eye, transform=A, degree=degree, mode=mode, cval=-0.25)
    r32 = va.resample(a.astype(np.float32), eye, a.shape, eye, transform=A, degree=degree, mode=mode, cval=-0.25)
    # voxels whose coordinate lies within rounding of the edge flip between in and out in
    # 'constant' mode (edges 0 and n-1) and 'itk' (-0.5 and n-0.5); leave those out
    grid = np.indices(a.shape, dtype=np.float64).reshape(nd, -1)
    x = A[:nd, :nd] @ grid + A[:nd, 3:4]
    n = np.array(a.shape, dtype=np.float64)[:, None]
    edge = np.any((np.abs(x) < 1e-6) | (np.abs(x - (n - 1)) < 1e-6) | (np.abs(x + 0.5) < 1e-6) |
                  (np.abs(x - (n - 0.5)) < 1e-6), axis=0).reshape(a.shape)
    assert np.abs(r32 - r64)[~edge].max() <= tol(a)


def test_affine_constant_mode_matches_scipy():
    a = data(3)
    A = affine(3, 0.3, (6.0, -4.0, 2.5))
    eye = np.eye(4)
    ref = ndi.affine_transform(a.astype(np.float32).astype(np.float64), A, order=3, mode="constant", cval=-0.25)
    got = va.resample(a.astype(np.float32), eye, a.shape, eye, transform=A, degree=3, mode="constant", cval=-0.25)
    grid = np.indices(a.shape, dtype=np.float64).reshape(3, -1)
    x = A[:3, :3] @ grid + A[:3, 3:4]
    n = np.array(a.shape, dtype=np.float64)[:, None]
    edge = np.any((np.abs(x) < 1e-6) | (np.abs(x - (n - 1)) < 1e-6), axis=0).reshape(a.shape)
    assert (got[~edge] == -0.25).sum() == (ref[~edge] == -0.25).sum() > 1000  # cval where scipy has it
    assert np.abs(got - ref)[~edge].max() <= tol(a)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ["mirror", "reflect", "nearest", "constant", "wrap", "grid-wrap", "itk"])
@pytest.mark.parametrize("degree", [3, "keys"])
def test_warp_gradient_float32_equals_float64(nd, mode, degree):
    a, u = data(nd), field(nd)
    v64, g64 = va.warp_gradient(a, u, degree, mode)
    v32, g32 = va.warp_gradient(a.astype(np.float32), u.astype(np.float32), degree, mode)
    assert v32.dtype == np.float32 and g32.dtype == np.float32
    assert np.abs(v32 - v64).max() <= tol(a)
    assert np.abs(g32 - g64).max() <= 2 * tol(g64)


ADJ_MODES = ["mirror", "reflect", "nearest", "grid-constant", "constant", "wrap", "grid-wrap", "itk"]


def adjoint_y(nd, seed=2):
    """The adjoint's input: random, with zeros (whole runs and single voxels) that split the runs."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=SHAPES[nd])
    y[3:11] = 0.0
    y[::7, ::3] = 0.0
    return np.asfortranarray(y)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ADJ_MODES)
@pytest.mark.parametrize("degree", [3, "keys"])
def test_adjoint_field_float32_equals_float64(nd, mode, degree):
    # the float32 scatter (AVX2 interior batches, the bucketing's runs of 8) against the generic
    # float64 one, and the float32 dot test
    y, u = adjoint_y(nd), field(nd)
    shape = SHAPES[nd]
    g64 = va.adjoint_warp(y, u, shape, degree, mode)
    g32 = va.adjoint_warp(y.astype(np.float32), u.astype(np.float32), shape, degree, mode)
    assert g32.dtype == np.float32
    assert np.abs(g32 - g64).max() <= 2e-5 * np.abs(g64).max()
    x = data(nd).astype(np.float32)
    lhs = np.vdot(va.warp(x, u.astype(np.float32), degree, mode).astype(np.float64), y)
    rhs = np.vdot(x.astype(np.float64), g32.astype(np.float64))
    assert abs(lhs - rhs) <= 1e-5 * np.linalg.norm(va.warp(x, u.astype(np.float32), degree, mode)) * np.linalg.norm(y)


@pytest.mark.parametrize("scale", [0.3, 4.0])
@pytest.mark.parametrize("mode", ["mirror", "nearest", "grid-constant"])
def test_adjoint_long_rows_float32_equals_float64(scale, mode):
    # rows of 150 voxels: several blocks of 8 groups of 8 points in the float32 scatter, groups
    # with some points beyond the edges (the rest still in the block); a small field takes the
    # output-slab schedule (80 planes), a large one the coefficient slabs; bit identity for 1-3 threads
    shape = (150, 13, 80)
    rng = np.random.default_rng(21)
    u = ndi.gaussian_filter(rng.normal(size=shape + (3,)), (3, 3, 3, 0))
    u = u / np.abs(u).max() * scale
    u[:, :, :, 0] += np.where(np.arange(150) < 75, -0.6, 0.6)[:, None, None] * scale  # over both x edges
    y = rng.normal(size=shape)
    y[40:47] = 0.0
    g64 = va.adjoint_warp(y, u, shape, 3, mode)
    g32 = adjoint_over_threads(y.astype(np.float32), u.astype(np.float32), shape, mode)
    assert np.abs(g32 - g64).max() <= 2e-5 * np.abs(g64).max()


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ["mirror", "nearest", "constant", "grid-wrap"])
@pytest.mark.parametrize("M", [(0.3, (6.0, -4.0, 2.5), 1.0), (0.05, (2.0, 1.0, 1.0), 0.9)])
def test_adjoint_affine_float32_equals_float64(nd, mode, M):
    y = adjoint_y(nd)
    A = affine(nd, *M)
    shape = SHAPES[nd]
    g64 = va.adjoint_affine_warp(y, A, shape, 3, mode)
    g32 = va.adjoint_affine_warp(y.astype(np.float32), A, shape, 3, mode)
    assert np.abs(g32 - g64).max() <= 2e-5 * np.abs(g64).max()


def test_bit_identical_for_1_and_2_threads():
    a, u = data(3).astype(np.float32), field(3).astype(np.float32)
    A = affine(3, 0.3, (6.0, -4.0, 2.5))
    eye = np.eye(4)
    n0 = va.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            va.set_num_threads(t)
            out.append((va.warp(a, u, degree=3, mode="mirror"),
                        va.adjoint_warp(adjoint_y(3).astype(np.float32), u, a.shape, 3, "mirror"),
                        va.adjoint_affine_warp(adjoint_y(3).astype(np.float32), A, a.shape, 3, "nearest"),
                        va.resample(a, eye, a.shape, eye, transform=A, degree=3, mode="constant"),
                        *va.warp_gradient(a, u, 3, "mirror")))
    finally:
        va.set_num_threads(n0)
    for x, y in zip(*out):
        assert np.array_equal(x, y)


def test_release_memory():
    a = data(3).astype(np.float32)
    big = np.zeros((128, 128, 64), np.float32)
    va.warp(big, np.zeros(big.shape + (3,), np.float32), degree=3)  # 4 MiB blocks, recycled
    va.release_memory()
    assert va.release_memory() == 0
    assert va.warp(a, np.zeros(a.shape + (3,), np.float32), degree=3).shape == a.shape
