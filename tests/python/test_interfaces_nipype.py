"""voxalign.interfaces.nipype in real Nipype workflows: two subjects (N4 then register to a template,
and realign) under MultiProc give the same files, bit for bit, as the CLI run by hand; the peer tools'
output names connect; a failing node fails the workflow with voxalign's one-line message in the crash
file; the SLURM plugin submits job scripts that ask for the declared memory and cores (a stand-in
sbatch/squeue on PATH records and runs them)."""
import os
from pathlib import Path

import pytest

pe = pytest.importorskip("nipype.pipeline.engine")
niu = pytest.importorskip("nipype.interfaces.utility")

from pipeline_data import SUBJECTS, assert_same_file, make_inputs, qsub_stand_ins, slurm_stand_ins  # noqa: E402

import voxalign.interfaces as vxi  # noqa: E402
from voxalign.interfaces import nipype as vxn  # noqa: E402


@pytest.fixture
def data(tmp_path, t1_path):
    return make_inputs(tmp_path / "in", t1_path)


def _workflow(base, files, template, mem=True):
    """N4 -> Register and Realign per subject, connected by the peer tools' names (ants N4's
    output_image, ants Registration's moving_image, MCFLIRT's in_file/mean_img, spm's realignment_parameters)."""
    wf = pe.Workflow(name="wf", base_dir=str(base))
    wf.config["execution"]["remove_unnecessary_outputs"] = False   # the test reads every output
    src = pe.Node(niu.IdentityInterface(fields=["sub"]), name="src")
    src.iterables = ("sub", list(SUBJECTS))
    pick = pe.Node(niu.Function(input_names=["sub", "files"], output_names=["t1", "bold"],
                                function=_pick), name="pick")
    pick.inputs.files = {s: {k: str(v) for k, v in f.items()} for s, f in files.items()}
    t1, bold = files[SUBJECTS[0]]["t1"], files[SUBJECTS[0]]["bold"]
    n4 = pe.Node(vxn.N4(shrink=2, iterations=[20, 20]), name="n4",
                 mem_gb=vxi.mem_gb("n4", t1) if mem else 0.2)
    reg = pe.Node(vxn.Register(reference=str(template), levels=[2, 1], num_threads=2), name="register",
                  mem_gb=vxi.mem_gb("register", t1, template) if mem else 0.2)
    mc = pe.Node(vxn.Realign(), name="realign", mem_gb=vxi.mem_gb("realign", bold) if mem else 0.2)
    out = pe.Node(niu.Merge(2), name="out")
    wf.connect([(src, pick, [("sub", "sub")]),
                (pick, n4, [("t1", "input_image")]),
                (n4, reg, [("output_image", "moving_image")]),
                (pick, mc, [("bold", "in_file")]),
                (mc, out, [("mean_img", "in1"), ("realignment_parameters", "in2")])])
    return wf


def _pick(sub, files):
    return files[sub]["t1"], files[sub]["bold"]


def _results(graph):
    """{(node name, subject): outputs} of an executed graph."""
    res = {}
    for node in graph.nodes():
        sub = next((s for s in SUBJECTS if f"sub_{s}" in node.output_dir()), None)
        res[(node.name, sub)] = node.result.outputs
    return res


def _cli_reference(cli, folder, files, template):
    """The same work by hand: {sub: {output name: path}}."""
    folder.mkdir()
    ref = {}
    for sub, f in files.items():
        d = {k: folder / f"{sub}_{k}" for k in ("n4.nii.gz", "bias.nii.gz", "reg.nii.gz", "xfm.txt", "flirt.mat",
                                                  "rbold.nii.gz", "bold.par", "rp.txt", "conf.tsv", "mean.nii.gz",
                                                  "hmc.txt")}
        cli("n4", f["t1"], "-o", d["n4.nii.gz"], "--bias-out", d["bias.nii.gz"], "--shrink", 2,
            "--iterations", "20x20", "--threads", 1, "-q")
        cli("register", d["n4.nii.gz"], "--fixed", template, "-o", d["reg.nii.gz"], "--levels", "2,1",
            "--save-transform", d["xfm.txt"], "--save-fsl", d["flirt.mat"], "--threads", 2, "-q")
        cli("realign", f["bold"], "-o", d["rbold.nii.gz"], "--par", d["bold.par"], "--rp", d["rp.txt"],
            "--confounds", d["conf.tsv"], "--mean", d["mean.nii.gz"], "--save-transforms", d["hmc.txt"],
            "--threads", 1, "-q")
        ref[sub] = d
    return ref


