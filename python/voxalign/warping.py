"""Warping operators (docs/warp.md): displacement-field and affine warps, their exact adjoints and
derivatives, LinearOperators, the explicit matrix and field inversion -- bindings and glue over the
C++ core. Images follow the package's rule (voxalign._images): a path, a nibabel image or an array
in, the same kind out; an image to interpolate may also be :class:`voxalign.Coefficients`."""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from . import _voxalign as _core
from ._checks import float_array as _float_array, mode as _mode, order as _order
from ._images import affine_of, load, result
from .spline import source

__all__ = ["WARP_DEFAULTS", "warp", "warp_field", "adjoint_warp", "warp_gradient", "warp_jvp", "warp_vjp", "affine_warp",
           "adjoint_affine_warp", "WarpOperator", "AffineWarpOperator", "AffineModel", "affine_param_jvp",
           "affine_param_vjp", "warp_matrix", "invert_field", "field_mm_to_voxels"]

#: Defaults of `voxalign warp` (C++ WarpOptions): the displacement-field warps below take its degree
#: and mode (cval 0: the operators are linear; 'itk' keeps them so, with exact adjoints). The affine
#: warps, which have no command of their own, keep scipy's mode 'constant'.
WARP_DEFAULTS = dict(_core.WARP_DEFAULTS)
_DEF = (WARP_DEFAULTS["degree"], WARP_DEFAULTS["mode"], 0.0)


def _field(field, ndim, dtype, what="field"):
    """A displacement field (*grid, ndim) in voxels -- a path, a nibabel image or an array -- of
    ``dtype``, in any layout: the bindings copy one whose axis 0 is not contiguous into NIfTI
    (Fortran) order, which the kernels walk along i (bind_common.hpp, in_nifti_order)."""
    f = np.asarray(load(field, what).array, dtype=dtype)
    if f.ndim == 5 and f.shape[3] == 1:  # an ITK vector image X x Y x Z x 1 x 3
        f = f[:, :, :, 0, :]
    if f.ndim != ndim + 1 or f.shape[-1] != ndim:
        raise ValueError(f"{what} must have shape (*grid, {ndim}), got {f.shape}")
    return f


def _image(image, degree, mode, what, cval=0.0):
    return source(image, degree, mode, cval, _DEF, what)


def warp(image, field, degree=_DEF[0], mode: str = _DEF[1], cval: float = 0.0):
    """The warp operator M: out(x) = image(x + field(x)), with ``field`` in voxels (along i, j, k),
    shape (*out_shape, ndim).

    ``image``: a path, a nibabel image, an array or :class:`Coefficients`. Constant modes use
    ``cval`` outside (0: the operator is linear); degree >= 2 includes the prefilter. Any memory
    layout is accepted; NIfTI (Fortran) order, as nibabel returns it, avoids a copy."""
    s = _image(image, degree, mode, "warp: image", cval)
    out = _core.warp(s.array, s.pad, _field(field, s.array.ndim, s.array.dtype), s.order, s.mode, s.cval)
    return result(out, s.like)


def warp_field(array, field, degree=_DEF[0], mode: str = _DEF[1], cval: float = 0.0):
    """Deprecated: the same as :func:`warp` (use that)."""
    warnings.warn("voxalign.warp_field is deprecated; use voxalign.warp (the same function)", DeprecationWarning,
                  stacklevel=2)
    return warp(array, field, degree, mode, cval)


def adjoint_warp(y, field, shape=None, degree=_DEF[0], mode: str = _DEF[1]):
    """The exact adjoint M^T of :func:`warp` for this field, applied to ``y`` (the output grid);
    returns an image of ``shape`` (the input grid; default the field's grid):
    <warp(x), y> == <x, adjoint_warp(y)>."""
    src = load(y, "adjoint_warp: y")
    yv = _float_array(src.array, "adjoint_warp: y")
    f = _field(field, yv.ndim, yv.dtype)
    shape = list(f.shape[:-1]) if shape is None else [int(s) for s in np.atleast_1d(shape)]
    return result(_core.warp_adjoint(yv, f, shape, _order(degree), _mode(mode)), src.like)


def warp_gradient(image, field, degree=_DEF[0], mode: str = _DEF[1]):
    """(warped, grad): the warped image and the gradient of the interpolated image at the warped
    points, shape (*grid, ndim) -- the per-voxel Jacobian of the warp with respect to the field."""
    s = _image(image, degree, mode, "warp_gradient: image")
    v, g = _core.warp_derivative(s.array, s.pad, _field(field, s.array.ndim, s.array.dtype), None, 0, s.order, s.mode)
    return result(v, s.like), result(g, s.like)


