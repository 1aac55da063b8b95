"""voxalign realign --confounds: fMRIPrep's full motion set, FD, rmsd, DVARS, read by nilearn (issue 16).

- The TSV's columns and order are fMRIPrep's (trans_x, trans_x_derivative1, trans_x_power2,
  trans_x_derivative1_power2, ... rot_z_derivative1_power2, framewise_displacement, rmsd, dvars, std_dvars);
  derivative1 is the backward difference (n/a in row 0), power2 the square; every column has BIDS units in
  the JSON sidecar.
- dvars / std_dvars against a direct numpy transcription of nipype's compute_dvars (fMRIPrep's
  ComputeDVARS: intensity_normalization 1000, remove_zerovariance with variance_tol 1e-7, robust SD
  (P75 - P25) / 1.349 with numpy's "lower" percentiles, AR(1) by Yule-Walker), on the realigned series,
  in the automatic mask (SPM's analysis threshold on the mean: 0.8 of spm_global) or a given mask;
  relative error <= 1e-4.
- nilearn.interfaces.fmriprep.load_confounds on the CLI's outputs laid out as fMRIPrep's
  (*_desc-preproc_bold.nii.gz beside *_desc-confounds_timeseries.tsv): motion="full" gives the 24
  columns equal to the file's (row 0 filled from row 1, as nilearn does), and "scrub" drops exactly the
  frames with FD > 0.5 mm or std_dvars > 1.5. nilearn's default strategy also asks for wm_csf
  (csf, white_matter: tissue signals voxalign does not compute): it fails naming only that.
"""
import json
import subprocess

import nibabel as nib
import numpy as np
import pytest

import voxalign as va
from conftest import voxalign_exe
from test_realign import epi, simulate  # noqa: F401  (epi is a fixture)
from test_register import about, euler

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
FULL = [c for b in MOTION for c in (b, b + "_derivative1", b + "_power2", b + "_derivative1_power2")]


def read_tsv(path):
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    rows = [[np.nan if v == "n/a" else float(v) for v in ln.split("\t")] for ln in lines[1:]]
    return head, np.array(rows)


def auto_mask(series):
    """SPM's analysis mask of the temporal mean: above 0.8 of spm_global (mean of voxels above mean/8)."""
    m = series.astype(np.float64).mean(axis=3).astype(np.float32)
    g = m[m > m.mean() / 8].mean()
    return m > 0.8 * g


def nipype_dvars(series, mask, variance_tol=1e-7):
    """nipype.algorithms.confounds.compute_dvars (remove_zerovariance=True, intensity_normalization=1000),
    with nitime's AR_est_YW(x, 1) written out (biased lag-0/lag-1 autocovariances of the demeaned series)."""
    mfunc = series[mask].astype(np.float64)
    mfunc = mfunc / np.median(mfunc) * 1000
    sd = (np.percentile(mfunc, 75, axis=1, method="lower") - np.percentile(mfunc, 25, axis=1, method="lower")) / 1.349
    keep = sd > variance_tol
    mfunc, sd = mfunc[keep], sd[keep]
    x = mfunc - mfunc.mean(axis=1, keepdims=True)
    ar1 = (x[:, 1:] * x[:, :-1]).sum(1) / (x * x).sum(1)
    diff_sd_mean = (np.sqrt(2 * (1 - ar1)) * sd).mean()
    nstd = np.sqrt(np.square(np.diff(mfunc, axis=1)).mean(axis=0))
    return nstd, nstd / diff_sd_mean


def test_tsv_columns_derivatives_powers_units(epi, tmp_path):
    vol, A = epi
    data, _ = simulate(vol, A, 6, seed=5)
    r = va.realign(data, A, ref="first", dvars=True)
    r.save_confounds(tmp_path / "c.tsv")
    head, v = read_tsv(tmp_path / "c.tsv")
    assert head == FULL + ["framewise_displacement", "rmsd", "dvars", "std_dvars"]
    col = {h: v[:, i] for i, h in enumerate(head)}
    fsl = dict(zip(["rot_x", "rot_y", "rot_z", "trans_x", "trans_y", "trans_z"], r.fsl.T))
    for b in MOTION:
        p = col[b]
        assert np.allclose(p, fsl[b], rtol=1e-8, atol=1e-12)
        assert np.isnan(col[b + "_derivative1"][0]) and np.isnan(col[b + "_derivative1_power2"][0])
        assert np.allclose(col[b + "_derivative1"][1:], np.diff(p), rtol=1e-7, atol=1e-11)
        assert np.allclose(col[b + "_power2"], p ** 2, rtol=1e-7, atol=1e-14)
        assert np.allclose(col[b + "_derivative1_power2"][1:], np.diff(p) ** 2, rtol=1e-6, atol=1e-14)
    for c, ref in [("framewise_displacement", r.fd), ("rmsd", r.rmsd), ("dvars", r.dvars), ("std_dvars", r.std_dvars)]:
        assert np.isnan(col[c][0]) and np.allclose(col[c][1:], ref[1:], rtol=1e-8)
    meta = json.loads((tmp_path / "c.json").read_text())
    assert set(meta) == set(head) | {"Software"}
    for b in MOTION:
        u = "mm" if b.startswith("trans") else "rad"
        assert meta[b]["Units"] == u and meta[b + "_derivative1"]["Units"] == u
        assert meta[b + "_power2"]["Units"] == u + "^2" and meta[b + "_derivative1_power2"]["Units"] == u + "^2"
    assert meta["framewise_displacement"]["Units"] == "mm" and meta["rmsd"]["Units"] == "mm"
    assert meta["dvars"]["Units"] == "arbitrary" and meta["std_dvars"]["Units"] == "arbitrary"
    # without DVARS the columns are left out, not written as n/a
    r2 = va.realign(data, A, ref="first")  # dvars off by default
    assert r2.dvars is None and "dvars" not in r2._texts["confounds_tsv"].splitlines()[0].split("\t")


