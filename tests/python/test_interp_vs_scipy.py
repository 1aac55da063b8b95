"""Interpolation agrees with scipy.ndimage (spline_filter + map_coordinates) for orders 0-5 and
every boundary mode, at random points inside and outside the grid.

Reference: scipy.ndimage. Tolerance: 1e-10 relative to the data's scale in float64 (the only
differences are the order of floating-point sums); 1e-5 in float32 (voxalign computes float32 data
in float32, scipy in float64)."""
import numpy as np
import pytest
import scipy.ndimage as ndi

import voxalign as va
from conftest import stable_seed

MODES = ["mirror", "reflect", "grid-mirror", "nearest", "constant", "grid-constant", "wrap", "grid-wrap"]


def _points(shape, n, rng):
    # Inside, outside by up to 1.5 grid lengths, exactly on nodes and on half-nodes.
    pts = [rng.uniform(-1.5 * s, 2.5 * s, size=n) for s in shape]
    pts = np.stack(pts)
    nodes = np.stack([rng.integers(-2, s + 2, size=n // 4).astype(float) for s in shape])
    halves = nodes + 0.5
    return np.concatenate([pts, nodes, halves], axis=1)


@pytest.mark.parametrize("shape", [(17,), (9, 11), (7, 8, 6)])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 5])
def test_map_coordinates_matches_scipy_float64(shape, mode, order):
    rng = np.random.default_rng(stable_seed(shape, mode, order))
    a = rng.normal(size=shape) + 3.0
    pts = _points(shape, 400, rng)
    ref = ndi.map_coordinates(a, pts, order=order, mode=mode, cval=1.25, prefilter=True)
    got = va.map_coordinates(a, pts, order=order, mode=mode, cval=1.25)
    scale = np.abs(a).max()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [2, 3, 5])
def test_spline_filter_matches_scipy(mode, order):
    rng = np.random.default_rng(order)
    a = rng.normal(size=(13, 10, 9))
    ref = ndi.spline_filter(a, order=order, mode=mode, output=np.float64)
    c = va.spline_coefficients(a, order, mode)
    p = c.pad
    got = c.array[p:p + 13, p:p + 10, p:p + 9] if p else c.array
    if mode in ("nearest", "grid-constant"):
        # scipy's map_coordinates pads by 12 before filtering; spline_filter alone does not. Compare
        # with the padded filtering that map_coordinates uses.
        padded = np.pad(a, 12, mode="edge" if mode == "nearest" else "constant")
        ref = ndi.spline_filter(padded, order=order, mode=mode, output=np.float64)[12:-12, 12:-12, 12:-12]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["mirror", "nearest", "grid-constant", "reflect"])
def test_float32_close_to_scipy(mode):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(12, 11, 10)).astype(np.float32)
    pts = _points(a.shape, 300, rng)
    ref = ndi.map_coordinates(a.astype(np.float64), pts, order=3, mode=mode)
    got = va.map_coordinates(a, pts, order=3, mode=mode)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(a).max())


def test_prefilter_false_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(10, 12))
    pts = _points(a.shape, 200, rng)
    for mode in MODES:
        ref = ndi.map_coordinates(a, pts, order=3, mode=mode, prefilter=False)
        got = va.map_coordinates(a, pts, order=3, mode=mode, prefilter=False)
        np.testing.assert_allclose(got, ref, atol=1e-12, err_msg=mode)


def test_any_memory_layout():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(8, 9, 10))
    pts = _points(a.shape, 100, rng)
    ref = va.map_coordinates(a, pts)
    for view in (np.asfortranarray(a), a[::1, ::1, ::1], np.ascontiguousarray(a[::-1])[::-1]):
        np.testing.assert_array_equal(va.map_coordinates(view, pts), ref)
    big = rng.normal(size=(16, 18, 20))
    np.testing.assert_array_equal(va.map_coordinates(big[::2, ::2, ::2], pts),
                                  va.map_coordinates(big[::2, ::2, ::2].copy(), pts))


