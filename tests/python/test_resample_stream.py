"""`voxalign resample` streams a 4D series computed in float32 (issue 20 §1): chunks of ~64 MB of frames
are read, resampled and written in turn, so memory holds one chunk of input and output instead of the
whole series twice. The series here (nibabel's example4d EPI volume tiled to 128x128x64 voxels, 18
frames of 4 MiB as float32) spans two chunks (16 + 2 frames). Checked bit for bit against the
whole-image path at both chunks' first and last frames (the CLI on each frame saved as a 3D file), and
against the Python in-memory path (computed in float64 for int16 input) to 2e-3 of the range, for an
affine and for a displacement field + affine chain, from int16 .nii and scaled int16 .nii.gz, with 1
and 2 threads; the header (TR) is kept; a truncated .nii.gz fails with one line and leaves no output.
"""
import gzip
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

import voxalign as va
from conftest import voxalign_exe

SHAPE = (128, 128, 64)
FRAMES = 18


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("resample_stream"))


def make_files(d):
    epi = np.asarray(nib.load(os.path.join(data_path, "example4d.nii.gz")).dataobj, np.float32)
    vol = np.tile(epi[..., 0], (3, 3, 4))[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    rng = np.random.default_rng(3)
    data = np.stack([vol * (1 + 0.01 * t) + rng.normal(0, 5, SHAPE) for t in range(FRAMES)], axis=-1)
    i16 = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    A = np.diag([2.0, 2.0, 2.5, 1.0])
    A[:3, 3] = [-120, -130, -70]
    plain = nib.Nifti1Image(i16, A)
    plain.header["pixdim"][4] = 1.5
    plain.header.set_xyzt_units("mm", "sec")
    nib.save(plain, d / "plain.nii")
    scaled = nib.Nifti1Image(i16, A)
    scaled.header.set_slope_inter(0.5, 10.0)
    scaled.header["pixdim"][4] = 1.5
    scaled.header.set_xyzt_units("mm", "sec")
    nib.save(scaled, d / "scaled.nii.gz")
    M = np.eye(4)
    c, s = np.cos(0.05), np.sin(0.05)
    M[:2, :2] = [[c, -s], [s, c]]
    M[:3, 3] = [1.5, -2.0, 0.7]
    np.savetxt(d / "m.txt", M)
    # A smooth field (ITK/ANTs vector image, LPS mm) on a coarser grid than the series.
    fshape = (40, 40, 20)
    FA = np.diag([6.4, 6.4, 8.0, 1.0])
    FA[:3, 3] = A[:3, 3]
    x = np.linspace(0, np.pi, fshape[0])[:, None, None]
    u = np.zeros(fshape + (1, 3), np.float32)
    u[..., 0, 0] = 2.0 * np.sin(x)
    u[..., 0, 1] = -1.2
    field = nib.Nifti1Image(u, FA)
    field.header.set_intent("vector")
    nib.save(field, d / "field.nii.gz")
    return d


def cli(*args):
    return subprocess.run([voxalign_exe(), "resample", *map(str, args)], capture_output=True, text=True)


CHECKED = (0, 1, 15, 16, 17)  # both chunks' first and last frames


def frame_by_frame(files, name, chain, tmp):
    """The whole-image path: the CLI on each frame saved as a 3D file (int16 as stored, or float32 for
    the scaled series: 0.5 * int16 + 10 is exact in float32, so the values read are the same)."""
    img = nib.load(files / name)
    out = []
    for t in CHECKED:
        v = img.dataobj[..., t]
        f = nib.Nifti1Image(np.asarray(v, np.float32 if img.dataobj.slope != 1 else np.int16), img.affine)
        fin, fout = tmp / f"f{t}{''.join(Path(name).suffixes)}", tmp / f"o{t}.nii"
        nib.save(f, fin)
        args = [fin, "-o", fout, "-q"]
        for c in chain:
            args += ["-t", files / c]
        p = cli(*args)
        assert p.returncode == 0, p.stderr
        out.append(np.asarray(nib.load(fout).dataobj))
    return np.stack(out, axis=-1)


@pytest.mark.parametrize("name", ["plain.nii", "scaled.nii.gz"])
@pytest.mark.parametrize("chain", [["m.txt"], ["field.nii.gz", "m.txt"]])
def test_streamed_equals_whole(files, name, chain, tmp_path):
    want = frame_by_frame(files, name, chain, tmp_path)
    # And the Python path (whole series in memory, computed in float64 for int16 input): close.
    ref = np.asarray(va.resample(str(files / name), transform=[str(files / t) for t in chain]).dataobj)
    np.testing.assert_allclose(want, ref[..., CHECKED], atol=2e-3 * np.abs(ref).max())
    for threads in (1, 2):
        out = files / f"out{threads}.nii"
        args = [files / name, "-o", out, "-q", "--threads", threads]
        for t in chain:
            args += ["-t", files / t]
        p = cli(*args)
        assert p.returncode == 0, p.stderr
        img = nib.load(out)
        got = np.asarray(img.dataobj)
        assert got.dtype == np.float32 and got.shape == SHAPE + (FRAMES,)
        np.testing.assert_array_equal(got[..., CHECKED], want)
        np.testing.assert_allclose(got, ref, atol=2e-3 * np.abs(ref).max())
        assert img.header["pixdim"][4] == pytest.approx(1.5)
        os.remove(out)


def test_truncated_gz_fails_cleanly(files, tmp_path):
    raw = gzip.decompress((files / "scaled.nii.gz").read_bytes())
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(raw[: len(raw) * 3 // 4], compresslevel=1))
    out = tmp_path / "o.nii.gz"
    p = cli(bad, "-o", out, "-t", files / "m.txt", "-q")
    assert p.returncode != 0
    assert str(bad) in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not out.exists()
    assert [f for f in os.listdir(tmp_path) if f != "bad.nii.gz"] == []
