"""voxalign-bids on a small BIDS dataset built from real data (two subjects, one T1w and one short BOLD
run each): the outputs form a derivatives dataset pybids reads (GeneratedBy, desc- entities, confounds,
per-frame transforms), hold what the CLI writes for the same input, and bad input (missing folder,
unknown participant or task, a bad option) gives a one-line error, a non-zero exit and no output."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("nipype")
bids = pytest.importorskip("bids")

from conftest import voxalign_exe  # noqa: E402
from pipeline_data import SUBJECTS, assert_same_file, make_inputs, slurm_stand_ins  # noqa: E402

from voxalign import bids_app  # noqa: E402


@pytest.fixture
def dataset(tmp_path, t1_path):
    files, _ = make_inputs(tmp_path / "src", t1_path)
    root = tmp_path / "bids"
    for sub in SUBJECTS:
        (root / f"sub-{sub}" / "anat").mkdir(parents=True)
        (root / f"sub-{sub}" / "func").mkdir(parents=True)
        os.replace(files[sub]["t1"], root / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz")
        os.replace(files[sub]["bold"], root / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_bold.nii.gz")
    (root / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": "rest"}))
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"}))
    return root


def test_two_subjects_as_bids_derivatives(exe, dataset, tmp_path, cli):
    out = tmp_path / "derivatives" / "voxalign"
    assert bids_app.main([str(dataset), str(out), "participant", "--nprocs", "2"]) == 0
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "voxalign"

    layout = bids.BIDSLayout(dataset, derivatives=str(out), validate=False)
    deriv = layout.derivatives["voxalign"]
    assert sorted(deriv.get_subjects()) == list(SUBJECTS)
    for sub in SUBJECTS:
        get = dict(subject=sub, return_type="filename")
        assert len(deriv.get(desc="preproc", suffix="T1w", extension=".nii.gz", **get)) == 1
        assert len(deriv.get(desc="biasfield", suffix="T1w", extension=".nii.gz", **get)) == 1
        assert len(deriv.get(task="rest", desc="realigned", suffix="bold", extension=".nii.gz", **get)) == 1
        assert len(deriv.get(task="rest", suffix="boldref", extension=".nii.gz", **get)) == 1
        assert len(deriv.get(task="rest", desc="confounds", suffix="timeseries", extension=".tsv", **get)) == 1
        xfm = deriv.get(task="rest", suffix="xfm", extension=".txt", **get)
        assert len(xfm) == 1 and "_from-orig_to-boldref_mode-image_xfm.txt" in xfm[0]
        bold = deriv.get(task="rest", desc="realigned", suffix="bold", extension=".nii.gz", subject=sub)[0]
        assert bold.get_metadata()["RepetitionTime"] == 2.0

    # The same files as the CLI on the same input with its defaults.
    raw = dataset / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz"
    ref = tmp_path / "cli"
    ref.mkdir()
    cli("realign", raw, "-o", ref / "r.nii.gz", "--confounds", ref / "c.tsv", "--mean", ref / "m.nii.gz",
        "--save-transforms", ref / "x.txt", "-q")
    cli("n4", dataset / "sub-01" / "anat" / "sub-01_T1w.nii.gz", "-o", ref / "n4.nii.gz", "-q")
    func, anat = out / "sub-01" / "func", out / "sub-01" / "anat"
    assert_same_file(func / "sub-01_task-rest_desc-realigned_bold.nii.gz", ref / "r.nii.gz")
    assert_same_file(func / "sub-01_task-rest_desc-confounds_timeseries.tsv", ref / "c.tsv")
    assert_same_file(func / "sub-01_task-rest_desc-confounds_timeseries.json", ref / "c.json")
    assert_same_file(func / "sub-01_task-rest_boldref.nii.gz", ref / "m.nii.gz")
    assert_same_file(func / "sub-01_task-rest_from-orig_to-boldref_mode-image_xfm.txt", ref / "x.txt")
    assert_same_file(anat / "sub-01_desc-preproc_T1w.nii.gz", ref / "n4.nii.gz")


def _app(*args):
    return subprocess.run([sys.executable, "-m", "voxalign.bids_app", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "VOXALIGN_EXE": voxalign_exe()})


@pytest.mark.parametrize("case, status, words", [
    ("missing", 1, "no such directory"),
    ("participant", 1, "sub-03 not in"),
    ("task", 1, "--task: motor not in"),
    ("level", 2, "analysis_level"),
    ("plugin_args", 1, "--plugin-args"),
])
def test_bad_input_one_line_error(dataset, tmp_path, case, status, words):
    out = tmp_path / "out"
    args = {"missing": [tmp_path / "nope", out, "participant"],
            "participant": [dataset, out, "participant", "--participant-label", "01", "sub-03"],
            "task": [dataset, out, "participant", "--task", "motor"],
            "level": [dataset, out, "group"],
            "plugin_args": [dataset, out, "participant", "--plugin-args", "{not json"]}[case]
    p = _app(*args)
    assert p.returncode == status
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxalign-bids: error:") and words in lines[0], p.stderr
    assert not out.exists()


def test_failing_job_reports_voxalign_message(exe, dataset, tmp_path):
    # A BOLD run that is a 3D image: the realign job fails and its voxalign message is the app's error.
    bad = dataset / "sub-02" / "func" / "sub-02_task-rest_bold.nii.gz"
    os.replace(dataset / "sub-02" / "anat" / "sub-02_T1w.nii.gz", bad)
    p = _app(dataset, tmp_path / "out", "participant", "--participant-label", "02", "--nprocs", "1")
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("voxalign-bids: error: voxalign: error:") and "4D" in last and "crash files" in last


def test_slurm_jobs_ask_for_declared_memory(exe, dataset, tmp_path, monkeypatch):
    log = tmp_path / "sbatch.log"
    slurm_stand_ins(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGNAME", os.environ.get("LOGNAME", "tester"))
    out = tmp_path / "out"
    p = _app(dataset, out, "participant", "--participant-label", "01", "--plugin", "SLURM", "--omp-nthreads", "2",
             "--plugin-args", '{"sbatch_args": "--partition=short"}', "--work-dir", tmp_path / "work")
    assert p.returncode == 0, p.stderr
    calls = sorted(log.read_text().splitlines())
    assert len(calls) == 2   # the N4 and the realign job; copying outputs runs in the submitting process
    for call in calls:
        words = call.split()
        assert words[0] == "--partition=short" and words[1].startswith("--mem=") and words[2] == "--cpus-per-task=2"
    assert (out / "sub-01" / "func" / "sub-01_task-rest_desc-confounds_timeseries.tsv").exists()
    assert not (out / ".voxalign_work").exists()