def test_two_subjects_multiproc_match_cli(exe, data, tmp_path, cli):
    files, template = data
    graph = _workflow(tmp_path / "work", files, template).run(plugin="MultiProc", plugin_args={"n_procs": 2})
    res = _results(graph)
    ref = _cli_reference(cli, tmp_path / "cli", files, template)
    for sub in SUBJECTS:
        r = ref[sub]
        n4, reg, mc = res[("n4", sub)], res[("register", sub)], res[("realign", sub)]
        assert n4.output_image == n4.out_file
        assert_same_file(n4.out_file, r["n4.nii.gz"])
        assert_same_file(n4.bias_image, r["bias.nii.gz"])
        assert_same_file(reg.out_file, r["reg.nii.gz"])
        assert reg.warped_image == reg.out_file
        assert_same_file(reg.out_transform, r["xfm.txt"])
        assert_same_file(reg.out_matrix_file, r["flirt.mat"])
        assert_same_file(mc.out_file, r["rbold.nii.gz"])
        assert mc.realigned_files == mc.out_file
        assert_same_file(mc.par_file, r["bold.par"])
        assert_same_file(mc.realignment_parameters, r["rp.txt"])
        assert_same_file(mc.confounds_file, r["conf.tsv"])
        assert_same_file(mc.confounds_json, str(r["conf.tsv"])[:-4] + ".json")
        assert_same_file(mc.mean_img, r["mean.nii.gz"])
        assert mc.mean_image == mc.mean_img == mc.mean_file
        assert_same_file(mc.transforms_file, r["hmc.txt"])
        out = res[("out", sub)]
        assert out.out == [mc.mean_img, mc.realignment_parameters]


def test_interface_defaults_are_the_cli_defaults(exe, data):
    files, _ = data
    # Unset options are not passed: the command line's defaults apply (one source of truth).
    line = vxn.Realign(in_file=str(files["01"]["bold"])).cmdline
    for flag in ("--ref", "--sep", "--fwhm", "--quality", "--degree", "--write-degree", "--dtype"):
        assert flag not in line.split()
    assert "--threads 1" in line
    assert vxn.Realign(in_files=[str(files["01"]["bold"])], estimate_only=True).cmdline.count(" -o ") == 0
    n4 = vxn.N4(in_file=str(files["01"]["t1"]), control_points=(4, 5, 6), iterations=[5, 4])
    assert "--control-points 4x5x6" in n4.cmdline and "--iterations 5x4" in n4.cmdline
    rs = vxn.Resample(input_image=str(files["01"]["t1"]), transforms=[str(files["01"]["t1"])] * 2, degree="keys")
    assert rs.cmdline.count(" -t ") == 2 and "--degree keys" in rs.cmdline
    # The node's thread count is the interface's: MultiProc books as many cores as the command runs.
    assert pe.Node(vxn.Register(num_threads=3), name="r").n_procs == 3
    with pytest.raises(Exception):
        vxn.N4(in_file=str(files["01"]["t1"]), input_image=str(files["01"]["t1"]))   # aliases exclude each other


def test_mem_gb_grows_with_the_input(data):
    files, template = data
    small = vxi.mem_gb("realign", files["01"]["bold"])
    assert 0.1 < small < 1.0
    assert vxi.mem_gb("register", files["01"]["t1"], template) > vxi.mem_gb("register", files["01"]["t1"])
    assert vxi.cluster_args("SLURM", 1.5, 2) == {"sbatch_args": "--mem=1536M --cpus-per-task=2"}
    assert vxi.cluster_args("MultiProc", 1.5, 2) == {}


