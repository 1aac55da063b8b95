"""voxalign.realign / voxalign realign: motion estimates on a series simulated from a real EPI volume
(nibabel's example4d.nii.gz, 128x96x24, 2x2x2.2 mm) with known random rigid motion per frame (up to
2 mm and 2 degrees) plus noise; the parameter files against the published formulas; bad input.

Accuracy (issue 6): RMS over the brain of |E_t E_0^-1 x - T_t x| (E: estimated pull-backs, T: the
true ones, frame 0 unmoved) -- mean over frames <= 0.02 mm, max <= 0.1 mm.
Formulas: FD (Power et al. 2012, as nipype's FramewiseDisplacement computes it from FSL parameters:
sum |d trans| + 50 mm * sum |d rot|) and Jenkinson's RMS (1999; MCFLIRT's relative rms, radius 80 mm)
recomputed here in numpy, equal to 1e-6 mm.
"""
import os
import subprocess

import nibabel as nib
import numpy as np
import pytest

import voxalign as va
from conftest import voxalign_exe
from test_register import about, euler


@pytest.fixture(scope="module")
def epi():
    from nibabel.testing import data_path
    img = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    vol = np.asarray(img.dataobj[..., 0], dtype=np.float32)
    return vol, img.affine


def simulate(vol, A, n, seed, noise=5.0):
    rng = np.random.default_rng(seed)
    c = (A @ np.r_[(np.array(vol.shape) - 1) / 2, 1])[:3]
    Ts = [np.eye(4)]
    for _ in range(n - 1):
        ang = np.deg2rad(rng.uniform(-2, 2, 3))
        t = rng.uniform(-1, 1, 3)
        t *= rng.uniform(0, 2) / max(np.linalg.norm(t), 1e-9)
        Ts.append(about(euler(*ang), t, c))
    # 'nearest': tissue continues beyond the slab, as in an acquisition (zeros would be an artefact)
    frames = [va.resample(vol, A, vol.shape, A, transform=np.linalg.inv(T), degree=3, mode="nearest") for T in Ts]
    data = np.stack(frames, axis=3) + rng.normal(0, noise, vol.shape + (n,))
    return np.asfortranarray(data, dtype=np.float32), Ts


def errors(r, Ts, vol, A):
    brain = vol > 0.3 * np.percentile(vol, 99)
    ijk = np.argwhere(brain)
    X = np.c_[(A @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3], np.ones(len(ijk))]
    E0inv = np.linalg.inv(r.matrices[0])
    out = []
    for E, T in zip(r.matrices, Ts):
        d = (X @ (E @ E0inv).T - X @ T.T)[:, :3]
        out.append(np.sqrt((d ** 2).sum(1).mean()))
    return np.array(out)


@pytest.mark.parametrize("ref", ["mean", "first"])
def test_accuracy_on_simulated_epi(epi, ref):
    vol, A = epi
    data, Ts = simulate(vol, A, 12, seed=1)
    r = va.realign(data, A, ref=ref)
    e = errors(r, Ts, vol, A)
    assert e.mean() <= 0.02 and e.max() <= 0.1, e


