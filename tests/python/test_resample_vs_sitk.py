"""Resampling through ITK transform files agrees with SimpleITK (the reference for ITK files):
SimpleITK reads the same file and resamples with its B-spline interpolator of the same degree.

ITK's B-spline interpolator uses mirror-like boundary handling for coefficients and returns the
default value outside the image, so the comparison is made at output voxels whose source point lies
well inside the input. Tolerance: 1e-4 of the image range (SimpleITK computes in float32 for float32
images and its prefilter truncates the boundary initialisation)."""
import numpy as np
import pytest
import SimpleITK as sitk

import voxalign as va


def make_pair(tmp_path):
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter
    data = gaussian_filter(rng.normal(size=(40, 44, 36)), 2.5) * 100
    # An oblique, anisotropic grid (ITK only takes orthogonal direction matrices from NIfTI).
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = R @ np.diag([1.2, 1.0, 1.4])
    affine[:3, 3] = [-20.0, -25.0, -30.0]
    path = tmp_path / "in.nii.gz"
    va.write_nifti(path, data, affine, dtype="float64")
    return data, affine, path


ITK_FILES = {
    "affine": "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
              "Parameters: 0.99 -0.08 0.03 0.09 0.98 -0.05 -0.02 0.06 1.03 2.5 -1.5 3.0\n"
              "FixedParameters: 1.0 -2.0 3.0\n",
    "euler": "#Insight Transform File V1.0\n#Transform 0\nTransform: Euler3DTransform_double_3_3\n"
             "Parameters: 0.08 -0.05 0.12 -2.0 1.0 3.5\nFixedParameters: 5.0 -3.0 2.0 0\n",
    "versor": "#Insight Transform File V1.0\n#Transform 0\nTransform: VersorRigid3DTransform_double_3_3\n"
              "Parameters: 0.03 -0.04 0.05 1.0 2.0 -1.0\nFixedParameters: -4.0 3.0 1.0\n",
}


@pytest.mark.parametrize("kind", sorted(ITK_FILES))
@pytest.mark.parametrize("degree", [1, 3])
def test_itk_file_matches_simpleitk(tmp_path, kind, degree):
    data, affine, path = make_pair(tmp_path)
    tfm = tmp_path / f"{kind}.txt"
    tfm.write_text(ITK_FILES[kind])
    ours = va.resample(data, affine, data.shape, affine, transform=str(tfm), degree=degree, mode="mirror")

    img = sitk.ReadImage(str(path), sitk.sitkFloat64)
    t = sitk.ReadTransform(str(tfm))
    interp = {1: sitk.sitkLinear, 3: sitk.sitkBSpline}[degree]
    ref_img = sitk.Resample(img, img, t, interp, -1e6, sitk.sitkFloat64)
    ref = sitk.GetArrayFromImage(ref_img).transpose(2, 1, 0)  # sitk arrays are [k, j, i]

    # Output voxels whose source point is at least 3 voxels inside the input.
    M = np.linalg.inv(affine) @ va.read_transform(tfm) @ affine
    grid = np.indices(data.shape).reshape(3, -1)
    src = M[:3, :3] @ grid + M[:3, 3:4]
    n = np.array(data.shape)[:, None]
    inside = np.all((src > 3) & (src < n - 4), axis=0).reshape(data.shape)
    assert inside.mean() > 0.4
    scale = np.ptp(data)
    np.testing.assert_allclose(ours[inside], ref[inside], atol=1e-4 * scale)
    # The transform moved the image (the test has teeth).
    assert np.abs(ours[inside] - data[inside]).max() > 0.05 * scale


def test_ras_matrix_equals_itk_file(tmp_path):
    """A 4x4 RAS text file and the equivalent ITK (LPS) file give the same transform."""
    tfm = tmp_path / "a.txt"
    tfm.write_text(ITK_FILES["affine"])
    ras = va.read_transform(tfm)
    p = tmp_path / "ras.txt"
    np.savetxt(p, ras)
    np.testing.assert_allclose(va.read_transform(p), ras, atol=1e-12)
    back = tmp_path / "back.txt"
    va.write_itk_affine(back, ras)
    np.testing.assert_allclose(va.read_transform(back), ras, atol=1e-12)
    # SimpleITK reads what we write and maps points identically (LPS).
    t = sitk.ReadTransform(str(back))
    p_lps = np.array([10.0, -20.0, 30.0])
    p_ras = p_lps * [-1, -1, 1]
    q_ras = ras[:3, :3] @ p_ras + ras[:3, 3]
    np.testing.assert_allclose(np.array(t.TransformPoint(tuple(p_lps))) * [-1, -1, 1], q_ras, atol=1e-9)


def test_rigid_there_and_back():
    rng = np.random.default_rng(2)
    from scipy.ndimage import gaussian_filter
    data = gaussian_filter(rng.normal(size=(48, 48, 48)), 3)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    c, s = np.cos(0.2), np.sin(0.2)
    T = np.array([[c, -s, 0, 1.5], [s, c, 0, -2.0], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    moved = va.resample(data, affine, data.shape, affine, transform=T, degree=5, mode="nearest")
    back = va.resample(moved, affine, data.shape, affine, transform=np.linalg.inv(T), degree=5, mode="nearest")
    core = (slice(14, 34),) * 3
    err = np.abs(back[core] - data[core]).max() / np.ptp(data[core])
    assert err < 5e-3
    assert np.abs(moved[core] - data[core]).max() / np.ptp(data[core]) > 0.1


def test_transform_list_applies_in_order_given(tmp_path, cli):
    """transform=[A, B] (and -t A -t B) samples the input at B(A(x)): the same as the one matrix B @ A,
    and different from A @ B."""
    rng = np.random.default_rng(3)
    from scipy.ndimage import gaussian_filter
    data = gaussian_filter(rng.normal(size=(30, 32, 28)), 2).astype(np.float32)
    aff = np.diag([1.5, 1.5, 2.0, 1.0])
    aff[:3, 3] = [-20, -24, -27]
    c, s = np.cos(0.3), np.sin(0.3)
    A = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    B = np.eye(4)
    B[:3, 3] = [6.0, 0, 0]
    listed = va.resample(data, aff, data.shape, aff, transform=[A, B], degree=3)
    np.testing.assert_array_equal(listed, va.resample(data, aff, data.shape, aff, transform=B @ A, degree=3))
    assert np.abs(listed - va.resample(data, aff, data.shape, aff, transform=A @ B, degree=3)).max() > 0.1 * np.ptp(data)
    # The CLI composes -t A -t B the same way.
    va.write_nifti(tmp_path / "in.nii", data, aff)
    np.savetxt(tmp_path / "A.txt", A)
    np.savetxt(tmp_path / "B.txt", B)
    cli("resample", tmp_path / "in.nii", "-o", tmp_path / "out.nii", "-t", tmp_path / "A.txt", "-t", tmp_path / "B.txt",
        "-q")  # the CLI's default mode is Python's
    out, _, _ = va.read_nifti(tmp_path / "out.nii", dtype=np.float32)
    np.testing.assert_allclose(out, listed, atol=1e-5 * np.ptp(data))


def test_transform_as_nested_list():
    data = np.random.default_rng(4).normal(size=(8, 9, 10))
    T = [[1, 0, 0, 1.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(va.resample(data, np.eye(4), data.shape, np.eye(4), transform=T),
                                  va.resample(data, np.eye(4), data.shape, np.eye(4), transform=np.array(T, float)))
