"""voxalign.register(transform="syn") on a real T1 (mricron's ch2 at 3 mm) moved by a known smooth warp:
the fields come back, apply() uses them, the saved warp and affine give voxalign's image through ANTsPy's
apply_transforms (antsApplyTransforms) and SimpleITK, and the estimate is nearer the truth than the
affine alone."""
import os

import numpy as np
import pytest

import voxalign as vx

CH2 = "/usr/share/mricron/templates/ch2.nii.gz"
pytestmark = pytest.mark.skipif(not os.path.exists(CH2), reason="mricron-data (ch2) not installed")


def _w(p):
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return np.stack([3 * np.sin(y / 18) * np.cos(z / 25), 2.5 * np.sin(x / 20 + 0.5),
                     2 * np.cos(x / 22) * np.sin(y / 15)], -1)


@pytest.fixture(scope="module")
def pair():
    import nibabel as nib
    import scipy.ndimage as ndi
    img = nib.load(CH2)
    a, aff, f = img.get_fdata(dtype=np.float32), img.affine, 3.0 / abs(img.affine[0, 0])
    shape = [int(s // f) for s in a.shape]
    idx = np.meshgrid(*[np.arange(n) * f + (f - 1) / 2 for n in shape], indexing="ij")
    F = ndi.map_coordinates(ndi.gaussian_filter(a, 0.5 * f), idx, order=1).astype(np.float32)
    A = aff.copy()
    A[:3, :3] *= f
    A[:3, 3] += aff[:3, :3] @ np.full(3, (f - 1) / 2)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    xyz = ijk @ A[:3, :3].T + A[:3, 3]
    vi = (xyz + _w(xyz) - A[:3, 3]) @ np.linalg.inv(A[:3, :3]).T  # moving(z) = fixed(z + w(z))
    M = ndi.map_coordinates(F, np.moveaxis(vi, -1, 0), order=3, mode="nearest").astype(np.float32)
    reg = vx.register(M, F, moving_affine=A, fixed_affine=A, transform="syn")
    return F, M, A, reg


def test_syn_fields_and_accuracy(pair):
    F, M, A, reg = pair
    assert reg.warp.shape == F.shape + (3,) and reg.inverse_warp.shape == F.shape + (3,)
    ijk = np.argwhere(F > 0.1 * F.max())[::5].astype(float)
    P = ijk @ A[:3, :3].T + A[:3, 3]
    # estimated map: y -> y + warp(y) (at voxel centres: the field's own values), then the matrix
    sel = tuple(ijk.astype(int).T)
    D = P + reg.warp[sel]
    E = D @ reg.matrix[:3, :3].T + reg.matrix[:3, 3]
    Ea = P @ reg.matrix[:3, :3].T + reg.matrix[:3, 3]
    err = lambda Q: np.sqrt(np.mean(np.sum((Q + _w(Q) - P) ** 2, 1)))
    assert err(E) < 0.6 * err(Ea) and err(E) < 1.2, (err(E), err(Ea))
    moved = reg.apply(M, A)
    c0, c1 = np.corrcoef(F.ravel(), M.ravel())[0, 1], np.corrcoef(F.ravel(), moved.ravel())[0, 1]
    assert c1 > c0 + 0.02, (c0, c1)
    assert reg.jacobian().min() > 0


def test_saved_files_through_ants_and_simpleitk(pair, tmp_path):
    F, M, A, reg = pair
    import nibabel as nib
    fixed, moving = str(tmp_path / "fixed.nii.gz"), str(tmp_path / "moving.nii.gz")
    nib.save(nib.Nifti1Image(F, A), fixed)
    nib.save(nib.Nifti1Image(M, A), moving)
    warp, aff = str(tmp_path / "warp.nii.gz"), str(tmp_path / "aff.mat")
    reg.save_warp(warp)
    reg.save(aff)
    ours = reg.apply(M, A, degree=1)
    # voxalign's resample with the files gives what apply gives (float32 field file: same values)
    again = np.asarray(vx.resample(moving, reference=fixed, transform=[warp, aff], degree=1).dataobj)
    assert np.abs(again - ours).max() <= 1e-4 * np.abs(ours).max()
    ants = pytest.importorskip("ants")
    out = ants.apply_transforms(ants.image_read(fixed), ants.image_read(moving), transformlist=[warp, aff],
                                interpolator="linear").numpy()
    inner = (slice(3, -3),) * 3
    # ANTs interpolates in float32 and maps points in float: agreement to 1e-3 of the range
    assert np.abs(out - ours)[inner].max() < 1e-3 * np.abs(ours).max(), np.abs(out - ours)[inner].max()
    import SimpleITK as sitk
    t = sitk.CompositeTransform([sitk.ReadTransform(aff),
                                 sitk.DisplacementFieldTransform(sitk.ReadImage(warp, sitk.sitkVectorFloat64))])
    ijk = np.array([[10, 20, 15], [30, 40, 25], [40, 30, 40]], float)
    P = ijk @ A[:3, :3].T + A[:3, 3]
    D = P + reg.warp[tuple(ijk.astype(int).T)]
    E = D @ reg.matrix[:3, :3].T + reg.matrix[:3, 3]
    Q = np.array([t.TransformPoint((-p[0], -p[1], p[2])) for p in P]) * [-1, -1, 1]
    assert np.abs(Q - E).max() < 1e-4


def test_bad_syn_options():
    a = np.random.default_rng(0).normal(size=(12, 12, 12)).astype(np.float32)
    with pytest.raises(ValueError, match="syn metric: ssd, lncc or mi"):
        vx.register(a, a, transform="syn", syn_metric="ncc")
    with pytest.raises(ValueError, match="syn bins"):
        vx.register(a, a, transform="syn", syn_metric="mi", syn_bins=4)
    with pytest.raises(ValueError, match="mask is empty"):
        vx.register(a, a, transform="syn", fixed_mask=np.zeros(a.shape, np.uint8))
    with pytest.raises(ValueError, match="syn iterations"):
        vx.register(a, a, transform="syn", syn_iterations=[1, 2])