def test_formulas_fd_rmsd_rp(epi):
    vol, A = epi
    data, Ts = simulate(vol, A, 6, seed=2)
    r = va.realign(data, A, ref="first")
    # FD (Power) from the FSL parameters, as nipype computes it
    p = r.fsl
    fd = np.r_[0, np.abs(np.diff(p[:, 3:], axis=0)).sum(1) + 50 * np.abs(np.diff(p[:, :3], axis=0)).sum(1)]
    assert np.abs(fd - r.fd).max() < 1e-6
    # Jenkinson's relative RMS with the FLIRT matrices (frame -> reference, FSL scaled-voxel mm)
    sp = np.linalg.norm(A[:3, :3], axis=0)
    S = np.diag(np.r_[sp, 1.0])
    if np.linalg.det(A[:3, :3]) > 0:
        S[0, 0], S[0, 3] = -sp[0], (vol.shape[0] - 1) * sp[0]
    c = (S @ np.r_[(np.array(vol.shape) - 1) / 2, 1])[:3]
    F = [S @ np.linalg.inv(A) @ np.linalg.inv(M) @ A @ np.linalg.inv(S) for M in r.matrices]
    for t in range(1, len(F)):
        D = F[t] @ np.linalg.inv(F[t - 1]) - np.eye(4)
        Am, tt = D[:3, :3], D[:3, 3]
        rms = np.sqrt(80.0 ** 2 / 5 * np.trace(Am.T @ Am) + np.sum((tt + Am @ c) ** 2))
        assert abs(rms - r.rmsd[t]) < 1e-6
    # SPM rp: spm_matrix(rp_t) (T * R1(pitch) R2(roll) R3(yaw), SPM's sign conventions) equals
    # M_t_new / M_0_new = E_t^-1 E_0
    for q, E in zip(r.spm, r.matrices):
        tx, ty, tz, pi_, ro, ya = q
        R1 = np.array([[1, 0, 0], [0, np.cos(pi_), np.sin(pi_)], [0, -np.sin(pi_), np.cos(pi_)]])
        R2 = np.array([[np.cos(ro), 0, np.sin(ro)], [0, 1, 0], [-np.sin(ro), 0, np.cos(ro)]])
        R3 = np.array([[np.cos(ya), np.sin(ya), 0], [-np.sin(ya), np.cos(ya), 0], [0, 0, 1]])
        M = np.eye(4)
        M[:3, :3] = R1 @ R2 @ R3
        M[:3, 3] = [tx, ty, tz]
        assert np.allclose(M, np.linalg.inv(E) @ r.matrices[0], atol=1e-9)
    # FSL par: R = Rx Ry Rz in FSL's convention, translation about the volume centre
    for q, Fm in zip(r.fsl, F):
        rx, ry, rz, tx, ty, tz = q
        Rx = np.array([[1, 0, 0], [0, np.cos(rx), np.sin(rx)], [0, -np.sin(rx), np.cos(rx)]])
        Ry = np.array([[np.cos(ry), 0, -np.sin(ry)], [0, 1, 0], [np.sin(ry), 0, np.cos(ry)]])
        Rz = np.array([[np.cos(rz), np.sin(rz), 0], [-np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
        R = Rx @ Ry @ Rz
        assert np.allclose(R, Fm[:3, :3], atol=1e-9)
        assert np.allclose(Fm[:3, 3] + (R - np.eye(3)) @ c, [tx, ty, tz], atol=1e-9)


def test_reslice_and_determinism(epi):
    vol, A = epi
    data, Ts = simulate(vol, A, 4, seed=3)
    n0 = va.get_num_threads()
    try:
        va.set_num_threads(1)
        a = va.realign(data, A, reslice=True)
        va.set_num_threads(2)
        b = va.realign(data, A, reslice=True)
    finally:
        va.set_num_threads(n0)
    assert np.array_equal(a.matrices, b.matrices) and np.array_equal(a.resliced, b.resliced)
    # the realigned frames agree with frame 0's content where the brain is (noise ~5, intensity ~600)
    brain = vol > 0.3 * np.percentile(vol, 99)
    inner = np.zeros_like(brain)
    inner[10:-10, 10:-10, 3:-3] = True
    m = brain & inner
    before = np.abs(data[..., 1:] - data[..., :1])[m].mean()
    after = np.abs(a.resliced[..., 1:] - a.resliced[..., :1])[m].mean()
    assert after < 0.5 * before, (before, after)


def test_bad_input(epi):
    vol, A = epi
    with pytest.raises(ValueError, match="4D"):
        va.realign(vol, A)
    with pytest.raises(ValueError, match="3D \\(one frame\\)"):
        va.realign(vol[..., None], A)
    d = np.stack([vol, vol], axis=3)
    d[3, 3, 3, 1] = np.nan
    with pytest.raises(ValueError, match="frame 1 has a non-finite"):
        va.realign(d, A)
    with pytest.raises(ValueError, match="mask leaves"):
        va.realign(np.stack([vol, vol], axis=3), A, mask=np.zeros(vol.shape))


def test_cli_outputs(epi, tmp_path):
    vol, A = epi
    data, Ts = simulate(vol, A, 5, seed=4)
    nib.save(nib.Nifti1Image(data, A), tmp_path / "bold.nii.gz")
    exe = voxalign_exe()
    p = subprocess.run([exe, "realign", str(tmp_path / "bold.nii.gz"), "-o", str(tmp_path / "rbold.nii.gz"),
                        "--rp", str(tmp_path / "rp_bold.txt"), "--par", str(tmp_path / "bold.par"),
                        "--confounds", str(tmp_path / "conf.tsv"), "--save-transforms", str(tmp_path / "hmc.txt"),
                        "--mean", str(tmp_path / "mean.nii.gz"), "--report", str(tmp_path / "report")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = va.realign(data, A)
    assert np.allclose(np.loadtxt(tmp_path / "rp_bold.txt"), r.spm, atol=1e-9)
    assert np.allclose(np.loadtxt(tmp_path / "bold.par"), r.fsl, atol=1e-7)
    lines = (tmp_path / "conf.tsv").read_text().splitlines()
    head = lines[0].split("\t")  # fMRIPrep's set; its values: test_realign_confounds.py
    assert head[:4] == ["trans_x", "trans_x_derivative1", "trans_x_power2", "trans_x_derivative1_power2"]
    assert head[24:] == ["framewise_displacement", "rmsd", "dvars", "std_dvars"] and len(head) == 28
    assert lines[1].split("\t")[-4:] == ["n/a"] * 4 and len(lines) == 6
    import json
    meta = json.loads((tmp_path / "conf.json").read_text())
    assert meta["framewise_displacement"]["Units"] == "mm"
    # one ITK transform per frame, each equal to the matrix (reference -> frame, LPS in the file)
    text = (tmp_path / "hmc.txt").read_text()
    blocks = text.split("#Transform ")[1:]
    assert len(blocks) == 5
    for t, b in enumerate(blocks):
        params = [float(x) for x in b.split("Parameters:")[1].split("\n")[0].split()]
        L = np.eye(4)
        L[:3, :3] = np.array(params[:9]).reshape(3, 3)
        L[:3, 3] = params[9:12]
        Fl = np.diag([-1.0, -1, 1, 1])
        assert np.allclose(Fl @ L @ Fl, r.matrices[t], atol=1e-9)
    out = nib.load(tmp_path / "rbold.nii.gz")
    assert out.shape == data.shape and np.allclose(out.affine, A, atol=1e-5)
    assert (tmp_path / "report" / "index.html").read_text().count("<svg") == 3
    assert (tmp_path / "report" / "mean_after.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # bad input through the CLI: a 3D image, one line, no output
    nib.save(nib.Nifti1Image(vol, A), tmp_path / "vol.nii.gz")
    q = subprocess.run([exe, "realign", str(tmp_path / "vol.nii.gz"), "-o", str(tmp_path / "out.nii.gz")],
                       capture_output=True, text=True, timeout=60)
    assert q.returncode != 0 and len(q.stderr.strip().splitlines()) == 1 and "4D" in q.stderr
    assert not (tmp_path / "out.nii.gz").exists()
