"""Malformed and unusual NIfTI files (tests/python/nifti_campaign.py) through voxalign.read_nifti and
the CLI, with nibabel as the oracle: every file nibabel reads is read with the same values and affine
(or refused by a documented policy below), every file nibabel refuses is refused with one line naming
the file -- never a crash, a hang, a silent wrong read, or an output file left behind."""
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import voxalign as va
from nifti_campaign import make_campaign

ROOT = Path(__file__).resolve().parents[2]
VOXALIGN = ROOT / "build" / "release" / "voxalign"

# Files nibabel reads that voxalign refuses on purpose (docs/nifti.md, "What is refused"):
POLICY_REFUSE = {
    "sizeof_349.nii": "header size field is neither 348 nor 540",
    "dim_zero.nii": "a zero dimension (nibabel returns an empty array)",
    "dim_dim0_0.nii": "dim[0] = 0 (nibabel returns a 0-d array)",
    "qform_pixdim1_zero.nii": "voxel size 0 in the qform (nibabel silently makes it 1)",
    "qform_pixdim2_zero.nii": "voxel size 0 in the qform (nibabel silently makes it 1)",
    "qform_pixdim3_zero.nii": "voxel size 0 in the qform (nibabel silently makes it 1)",
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return make_campaign(tmp_path_factory.mktemp("campaign"))


def _nibabel(path):
    import nibabel as nib
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = nib.load(str(path))
        return np.asarray(img.get_fdata(dtype=np.float64)), img.affine


def test_campaign_is_broad(campaign):
    kinds = [c.kind for c in campaign]
    assert len(campaign) >= 100 and kinds.count("read") >= 20 and kinds.count("refuse") >= 60


def test_python_reader_agrees_with_nibabel(campaign):
    problems = []
    for c in campaign:
        try:
            data, aff, _ = va.read_nifti(c.path)
        except OSError as e:
            msg = str(e)
            if "\n" in msg or c.path.name not in msg:
                problems.append(f"{c.name}: unclear error {msg!r}")
            elif c.kind == "read" and c.name not in POLICY_REFUSE:
                problems.append(f"{c.name}: refused ({msg}) but nibabel reads it")
            continue
        if c.kind == "refuse" or c.name in POLICY_REFUSE:
            problems.append(f"{c.name}: read, but it should be refused ({c.why or POLICY_REFUSE.get(c.name)})")
            continue
        ref, ref_aff = _nibabel(c.same_as or c.path)
        ref = ref.reshape(ref.shape[:4]) if ref.ndim > 4 else ref
        if data.shape != ref.shape or not np.array_equal(data, ref, equal_nan=True):
            problems.append(f"{c.name}: values differ from nibabel's")
        if not np.allclose(aff, ref_aff, atol=1e-5):
            problems.append(f"{c.name}: affine differs from nibabel's")
    assert not problems, "\n".join(problems)


def test_cli_every_reading_argument(campaign, tmp_path):
    """Each file as `resample IN` (exit 0 and an output iff readable) and as `resample --like` (only the
    header is read: a readable file must work, a damaged one may, and either way nothing crashes)."""
    assert VOXALIGN.exists(), "build voxalign first"
    good = next(c.path for c in campaign if c.name == "valid.nii")
    problems = []
    for c in campaign:
        expect_ok = c.kind == "read" and c.name not in POLICY_REFUSE
        for role, argv in (("input", [str(c.path)]), ("--like", [str(good), "--like", str(c.path)])):
            out_dir = tmp_path / f"{c.name}-{role.strip('-')}"
            out_dir.mkdir()
            r = subprocess.run([str(VOXALIGN), "resample", *argv, "-o", str(out_dir / "o.nii.gz"), "-q"],
                               capture_output=True, text=True, timeout=60)
            left = sorted(p.name for p in out_dir.iterdir())
            if r.returncode < 0 or r.returncode > 2:
                problems.append(f"{c.name} as {role}: crashed (status {r.returncode}) {r.stderr[-200:]!r}")
            elif expect_ok and r.returncode != 0:
                problems.append(f"{c.name} as {role}: refused: {r.stderr.strip()}")
            elif not expect_ok and r.returncode == 0 and role == "input":
                problems.append(f"{c.name} as {role}: accepted, should be refused")
            elif r.returncode != 0:
                lines = r.stderr.strip().splitlines()
                if len(lines) != 1 or c.path.name not in lines[0]:
                    problems.append(f"{c.name} as {role}: error not one line naming the file: {r.stderr!r}")
                if left:
                    problems.append(f"{c.name} as {role}: left {left}")
    assert not problems, "\n".join(problems)


def test_named_pipe_is_refused_without_hanging(tmp_path):
    import os
    import sys
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    # In a child process: a reader that opens the FIFO would block forever (the old one did).
    code = ("import voxalign as va, sys\ntry:\n    va.read_nifti(sys.argv[1])\nexcept OSError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=20)
    assert "pipe.nii: not a regular file" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(VOXALIGN), "resample", str(fifo), "-o", str(tmp_path / "o.nii")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "not a regular file" in r.stderr and not (tmp_path / "o.nii").exists()


def test_time_unit_msec_is_kept(tmp_path, campaign):
    """TR 2000 ms must not come out as 2000 s: the unit is kept (or the value converted)."""
    import nibabel as nib
    src = next(c.path for c in campaign if c.name == "tr_msec.nii")
    _, _, info = va.read_nifti(src)
    assert info["time_step"] == pytest.approx(2.0)
    out = tmp_path / "o.nii.gz"
    subprocess.run([str(VOXALIGN), "resample", str(src), "-o", str(out), "-q"], check=True)
    h = nib.load(str(out)).header
    unit = h.get_xyzt_units()[1]
    tr = float(h["pixdim"][4])
    assert {"msec": tr / 1000, "sec": tr, "usec": tr / 1e6}[unit] == pytest.approx(2.0)


def test_cli_other_commands_reading_arguments(campaign, tmp_path):
    """Every file nibabel refuses, through every other image-reading argument (n4, register, realign,
    warp): a one-line error naming the file, exit status 1 or 2, no crash and nothing written."""
    import nibabel as nib
    good3 = tmp_path / "good3.nii"
    good4 = tmp_path / "good4.nii"
    field = tmp_path / "field.nii"
    rng = np.random.default_rng(1)
    nib.save(nib.Nifti1Image(rng.random((12, 11, 10)).astype(np.float32) + 1, np.eye(4)), str(good3))
    nib.save(nib.Nifti1Image(rng.random((12, 11, 10, 3)).astype(np.float32) + 1, np.eye(4)), str(good4))
    nib.save(nib.Nifti1Image(np.zeros((12, 11, 10, 3), np.float32), np.eye(4)), str(field))
    roles = {
        "n4 IN": lambda b, o: ["n4", b, "-o", o],
        "n4 --mask": lambda b, o: ["n4", good3, "--mask", b, "-o", o],
        "n4 --weight": lambda b, o: ["n4", good3, "--weight", b, "-o", o],
        "register MOVING": lambda b, o: ["register", b, "--fixed", good3, "-o", o],
        "register --fixed": lambda b, o: ["register", good3, "--fixed", b, "-o", o],
        "register --fixed-mask": lambda b, o: ["register", good3, "--fixed", good3, "--fixed-mask", b, "-o", o],
        "register --moving-mask": lambda b, o: ["register", good3, "--fixed", good3, "--moving-mask", b, "-o", o],
        "realign IN": lambda b, o: ["realign", b, "-o", o],
        "realign --mask": lambda b, o: ["realign", good4, "--mask", b, "-o", o],
        "warp IN": lambda b, o: ["warp", b, "--field", field, "-o", o],
        "warp --field": lambda b, o: ["warp", good3, "--field", b, "-o", o],
    }
    problems = []
    bad = [c for c in campaign if c.kind == "refuse" or c.name in POLICY_REFUSE]
    for role, argv in roles.items():
        for c in bad:
            out_dir = tmp_path / "out"
            out_dir.mkdir()
            args = [str(a) for a in argv(c.path, out_dir / "o.nii.gz")]
            r = subprocess.run([str(VOXALIGN), *args, "-q"], capture_output=True, text=True, timeout=60)
            lines = r.stderr.strip().splitlines()
            if r.returncode not in (1, 2):
                problems.append(f"{c.name} as {role}: status {r.returncode} {r.stderr[-200:]!r}")
            elif len(lines) != 1 or c.path.name not in lines[0]:
                problems.append(f"{c.name} as {role}: error not one line naming the file: {r.stderr!r}")
            if any(out_dir.iterdir()):
                problems.append(f"{c.name} as {role}: left {sorted(p.name for p in out_dir.iterdir())}")
            for p in out_dir.iterdir():
                p.unlink()
            out_dir.rmdir()
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"
