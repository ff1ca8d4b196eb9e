"""Newton algebra on a support (solvers/support_newton.py) and its use in the solver."""

import numpy as np
import pytest

from meeg_inverse.penalties import block_norms, make_penalty
from meeg_inverse.solvers import alpha_max, solve
from meeg_inverse.solvers import working_set
from meeg_inverse.solvers.reference import reference_objective, reference_solve
from meeg_inverse.solvers.support_newton import SupportSystem, newton_candidate, radial_terms

PENALTIES = ["l21", "mcp", "scad", "l05", "log"]


def _dense_jacobian(gram, blocks, alphas, pen):
    """(Q ⊗ I_T + blockdiag(∇²φ(‖B_k‖))) for the row layout (block·o + orient, t)."""
    s, o, t = blocks.shape
    jac = np.kron(gram, np.eye(t))
    for k in range(s):
        b = blocks[k].ravel()
        r = np.linalg.norm(b)
        d1, d2, _ = radial_terms(pen.code, np.array([r]), np.array([alphas[k]]), pen.param)
        u = b / r
        a = d1[0] / r
        sl = slice(k * o * t, (k + 1) * o * t)
        jac[sl, sl] += a * (np.eye(o * t) - np.outer(u, u)) + d2[0] * np.outer(u, u)
    return jac


@pytest.mark.parametrize("name", PENALTIES)
def test_support_system_solves_the_dense_jacobian(name):
    rng = np.random.default_rng(1)
    s, o, t = 4, 3, 5
    gain = rng.standard_normal((20, s * o))
    gram = gain.T @ gain
    pen = make_penalty(name, 0.7)
    alphas = pen.block_alphas(s)
    # block norms on both sides of the kinks (MCP γα = 2.1, SCAD α and γα)
    blocks = rng.standard_normal((s, o, t))
    blocks *= (np.array([0.3, 1.0, 1.8, 4.0]) / np.linalg.norm(blocks, axis=(1, 2)))[:, None, None]
    system = SupportSystem(gram, blocks, alphas, pen.code, pen.param)
    rhs = rng.standard_normal((s * o, t))
    expected = np.linalg.solve(_dense_jacobian(gram, blocks, alphas, pen), rhs.ravel())
    np.testing.assert_allclose(system.solve(rhs).ravel(), expected, rtol=1e-9, atol=1e-12)


def _ill_conditioned_problem(seed=0, n_channels=40, n_blocks=30, n_times=6):
    """Smooth (strongly correlated) gain columns, like neighbouring cortical sources."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_channels)[:, None]
    centres = rng.uniform(0, 1, 3 * n_blocks)
    widths = rng.uniform(0.15, 0.3, 3 * n_blocks)
    gain = np.exp(-((x - centres) / widths) ** 2) + 0.05 * rng.standard_normal(
        (n_channels, 3 * n_blocks))
    truth = np.zeros((3 * n_blocks, n_times))
    truth[6:9] = rng.standard_normal((3, n_times)) * 3
    truth[45:48] = rng.standard_normal((3, n_times)) * 3
    data = gain @ truth + 0.3 * rng.standard_normal((n_channels, n_times))
    return np.asfortranarray(gain), data


def test_only_weakly_convex_penalties_take_newton_steps():
    assert [n for n in PENALTIES + ["l23", "l1"] if make_penalty(n, 1.0).newton_on_support] \
        == ["mcp", "scad"]


@pytest.mark.parametrize("name", ["mcp", "scad"])
def test_newton_candidate_reaches_the_stationary_point_of_the_support(name):
    """From a BCD point that has settled on its support, the damped Newton steps
    drive the support's gradient to rounding (BCD needs thousands of epochs)."""
    gain, data = _ill_conditioned_problem()
    pen = make_penalty(name, 0.1 * alpha_max(gain, data, 3))
    working_set.NEWTON_STEPS = False
    try:
        res = solve(gain, data, pen, n_orient=3, tol=1e-7)
    finally:
        working_set.NEWTON_STEPS = True
    coef = res.coef.reshape(-1, 3 * data.shape[1])
    gram = gain.T @ gain
    xty = (gain.T @ data).reshape(coef.shape)
    aux = (gram @ res.coef).reshape(coef.shape)
    alphas = pen.block_alphas(coef.shape[0])
    support, delta = newton_candidate(gram, xty, coef, aux, alphas, pen.code, pen.param, 3,
                                      max_steps=8)
    assert delta is not None
    rows = (support[:, None] * 3 + np.arange(3)).ravel()

    def support_gradient(c):
        blocks = c[rows].reshape(support.size, 3, -1)
        r = np.linalg.norm(blocks, axis=(1, 2))
        d1 = radial_terms(pen.code, r, alphas[support], pen.param)[0]
        pen_grad = ((d1 / r)[:, None, None] * blocks).reshape(rows.size, -1)
        return gain[:, rows].T @ (gain @ c - data) + pen_grad

    new = res.coef.copy()
    new[rows] += delta.reshape(rows.size, -1)
    before = np.linalg.norm(support_gradient(res.coef))
    after = np.linalg.norm(support_gradient(new))
    assert after < 1e-8 * np.linalg.norm(gain.T @ data)
    assert after < 1e-3 * before
    assert (reference_objective(gain, data, new, pen, 3)
            <= reference_objective(gain, data, res.coef, pen, 3) + 1e-9)


