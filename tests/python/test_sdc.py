# voxalign.sdc on real images distorted by a known field (tests/python/sdc_data.py: mricron's ch2 T1
# at 2 mm with ch2bet as the brain, nibabel's example4d EPI): the field error in the brain (Hz RMS),
# the corrected image's correlation with the undistorted truth, topup's sign convention, sidecars,
# and sdc_apply / sdc_displacement agreeing with the estimate. The CLI is in tests/cli/test_sdc.sh.
import json
import time

import nibabel as nib
import numpy as np
import pytest

import voxalign as vx
import sdc_data


def _corr(a, b, m):
    return np.corrcoef(np.asarray(a)[m], np.asarray(b)[m])[0, 1]


@pytest.fixture(scope="module")
def ch2_pair():
    return sdc_data.pair("ch2", voxel=2, peak=85.0, sigma=14.0, dip=-35.0)


def test_ch2_2mm_meets_the_goals(ch2_pair):
    # Goals of issue 18: field error <= 2 Hz RMS in the brain, correlation with the truth >= 0.995,
    # on a 2 mm whole head with shifts up to ~4 voxels (here 0.05 s x 85 Hz = 4.25 voxels).
    up, down, true, field, brain, aff = ch2_pair
    assert np.abs(field).max() * 0.05 > 4.0
    vx.set_num_threads(2)
    try:
        t0 = time.perf_counter()
        r = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05)
        seconds = time.perf_counter() - t0
    finally:
        vx.set_num_threads(None)
    rms = np.sqrt(((r.fieldmap - field)[brain] ** 2).mean())
    c, c0 = _corr(r.corrected, true, brain), _corr(0.5 * (up + down), true, brain)
    assert rms < 1.0, f"field error {rms:.3f} Hz RMS"
    assert c >= 0.995 and c > c0, (c, c0)
    assert seconds < 60  # the 20 s goal is measured in bench/bench_sdc.py on an idle machine
    assert r.report["max_jacobian_deficit"] == 0


def test_sign_follows_topup(ch2_pair):
    # Swapping which image is called UP (and its direction) gives the same field; calling the PE+
    # image "j-" flips its sign.
    up, down, true, field, brain, aff = ch2_pair
    # Without the motion estimate the two roles are exactly symmetric; with it (the default) the
    # motion is DOWN's relative to UP, so swapping them moves the reference frame by the (tiny) motion
    # found: the fields agree to a fraction of a Hz.
    kw = dict(affine=aff, readout_time=0.05, warp_res=(20, 12), subsample=(4, 2), fwhm=(8, 4), iterations=(6, 6),
              lambda_=(1e-4, 1e-4))
    a = vx.sdc(up, down, pe_dir="j", motion=False, **kw).fieldmap
    b = vx.sdc(down, up, pe_dir="j-", motion=False, **kw).fieldmap
    c = vx.sdc(up, down, pe_dir="j-", motion=False, **kw).fieldmap
    assert np.corrcoef(a[brain], field[brain])[0, 1] > 0.95
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(c, -a, atol=1e-3)
    am = vx.sdc(up, down, pe_dir="j", **kw).fieldmap
    bm = vx.sdc(down, up, pe_dir="j-", **kw).fieldmap
    assert np.abs(am - bm)[brain].max() < 1.0 and np.corrcoef(am[brain], field[brain])[0, 1] > 0.95


