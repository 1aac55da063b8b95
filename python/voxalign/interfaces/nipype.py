"""Nipype interfaces to the voxalign command line: N4, Register, Realign, Resample, Warp, Sdc.

Each wraps `voxalign <command>` (the executable named by $VOXALIGN_EXE, else `voxalign` on PATH). Inputs
mirror the command's options (voxalign.interfaces._spec); an input left unset is not passed, so the
command's own default applies. Outputs follow Nipype's names (out_file, out_transform, par_file, ...)
and also carry the names of the peer interfaces they replace, so existing connections keep working:
fsl.MCFLIRT (out_file, par_file, mean_img), spm.Realign (realigned_files, realignment_parameters,
mean_image), ants.N4BiasFieldCorrection (input_image, mask_image, weight_image -> output_image,
bias_image), ants.Registration (moving_image, fixed_image -> warped_image), ants.ApplyTransforms
(input_image, reference_image, transforms -> output_image).

num_threads defaults to 1 (as Nipype's ANTs interfaces do) so that MultiProc's n_procs accounting is
true; results are identical for any thread count, so it is left out of the hash. Memory: give the node
mem_gb=voxalign.interfaces.mem_gb(command, input) (docs/pipelines.md).
"""
from __future__ import annotations

import os
import shlex

from nipype.interfaces.base import (CommandLine, CommandLineInputSpec, File, InputMultiObject, OutputMultiObject,
                                    TraitedSpec, Undefined, isdefined, traits)

from . import executable
from ._spec import COMMANDS, Command, Opt, default_name, format_value

__all__ = ["N4", "Register", "Realign", "Resample", "Warp", "Sdc"]


def _value_trait(opt: Opt, multi: bool = False, **md):
    """The trait of one option, with Nipype's metadata md (argstr, position, xor, ...)."""
    k = opt.kind
    if k == "file":
        return InputMultiObject(File(exists=True), **md) if multi else File(exists=True, **md)
    if k == "files":
        return InputMultiObject(File(exists=True), **md)
    if k == "path":
        return File(**md)
    if k == "bool":
        return traits.Bool(**md)
    if k in ("int", "float"):
        kind = int if k == "int" else float
        if opt.low is None and opt.high is None:
            return traits.Int(**md) if k == "int" else traits.Float(**md)
        return traits.Range(low=None if opt.low is None else kind(opt.low),
                            high=None if opt.high is None else kind(opt.high), **md)
    if k == "choice":
        return traits.Enum(*opt.choices, **md)
    if k == "ints":
        return traits.List(traits.Int(), minlen=1, **md)
    if k == "floats":
        return traits.List(traits.Float(), minlen=1, **md)
    if k == "choices":
        return traits.List(traits.Enum(*opt.choices), minlen=1, **md)
    if k == "degree":
        return traits.Either(traits.Range(low=0, high=int(opt.high)), traits.Enum("keys"), **md)
    if k == "ref":
        return traits.Either(traits.Enum("mean", "first"), traits.Range(low=0), **md)
    if k == "init":
        return traits.Either(traits.Enum(*opt.choices), File(exists=True), **md)
    if k == "points":
        return traits.Either(traits.Range(low=1), traits.Tuple(traits.Int(), traits.Int(), traits.Int()), **md)
    raise ValueError(f"unknown option kind {k!r}")


def _input_traits(cmd: Command) -> dict:
    spec = {}
    for opt in cmd.inputs:
        names = (opt.name,) + opt.aliases
        for name in names:
            md = {"desc": opt.help if name == opt.name else f"{opt.help} (same as {opt.name})"}
            if opt.position is not None:
                md.update(argstr="%s", position=opt.position)
            elif opt.flag:
                md["argstr"] = opt.flag if opt.kind == "bool" else f"{opt.flag} %s"
            others = [n for n in names if n != name] + list(opt.xor)
            if others:
                md["xor"] = others
            if opt.mandatory:
                md["mandatory"] = True
            if opt.name == "num_threads":
                spec[name] = traits.Int(1, usedefault=True, nohash=True, **md)
            else:
                spec[name] = _value_trait(opt, multi=name == "in_files", **md)
    for out in cmd.outputs:
        spec[out.name] = File(argstr=f"{out.flag} %s", genfile=True, hash_files=False, desc=f"{out.help} "
                              "(default: named after the input, in the node's folder)")
    return spec


