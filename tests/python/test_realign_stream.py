"""`voxalign realign` reads the series a frame at a time and writes the resliced series frame by frame
(issue 20 §1). Verified on a series simulated from a real EPI volume (nibabel's example4d.nii.gz,
test_realign's simulate), stored as scaled int16 (.nii.gz, nibabel's single gzip member), plain int16
(.nii) and float32:
- the streamed CLI gives exactly the in-memory Python path's results (parameters to the printed digit,
  resliced series bit for bit with --dtype float32), for 1 and 2 threads and for .nii and .nii.gz;
- by default the output keeps the input's datatype: int16 in, int16 out (the float series rounded half
  away from zero and clamped), float32 for a scaled input;
- a truncated .nii.gz fails with one line naming the file and leaves no output behind.
"""
import os
import subprocess

import nibabel as nib
import numpy as np
import pytest

import voxalign as va
from conftest import voxalign_exe
from test_realign import epi, simulate  # noqa: F401  (epi is a fixture)


def run(*args):
    return subprocess.run([voxalign_exe(), "realign", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def series(epi, tmp_path_factory):
    vol, A = epi
    data, _ = simulate(vol, A, 10, seed=7)
    d = tmp_path_factory.mktemp("stream")
    i16 = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    img = nib.Nifti1Image(i16, A)
    img.header["pixdim"][4] = 2.0
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, d / "plain.nii")
    scaled = nib.Nifti1Image(i16, A)
    scaled.header.set_slope_inter(0.5, 10.0)   # stored values i16: the series is 0.5 * i16 + 10
    scaled.header["pixdim"][4] = 2.0
    nib.save(scaled, d / "scaled.nii.gz")
    return d, i16.astype(np.float32), A


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["plain.nii", "scaled.nii.gz"])
def test_streamed_cli_equals_in_memory(series, name, threads):
    d, i16, A = series
    values = i16 if name == "plain.nii" else np.float32(0.5) * i16 + np.float32(10.0)
    ref = va.realign(np.asfortranarray(values), A)
    out = d / f"out_{threads}_{name}"
    p = run(d / name, "-o", out, "--dtype", "float32", "--rp", d / f"rp_{threads}_{name}.txt", "--threads", threads, "-q")
    assert p.returncode == 0, p.stderr
    assert (d / f"rp_{threads}_{name}.txt").read_text() == ref._texts["rp_text"]
    got = np.asarray(nib.load(out).dataobj)
    assert got.dtype == np.float32
    assert np.array_equal(got, np.asarray(ref.resliced.dataobj if hasattr(ref.resliced, "dataobj") else ref.resliced))


def test_output_keeps_input_dtype(series):
    d, i16, A = series
    p = run(d / "plain.nii", "-o", d / "i16.nii.gz", "--mean", d / "mean16.nii", "-q")
    assert p.returncode == 0, p.stderr
    p = run(d / "plain.nii", "-o", d / "f32.nii.gz", "--dtype", "float32", "-q")
    assert p.returncode == 0, p.stderr
    a, f = nib.load(d / "i16.nii.gz"), np.asarray(nib.load(d / "f32.nii.gz").dataobj)
    assert a.get_data_dtype() == np.int16 and nib.load(d / "mean16.nii").get_data_dtype() == np.int16
    want = np.clip(np.trunc(f + np.where(f > 0, 0.5, -0.5)), -32768, 32767).astype(np.int16)
    assert np.array_equal(np.asarray(a.dataobj), want)
    # a scaled input is written as float32 (its values are not the stored integers)
    p = run(d / "scaled.nii.gz", "-o", d / "from_scaled.nii", "--estimate-only", "-q")
    assert p.returncode == 0, p.stderr
    p = run(d / "scaled.nii.gz", "-o", d / "from_scaled.nii", "-q")
    assert p.returncode == 0, p.stderr
    assert nib.load(d / "from_scaled.nii").get_data_dtype() == np.float32


def test_truncated_gzip_fails_cleanly(series, tmp_path):
    d, _, _ = series
    raw = (d / "scaled.nii.gz").read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(raw[: len(raw) * 2 // 3])
    p = run(bad, "-o", tmp_path / "out.nii.gz", "--rp", tmp_path / "rp.txt", "-q")
    assert p.returncode != 0
    assert "cut.nii.gz" in p.stderr and "truncated" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["cut.nii.gz"]


def test_reader_of_progress_gone_leaves_no_temporary(series, tmp_path):
    """The resliced series is written while the frames are resliced: a run killed by SIGPIPE (its
    stderr's reader closed, as `grep -q` does) then must not leave the half-written temporary."""
    d, _, _ = series
    env = dict(os.environ, VOXALIGN_PROGRESS_INTERVAL="0")
    p = subprocess.Popen([voxalign_exe(), "realign", str(d / "plain.nii"), "-o", str(tmp_path / "out.nii.gz")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    for line in p.stderr:
        if "reslice" in line:
            break
    p.stderr.close()
    p.wait(timeout=120)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".vxtmp")], os.listdir(tmp_path)
