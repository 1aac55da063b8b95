"""Argument checks shared by the Python functions: one message style, one place (docs/conventions.md,
"Failures and bad input"). Every check raises TypeError (wrong kind of thing) or ValueError (wrong
value) with one line naming the argument and what is wrong."""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _voxalign as _core


def numeric_array(obj, what: str) -> np.ndarray:
    """``obj`` as an array of bool, integers or floats; object, string, bytes, complex, datetime
    and structured arrays are refused rather than converted."""
    a = np.asarray(obj)
    if a.dtype.kind not in "biuf":
        kind = {"O": "object", "U": "string", "S": "bytes", "c": "complex", "M": "datetime",
                "m": "timedelta", "V": "structured"}.get(a.dtype.kind, str(a.dtype))
        raise TypeError(f"{what}: {kind} arrays (dtype {a.dtype}) are not supported; give a numeric array "
                        "(bool, integer or float)")
    return a


def finite_number(x, what: str, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False) -> float:
    """``x`` as a float that is finite and within [lo, hi] (lo excluded when ``lo_open``)."""
    if isinstance(x, (str, bytes)) or not isinstance(x, (numbers.Real, np.number)) or isinstance(x, complex):
        raise TypeError(f"{what} must be a number, not {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, not {v}")
    if v < lo or (lo_open and v == lo) or v > hi:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise ValueError(f"{what} = {v:g} is out of range {rng}")
    return v


def affine4(m, what: str, invertible: bool = True) -> np.ndarray:
    """A finite 4x4 float64 matrix (with an invertible 3x3 part when ``invertible``)."""
    a = numeric_array(m, what)
    if a.shape != (4, 4):
        raise ValueError(f"{what} must be a 4x4 matrix, not shape {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{what} has a non-finite entry (NaN or Inf)")
    if invertible:
        L = a[:3, :3]
        scale = max(float(np.abs(L).max()), 1e-300)
        if abs(np.linalg.det(L / scale)) < 1e-12:
            raise ValueError(f"{what} is singular (its 3x3 part has no inverse): not a voxel-to-world matrix")
    return a


def thread_count(n) -> int:
    """A thread count: an integer 1..1024."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (numbers.Integral, np.integer)):
        raise TypeError(f"set_num_threads: n must be an integer 1..1024 (or None for the default), not {n!r}")
    if not 1 <= int(n) <= 1024:
        raise ValueError(f"set_num_threads: n = {int(n)} is out of range [1, 1024] (use None for the default)")
    return int(n)


#: Boundary modes (scipy.ndimage's names and meanings, plus ITK's 'itk'; docs/interpolation.md), from
#: the C++ name table the CLI uses, with its aliases (scipy's 'grid-mirror' for 'reflect').
MODES = tuple(_core.NAMES["mode"]) + tuple(_core.ALIASES["mode"])


def name_of(kind: str, text, what: str) -> str:
    """The canonical name of `text` in the C++ table `kind` (any case, as the CLI); ValueError naming
    `what` and the choices otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string ({', '.join(_core.NAMES[kind])}), not {text!r}")
    try:
        return _core.canonical_name(kind, text)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def order(degree) -> int:
    """An interpolation degree 0..7 or 'keys' as the core's order number."""
    if isinstance(degree, str):
        return _core.parse_order(degree)
    if isinstance(degree, (bool, np.bool_)) or not isinstance(degree, (numbers.Real, np.number)) or \
            int(degree) != degree or not 0 <= int(degree) <= 7:
        raise ValueError(f"degree must be 0..7 or 'keys', not {degree!r}")
    return int(degree)


def mode(m: str) -> str:
    return name_of("mode", m, "mode")


def float_array(a, what: str = "array") -> np.ndarray:
    """float32 stays float32; anything else numeric becomes float64."""
    a = numeric_array(a, what)  # object, string and complex arrays are refused, not converted
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    return a.astype(np.float64)
