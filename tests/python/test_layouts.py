"""Any memory layout gives the Fortran-order answer bit for bit (docs/conventions.md: "accept any
strides, copy only when needed"): C order, a strided view (a[::2]), a transposed view, negative
strides and a sliced C-order view, every boundary mode, degrees 0-7 and Keys, float32 and float64,
through resample, spline_coefficients, map_coordinates, warp, affine_warp, register_metric and
realign; displacement fields likewise (warp, adjoint_warp, warp_jvp/vjp, invert_field). The layout code (copy_view's tiles, spline_coefficients' staging) must not change a bit.

References: the F-order result (exact equality) and scipy.ndimage.affine_transform /
map_coordinates on the C-order array (float64, 1e-10 of the data's scale, as
test_interp_vs_scipy.py)."""
import numpy as np
import pytest
import scipy.ndimage as ndi

import voxalign as va

MODES = ["itk", "grid-constant", "constant", "nearest", "mirror", "reflect", "wrap", "grid-wrap"]
DEGREES = [0, 1, 2, 3, 4, 5, 6, 7, "keys"]
# Axis 0 and 2 longer than the copy's 32-sample tiles and not multiples of its 8 x 8 blocks; axis 2
# >= 8 so that the fused copy + prefilter path runs.
SHAPE = (37, 12, 41)


def _layouts(a):
    """Views equal to `a` (F order) in other layouts."""
    big = np.asfortranarray(np.repeat(a, 2, axis=0))
    padded = np.zeros((a.shape[0] + 3, a.shape[1] + 2, a.shape[2] + 5), dtype=a.dtype)
    padded[1:-2, 2:, 3:-2] = a
    views = {
        "C": np.ascontiguousarray(a),
        "strided": big[::2],
        "transposed": np.asfortranarray(a.transpose(2, 1, 0)).transpose(2, 1, 0),
        "negative": np.ascontiguousarray(a[::-1, :, ::-1])[::-1, :, ::-1],
        "sliced C": padded[1:-2, 2:, 3:-2],
    }
    for name, v in views.items():
        assert np.array_equal(v, a), name
    assert not views["C"].flags.f_contiguous and not views["strided"].flags.f_contiguous
    return views


