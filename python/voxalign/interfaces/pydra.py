"""Pydra shell tasks for the voxalign commands: N4, Register, Realign, Resample, Warp, Sdc (pydra 0.2x API).

The same options and outputs as voxalign.interfaces.nipype, built from the same table
(voxalign.interfaces._spec): an input left unset is not passed, so the command's own default applies;
outputs are written in the task's folder, named after the input unless named, and carry the peer
tools' names too (output_image, mean_img, realignment_parameters, ...). A generated output is turned
off by setting it to False (realign with estimate_only=True: out_file=False).

    from voxalign.interfaces.pydra import Realign
    task = Realign(in_file="bold.nii.gz", num_threads=2)
    result = task()          # result.output.out_file, .par_file, .confounds_file, ...
"""
from __future__ import annotations

import os
import shlex
import typing as ty

import attr
from pydra.engine.specs import File, ShellOutSpec, ShellSpec, SpecInfo
from pydra.engine.task import ShellCommandTask

from . import executable
from ._spec import COMMANDS, Command, Opt, default_name, format_value

__all__ = ["N4", "Register", "Realign", "Resample", "Warp", "Sdc"]

_TYPES = {"file": File, "files": ty.List[File], "path": str, "bool": bool, "int": int, "float": float,
          "choice": str, "ints": ty.List[int], "floats": ty.List[float], "choices": ty.List[str]}


def _formatter(opt: Opt):
    def fmt(field):
        if field is None or field is attr.NOTHING or (opt.kind == "bool" and not field):
            return ""
        return " ".join(shlex.quote(w) for w in format_value(opt, field))
    return fmt


def _template(cmd: Command, out):
    main = cmd.inputs[0].name

    def name(inputs):
        return os.path.basename(default_name(out, getattr(inputs, main), ""))
    return name


def _written(cmd: Command, out, inputs, output_dir):
    value = getattr(inputs, out.name)
    if value is False:
        return attr.NOTHING
    if value not in (None, True, attr.NOTHING):
        return os.path.join(output_dir, os.path.basename(os.fspath(value)))
    return default_name(out, getattr(inputs, cmd.inputs[0].name), output_dir)


def _input_fields(cmd: Command) -> list:
    fields = []
    for opt in cmd.inputs:
        md = {"help_string": opt.help, "formatter": _formatter(opt)}
        if opt.position is not None:
            md["position"] = opt.position
        if opt.mandatory:
            md["mandatory"] = True
        if opt.xor:
            md["xor"] = list(opt.xor)
        if opt.name == "num_threads":
            fields.append((opt.name, int, 1, md))   # as the Nipype interfaces: the scheduler's count
        else:
            fields.append((opt.name, _TYPES.get(opt.kind, ty.Any), md))
    for out in cmd.outputs:
        fields.append((out.name, ty.Union[str, bool], {
            "help_string": f"{out.help} (default: named after the input; False: not written)",
            "argstr": out.flag, "output_file_template": _template(cmd, out), "keep_extension": False}))
    return fields


def _alias_getter(cmd: Command, out):
    # Pydra passes a callable's arguments by name, so the output it reports is bound by closure.
    def get(inputs, output_dir):
        return _written(cmd, out, inputs, output_dir)
    return get


def _extra_getter(cmd: Command, fn):
    def get(inputs, output_dir):
        values = {o.name: _written(cmd, o, inputs, output_dir) for o in cmd.outputs}
        values = {n: v for n, v in values.items() if v is not attr.NOTHING}
        values.update({o.name: os.path.abspath(getattr(inputs, o.name)) for o in cmd.inputs
                       if o.kind == "path" and getattr(inputs, o.name) is not attr.NOTHING})
        return fn(values) or attr.NOTHING
    return get


def _output_fields(cmd: Command) -> list:
    fields = []
    for out in cmd.outputs:
        for alias in out.aliases:
            fields.append((alias, File, {"help_string": f"{out.help} (same as {out.name})",
                                         "callable": _alias_getter(cmd, out)}))
    for name, (help_, fn) in cmd.extra_outputs.items():
        fields.append((name, File, {"help_string": help_, "callable": _extra_getter(cmd, fn)}))
    return fields


def _task(cmd: Command, class_name: str):
    input_spec = SpecInfo(name=f"{class_name}Input", fields=_input_fields(cmd), bases=(ShellSpec,))
    output_spec = SpecInfo(name=f"{class_name}Output", fields=_output_fields(cmd), bases=(ShellOutSpec,))

    def __init__(self, name=None, **kwargs):
        ShellCommandTask.__init__(self, name=name or f"voxalign_{cmd.name}", executable=[executable(), cmd.name],
                                  input_spec=input_spec, output_spec=output_spec, **kwargs)
    doc = f"voxalign {cmd.name}: {cmd.help} (Pydra shell task)."
    return type(class_name, (ShellCommandTask,), {"__init__": __init__, "__doc__": doc, "__module__": __name__,
                                                  "input_spec": input_spec, "output_spec": output_spec})


N4 = _task(COMMANDS["n4"], "N4")
Register = _task(COMMANDS["register"], "Register")
Realign = _task(COMMANDS["realign"], "Realign")
Resample = _task(COMMANDS["resample"], "Resample")
Warp = _task(COMMANDS["warp"], "Warp")
Sdc = _task(COMMANDS["sdc"], "Sdc")
