"""4D motion correction (the C++ engine in src/realign; docs/realign.md). Images follow the
package's rule (voxalign._images): a path, a nibabel image or an array."""
from __future__ import annotations

import numpy as np

from . import _voxalign as _core
from ._checks import affine4 as _affine4
from ._images import load, result

__all__ = ["realign", "Realignment", "REALIGN_DEFAULTS"]

#: Defaults of :func:`realign`, read from the C++ RealignOptions the CLI's realign uses too.
REALIGN_DEFAULTS = dict(_core.REALIGN_DEFAULTS)
_D = REALIGN_DEFAULTS


class Realignment:
    """Result of :func:`realign`.

    matrices[t]: 4x4 RAS pull-back reference world -> frame t world (reslicing samples frame t at
    matrices[t] @ x). spm: (T, 6) rp_*.txt parameters (tx, ty, tz mm; pitch, roll, yaw rad; relative to
    frame 0). fsl: (T, 6) MCFLIRT .par (rx, ry, rz rad; tx, ty, tz mm). fd: framewise displacement
    (Power, 50 mm; 0 for frame 0). rmsd: Jenkinson's relative RMS (80 mm; 0 for frame 0).
    dvars, std_dvars: DVARS and standardised DVARS of the realigned series as nipype's ComputeDVARS
    (fMRIPrep's columns; 0 for frame 0; None unless realign(..., dvars=True)).
    resliced: the realigned series (when reslice=True, the default); mean: its mean -- nibabel images
    when realign was given a path or an image, else arrays.
    """

    def __init__(self, d, like=None):
        self.matrices = np.stack([np.asarray(m) for m in d["matrices"]])
        self.spm = np.asarray(d["spm"])
        self.fsl = np.asarray(d["fsl"])
        self.fd = np.asarray(d["fd"])
        self.rmsd = np.asarray(d["rmsd"])
        self.dvars = np.asarray(d["dvars"]) if len(d["dvars"]) else None
        self.std_dvars = np.asarray(d["std_dvars"]) if len(d["std_dvars"]) else None
        self.iterations = np.asarray(d["iterations"])
        self.samples = int(d["samples"])
        self._texts = {k: d[k] for k in ("rp_text", "par_text", "confounds_tsv", "confounds_json", "itk_text")}
        series = d.get("resliced")
        self.resliced = None if series is None else result(series, like)
        self.mean = None if series is None else result(series.mean(axis=3), like)

    @property
    def parameters(self) -> np.ndarray:
        """The SPM parameters (T, 6), as in rp_*.txt."""
        return self.spm

    def save_rp(self, path):
        _core.write_text_file(str(path), self._texts["rp_text"])

    def save_par(self, path):
        _core.write_text_file(str(path), self._texts["par_text"])

    def save_confounds(self, path):
        """BIDS confounds TSV plus its JSON sidecar (same name, .json)."""
        path = str(path)
        _core.write_text_file(path, self._texts["confounds_tsv"])
        _core.write_text_file(path[:-4] + ".json" if path.endswith(".tsv") else path + ".json",
                              self._texts["confounds_json"])

    def save_transforms(self, path):
        """One ITK transform per frame (reference -> frame, LPS), as fMRIPrep's desc-hmc_xfm.txt."""
        _core.write_text_file(str(path), self._texts["itk_text"])


def realign(data4d, affine=None, *, ref=_D["ref"], sep: float = _D["sep"], fwhm: float = _D["fwhm"],
            degree: int = _D["degree"], quality: float = _D["quality"], mask=None, iterations: int = _D["iterations"],
            tolerance: float = _D["tolerance"], reslice: bool = True, write_degree: int = _D["write_degree"],
            dvars: bool = False):
    """Estimate the rigid motion of every frame of a 4D series (SPM's realign; docs/realign.md) and,
    unless ``reslice=False``, reslice the series onto the reference (as the CLI does).

    data4d: a 4D NIfTI path, nibabel image, or array indexed [i, j, k, t] with its ``affine``; ref:
    "mean" (SPM's two passes), "first", or a frame number; mask: a 3D mask/weight on the frames' grid
    (path, image or array; also the DVARS mask; without it, an automatic mask of the mean).
    dvars=True: also compute DVARS and std_dvars on the realigned series (resliced in memory at
    write_degree when reslice=False), for the full fMRIPrep confounds (`voxalign realign --confounds`
    always does); off by default. Returns a :class:`Realignment`.
    """
    src = load(data4d, "realign: data4d", affine)
    a = src.array
    if a.ndim != 4:
        raise ValueError(f"realign needs a 4D array (x, y, z, t), not {a.ndim}D")
    a = np.asarray(a, dtype=np.float32)  # any layout: the binding copies it in tiles
    A = np.eye(4) if src.affine is None else _affine4(src.affine, "realign: affine")
    if ref == "mean":
        ref_frame, to_mean = 0, True
    elif ref == "first":
        ref_frame, to_mean = 0, False
    else:
        ref_frame, to_mean = int(ref), False
    w = None
    if mask is not None:
        w = np.asarray(load(mask, "realign: mask").array != 0, dtype=np.float32)
        if w.shape != a.shape[:3]:
            raise ValueError(f"mask has shape {w.shape}, the frames {a.shape[:3]}")
    d = _core.realign(a, A, w, ref_frame, to_mean, float(sep), float(fwhm), int(degree), float(quality), int(iterations),
                      float(tolerance), bool(reslice), int(write_degree), bool(dvars))
    return Realignment(d, src.like)
