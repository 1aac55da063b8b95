"""voxalign: fast, exact image registration and correction for medical imaging.

Arrays are indexed [i, j, k(, t)] exactly as nibabel returns them (any memory layout is accepted;
results come back in NIfTI/Fortran order). World space is NIfTI RAS+ millimetres. Every transform
is a pull-back: it maps an output (fixed) world point to the input (moving) world point sampled
there. Interpolation degrees: 0 nearest, 1 linear, 2..7 prefiltered B-splines, "keys" Catmull-Rom.
Boundary modes use scipy.ndimage's names and meanings.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence

import numpy as np

from . import _voxalign as _core
from ._checks import affine4 as _affine4, finite_number as _finite, numeric_array as _numeric, thread_count as _threads

__all__ = [
    "Coefficients", "spline_coefficients", "interpolate", "map_coordinates", "resample", "warp_field",
    "read_nifti", "write_nifti", "read_transform", "write_itk_affine", "set_num_threads", "get_num_threads", "release_memory",
    "n4", "otsu_mask", "otsu_threshold",
    "warp", "adjoint_warp", "warp_gradient", "warp_jvp", "warp_vjp", "affine_warp", "adjoint_affine_warp",
    "WarpOperator", "AffineWarpOperator", "AffineModel", "affine_param_jvp", "affine_param_vjp",
    "warp_matrix", "invert_field", "approx_adjoint_warp", "approx_warp_jvp", "bb_minimize", "gauss_newton",
    "field_mm_to_voxels", "register", "Registration", "realign", "Realignment",
    "MODES", "RESAMPLE_DEFAULT_MODE", "__version__",
]
__version__ = "0.1.0"

MODES = ("mirror", "reflect", "grid-mirror", "nearest", "constant", "grid-constant", "wrap", "grid-wrap", "itk")
#: The boundary mode of :func:`resample` and :meth:`Registration.apply` (and of the CLI's resample,
#: register -o and warp) unless told otherwise: 'itk', ITK's answer (antsApplyTransforms,
#: SimpleITK). Defined once, in the C++ core (include/voxalign/spline/modes.hpp).
RESAMPLE_DEFAULT_MODE = str(_core.RESAMPLE_DEFAULT_MODE)

get_num_threads = _core.get_num_threads


def set_num_threads(n) -> None:
    """Threads used by every parallel loop: an integer 1..1024, or None for the default, the first
    valid of $VOXALIGN_NUM_THREADS, $OMP_NUM_THREADS (its first item), $ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS,
    else the machine's cores (docs/conventions.md, "Threads"). Results are identical for any number."""
    _core.set_num_threads(0 if n is None else _threads(n))


def release_memory() -> int:
    """Free the large buffers voxalign keeps for reuse (images, spline coefficients, returned arrays
    once they are dropped; see docs/conventions.md, "Memory"). Returns the bytes released."""
    return int(_core.release_memory())


def _order(degree) -> int:
    if isinstance(degree, str):
        return _core.parse_order(degree)
    if isinstance(degree, (bool, np.bool_)) or int(degree) != degree or not 0 <= int(degree) <= 7:
        raise ValueError(f"degree must be 0..7 or 'keys', not {degree!r}")
    return int(degree)


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown boundary mode {mode!r} (use one of {', '.join(MODES)})")
    return mode


def _float_array(a, what: str = "array") -> np.ndarray:
    a = _numeric(a, what)  # object, string and complex arrays are refused, not converted
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    return a.astype(np.float64)


class Coefficients:
    """Spline coefficients of an image, as returned by :func:`spline_coefficients`.

    ``array`` holds the coefficients; for degree >= 2 with mode 'nearest' or 'grid-constant' it
    carries ``pad`` extra samples on each side of every axis (scipy.ndimage pads the same way), so
    use :func:`interpolate` with this object rather than with ``array`` alone.
    """

    def __init__(self, array: np.ndarray, degree, mode: str, pad: int, cval: float):
        self.array, self.degree, self.mode, self.pad, self.cval = array, degree, mode, pad, cval

    @property
    def shape(self):
        """Shape of the image the coefficients interpolate (without padding)."""
        return tuple(s - 2 * self.pad for s in self.array.shape)

    def __repr__(self):
        return f"Coefficients(shape={self.shape}, degree={self.degree!r}, mode={self.mode!r}, pad={self.pad})"


