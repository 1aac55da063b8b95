import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def voxalign_exe() -> str:
    """The CLI under test: $VOXALIGN_EXE, else the build tree's, else the one on PATH."""
    exe = os.environ.get("VOXALIGN_EXE")
    if exe:
        return exe
    built = ROOT / "build" / "release" / "voxalign"
    if built.exists():
        return str(built)
    found = shutil.which("voxalign")
    if not found:
        pytest.skip("voxalign executable not found")
    return found


@pytest.fixture
def cli():
    exe = voxalign_exe()

    def run(*args, check=True):
        p = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"voxalign {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
        return p

    return run


@pytest.fixture
def exe(monkeypatch):
    """The CLI under test, also as $VOXALIGN_EXE (what the workflow interfaces run)."""
    path = voxalign_exe()
    monkeypatch.setenv("VOXALIGN_EXE", path)
    return path


MRICRON = Path("/usr/share/mricron/templates")


@pytest.fixture
def t1_path():
    """A real T1 volume from Debian's mricron-data (installed by `make deps`)."""
    p = MRICRON / "ch2.nii.gz"
    if not p.exists():
        if os.environ.get("CI") or os.environ.get("VOXALIGN_REQUIRE_DATA"):
            pytest.fail("mricron-data is not installed (run make deps)")
        pytest.skip("mricron-data not installed")
    return p


def adjoint_over_threads(y, u, shape, mode, threads=(1, 2, 3)):
    """voxalign.adjoint_warp (cubic) of y through field u with each thread count in turn (the
    previous setting restored); asserts the results are bit-identical and returns the first."""
    import numpy as np

    import voxalign as vx

    n0 = vx.get_num_threads()
    out = []
    try:
        for t in threads:
            vx.set_num_threads(t)
            out.append(vx.adjoint_warp(y, u, shape, 3, mode))
    finally:
        vx.set_num_threads(n0)
    for o in out[1:]:
        np.testing.assert_array_equal(out[0], o)
    return out[0]


def stable_seed(*parts) -> int:
    """A seed that is the same in every process (Python's hash() of strings is salted per process)."""
    import zlib
    return zlib.crc32(repr(parts).encode())
