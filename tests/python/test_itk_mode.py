"""Mode 'itk' and the resampling default (issue 21, section 4): at the field-of-view edge voxalign
gives ITK's answer (ResampleImageFilter, as antsApplyTransforms and SimpleITK use it).

ITK writes the default value where the interpolator's IsInsideBuffer(continuous index) is false,
i.e. outside [-0.5, n-0.5) on any axis (itkImageFunction.h/.hxx), and inside it its B-spline
interpolator mirrors coefficients and taps while its linear and nearest-neighbour interpolators
clamp to the edge sample. Reference: SimpleITK (the installed version), given the same arrays and
geometry. Tolerances: 1e-9 of the range in float64 on small synthetic images (ITK's prefilter
truncates its boundary sums at 1e-10 relative); on ch2 (uint8 range 0..254, float32 output) no
voxel may differ by more than 1e-3 -- the issue's figure was 46,717 voxels differing by more than 1.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import voxalign as va

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from edges_vs_sitk import rigid  # noqa: E402  (the pair the bench measures)

F = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS
INTERP = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}


def to_sitk(arr, affine):
    arr = np.asarray(arr)
    nd = arr.ndim
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(tuple(range(nd))[::-1])))
    L = (F @ affine)[:nd, :]
    sp = np.linalg.norm(L[:nd, :nd], axis=0)
    img.SetSpacing(sp.tolist())
    img.SetOrigin(L[:nd, 3].tolist())
    img.SetDirection((L[:nd, :nd] / sp).ravel().tolist())
    return img


def sitk_resample(arr, affine, shape, target_affine, T, degree, out=sitk.sitkFloat64, default=0.0):
    nd = len(shape)
    L = F @ T @ F
    t = sitk.AffineTransform(nd)
    t.SetMatrix(L[:nd, :nd].ravel().tolist())
    t.SetTranslation(L[:nd, 3].tolist())
    ref = to_sitk(np.zeros(shape, np.uint8), target_affine)
    r = sitk.Resample(to_sitk(arr, affine), ref, t, INTERP[degree], default, out)
    return sitk.GetArrayFromImage(r).transpose(tuple(range(nd))[::-1])




def test_default_mode_is_itk():
    assert va.RESAMPLE_DEFAULT_MODE == "itk"
    import inspect
    assert inspect.signature(va.resample).parameters["mode"].default == "itk"


@pytest.mark.parametrize("degree", [0, 1, 3])
@pytest.mark.parametrize("shift", [-0.5, -0.5 - 1e-9, -0.5 + 1e-9, 0.5, 0.5 - 1e-9, 0.5 + 1e-9, -0.3, 0.3, 0.0])
def test_window_edges_match_simpleitk(degree, shift):
    """Shifts that put the edge voxels exactly on, just inside and just outside ITK's window
    [-0.5, n-0.5): the default value and the interpolated edge values agree with ITK's."""
    rng = np.random.default_rng(0)
    a = rng.uniform(1.0, 2.0, (11, 8, 7))
    T = np.eye(4)
    T[:3, 3] = [shift, -shift / 2, shift]
    ref = sitk_resample(a, np.eye(4), a.shape, np.eye(4), T, degree)
    got = va.resample(a, np.eye(4), a.shape, np.eye(4), transform=T, degree=degree)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    assert ((got == 0) == (ref == 0)).all()


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_oblique_grids_match_simpleitk(degree):
    """An oblique anisotropic input, another grid (finer, rotated, larger than the input's
    extent) and an affine transform: every voxel, edges included."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(1)
    a = gaussian_filter(rng.normal(size=(30, 26, 22)), 1.5) * 50 + 100
    c, s = np.cos(0.3), np.sin(0.3)
    A = np.eye(4)
    A[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([1.2, 1.0, 1.4])
    A[:3, 3] = [-18.0, -12.0, -15.0]
    B = np.eye(4)
    c2, s2 = np.cos(-0.2), np.sin(-0.2)
    B[:3, :3] = np.array([[1, 0, 0], [0, c2, -s2], [0, s2, c2]]) * 0.7
    B[:3, 3] = [-30.0, -25.0, -22.0]
    shape = (70, 68, 60)
    T = rigid(A, a.shape, 8.0, (2.0, -3.0, 1.5))
    T[:3, :3] *= 1.05
    ref = sitk_resample(a, A, shape, B, T, degree)
    got = va.resample(a, A, shape, B, transform=T, degree=degree)
    scale = np.ptp(a)
    assert 0.05 < (ref == 0).mean() < 0.95  # the field of view's edge crosses the output
    bad = np.abs(got - ref) > 1e-9 * scale
    assert bad.sum() == 0, f"{bad.sum()} voxels differ, max {np.abs(got - ref).max()}"


def test_2d_matches_simpleitk():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 10, (33, 27))
    A = np.diag([0.9, 1.1, 1.0, 1.0])
    T = np.eye(4)
    c, s = np.cos(0.4), np.sin(0.4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = [3.0, -2.0]
    ref = sitk_resample(a, A, a.shape, A, T, 3)
    got = va.resample(a, A, a.shape, A, transform=T, degree=3)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * np.ptp(a))


def test_cval_is_itk_default_value():
    a = np.random.default_rng(3).uniform(1, 2, (12, 10, 9))
    T = np.eye(4)
    T[:3, 3] = [4.3, 0, 0]
    ref = sitk_resample(a, np.eye(4), a.shape, np.eye(4), T, 3, default=-7.0)
    got = va.resample(a, np.eye(4), a.shape, np.eye(4), transform=T, degree=3, cval=-7.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    assert (got == -7.0).sum() == 4 * 10 * 9


@pytest.mark.parametrize("degree", [1, 3])
def test_ch2_rigid_matches_simpleitk(t1_path, degree):
    """The issue's case: ch2, rigid 10 degrees / 10 mm, cubic and linear, through the Python default."""
    data, aff, _ = va.read_nifti(t1_path, dtype=np.float32)
    T = rigid(aff, data.shape)
    ref = sitk_resample(data, aff, data.shape, aff, T, degree, sitk.sitkFloat32)
    got = va.resample(data, aff, data.shape, aff, transform=T, degree=degree)
    d = np.abs(got.astype(np.float64) - ref)
    assert (d > 1).sum() == 0 and d.max() < 1e-3, (int((d > 1).sum()), float(d.max()))
    # the transform moves part of the output grid outside the input's field of view
    M = np.linalg.inv(aff) @ T @ aff
    x = M[:3, :3] @ np.indices(data.shape).reshape(3, -1) + M[:3, 3:4]
    outside = ~np.all((x >= -0.5) & (x < np.array(data.shape)[:, None] - 0.5), axis=0)
    assert outside.sum() > 5e5 and (ref.ravel()[outside] == 0).all()


