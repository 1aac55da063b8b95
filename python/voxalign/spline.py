"""B-spline interpolation (docs/interpolation.md): spline coefficients computed once, values and
gradients at points, and scipy.ndimage.map_coordinates as a drop-in. Images follow the package's
rule (voxalign._images): a path, a nibabel image or an array."""
from __future__ import annotations

import warnings
from typing import NamedTuple, Optional

import numpy as np

from . import _voxalign as _core
from ._checks import MODES, float_array as _float_array, mode as _mode, order as order_of
from ._images import is_image, is_path, load

__all__ = ["Coefficients", "spline_coefficients", "interpolate", "map_coordinates", "MODES"]


class Coefficients:
    """Spline coefficients of an image, as returned by :func:`spline_coefficients`.

    ``array`` holds the coefficients; for degree >= 2 with mode 'nearest' or 'grid-constant' it
    carries ``pad`` extra samples on each side of every axis (scipy.ndimage pads the same way), so
    use :func:`interpolate` with this object rather than with ``array`` alone. Every function that
    interpolates an image (resample, warp, affine_warp, warp_gradient/jvp/vjp, affine_param_jvp/vjp,
    Registration.apply) accepts it in the image's place, so that repeated calls prefilter once; the
    results are identical to passing the image. ``affine`` is the image's voxel -> world matrix when
    the coefficients came from a path or a nibabel image (None for an array).
    """

    def __init__(self, array: np.ndarray, degree, mode: str, pad: int, cval: float, affine=None, like=None):
        self.array, self.degree, self.mode, self.pad, self.cval = array, degree, mode, pad, cval
        self.affine, self._like = affine, like

    @property
    def shape(self):
        """Shape of the image the coefficients interpolate (without padding)."""
        return tuple(s - 2 * self.pad for s in self.array.shape)

    @property
    def prefiltered(self) -> bool:
        """Whether ``array`` differs from the samples (B-spline degrees 2..7, or padded)."""
        return bool(self.pad) or 2 <= order_of(self.degree) <= 7

    def __repr__(self):
        return f"Coefficients(shape={self.shape}, degree={self.degree!r}, mode={self.mode!r}, pad={self.pad})"


class Source(NamedTuple):
    """What an interpolating binding samples: ``pad`` < 0 for samples, else coefficients padded so."""
    array: np.ndarray
    pad: int
    order: int
    mode: str
    cval: float
    like: object
    affine: Optional[np.ndarray]


def source(image, degree, mode, cval, defaults, what, affine=None) -> Source:
    """An image argument (path, nibabel image, array or :class:`Coefficients`) resolved for a
    binding. With Coefficients, their degree, mode and cval are used; arguments left at ``defaults``
    (degree, mode, cval) take the coefficients' values, and others must agree with prefiltered ones."""
    if isinstance(image, Coefficients):
        c = image
        d = c.degree if order_of(degree) == order_of(defaults[0]) else degree
        m = c.mode if mode == defaults[1] else mode
        v = c.cval if float(cval) == float(defaults[2]) else float(cval)
        if c.prefiltered and ((order_of(d), m) != (order_of(c.degree), c.mode) or (c.pad and v != c.cval)):
            raise ValueError(f"{what}: degree/mode/cval ({d!r}, {m!r}, {v:g}) differ from those the coefficients "
                             f"were computed with ({c.degree!r}, {c.mode!r}, {c.cval:g})")
        return Source(c.array, c.pad, order_of(d), _mode(m), float(v), c._like,
                      c.affine if affine is None else np.asarray(affine, dtype=np.float64))
    img = load(image, what, affine)
    return Source(_float_array(img.array, what), -1, order_of(degree), _mode(mode), float(cval), img.like, img.affine)


def spline_coefficients(image, degree=3, mode: str = "mirror", cval: float = 0.0) -> Coefficients:
    """Interpolation coefficients of a 1D, 2D or 3D image (a path, a nibabel image or an array).

    Degree >= 2 runs the exact recursive B-spline prefilter along every axis with the boundary
    initialisation of ``mode``; degrees 0, 1 and 'keys' need none (the coefficients are the samples).
    float32 input gives float32 coefficients, anything else float64. Hand the result to any function
    that interpolates, in the image's place, to prefilter once for many calls.
    """
    img = load(image, "spline_coefficients: image")
    a = _float_array(img.array, "spline_coefficients: image")
    order = order_of(degree)
    coeffs, pad = _core.spline_coefficients(a, order, _mode(mode), float(cval))
    return Coefficients(coeffs, degree, mode, pad, float(cval), img.affine if img.like is not None else None, img.like)


def interpolate(coeffs, points, degree=None, mode: Optional[str] = None, cval: Optional[float] = None, grad=False):
    """Evaluate spline coefficients at points.

    ``coeffs`` is a :class:`Coefficients` (its degree, mode and cval are used unless given) or an
    image whose samples are the coefficients (a path, a nibabel image or an array: degree 3, mode
    'mirror' by default, no padding). ``points`` has shape (..., ndim): voxel coordinates, last axis
    the coordinate. Returns values of shape (...) as an array; with grad=True also the gradient,
    shape (..., ndim), per voxel. Points with a NaN/Inf coordinate or one beyond 1e15 voxels take
    ``cval``.
    """
    if isinstance(coeffs, Coefficients):
        arr, pad = coeffs.array, coeffs.pad
        degree = coeffs.degree if degree is None else degree
        mode = coeffs.mode if mode is None else mode
        cval = coeffs.cval if cval is None else cval
        if coeffs.prefiltered and (order_of(degree), mode) != (order_of(coeffs.degree), coeffs.mode):
            raise ValueError("degree/mode differ from those the coefficients were computed with")
    else:
        arr, pad = _float_array(load(coeffs, "interpolate: coeffs").array, "interpolate: coeffs"), 0
        degree = 3 if degree is None else degree
        mode = "mirror" if mode is None else mode
        cval = 0.0 if cval is None else cval
    pts = np.asarray(points, dtype=np.float64)
    nd = arr.ndim
    if pts.ndim == 0 or pts.shape[-1] != nd:
        raise ValueError(f"points must have shape (..., {nd})")
    lead = pts.shape[:-1]
    flat = np.ascontiguousarray(pts.reshape(-1, nd))
    res = _core.interpolate(arr, pad, order_of(degree), _mode(mode), float(cval), flat, bool(grad))
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
    inp = np.asarray(input) if not (is_path(input) or is_image(input)) else load(input, "map_coordinates: input").array
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
    if prefilter and 2 <= order_of(order) <= 7:
        co = spline_coefficients(a, order, mode, cval)
        return interpolate(co, pts)
    return interpolate(a, pts, degree=order, mode=mode, cval=cval)
