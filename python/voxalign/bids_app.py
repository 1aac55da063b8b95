"""voxalign-bids: a BIDS App (https://bids-apps.neuroimaging.io) running voxalign over a BIDS dataset.

    voxalign-bids BIDS_DIR OUTPUT_DIR participant [--participant-label L ...] [--task T ...]
                  [--nprocs N] [--omp-nthreads N] [--mem-gb GB] [--plugin P] [--plugin-args JSON]
                  [--work-dir DIR]

Per selected subject: each T1w is N4-corrected, each BOLD run motion-corrected. Outputs are a BIDS
derivatives dataset (names in docs/pipelines.md). All work runs as one Nipype workflow whose plugin does
the parallelism: MultiProc or Linear on one machine, SLURM, SGE or PBS on a cluster (each job asks for
the memory and cores its node declares). Bad input: one line on stderr, exit status 1 (2 for a bad
command line), nothing written; a failed job: its
voxalign message, exit status 1, the crash files kept in the work folder.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

PLUGINS = ("MultiProc", "Linear", "SLURM", "SGE", "PBS")


class AppError(Exception):
    """A one-line error for the user."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, as every voxalign command
        print(f"voxalign-bids: error: {message} (see voxalign-bids --help)", file=sys.stderr)
        sys.exit(2)


def _parser():
    from . import __version__

    p = _Parser(prog="voxalign-bids", description="N4 bias correction of T1w images and motion correction of "
                "BOLD runs for a BIDS dataset, as BIDS derivatives (docs/pipelines.md).")
    p.add_argument("bids_dir", help="the BIDS dataset (read only)")
    p.add_argument("output_dir", help="where the derivatives dataset is written")
    p.add_argument("analysis_level", choices=["participant"], help="only participant-level work exists")
    p.add_argument("--participant-label", "--participant_label", nargs="+", metavar="LABEL",
                   help="subjects to process (with or without 'sub-'); default: all")
    p.add_argument("--task", nargs="+", metavar="TASK", help="only BOLD runs of these tasks; default: all")
    p.add_argument("--nprocs", type=int, default=os.cpu_count() or 1,
                   help="MultiProc: processes running at once (default: the machine's cores)")
    p.add_argument("--omp-nthreads", type=int, default=1, help="threads of each voxalign command (default: 1)")
    p.add_argument("--mem-gb", type=float, help="MultiProc: memory the running jobs may take together")
    p.add_argument("--plugin", choices=PLUGINS, default="MultiProc", help="Nipype execution plugin")
    p.add_argument("--plugin-args", metavar="JSON", help="the plugin's arguments as a JSON object, e.g. "
                   "'{\"sbatch_args\": \"--partition=short --time=1:00:00\"}'")
    p.add_argument("--work-dir", help="Nipype's working folder (default OUTPUT_DIR/.voxalign_work; on a cluster "
                   "it must be on a shared file system). Kept, so that a rerun reuses finished work")
    p.add_argument("--version", action="version", version=f"voxalign-bids {__version__}")
    return p


def _stem(name: str, suffix: str) -> str:
    """sub-01_task-rest_bold.nii.gz -> sub-01_task-rest (the entities before the suffix)."""
    base = re.sub(r"\.nii(\.gz)?$", "", os.path.basename(name))
    return base[: -len(suffix) - 1] if base.endswith("_" + suffix) else base


def _select(args):
    """The runs to process: [(kind, BIDSFile)], after checking the dataset and the selection."""
    from bids import BIDSLayout

    if not os.path.isdir(args.bids_dir):
        raise AppError(f"BIDS_DIR {args.bids_dir}: no such directory")
    if not os.path.isfile(os.path.join(args.bids_dir, "dataset_description.json")):
        raise AppError(f"BIDS_DIR {args.bids_dir}: no dataset_description.json (not a BIDS dataset)")
    if os.path.realpath(args.output_dir) == os.path.realpath(args.bids_dir):
        raise AppError(f"OUTPUT_DIR {args.output_dir} is BIDS_DIR: write the derivatives elsewhere")
    for name, value in (("--nprocs", args.nprocs), ("--omp-nthreads", args.omp_nthreads)):
        if value < 1:
            raise AppError(f"{name} {value}: must be at least 1")
    try:
        layout = BIDSLayout(args.bids_dir, validate=False)
    except Exception as e:  # pybids' own errors (an unreadable dataset_description.json, ...)
        raise AppError(f"BIDS_DIR {args.bids_dir}: {str(e).splitlines()[0]}") from None
    subjects = layout.get_subjects()
    if args.participant_label:
        wanted = [label[4:] if label.startswith("sub-") else label for label in args.participant_label]
        missing = [w for w in wanted if w not in subjects]
        if missing:
            raise AppError(f"--participant-label: {', '.join('sub-' + m for m in missing)} not in {args.bids_dir}")
        subjects = wanted
    if args.task:
        missing = [t for t in args.task if t not in layout.get_tasks()]
        if missing:
            raise AppError(f"--task: {', '.join(missing)} not in {args.bids_dir}")
    ext = [".nii", ".nii.gz"]
    runs = [("T1w", f) for f in layout.get(subject=subjects, suffix="T1w", datatype="anat", extension=ext)]
    runs += [("bold", f) for f in layout.get(subject=subjects, suffix="bold", datatype="func", extension=ext,
                                             **({"task": args.task} if args.task else {}))]
    if not runs:
        raise AppError(f"BIDS_DIR {args.bids_dir}: no T1w or BOLD image for the selected subjects")
    return runs