def spline_coefficients(array, degree=3, mode: str = "mirror", cval: float = 0.0) -> Coefficients:
    """Interpolation coefficients of a 1D, 2D or 3D array.

    Degree >= 2 runs the exact recursive B-spline prefilter along every axis with the boundary
    initialisation of ``mode``; degrees 0, 1 and 'keys' need none (the coefficients are the samples).
    float32 input gives float32 coefficients, anything else float64.
    """
    a = _float_array(array)
    order = _order(degree)
    coeffs, pad = _core.spline_coefficients(a, order, _mode(mode), float(cval))
    return Coefficients(coeffs, degree, mode, pad, float(cval))


def interpolate(coeffs, points, degree=None, mode: Optional[str] = None, cval: Optional[float] = None, grad=False):
    """Evaluate spline coefficients at points.

    ``coeffs`` is a :class:`Coefficients` (its degree, mode and cval are used unless given) or a
    plain array of coefficients (degree 3, mode 'mirror' by default, no padding). ``points`` has
    shape (..., ndim): voxel coordinates, last axis the coordinate. Returns values of shape (...);
    with grad=True also the gradient, shape (..., ndim), per voxel. Points with a NaN/Inf
    coordinate or one beyond 1e15 voxels take ``cval``.
    """
    if isinstance(coeffs, Coefficients):
        arr, pad = coeffs.array, coeffs.pad
        degree = coeffs.degree if degree is None else degree
        mode = coeffs.mode if mode is None else mode
        cval = coeffs.cval if cval is None else cval
        prefiltered = pad or 2 <= _order(coeffs.degree) <= 7
        if prefiltered and (_order(degree), mode) != (_order(coeffs.degree), coeffs.mode):
            raise ValueError("degree/mode differ from those the coefficients were computed with")
    else:
        arr, pad = _float_array(coeffs), 0
        degree = 3 if degree is None else degree
        mode = "mirror" if mode is None else mode
        cval = 0.0 if cval is None else cval
    pts = np.asarray(points, dtype=np.float64)
    nd = arr.ndim
    if pts.ndim == 0 or pts.shape[-1] != nd:
        raise ValueError(f"points must have shape (..., {nd})")
    lead = pts.shape[:-1]
    flat = np.ascontiguousarray(pts.reshape(-1, nd))
    res = _core.interpolate(arr, pad, _order(degree), _mode(mode), float(cval), flat, bool(grad))
    if grad:
        v, g = res
        return v.reshape(lead), g.reshape(lead + (nd,))
    return res.reshape(lead)


def map_coordinates(input, coordinates, output=None, order=3, mode: str = "constant", cval: float = 0.0,
                    prefilter: bool = True):
    """Drop-in for scipy.ndimage.map_coordinates (same arguments, same results to rounding).

    ``coordinates`` has shape (ndim, ...) as in scipy. The result has the input's dtype unless
    ``output`` (a dtype, a dtype string or an array of the result's shape, either byte order) says
    otherwise, and integer outputs are rounded as scipy rounds them: half away from zero, clamped
    to the type's range (unsigned: negatives give 0); bool outputs are the truncated value != 0.
    Complex input is interpolated as scipy does it, real and imaginary parts separately (``cval``'s
    parts for each). float32 input with a float32 result is computed in float32, anything else in
    float64. Beyond scipy: degrees 6, 7 and 'keys', mode 'itk'. Not supported (a ValueError, never a
    silent answer): inputs of more than 3 dimensions. scipy's own TestMapCoordinates runs against
    this function (tests/python/test_scipy_drop_in.py).
    """
    inp = np.asarray(input)
    coords = np.asarray(coordinates)
    if np.iscomplexobj(coords):
        raise TypeError("complex coordinates are not supported")
    out_shape = coords.shape[1:]
    if inp.ndim < 1 or len(out_shape) < 1:
        raise ValueError("input and output rank must be > 0")
    if coords.shape[0] != inp.ndim:
        raise ValueError(f"coordinates must have shape (input.ndim, ...) = ({inp.ndim}, ...), not {coords.shape}")
    if inp.ndim > 3:
        raise ValueError(f"map_coordinates interpolates 1 to 3 axes; the input has {inp.ndim} "
                         "(use scipy.ndimage.map_coordinates, or interpolate 3D sub-volumes)")
    complex_in = np.iscomplexobj(inp)
    if not complex_in and inp.dtype in (np.float32, np.float64) and (
            output is None or (isinstance(output, (type, np.dtype, str)) and np.dtype(output) == inp.dtype)):
        # the result as the kernels return it: no second array, no copy
        return _map_coordinates(inp, coords, order, mode, cval, prefilter)
    out = _scipy_output(output, inp, out_shape, complex_in)
    if complex_in:  # as scipy: each part on its own (interpolation is linear)
        kw = dict(order=order, mode=mode, prefilter=prefilter)
        map_coordinates(inp.real, coords, output=out.real, cval=np.real(cval), **kw)
        map_coordinates(inp.imag, coords, output=out.imag, cval=np.imag(cval), **kw)
        return out
    work = np.float32 if inp.dtype == np.float32 and out.dtype == np.float32 else np.float64
    res = _map_coordinates(inp.astype(work, copy=False), coords, order, mode, cval, prefilter)
    _store_like_scipy(out, res)
    return out


