"""Regression: an affine map that is the identity up to rounding (off-diagonal entries ~1e-34, as
inv(A) @ A gives for nibabel's example4d.nii.gz) once overflowed the interior-range computation of
the affine resampler (a double of ~1e34 converted to int64): voxels were left unwritten (NaN) and
float64 inputs crashed. The result must equal the exact identity's, for every mode and type."""
import numpy as np
import pytest

import voxalign as va


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["constant", "grid-constant", "mirror", "nearest"])
@pytest.mark.parametrize("degree", [1, 3])
def test_near_identity_matrix(dtype, mode, degree):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(20, 18, 24)).astype(dtype)
    A = np.array([[-2.0, 6.7e-19, 9.1e-18, 117.9], [-6.7e-19, 1.97371149, -0.355528235, -35.7],
                  [8.3e-18, 0.323207617, 2.17108178, -7.2], [0, 0, 0, 1]])
    M = np.eye(4)
    M[1, 0], M[2, 0], M[1, 2] = 1.4e-34, 2.9e-34, 2.0e-17  # what inv(A) @ A holds
    got = va.resample(vol, A, vol.shape, A, transform=A @ M @ np.linalg.inv(A), degree=degree, mode=mode)
    ref = va.resample(vol, np.eye(4), vol.shape, np.eye(4), degree=degree, mode=mode)
    assert np.isfinite(got).all()
    # 'constant' takes cval for points beyond an edge by rounding (documented): compare inside
    inner = (slice(1, -1),) * 3 if mode == "constant" else (slice(None),) * 3
    assert np.abs(got[inner] - ref[inner]).max() < 1e-4
