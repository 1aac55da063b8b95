"""NIfTI I/O agrees with nibabel (the reference): for every NIfTI file in nibabel's own test data,
voxel values and affine equal what nibabel reads; everything voxalign writes nibabel reads back
identically (values, affine, dims, datatype). Files voxalign refuses (unsupported datatypes) must
be refused with a one-line error naming the file."""
import gzip
from pathlib import Path

import nibabel as nib
import nibabel.tests
import numpy as np
import pytest

import voxalign as va

DATA = Path(nibabel.tests.__file__).parent / "data"
SUPPORTED = {np.dtype(t) for t in ("uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                                   "float32", "float64")}


def nifti_files():
    files = []
    for p in sorted(DATA.iterdir()):
        if not (p.name.endswith(".nii") or p.name.endswith(".nii.gz")):
            continue
        try:
            img = nib.load(p)
        except Exception:
            continue
        if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) and not isinstance(img, nib.cifti2.Cifti2Image):
            files.append(p)
    return files


def test_found_test_data():
    assert len(nifti_files()) >= 5


@pytest.mark.parametrize("path", nifti_files(), ids=lambda p: p.name)
def test_read_matches_nibabel(path):
    img = nib.load(path)
    if img.get_data_dtype().newbyteorder("=") not in SUPPORTED or len(img.shape) > 4:
        with pytest.raises(OSError, match=str(path.name)):
            va.read_nifti(path)
        return
    data, affine, info = va.read_nifti(path)
    ref = img.get_fdata(dtype=np.float64)
    assert data.shape == ref.shape
    np.testing.assert_allclose(affine, img.affine, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(data, ref)
    assert info["dtype"] == str(img.get_data_dtype().newbyteorder("="))
    assert info["version"] == (2 if isinstance(img, nib.Nifti2Image) else 1)


@pytest.mark.parametrize("dtype", sorted(t.name for t in SUPPORTED))
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_written_files_read_back_by_nibabel(tmp_path, dtype, ext):
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 100, size=(7, 6, 5, 3))
    affine = np.array([[0.0, -1.5, 0.1, 10], [2.0, 0, 0, -20], [0, 0.2, 3, 5], [0, 0, 0, 1]])
    out = tmp_path / f"x{ext}"
    va.write_nifti(out, data, affine, dtype=dtype, time_step=2.0)
    img = nib.load(out)
    assert img.shape == data.shape
    assert img.get_data_dtype() == np.dtype(dtype)
    np.testing.assert_allclose(img.affine, affine, atol=1e-6)  # sform, stored as float32
    expected = data.astype(np.float32) if dtype == "float32" else data
    if np.dtype(dtype).kind in "iu":
        expected = np.floor(data + 0.5)  # positive data: round half away from zero
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), expected.astype(dtype))
    assert img.header["sform_code"] > 0 and img.header["qform_code"] > 0
    assert img.header.get_zooms()[3] == 2.0
    # And voxalign reads its own file like nibabel does.
    back, aff2, _ = va.read_nifti(out)
    np.testing.assert_array_equal(back, img.get_fdata())
    np.testing.assert_allclose(aff2, img.affine, atol=1e-12)


def test_qform_only_and_fallback_affines(tmp_path):
    """nibabel's rule: sform if sform_code > 0, else qform, else its fall-back."""
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    aff = np.array([[0, 0, 2.5, -3], [-1.5, 0, 0, 4], [0, 1.2, 0, 7], [0, 0, 0, 1]])
    for sform, qform in ((0, 1), (0, 0), (2, 0)):
        img = nib.Nifti1Image(data, aff)
        img.set_sform(aff, code=sform)
        img.set_qform(aff, code=qform)
        p = tmp_path / f"s{sform}q{qform}.nii"
        img.to_filename(p)
        ref = nib.load(p)
        _, a, _ = va.read_nifti(p)
        np.testing.assert_allclose(a, ref.affine, atol=1e-6)


