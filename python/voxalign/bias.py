"""N4 bias-field correction and Otsu's foreground mask (the C++ engine in src/n4; docs/n4.md).
Images follow the package's rule (voxalign._images): a path, a nibabel image or an array."""
from __future__ import annotations

import numpy as np

from . import _voxalign as _core
from ._images import load, result, voxel_sizes

__all__ = ["n4", "otsu_mask", "otsu_threshold", "N4_DEFAULTS"]

#: Defaults of :func:`n4`, read from the C++ N4Options the CLI's n4 uses too (one source).
N4_DEFAULTS = dict(_core.N4_DEFAULTS)
_D = N4_DEFAULTS


def _iterations(iterations) -> list:
    if isinstance(iterations, str):
        iterations = [int(x) for x in iterations.split("x")]
    return [int(x) for x in iterations]


def _spatial(a, what):
    """A 2D or 3D array."""
    if a.ndim not in (2, 3):
        raise ValueError(f"{what} must be a 2D or 3D image, not {a.ndim}D")
    return a


def n4(image, mask=None, spacing=None, *, weight=None, iterations=_D["iterations"], convergence: float = _D["convergence"],
       shrink: int = _D["shrink"], spline_distance=_D["spline_distance"], control_points=_D["control_points"],
       spline_order: int = _D["spline_order"], bins: int = _D["bins"], fwhm: float = _D["fwhm"],
       wiener: float = _D["wiener"], otsu_bins: int = _D["otsu_bins"], return_report: bool = False):
    """N4 bias-field correction (ITK's N4BiasFieldCorrectionImageFilter, ANTs' defaults).

    ``image``: a 2D or 3D image -- a NIfTI path, a nibabel image or an array (positive intensities;
    voxels <= 0 are not used for the estimate). ``mask``: voxels (non-zero) to estimate the bias from,
    the same kinds; default: an Otsu foreground mask. ``spacing``: voxel size in mm per axis (default:
    the image's voxel sizes, 1 for an array). ``weight``: ITK's confidence image.
    ``iterations``: per fitting level, e.g. (50, 50, 30, 20) or "50x50x30x20"; ``convergence``:
    stop a level when the coefficient of variation of the field update falls to this (0: never).
    ``shrink``: fit on the image subsampled by this factor, then evaluate the bias at full
    resolution. ``spline_distance`` (mm, ANTs -b [d]) or ``control_points`` (per axis or one value)
    set the initial B-spline mesh; the mesh is refined between levels.
    Returns ``(corrected, bias)`` (``corrected = image / bias``, float32): nibabel images for a path
    or image input, else arrays; plus a report dict when ``return_report`` is true.
    """
    src = load(image, "n4: image")
    img = _spatial(src.array, "n4: image").astype(np.float32, copy=False)
    m = None
    if mask is not None:
        m = _spatial(load(mask, "n4: mask").array, "n4: mask")
        if m.shape != img.shape:
            raise ValueError(f"n4: mask shape {m.shape} differs from the image's {img.shape}")
        m = (m != 0).astype(np.uint8)
    w = None
    if weight is not None:
        w = _spatial(load(weight, "n4: weight").array, "n4: weight").astype(np.float32)
        if w.shape != img.shape:
            raise ValueError(f"n4: weight shape {w.shape} differs from the image's {img.shape}")
    sp = [1.0, 1.0, 1.0]
    if spacing is None and src.like is not None:
        spacing = voxel_sizes(src.affine)[: img.ndim]
    if spacing is not None:
        s = [float(x) for x in np.atleast_1d(spacing)]
        if len(s) == 1:
            s = s * img.ndim
        if len(s) != img.ndim:
            raise ValueError(f"n4: spacing needs {img.ndim} values, got {len(s)}")
        sp[: img.ndim] = s
    cps = [int(x) for x in np.atleast_1d(control_points)]
    corrected, bias, report = _core.n4(img, m, w, sp, _iterations(iterations), float(convergence), int(spline_order),
                                       cps, float(spline_distance or 0.0), int(shrink), int(bins), float(fwhm),
                                       float(wiener), int(otsu_bins))
    corrected, bias = result(corrected, src.like), result(bias, src.like)
    return (corrected, bias, report) if return_report else (corrected, bias)


def otsu_threshold(image, bins: int = _D["otsu_bins"]) -> float:
    """Otsu's threshold as ITK's OtsuThresholdImageFilter computes it (``bins`` histogram bins)."""
    return _core.otsu_threshold(load(image, "otsu_threshold: image").array.astype(np.float32), int(bins))


def otsu_mask(image, bins: int = _D["otsu_bins"]):
    """Foreground mask (uint8: 1 above Otsu's threshold, 0 at or below), ITK's way."""
    src = load(image, "otsu_mask: image")
    return result(_core.otsu_mask(src.array.astype(np.float32), int(bins)), src.like)
