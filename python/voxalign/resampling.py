"""World-space resampling through affine transforms (docs/interpolation.md, docs/conventions.md).
Images follow the package's rule (voxalign._images): a path, a nibabel image or an array."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from . import _voxalign as _core
from ._checks import affine4 as _affine4, finite_number as _finite
from ._images import grid_of, result
from .io import read_transform
from .spline import Coefficients, source

__all__ = ["resample", "RESAMPLE_DEFAULTS", "RESAMPLE_DEFAULT_MODE"]

#: Defaults of :func:`resample` and :meth:`Registration.apply` (degree, mode, cval), read from the C++
#: ResampleOptions that the CLI's resample, register -o and warp use too: they cannot drift apart.
RESAMPLE_DEFAULTS = dict(_core.RESAMPLE_DEFAULTS)
#: The default boundary mode, 'itk': ITK's answer (antsApplyTransforms, SimpleITK).
RESAMPLE_DEFAULT_MODE = str(RESAMPLE_DEFAULTS["mode"])
_DEF = (RESAMPLE_DEFAULTS["degree"], RESAMPLE_DEFAULTS["mode"], RESAMPLE_DEFAULTS["cval"])


def _as_transform(t) -> np.ndarray:
    if t is None:
        return np.eye(4)
    if isinstance(t, (str, os.PathLike)):
        return read_transform(t)
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is not None and arr.shape == (4, 4):
        return arr
    if isinstance(t, (list, tuple)) and len(t) and not np.isscalar(t[0]):
        m = np.eye(4)
        for x in t:  # applied to the output point in the order given
            m = _as_transform(x) @ m
        return m
    arr = np.asarray(t, dtype=np.float64)
    if arr.shape != (4, 4):
        raise ValueError("transform must be a 4x4 matrix, a file name, or a list of those")
    return arr


def _interpolated_axes(shape) -> int:
    """Axes resample interpolates: trailing spatial axes of length 1 are not (C++ interpolated_axes)."""
    nd = min(len(shape), 3)
    while nd > 1 and shape[nd - 1] == 1:
        nd -= 1
    return nd


def resample(image, affine=None, shape: Optional[Sequence[int]] = None, target_affine=None, transform=None,
             degree=_DEF[0], mode: str = _DEF[1], cval: float = _DEF[2], *, reference=None):
    """Resample ``image`` onto the grid ``shape`` / ``target_affine`` (or that of ``reference``).

    ``image``: a NIfTI path, a nibabel image, an array with its voxel->world ``affine``, or
    :class:`Coefficients` of one (prefiltered once for many calls). ``reference``: a path, a
    nibabel image or a (shape, affine) pair giving the target grid; without it and without
    ``shape``/``target_affine``, the input's own grid. ``transform`` is a world-space (RAS mm)
    pull-back: a 4x4 matrix mapping target world points to input world points, a transform file
    name, or a list of those applied in the order given (the order of antsApplyTransforms' -t and
    ANTsPy's ``transformlist``). Files may be affine transforms in any format read_transform reads,
    ITK .h5 files (composites and displacement fields included) and ITK/ANTs displacement fields
    (.nii/.nii.gz vector images, docs/transforms.md), or in memory as a ``(field, affine)`` pair (an
    X x Y x Z x 3 array of RAS mm displacements on the grid ``affine``, as ``Registration.warp``). A 4D image is resampled frame by frame
    (its last axis is time). Returns a nibabel image on the target grid for a path or image input,
    else an array of ``shape`` (plus the frames), float32 for float32 input and float64 otherwise.

    ``mode`` 'itk' (the default) gives ITK's answer, as antsApplyTransforms and SimpleITK: ``cval``
    where the point lies outside [-0.5, n-0.5) on an axis, the interpolated value inside (B-splines
    mirror, linear/nearest clamp at the edge). scipy.ndimage's mode names keep scipy's meanings.
    """
    src = source(image, degree, mode, cval, _DEF, "resample: image", affine)
    if src.affine is None:
        raise TypeError("resample: give the array's voxel->world affine (or pass a NIfTI path or a nibabel image)")
    if isinstance(image, Coefficients) and image.array.ndim != _interpolated_axes(image.shape):
        raise ValueError(f"resample: coefficients of shape {image.shape} interpolate {image.array.ndim} axes, resample "
                         f"{_interpolated_axes(image.shape)} (trailing length-1 axes are not interpolated): compute "
                         "them from the image without those axes, e.g. spline_coefficients(x[..., 0], ...)")
    A = _affine4(src.affine, "resample: affine")
    if reference is not None:
        if shape is not None or target_affine is not None:
            raise TypeError("resample: give reference, or shape and target_affine, not both")
        rshape, B = grid_of(reference, "resample: reference")
        shape = rshape[:3]
    else:
        in_shape = image.shape if isinstance(image, Coefficients) else src.array.shape
        shape = list(in_shape[:3]) if shape is None else shape
        B = A if target_affine is None else _affine4(target_affine, "resample: target_affine")
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    items = _transform_files(transform)
    if items is not None:
        if isinstance(image, Coefficients):
            raise TypeError("resample: transform files (fields, .h5) take an image, not Coefficients")
        out = _core.resample_chain(src.array, A, list(shape), B, items, src.order, src.mode,
                                   _finite(src.cval, "resample: cval"))
        return result(out, src.like, B)
    T = _affine4(_as_transform(transform), "resample: transform", invertible=False)
    out = _core.resample(src.array, src.pad, A, list(shape), B, T, src.order, src.mode,
                         _finite(src.cval, "resample: cval"))
    return result(out, src.like, B)


def _transform_files(t):
    """A transform that names files, as the list resample_chain takes (names and 4x4 matrices, in the
    order applied); None when it names none (matrices only)."""
    seq = list(t) if isinstance(t, list) or (isinstance(t, tuple) and not _is_field(t)) else [t]
    if not any(isinstance(x, (str, os.PathLike)) or _is_field(x) for x in seq):
        return None
    return [os.fspath(x) if isinstance(x, (str, os.PathLike))
            else (np.asarray(x[0], dtype=np.float64), _affine4(x[1], "resample: field affine")) if _is_field(x)
            else _affine4(x, "resample: transform", invertible=False) for x in seq]


def _is_field(x):
    """A (field, affine) pair: an X x Y x Z x 3 displacement field in RAS mm on the grid ``affine``."""
    return isinstance(x, tuple) and len(x) == 2 and np.ndim(x[0]) == 4