def test_failing_node_fails_workflow_with_voxalign_message(exe, data, tmp_path, cli):
    files, _ = data
    t1 = str(files["01"]["t1"])
    message = cli("realign", t1, "-o", tmp_path / "x.nii.gz", check=False).stderr.strip()
    assert message and "\n" not in message      # the CLI's own one-line error: a 3D image is no series
    wf = pe.Workflow(name="bad", base_dir=str(tmp_path / "work"))
    wf.config["execution"].update(crashdump_dir=str(tmp_path / "crash"), crashfile_format="txt")
    wf.add_nodes([pe.Node(vxn.Realign(in_file=t1), name="realign")])
    with pytest.raises(RuntimeError):
        wf.run(plugin="MultiProc", plugin_args={"n_procs": 1})
    crash = list((tmp_path / "crash").glob("crash-*realign*.txt"))
    assert len(crash) == 1
    assert message in crash[0].read_text()


def test_slurm_job_scripts(exe, data, tmp_path, monkeypatch, cli):
    files, template = data
    log = tmp_path / "sbatch.log"
    slurm_stand_ins(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGNAME", os.environ.get("LOGNAME", "tester"))
    bold = str(files["01"]["bold"])
    wf = pe.Workflow(name="slurm", base_dir=str(tmp_path / "work"))
    wf.config["execution"].update(poll_sleep_duration=0.2, remove_unnecessary_outputs=False)
    gb = vxi.mem_gb("realign", bold)
    mc = pe.Node(vxn.Realign(in_file=bold, num_threads=2), name="realign", mem_gb=gb)
    mc.plugin_args = vxi.cluster_args("SLURM", gb, mc.n_procs)
    wf.add_nodes([mc])
    graph = wf.run(plugin="SLURM", plugin_args={"sbatch_args": "--partition=short"})
    calls = log.read_text().splitlines()
    assert len(calls) == 1
    args = calls[0].split()
    assert args[:3] == ["--partition=short", f"--mem={int(-(-gb * 1024 // 1))}M", "--cpus-per-task=2"]
    script = Path(args[-1])
    assert script.name.startswith("batchscript_") and "python" in script.read_text()
    outputs = next(iter(graph.nodes())).result.outputs
    cli("realign", bold, "-o", tmp_path / "r.nii.gz", "--par", tmp_path / "r.par", "-q")
    assert_same_file(outputs.out_file, tmp_path / "r.nii.gz")
    assert_same_file(outputs.par_file, tmp_path / "r.par")


@pytest.mark.parametrize("plugin", ["SGE", "PBS"])
def test_sge_and_pbs_job_scripts(exe, data, tmp_path, monkeypatch, cli, plugin):
    # qsub receives the memory and cores the node declares, after the workflow's own qsub_args, and
    # the job script runs the node: the outputs are the CLI's.
    files, template = data
    log = tmp_path / "qsub.log"
    monkeypatch.chdir(tmp_path)  # the PBS plugin's qstat calls leave stdout.nipype/stderr.nipype in the cwd
    qsub_stand_ins(tmp_path / "bin", log, plugin)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGNAME", os.environ.get("LOGNAME", "tester"))
    bold = str(files["02"]["bold"])
    wf = pe.Workflow(name=plugin.lower(), base_dir=str(tmp_path / "work"))
    wf.config["execution"].update(poll_sleep_duration=0.2, remove_unnecessary_outputs=False)
    gb = vxi.mem_gb("realign", bold)
    mc = pe.Node(vxn.Realign(in_file=bold, num_threads=2), name="realign", mem_gb=gb)
    mc.plugin_args = vxi.cluster_args(plugin, gb, mc.n_procs)
    wf.add_nodes([mc])
    graph = wf.run(plugin=plugin, plugin_args={"qsub_args": "-q short"})
    calls = log.read_text().splitlines()
    assert len(calls) == 1
    mb = int(-(-gb * 1024 // 1))
    want = f"-q short -l h_vmem={mb}M -pe smp 2" if plugin == "SGE" else f"-q short -l mem={mb}mb,nodes=1:ppn=2"
    assert calls[0].startswith(want + " "), calls[0]
    script = Path(calls[0].split()[-1])
    assert script.name.startswith("batchscript_") and "python" in script.read_text()
    outputs = next(iter(graph.nodes())).result.outputs
    cli("realign", bold, "-o", tmp_path / "r.nii.gz", "--par", tmp_path / "r.par", "-q")
    assert_same_file(outputs.out_file, tmp_path / "r.nii.gz")
    assert_same_file(outputs.par_file, tmp_path / "r.par")


def test_option_table_matches_the_command_line(exe):
    # Every option the interfaces pass exists, and every option of the commands has an input, per the
    # command line's own list (voxalign help-json): a new or renamed option fails here.
    import json
    import subprocess

    from voxalign.interfaces._spec import COMMANDS

    listed = json.loads(subprocess.run([exe, "help-json"], capture_output=True, text=True, check=True).stdout)
    not_inputs = {"quiet", "help"}    # the interfaces keep the summary line in the node's log
    for name, cmd in COMMANDS.items():
        keys = {o.flag.lstrip("-") for o in cmd.inputs + cmd.outputs if o.flag.startswith("--")}
        keys |= {"output" for o in cmd.outputs if o.flag == "-o"} | {"transform" for o in cmd.inputs if o.flag == "-t"}
        cli_keys = {k for k in listed[name] if not k.startswith("-")} - not_inputs
        positional = {o for o in cli_keys - keys if o in ("input", "moving", "in4d", "in", "up", "down")}
        assert keys <= cli_keys, f"{name}: unknown options {sorted(keys - cli_keys)}"
        assert cli_keys - positional <= keys, f"{name}: options without an input {sorted(cli_keys - positional - keys)}"


def test_sdc_then_realign_with_the_field_match_cli(exe, tmp_path, cli):
    # A PEPOLAR chain as Nipype nodes: Sdc on a blip pair (nibabel's example4d EPI distorted by a known
    # field), its out_field into Realign(fieldmap=...) of a short series: the same files, bit for bit, as
    # the CLI by hand; out_motion is written (motion on by default) and not with no_motion; mem_gb covers sdc.
    import nibabel as nib
    import numpy as np

    import sdc_data

    up, down, true, field, mask, aff = sdc_data.pair("epi")
    d = tmp_path / "in"
    d.mkdir()
    for n, a in (("up", up), ("down", down)):
        nib.save(nib.Nifti1Image(a, aff), d / f"{n}.nii.gz")
    bold = d / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([up, np.roll(up, 1, axis=0), up], -1), aff), bold)
    wf = pe.Workflow(name="pepolar", base_dir=str(tmp_path / "work"))
    wf.config["execution"]["remove_unnecessary_outputs"] = False   # the test reads every output
    sdc = pe.Node(vxn.Sdc(in_file=str(d / "up.nii.gz"), in_down=str(d / "down.nii.gz"), pe_dir="j",
                          readout_time=0.05, warp_res=[20, 10], subsamp=[2, 1], fwhm=[4, 0], max_iter=[5, 5],
                          reg_lambda=[1e-4, 1e-3]), name="sdc", mem_gb=vxi.mem_gb("sdc", d / "up.nii.gz", d / "down.nii.gz"))
    mc = pe.Node(vxn.Realign(in_file=str(bold), pe_dir="j", readout_time=0.05), name="hmc_sdc")
    wf.connect(sdc, "out_field", mc, "fieldmap")
    graph = wf.run()
    res = {n.name: n.result.outputs for n in graph.nodes()}
    assert 0.05 < vxi.mem_gb("sdc", d / "up.nii.gz", d / "down.nii.gz") < 1.0
    assert os.path.isfile(res["sdc"].out_motion) and res["sdc"].out_corrected == res["sdc"].out_file
    cli("sdc", d / "up.nii.gz", d / "down.nii.gz", "-o", tmp_path / "c.nii.gz", "--fieldmap", tmp_path / "f.nii.gz",
        "--pe-dir", "j", "--readout-time", "0.05", "--warpres", "20,10", "--subsamp", "2,1", "--fwhm", "4,0",
        "--miter", "5,5", "--lambda", "1e-4,1e-3", "-q")
    assert_same_file(res["sdc"].out_file, tmp_path / "c.nii.gz")
    assert_same_file(res["sdc"].out_field, tmp_path / "f.nii.gz")
    cli("realign", bold, "-o", tmp_path / "r.nii.gz", "--fieldmap", tmp_path / "f.nii.gz", "--pe-dir", "j",
        "--readout-time", "0.05", "-q")
    assert_same_file(res["hmc_sdc"].out_file, tmp_path / "r.nii.gz")
    line = vxn.Sdc(in_file=str(d / "up.nii.gz"), in_down=str(d / "down.nii.gz"), no_motion=True).cmdline
    assert "--no-motion" in line and "--save-motion" not in line