def _volume(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return np.asfortranarray(ndi.gaussian_filter(rng.normal(size=SHAPE), 1.5).astype(dtype) + 2)


M = np.array([[0.98, -0.17, 0.05, 1.5], [0.17, 0.97, -0.1, -2.0], [-0.03, 0.1, 1.02, 0.7], [0, 0, 0, 1]])


def _same(got, ref, what):
    assert got.shape == ref.shape, what
    assert got.dtype == ref.dtype, what
    assert got.tobytes(order="F") == ref.tobytes(order="F"), f"{what}: not bit-identical to F order"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("degree", DEGREES)
def test_resample_and_coefficients_equal_fortran_order(dtype, degree):
    a = _volume(dtype)
    eye = np.eye(4)
    for mode in MODES:
        ref = va.resample(a, eye, (30, 14, 33), eye, transform=M, degree=degree, mode=mode, cval=0.5)
        cref = va.spline_coefficients(a, degree, mode, 0.5).array
        for name, v in _layouts(a).items():
            what = f"{name} {mode} degree {degree}"
            _same(va.resample(v, eye, (30, 14, 33), eye, transform=M, degree=degree, mode=mode, cval=0.5), ref, what)
            _same(va.spline_coefficients(v, degree, mode, 0.5).array, cref, "coefficients " + what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warps_and_points_equal_fortran_order(dtype):
    a = _volume(dtype, 1)
    rng = np.random.default_rng(2)
    u = np.asfortranarray(rng.normal(scale=2.0, size=SHAPE + (3,)).astype(dtype))
    pts = np.stack([rng.uniform(-3, s + 3, size=500) for s in SHAPE])
    for degree in (1, 3, 5):
        for mode in ("nearest", "mirror", "constant"):
            refs = (va.warp(a, u, degree, mode), va.affine_warp(a, M, degree=degree, mode=mode),
                    va.map_coordinates(a, pts, order=degree, mode=mode))
            for name, v in _layouts(a).items():
                what = f"{name} {mode} degree {degree}"
                _same(va.warp(v, u, degree, mode), refs[0], "warp " + what)
                _same(va.affine_warp(v, M, degree=degree, mode=mode), refs[1], "affine_warp " + what)
                _same(va.map_coordinates(v, pts, order=degree, mode=mode), refs[2], "map_coordinates " + what)


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4, 5])
def test_c_order_and_views_match_scipy(degree):
    """The other layouts against scipy itself (not only against voxalign's F-order answer)."""
    a = _volume(np.float64, 3)
    eye = np.eye(4)
    grid = np.indices(SHAPE).reshape(3, -1).astype(float)
    x = M[:3, :3] @ grid + M[:3, 3:]
    n = np.array(SHAPE)[:, None]
    edge = np.any((np.abs(x) < 1e-9) | (np.abs(x - (n - 1)) < 1e-9), axis=0).reshape(SHAPE)
    # degree 0: coordinates within rounding of a half-integer may round either way
    tie = np.any(np.abs(x - np.floor(x) - 0.5) < 1e-9, axis=0).reshape(SHAPE) if degree == 0 else np.zeros(SHAPE, bool)
    rng = np.random.default_rng(4)
    pts = np.stack([rng.uniform(-3, s + 3, size=300) for s in SHAPE])
    # not scipy's 'wrap', which differs from voxalign's (and its own 'grid-wrap') in [n-1, n) by design
    for mode in ("constant", "nearest", "mirror", "reflect", "grid-constant", "grid-wrap"):
        for name, v in _layouts(a).items():
            ref = ndi.affine_transform(v, M, order=degree, mode=mode, cval=0.5)
            got = va.resample(v, eye, SHAPE, eye, transform=M, degree=degree, mode=mode, cval=0.5)
            keep = ~tie & (~edge if mode == "constant" else True)  # 'constant': cval flips on rounding there
            np.testing.assert_allclose(got[keep], ref[keep], rtol=0, atol=1e-10 * 4, err_msg=f"{name} {mode}")
            ref = ndi.map_coordinates(v, pts, order=degree, mode=mode, cval=0.5)
            got = va.map_coordinates(v, pts, order=degree, mode=mode, cval=0.5)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * 4, err_msg=f"map_coordinates {name} {mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fields_in_any_layout_equal_fortran_order(dtype):
    """Displacement fields (and JVP tangents) in C order or as views: copied by the bindings into
    NIfTI order (copy_view), the same bits as an F-order field."""
    a = _volume(dtype, 6)
    rng = np.random.default_rng(7)
    u = np.asfortranarray(rng.normal(scale=2.0, size=SHAPE + (3,)).astype(dtype))
    du = np.asfortranarray(rng.normal(size=SHAPE + (3,)).astype(dtype))
    y = np.asfortranarray(rng.normal(size=SHAPE).astype(dtype))
    big = np.asfortranarray(np.repeat(u, 2, axis=0))
    views = {"C": np.ascontiguousarray(u), "strided": big[::2],
             "components first": np.asfortranarray(np.moveaxis(u, -1, 0)).transpose(1, 2, 3, 0)}
    for degree, mode in ((1, "nearest"), (3, "mirror"), (3, "itk"), (5, "constant")):
        refs = (va.warp(a, u, degree, mode), va.adjoint_warp(y, u, None, degree, mode),
                va.warp_jvp(a, u, du, degree, mode), va.warp_vjp(a, u, y, degree, mode))
        for name, v in views.items():
            assert np.array_equal(v, u)
            what = f"{name} {mode} degree {degree}"
            _same(va.warp(a, v, degree, mode), refs[0], "warp " + what)
            _same(va.adjoint_warp(y, v, None, degree, mode), refs[1], "adjoint_warp " + what)
            _same(va.warp_jvp(a, v, np.ascontiguousarray(du), degree, mode), refs[2], "warp_jvp " + what)
            _same(va.warp_vjp(a, v, y, degree, mode), refs[3], "warp_vjp " + what)
    inv = va.invert_field(u.astype(np.float64), 3, 5)
    _same(va.invert_field(np.ascontiguousarray(u.astype(np.float64)), 3, 5), inv, "invert_field C order")


def test_register_metric_and_realign_equal_fortran_order():
    """The registration and realignment bindings copy their inputs with the same tiles."""
    a = _volume(np.float32, 5)
    b = np.asfortranarray(ndi.shift(a, (0.7, -0.4, 0.3), order=1, mode="nearest"))
    theta = [0.1, -0.2, 0.05, 0.01, -0.02, 0.015]
    ref = va.metric_and_gradient(b, a, theta)
    for name, v in _layouts(b).items():
        got = va.metric_and_gradient(v, _layouts(a)[name], theta)
        assert got[0] == ref[0] and np.array_equal(got[1], ref[1]), name
    series = np.asfortranarray(np.stack([a, b, a], axis=-1))
    rref = va.realign(series, np.eye(4))
    for v in (np.ascontiguousarray(series), np.asfortranarray(np.repeat(series, 2, axis=0))[::2]):
        r = va.realign(v, np.eye(4))
        assert np.array_equal(r.matrices, rref.matrices) and np.array_equal(r.resliced, rref.resliced)
