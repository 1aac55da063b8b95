"""Transform files are read as what they are, never guessed (issue 21, section 2): a FLIRT .mat is
converted between the two images' grids or refused by name, an AFNI matrix is refused by name, ITK
.mat files with non-finite numbers and device files are refused. Reference for the FLIRT
convention: the RAS matrix voxalign register writes beside it (--save-matrix), itself checked
against SimpleITK in test_register.py.

ITK files written by name (issue 16, section 3): --save-transform / Registration.save write .txt/.tfm as
ITK text and .mat as ITK/ANTs binary MATLAB v4. Reference: SimpleITK (ITK's own MatlabTransformIO):
it reads our .mat as the same transform as the text (points within 1e-9 mm), writes the same bytes for
that transform, and resamples the moving image through it to voxalign's moved image (1e-3 of the range)."""
import struct
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import voxalign as va

ROOT = Path(__file__).resolve().parents[2]
VOXALIGN = ROOT / "build" / "release" / "voxalign"


def run(*args, ok=True):
    r = subprocess.run([str(VOXALIGN), *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two images on different grids (one oblique, one with a positive determinant) and the FLIRT
    and RAS matrices register writes for them."""
    d = tmp_path_factory.mktemp("flirt")
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (30, 28, 24)], indexing="ij")
    vol = (np.exp(-5 * ((x - 0.2) ** 2 + (y + 0.1) ** 2 + z**2)) + 0.5 * np.exp(-9 * ((x + 0.3) ** 2 + y**2 +
           (z - 0.3) ** 2))).astype(np.float32) * 100
    fa = np.array([[-2.0, 0, 0, 30], [0, 2.0, 0, -28], [0, 0, 2.0, -24], [0, 0, 0, 1]])
    c, s = np.cos(0.2), np.sin(0.2)
    ma = np.array([[1.8 * c, -1.8 * s, 0, -25], [1.8 * s, 1.8 * c, 0, -20], [0, 0, 2.2, -20], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(vol, fa), str(d / "fixed.nii.gz"))
    nib.save(nib.Nifti1Image(vol, ma), str(d / "moving.nii.gz"))
    run("register", d / "moving.nii.gz", "--fixed", d / "fixed.nii.gz", "-o", d / "moved.nii.gz", "--levels", "2,1",
        "--save-fsl", d / "flirt.mat", "--save-matrix", d / "ras.txt", "--save-transform", d / "itk.mat", "-q")
    return d


def test_resample_converts_a_flirt_matrix(pair):
    d = pair
    run("resample", d / "moving.nii.gz", "--like", d / "fixed.nii.gz", "-t", d / "flirt.mat", "-o", d / "a.nii", "-q")
    run("resample", d / "moving.nii.gz", "--like", d / "fixed.nii.gz", "-t", d / "ras.txt", "-o", d / "b.nii", "-q")
    a, b = nib.load(str(d / "a.nii")).get_fdata(), nib.load(str(d / "b.nii")).get_fdata()
    assert np.abs(a - b).max() < 1e-3 * np.abs(b).max()


def test_flirt_matrix_in_a_chain_is_refused(pair):
    d = pair
    r = run("resample", d / "moving.nii.gz", "-t", d / "flirt.mat", "-t", d / "ras.txt", "-o", d / "c.nii", ok=False)
    assert r.returncode == 1 and "flirt.mat: an FSL FLIRT matrix can only be given alone" in r.stderr
    assert not (d / "c.nii").exists()


def test_python_read_transform_knows_flirt(pair):
    d = pair
    with pytest.raises(OSError, match="flirt.mat: an FSL FLIRT matrix"):
        va.read_transform(d / "flirt.mat")
    ras = va.read_transform(d / "ras.txt")
    for ref, mov in ((d / "fixed.nii.gz", d / "moving.nii.gz"),
                     (nib.load(str(d / "fixed.nii.gz")), nib.load(str(d / "moving.nii.gz")))):
        got = va.read_transform(d / "flirt.mat", reference=ref, moving=mov)
        np.testing.assert_allclose(got, ras, atol=1e-6)


def test_ras_matrix_written_by_voxalign_is_known_by_its_header(pair, tmp_path):
    m = va.read_transform(pair / "ras.txt")
    renamed = tmp_path / "ras_named.mat"
    renamed.write_text((pair / "ras.txt").read_text())
    np.testing.assert_array_equal(va.read_transform(renamed), m)


def test_save_fsl_needs_a_mat_name(pair, tmp_path):
    d = pair
    r = run("register", d / "moving.nii.gz", "--fixed", d / "fixed.nii.gz", "-o", tmp_path / "m.nii.gz",
            "--levels", "1", "--save-fsl", tmp_path / "flirt.txt", ok=False)
    assert r.returncode != 0 and "flirt.txt" in r.stderr and ".mat" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, text", [
    ("afni.aff12.1D", "# 3dAllineate matrices\n1 0 0 2 0 1 0 3 0 0 1 4\n"),
    ("afni.txt", "1 0 0 2 0 1 0 3 0 0 1 4\n"),
])
def test_afni_matrix_is_refused_by_name(tmp_path, pair, name, text):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(OSError, match="AFNI"):
        va.read_transform(p)
    r = run("resample", pair / "moving.nii.gz", "-t", p, "-o", tmp_path / "o.nii", ok=False)
    assert r.returncode == 1 and "AFNI" in r.stderr and not (tmp_path / "o.nii").exists()


def _itk_mat(values):
    """An ITK MATLAB v4 .mat (AffineTransform_double_3_3 + fixed), as ANTs writes it."""
    out = b""
    for name, vals in (("AffineTransform_double_3_3", values), ("fixed", [0.0, 0.0, 0.0])):
        nm = name.encode() + b"\0"
        out += struct.pack("<5i", 0, len(vals), 1, 0, len(nm)) + nm + struct.pack(f"<{len(vals)}d", *vals)
    return out


def test_itk_mat_with_nan_or_inf_is_refused(tmp_path):
    good = [1, 0, 0, 0, 1, 0, 0, 0, 1, 2.0, 3.0, 4.0]
    p = tmp_path / "ok.mat"
    p.write_bytes(_itk_mat(good))
    np.testing.assert_allclose(va.read_transform(p)[:3, 3], [-2, -3, 4])  # LPS -> RAS
    for bad in (float("nan"), float("inf")):
        v = list(good)
        v[4] = bad
        p.write_bytes(_itk_mat(v))
        with pytest.raises(OSError, match="not finite"):
            va.read_transform(p)


def test_device_files_are_not_read_as_transforms(tmp_path, pair):
    for dev in ("/dev/zero", "/dev/urandom"):
        with pytest.raises(OSError, match="not a regular file"):
            va.read_transform(dev)
        r = run("resample", pair / "moving.nii.gz", "-t", dev, "-o", tmp_path / "o.nii", ok=False)
        assert r.returncode == 1 and "not a regular file" in r.stderr


def test_save_transform_mat_is_what_itk_writes(pair, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    ras = va.read_transform(pair / "ras.txt")
    va.write_itk_affine(tmp_path / "itk.txt", ras)
    a, b = sitk.ReadTransform(str(pair / "itk.mat")), sitk.ReadTransform(str(tmp_path / "itk.txt"))
    pts = np.array([[0.0, 0, 0], [12.5, -30, 7], [-40, 25, -18], [3, 3, 60]])
    for p in pts:
        np.testing.assert_allclose(a.TransformPoint(tuple(p)), b.TransformPoint(tuple(p)), atol=1e-9)
    # ITK's own writer gives the same bytes for that transform
    sitk.WriteTransform(b, str(tmp_path / "sitk.mat"))
    assert (tmp_path / "sitk.mat").read_bytes() == (pair / "itk.mat").read_bytes()
    np.testing.assert_allclose(va.read_transform(pair / "itk.mat"), ras, atol=1e-12)


def test_save_transform_mat_resampled_by_simpleitk(pair):
    sitk = pytest.importorskip("SimpleITK")
    fi = sitk.ReadImage(str(pair / "fixed.nii.gz"), sitk.sitkFloat64)
    mi = sitk.ReadImage(str(pair / "moving.nii.gz"), sitk.sitkFloat64)
    tx = sitk.ReadTransform(str(pair / "itk.mat"))
    ref = sitk.GetArrayFromImage(sitk.Resample(mi, fi, tx, sitk.sitkBSpline, 0.0)).transpose(2, 1, 0)
    ours = nib.load(str(pair / "moved.nii.gz")).get_fdata()
    inner = (slice(4, -4),) * 3
    assert np.abs(ours[inner] - ref[inner]).max() < 1e-3 * (ref.max() - ref.min())


@pytest.mark.parametrize("name", ["x.xfm", "x.nii.gz", "x"])
def test_save_transform_refuses_other_names(pair, tmp_path, name):
    d = pair
    r = run("register", d / "moving.nii.gz", "--fixed", d / "fixed.nii.gz", "-o", tmp_path / "m.nii.gz",
            "--levels", "1", "--save-transform", tmp_path / name, ok=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert all(s in r.stderr for s in ("--save-transform", name, ".txt", ".tfm", ".mat")), r.stderr
    assert r.stdout == ""  # refused before registering
    assert list(tmp_path.iterdir()) == []


def test_registration_save_chooses_by_name(pair, tmp_path):
    fixed, moving = nib.load(str(pair / "fixed.nii.gz")), nib.load(str(pair / "moving.nii.gz"))
    r = va.register(moving, fixed, init=pair / "ras.txt", iterations=0, levels=(2,))
    r.save(tmp_path / "a.mat")  # ITK/ANTs binary, as --save-transform a.mat
    assert (tmp_path / "a.mat").read_bytes() == (pair / "itk.mat").read_bytes()
    for n in ("a.txt", "a.tfm"):
        r.save(tmp_path / n)
        assert (tmp_path / n).read_text().startswith("#Insight Transform File")
        np.testing.assert_allclose(va.read_transform(tmp_path / n), r.matrix, atol=1e-12)
    r.save(tmp_path / "b.mat", format="itk")
    assert (tmp_path / "b.mat").read_bytes() == (tmp_path / "a.mat").read_bytes()
    r.save(tmp_path / "f.mat", format="fsl")  # FLIRT only when asked for
    np.testing.assert_allclose(va.read_transform(tmp_path / "f.mat", reference=fixed, moving=moving), r.matrix,
                               atol=1e-6)
    before = sorted(tmp_path.iterdir())
    for bad in ("a.xfm", "a"):
        with pytest.raises(ValueError, match=r"\.txt or \.tfm .*\.mat"):
            r.save(tmp_path / bad)
    assert sorted(tmp_path.iterdir()) == before