@pytest.mark.parametrize("name", PENALTIES)
def test_positive_definiteness_matches_the_dense_jacobian(name):
    """The |S|×|S| test says what the dense Jacobian's smallest eigenvalue says."""
    rng = np.random.default_rng(3)
    s, o, t = 3, 3, 2
    pen = make_penalty(name, 1.0)
    verdicts = []
    for trial in range(40):
        gain = rng.standard_normal((12, s * o)) * rng.uniform(0.2, 2.0)
        gram = gain.T @ gain
        blocks = rng.standard_normal((s, o, t))
        blocks *= (rng.uniform(0.05, 4.0, s) / np.linalg.norm(blocks, axis=(1, 2)))[:, None, None]
        alphas = pen.block_alphas(s)
        system = SupportSystem(gram, blocks, alphas, pen.code, pen.param)
        lowest = np.linalg.eigvalsh(_dense_jacobian(gram, blocks, alphas, pen))[0]
        if abs(lowest) < 1e-8:
            continue
        assert system.is_positive_definite() == (lowest > 0), trial
        verdicts.append(lowest > 0)
    if name != "l21":  # convex: always positive definite here
        assert any(verdicts) and not all(verdicts)  # both cases were exercised


@pytest.mark.parametrize("name", ["mcp", "scad"])
def test_solver_with_newton_is_a_reference_fixed_point_no_worse_than_plain_bcd(name):
    """With Newton steps the solver stops at a fixed point of the reference
    proximal BCD (pure NumPy) whose objective is not above plain BCD's."""
    gain, data = _ill_conditioned_problem(seed=2)
    pen = make_penalty(name, 0.08 * alpha_max(gain, data, 3))
    tol = 1e-9
    newton = solve(gain, data, pen, n_orient=3, tol=tol)
    working_set.NEWTON_STEPS = False
    try:
        plain = solve(gain, data, pen, n_orient=3, tol=tol)
    finally:
        working_set.NEWTON_STEPS = True
    assert newton.converged and newton.stop_criterion <= tol * np.sum(data ** 2)
    assert newton.n_epochs < plain.n_epochs  # the steps were taken and paid off
    # not worse than plain BCD beyond what the stopping criterion leaves open
    assert newton.objective <= plain.objective + 10 * tol * np.sum(data ** 2)
    ref, _ = reference_solve(gain, data, pen, n_orient=3, max_epochs=3, coef_init=newton.coef)
    assert (reference_objective(gain, data, ref, pen, 3)
            >= newton.objective - 10 * tol * np.sum(data ** 2))
    ref_norms = block_norms(ref.reshape(-1, 3 * data.shape[1]))
    assert np.array_equal(np.repeat(ref_norms > 1e-12 * ref_norms.max(), 3), newton.active_set)
    np.testing.assert_allclose(ref, newton.coef, atol=1e-4 * np.abs(newton.coef).max())
