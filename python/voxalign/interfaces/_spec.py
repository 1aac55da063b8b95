"""The voxalign commands as data: each option's name, kind, flag and help, and the files each command
writes. voxalign.interfaces.nipype and .pydra both build their specs from this table, so an option is
declared once in Python. Defaults are deliberately absent: an option left unset is not passed, and the
command line's own default applies (docs/cli.md is the reference for them).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

DTYPES = ("float32", "float64", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
PE_DIRS = ("i", "j", "k", "i-", "j-", "k-")   # BIDS PhaseEncodingDirection
MODES = ("itk", "grid-constant", "constant", "nearest", "mirror", "reflect", "grid-mirror", "wrap", "grid-wrap")


@dataclass(frozen=True)
class Opt:
    """One input. kind: file (an existing file), files (several), path (a name to write), bool, int, float,
    choice (one of choices), ints/floats/choices (a list joined by sep), degree (0..high or 'keys' when
    keys), ref (mean, first or a frame number), init (a choice or a transform file), points (N or AxBxC)."""
    name: str
    kind: str
    flag: str
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    sep: str = ","
    keys: bool = False
    position: int | None = None
    mandatory: bool = False
    aliases: tuple = ()     # other names for the same input (the peer tool's), mutually exclusive
    xor: tuple = ()


@dataclass(frozen=True)
class Out:
    """A file the interface always writes, named after the primary input unless the user names it:
    prefix + input stem + suffix + (ext, or the input's extension when ext is None). Not written when
    any input in `unless` is set; `aliases` are the peer tools' output names for the same file."""
    name: str
    flag: str
    help: str
    suffix: str = ""
    prefix: str = ""
    ext: str | None = None
    unless: tuple = ()
    aliases: tuple = ()


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    inputs: tuple
    outputs: tuple
    extra_outputs: dict = field(default_factory=dict)   # output name -> (help, function(values) -> path or None)


THREADS = Opt("num_threads", "int", "--threads",
              "threads the command runs (--threads); the node's n_procs. Results are identical for any number",
              low=1, high=1024)
DTYPE = Opt("dtype", "choice", "--dtype", "data type of the written image", choices=DTYPES)
MODE = Opt("mode", "choice", "--mode", "boundary mode (itk, or a scipy.ndimage mode)", choices=MODES)


def _main_input(help_: str, aliases=()):
    return Opt("in_file", "file", "", help_, position=0, mandatory=True, aliases=aliases)


N4 = Command(
    "n4", "N4 bias-field correction (ITK's algorithm, ANTs' options and defaults; docs/n4.md)",
    inputs=(
        _main_input("2D or 3D image with positive intensities", aliases=("input_image",)),
        Opt("mask_image", "file", "--mask", "estimate the bias from the non-zero voxels of this mask (same grid)"),
        Opt("weight_image", "file", "--weight", "confidence image (same grid)"),
        Opt("shrink", "int", "--shrink", "fit on the input subsampled by this factor", low=1),
        Opt("iterations", "ints", "--iterations", "iterations per fitting level", sep="x"),
        Opt("convergence", "float", "--convergence", "stop a level when the CV of the field update is <= this"),
        Opt("spline_distance", "float", "--spline-distance", "mesh element size (mm) at the first level",
            xor=("control_points",)),
        Opt("control_points", "points", "--control-points", "control points per axis at the first level: N or "
            "(A, B, C)", xor=("spline_distance",)),
        Opt("spline_order", "int", "--spline-order", "B-spline order 1..3", low=1, high=3),
        Opt("bins", "int", "--bins", "histogram bins of the sharpening", low=1),
        Opt("fwhm", "float", "--fwhm", "FWHM of the sharpening deconvolution"),
        Opt("wiener", "float", "--wiener", "Wiener noise of the sharpening"),
        Opt("otsu_bins", "int", "--otsu-bins", "bins of the Otsu histogram (without mask_image)", low=2),
        Opt("verbose", "bool", "--verbose", "print the convergence measure after every iteration (node log)"),
        DTYPE, THREADS,
    ),
    outputs=(
        Out("out_file", "-o", "the corrected image", suffix="_n4", aliases=("output_image",)),
        Out("bias_image", "--bias-out", "the multiplicative bias field", suffix="_biasfield"),
    ),
)

REGISTER = Command(
    "register", "rigid, similarity or affine registration of a moving image to a fixed one (docs/register.md)",
    inputs=(
        _main_input("moving image (2D or 3D)", aliases=("moving_image",)),
        Opt("reference", "file", "--fixed", "fixed (reference) image", mandatory=True, aliases=("fixed_image",)),
        Opt("estimate_only", "bool", "", "write the transform files only, no moved image"),
        Opt("transform", "choice", "--transform", "transform model",
            choices=("translation", "rigid", "similarity", "affine", "syn")),
        Opt("metric", "choice", "--metric", "similarity metric", choices=("ssd", "ncc", "lncc", "mi")),
        Opt("levels", "ints", "--levels", "shrink factors, coarse to fine"),
        Opt("smoothing", "floats", "--smoothing", "Gaussian sigma (mm) per level"),
        Opt("iterations", "ints", "--iterations", "maximum iterations, one value or one per level"),
        Opt("optimizer", "choice", "--optimizer", "optimizer", choices=("auto", "gn", "lbfgs", "gd", "adam")),
        Opt("fixed_mask", "file", "--fixed-mask", "mask on the fixed grid"),
        Opt("moving_mask", "file", "--moving-mask", "mask on the moving grid"),
        Opt("init", "init", "--init", "center, moments, identity or a transform file",
            choices=("center", "moments", "identity")),
        Opt("freeze", "choices", "--freeze", "parameter groups held at their start",
            choices=("translation", "rotation", "scale", "zoom", "shear")),
        Opt("degree", "int", "--degree", "B-spline degree of the moving image during estimation", low=1, high=5),
        Opt("write_degree", "degree", "--write-degree", "interpolation of the written image", high=7, keys=True),
        Opt("bins", "int", "--bins", "mi: histogram bins", low=8, high=256),
        Opt("radius", "int", "--radius", "lncc: window radius in voxels", low=1),
        Opt("samples", "int", "--samples", "most fixed samples per level", low=1),
        Opt("tolerance", "float", "--tolerance", "stop a level when a step moves points by less (mm)"),
        Opt("keep_fill", "bool", "--keep-fill", "also compare samples touching voxels that are exactly 0"),
        Opt("out_ras_matrix", "path", "--save-matrix", "also write the 4x4 RAS pull-back matrix here"),
        Opt("out_warp", "path", "--save-warp", "syn: write the displacement field (ITK vector image) here"),
        Opt("out_inverse_warp", "path", "--save-inverse-warp", "syn: write the inverse displacement field here"),
        Opt("out_jacobian", "path", "--save-jacobian", "syn: write the Jacobian determinant here"),
        Opt("syn_metric", "choice", "--syn-metric", "syn: metric (lncc, ssd or mi)", choices=("ssd", "lncc", "mi")),
        Opt("syn_radius", "int", "--syn-radius", "syn: lncc window radius (voxels)", low=1, high=32),
        Opt("syn_bins", "int", "--syn-bins", "syn: mi histogram bins", low=8, high=256),
        Opt("syn_levels", "ints", "--syn-levels",
            "syn: shrink factors, coarse to fine (default: from the voxel size, finest ~2 mm)"),
        Opt("syn_smoothing", "floats", "--syn-smoothing", "syn: Gaussian sigma (mm) of the images per level"),
        Opt("syn_iterations", "ints", "--syn-iterations", "syn: iterations, one value or one per level"),
        Opt("syn_step", "float", "--syn-step", "syn: largest update per iteration (voxels)"),
        Opt("syn_update_sigma", "float", "--syn-update-sigma", "syn: Gaussian sigma of the update (voxels)"),
        Opt("syn_total_sigma", "float", "--syn-total-sigma", "syn: Gaussian sigma of the field (voxels)"),
        Opt("syn_convergence", "float", "--syn-convergence", "syn: stop a level below this relative improvement"),
        DTYPE, THREADS,
    ),
    outputs=(
        Out("out_file", "-o", "the moving image resampled on the fixed grid", suffix="_registered",
            unless=("estimate_only",), aliases=("warped_image",)),
        Out("out_transform", "--save-transform", "ITK affine transform (as ANTs and SimpleITK read it)",
            suffix="_xfm", ext=".txt"),
        Out("out_matrix_file", "--save-fsl", "FSL FLIRT matrix", suffix="_flirt", ext=".mat"),
    ),
)

REALIGN = Command(
    "realign", "4D motion correction with SPM's method; SPM, FSL, BIDS and ITK outputs (docs/realign.md)",
    inputs=(
        _main_input("the 4D series", aliases=("in_files",)),
        Opt("estimate_only", "bool", "--estimate-only", "do not write the resliced series"),
        Opt("ref", "ref", "--ref", "reference: mean, first or a frame number (0-based)"),
        Opt("report_dir", "path", "--report", "also write an HTML report in this folder"),
        Opt("sep", "float", "--sep", "sampling separation of the reference (mm)"),
        Opt("fwhm", "float", "--fwhm", "Gaussian smoothing before estimation (mm)"),
        Opt("quality", "float", "--quality", "fraction of the reference's gradient energy kept", low=0, high=1),
        Opt("degree", "int", "--degree", "B-spline degree during estimation", low=1, high=5),
        Opt("write_degree", "int", "--write-degree", "B-spline degree of the resliced series and mean",
            low=0, high=7),
        Opt("mask", "file", "--mask", "mask or weight on the series' 3D grid"),
        Opt("fieldmap", "file", "--fieldmap", "field in Hz on the series' grid (sdc's out_field, topup's --fout): "
            "motion and distortion corrected in one interpolation"),
        Opt("pe_dir", "choice", "--pe-dir", "with fieldmap: the series' phase-encoding direction (default: its "
            "BIDS sidecar)", choices=PE_DIRS),
        Opt("readout_time", "float", "--readout-time", "with fieldmap: the series' total readout time in s "
            "(default: its BIDS sidecar)", low=0),
        DTYPE, THREADS,
    ),
    outputs=(
        Out("out_file", "-o", "the series resliced on the reference grid", suffix="_realigned",
            unless=("estimate_only",), aliases=("realigned_files",)),
        Out("par_file", "--par", "FSL MCFLIRT .par (rx ry rz rad, tx ty tz mm)", ext=".par"),
        Out("rp_file", "--rp", "SPM rp_*.txt (tx ty tz mm, pitch roll yaw rad)", prefix="rp_", ext=".txt",
            aliases=("realignment_parameters",)),
        Out("confounds_file", "--confounds", "BIDS confounds TSV (fMRIPrep's columns)",
            suffix="_desc-confounds_timeseries", ext=".tsv"),
        Out("mean_file", "--mean", "mean of the realigned frames", suffix="_mean",
            aliases=("mean_img", "mean_image")),
        Out("transforms_file", "--save-transforms", "one ITK affine per frame (reference -> frame, LPS)",
            suffix="_hmc_xfm", ext=".txt"),
    ),
    extra_outputs={
        "confounds_json": ("JSON sidecar of the confounds (units of every column)",
                           lambda v: _swap_ext(v.get("confounds_file"), ".tsv", ".json")),
        "report": ("the HTML report", lambda v: v.get("report_dir") and os.path.join(v["report_dir"], "index.html")),
    },
)

RESAMPLE = Command(
    "resample", "resample an image onto another grid through world-space transforms",
    inputs=(
        _main_input("input image, 1-4D", aliases=("input_image",)),
        Opt("reference", "file", "--like", "image whose grid the output takes", aliases=("reference_image",)),
        Opt("transforms", "files", "-t", "pull-back transforms, applied to the output point in the order given"),
        Opt("degree", "degree", "--degree", "interpolation degree 0..7 or keys", high=7, keys=True),
        MODE,
        Opt("cval", "float", "--cval", "value outside for the constant modes and itk"),
        DTYPE, THREADS,
    ),
    outputs=(Out("out_file", "-o", "the resampled image", suffix="_resampled", aliases=("output_image",)),),
)

WARP = Command(
    "warp", "apply a displacement field, or the exact adjoint of that warp (docs/warp.md)",
    inputs=(
        _main_input("image (3D, or 4D frame by frame)"),
        Opt("field", "file", "--field", "displacement field X x Y x Z x 3 on the output grid", mandatory=True),
        Opt("adjoint", "bool", "--adjoint", "apply the transpose of the warp"),
        Opt("reference", "file", "--like", "with adjoint: the grid of the forward warp's input"),
        Opt("units", "choice", "--units", "units of the field", choices=("voxel", "mm")),
        Opt("degree", "degree", "--degree", "interpolation degree 0..7 or keys", high=7, keys=True),
        MODE, DTYPE, THREADS,
    ),
    outputs=(Out("out_file", "-o", "the warped image", suffix="_warped"),),
)

SDC = Command(
    "sdc", "susceptibility distortion correction from a blip-up/blip-down pair, FSL topup's model (docs/sdc.md)",
    inputs=(
        Opt("in_file", "file", "", "UP: image acquired with one phase-encoding direction (3D or 4D)", position=0,
            mandatory=True),
        Opt("in_down", "file", "", "DOWN: image acquired with the opposite direction, on the same grid", position=1,
            mandatory=True),
        Opt("pe_dir", "choice", "--pe-dir", "UP's phase-encoding direction (default: --datain or its BIDS sidecar)",
            choices=PE_DIRS),
        Opt("pe_dir_down", "choice", "--pe-dir-down", "DOWN's phase-encoding direction (default: opposite of UP's)",
            choices=PE_DIRS),
        Opt("readout_time", "float", "--readout-time", "total readout time in s, both images", low=0),
        Opt("readout_time_down", "float", "--readout-time-down", "DOWN's total readout time in s", low=0),
        Opt("datain", "file", "--datain", "topup's acquisition parameters (rows: UP, DOWN)", aliases=("encoding_file",)),
        Opt("mask", "file", "--mask", "fit the field to the voxels of this mask only"),
        Opt("no_align", "bool", "--no-align", "4D UP/DOWN: average their volumes without aligning them"),
        Opt("motion", "bool", "--motion", "estimate DOWN's rigid motion relative to UP (the default; topup --estmov)",
            xor=("no_motion",)),
        Opt("no_motion", "bool", "--no-motion", "do not estimate a motion between UP and DOWN", xor=("motion",)),
        Opt("warp_res", "floats", "--warpres", "control-point spacing (mm) per level (topup --warpres)"),
        Opt("subsamp", "ints", "--subsamp", "subsampling per level (topup --subsamp)"),
        Opt("fwhm", "floats", "--fwhm", "smoothing FWHM (mm) per level (topup --fwhm)"),
        Opt("max_iter", "ints", "--miter", "Gauss-Newton iterations per level (topup --miter)"),
        Opt("reg_lambda", "floats", "--lambda", "bending-energy weight per level (docs/sdc.md; not topup's units)"),
        Opt("tolerance", "float", "--tolerance", "end a level below this relative cost decrease", low=0, high=1),
        Opt("cg_iterations", "int", "--cg-iterations", "conjugate-gradient iterations per Gauss-Newton step", low=1),
        Opt("out_corrected_up", "path", "--corrected-up", "also write UP corrected here"),
        Opt("out_corrected_down", "path", "--corrected-down", "also write DOWN corrected here"),
        Opt("out_displacement_down", "path", "--displacement-down", "DOWN's correction as an ITK displacement field"),
        Opt("report_dir", "path", "--report", "also write an HTML report in this folder"),
        Opt("apply", "file", "--apply", "also correct this series (one of the two directions, same grid)"),
        Opt("out_apply", "path", "--apply-output", "the corrected apply series (needs apply)"),
        Opt("apply_transforms", "file", "--apply-transforms", "realign's transforms_file of the apply series: "
            "motion and distortion in one interpolation"),
        Opt("apply_pe_dir", "choice", "--apply-pe-dir", "the apply series' phase-encoding direction", choices=PE_DIRS),
        Opt("apply_readout_time", "float", "--apply-readout-time", "the apply series' total readout time (s)", low=0),
        Opt("verbose", "bool", "--verbose", "print the cost after every Gauss-Newton iteration (node log)"),
        DTYPE, THREADS,
    ),
    outputs=(
        Out("out_file", "-o", "the mean of the two corrected images", suffix="_sdc", aliases=("out_corrected",)),
        Out("out_field", "--fieldmap", "the field in Hz (topup --fout's sign)", suffix="_fieldmap"),
        Out("out_displacement", "--displacement", "UP's correction as an ITK displacement field (LPS mm)",
            suffix="_sdc_warp"),
        Out("out_motion", "--save-motion", "DOWN's rigid motion relative to UP (ITK transform)", suffix="_motion",
            ext=".txt", unless=("no_motion",)),
    ),
    extra_outputs={
        "report": ("the HTML report", lambda v: v.get("report_dir") and os.path.join(v["report_dir"], "index.html")),
    },
)

COMMANDS = {c.name: c for c in (N4, REGISTER, REALIGN, RESAMPLE, WARP, SDC)}


def _swap_ext(path, old, new):
    if not path:
        return None
    return path[: -len(old)] + new if path.endswith(old) else path + new


def split_nifti(path) -> tuple[str, str]:
    """(stem, extension) of a file name, .nii.gz counted as one extension."""
    name = os.path.basename(os.fspath(path))
    for ext in (".nii.gz", ".nii", ".gz"):
        if name.endswith(ext):
            return name[: -len(ext)], ext
    stem, ext = os.path.splitext(name)
    return stem, ext


def default_name(out: Out, source, folder) -> str:
    """The name an Out gets when the user gives none: in `folder`, after the primary input."""
    stem, ext = split_nifti(source)
    return os.path.join(os.fspath(folder), out.prefix + stem + out.suffix + (ext if out.ext is None else out.ext))


def format_value(opt: Opt, value) -> list[str]:
    """The command-line words for one set input (without the flag for positional inputs)."""
    if opt.kind == "bool":
        return [opt.flag] if value and opt.flag else []
    if opt.kind == "files":
        words = []
        for v in value:
            words += [opt.flag, os.fspath(v)]
        return words
    if opt.kind in ("ints", "floats", "choices"):
        text = opt.sep.join(str(v) for v in value)
    elif opt.kind == "points" and isinstance(value, (tuple, list)):
        text = "x".join(str(int(v)) for v in value)
    else:
        text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return [opt.flag, text] if opt.flag else [text]