def _scipy_output(output, inp, shape, complex_output):
    """The output array, allocated or checked as scipy.ndimage's _get_output does."""
    if output is None:
        dt = np.promote_types(inp.dtype, np.complex64) if complex_output else np.dtype(inp.dtype.name)
        return np.zeros(shape, dtype=dt)
    if isinstance(output, (type, np.dtype, str)):
        dt = np.dtype(output)
        if not issubclass(dt.type, (np.number, np.bool_)):
            raise ValueError(f"output must have a numeric dtype, not {dt}")
        if complex_output and dt.kind != "c":
            if isinstance(output, str):
                raise ValueError("output must have complex dtype")
            warnings.warn("promoting specified output dtype to complex", stacklevel=3)
            dt = np.promote_types(dt, np.complex64)
        return np.zeros(shape, dtype=dt)
    out = np.asarray(output)
    if out.shape != tuple(shape):
        raise ValueError(f"output shape {out.shape} differs from the coordinates' {tuple(shape)}")
    if complex_output and out.dtype.kind != "c":
        raise ValueError("output must have complex dtype")
    return out


def _store_like_scipy(out, res):
    """Write interpolated values into ``out`` with scipy.ndimage's casts (ni_interpolation.c,
    CASE_INTERP_OUT*): integers rounded half away from zero (unsigned: x > 0 ? x + 0.5 : 0) and
    clamped to the type's range, then truncated; bool: the truncated value != 0; floats as is."""
    kind = out.dtype.kind
    with np.errstate(invalid="ignore", over="ignore"):
        if kind in "iu":
            info = np.iinfo(out.dtype)
            r = np.where(res > 0, res + 0.5, (res - 0.5) if kind == "i" else 0.0)
            r = np.clip(r, float(info.min), float(info.max))
            out[...] = np.trunc(r).astype(out.dtype.newbyteorder("="))
        elif kind == "b":
            out[...] = np.trunc(res) != 0
        elif kind == "c":
            out.real[...] = res
            out.imag[...] = 0
        else:
            out[...] = res


def _map_coordinates(input, coordinates, order, mode, cval, prefilter):
    a = _float_array(input)
    c = np.asarray(coordinates, dtype=np.float64)
    if c.shape[0] != a.ndim:
        raise ValueError("coordinates must have shape (input.ndim, ...)")
    pts = np.moveaxis(c, 0, -1)
    if prefilter and 2 <= _order(order) <= 7:
        co = spline_coefficients(a, order, mode, cval)
        return interpolate(co, pts)
    return interpolate(a, pts, degree=order, mode=mode, cval=cval)


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