def test_ch2_cli_like_and_register_apply_match_simpleitk(t1_path, tmp_path, cli):
    """`voxalign resample --like` (CLI default) onto a coarser rotated grid, and Registration.apply's
    default, against SimpleITK."""
    data, aff, _ = va.read_nifti(t1_path, dtype=np.float32)
    T = rigid(aff, data.shape)
    B = np.eye(4)
    c, s = np.cos(0.1), np.sin(0.1)
    B[:3, :3] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) * 1.3
    B[:3, 3] = [-95.0, -128.0, -75.0]
    shape = (145, 172, 145)
    va.write_nifti(tmp_path / "like.nii.gz", np.zeros(shape, np.float32), B)
    va.write_itk_affine(tmp_path / "t.txt", T)
    cli("resample", t1_path, "-o", tmp_path / "out.nii.gz", "--like", tmp_path / "like.nii.gz", "-t", tmp_path / "t.txt",
        "-q")
    out, oaff, _ = va.read_nifti(tmp_path / "out.nii.gz", dtype=np.float32)
    np.testing.assert_allclose(oaff, B, atol=1e-5)
    ref = sitk_resample(data, aff, shape, B, T, 3, sitk.sitkFloat32)
    d = np.abs(out.astype(np.float64) - ref)
    assert (d > 1).sum() == 0 and d.max() < 1e-3, (int((d > 1).sum()), float(d.max()))
    # Registration.apply with its default mode gives the same as resample's default.
    from voxalign.registration import Registration
    r = Registration.__new__(Registration)
    r.matrix, r.fixed_shape, r.fixed_affine, r.moving_affine = T, shape, B, aff
    np.testing.assert_array_equal(r.apply(data), va.resample(data, aff, shape, B, transform=T))
