"""The worked examples of examples/warp_examples.py at small sizes: each must solve its problem,
and the comparisons the examples report must hold (exact vs approximate operators)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import warp_examples as we  # noqa: E402


def test_rigid_motion_recovery_exact_vs_approximate():
    th, truth, its_exact, rms_exact = we.rigid_motion(40, exact=True)
    assert rms_exact < 0.05, rms_exact
    assert np.abs(th[3:] - truth[3:]).max() < 0.005
    _, _, its_approx, rms_approx = we.rigid_motion(40, exact=False)
    assert sum(its_exact) < sum(its_approx)  # exact derivatives converge in fewer GN iterations
    assert rms_approx < 0.05


def test_image_recovery_exact_adjoint_converges_approximation_does_not():
    hist, err = we.image_recovery(24, exact=True, iterations=30)
    assert hist[-1] < 1e-2 and err < 0.5
    hist_a, _ = we.image_recovery(24, exact=False, iterations=30)
    assert hist_a[-1] > 10 * hist[-1]


def test_epi_distortion_correction_reduces_the_mismatch():
    pytest.importorskip("nibabel")
    data = we.epi_volume()[32:96, 16:80, 6:18]
    ferr, resid, its = we.epi_distortion(True, iterations=60, data=data)
    assert resid < 0.6, resid  # the corrected pair agrees better than the distorted one
    assert ferr < 0.9, ferr    # and the field is found (roughly, at this size and iteration count)