def resample(array, affine, shape: Sequence[int], target_affine, transform=None, degree=3,
             mode: str = RESAMPLE_DEFAULT_MODE, cval: float = 0.0):
    """Resample ``array`` (voxel->world ``affine``) onto the grid ``shape`` / ``target_affine``.

    ``transform`` is a world-space (RAS mm) pull-back: a 4x4 matrix mapping target world points to
    input world points, a transform file name, or a list of those applied in the order given (the order
    of antsApplyTransforms' -t and ANTsPy's ``transformlist``). Files may be affine transforms in any
    format read_transform reads, ITK .h5 files (composites and displacement fields included) and
    ITK/ANTs displacement fields (.nii/.nii.gz vector images, docs/transforms.md). A 4D
    array is resampled frame by frame (its last axis is time). Returns an array of ``shape``
    (plus the frames), float32 for float32 input and float64 otherwise.

    ``mode`` 'itk' (the default) gives ITK's answer, as antsApplyTransforms and SimpleITK: ``cval``
    where the point lies outside [-0.5, n-0.5) on an axis, the interpolated value inside (B-splines
    mirror, linear/nearest clamp at the edge). scipy.ndimage's mode names keep scipy's meanings.
    """
    a = _float_array(array, "resample: array")
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    A = _affine4(affine, "resample: affine")
    B = _affine4(target_affine, "resample: target_affine")
    items = _transform_files(transform)
    if items is not None:
        return _core.resample_chain(a, A, list(shape), B, items, _order(degree), _mode(mode),
                                    _finite(cval, "resample: cval"))
    T = _affine4(_as_transform(transform), "resample: transform", invertible=False)
    return _core.resample(a, A, list(shape), B, T, _order(degree), _mode(mode), _finite(cval, "resample: cval"))


def _transform_files(t):
    """A transform that names files, as the list resample_chain takes (names and 4x4 matrices, in the
    order applied); None when it names none (matrices only)."""
    seq = list(t) if isinstance(t, (list, tuple)) else [t]
    if not any(isinstance(x, (str, os.PathLike)) for x in seq):
        return None
    return [os.fspath(x) if isinstance(x, (str, os.PathLike))
            else _affine4(x, "resample: transform", invertible=False) for x in seq]


def warp_field(array, field, degree=3, mode: str = "constant", cval: float = 0.0):
    """out(x) = array(x + field(x)), with a displacement field in voxels of shape (*out_shape, ndim).

    The field's last axis holds the components (voxel units, along i, j, k). Any memory layout is
    accepted; NIfTI (Fortran) order, as nibabel returns it, avoids a copy."""
    a = _float_array(array)
    # The kernels walk the output along i: give them the field in NIfTI (Fortran) order, as nibabel
    # returns it; other layouts are copied once.
    f = np.asfortranarray(field, dtype=a.dtype)
    return _core.warp_field(a, f, _order(degree), _mode(mode), float(cval))


def read_nifti(path, dtype=np.float64):
    """Read a NIfTI-1/2 image (.nii, .nii.gz). Returns (array, affine, info): the array scaled by
    scl_slope/scl_inter, indexed [i, j, k(, t)]; the affine by nibabel's rule; info a dict with the
    on-disk dtype, NIfTI version, codes and scaling."""
    single = np.dtype(dtype) == np.float32
    return _core.read_nifti(os.fspath(path), single)


def write_nifti(path, array, affine, dtype: str = "float32", time_step: float = 1.0):
    """Write a 1-4D array as NIfTI (.nii or .nii.gz) with sform and qform set from ``affine``."""
    a = _float_array(array, "write_nifti: array")
    A = _affine4(affine, "write_nifti: affine")
    tr = _finite(time_step, "write_nifti: time_step", 0.0, lo_open=True)
    _core.write_nifti(os.fspath(path), a, A, str(dtype), tr)


def _grid(x, what):
    """(shape, affine) of a NIfTI path, a nibabel-like image, or a (shape, affine) pair."""
    if isinstance(x, (str, os.PathLike)):
        shape, affine = _core.read_nifti_header(os.fspath(x))
        return list(shape), np.asarray(affine)
    if hasattr(x, "shape") and hasattr(x, "affine"):
        return list(x.shape), np.asarray(x.affine, dtype=np.float64)
    if isinstance(x, (tuple, list)) and len(x) == 2:
        return list(x[0]), np.asarray(x[1], dtype=np.float64)
    raise TypeError(f"{what}: give a NIfTI path, a nibabel image or a (shape, affine) pair")


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
    rs, ra = _grid(reference, "reference")
    ms, ma = _grid(moving, "moving")
    return np.asarray(_core.read_transform_between(path, rs[:3], ra, ms[:3], ma))


def write_itk_affine(path, matrix) -> None:
    """Write a 4x4 RAS pull-back matrix as an ITK AffineTransform_double_3_3 text file (LPS)."""
    _core.write_itk_affine(os.fspath(path), np.asarray(matrix, dtype=np.float64))


