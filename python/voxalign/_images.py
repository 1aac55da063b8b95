"""How every voxalign function takes and returns images -- one rule, stated here and in docs/python.md:

- An image argument may be a path (``str`` or ``os.PathLike``) to a NIfTI file, a nibabel image, or a
  numpy array (any numeric dtype, any memory layout). A path or a nibabel image brings its geometry
  (the affine); with an array, functions that need geometry take it from their ``affine`` argument.
- The result is a nibabel ``Nifti1Image`` when the image argument was a path or a nibabel image (its
  header carried over, the affine of the grid the result lies on, the result's dtype), and a numpy
  array when it was an array.
- Functions that interpolate also accept :class:`voxalign.Coefficients` (prefiltered once by
  :func:`voxalign.spline_coefficients`), which remember whether they came from an image.

Anything else (a number, a dict, None) is refused with a TypeError naming the argument.
"""
from __future__ import annotations

import numbers
import os
from typing import NamedTuple, Optional

import numpy as np

from ._checks import affine4, numeric_array


class Loaded(NamedTuple):
    array: np.ndarray     #: the data, indexed [i, j, k(, t)]
    affine: Optional[np.ndarray]  #: voxel -> world (RAS mm); None for an array given without one
    like: object          #: the nibabel image the result copies its header from; None for an array


def is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def is_image(x) -> bool:
    """A nibabel spatial image (or anything with its dataobj / affine / header)."""
    return hasattr(x, "dataobj") and hasattr(x, "affine") and hasattr(x, "header")


def _nib():
    import nibabel

    return nibabel


def open_image(x, what: str):
    """A path (loaded lazily by nibabel) or a nibabel image, as a nibabel image."""
    if is_path(x):
        p = os.fspath(x)
        if not os.path.exists(p):
            raise FileNotFoundError(f"{what}: no such file: {p}")
        return _nib().load(p)
    return x


def load(x, what: str, affine=None) -> Loaded:
    """The array, affine and header source of an image argument (a path, a nibabel image or an
    array); ``affine`` overrides the image's, and is the array's when one is given."""
    if is_path(x) or is_image(x):
        img = open_image(x, what)
        arr = np.asanyarray(img.dataobj)  # scaled by scl_slope / scl_inter, as nibabel does
        aff = img.affine if affine is None else affine
        return Loaded(numeric_array(arr, what), affine4(aff, f"{what}: affine"), img)
    if x is None or isinstance(x, (numbers.Number, bytes, dict, set)) or not hasattr(x, "__len__") and not hasattr(
            x, "__array__"):
        raise TypeError(f"{what} must be a NIfTI path, a nibabel image or a numpy array, not {type(x).__name__}")
    arr = numeric_array(x, what)
    if arr.ndim == 0:
        raise TypeError(f"{what} must be a NIfTI path, a nibabel image or a numpy array, not a scalar")
    return Loaded(arr, None if affine is None else affine4(affine, f"{what}: affine"), None)


def grid_of(x, what: str):
    """(shape, affine) of a NIfTI path, a nibabel image, or a (shape, affine) pair."""
    if is_path(x) or is_image(x):
        img = open_image(x, what)
        return list(img.shape), np.asarray(img.affine, dtype=np.float64)
    if isinstance(x, (tuple, list)) and len(x) == 2:
        return [int(s) for s in np.atleast_1d(x[0])], affine4(x[1], f"{what}: affine")
    raise TypeError(f"{what}: give a NIfTI path, a nibabel image or a (shape, affine) pair, not {type(x).__name__}")


def affine_of(x, what: str) -> np.ndarray:
    """The affine of a path or nibabel image, or ``x`` itself as a 4x4 matrix."""
    if is_path(x) or is_image(x):
        return np.asarray(open_image(x, what).affine, dtype=np.float64)
    return affine4(x, what)


def result(array, like, affine=None):
    """``array`` as the caller gave its input: a Nifti1Image with ``like``'s header (and ``affine``,
    default ``like``'s) when ``like`` is an image, else the array itself."""
    if like is None:
        return array
    nib = _nib()
    hdr = None
    if isinstance(like.header, nib.Nifti1Header):
        hdr = like.header.copy()
        hdr.set_slope_inter(None, None)  # the result is unscaled data
    arr = np.asarray(array)
    out = nib.Nifti1Image(arr, np.asarray(like.affine if affine is None else affine, dtype=np.float64), header=hdr)
    out.set_data_dtype(arr.dtype)
    return out


def voxel_sizes(affine) -> np.ndarray:
    """Voxel size in mm along each axis (the column norms of the 3x3 part)."""
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