def test_scaled_and_big_endian(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    hdr = nib.Nifti1Header(endianness=">")
    img = nib.Nifti1Image(data.astype(">i2"), np.eye(4), header=hdr)
    img.header.set_slope_inter(0.5, -3.0)
    p = tmp_path / "be.nii.gz"
    img.to_filename(p)
    ref = nib.load(p)
    assert ref.header.endianness == ">"
    got, _, info = va.read_nifti(p)
    np.testing.assert_array_equal(got, ref.get_fdata())
    assert info["scl_slope"] == 0.5 and info["scl_inter"] == -3.0


def test_nifti2_round_trip(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    p = tmp_path / "n2.nii"
    nib.Nifti2Image(data, np.diag([2, 3, 4, 1.0])).to_filename(p)
    got, aff, info = va.read_nifti(p, dtype=np.float32)
    assert info["version"] == 2
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(aff, np.diag([2, 3, 4, 1.0]))


def test_bad_files_give_one_line_errors(tmp_path):
    missing = tmp_path / "missing.nii"
    with pytest.raises(OSError, match="missing.nii: no such file"):
        va.read_nifti(missing)
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(OSError, match="junk.nii.gz: not a valid NIfTI"):
        va.read_nifti(junk)
    good = tmp_path / "good.nii.gz"
    nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4)).to_filename(good)
    raw = gzip.decompress(good.read_bytes())
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(OSError, match="trunc.nii.gz: truncated"):
        va.read_nifti(trunc)
    cplx = tmp_path / "complex.nii"
    nib.Nifti1Image(np.zeros((3, 3, 3), np.complex64), np.eye(4)).to_filename(cplx)
    with pytest.raises(OSError, match="complex.nii: unsupported datatype"):
        va.read_nifti(cplx)
    # Zero and negative dimensions, written by hand into a valid header.
    for bad in (0, -3):
        hdr = bytearray((tmp_path / "good.nii.gz").read_bytes() and raw)
        dims = np.frombuffer(bytes(hdr[40:56]), dtype="<i2").copy()
        dims[2] = bad
        hdr[40:56] = dims.astype("<i2").tobytes()
        p = tmp_path / f"dim{bad}.nii"
        p.write_bytes(bytes(hdr))
        with pytest.raises(OSError, match=f"dim{bad}.nii"):
            va.read_nifti(p)
    for e in ("missing.nii", "junk.nii.gz"):
        try:
            va.read_nifti(tmp_path / e)
        except OSError as err:
            assert "\n" not in str(err)


def test_overflowing_dimensions_are_refused(tmp_path):
    """A NIfTI-2 header whose dimensions multiply past 2^63 (and one that claims far more data than
    the file holds) is refused before anything is allocated."""
    good = tmp_path / "n2.nii"
    nib.Nifti2Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(good)
    raw = bytearray(good.read_bytes())
    for dims, name, msg in (((3, 2**31, 2**31, 2**31), "overflow.nii", "overflow"),
                            ((3, 4096, 4096, 4096), "huge.nii", "truncated")):
        hdr = raw[:]
        hdr[16:16 + 8 * 4] = np.array(dims, dtype="<i8").tobytes()
        p = tmp_path / name
        p.write_bytes(bytes(hdr))
        with pytest.raises(OSError, match=msg):
            va.read_nifti(p)
        gz = tmp_path / (name + ".gz")
        gz.write_bytes(gzip.compress(bytes(hdr)))
        with pytest.raises(OSError, match=msg):
            va.read_nifti(gz)


def test_hdr_img_pair_by_either_name(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    img = nib.Nifti1Pair(data, aff)
    img.to_filename(tmp_path / "pair.img")
    for name in ("pair.hdr", "pair.img"):
        got, a, _ = va.read_nifti(tmp_path / name)
        np.testing.assert_array_equal(got, data)
        np.testing.assert_allclose(a, nib.load(tmp_path / "pair.img").affine, atol=1e-6)