def test_epi_pair_and_sidecars(tmp_path):
    up, down, true, field, mask, aff = sdc_data.pair("epi")
    for n, a in (("up", up), ("down", down)):
        nib.save(nib.Nifti1Image(a, aff), tmp_path / f"{n}.nii.gz")
    json.dump({"PhaseEncodingDirection": "j", "TotalReadoutTime": 0.05}, open(tmp_path / "up.json", "w"))
    r = vx.sdc(str(tmp_path / "up.nii.gz"), str(tmp_path / "down.nii.gz"))
    assert (r.pe_up, r.readout_up, r.pe_down, r.readout_down) == ("j", 0.05, "j-", 0.05)
    assert isinstance(r.fieldmap, nib.Nifti1Image) and np.allclose(r.fieldmap.affine, aff)
    f = np.asarray(r.fieldmap.dataobj)
    assert np.sqrt(((f - field)[mask] ** 2).mean()) < 2.0
    assert _corr(r.corrected.dataobj, true, mask) > 0.995
    # the arrays' API gives the same numbers
    q = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05)
    np.testing.assert_array_equal(q.fieldmap, f)
    # sdc_apply corrects UP as sdc did, for every frame of a series
    s = vx.sdc_apply(np.stack([up, up], -1), f, "j", 0.05)
    np.testing.assert_array_equal(s[..., 1], q.corrected_up)
    # the displacement: along j only, 2 mm x 0.05 s x field (RAS; the EPI's j column)
    u = vx.sdc_displacement(f, "j", 0.05, affine=aff)
    np.testing.assert_allclose(u, f[..., None] * 0.05 * aff[:3, 1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no total readout time"):
        vx.sdc(up, down, affine=aff, pe_dir="j")
    with pytest.raises(ValueError, match="both images have phase-encoding direction j"):
        vx.sdc(up, down, affine=aff, pe_dir="j", pe_dir_down="j", readout_time=0.05)


def test_exact_derivative_converges_lower_than_the_approximation():
    # ImWIP's comparison: the same Gauss-Newton schedule with the usual approximate derivative
    # (the image gradient by central finite differences) ends at a higher cost (bench/bench_sdc.py
    # has the traces).
    up, down, true, field, mask, aff = sdc_data.pair("epi")
    kw = dict(affine=aff, pe_dir="j", readout_time=0.05)
    exact = vx.sdc(up, down, **kw)
    approx = vx.sdc(up, down, approximate=True, **kw)
    e = exact.report["levels"][-1]["final_cost"]
    a = approx.report["levels"][-1]["final_cost"]
    assert e < a, (e, a)


def test_4d_volumes_are_aligned_before_averaging():
    # Two b=0 volumes per direction, the second moved by 1.5 voxels along i (not the PE axis): aligned
    # (realign) before averaging, the field is as good as from one volume; averaged as they are, not.
    from scipy import ndimage
    up, down, true, field, mask, aff = sdc_data.pair("epi")
    moved = ndimage.shift(up, (1.5, 0, 0), order=3, mode="nearest")
    four_d = np.stack([up, moved], -1)
    rms = lambda r: np.sqrt(((r.fieldmap - field)[mask] ** 2).mean())
    aligned = vx.sdc(four_d, down, affine=aff, pe_dir="j", readout_time=0.05)
    raw = vx.sdc(four_d, down, affine=aff, pe_dir="j", readout_time=0.05, align_volumes=False)
    assert rms(aligned) < 0.3 and rms(raw) > 1.0, (rms(aligned), rms(raw))
    assert _corr(aligned.corrected, true, mask) > 0.995


def test_one_shot_motion_and_distortion():
    # A series of UP moved rigidly (frames 1, 2): realign's transforms and the field in one
    # interpolation give every frame as UP corrected (~1 %: the moves were made by interpolation);
    # the field alone leaves the motion (~7 %).
    up, down, true, field, mask, aff = sdc_data.pair("epi")
    r = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05)
    ctr = aff[:3, :3] @ ((np.array(up.shape) - 1) / 2) + aff[:3, 3]

    def rigid(tx, ty, rz):
        m = np.eye(4)
        m[:2, :2] = [[np.cos(rz), -np.sin(rz)], [np.sin(rz), np.cos(rz)]]
        m[:3, 3] = [tx, ty, 0]
        m[:3, 3] += ctr - m[:3, :3] @ ctr
        return m

    frames = [up] + [vx.resample(up, aff, transform=rigid(*p)) for p in [(1.0, -0.8, 0.02), (-0.6, 1.2, -0.015)]]
    series = np.stack(frames, -1).astype(np.float32)
    motion = vx.realign(series, affine=aff, reslice=False)
    one = vx.sdc_apply(series, r.fieldmap, "j", 0.05, transforms=motion.matrices, affine=aff)
    plain = vx.sdc_apply(series, r.fieldmap, "j", 0.05)
    inner = mask.copy()
    inner[:8] = inner[-8:] = False
    inner[:, :8] = inner[:, -8:] = False
    inner[..., :3] = inner[..., -3:] = False
    rel = lambda a: np.abs(a - r.corrected_up)[inner].mean() / np.abs(r.corrected_up[inner]).mean()
    for t in (1, 2):
        assert rel(one[..., t]) < 0.02 and rel(plain[..., t]) > 0.05, (t, rel(one[..., t]), rel(plain[..., t]))
    assert rel(one[..., 0]) < 1e-3
