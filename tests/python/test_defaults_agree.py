# The CLI's defaults (voxalign help-json, read from the C++ option structs the commands bind) equal
# the Python functions' defaults, option by option, for every command: the two faces cannot drift.
import inspect
import json
import subprocess

import pytest

import voxalign as vx
from conftest import voxalign_exe


@pytest.fixture(scope="module")
def cli_defaults():
    out = subprocess.run([voxalign_exe(), "help-json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def py_default(fn, name):
    p = inspect.signature(fn).parameters[name]
    assert p.default is not inspect.Parameter.empty, f"{fn.__qualname__}({name}) has no default"
    return p.default


def as_list(v, sep):
    """A CLI list default ('4,2,1', '50x50x50x50', null) as the tuple Python uses."""
    if v is None:
        return ()
    return tuple(int(x) for x in str(v).split(sep))


def same(cli_value, py_value):
    if isinstance(py_value, float) or isinstance(cli_value, float):
        return float(cli_value) == float(py_value)
    return str(cli_value).lower() == str(py_value).lower()


# (command, CLI option, Python function, Python parameter, conversion of the CLI value)
CASES = [
    ("resample", "degree", vx.resample, "degree", None),
    ("resample", "mode", vx.resample, "mode", None),
    ("resample", "cval", vx.resample, "cval", None),
    ("resample", "degree", vx.Registration.apply, "degree", None),
    ("resample", "mode", vx.Registration.apply, "mode", None),
    ("register", "write-degree", vx.Registration.apply, "degree", None),
    ("warp", "degree", vx.warp, "degree", None),
    ("warp", "mode", vx.warp, "mode", None),
    ("warp", "degree", vx.adjoint_warp, "degree", None),
    ("warp", "mode", vx.adjoint_warp, "mode", None),
    ("warp", "mode", vx.WarpOperator, "mode", None),
    ("n4", "shrink", vx.n4, "shrink", None),
    ("n4", "iterations", vx.n4, "iterations", lambda v: as_list(v, "x")),
    ("n4", "convergence", vx.n4, "convergence", None),
    ("n4", "spline-distance", vx.n4, "spline_distance", lambda v: None if float(v) == 0 else v),  # 0: not given
    ("n4", "control-points", vx.n4, "control_points", None),
    ("n4", "spline-order", vx.n4, "spline_order", None),
    ("n4", "bins", vx.n4, "bins", None),
    ("n4", "fwhm", vx.n4, "fwhm", None),
    ("n4", "wiener", vx.n4, "wiener", None),
    ("n4", "otsu-bins", vx.n4, "otsu_bins", None),
    ("register", "transform", vx.register, "transform", None),
    ("register", "metric", vx.register, "metric", None),
    ("register", "levels", vx.register, "levels", lambda v: as_list(v, ",")),
    ("register", "smoothing", vx.register, "smoothing", None),
    ("register", "iterations", vx.register, "iterations", None),
    ("register", "optimizer", vx.register, "optimizer", None),
    ("register", "init", vx.register, "init", None),
    ("register", "freeze", vx.register, "freeze", lambda v: as_list(v, ",")),
    ("register", "degree", vx.register, "degree", None),
    ("register", "bins", vx.register, "bins", None),
    ("register", "radius", vx.register, "radius", None),
    ("register", "samples", vx.register, "max_samples", None),
    ("register", "tolerance", vx.register, "tolerance", None),
    ("register", "keep-fill", vx.register, "skip_fill", lambda v: not v),
    ("register", "syn-metric", vx.register, "syn_metric", None),
    ("register", "syn-radius", vx.register, "syn_radius", None),
    ("register", "syn-levels", vx.register, "syn_levels", None),  # null / None: from the voxel size
    ("register", "syn-bins", vx.register, "syn_bins", None),
    ("register", "syn-smoothing", vx.register, "syn_smoothing", None),
    ("register", "syn-iterations", vx.register, "syn_iterations", lambda v: as_list(v, ",")),
    ("register", "syn-step", vx.register, "syn_step", None),
    ("register", "syn-update-sigma", vx.register, "syn_update_sigma", None),
    ("register", "syn-total-sigma", vx.register, "syn_total_sigma", None),
    ("register", "syn-convergence", vx.register, "syn_convergence", None),
    ("realign", "ref", vx.realign, "ref", None),
    ("realign", "sep", vx.realign, "sep", None),
    ("realign", "fwhm", vx.realign, "fwhm", None),
    ("realign", "quality", vx.realign, "quality", None),
    ("realign", "degree", vx.realign, "degree", None),
    ("realign", "write-degree", vx.realign, "write_degree", None),
    ("realign", "estimate-only", vx.realign, "reslice", lambda v: not v),
    ("sdc", "warpres", vx.sdc, "warp_res", lambda v: tuple(float(x) for x in v.split(","))),
    ("sdc", "subsamp", vx.sdc, "subsample", lambda v: as_list(v, ",")),
    ("sdc", "fwhm", vx.sdc, "fwhm", lambda v: tuple(float(x) for x in v.split(","))),
    ("sdc", "miter", vx.sdc, "iterations", lambda v: as_list(v, ",")),
    ("sdc", "lambda", vx.sdc, "lambda_", lambda v: tuple(float(x) for x in v.split(","))),
    ("sdc", "tolerance", vx.sdc, "tolerance", None),
    ("sdc", "no-align", vx.sdc, "align_volumes", lambda v: not v),
    ("sdc", "cg-iterations", vx.sdc, "cg_iterations", None),
    ("sdc", "no-motion", vx.sdc, "motion", lambda v: not v),
    ("superres", "iterations", vx.superres, "iterations", None),
    ("superres", "regularization", vx.superres, "regularization", None),
    ("superres", "cg-iterations", vx.superres, "cg_iterations", None),
    ("superres", "gn-iterations", vx.superres, "gn_iterations", None),
    ("superres", "slice-motion", vx.superres, "slice_motion", None),
    ("superres", "slice-groups", vx.superres, "slice_groups", None),
    ("superres", "no-outlier-rejection", vx.superres, "outlier_rejection", lambda v: not v),
]


@pytest.mark.parametrize("command,option,fn,param,convert", CASES,
                         ids=[f"{c[0]}--{c[1]}:{c[2].__qualname__}.{c[3]}" for c in CASES])
def test_cli_and_python_defaults_agree(cli_defaults, command, option, fn, param, convert):
    assert option in cli_defaults[command], f"voxalign {command} has no --{option}"
    cli_value = cli_defaults[command][option]
    if convert is not None:
        cli_value = convert(cli_value)
    py_value = py_default(fn, param)
    if isinstance(py_value, (tuple, list)) or py_value is None or cli_value is None:
        assert (tuple(py_value) if isinstance(py_value, (tuple, list)) else py_value) == cli_value, \
            f"voxalign {command} --{option} defaults to {cli_value!r}, {fn.__qualname__}({param}) to {py_value!r}"
    else:
        assert same(cli_value, py_value), \
            f"voxalign {command} --{option} defaults to {cli_value!r}, {fn.__qualname__}({param}) to {py_value!r}"


def test_every_cli_option_with_a_default_is_checked(cli_defaults):
    # options whose defaults have no Python counterpart: files, flags of the CLI only, output settings
    cli_only = {"dtype", "quiet", "threads", "verbose", "adjoint", "units"}
    checked = {(c, o) for c, o, *_ in CASES}
    missing = [f"{c} --{o}" for c, opts in cli_defaults.items() for o, v in opts.items()
               if v not in (None, False) and (c, o) not in checked and o not in cli_only]
    assert not missing, f"CLI defaults not compared with Python: {missing}"


def test_names_come_from_the_cli_tables_and_any_case_is_accepted(cli):
    import numpy as np
    # the CLI's error lists the choices of its table; Python's lists are that table
    p = cli("register", "x.nii", "--fixed", "y.nii", "--metric", "bogus", check=False)
    assert p.returncode == 2 and ", ".join(vx.registration.METRICS) in p.stderr
    p = cli("resample", "x.nii", "-o", "y.nii", "--mode", "bogus", check=False)
    assert p.returncode == 2 and ", ".join(vx._voxalign.NAMES["mode"]) in p.stderr
    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 8, 7))
    shift = np.eye(4)
    shift[:3, 3] = [0.3, -0.6, 0.9]
    ref = vx.resample(a, np.eye(4), transform=shift, mode="grid-constant")
    np.testing.assert_array_equal(vx.resample(a, np.eye(4), transform=shift, mode="Grid-Constant"), ref)
    with pytest.raises(ValueError, match="choose from itk"):
        vx.resample(a, np.eye(4), mode="bogus")
    with pytest.raises(ValueError, match="register: metric: unknown metric 'bogus'"):
        vx.register(a, a, metric="bogus")
