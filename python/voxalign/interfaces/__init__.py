"""Workflow-engine interfaces to the voxalign command line (docs/pipelines.md).

voxalign.interfaces.nipype: Nipype interfaces (N4, Register, Realign, Resample, Warp).
voxalign.interfaces.pydra:  the same as Pydra shell tasks.
Both are built from one table of the commands' options (voxalign.interfaces._spec). This module holds
what they share and needs neither engine: which executable runs, and how much memory a run needs.
"""
from __future__ import annotations

import math
import os

__all__ = ["executable", "mem_gb", "cluster_args"]


def executable() -> str:
    """The voxalign program the interfaces run: $VOXALIGN_EXE, else `voxalign` found on PATH."""
    return os.environ.get("VOXALIGN_EXE") or "voxalign"


# Peak resident memory of one run with the command's default options, measured with /usr/bin/time -v
# on real data at two sizes (bench/bench_mem_gb.py; figures in docs/pipelines.md, "Memory"): a line
# fixed MB + bytes per input voxel (every frame of a 4D input and every component of a field counted),
# the fixed part rounded up to the next 100 MB, the slope up to the next half byte, then a 25 % margin.
_MEM_RULE = {  # command: (fixed MB, bytes per input voxel)
    "n4": (100, 12.0),        # measured 16 MB + 11.9 B/voxel (shrink 4; --shrink 1 holds 8.8 B/voxel)
    "register": (100, 12.5),  # measured 11 MB + 12.2 B/voxel of moving + fixed
    "realign": (200, 5.0),    # measured 116 MB + 4.6 B/voxel of the series, resliced
    "resample": (200, 9.5),   # measured 113 MB + 9.1 B/voxel of a 4D series
    "warp": (100, 14.0),      # measured 14 MB + 14.0 B/voxel of image + field
    "sdc": (100, 140.5),      # measured 9 MB + 140.2 B/voxel of UP + DOWN (motion on, default levels)
}
# realign and resample stream a 4D series: they hold a window of it whatever its length (realign:
# groups of frames per thread; resample: ~64 MB chunks, one read ahead), so at most this many voxels
# of a series count (the larger of a number of frames and a number of voxels).
_WINDOW = {"realign": (100, 0), "resample": (3, 48_000_000)}  # command: (frames, voxels)
# ...except what grows with the series: realign's --confounds keeps the brain voxels' time series for
# DVARS (measured 1.2 B per voxel of a 600-frame EPI series; 2.5 allows a brain mask of 60 % of the field of view).
_WHOLE_SERIES = {"realign": 2.5}  # command: bytes per voxel of the whole series
_MARGIN = 1.25


def _bytes(command, path) -> float:
    """The rule's bytes for one input: per voxel counted (a window of a streamed series) and per voxel of
    the whole series."""
    import nibabel as nib

    shape = nib.load(os.fspath(path)).shape
    total = int(math.prod(shape)) if shape else 1
    counted = total
    if command in _WINDOW and len(shape) > 3:
        frames, vox = _WINDOW[command]
        counted = min(total, max(frames * int(math.prod(shape[:3])), vox))
    return _MEM_RULE[command][1] * counted + _WHOLE_SERIES.get(command, 0.0) * total


def mem_gb(command: str, *images) -> float:
    """Memory (GB) to declare for one `voxalign <command>` run on these input images (paths): the
    measured peak RSS rule above with its margin, for Node(mem_gb=...) and cluster requests. For
    register pass the moving and the fixed image; for warp the image and the field; for sdc UP and DOWN."""
    fixed_mb = _MEM_RULE[command][0]
    return round(_MARGIN * (fixed_mb * 2**20 + sum(_bytes(command, p) for p in images)) / 2**30, 3)


def cluster_args(plugin: str, gb: float, threads: int) -> dict:
    """Per-node plugin_args asking a batch scheduler for `gb` of memory and `threads` cores (Nipype's
    SLURM, SGE and PBS plugins do not read mem_gb/n_procs themselves); {} for local plugins."""
    mb = max(1, math.ceil(gb * 1024))
    if plugin in ("SLURM", "SLURMGraph"):
        return {"sbatch_args": f"--mem={mb}M --cpus-per-task={threads}"}
    if plugin in ("SGE", "SGEGraph"):
        return {"qsub_args": f"-l h_vmem={mb}M" + (f" -pe smp {threads}" if threads > 1 else "")}
    if plugin in ("PBS", "PBSGraph"):
        return {"qsub_args": f"-l mem={mb}mb,nodes=1:ppn={threads}"}
    return {}
