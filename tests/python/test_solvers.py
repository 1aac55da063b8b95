"""The C++ solvers bound to Python: BB projected gradient (bounds, split steps, line search) and
Gauss-Newton / Levenberg-Marquardt, on problems with known solutions."""
import numpy as np
import pytest

import voxalign as vx


def quadratic(n=50):
    A = np.diag(np.linspace(1, 100, n))
    A[0, 1] = A[1, 0] = 0.5
    b = np.linspace(-5, 5, n)
    return A, b, (lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b))


def test_bb_unconstrained_and_line_search():
    A, b, f = quadratic()
    for ls in (False, True):
        r = vx.bb_minimize(f, np.zeros(len(b)), max_iterations=1000, tol=1e-11, line_search=ls)
        assert r["converged"]
        np.testing.assert_allclose(r["x"], np.linalg.solve(A, b), atol=1e-9)


def test_bb_bounds_are_active_and_respected():
    A = np.diag(np.linspace(1, 100, 40))
    b = np.linspace(-5, 5, 40)
    f = lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)  # noqa: E731
    r = vx.bb_minimize(f, np.zeros(40), lower=-0.02, upper=0.03, max_iterations=500, tol=1e-12)
    ref = np.clip(np.linalg.solve(A, b), -0.02, 0.03)  # separable: the clipped solution is optimal
    np.testing.assert_allclose(r["x"], ref, atol=1e-10)
    assert r["x"].min() >= -0.02 and r["x"].max() <= 0.03


def test_bb_split_steps_help_badly_scaled_groups():
    # two groups of variables on very different scales: one step size per group
    d = np.r_[np.full(20, 1.0), np.full(20, 1e4)]
    b = np.ones(40)
    f = lambda x: (0.5 * np.sum(d * x * x) - b @ x, d * x - b)  # noqa: E731
    split = vx.bb_minimize(f, np.zeros(40), groups=np.r_[np.zeros(20), np.ones(20)], max_iterations=200, tol=1e-12)
    np.testing.assert_allclose(split["x"], b / d, rtol=1e-9)
    single = vx.bb_minimize(f, np.zeros(40), max_iterations=200, tol=1e-12)
    assert split["iterations"] <= single["iterations"]


def test_gauss_newton_rosenbrock_and_bad_callbacks():
    def ne(x):
        r = np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])
        J = np.array([[-20 * x[0], 10], [-1, 0]])
        return 0.5 * r @ r, J.T @ J, J.T @ r

    res = vx.gauss_newton(ne, [-1.2, 1.0])
    assert res["converged"]
    np.testing.assert_allclose(res["x"], [1, 1], atol=1e-10)
    with pytest.raises(ValueError, match="JtJ has 3 values"):
        vx.gauss_newton(lambda x: (0.0, np.ones(3), np.ones(2)), [0.0, 0.0])
    with pytest.raises(ValueError, match="gradient has"):
        vx.bb_minimize(lambda x: (0.0, np.ones(3)), np.zeros(2))


def test_solver_edge_cases():
    # arbitrary group ids are renumbered
    f = lambda x: (0.5 * x @ x, x)  # noqa: E731
    r = vx.bb_minimize(f, np.ones(3), groups=[2**31 - 1, 5, 5], max_iterations=50, tol=1e-12)
    np.testing.assert_allclose(r["x"], 0, atol=1e-10)
    # a NaN objective is refused at the start, and a stalled Gauss-Newton is not "converged"
    with pytest.raises(ValueError, match="not finite"):
        vx.bb_minimize(lambda x: (float("nan"), x), np.ones(2))
    res = vx.gauss_newton(lambda x: (1.0 if x[0] == 0 else float("nan"), np.eye(1), np.ones(1)), [0.0])
    assert not res["converged"]
