"""Warping operators (docs/warp.md): displacement-field and affine warps, their exact adjoints and
derivatives, LinearOperators, the explicit matrix, field inversion and the C++ solvers -- bindings and
glue over the C++ core."""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _voxalign as _core
from . import _float_array, _mode, _order

def _field(field, ndim, dtype):
    f = np.asfortranarray(field, dtype=dtype)
    if f.ndim != ndim + 1 or f.shape[-1] != ndim:
        raise ValueError(f"field must have shape (*grid, {ndim}), got {f.shape}")
    return f


def warp(image, field, degree=3, mode: str = "constant"):
    """The warp operator M: out(x) = image(x + field(x)) (field in voxels, shape (*grid, ndim)).

    Constant modes use 0 outside (the operator is linear); degree >= 2 includes the prefilter."""
    a = _float_array(image)
    return _core.warp_field(a, _field(field, a.ndim, a.dtype), _order(degree), _mode(mode), 0.0)


def adjoint_warp(y, field, shape, degree=3, mode: str = "constant"):
    """The exact adjoint M^T of :func:`warp` for this field, applied to ``y`` (the output grid);
    returns an array of ``shape`` (the input grid): <warp(x), y> == <x, adjoint_warp(y)>."""
    yv = _float_array(y)
    shape = [int(s) for s in np.atleast_1d(shape)]
    return _core.warp_adjoint(yv, _field(field, yv.ndim, yv.dtype), shape, _order(degree), _mode(mode))


def warp_gradient(image, field, degree=3, mode: str = "constant"):
    """(warped, grad): the warped image and the gradient of the interpolated image at the warped
    points, shape (*grid, ndim) -- the per-voxel Jacobian of the warp with respect to the field."""
    a = _float_array(image)
    return _core.warp_derivative(a, _field(field, a.ndim, a.dtype), None, 0, _order(degree), _mode(mode))


def warp_jvp(image, field, dfield, degree=3, mode: str = "constant"):
    """Exact derivative of :func:`warp` with respect to the field along ``dfield``:
    grad image(x + u(x)) . du(x)."""
    a = _float_array(image)
    return _core.warp_derivative(a, _field(field, a.ndim, a.dtype), _field(dfield, a.ndim, a.dtype), 1,
                                 _order(degree), _mode(mode))


def warp_vjp(image, field, ybar, degree=3, mode: str = "constant"):
    """Exact vector-Jacobian product of :func:`warp` with respect to the field: ybar(x) * grad
    image(x + u(x)), shape (*grid, ndim)."""
    a = _float_array(image)
    return _core.warp_derivative(a, _field(field, a.ndim, a.dtype), np.asarray(ybar, dtype=a.dtype), 2,
                                 _order(degree), _mode(mode))


