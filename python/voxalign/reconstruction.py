"""Super-resolution reconstruction with joint motion estimation (``voxalign superres``, docs/superres.md)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _voxalign as _core
from ._images import load, result

SUPERRES_DEFAULTS = dict(_core.SUPERRES_DEFAULTS)
_D = SUPERRES_DEFAULTS


@dataclass
class SuperresResult:
    """What :func:`superres` returns: the reconstruction (an image when the first stack was a path or
    a nibabel image, else an array) with its ``affine``, and per stack the motions as RAS pull-backs
    output world -> stack world (``transforms[k]``: one 4x4 per motion group; ``slice_group[k]``: the
    group of each slice along ``slice_axis[k]``), the robust slice weights, the voxels of each slice
    whose data were used (``slice_voxels``: 0 for a slice outside the output grid or mask, which keeps
    its stack's motion), the RMS of the weighted residuals after each reconstruction and the
    conjugate-gradient iterations run. ``residuals`` (with ``residuals=True``, else None): per stack,
    the residual y - A x of the final reconstruction and motions as a float32 array on the stack's
    grid (its affine)."""
    image: object
    affine: np.ndarray
    transforms: list
    slice_group: list
    slice_axis: list
    slice_weights: list = field(default_factory=list)
    residual_rms: list = field(default_factory=list)
    cg_iterations: int = 0
    slice_voxels: list = field(default_factory=list)
    residuals: list | None = None


def superres(stacks, *, affines=None, mask=None, mask_affine=None, resolution=None,
             iterations: int = _D["iterations"], regularization: float = _D["regularization"],
             cg_iterations: int = _D["cg_iterations"], gn_iterations: int = _D["gn_iterations"],
             slice_motion: bool = _D["slice_motion"], slice_groups: int = _D["slice_groups"],
             outlier_rejection: bool = _D["outlier_rejection"], register_init: bool = True,
             residuals: bool = _D["residuals"]) -> SuperresResult:
    """Reconstruct one high-resolution image from thick-slice ``stacks`` (paths, nibabel images, or
    arrays with their ``affines``) of a subject who moved between them (``slice_motion``: during
    them, one rigid motion per slice, or per ``slice_groups`` interleaved groups), as
    ``voxalign superres`` does. The output grid covers the first stack's field of view along its axes
    at ``resolution`` mm (None: the stacks' smallest in-plane spacing). ``mask``: region whose data are used
    (any grid in the first stack's world; ``mask_affine`` for an array); the output is 0 outside it.
    ``register_init``: start the motions from a rigid registration of each stack to the first
    (False: from the identity). ``residuals``: also return each stack's residual (``.residuals``)."""
    if isinstance(stacks, (str, bytes)) or not hasattr(stacks, "__len__") or len(stacks) == 0:
        raise TypeError("superres: give a list of stacks")
    if affines is not None and len(affines) != len(stacks):
        raise ValueError(f"superres: {len(affines)} affines for {len(stacks)} stacks")
    loaded = [load(s, f"superres: stack {k + 1}", None if affines is None else affines[k]) for k, s in enumerate(stacks)]
    arrays, affs = [], []
    for k, s in enumerate(loaded):
        if s.affine is None:
            raise ValueError(f"superres: stack {k + 1} is an array: give its affine (affines=[...])")
        if s.array.ndim == 4 and s.array.shape[3] != 1 or s.array.ndim > 4:
            raise ValueError(f"superres: stack {k + 1} is 4D ({s.array.shape}); give 3D stacks")
        a = s.array.reshape(s.array.shape[:3]) if s.array.ndim == 4 else s.array
        if a.ndim != 3:
            raise ValueError(f"superres: stack {k + 1} must be 3D, not {a.ndim}D")
        arrays.append(np.asarray(a, dtype=np.float32))
        affs.append(np.asarray(s.affine, dtype=np.float64))
    if resolution is not None and not (np.isfinite(resolution) and resolution > 0):
        raise ValueError(f"superres: resolution must be > 0 mm, got {resolution}")
    m = maff = None
    if mask is not None:
        ml = load(mask, "superres: mask", mask_affine)
        if ml.affine is None:
            raise ValueError("superres: the mask is an array: give mask_affine")
        m = (np.asarray(ml.array) != 0).astype(np.float32)
        maff = np.asarray(ml.affine, dtype=np.float64)
    r = _core.superres(arrays, affs, m, maff, float(resolution or 0.0), int(iterations), float(regularization),
                       int(cg_iterations), int(gn_iterations), bool(slice_motion), int(slice_groups),
                       bool(outlier_rejection), bool(register_init), bool(residuals))
    aff = np.asarray(r["affine"])
    img = result(r["image"], loaded[0].like, aff)
    return SuperresResult(img, aff, [[np.asarray(t) for t in ts] for ts in r["transforms"]], list(r["slice_group"]),
                          list(r["slice_axis"]), [list(w) for w in r["slice_weights"]], list(r["residual_rms"]),
                          int(r["cg_iterations"]), [list(v) for v in r["slice_voxels"]],
                          [np.asarray(e) for e in r["residuals"]] if residuals else None)