# Derivative names per input kind: interface output -> name after the input's entities.
OUTPUTS = {
    "T1w": {"out_file": "_desc-preproc_T1w.nii.gz", "bias_image": "_desc-biasfield_T1w.nii.gz"},
    "bold": {"out_file": "_desc-realigned_bold.nii.gz", "mean_file": "_boldref.nii.gz",
             "confounds_file": "_desc-confounds_timeseries.tsv", "confounds_json": "_desc-confounds_timeseries.json",
             "transforms_file": "_from-orig_to-boldref_mode-image_xfm.txt",
             "rp_file": "_desc-spm_motion.txt", "par_file": "_desc-mcflirt_motion.par"},
}


def _copy(sources, targets):
    """Copy each finished output to its derivative name (through a temporary name, so a reader never
    sees half a file)."""
    import os
    import shutil

    for src, dst in zip(sources, targets):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst + ".part")
        os.replace(dst + ".part", dst)
    return targets


def build_workflow(runs, args, work_dir):
    import nipype.interfaces.utility as niu
    import nipype.pipeline.engine as pe

    from . import interfaces as vxi
    from .interfaces import nipype as vxn

    wf = pe.Workflow(name="voxalign_bids", base_dir=work_dir)
    wf.config["execution"].update(crashdump_dir=os.path.join(work_dir, "crash"), crashfile_format="txt",
                                  remove_unnecessary_outputs=False, poll_sleep_duration=2)
    out_root = os.path.abspath(args.output_dir)
    for kind, f in runs:
        stem = _stem(f.path, kind)
        node_name = re.sub(r"\W", "_", stem) + ("_n4" if kind == "T1w" else "_realign")
        command = "n4" if kind == "T1w" else "realign"
        iface = vxn.N4(in_file=f.path) if kind == "T1w" else vxn.Realign(in_file=f.path)
        iface.inputs.num_threads = args.omp_nthreads
        gb = vxi.mem_gb(command, f.path)
        node = pe.Node(iface, name=node_name, mem_gb=gb)
        node.plugin_args = vxi.cluster_args(args.plugin, gb, args.omp_nthreads)
        names = OUTPUTS[kind]
        # Collecting and copying outputs is instant: on a cluster it runs in the submitting process.
        merge = pe.Node(niu.Merge(len(names)), name=node_name + "_outputs", run_without_submitting=True)
        sink = pe.Node(niu.Function(input_names=["sources", "targets"], output_names=["written"],
                                    function=_copy), name=node_name + "_sink", overwrite=True,
                       run_without_submitting=True)
        folder = os.path.join(out_root, os.path.dirname(os.path.relpath(f.path, args.bids_dir)))
        sink.inputs.targets = [os.path.join(folder, stem + suffix) for suffix in names.values()]
        wf.connect([(node, merge, [(out, f"in{i + 1}") for i, out in enumerate(names)]),
                    (merge, sink, [("out", "sources")])])
    return wf


def _write_sidecars(runs, args):
    """dataset_description.json and the JSON sidecars of the images, once the work is done."""
    from . import __version__

    out_root = os.path.abspath(args.output_dir)
    desc = {"Name": "voxalign derivatives", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "voxalign", "Version": __version__,
                             "Description": "N4 bias correction (T1w) and motion correction (BOLD)"}],
            "SourceDatasets": [{"URL": "file://" + os.path.abspath(args.bids_dir)}]}
    with open(os.path.join(out_root, "dataset_description.json"), "w") as fp:
        json.dump(desc, fp, indent=2)
    for kind, f in runs:
        rel = os.path.relpath(f.path, args.bids_dir)
        base = os.path.join(out_root, os.path.dirname(rel), _stem(f.path, kind))
        meta = {"Sources": [f"bids:raw:{rel}"], "SkullStripped": False}
        if kind == "bold":
            tr = f.get_metadata().get("RepetitionTime")
            meta.update({"RepetitionTime": tr} if tr is not None else {})
            sidecars = {"_desc-realigned_bold.json": meta, "_boldref.json": {"Sources": [f"bids:raw:{rel}"]}}
        else:
            sidecars = {"_desc-preproc_T1w.json": meta, "_desc-biasfield_T1w.json": {"Sources": [f"bids:raw:{rel}"]}}
        for suffix, content in sidecars.items():
            with open(base + suffix, "w") as fp:
                json.dump(content, fp, indent=2)


def _first_voxalign_error(crash_dir) -> str | None:
    for path in sorted(glob.glob(os.path.join(crash_dir, "crash-*.txt"))):
        with open(path) as fp:
            for line in fp:
                if "voxalign: error:" in line:
                    return line.strip()
    return None


def run(args) -> None:
    runs = _select(args)
    try:
        plugin_args = json.loads(args.plugin_args) if args.plugin_args else {}
    except json.JSONDecodeError as e:
        raise AppError(f"--plugin-args: not a JSON object ({e.msg})") from None
    if not isinstance(plugin_args, dict):
        raise AppError("--plugin-args: not a JSON object")
    if args.plugin == "MultiProc":
        plugin_args.setdefault("n_procs", args.nprocs)
        if args.mem_gb:
            plugin_args.setdefault("memory_gb", args.mem_gb)
    work_dir = os.path.abspath(args.work_dir or os.path.join(args.output_dir, ".voxalign_work"))
    os.makedirs(work_dir, exist_ok=True)
    wf = build_workflow(runs, args, work_dir)
    try:
        wf.run(plugin=args.plugin, plugin_args=plugin_args)
    except Exception as e:
        reason = _first_voxalign_error(os.path.join(work_dir, "crash")) or str(e).splitlines()[0]
        raise AppError(f"{reason} (crash files in {os.path.join(work_dir, 'crash')})") from None
    _write_sidecars(runs, args)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args)
    except AppError as e:
        print(f"voxalign-bids: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
