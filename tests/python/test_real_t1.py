"""On a real T1 volume (Debian's mricron-data ch2.nii.gz, 181x217x181, uint8):
- voxalign.read_nifti equals nibabel (values and affine);
- cubic resampling through a rigid world transform equals scipy.ndimage.affine_transform given the
  equivalent voxel-space matrix (tolerance 1e-4 of the intensity range: float32 arithmetic);
- an ITK Euler3D file gives the same result as SimpleITK reading it (interior voxels, 1e-3 of range);
- the result is bit-identical with 1 and 2 threads."""
import numpy as np
import pytest

import voxalign as va


def test_real_t1_resample(t1_path, tmp_path):
    nib = pytest.importorskip("nibabel")
    ndi = pytest.importorskip("scipy.ndimage")
    img = nib.load(t1_path)
    data, affine, info = va.read_nifti(t1_path, dtype=np.float32)
    np.testing.assert_array_equal(data, img.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(affine, img.affine, atol=1e-6)
    assert info["dtype"] == "uint8"

    centre = affine @ np.r_[(np.array(data.shape) - 1) / 2, 1]
    c, s = np.cos(0.15), np.sin(0.15)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, np.cos(0.1), -np.sin(0.1)],
                                                                 [0, np.sin(0.1), np.cos(0.1)]])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = centre[:3] - R @ centre[:3] + [4.0, -3.0, 2.5]
    va.set_num_threads(1)
    one = va.resample(data, affine, data.shape, affine, transform=T, degree=3, mode="grid-constant")
    va.set_num_threads(2)
    two = va.resample(data, affine, data.shape, affine, transform=T, degree=3, mode="grid-constant")
    va.set_num_threads(None)
    assert one.tobytes() == two.tobytes()

    M = np.linalg.inv(affine) @ T @ affine
    ref = ndi.affine_transform(data.astype(np.float64), M, order=3, mode="grid-constant")
    rng = np.ptp(data)
    np.testing.assert_allclose(two, ref, atol=1e-4 * rng)
    assert np.abs(two - data).max() > 0.3 * rng  # it moved

    sitk = pytest.importorskip("SimpleITK")
    # The same transform as an ITK Euler3D file (LPS), through the CLI and through SimpleITK.
    lps = np.diag([-1, -1, 1, 1.0]) @ T @ np.diag([-1, -1, 1, 1.0])
    # Recover ZXY Euler angles of the LPS rotation: R = Rz(az) Rx(ax) Ry(ay).
    Rl = lps[:3, :3]
    ax = np.arcsin(Rl[2, 1])
    ay = np.arctan2(-Rl[2, 0], Rl[2, 2])
    az = np.arctan2(-Rl[0, 1], Rl[1, 1])
    tfm = tmp_path / "euler.txt"
    tfm.write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: Euler3DTransform_double_3_3\n"
                   "Parameters: " + " ".join(repr(float(v)) for v in (ax, ay, az, *lps[:3, 3])) + "\n"
                   "FixedParameters: 0 0 0 0\n")
    np.testing.assert_allclose(va.read_transform(tfm), T, atol=1e-9)
    simg = sitk.ReadImage(str(t1_path), sitk.sitkFloat32)
    ref2 = sitk.GetArrayFromImage(sitk.Resample(simg, simg, sitk.ReadTransform(str(tfm)), sitk.sitkBSpline, 0.0,
                                                sitk.sitkFloat32)).transpose(2, 1, 0)
    grid = np.indices(data.shape).reshape(3, -1)
    src = M[:3, :3] @ grid + M[:3, 3:4]
    n = np.array(data.shape)[:, None]
    inside = np.all((src > 3) & (src < n - 4), axis=0).reshape(data.shape)
    ours = va.resample(data, affine, data.shape, affine, transform=str(tfm), degree=3, mode="mirror")
    np.testing.assert_allclose(ours[inside], ref2[inside], atol=1e-3 * rng)