def _output_traits(cmd: Command) -> dict:
    spec = {}
    for out in cmd.outputs:
        spec[out.name] = File(exists=True, desc=out.help)
        for alias in out.aliases:
            spec[alias] = (OutputMultiObject(File(exists=True), desc=f"{out.help} (same as {out.name})")
                           if alias == "realigned_files" else File(exists=True, desc=f"{out.help} (same as {out.name})"))
    for opt in cmd.inputs:
        if opt.kind == "path":
            spec[opt.name] = traits.Any(desc=opt.help)
    for name, (help_, _) in cmd.extra_outputs.items():
        spec[name] = File(exists=True, desc=help_)
    return spec


class VoxalignCommand(CommandLine):
    """Base of the voxalign interfaces: the command line comes from the `_command` table entry."""
    _command: Command = None
    _cmd = "voxalign"   # CommandLine requires one; `cmd` below resolves the executable when it runs

    @property
    def cmd(self):
        return f"{shlex.quote(executable())} {self._command.name}"

    def _opt(self, name):
        for opt in self._command.inputs:
            if name == opt.name or name in opt.aliases:
                return opt
        return None

    def _source(self):
        """The primary input (in_file or its alias), for default output names."""
        main = self._command.inputs[0]
        for name in (main.name,) + main.aliases:
            v = getattr(self.inputs, name)
            if isdefined(v):
                return v[0] if isinstance(v, (list, tuple)) else v
        return None

    def _format_arg(self, name, spec, value):
        opt = self._opt(name)
        if opt is None:   # a generated output name
            return f"{spec.argstr.split()[0]} {shlex.quote(os.path.abspath(value))}"
        if name == "in_files":
            if len(value) != 1:
                raise ValueError(f"voxalign realign takes one 4D series; in_files has {len(value)}")
            value = value[0]
        # Nodes run in their own folder: files given relative to where the workflow was built go absolute.
        if opt.kind in ("file", "path") or (opt.kind == "init" and value not in opt.choices):
            value = os.path.abspath(value)
        elif opt.kind == "files":
            value = [os.path.abspath(v) for v in value]
        return " ".join(shlex.quote(w) for w in format_value(opt, value)) or None

    def _out_path(self, out):
        value = getattr(self.inputs, out.name)
        if isdefined(value):
            return os.path.abspath(value)
        if any(isdefined(getattr(self.inputs, u)) and getattr(self.inputs, u) for u in out.unless):
            return None
        src = self._source()
        return default_name(out, src, os.getcwd()) if src else None

    def _gen_filename(self, name):
        for out in self._command.outputs:
            if out.name == name:
                return self._out_path(out) or Undefined
        return Undefined

    def _list_outputs(self):
        outputs = self.output_spec().get()
        values = {}
        for out in self._command.outputs:
            path = self._out_path(out)
            if path:
                values[out.name] = path
                for name in (out.name,) + out.aliases:
                    outputs[name] = path
        for opt in self._command.inputs:
            if opt.kind == "path" and isdefined(getattr(self.inputs, opt.name)):
                values[opt.name] = outputs[opt.name] = os.path.abspath(getattr(self.inputs, opt.name))
        for name, (_, fn) in self._command.extra_outputs.items():
            path = fn(values)
            if path:
                outputs[name] = path
        return outputs


def _interface(cmd: Command, class_name: str):
    in_spec = type(f"{class_name}InputSpec", (CommandLineInputSpec,), _input_traits(cmd))
    out_spec = type(f"{class_name}OutputSpec", (TraitedSpec,), _output_traits(cmd))
    for spec in (in_spec, out_spec):
        spec.__module__ = __name__
        globals()[spec.__name__] = spec
    doc = f"voxalign {cmd.name}: {cmd.help}. Connections and options: docs/pipelines.md."
    return type(class_name, (VoxalignCommand,), {"__module__": __name__, "__doc__": doc, "_command": cmd,
                                                  "input_spec": in_spec, "output_spec": out_spec})


N4 = _interface(COMMANDS["n4"], "N4")
Register = _interface(COMMANDS["register"], "Register")
Realign = _interface(COMMANDS["realign"], "Realign")
Resample = _interface(COMMANDS["resample"], "Resample")
Warp = _interface(COMMANDS["warp"], "Warp")
Sdc = _interface(COMMANDS["sdc"], "Sdc")
