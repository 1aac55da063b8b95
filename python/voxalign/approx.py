"""The usual approximations of the warp's adjoint and derivative, kept for comparison with the exact
operators (docs/warp.md, examples/warp_examples.py). Neither is what the exact functions compute:
use :func:`voxalign.adjoint_warp` and :func:`voxalign.warp_jvp` for real work."""
from __future__ import annotations

import numpy as np

from . import _voxalign as _core
from ._checks import float_array as _float_array
from ._images import load, result
from .warping import _field, invert_field, warp

__all__ = ["approx_adjoint_warp", "approx_warp_jvp"]


def approx_adjoint_warp(y, field, degree=3, mode: str = "constant", method: str = "negative"):
    """Warping by -u ("negative") or by the inverse field ("inverse"). Neither is the transpose."""
    src = load(y, "approx_adjoint_warp: y")
    yv = _float_array(src.array, "approx_adjoint_warp: y")
    f = _field(field, yv.ndim, yv.dtype)
    if method == "negative":
        return result(warp(yv, -f, degree, mode), src.like)
    if method == "inverse":
        return result(warp(yv, invert_field(f, degree), degree, mode), src.like)
    raise ValueError(f"method must be 'negative' or 'inverse', not {method!r}")


def approx_warp_jvp(image, field, dfield, degree=3, mode: str = "constant"):
    """The finite-difference gradient of the warped image, dotted with the field change."""
    src = load(image, "approx_warp_jvp: image")
    a = _float_array(src.array, "approx_warp_jvp: image")
    f = _field(field, a.ndim, a.dtype)
    g = _core.fd_gradient(warp(a, f, degree, mode))
    return result(np.einsum("...d,...d->...", g, _field(dfield, a.ndim, a.dtype, "dfield")), src.like)
