"""NIfTI and transform files. Images follow the package's rule (voxalign._images); readers return
arrays and metadata (use nibabel.load for an image object)."""
from __future__ import annotations

import os

import numpy as np

from . import _voxalign as _core
from ._checks import affine4 as _affine4, finite_number as _finite, float_array as _float_array
from ._images import grid_of, load

__all__ = ["read_nifti", "write_nifti", "read_transform", "write_itk_affine"]


def read_nifti(path, dtype=np.float64):
    """Read a NIfTI-1/2 image (.nii, .nii.gz). Returns (array, affine, info): the array scaled by
    scl_slope/scl_inter, indexed [i, j, k(, t)]; the affine by nibabel's rule; info a dict with the
    on-disk dtype, NIfTI version, codes and scaling."""
    single = np.dtype(dtype) == np.float32
    return _core.read_nifti(os.fspath(path), single)


def write_nifti(path, image, affine=None, dtype: str = "float32", time_step=None):
    """Write a 1-4D image (a path, a nibabel image, or an array with its ``affine``) as NIfTI (.nii or
    .nii.gz) with sform and qform set from the affine. ``time_step``: the TR in seconds (default: the
    image's, else 1)."""
    img = load(image, "write_nifti: image", affine)
    if img.affine is None:
        raise TypeError("write_nifti: give the array's voxel->world affine (or pass a nibabel image)")
    a = _float_array(img.array, "write_nifti: image")
    A = _affine4(img.affine, "write_nifti: affine")
    if time_step is None:
        zooms = img.like.header.get_zooms() if img.like is not None else ()
        time_step = float(zooms[3]) if len(zooms) > 3 and zooms[3] > 0 else 1.0
    tr = _finite(time_step, "write_nifti: time_step", 0.0, lo_open=True)
    _core.write_nifti(os.fspath(path), a, A, str(dtype), tr)


def read_transform(path, reference=None, moving=None) -> np.ndarray:
    """Read a transform file as a 4x4 RAS pull-back matrix (reference world -> moving world).

    The format is told by content and name (docs/register.md, "Transform files"): ITK text, ITK/ANTs
    binary .mat, 4x4 RAS text; a FLIRT text .mat needs ``reference`` (FLIRT's -ref) and ``moving``
    (FLIRT's -in), each a NIfTI path, a nibabel image or a (shape, affine) pair; AFNI matrices are
    refused by name."""
    path = os.fspath(path)
    if reference is None and moving is None:
        return np.asarray(_core.read_transform(path))
    if reference is None or moving is None:
        raise TypeError("read_transform: give both reference and moving, or neither")
    rs, ra = grid_of(reference, "reference")
    ms, ma = grid_of(moving, "moving")
    return np.asarray(_core.read_transform_between(path, rs[:3], ra, ms[:3], ma))


def write_itk_affine(path, matrix) -> None:
    """Write a 4x4 RAS pull-back matrix as an ITK AffineTransform_double_3_3 text file (LPS)."""
    _core.write_itk_affine(os.fspath(path), np.asarray(matrix, dtype=np.float64))