def warp_jvp(image, field, dfield, degree=_DEF[0], mode: str = _DEF[1]):
    """Exact derivative of :func:`warp` with respect to the field along ``dfield``:
    grad image(x + u(x)) . du(x)."""
    s = _image(image, degree, mode, "warp_jvp: image")
    nd, dt = s.array.ndim, s.array.dtype
    return result(_core.warp_derivative(s.array, s.pad, _field(field, nd, dt), _field(dfield, nd, dt, "dfield"), 1,
                                        s.order, s.mode), s.like)


def warp_vjp(image, field, ybar, degree=_DEF[0], mode: str = _DEF[1]):
    """Exact vector-Jacobian product of :func:`warp` with respect to the field: ybar(x) * grad
    image(x + u(x)), shape (*grid, ndim)."""
    s = _image(image, degree, mode, "warp_vjp: image")
    yb = np.asarray(load(ybar, "warp_vjp: ybar").array, dtype=s.array.dtype)
    return result(_core.warp_derivative(s.array, s.pad, _field(field, s.array.ndim, s.array.dtype), yb, 2, s.order,
                                        s.mode), s.like)


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
    s = _image(image, degree, mode, "affine_warp: image")
    nd = s.array.ndim
    in_shape = [n - 2 * max(s.pad, 0) for n in s.array.shape]
    shape = in_shape if shape is None else [int(v) for v in np.atleast_1d(shape)]
    return result(_core.affine_warp(s.array, s.pad, _voxel_matrix(matrix, nd), shape, s.order, s.mode, 0.0), s.like)


def adjoint_affine_warp(y, matrix, shape=None, degree=3, mode: str = "constant"):
    """The exact adjoint of :func:`affine_warp` applied to ``y``; returns an image of ``shape``
    (default: y's)."""
    src = load(y, "adjoint_affine_warp: y")
    yv = _float_array(src.array, "adjoint_affine_warp: y")
    shape = list(yv.shape) if shape is None else [int(v) for v in np.atleast_1d(shape)]
    return result(_core.affine_adjoint(yv, _voxel_matrix(matrix, yv.ndim), shape, _order(degree), _mode(mode)),
                  src.like)


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


def WarpOperator(field, in_shape=None, degree=_DEF[0], mode: str = _DEF[1], dtype=np.float64):
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
    s = _image(image, degree, mode, "affine_param_jvp: image")
    in_shape = [n - 2 * max(s.pad, 0) for n in s.array.shape]
    shape = in_shape if shape is None else [int(v) for v in np.atleast_1d(shape)]
    M, J = model._eval(theta)
    dM = sum(float(d) * j for d, j in zip(np.atleast_1d(dtheta), J))
    return result(_core.affine_jvp(s.array, s.pad, M, np.asarray(dM, dtype=np.float64), shape, s.order, s.mode),
                  s.like)


def affine_param_vjp(image, model: AffineModel, theta, ybar, degree=3, mode: str = "constant") -> np.ndarray:
    """Exact gradient of <ybar, warp(image; theta)> with respect to the parameters theta."""
    s = _image(image, degree, mode, "affine_param_vjp: image")
    M, J = model._eval(theta)
    yb = np.asarray(load(ybar, "affine_param_vjp: ybar").array, dtype=s.array.dtype)
    G = np.asarray(_core.affine_moments(s.array, s.pad, M, yb, s.order, s.mode))
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
    """Inverse of a displacement field (voxels, shape (*grid, ndim); a path, a nibabel image or an
    array) by fixed-point iteration v(x) = -u(x + v(x)), u interpolated with ``degree`` (edge
    values beyond the grid), until the largest update is below ``tol`` voxels."""
    src = load(field, "invert_field: field")
    f = np.asarray(src.array)
    if f.dtype not in (np.float32, np.float64):
        f = f.astype(np.float64)
    inv, its = _core.invert_field(f, _order(degree), int(iterations), float(tol))
    inv = result(inv, src.like)
    return (inv, its) if return_iterations else inv


def field_mm_to_voxels(field_mm, field_affine=None, image_affine=None):
    """A 3D displacement field in world millimetres (RAS, shape (X, Y, Z, 3), on the grid with
    voxel->world ``field_affine``; a path or nibabel image brings its own) as the voxel displacements
    :func:`warp` takes for an image with voxel->world ``image_affine`` (a 4x4, or the image itself):
    u(x) = A_image^-1 (A_field x + u_mm(x)) - x."""
    src = load(field_mm, "field_mm_to_voxels: field_mm", field_affine)
    if src.affine is None or image_affine is None:
        raise TypeError("field_mm_to_voxels: give the field's affine and the image's (or images that carry them)")
    f = np.asarray(src.array, dtype=np.float64)
    if f.ndim == 5 and f.shape[3] == 1:
        f = f[:, :, :, 0, :]
    out = _core.field_mm_to_voxels(f, src.affine, affine_of(image_affine, "field_mm_to_voxels: image_affine"))
    return result(out, src.like)
