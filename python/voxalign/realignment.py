"""4D motion correction (the C++ engine in src/realign; docs/realign.md)."""
from __future__ import annotations

import numpy as np

from . import _voxalign as _core
from ._checks import affine4 as _affine4, numeric_array as _numeric


class Realignment:
    """Result of :func:`realign`.

    matrices[t]: 4x4 RAS pull-back reference world -> frame t world (reslicing samples frame t at
    matrices[t] @ x). spm: (T, 6) rp_*.txt parameters (tx, ty, tz mm; pitch, roll, yaw rad; relative to
    frame 0). fsl: (T, 6) MCFLIRT .par (rx, ry, rz rad; tx, ty, tz mm). fd: framewise displacement
    (Power, 50 mm; 0 for frame 0). rmsd: Jenkinson's relative RMS (80 mm; 0 for frame 0).
    dvars, std_dvars: DVARS and standardised DVARS of the realigned series as nipype's ComputeDVARS
    (fMRIPrep's columns; 0 for frame 0; None unless realign(..., dvars=True)).
    resliced: the realigned series (when reslice=True); mean: its mean.
    """

    def __init__(self, d):
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
        self.resliced = d.get("resliced")
        self.mean = None if self.resliced is None else self.resliced.mean(axis=3)

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


def realign(data4d, affine=None, *, ref="mean", sep: float = 4.0, fwhm: float = 5.0, degree: int = 2,
            quality: float = 0.9, mask=None, iterations: int = 64, reslice: bool = False, write_degree: int = 4,
            dvars: bool = False):
    """Estimate the rigid motion of every frame of a 4D series (SPM's realign; docs/realign.md).

    data4d: a 4D array indexed [i, j, k, t] (or a nibabel image, whose affine is used); ref: "mean"
    (SPM's two passes), "first", or a frame number; mask: a 3D mask/weight on the frames' grid (also the
    DVARS mask; without it, an automatic mask of the mean). dvars=True: also compute DVARS and std_dvars
    on the realigned series (resliced in memory at write_degree when reslice=False), for the full
    fMRIPrep confounds (`voxalign realign --confounds` always does); off by default, since it costs a
    reslice of every frame.
    Returns a :class:`Realignment`.
    """
    if hasattr(data4d, "get_fdata") and hasattr(data4d, "affine"):
        affine = data4d.affine if affine is None else affine
        data4d = data4d.get_fdata(dtype=np.float32)
    a = _numeric(data4d, "realign: data4d")
    if a.ndim != 4:
        raise ValueError(f"realign needs a 4D array (x, y, z, t), not {a.ndim}D")
    a = np.asfortranarray(a, dtype=np.float32)
    A = np.eye(4) if affine is None else _affine4(affine, "realign: affine")
    if ref == "mean":
        ref_frame, to_mean = 0, True
    elif ref == "first":
        ref_frame, to_mean = 0, False
    else:
        ref_frame, to_mean = int(ref), False
    w = None
    if mask is not None:
        if hasattr(mask, "dataobj"):  # a nibabel image
            mask = np.asarray(mask.dataobj)
        w = np.asfortranarray(_numeric(mask, "realign: mask") != 0, dtype=np.float32)
        if w.shape != a.shape[:3]:
            raise ValueError(f"mask has shape {w.shape}, the frames {a.shape[:3]}")
    d = _core.realign(a, A, w, ref_frame, to_mean, float(sep), float(fwhm), int(degree), float(quality), int(iterations),
                      bool(reslice), int(write_degree), bool(dvars))
    return Realignment(d)