def test_affine_transform_matches_scipy():
    """Resampling through a voxel-space affine equals scipy.ndimage.affine_transform."""
    rng = np.random.default_rng(5)
    a = ndi.gaussian_filter(rng.normal(size=(20, 22, 18)), 2)
    R = np.array([[0.98, -0.17, 0.05], [0.17, 0.97, -0.1], [-0.03, 0.1, 1.02]])
    t = np.array([1.5, -2.0, 0.7])
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, t
    for mode in ("constant", "nearest", "mirror", "grid-constant"):
        ref = ndi.affine_transform(a, M, order=3, mode=mode, cval=0.5)
        # voxel pull-back M with identity affines is the world pull-back.
        got = va.resample(a, np.eye(4), a.shape, np.eye(4), transform=M, degree=3, mode=mode, cval=0.5)
        if mode == "constant":
            # 'constant' jumps to cval at x = n-1 + 0; points within rounding of the edge may fall
            # either side depending on how the matrix product is rounded. Exclude only those.
            grid = np.indices(a.shape).reshape(3, -1).astype(float)
            x = R @ grid + t[:, None]
            n = np.array(a.shape)[:, None]
            edge = np.any((np.abs(x) < 1e-9) | (np.abs(x - (n - 1)) < 1e-9), axis=0).reshape(a.shape)
            assert edge.mean() < 0.01
            got, ref = got[~edge], ref[~edge]
        np.testing.assert_allclose(got, ref, atol=1e-10, err_msg=mode)


def test_gradients_match_central_differences():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(9, 10, 11))
    pts = rng.uniform(0.3, 7.7, size=(200, 3))
    for degree in (2, 3, 4, 5, 6, 7, "keys"):
        c = va.spline_coefficients(a, degree, "mirror")
        v, g = va.interpolate(c, pts, grad=True)
        h = 1e-6
        for d in range(3):
            e = np.zeros(3)
            e[d] = h
            fd = (va.interpolate(c, pts + e) - va.interpolate(c, pts - e)) / (2 * h)
            np.testing.assert_allclose(g[:, d], fd, atol=1e-6, err_msg=f"degree {degree} axis {d}")


def test_separability_distinct_offsets():
    """f = a(i) b(j) c(k): the 3D interpolant at (x, y, z) is a(x) b(y) c(z); an implementation that
    weights the axes in reverse order fails this (the offsets differ per axis)."""
    rng = np.random.default_rng(8)
    a, b, c = rng.uniform(0.5, 2, 11), rng.uniform(0.5, 2, 12), rng.uniform(0.5, 2, 13)
    f = a[:, None, None] * b[None, :, None] * c[None, None, :]
    p = np.array([[3.15, 6.6, 9.85]])
    for degree in (1, 3, 5, 7, "keys"):
        v3 = va.interpolate(va.spline_coefficients(f, degree), p)
        v1 = [va.interpolate(va.spline_coefficients(x, degree), p[:, i:i + 1]) for i, x in enumerate((a, b, c))]
        np.testing.assert_allclose(v3, v1[0] * v1[1] * v1[2], rtol=1e-12)


def test_bad_arguments_raise():
    a = np.zeros((4, 4))
    with pytest.raises(ValueError):
        va.spline_coefficients(a, 8)
    with pytest.raises(ValueError):
        va.spline_coefficients(a, 3, "bogus")
    with pytest.raises(ValueError):
        va.interpolate(a, np.zeros((3, 3)))


def test_non_finite_and_huge_coordinates_take_cval():
    """NaN, +-Inf and coordinates beyond 1e15 voxels have no sample index: every mode returns cval
    (no crash, no out-of-bounds read)."""
    a = np.random.default_rng(9).normal(size=(6, 7, 8))
    bad = np.array([[np.nan, 1, 1], [np.inf, 1, 1], [1, -np.inf, 1], [1, 1, 1e300], [2.5, 3.5, 1e18]])
    for mode in MODES:
        for degree in (0, 1, 3, 5, "keys"):
            v, g = va.interpolate(va.spline_coefficients(a, degree, mode, cval=-2.0), bad, grad=True)
            np.testing.assert_array_equal(v, -2.0, err_msg=f"{mode} {degree}")
            np.testing.assert_array_equal(g, 0.0)
            np.testing.assert_array_equal(va.map_coordinates(a, bad.T, order=degree if degree != "keys" else 3,
                                                             mode=mode, cval=-2.0), -2.0)


def test_map_coordinates_output_argument():
    a = np.random.default_rng(10).normal(size=(9, 9))
    pts = np.array([[1.5, 2.5, 7.2], [3.3, 0.1, 8.0]])
    out = np.empty(3, dtype=np.float32)
    assert va.map_coordinates(a, pts, out, 3) is out
    np.testing.assert_allclose(out, ndi.map_coordinates(a, pts, None, 3), rtol=1e-6)
    assert va.map_coordinates(a, pts, np.float32).dtype == np.float32
