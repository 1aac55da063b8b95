"""voxalign: fast, exact image registration and correction for medical imaging.

Images: every function that takes an image accepts a NIfTI path (str or os.PathLike), a nibabel
image, or a numpy array (with its ``affine`` where geometry matters), and returns a nibabel
Nifti1Image when given a path or an image, an array when given an array (voxalign._images,
docs/python.md). Functions that interpolate also accept :class:`Coefficients`.

Arrays are indexed [i, j, k(, t)] exactly as nibabel returns them (any memory layout is accepted;
results come back in NIfTI/Fortran order). World space is NIfTI RAS+ millimetres. Every transform
is a pull-back: it maps an output (fixed) world point to the input (moving) world point sampled
there. Interpolation degrees: 0 nearest, 1 linear, 2..7 prefiltered B-splines, "keys" Catmull-Rom.
Boundary modes use scipy.ndimage's names and meanings. Areas: voxalign.io, .spline, .resampling,
.warping, .registration, .realignment, .bias, .distortion, .reconstruction, .solvers; voxalign.approx holds the approximations
the exact warp operators are compared with.
"""
from . import _voxalign as _core
from ._checks import thread_count as _threads
from .bias import N4_DEFAULTS, n4, otsu_mask, otsu_threshold
from .distortion import SDC_DEFAULTS, SdcResult, sdc, sdc_apply, sdc_displacement
from .io import read_nifti, read_transform, write_itk_affine, write_nifti
from .reconstruction import SUPERRES_DEFAULTS, SuperresResult, superres
from .realignment import REALIGN_DEFAULTS, Realignment, realign
from .registration import REGISTER_DEFAULTS, Registration, metric_and_gradient, register
from .resampling import RESAMPLE_DEFAULT_MODE, RESAMPLE_DEFAULTS, resample
from .solvers import bb_minimize, gauss_newton
from .spline import MODES, Coefficients, interpolate, map_coordinates, spline_coefficients
from .warping import (WARP_DEFAULTS, AffineModel, AffineWarpOperator, WarpOperator, adjoint_affine_warp, adjoint_warp,
                      affine_param_jvp, affine_param_vjp, affine_warp, field_mm_to_voxels, invert_field, warp,
                      warp_field, warp_gradient, warp_jvp, warp_matrix, warp_vjp)
from . import approx  # noqa: F401  (voxalign.approx, not re-exported)

__version__ = "0.1.0"

__all__ = [
    # images and files
    "read_nifti", "write_nifti", "read_transform", "write_itk_affine",
    # interpolation and resampling
    "Coefficients", "spline_coefficients", "interpolate", "map_coordinates", "resample", "MODES",
    "RESAMPLE_DEFAULTS", "RESAMPLE_DEFAULT_MODE",
    # warping operators
    "WARP_DEFAULTS", "warp", "warp_field", "adjoint_warp", "warp_gradient", "warp_jvp", "warp_vjp", "affine_warp",
    "adjoint_affine_warp", "WarpOperator", "AffineWarpOperator", "AffineModel", "affine_param_jvp",
    "affine_param_vjp", "warp_matrix", "invert_field", "field_mm_to_voxels",
    # solvers
    "bb_minimize", "gauss_newton",
    # registration, realignment, bias correction
    "register", "Registration", "metric_and_gradient", "REGISTER_DEFAULTS",
    "realign", "Realignment", "REALIGN_DEFAULTS",
    "n4", "otsu_mask", "otsu_threshold", "N4_DEFAULTS",
    # susceptibility distortion correction
    "sdc", "sdc_apply", "sdc_displacement", "SdcResult", "SDC_DEFAULTS",
    # super-resolution reconstruction
    "superres", "SuperresResult", "SUPERRES_DEFAULTS",
    # threads and memory
    "set_num_threads", "get_num_threads", "release_memory", "__version__",
]

_SUBMODULES = ["io", "spline", "resampling", "warping", "registration", "realignment", "bias", "distortion", "reconstruction", "solvers", "approx"]

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


def __dir__():
    return sorted(__all__ + _SUBMODULES)