def _voxel_matrix(matrix, ndim):
    """A (ndim+1)^2 homogeneous voxel matrix (or a 4x4) as the 4x4 the core takes."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (4, 4):
        return m
    if m.shape != (ndim + 1, ndim + 1):
        raise ValueError(f"matrix must be {ndim + 1}x{ndim + 1} or 4x4, got {m.shape}")
    out = np.eye(4)
    out[:ndim, :ndim] = m[:ndim, :ndim]
    out[:ndim, 3] = m[:ndim, ndim]
    return out


def affine_warp(image, matrix, shape=None, degree=3, mode: str = "constant"):
    """The affine warp out(x) = image(A x + b), with ``matrix`` the homogeneous output-voxel ->
    input-voxel map ((ndim+1)^2 or 4x4); ``shape`` of the output (default: the input's)."""
    a = _float_array(image)
    shape = list(a.shape) if shape is None else [int(s) for s in np.atleast_1d(shape)]
    return _core.affine_warp(a, _voxel_matrix(matrix, a.ndim), shape, _order(degree), _mode(mode), 0.0)


def adjoint_affine_warp(y, matrix, shape, degree=3, mode: str = "constant"):
    """The exact adjoint of :func:`affine_warp` applied to ``y``; returns an array of ``shape``."""
    yv = _float_array(y)
    shape = [int(s) for s in np.atleast_1d(shape)]
    return _core.affine_adjoint(yv, _voxel_matrix(matrix, yv.ndim), shape, _order(degree), _mode(mode))


def _linear_operator_base():
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator


class _WarpOperatorMixin:
    def _matvec(self, x):
        x = np.asarray(x, dtype=self.dtype).reshape(self.in_shape, order="F")
        return np.asarray(self._forward(x)).reshape(-1, order="F")

    def _rmatvec(self, y):
        y = np.asarray(y, dtype=self.dtype).reshape(self.out_shape, order="F")
        return np.asarray(self._adjoint(y)).reshape(-1, order="F")

    def _adjoint_op(self):
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(self.shape[::-1], matvec=self._rmatvec, rmatvec=self._matvec, dtype=self.dtype)


def WarpOperator(field, in_shape=None, degree=3, mode: str = "constant", dtype=np.float64):
    """The displacement-field warp as a scipy.sparse.linalg.LinearOperator on flattened images
    (Fortran order, as nibabel arrays): matvec = :func:`warp`, rmatvec = the exact adjoint.
    Works with scipy's cg/lsqr and with PyLops."""
    LinearOperator = _linear_operator_base()
    f = np.asarray(field)
    out_shape = tuple(f.shape[:-1])
    in_shape = out_shape if in_shape is None else tuple(int(s) for s in in_shape)
    f = _field(f, len(out_shape), np.dtype(dtype))

    class _Op(_WarpOperatorMixin, LinearOperator):
        def __init__(self):
            self.in_shape, self.out_shape = in_shape, out_shape
            super().__init__(np.dtype(dtype), (int(np.prod(out_shape)), int(np.prod(in_shape))))

        def _forward(self, x):
            return warp(x, f, degree, mode)

        def _adjoint(self, y):
            return adjoint_warp(y, f, in_shape, degree, mode)

    return _Op()


class AffineModel:
    """A parameterised affine map of voxel coordinates, p(x) = c + t + L (x - c) with L = R Z S
    (or I + Theta for the 'matrix' group); see docs/warp.md for the parameter groups and order.

    ``groups``: any of "translation", "rotation" (Euler; 1 angle in 2D), "versor" (3D quaternion
    vector part), "zoom", "shear", "matrix". ``centre``: centre of rotation in input voxels
    (default: the geometric centre (n - 1) / 2 of ``in_shape``).
    """

    def __init__(self, in_shape, groups=("translation", "rotation"), centre=None):
        self.in_shape = tuple(int(s) for s in in_shape)
        self.ndim = len(self.in_shape)
        self.groups = [str(g) for g in groups]
        c = [(s - 1) / 2 for s in self.in_shape] if centre is None else [float(v) for v in centre]
        if len(c) != self.ndim:
            raise ValueError(f"centre needs {self.ndim} values")
        self.centre = (c + [0.0, 0.0])[:3]
        self.names = list(_core.affine_model_names(self.ndim, self.groups))  # validates the groups

    @property
    def size(self) -> int:
        return len(self.names)

    def _eval(self, theta):
        theta = [float(v) for v in np.atleast_1d(theta)]
        if len(theta) != self.size:
            raise ValueError(f"{self.size} parameters expected ({', '.join(self.names)}), got {len(theta)}")
        M, J, _ = _core.affine_model(self.ndim, self.groups, self.centre, theta)
        return np.asarray(M), [np.asarray(j) for j in J]

    def matrix(self, theta) -> np.ndarray:
        """The 4x4 output-voxel -> input-voxel matrix for parameters ``theta``."""
        return self._eval(theta)[0]

    def jacobian(self, theta):
        """d(matrix)/d(theta_j), one 4x4 per parameter (exact, by automatic differentiation)."""
        return self._eval(theta)[1]

    def select(self, wrt):
        """Indices of the parameters named (or of the groups named) in ``wrt``; all when None."""
        if wrt is None:
            return list(range(self.size))
        idx = []
        for w in wrt:
            hits = [i for i, n in enumerate(self.names) if n == w or n.split("_")[0] == w or
                    (w == "shear" and n.startswith("shear")) or (w == "matrix" and n.startswith("matrix"))]
            if not hits:
                raise ValueError(f"unknown parameter {w!r} (have {', '.join(self.names)})")
            idx += hits
        return idx


def affine_param_jvp(image, model: AffineModel, theta, dtheta, shape=None, degree=3, mode: str = "constant"):
    """Exact derivative of the warp x -> image(M(theta) x) along ``dtheta``."""
    a = _float_array(image)
    shape = list(a.shape) if shape is None else [int(s) for s in np.atleast_1d(shape)]
    M, J = model._eval(theta)
    dM = sum(float(d) * j for d, j in zip(np.atleast_1d(dtheta), J))
    return _core.affine_jvp(a, M, np.asarray(dM, dtype=np.float64), shape, _order(degree), _mode(mode))


def affine_param_vjp(image, model: AffineModel, theta, ybar, degree=3, mode: str = "constant") -> np.ndarray:
    """Exact gradient of <ybar, warp(image; theta)> with respect to the parameters theta."""
    a = _float_array(image)
    M, J = model._eval(theta)
    G = np.asarray(_core.affine_moments(a, M, np.asarray(ybar, dtype=a.dtype), _order(degree), _mode(mode)))
    return np.array([float(np.sum(j[:3, :] * G)) for j in J])


def AffineWarpOperator(matrix=None, in_shape=None, out_shape=None, degree=3, mode: str = "constant",
                       dtype=np.float64, model: Optional[AffineModel] = None, theta=None):
    """The affine warp (output voxel -> input voxel ``matrix``, or ``model`` at parameters
    ``theta``) as a LinearOperator, like :func:`WarpOperator`. With a model, ``op.derivative(x,
    wrt=None)`` gives the derivative of the warped image of x with respect to the parameters (all,
    or those named in ``wrt``: parameter or group names), shape (*out_shape, n)."""
    LinearOperator = _linear_operator_base()
    if model is not None:
        in_shape = model.in_shape if in_shape is None else in_shape
        matrix = model.matrix(theta if theta is not None else [0.0] * model.size)
    if matrix is None or in_shape is None:
        raise ValueError("give matrix and in_shape, or model (and theta)")
    in_shape = tuple(int(s) for s in in_shape)
    out_shape = in_shape if out_shape is None else tuple(int(s) for s in out_shape)
    m = _voxel_matrix(matrix, len(in_shape))

    class _Op(_WarpOperatorMixin, LinearOperator):
        def __init__(self):
            self.in_shape, self.out_shape = in_shape, out_shape
            super().__init__(np.dtype(dtype), (int(np.prod(out_shape)), int(np.prod(in_shape))))

        def _forward(self, x):
            return affine_warp(x, m, out_shape, degree, mode)

        def _adjoint(self, y):
            return adjoint_affine_warp(y, m, in_shape, degree, mode)

        def derivative(self, x, wrt=None):
            if model is None:
                raise ValueError("derivative needs the operator built from an AffineModel")
            x = np.asarray(x, dtype=self.dtype).reshape(in_shape, order="F")
            th = theta if theta is not None else [0.0] * model.size
            cols = []
            for i in model.select(wrt):
                e = np.zeros(model.size)
                e[i] = 1.0
                cols.append(affine_param_jvp(x, model, th, e, out_shape, degree, mode))
            return np.stack(cols, -1)

    return _Op()


def warp_matrix(in_shape, field=None, matrix=None, out_shape=None, degree=1, mode: str = "constant"):
    """The warp's evaluation matrix as a scipy.sparse.csr_matrix: rows are output voxels, columns
    entries of the spline coefficient grid, both flattened in Fortran (NIfTI) order.

    For degree 0, 1 and "keys" the coefficients are the image itself, so ``E @ x.ravel("F")`` is the
    warp. For degree >= 2 the warp is ``E @ c`` with ``c = spline_coefficients(x, degree, mode).array``
    (which carries ``pad`` samples per side for modes nearest/grid-constant); the prefilter is not
    sparse, so it is not folded into the matrix."""
    from scipy.sparse import csr_matrix

    in_shape = [int(s) for s in in_shape]
    nd = len(in_shape)
    f = None if field is None else _field(field, nd, np.float64)
    out_shape = list(f.shape[:-1]) if f is not None else ([int(s) for s in out_shape] if out_shape else in_shape)
    m = None if matrix is None else _voxel_matrix(matrix, nd)
    data, indices, indptr, rows, cols, _, _ = _core.warp_matrix(out_shape, in_shape, f, m, _order(degree), _mode(mode))
    return csr_matrix((np.asarray(data), np.asarray(indices), np.asarray(indptr)), shape=(rows, cols))


def invert_field(field, degree=3, iterations: int = 50, tol: float = 1e-4, return_iterations: bool = False):
    """Inverse of a displacement field (voxels, shape (*grid, ndim)) by fixed-point iteration
    v(x) = -u(x + v(x)), u interpolated with ``degree`` (edge values beyond the grid), until the
    largest update is below ``tol`` voxels."""
    f = np.asfortranarray(field)
    if f.dtype not in (np.float32, np.float64):
        f = f.astype(np.float64, order="F")
    inv, its = _core.invert_field(f, _order(degree), int(iterations), float(tol))
    return (inv, its) if return_iterations else inv


def approx_adjoint_warp(y, field, degree=3, mode: str = "constant", method: str = "negative"):
    """The usual approximations of the adjoint, for comparison with :func:`adjoint_warp`: warping
    by -u ("negative") or by the inverse field ("inverse"). Neither is the transpose."""
    yv = _float_array(y)
    f = _field(field, yv.ndim, yv.dtype)
    if method == "negative":
        return warp(yv, -f, degree, mode)
    if method == "inverse":
        return warp(yv, invert_field(f, degree), degree, mode)
    raise ValueError(f"method must be 'negative' or 'inverse', not {method!r}")


def approx_warp_jvp(image, field, dfield, degree=3, mode: str = "constant"):
    """The usual approximation of the derivative, for comparison with :func:`warp_jvp`: the
    finite-difference gradient of the warped image, dotted with the field change."""
    a = _float_array(image)
    f = _field(field, a.ndim, a.dtype)
    g = _core.fd_gradient(warp(a, f, degree, mode))
    return np.einsum("...d,...d->...", g, np.asarray(dfield, dtype=a.dtype))


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


def field_mm_to_voxels(field_mm, field_affine, image_affine) -> np.ndarray:
    """A 3D displacement field in world millimetres (RAS, shape (X, Y, Z, 3), on the grid with
    voxel->world ``field_affine``) as the voxel displacements :func:`warp` takes for an image with
    voxel->world ``image_affine``: u(x) = A_image^-1 (A_field x + u_mm(x)) - x."""
    return _core.field_mm_to_voxels(np.asfortranarray(field_mm, dtype=np.float64),
                                    np.asarray(field_affine, dtype=np.float64),
                                    np.asarray(image_affine, dtype=np.float64))
