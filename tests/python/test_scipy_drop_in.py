"""voxalign.map_coordinates is a drop-in for scipy.ndimage.map_coordinates (issue 21, section 8):
scipy's own TestMapCoordinates (the installed scipy's test module, not a copy) passes with
scipy.ndimage.map_coordinates replaced by voxalign's.

The nested pytest run uses scipy's numpy backend only (SCIPY_ARRAY_API unset: the `xp` fixture is
numpy). Every collected test must pass; the one allowed exception is scipy's own skip of
test_map_coordinates_large_data when the machine lacks the memory to map a 30000^2 array.
Plus the cases the issue names, checked directly: dtype of integer input, integer outputs (array or
dtype, either byte order) rounded as scipy rounds them, complex input, refusals.
"""
import os

import numpy as np
import pytest

import voxalign as va

scipy = pytest.importorskip("scipy")
import scipy.ndimage as ndi  # noqa: E402


def scipy_test_module():
    try:
        import scipy.ndimage.tests.test_interpolation as mod
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("scipy's test modules are not installed (scipy.ndimage.tests)")
        pytest.skip("scipy installed without its tests")
    return mod


class Outcomes:
    """A pytest plugin that records every test's outcome in the nested run."""

    def __init__(self):
        self.passed, self.failed, self.skipped = [], [], []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            {"passed": self.passed, "failed": self.failed, "skipped": self.skipped}[report.outcome].append(
                (report.nodeid, str(report.longrepr)[-300:] if report.longrepr else ""))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")  # scipy's own marks
def test_scipy_testmapcoordinates_passes(monkeypatch, tmp_path):
    mod = scipy_test_module()
    calls = []

    def patched(*args, **kwargs):
        calls.append(1)
        return va.map_coordinates(*args, **kwargs)

    # The test module calls ndimage.map_coordinates with `import scipy.ndimage as ndimage`; patch
    # that attribute, and any name the module itself binds.
    monkeypatch.setattr(ndi, "map_coordinates", patched)
    if hasattr(mod, "map_coordinates"):
        monkeypatch.setattr(mod, "map_coordinates", patched)
    monkeypatch.delenv("SCIPY_ARRAY_API", raising=False)
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    rec = Outcomes()
    rc = pytest.main([mod.__file__ + "::TestMapCoordinates", "-q", "-p", "no:cacheprovider", "-c", str(ini),
                      "--rootdir", os.path.dirname(scipy.__file__), "-W", "ignore::DeprecationWarning"],
                     plugins=[rec])
    assert not rec.failed, "\n".join(f"{n}: {r}" for n, r in rec.failed)
    allowed_skips = [s for s in rec.skipped if "large_data" in s[0] and "memory" in s[1].lower()]
    assert len(rec.skipped) == len(allowed_skips), rec.skipped
    assert rc == 0
    assert len(rec.passed) >= 20, rec.passed  # 22 in scipy 1.17
    assert len(calls) >= len(rec.passed)  # the tests ran voxalign's function


DATA = np.array([[4, 1, 3, 2], [7, 6, 8, 5], [3, 5, 3, 6]])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int16, ">i4", bool])
def test_integer_input_keeps_its_dtype(dtype):
    a = DATA.astype(dtype)
    idx = np.indices(a.shape, dtype=np.float64) * 0.7
    got = va.map_coordinates(a, idx, order=3)
    ref = ndi.map_coordinates(a, idx, order=3)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("out_dtype", [np.int64, np.int8, np.uint8, np.uint16, np.int32, bool, np.float32])
@pytest.mark.parametrize("order", [0, 1, 3, 5])
def test_output_dtype_rounds_like_scipy(out_dtype, order):
    """Integers on the nodes (0.9999999999999989 must give 1, not 0), negatives and values beyond
    the type's range, as an output dtype and as an output array of either byte order. (Exact ties,
    x.5, are left out: which side of them a spline lands is rounding, in scipy as here; so are the
    integer nodes for bool, which truncates.)"""
    rng = np.random.default_rng(order)
    a = rng.uniform(-400, 400, (9, 8))
    a[2:5, 2:5] = [[1, -1, 2], [0.3, -0.7, 2.2], [127.6, -128.6, 300.2]]
    idx = np.indices(a.shape, dtype=np.float64) - 0.5
    idx[:, 2:5, 2:5] += 0.5  # on the nodes: interpolation gives back the sample to rounding
    for out in (out_dtype, np.dtype(out_dtype).newbyteorder(), np.empty(a.shape, out_dtype),
                np.empty(a.shape, np.dtype(out_dtype).newbyteorder())):
        got = va.map_coordinates(a, idx, output=out, order=order, mode="nearest")
        ref = ndi.map_coordinates(a, idx, output=out if not isinstance(out, np.ndarray) else np.empty_like(out),
                                  order=order, mode="nearest")
        if isinstance(out, np.ndarray):
            assert got is out
        assert got.dtype == ref.dtype
        if np.dtype(out_dtype).kind == "f":
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-3)
        elif np.dtype(out_dtype).kind == "b":
            keep = np.ones(a.shape, bool)
            keep[2, 2:5] = False
            np.testing.assert_array_equal(got[keep], ref[keep])
        else:
            np.testing.assert_array_equal(got, ref)


def test_one_minus_rounding_becomes_one():
    """The issue's case: scipy's endianness test, where the interpolated value is 0.9999999999999989."""
    data = np.asarray([[1, 2], [7, 6]])
    idx = np.indices(data.shape) - 1
    for out in (data.dtype, data.dtype.newbyteorder(), np.empty((2, 2), data.dtype),
                np.empty((2, 2), data.dtype.newbyteorder())):
        got = va.map_coordinates(data, idx, output=out)
        np.testing.assert_array_equal(got, [[0, 0], [0, 1]])


@pytest.mark.parametrize("order", [0, 1, 3])
def test_complex_input(order):
    a = (DATA - 1j * DATA[::-1]).astype(np.complex128)
    idx = np.indices(a.shape, dtype=np.float64) * 0.6 + 0.2
    got = va.map_coordinates(a, idx, order=order, cval=1 + 2j)
    ref = ndi.map_coordinates(a, idx, order=order, cval=1 + 2j)
    assert got.dtype == ref.dtype == np.complex128
    np.testing.assert_allclose(got, ref, atol=1e-12)
    a64 = a.astype(np.complex64)
    assert va.map_coordinates(a64, idx, order=order).dtype == np.complex64
    with pytest.raises(ValueError, match="complex"):
        va.map_coordinates(a, idx, output=np.empty(idx.shape[1:], np.float64))


def test_float32_stays_float32():
    a = DATA.astype(np.float32)
    idx = np.indices(a.shape, dtype=np.float64) * 0.7
    got = va.map_coordinates(a, idx)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ndi.map_coordinates(a, idx), atol=1e-5)


def test_refusals_are_clear():
    with pytest.raises(ValueError, match="1 to 3 axes"):
        va.map_coordinates(np.zeros((2, 2, 2, 2)), np.zeros((4, 3)))
    with pytest.raises(TypeError, match="complex"):
        va.map_coordinates(DATA, np.indices(DATA.shape) + 0j)
    with pytest.raises(ValueError, match="shape"):
        va.map_coordinates(DATA, np.indices(DATA.shape), output=np.empty((2, 2)))
    with pytest.raises(ValueError):
        va.map_coordinates(DATA, np.zeros((3, 4)))
