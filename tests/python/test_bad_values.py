"""Bad values that used to pass through the Python API: each is now refused with one line naming the
argument and what is wrong (TypeError for the wrong kind of thing, ValueError for a wrong value), and
nothing is written (docs/conventions.md, "Failures and bad input")."""
import os
import time

import numpy as np
import pytest

import voxalign as vx


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and msg, msg
    return msg


@pytest.fixture
def restore_threads():
    yield
    vx.set_num_threads(None)


@pytest.mark.parametrize("n", [0, -3, 100000])
def test_set_num_threads_refuses_out_of_range(n, restore_threads):
    before = vx.get_num_threads()
    with pytest.raises(ValueError) as e:
        vx.set_num_threads(n)
    assert "set_num_threads" in one_line(e) and "1024" in str(e.value)
    assert vx.get_num_threads() == before


@pytest.mark.parametrize("n", [2.5, True, "4"])
def test_set_num_threads_refuses_non_integers(n, restore_threads):
    with pytest.raises(TypeError) as e:
        vx.set_num_threads(n)
    assert "set_num_threads" in one_line(e)


@pytest.mark.parametrize(
    "env, want",
    [
        ({"OMP_NUM_THREADS": "3"}, 3),
        ({"OMP_NUM_THREADS": "3,2", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "5"}, 3),
        ({"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "5"}, 5),
        ({"VOXALIGN_NUM_THREADS": "2", "OMP_NUM_THREADS": "3"}, 2),
        ({"VOXALIGN_NUM_THREADS": "0", "OMP_NUM_THREADS": "abc", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "6"}, 6),
        ({"VOXALIGN_NUM_THREADS": "2000", "OMP_NUM_THREADS": "", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "-1"}, None),
    ],
)
def test_default_threads_from_the_environment(env, want):
    """The default is the CLI's: VOXALIGN_NUM_THREADS, OMP_NUM_THREADS (first item), then
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS, then the cores; invalid values are skipped
    (docs/conventions.md, "Threads"). A fresh interpreter with exactly these variables set."""
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items()
             if k not in ("VOXALIGN_NUM_THREADS", "OMP_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")}
    code = "import os, voxalign as vx; n = vx.get_num_threads(); vx.set_num_threads(1); " \
           "assert vx.get_num_threads() == 1; vx.set_num_threads(None); print(n, vx.get_num_threads(), os.cpu_count())"
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    n, again, cores = map(int, out.stdout.split())
    assert n == again == (cores if want is None else want), (env, out.stdout)


def test_set_num_threads_none_restores_the_default(restore_threads):
    default = vx.get_num_threads()
    vx.set_num_threads(1)
    assert vx.get_num_threads() == 1
    vx.set_num_threads(None)
    assert vx.get_num_threads() == default


@pytest.mark.parametrize("bad", ["nan", "inf", "singular"])
def test_resample_refuses_a_bad_target_affine(bad):
    T = np.eye(4)
    if bad == "nan":
        T[0, 0] = np.nan
    elif bad == "inf":
        T[1, 3] = np.inf
    else:
        T[2, 2] = 0.0
    with pytest.raises(ValueError) as e:
        vx.resample(np.ones((5, 6, 7)), np.eye(4), (5, 6, 7), T)
    assert "target_affine" in one_line(e)


def test_resample_refuses_a_non_finite_cval_and_affine():
    with pytest.raises(ValueError) as e:
        vx.resample(np.ones((5, 6, 7)), np.eye(4), (5, 6, 7), np.eye(4), cval=np.nan)
    assert "cval" in one_line(e)
    A = np.eye(4)
    A[0, 3] = np.nan
    with pytest.raises(ValueError) as e:
        vx.resample(np.ones((5, 6, 7)), A, (5, 6, 7), np.eye(4))
    assert "affine" in one_line(e)


BAD_ARRAYS = {
    "object": np.array([[[1, 2], [3, 4]]] * 2, dtype=object),
    "string": np.array([[["1", "2"], ["3", "4"]]] * 2),
    "bytes": np.array([[[b"1", b"2"], [b"3", b"4"]]] * 2),
    "complex": np.ones((2, 2, 2), dtype=complex),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
def test_non_numeric_arrays_are_refused_not_converted(kind, tmp_path):
    a = BAD_ARRAYS[kind]
    calls = {
        "resample": lambda: vx.resample(a, np.eye(4), (2, 2, 2), np.eye(4)),
        "spline_coefficients": lambda: vx.spline_coefficients(a),
        "warp": lambda: vx.warp(a, np.zeros((2, 2, 2, 3))),
        "n4": lambda: vx.n4(a),
        "otsu_mask": lambda: vx.otsu_mask(a),
        "write_nifti": lambda: vx.write_nifti(tmp_path / "x.nii", a, np.eye(4)),
        "register": lambda: vx.register(a, np.ones((2, 2, 2), np.float32)),
        "realign": lambda: vx.realign(np.stack([a, a], -1)),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError) as e:
            call()
        assert kind in one_line(e) or str(a.dtype) in str(e.value), (name, str(e.value))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", ["singular", "nan"])
def test_write_nifti_refuses_a_bad_affine(bad, tmp_path):
    A = np.eye(4)
    if bad == "singular":
        A[:3, :3] = [[1, 2, 3], [2, 4, 6], [0, 0, 1]]
    else:
        A[1, 1] = np.nan
    with pytest.raises(ValueError) as e:
        vx.write_nifti(tmp_path / "x.nii.gz", np.ones((3, 4, 5), np.float32), A)
    assert "affine" in one_line(e)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tr", [np.nan, np.inf, -2.0, 0.0])
def test_write_nifti_refuses_a_bad_time_step(tr, tmp_path):
    with pytest.raises(ValueError) as e:
        vx.write_nifti(tmp_path / "x.nii", np.ones((3, 4, 5, 2), np.float32), np.eye(4), time_step=tr)
    assert "time_step" in one_line(e)
    assert os.listdir(tmp_path) == []


def _ball(shape=(30, 34, 26)):
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(x ** 2 for x in g))
    rng = np.random.default_rng(0)
    return (np.where(r < 0.8, 100.0, 5.0) + rng.normal(0, 2, shape)).astype(np.float32)


def test_n4_names_the_lattice_instead_of_running_out_of_memory():
    img = _ball()
    with pytest.raises(ValueError) as e:
        vx.n4(img, control_points=2000)
    assert "control-points 2000" in one_line(e)
    with pytest.raises(ValueError) as e:
        vx.n4(img, spline_distance=1e9)
    assert "spline-distance" in one_line(e)


def test_realign_names_a_huge_fwhm_instead_of_running_out_of_memory():
    img = _ball()
    with pytest.raises(ValueError) as e:
        vx.realign(np.stack([img, img, img], -1), np.diag([2.0, 2, 2, 1]), fwhm=1e9)
    assert "--fwhm" in one_line(e) and "wider than the image" in str(e.value)


def test_register_refuses_non_overlapping_tiny_voxels_at_once():
    img = _ball()
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as e:
        vx.register(img, img, moving_affine=np.diag([1.2e-4, 1.2e-4, 1.2e-4, 1.0]),
                    fixed_affine=np.diag([1.5, 1.2, 2.0, 1.0]))
    assert "do not overlap at the initial transform" in one_line(e)
    assert time.perf_counter() - t0 < 1.5


def test_register_names_a_smoothing_wider_than_the_image():
    img = _ball()
    with pytest.raises(ValueError) as e:
        vx.register(img, img, levels=[2, 1], smoothing=[1e9, 0.0])
    assert "--smoothing: 1e+09 mm is wider than the fixed image" in one_line(e)