def _iterations(iterations) -> list:
    if isinstance(iterations, str):
        iterations = [int(x) for x in iterations.split("x")]
    return [int(x) for x in iterations]


def n4(image, mask=None, spacing=None, *, weight=None, iterations=(50, 50, 50, 50), convergence: float = 0.0,
       shrink: int = 4, spline_distance: Optional[float] = None, control_points=4, spline_order: int = 3,
       bins: int = 200, fwhm: float = 0.15, wiener: float = 0.01, otsu_bins: int = 128, return_report: bool = False):
    """N4 bias-field correction (ITK's N4BiasFieldCorrectionImageFilter, ANTs' defaults).

    ``image``: 2D or 3D array (positive intensities; voxels <= 0 are not used for the estimate).
    ``mask``: voxels (non-zero) to estimate the bias from; default: an Otsu foreground mask.
    ``spacing``: voxel size in mm per axis (default 1). ``weight``: ITK's confidence image.
    ``iterations``: per fitting level, e.g. (50, 50, 30, 20) or "50x50x30x20"; ``convergence``:
    stop a level when the coefficient of variation of the field update falls to this (0: never).
    ``shrink``: fit on the image subsampled by this factor, then evaluate the bias at full
    resolution. ``spline_distance`` (mm, ANTs -b [d]) or ``control_points`` (per axis or one value)
    set the initial B-spline mesh; the mesh is refined between levels.
    Returns ``(corrected, bias)`` as float32 arrays (``corrected = image / bias``), plus a report
    dict when ``return_report`` is true.
    """
    img = _numeric(image, "n4: image")
    if img.ndim not in (2, 3):
        raise ValueError(f"n4 expects a 2D or 3D image, got {img.ndim} dimensions")
    img = img.astype(np.float32, copy=False)
    m = None
    if mask is not None:
        m = _numeric(mask, "n4: mask")
        if m.shape != img.shape:
            raise ValueError(f"mask shape {m.shape} differs from the image's {img.shape}")
        m = (m != 0).astype(np.uint8)
    w = None
    if weight is not None:
        w = _numeric(weight, "n4: weight").astype(np.float32)
        if w.shape != img.shape:
            raise ValueError(f"weight shape {w.shape} differs from the image's {img.shape}")
    sp = [1.0, 1.0, 1.0]
    if spacing is not None:
        s = [float(x) for x in np.atleast_1d(spacing)]
        if len(s) == 1:
            s = s * img.ndim
        if len(s) != img.ndim:
            raise ValueError(f"spacing needs {img.ndim} values, got {len(s)}")
        sp[: img.ndim] = s
    cps = [int(x) for x in np.atleast_1d(control_points)]
    corrected, bias, report = _core.n4(img, m, w, sp, _iterations(iterations), float(convergence), int(spline_order),
                                       cps, float(spline_distance or 0.0), int(shrink), int(bins), float(fwhm),
                                       float(wiener), int(otsu_bins))
    if return_report:
        return corrected, bias, report
    return corrected, bias


def otsu_threshold(image, bins: int = 128) -> float:
    """Otsu's threshold as ITK's OtsuThresholdImageFilter computes it (``bins`` histogram bins)."""
    return _core.otsu_threshold(_numeric(image, "otsu_threshold: image").astype(np.float32), int(bins))


def otsu_mask(image, bins: int = 128) -> np.ndarray:
    """Foreground mask (uint8: 1 above Otsu's threshold, 0 at or below), ITK's way."""
    return _core.otsu_mask(_numeric(image, "otsu_mask: image").astype(np.float32), int(bins))


# ---------------------------------------------------------------- warping operators (docs/warp.md)


from .warping import (  # noqa: E402
    warp, adjoint_warp, warp_gradient, warp_jvp, warp_vjp,
    affine_warp, adjoint_affine_warp, WarpOperator, AffineModel, affine_param_jvp,
    affine_param_vjp, AffineWarpOperator, warp_matrix, invert_field, approx_adjoint_warp,
    approx_warp_jvp, bb_minimize, gauss_newton, field_mm_to_voxels,
)
from .registration import Registration, register, metric_and_gradient  # noqa: E402
from .realignment import Realignment, realign  # noqa: E402
