"""Outputs on the input's grid keep the header fields nibabel-based tools keep (xform codes and both
xforms, intent, descrip, aux_file, dim_info, slice timing, toffset, cal_min/max, time unit,
extensions); on another grid the codes name the grid's space and slice timing and extensions are
dropped (docs/nifti.md). Checked with nibabel on the files the CLI writes."""
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
VOXALIGN = ROOT / "build" / "release" / "voxalign"


def run(*args):
    r = subprocess.run([str(VOXALIGN), *map(str, args), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def rich_image(path, shape=(20, 18, 16, 6), msec=True):
    rng = np.random.default_rng(3)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[:3]], indexing="ij")
    blob = np.exp(-3 * (x**2 + y**2 + z**2)) * 1000
    data = np.stack([blob + rng.normal(0, 5, shape[:3]) for _ in range(shape[3])], -1).astype(np.int16)
    sform = np.array([[-2.0, 0, 0, 20], [0, 2.0, 0, -18], [0, 0, 2.2, -10], [0, 0, 0, 1]])
    qform = sform.copy()
    qform[:3, 3] += [1.5, -2.0, 3.0]  # scanner space differs from the aligned space
    img = nib.Nifti1Image(data, None)
    h = img.header
    img.set_sform(sform, code=4)  # MNI
    img.set_qform(qform, code=1)  # scanner
    h.set_intent("estimate", name="bold")
    h["descrip"] = b"acquired by a test"
    h["aux_file"] = b"aux.txt"
    h.set_dim_info(freq=0, phase=1, slice=2)
    h["slice_code"] = 3  # alternating increasing
    h["slice_start"], h["slice_end"], h["slice_duration"] = 0, shape[2] - 1, 0.1
    h["toffset"] = 1.5
    h["cal_min"], h["cal_max"] = 0, 900
    h.set_xyzt_units("mm", "msec" if msec else "sec")
    h["pixdim"][4] = 2000.0 if msec else 2.0
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b'{"EchoTime": 0.03}'))
    nib.save(img, str(path))
    return img


KEPT = ["intent_code", "intent_name", "descrip", "aux_file", "cal_min", "cal_max"]
SLICE = ["dim_info", "slice_code", "slice_start", "slice_end", "slice_duration"]


def same_fields(a, b, names):
    return {n: (a[n], b[n]) for n in names if not np.array_equal(a[n], b[n])}


@pytest.mark.parametrize("command", ["resample", "realign"])
def test_same_grid_keeps_everything(tmp_path, command):
    src = tmp_path / "bold.nii.gz"
    ref = rich_image(src)
    out = tmp_path / "out.nii.gz"
    if command == "resample":
        run("resample", src, "-o", out, "--dtype", "int16")
    else:
        run("realign", src, "-o", out, "--dtype", "int16")
    got = nib.load(str(out))
    h, r = got.header, ref.header
    assert same_fields(h, r, KEPT + SLICE + ["sform_code", "qform_code", "toffset"]) == {}
    assert np.allclose(got.header.get_sform(), r.get_sform(), atol=1e-5)
    assert np.allclose(got.header.get_qform(), r.get_qform(), atol=1e-5)  # the scanner qform, not the sform
    assert h.get_xyzt_units() == ("mm", "msec") and h["pixdim"][4] == pytest.approx(2000.0)
    assert [(e.get_code(), e.get_content()) for e in h.extensions] == [(6, b'{"EchoTime": 0.03}')]


def test_other_grid_keeps_what_still_holds(tmp_path):
    src = tmp_path / "bold.nii.gz"
    ref = rich_image(src)
    like = tmp_path / "like.nii.gz"
    li = nib.Nifti1Image(np.zeros((10, 9, 8), np.float32), np.diag([4.0, 4.0, 4.4, 1]))
    li.set_sform(np.diag([4.0, 4.0, 4.4, 1]), code=3)  # Talairach
    nib.save(li, str(like))
    out = tmp_path / "out.nii.gz"
    run("resample", src, "--like", like, "-o", out)
    h = nib.load(str(out)).header
    assert h["sform_code"] == 3 and h["qform_code"] == 0  # the codes of the grid's file
    assert same_fields(h, ref.header, KEPT + ["toffset"]) == {}
    assert all(h[n] == 0 for n in SLICE)  # slice timing belongs to the acquisition grid
    assert len(h.extensions) == 0
    assert h.get_xyzt_units()[1] == "msec" and h["pixdim"][4] == pytest.approx(2000.0)


def test_tr_in_msec_is_not_read_as_seconds(tmp_path):
    """pixdim[4] = 2000 with unit msec is a TR of 2 s: the report and confounds must not see 2000 s."""
    import voxalign as va
    src = tmp_path / "bold.nii.gz"
    rich_image(src)
    _, _, info = va.read_nifti(src)
    assert info["time_step"] == pytest.approx(2.0)


def test_register_output_takes_the_fixed_grid_codes(tmp_path):
    fixed = tmp_path / "fixed.nii.gz"
    moving = tmp_path / "moving.nii.gz"
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (24, 22, 20)], indexing="ij")
    vol = (np.exp(-4 * ((x - 0.2) ** 2 + y**2 + (z + 0.1) ** 2)) * 100).astype(np.float32)
    fi = nib.Nifti1Image(vol, np.diag([2.0, 2.0, 2.0, 1]))
    fi.set_sform(fi.affine, code=4)
    fi.set_qform(fi.affine, code=4)
    nib.save(fi, str(fixed))
    mi = nib.Nifti1Image(vol, np.diag([2.0, 2.0, 2.0, 1]))
    mi.header["descrip"] = b"moving T2"
    mi.set_sform(mi.affine, code=1)
    nib.save(mi, str(moving))
    out = tmp_path / "out.nii.gz"
    run("register", moving, "--fixed", fixed, "-o", out, "--levels", "2,1")
    h = nib.load(str(out)).header
    assert h["sform_code"] == 4 and h["descrip"] == b"moving T2"
