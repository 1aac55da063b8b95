"""Susceptibility distortion correction from a blip-up/blip-down pair (FSL topup's model; the C++
engine in src/sdc; docs/sdc.md). Images follow the package's rule (voxalign._images): a path, a
nibabel image or an array (with ``affine``)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from . import _voxalign as _core
from ._images import is_path, load, result

__all__ = ["sdc", "sdc_apply", "sdc_displacement", "SdcResult", "SDC_DEFAULTS"]

#: Defaults of :func:`sdc`, read from the C++ SdcOptions the CLI's sdc uses too (one source).
SDC_DEFAULTS = dict(_core.SDC_DEFAULTS)
_D = SDC_DEFAULTS


def _sidecar(image):
    """(PhaseEncodingDirection, TotalReadoutTime) from X.json beside a path X.nii[.gz], else Nones."""
    if not is_path(image):
        return None, None
    p = os.fspath(image)
    for ext in (".nii.gz", ".nii"):
        if p.endswith(ext):
            side = p[: -len(ext)] + ".json"
            if os.path.isfile(side):
                with open(side) as f:
                    meta = json.load(f)
                return meta.get("PhaseEncodingDirection"), meta.get("TotalReadoutTime")
    return None, None


def _opposite(pe: str) -> str:
    return pe[:-1] if pe.endswith("-") else pe.lstrip("+") + "-"


@dataclass
class SdcResult:
    """What :func:`sdc` returns: the corrected mean, the field (Hz, topup's sign), each image
    corrected, DOWN's rigid motion relative to UP (``motion``: a 4x4 RAS pull-back, UP's world point ->
    DOWN's; the identity with ``motion=False``), and a report (per level: iterations, costs, control
    points; ``cost_trace``; ``motion_parameters``)."""
    corrected: object
    fieldmap: object
    corrected_up: object
    corrected_down: object
    pe_up: str
    readout_up: float
    pe_down: str
    readout_down: float
    motion: np.ndarray = field(default_factory=lambda: np.eye(4))
    report: dict = field(default_factory=dict)


def sdc(up, down, *, pe_dir=None, readout_time=None, pe_dir_down=None, readout_time_down=None, mask=None,
        affine=None, warp_res=_D["warp_res"], subsample=_D["subsample"], fwhm=_D["fwhm"],
        iterations=_D["iterations"], lambda_=_D["lambda"], tolerance: float = _D["tolerance"],
        cg_iterations: int = _D["cg_iterations"], align_volumes: bool = _D["align_volumes"],
        motion: bool = _D["motion"],
        approximate: bool = False) -> SdcResult:
    """Estimate the susceptibility field from ``up`` and ``down`` (3D or 4D: the volumes are aligned
    rigidly, unless ``align_volumes`` is false, and averaged),
    acquired with opposite phase-encoding directions, and correct both (``voxalign sdc``).

    ``pe_dir``: UP's BIDS PhaseEncodingDirection ("j", "j-", "i", ...); ``readout_time``: its
    TotalReadoutTime in s. Both default to the BIDS sidecar beside a path (X.json); DOWN's direction
    defaults to the opposite of UP's and its readout time to UP's. ``mask``: voxels that drive the fit.
    ``warp_res`` (mm), ``subsample``, ``fwhm`` (mm), ``iterations`` and ``lambda_``: one value per
    level, as topup's --warpres, --subsamp, --fwhm, --miter, --lambda; a level ends early when an
    iteration lowers the cost by less than the fraction ``tolerance``. ``motion``: estimate a rigid
    motion of DOWN relative to UP together with the field (topup's --estmov; ``voxalign sdc
    --no-motion`` turns it off); the corrected DOWN is then on UP's frame. ``approximate``: steps from
    the usual approximate derivative instead of the exact one (for comparisons only).
    """
    su, sd = load(up, "sdc: up", affine), load(down, "sdc: down", affine)
    if su.array.shape[:3] != sd.array.shape[:3]:
        raise ValueError(f"sdc: up {su.array.shape[:3]} and down {sd.array.shape[:3]} are not on one grid")
    aff = su.affine if su.affine is not None else np.eye(4)
    side_pe, side_ro = _sidecar(up)
    dside_pe, dside_ro = _sidecar(down)
    pe_up = pe_dir or side_pe
    ro_up = readout_time if readout_time is not None else side_ro
    if pe_up is None:
        raise ValueError("sdc: no phase-encoding direction for up: give pe_dir or a BIDS sidecar")
    if ro_up is None:
        raise ValueError("sdc: no total readout time for up: give readout_time or a BIDS sidecar")
    pe_down = pe_dir_down or dside_pe or _opposite(pe_up)
    ro_down = readout_time_down if readout_time_down is not None else (dside_ro if dside_ro is not None else ro_up)
    m = None
    if mask is not None:
        m = load(mask, "sdc: mask").array
        if m.shape != su.array.shape[:3]:
            raise ValueError(f"sdc: mask shape {m.shape} differs from the images' {su.array.shape[:3]}")
        m = (m != 0).astype(np.uint8)
    lst = lambda v, t: [t(x) for x in np.atleast_1d(v)]
    r = _core.sdc(su.array.astype(np.float32, copy=False), sd.array.astype(np.float32, copy=False),
                  np.asarray(aff, np.float64), str(pe_up), float(ro_up), str(pe_down), float(ro_down), m,
                  lst(warp_res, float), lst(subsample, int), lst(fwhm, float), lst(iterations, int),
                  lst(lambda_, float), float(tolerance), int(cg_iterations), float(_D["cg_tolerance"]), bool(approximate), bool(align_volumes),
                  bool(motion))
    like = su.like
    report = {k: r[k] for k in ("levels", "cost_trace", "max_jacobian_deficit", "motion_parameters")}
    return SdcResult(result(r["corrected"], like), result(r["field"], like), result(r["corrected_up"], like),
                     result(r["corrected_down"], like if motion else sd.like), str(pe_up), float(ro_up), str(pe_down),
                     float(ro_down), np.asarray(r["motion"]), report)


def sdc_apply(series, fieldmap, pe_dir: str, readout_time: float, transforms=None, affine=None):
    """Correct ``series`` (3D or 4D, on the field's grid) acquired with ``pe_dir`` and
    ``readout_time``: each volume pulled back along the phase-encoding axis and multiplied by the
    Jacobian (``voxalign sdc --apply``). ``transforms``: realign's per-frame RAS pull-backs
    (reference -> frame; a list of 4x4 arrays, :class:`Realignment`'s ``matrices``, or the path of an
    ITK file with one transform per frame as ``realign --save-transforms`` writes it): motion and
    distortion corrected in one interpolation (``--apply-transforms``)."""
    s = load(series, "sdc_apply: series", affine)
    f = load(fieldmap, "sdc_apply: fieldmap").array.astype(np.float32, copy=False)
    data = s.array.astype(np.float32, copy=False)
    if transforms is None:
        out = _core.sdc_apply(data, f, str(pe_dir), float(readout_time))
    else:
        if isinstance(transforms, (str, os.PathLike)):
            transforms = _core.read_frame_transforms(os.fspath(transforms))
        mats = [np.ascontiguousarray(m, dtype=np.float64) for m in transforms]
        aff = s.affine if s.affine is not None else np.eye(4)
        out = _core.sdc_apply_with_motion(data, f, np.asarray(aff, np.float64), str(pe_dir), float(readout_time), mats)
    return result(out, s.like)


def sdc_displacement(fieldmap, pe_dir: str, readout_time: float, affine=None) -> np.ndarray:
    """The correction of an image acquired with ``pe_dir`` as a displacement field (X, Y, Z, 3) in
    RAS mm (corrected point -> distorted point), as ``voxalign sdc --displacement`` writes it (in LPS)."""
    f = load(fieldmap, "sdc_displacement: fieldmap", affine)
    aff = f.affine if f.affine is not None else np.eye(4)
    return _core.sdc_displacement(f.array.astype(np.float32, copy=False), np.asarray(aff, np.float64), str(pe_dir),
                                  float(readout_time))