def test_dvars_against_nipype_formula(epi):
    vol, A = epi
    data, _ = simulate(vol, A, 10, seed=6)
    r = va.realign(data, A, reslice=True, dvars=True)
    series = r.resliced
    nstd, std = nipype_dvars(series, auto_mask(series))
    assert r.dvars[0] == 0 and r.std_dvars[0] == 0
    assert np.abs(r.dvars[1:] / nstd - 1).max() < 1e-4, (r.dvars[1:], nstd)
    assert np.abs(r.std_dvars[1:] / std - 1).max() < 1e-4, (r.std_dvars[1:], std)
    # a given mask is the DVARS mask too
    brain = vol > 0.3 * np.percentile(vol, 99)
    rm = va.realign(data, A, reslice=True, mask=brain, dvars=True)
    nstd, std = nipype_dvars(rm.resliced, brain)
    assert np.abs(rm.dvars[1:] / nstd - 1).max() < 1e-4 and np.abs(rm.std_dvars[1:] / std - 1).max() < 1e-4
    # the same numbers without reslice=True (the series is resliced in memory for DVARS), and for any
    # number of threads
    n0 = va.get_num_threads()
    try:
        va.set_num_threads(1)
        r0 = va.realign(data, A, dvars=True)
    finally:
        va.set_num_threads(n0)
    assert np.array_equal(r0.dvars, r.dvars) and np.array_equal(r0.std_dvars, r.std_dvars)


def spiky(vol, A, n=14, spike=7, seed=7):
    """Small motion (<= 0.05 mm, 0.03 deg) except frames spike.. which move 1.5 mm and 1 deg."""
    rng = np.random.default_rng(seed)
    c = (A @ np.r_[(np.array(vol.shape) - 1) / 2, 1])[:3]
    Ts = []
    for t in range(n):
        ang = np.deg2rad(rng.uniform(-0.03, 0.03, 3)) + (np.deg2rad([1.0, 0, 0]) if t >= spike else 0)
        tr = rng.uniform(-0.05, 0.05, 3) + ([1.5, 0, 0] if t >= spike else 0)
        Ts.append(about(euler(*ang), tr, c) if t else np.eye(4))
    frames = [va.resample(vol, A, vol.shape, A, transform=np.linalg.inv(T), degree=3, mode="nearest") for T in Ts]
    return np.asfortranarray(np.stack(frames, axis=3) + rng.normal(0, 5.0, vol.shape + (n,)), dtype=np.float32)


@pytest.mark.parametrize("estimate_only", [False, True])
def test_nilearn_load_confounds(epi, tmp_path, estimate_only):
    from nilearn.interfaces import fmriprep  # a test dependency (Makefile PIP_PKGS, pyproject [test])
    vol, A = epi
    data = spiky(vol, A)
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    raw = tmp_path / "sub-01_task-rest_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, A), raw)
    bold = func / "sub-01_task-rest_desc-preproc_bold.nii.gz"
    tsv = func / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    cmd = [voxalign_exe(), "realign", str(raw), "--confounds", str(tsv), "-q"]
    cmd += ["--estimate-only"] if estimate_only else ["-o", str(bold)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    if estimate_only:  # nilearn only needs the image's name; DVARS came from the series resliced in memory
        nib.save(nib.Nifti1Image(data, A), bold)
    head, v = read_tsv(tsv)
    col = {h: v[:, i] for i, h in enumerate(head)}

    conf, sample_mask = fmriprep.load_confounds(str(bold), strategy=("motion",), motion="full", demean=False)
    assert sorted(conf.columns) == sorted(FULL) and sample_mask is None
    for c in FULL:
        expect = col[c].copy()
        expect[0] = expect[1] if np.isnan(expect[0]) else expect[0]  # nilearn fills row 0's n/a from row 1
        assert np.allclose(conf[c].to_numpy(), expect, rtol=1e-12, atol=0), c

    # scrub: the frames with FD > 0.5 mm or std_dvars > 1.5 are dropped (scrub=0: no segment rule)
    fd, sd = np.nan_to_num(col["framewise_displacement"]), np.nan_to_num(col["std_dvars"])
    bad = (fd > 0.5) | (sd > 1.5)
    assert bad[7] and not bad[:7].any(), (fd, sd)  # the spike, and nothing before it
    conf, sample_mask = fmriprep.load_confounds(str(bold), strategy=("motion", "high_pass", "scrub"),
                                                motion="full", scrub=0)
    assert np.array_equal(sample_mask, np.flatnonzero(~bad)) and sorted(conf.columns) == sorted(FULL)
    conf, sample_mask = fmriprep.load_confounds(str(bold), strategy=("motion", "scrub"), motion="full")
    assert 7 not in sample_mask and len(sample_mask) < len(data.T)

    # the default strategy (motion, high_pass, wm_csf) needs tissue signals voxalign does not write
    with pytest.raises(ValueError, match="wm_csf") as e:
        fmriprep.load_confounds(str(bold))
    assert "motion" not in str(e.value) and "scrub" not in str(e.value)
    conf, _ = fmriprep.load_confounds(str(bold), strategy=("motion", "high_pass"))
    assert sorted(conf.columns) == sorted(FULL)
