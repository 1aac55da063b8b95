"""Rigid / similarity / affine registration (the C++ engine in src/register; docs/register.md).
Images follow the package's rule (voxalign._images): a path, a nibabel image or an array."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from . import _voxalign as _core
from ._checks import affine4 as _affine4, name_of
from ._images import is_image, is_path, load
from .resampling import RESAMPLE_DEFAULTS

__all__ = ["register", "Registration", "metric_and_gradient", "REGISTER_DEFAULTS"]

#: The names register takes (any case), from the C++ tables the CLI uses.
TRANSFORMS = tuple(_core.NAMES["transform"])
METRICS = tuple(_core.NAMES["metric"])
OPTIMIZERS = tuple(_core.NAMES["optimizer"])
#: Defaults of :func:`register`, read from the C++ RegisterOptions the CLI's register uses too.
REGISTER_DEFAULTS = dict(_core.REGISTER_DEFAULTS)
_D = REGISTER_DEFAULTS


def _image(obj, affine, what):
    """(float32 array in NIfTI order, 4x4 affine) from a path, a nibabel image or an array."""
    src = load(obj, what, affine)
    a = src.array
    aff = np.eye(4) if src.affine is None else src.affine
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"{what} must be a 2D or 3D image, not {a.ndim}D"
                         + (" (use voxalign.realign for a time series)" if a.ndim == 4 else ""))
    aff = _affine4(aff, f"{what}: the affine")
    return np.asarray(a, dtype=np.float32), aff  # any layout: the binding copies it in tiles


def _mask(obj, shape, affine, what):
    if obj is None:
        return None
    m = load(obj, what).array
    if m.ndim == 4 and m.shape[3] == 1:
        m = m[..., 0]
    if m.shape != tuple(shape):
        raise ValueError(f"{what} has shape {m.shape}, its image {tuple(shape)}: a mask must be on its image's grid")
    if m.dtype != np.bool_:
        m = m != 0
    return np.asarray(m, dtype=np.float32)  # one conversion: 0 or 1


def _shape3(shape):
    s = list(shape) + [1] * (3 - len(shape))
    return [int(x) for x in s[:3]]


class Registration:
    """Result of :func:`register`.

    ``matrix`` is the world (RAS mm) pull-back fixed -> moving: ``apply`` samples the moving image at
    ``matrix @ x`` for each fixed world point x. ``parameters`` (with ``names``) are those of the
    model ``init @ (c + t + R Z S (x - c))``: translations in mm, rotations in radians (Euler,
    R = Rz Ry Rx), scale/zoom/shear unitless (zoom 0 = no zoom), centre ``centre`` in mm.
    """

    warp = inverse_warp = None  # set by transform "syn"

    def __init__(self, d, fixed_shape, fixed_affine, moving_shape, moving_affine, transform, metric):
        self.matrix = np.asarray(d["matrix"])
        self.init = np.asarray(d["init"])
        self.parameters = np.asarray(d["parameters"], dtype=np.float64)
        self.names = list(d["names"])
        self.centre = np.asarray(d["centre"])
        self.metric = float(d["metric"])
        self.levels = [dict(l) for l in d["levels"]]
        self.transform, self.metric_name = transform, metric
        self.fixed_shape, self.fixed_affine = tuple(fixed_shape), np.asarray(fixed_affine)
        self.moving_shape, self.moving_affine = tuple(moving_shape), np.asarray(moving_affine)
        # transform "syn": the deformable part on the fixed grid (X x Y x Z x 3, RAS mm): fixed point
        # y -> y + warp(y), then ``matrix``; inverse_warp undoes warp.
        self.warp = d.get("warp")
        self.inverse_warp = d.get("inverse_warp")
        self.syn_metric = d.get("syn_metric_value")

    @property
    def params(self) -> dict:
        """Parameters by name."""
        return dict(zip(self.names, self.parameters.tolist()))

    def apply(self, image, affine=None, degree=RESAMPLE_DEFAULTS["degree"], mode: str = RESAMPLE_DEFAULTS["mode"],
              cval: float = RESAMPLE_DEFAULTS["cval"], before=None):
        """The moving image (or any image in the moving space: a path, a nibabel image, an array on
        the moving grid or with its ``affine``, or :class:`Coefficients`) resampled onto the fixed
        grid: a nibabel image for a path or image input, else an array. Defaults as
        :func:`voxalign.resample` ('itk': as antsApplyTransforms). ``before``: transforms applied to
        the fixed point ahead of this registration's matrix, as ``resample(transform=...)`` takes them
        (files, displacement fields, matrices; one or a list): a warp in fixed space estimated after
        this affine, as ``-t warp.nii.gz -t affine.mat``."""
        from .resampling import resample
        from .spline import Coefficients

        own = is_path(image) or is_image(image) or (isinstance(image, Coefficients) and image.affine is not None)
        if affine is None and not own:
            affine = self.moving_affine  # an array (or its coefficients) on the moving grid
        t = self.matrix if self.warp is None else [(self.warp, self.fixed_affine), self.matrix]
        if before is not None:
            from .resampling import _is_field
            seq = list(before) if isinstance(before, (list, tuple)) and not _is_field(before) else [before]
            t = [*seq, *(t if isinstance(t, list) else [t])]
        return resample(image, affine, self.fixed_shape, self.fixed_affine, transform=t, degree=degree,
                        mode=mode, cval=cval)

    def save_warp(self, path, inverse: bool = False) -> None:
        """Write the SyN displacement field (or its inverse) as ANTs and ITK read it: a NIfTI vector image
        (X x Y x Z x 1 x 3, LPS mm) on the fixed grid; apply as ``-t WARP -t AFFINE`` (``save`` the affine)."""
        f = self.inverse_warp if inverse else self.warp
        if f is None:
            raise ValueError("save_warp: this registration has no warp (transform='syn' makes one)")
        _core.write_displacement_field(os.fspath(path), f, self.fixed_affine)

    def jacobian(self) -> np.ndarray:
        """det(I + d warp / dx) on the fixed grid (transform='syn')."""
        if self.warp is None:
            raise ValueError("jacobian: this registration has no warp (transform='syn' makes one)")
        return np.asarray(_core.jacobian_determinant(self.warp, self.fixed_affine))

    def fsl_matrix(self) -> np.ndarray:
        """The FSL FLIRT matrix (moving scaled-voxel mm -> fixed scaled-voxel mm)."""
        return np.asarray(_core.ras_to_fsl(self.matrix, _shape3(self.fixed_shape), self.fixed_affine,
                                           _shape3(self.moving_shape), self.moving_affine))

    def save(self, path, format: Optional[str] = None) -> None:
        """Write the transform. ``format``:

        - None (default) or "itk": an ITK AffineTransform_double_3_3 (LPS), encoded as the name says, as
          ``voxalign register --save-transform`` does: ``.txt``/``.tfm`` ITK text, ``.mat`` ITK/ANTs
          binary MATLAB v4 (what ANTs writes as ``0GenericAffine.mat``), ``.h5`` ITK HDF5; other names
          are refused;
        - "fsl": an FSL FLIRT matrix (text), which must be named ``.mat`` (readers tell it from an ITK
          ``.mat`` by its content: text, not binary);
        - "ras": a 4x4 RAS pull-back matrix as text, any name.
        """
        path = os.fspath(path)
        if format is None or format == "itk":
            _core.write_itk_transform(path, self.matrix, "Registration.save")
        elif format == "fsl":
            if not path.lower().endswith(".mat"):
                raise ValueError(f"{path}: an FSL FLIRT matrix file must be named .mat (how readers tell it "
                                 "from a RAS matrix)")
            _core.write_text_file(path, _matrix_text(self.fsl_matrix()))
        elif format == "ras":
            _core.write_ras_matrix(path, self.matrix)
        else:
            raise ValueError(f"unknown transform format {format!r} (use itk, fsl or ras)")

    def __repr__(self):
        p = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.names, self.parameters))
        return f"Registration({self.transform}, {self.metric_name}={self.metric:.6g}, {p})"


def _matrix_text(m) -> str:
    return "".join(" ".join(f"{v:.17g}" for v in row) + "\n" for row in np.asarray(m))


def _init_matrix(init, fixed_shape, fixed_affine, moving_shape, moving_affine):
    """(init name, matrix or None) from 'center' | 'moments' | 'identity' | 4x4 | a transform file."""
    if isinstance(init, str) and init in ("center", "moments", "identity"):
        return init, None
    if isinstance(init, (str, os.PathLike)):  # any transform file; a FLIRT matrix between these two grids
        return "center", np.asarray(_core.read_transform_between(os.fspath(init), _shape3(fixed_shape), fixed_affine,
                                                                 _shape3(moving_shape), moving_affine))
    m = np.asarray(init, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError("init must be 'center', 'moments', 'identity', a 4x4 matrix or a transform file")
    return "center", m



def register(moving, fixed, *, moving_affine=None, fixed_affine=None, transform: str = _D["transform"],
             metric: str = _D["metric"], levels: Sequence[int] = _D["levels"],
             smoothing: Optional[Sequence[float]] = _D["smoothing"], optimizer: str = _D["optimizer"],
             iterations=_D["iterations"], init=_D["init"], fixed_mask=None, moving_mask=None,
             freeze: Sequence[str] = _D["freeze"], degree: int = _D["degree"], max_samples: int = _D["max_samples"],
             bins: int = _D["bins"], radius: int = _D["radius"], tolerance: float = _D["tolerance"],
             learning_rate: float = _D["learning_rate"], skip_fill: bool = _D["skip_fill"],
             syn_metric: str = _D["syn_metric"], syn_radius: int = _D["syn_radius"], syn_bins: int = _D["syn_bins"],
             syn_levels: Optional[Sequence[int]] = _D["syn_levels"], syn_smoothing: Optional[Sequence[float]] = _D["syn_smoothing"],
             syn_iterations=_D["syn_iterations"], syn_step: float = _D["syn_step"],
             syn_update_sigma: float = _D["syn_update_sigma"], syn_total_sigma: float = _D["syn_total_sigma"],
             syn_convergence: float = _D["syn_convergence"]):
    """Register ``moving`` to ``fixed`` (2D or 3D; NIfTI paths, nibabel images, or arrays with ``*_affine``).

    ``moving`` may be a list: each is registered to ``fixed`` and a list of results is returned.
    transform: translation | rigid | similarity | affine | syn (rigid, affine, then greedy SyN with the
    syn_* options: metric lncc | ssd | mi, lncc radius, mi bins, levels (default None: from the fixed voxel
    size, the finest at ~2 mm: 8,4,2 at 1 mm), smoothing (mm), iterations (one or per level),
    step (voxels), update_sigma and total_sigma (voxels), convergence; docs/register.md; the result's
    ``warp``/``inverse_warp`` hold the fields, ``apply`` uses them; fixed_mask limits its metric too). metric: ssd | ncc | lncc | mi (Mattes).
    levels: shrink factors (coarse to fine); smoothing: Gaussian sigma in mm per level (default
    shrink/2 fixed voxels, none at shrink 1); a repeated factor with decreasing smoothing gives a
    continuation in smoothing. optimizer: auto (gn for ssd, lbfgs otherwise) | gn | lbfgs | gd | adam.
    init: center (geometric centres) | moments (centres of mass; rotations about the fixed image's
    centre of mass) | identity | a 4x4 RAS pull-back | a transform file (ITK .txt/.tfm, ANTs .mat,
    FSL FLIRT .mat text, 4x4 RAS text). freeze: groups held fixed (translation, rotation, scale,
    zoom, shear). skip_fill: leave out fixed voxels that are exactly 0 and the samples whose moving
    interpolation touches a moving voxel that is exactly 0 (fill: where a resampler had no data; ssd,
    ncc and mi). Returns a :class:`Registration`.
    """
    if isinstance(moving, (list, tuple)):
        return [register(m, fixed, moving_affine=moving_affine, fixed_affine=fixed_affine, transform=transform,
                         metric=metric, levels=levels, smoothing=smoothing, optimizer=optimizer, iterations=iterations,
                         init=init, fixed_mask=fixed_mask, moving_mask=moving_mask, freeze=freeze, degree=degree,
                         max_samples=max_samples, bins=bins, radius=radius, tolerance=tolerance,
                         learning_rate=learning_rate, skip_fill=skip_fill, syn_metric=syn_metric, syn_radius=syn_radius,
                         syn_bins=syn_bins, syn_levels=syn_levels, syn_smoothing=syn_smoothing, syn_iterations=syn_iterations,
                         syn_step=syn_step, syn_update_sigma=syn_update_sigma, syn_total_sigma=syn_total_sigma,
                         syn_convergence=syn_convergence) for m in moving]
    transform = name_of("transform", transform, "register: transform")
    metric = name_of("metric", metric, "register: metric")
    optimizer = name_of("optimizer", optimizer, "register: optimizer")
    m, maff = _image(moving, moving_affine, "moving")
    f, faff = _image(fixed, fixed_affine, "fixed")
    fm = _mask(fixed_mask, f.shape, faff, "fixed_mask")
    mm = _mask(moving_mask, m.shape, maff, "moving_mask")
    init_name, init_m = _init_matrix(init, f.shape, faff, m.shape, maff)
    opts = dict(transform=transform, metric=metric, levels=[int(s) for s in levels], optimizer=optimizer,
                init=init_name, freeze=list(freeze), degree=int(degree), max_samples=int(max_samples), bins=int(bins),
                radius=int(radius), tolerance=float(tolerance), learning_rate=float(learning_rate),
                skip_fill=bool(skip_fill))
    if smoothing is not None:
        opts["smoothing"] = [float(s) for s in smoothing]
    if iterations is not None:
        opts["iterations"] = [int(i) for i in np.atleast_1d(iterations)]
    if transform == "syn":
        opts.update(syn_metric=name_of("metric", syn_metric, "register: syn_metric"), syn_radius=int(syn_radius),
                    syn_bins=int(syn_bins), syn_iterations=[int(i) for i in np.atleast_1d(syn_iterations)],
                    syn_step=float(syn_step), syn_update_sigma=float(syn_update_sigma),
                    syn_total_sigma=float(syn_total_sigma), syn_convergence=float(syn_convergence))
        if syn_levels is not None:
            opts["syn_levels"] = [int(s) for s in syn_levels]
        if syn_smoothing is not None:
            opts["syn_smoothing"] = [float(s) for s in syn_smoothing]
    d = _core.register(m, maff, f, faff, fm, mm, init_m, opts)
    return Registration(d, f.shape, faff, m.shape, maff, transform, metric)


def metric_and_gradient(moving, fixed, parameters, *, moving_affine=None, fixed_affine=None,
                        transform=_D["transform"], metric=_D["metric"], centre=None, init=None, fixed_mask=None,
                        moving_mask=None, degree=_D["degree"], bins=_D["bins"], radius=_D["radius"],
                        max_samples=_D["max_samples"], skip_fill=_D["skip_fill"]):
    """The metric the optimiser minimises at one level (no pyramid) and its exact gradient with
    respect to the transform's parameters (for checking against finite differences)."""
    m, maff = _image(moving, moving_affine, "moving")
    f, faff = _image(fixed, fixed_affine, "fixed")
    fm = _mask(fixed_mask, f.shape, faff, "fixed_mask")
    mm = _mask(moving_mask, m.shape, maff, "moving_mask")
    if centre is None:
        centre = (faff @ np.r_[(np.array(_shape3(f.shape)) - 1) / 2.0, 1.0])[:3]
    T0 = np.eye(4) if init is None else np.asarray(init, dtype=np.float64)
    opts = dict(metric=metric, degree=int(degree), bins=int(bins), radius=int(radius), max_samples=int(max_samples),
                skip_fill=bool(skip_fill))
    v, g = _core.register_metric(m, maff, f, faff, _core.transform_groups(transform), [float(c) for c in centre], T0,
                                 [float(p) for p in parameters], fm, mm, opts)
    return v, np.asarray(g)
