# voxalign.sdc with a rigid motion between UP and DOWN (topup's --estmov), on mricron's ch2 at 2 mm
# distorted by a known field after moving the head by a known rotation and translation
# (tests/python/sdc_data.py moved_pair: the physical model, the field moving with the head): the
# field error in the brain, the corrected image against the undistorted truth (the goals of issue
# 18), the motion against the truth, --no-motion failing on the same pair, and a still pair staying
# still.
import time

import numpy as np
import pytest

import voxalign as vx
import sdc_data

FIELD = dict(peak=85.0, sigma=14.0, dip=-35.0)


def _corr(a, b, m):
    return np.corrcoef(np.asarray(a)[m], np.asarray(b)[m])[0, 1]


def _rms(a, b, m):
    return float(np.sqrt(((np.asarray(a) - b)[m] ** 2).mean()))


def _displacement_error(est, truth, brain, aff):
    """Largest distance (mm) between the two maps' images of the brain's voxel centres."""
    ijk = np.argwhere(brain).T
    xyz = aff[:3, :3] @ ijk + aff[:3, 3:4]
    d = (est[:3, :3] - truth[:3, :3]) @ xyz + (est[:3, 3:4] - truth[:3, 3:4])
    return float(np.sqrt((d ** 2).sum(axis=0)).max())


@pytest.fixture(scope="module")
def moved():
    # 1.5 deg about x (pitch, the usual nod) and 0.5 deg about z, 1.5 mm along x and 1 mm along z
    return sdc_data.moved_pair(rot_deg=(1.5, 0.0, 0.5), trans_mm=(1.5, 0.0, 1.0), **FIELD)


def test_motion_and_field_meet_the_goals(moved):
    # Goals of issue 18 with the head moved between UP and DOWN: field error <= 2 Hz RMS in the brain,
    # corrected mean against the truth >= 0.995; the motion found within 0.3 mm of the truth over the brain.
    up, down, true, field, brain, aff, M = moved
    vx.set_num_threads(2)
    try:
        t0 = time.perf_counter()
        r = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05)
        seconds = time.perf_counter() - t0
    finally:
        vx.set_num_threads(None)
    rms = _rms(r.fieldmap, field, brain)
    c = _corr(r.corrected, true, brain)
    err = _displacement_error(r.motion, M, brain, aff)
    assert rms < 1.0, f"field error {rms:.3f} Hz RMS"
    assert c >= 0.995, c
    assert err < 0.3, f"motion off by up to {err:.3f} mm in the brain"
    # the corrected DOWN lands on UP's frame: it agrees with UP corrected as well as the truth does
    assert _corr(r.corrected_down, true, brain) >= 0.99
    assert seconds < 60  # the 20 s goal is measured in bench/bench_sdc.py


def test_without_motion_the_same_pair_fails(moved):
    # --no-motion on the moved pair: the field absorbs the motion and misses the goals by far.
    up, down, true, field, brain, aff, M = moved
    r = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05, motion=False)
    assert _rms(r.fieldmap, field, brain) > 2.0
    np.testing.assert_array_equal(r.motion, np.eye(4))


def test_still_pair_stays_still():
    # No motion in the data: the motion found is below 0.1 mm over the brain, and the field is as good
    # as without the motion estimate.
    up, down, true, field, brain, aff = sdc_data.pair("ch2", voxel=2, **FIELD)
    r = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05)
    r0 = vx.sdc(up, down, affine=aff, pe_dir="j", readout_time=0.05, motion=False)
    assert _displacement_error(r.motion, np.eye(4), brain, aff) < 0.1
    assert _rms(r.fieldmap, field, brain) < _rms(r0.fieldmap, field, brain) + 0.05
