"""voxalign.interfaces.pydra in a real Pydra workflow: two subjects (N4 then register to a template, and
realign), split over subjects and run by the concurrent-futures worker, give the same files, bit for
bit, as the CLI; a failing task fails the workflow with the task's error file, which holds
voxalign's one-line message."""
import cloudpickle as cp
import pytest

pydra = pytest.importorskip("pydra")

from pipeline_data import SUBJECTS, assert_same_file, make_inputs  # noqa: E402

from voxalign.interfaces import pydra as vxp  # noqa: E402


def test_two_subjects_cf_worker_match_cli(exe, tmp_path, t1_path, cli):
    files, template = make_inputs(tmp_path / "in", t1_path)
    wf = pydra.Workflow(name="wf", input_spec=["t1", "bold"], cache_dir=tmp_path / "cache")
    wf.split(("t1", "bold"), t1=[str(files[s]["t1"]) for s in SUBJECTS], bold=[str(files[s]["bold"]) for s in SUBJECTS])
    wf.add(vxp.N4(name="n4", in_file=wf.lzin.t1, shrink=2, iterations=[20, 20]))
    wf.add(vxp.Register(name="register", in_file=wf.n4.lzout.output_image, reference=str(template),
                        levels=[2, 1], num_threads=2))
    wf.add(vxp.Realign(name="realign", in_file=wf.lzin.bold))
    wf.set_output([("n4", wf.n4.lzout.out_file), ("bias", wf.n4.lzout.bias_image),
                   ("reg", wf.register.lzout.out_file), ("xfm", wf.register.lzout.out_transform),
                   ("rbold", wf.realign.lzout.realigned_files), ("par", wf.realign.lzout.par_file),
                   ("rp", wf.realign.lzout.realignment_parameters), ("conf", wf.realign.lzout.confounds_file),
                   ("mean", wf.realign.lzout.mean_img)])
    with pydra.Submitter(plugin="cf", n_procs=2) as sub:
        sub(wf)
    results = wf.result()
    assert len(results) == len(SUBJECTS)
    for s, res in zip(SUBJECTS, results):
        o, f, d = res.output, files[s], tmp_path / f"cli{s}"
        d.mkdir()
        cli("n4", f["t1"], "-o", d / "n4.nii.gz", "--bias-out", d / "bias.nii.gz", "--shrink", 2,
            "--iterations", "20x20", "-q")
        cli("register", d / "n4.nii.gz", "--fixed", template, "-o", d / "reg.nii.gz", "--levels", "2,1",
            "--save-transform", d / "xfm.txt", "-q")
        cli("realign", f["bold"], "-o", d / "r.nii.gz", "--par", d / "r.par", "--rp", d / "rp.txt",
            "--confounds", d / "c.tsv", "--mean", d / "mean.nii.gz", "-q")
        for got, want in ((o.n4, "n4.nii.gz"), (o.bias, "bias.nii.gz"), (o.reg, "reg.nii.gz"), (o.xfm, "xfm.txt"),
                          (o.rbold, "r.nii.gz"), (o.par, "r.par"), (o.rp, "rp.txt"), (o.conf, "c.tsv"),
                          (o.mean, "mean.nii.gz")):
            assert_same_file(got, d / want)


def test_unset_options_are_not_passed(exe, tmp_path, t1_path):
    files, _ = make_inputs(tmp_path / "in", t1_path)
    task = vxp.Realign(in_file=files["01"]["bold"], estimate_only=True, out_file=False, ref=0, cache_dir=tmp_path)
    words = task.cmdline.split()
    assert "-o" not in words and "--estimate-only" in words and words[words.index("--ref") + 1] == "0"
    for flag in ("--sep", "--fwhm", "--quality", "--degree", "--dtype"):
        assert flag not in words


def test_failing_task_carries_voxalign_message(exe, tmp_path, t1_path, cli):
    files, _ = make_inputs(tmp_path / "in", t1_path)
    t1 = str(files["01"]["t1"])
    message = cli("realign", t1, "-o", tmp_path / "x.nii.gz", check=False).stderr.strip()
    assert message and "\n" not in message
    wf = pydra.Workflow(name="bad", input_spec=["x"], x=t1, cache_dir=tmp_path / "cache")
    wf.add(vxp.Realign(name="realign", in_file=wf.lzin.x))
    wf.set_output([("out", wf.realign.lzout.out_file)])
    with pytest.raises(Exception) as err:
        with pydra.Submitter(plugin="cf", n_procs=1) as sub:
            sub(wf)
    # The workflow's error names the task's crash report, which holds voxalign's message.
    report = str(err.value).split("full crash report is here: ")[-1].strip()
    assert report.endswith("_error.pklz")
    assert message in "".join(cp.loads(open(report, "rb").read())["error message"])


def test_sdc_task_passes_its_inputs_in_order(exe, tmp_path, t1_path):
    # Sdc's two positional inputs go first, in order (UP, DOWN); topup's names map to voxalign's flags;
    # Realign takes the field and the series' acquisition.
    files, _ = make_inputs(tmp_path / "in", t1_path)
    t1 = files["01"]["t1"]
    task = vxp.Sdc(in_file=t1, in_down=files["02"]["t1"], pe_dir="j-", readout_time=0.04, warp_res=[20.0, 10.0],
                   max_iter=[4, 4], no_motion=True, cache_dir=tmp_path)
    words = task.cmdline.split()
    assert words[2:4] == [str(t1), str(files["02"]["t1"])], words
    assert words[words.index("--pe-dir") + 1] == "j-" and words[words.index("--warpres") + 1] == "20.0,10.0"
    assert words[words.index("--miter") + 1] == "4,4" and "--no-motion" in words and "--motion" not in words
    r = vxp.Realign(in_file=files["01"]["bold"], fieldmap=t1, pe_dir="j", readout_time=0.05, cache_dir=tmp_path)
    w = r.cmdline.split()
    assert w[w.index("--fieldmap") + 1] == str(t1) and w[w.index("--readout-time") + 1] == "0.05"
