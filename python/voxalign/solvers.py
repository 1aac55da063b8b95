"""The C++ solvers for small problems driven from Python: Barzilai-Borwein projected gradient and
Gauss-Newton / Levenberg-Marquardt (src/solve; docs/warp.md)."""
from __future__ import annotations

import numpy as np

from . import _voxalign as _core

__all__ = ["bb_minimize", "gauss_newton"]


def _bounds(b, x0):
    if b is None:
        return []
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), np.shape(x0)).ravel()
    return [float(v) for v in b]


def bb_minimize(fun, x0, lower=None, upper=None, groups=None, max_iterations: int = 100, tol: float = 1e-6,
                f_tol: float = 0.0, step0: float = 0.0, line_search: bool = False) -> dict:
    """Barzilai-Borwein projected gradient (C++). ``fun(x) -> (f, grad)`` on float64 arrays of
    x0's shape; ``lower``/``upper`` bounds (scalars or arrays); ``groups`` (an int per variable)
    selects the split variant with one step size per group; ``line_search`` adds a non-monotone
    backtracking. Returns a dict: x (x0's shape), f, iterations, evaluations, converged, history."""
    x0 = np.asarray(x0, dtype=np.float64)
    shape = x0.shape
    flat = x0.ravel()
    g = [] if groups is None else [int(v) for v in np.broadcast_to(np.asarray(groups), shape).ravel()]

    def cb(x):
        f, grad = fun(x.reshape(shape))
        return float(f), np.ascontiguousarray(grad, dtype=np.float64).ravel()

    r = _core.bb_minimize(cb, [float(v) for v in flat], _bounds(lower, x0), _bounds(upper, x0), g,
                          int(max_iterations), float(tol), float(f_tol), float(step0), bool(line_search))
    r["x"] = np.asarray(r["x"]).reshape(shape)
    return r


def gauss_newton(normal, x0, max_iterations: int = 50, tol: float = 1e-8, f_tol: float = 1e-12,
                 lambda0: float = 0.0) -> dict:
    """Gauss-Newton with Levenberg-Marquardt damping (C++) for small parameter vectors.
    ``normal(x) -> (cost, JtJ, Jtr)`` with cost = 0.5 ||r||^2. Returns a dict like bb_minimize."""
    x0 = np.asarray(x0, dtype=np.float64).ravel()

    def cb(x):
        c, H, b = normal(x)
        return float(c), np.ascontiguousarray(H, dtype=np.float64), np.ascontiguousarray(b, dtype=np.float64)

    r = _core.gauss_newton(cb, [float(v) for v in x0], int(max_iterations), float(tol), float(f_tol), float(lambda0))
    r["x"] = np.asarray(r["x"])
    return r
