"""voxalign applies ANTs' own SyN outputs the way antsApplyTransforms does: ANTsPy's ants.registration
(type_of_transform "SyN", a short schedule on ch2 at 4 mm) writes 1Warp.nii.gz and 0GenericAffine.mat;
`voxalign resample MOVING --like FIXED -t 1Warp.nii.gz -t 0GenericAffine.mat` (and the Python API with
the same files) gives ants.apply_transforms' image (linear interpolation, voxalign's default boundary
mode `itk`) within 1e-5 of the image's range at every voxel (measured: 2e-7, float32 rounding).
Bad field files (a scalar image, 2 components, a time axis in place of the
vector axis) are refused with one line naming the file, and no output is left behind."""
import os

import numpy as np
import pytest

import voxalign as vx

CH2 = "/usr/share/mricron/templates/ch2.nii.gz"
pytestmark = pytest.mark.skipif(not os.path.exists(CH2), reason="mricron-data (ch2) not installed")
ants = pytest.importorskip("ants")
nib = pytest.importorskip("nibabel")


def _pair(tmp):
    import scipy.ndimage as ndi
    img = nib.load(CH2)
    a, aff, f = img.get_fdata(dtype=np.float32), img.affine, 4.0 / abs(img.affine[0, 0])
    shape = [int(s // f) for s in a.shape]
    idx = np.meshgrid(*[np.arange(n) * f + (f - 1) / 2 for n in shape], indexing="ij")
    F = ndi.map_coordinates(ndi.gaussian_filter(a, 0.5 * f), idx, order=1).astype(np.float32)
    A = aff.copy()
    A[:3, :3] *= f
    A[:3, 3] += aff[:3, :3] @ np.full(3, (f - 1) / 2)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    xyz = ijk @ A[:3, :3].T + A[:3, 3]
    w = np.stack([3 * np.sin(xyz[..., 1] / 18) + 2, 2.5 * np.sin(xyz[..., 0] / 20 + 0.5) - 1,
                  2 * np.cos(xyz[..., 0] / 22) * np.sin(xyz[..., 1] / 15)], -1)
    vi = (xyz + w - A[:3, 3]) @ np.linalg.inv(A[:3, :3]).T
    M = ndi.map_coordinates(F, np.moveaxis(vi, -1, 0), order=3, mode="nearest").astype(np.float32)
    fp, mp = os.path.join(tmp, "fixed.nii.gz"), os.path.join(tmp, "moving.nii.gz")
    nib.save(nib.Nifti1Image(F, A), fp)
    nib.save(nib.Nifti1Image(M, A), mp)
    return fp, mp


@pytest.fixture(scope="module")
def ants_run(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ants_syn"))
    fp, mp = _pair(tmp)
    fi, mi = ants.image_read(fp), ants.image_read(mp)
    out = ants.registration(fi, mi, type_of_transform="SyN", reg_iterations=(20, 10, 0),
                            outprefix=os.path.join(tmp, "ants_"))
    warp, affine = out["fwdtransforms"]
    assert warp.endswith("1Warp.nii.gz") and affine.endswith("0GenericAffine.mat")
    ref = ants.apply_transforms(fi, mi, transformlist=[warp, affine], interpolator="linear").numpy()
    return tmp, fp, mp, warp, affine, ref


def test_voxalign_applies_ants_syn_like_antsapplytransforms(ants_run, cli):
    tmp, fp, mp, warp, affine, ref = ants_run
    out = os.path.join(tmp, "vx.nii.gz")
    cli("resample", mp, "--like", fp, "-t", warp, "-t", affine, "-o", out, "--degree", "1")  # mode itk: as ANTs
    got = nib.load(out).get_fdata()
    assert got.shape == ref.shape
    rng = float(ref.max() - ref.min())
    # the warp must matter: ANTs' result differs from the affine alone
    aff_only = ants.apply_transforms(ants.image_read(fp), ants.image_read(mp), transformlist=[affine],
                                     interpolator="linear").numpy()
    assert np.abs(aff_only - ref).max() > 0.05 * rng
    err = np.abs(got - ref)
    assert err.max() <= 1e-5 * rng, f"max |voxalign - antsApplyTransforms| = {err.max()} (range {rng})"
    # the Python API with the same files
    m = nib.load(mp)
    f = nib.load(fp)
    py = vx.resample(m.get_fdata(dtype=np.float32), m.affine, f.shape, f.affine, transform=[warp, affine],
                     degree=1, mode="itk")
    assert np.abs(np.asarray(py) - ref).max() <= 1e-5 * rng


@pytest.mark.parametrize("kind", ["scalar", "two_components", "time_axis"])
def test_bad_field_files_are_refused_with_one_line(ants_run, cli, kind):
    tmp, fp, mp, warp, affine, _ = ants_run
    w = nib.load(warp)
    data = np.asarray(w.dataobj)  # X x Y x Z x 1 x 3
    if kind == "scalar":
        bad = data[..., 0, 0]
    elif kind == "two_components":
        bad = data[..., :2]
    else:  # X x Y x Z x 3: the components on the time axis, not a vector image
        bad = data[..., 0, :]
    path = os.path.join(tmp, f"bad_{kind}.nii.gz")
    nib.save(nib.Nifti1Image(bad, w.affine), path)
    out = os.path.join(tmp, f"out_{kind}.nii.gz")
    p = cli("resample", mp, "--like", fp, "-t", path, "-t", affine, "-o", out, check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"bad_{kind}.nii.gz" in lines[0], p.stderr
    assert not os.path.exists(out)
