"""Tests of automatic λ selection by SURE (meeg_inverse.sure)."""

import numpy as np
import pytest

from meeg_inverse.sure import SureCriterion, plot_sure_curve, select_alpha

PENALTIES = ["l21", "mcp", "scad", "l05", "l23", "log", "l1"]


def _planted(n_ch=40, n_src=30, n_orient=3, n_times=6, sources=(2, 11, 20), amp=3.0, seed=0):
    rng = np.random.default_rng(seed)
    gain = rng.standard_normal((n_ch, n_src * n_orient))
    coef = np.zeros((n_src * n_orient, n_times))
    for k in sources:
        coef[k * n_orient:(k + 1) * n_orient] = amp * rng.standard_normal((n_orient, n_times))
    data = gain @ coef + rng.standard_normal((n_ch, n_times))
    return gain, data, coef


@pytest.mark.parametrize("penalty", PENALTIES)
def test_hypergradient_matches_finite_differences(penalty):
    gain, data, _ = _planted()
    crit = SureCriterion(gain, data, penalty, n_orient=3, tol=1e-12, random_state=0)
    h = 1e-4
    n_checked = 0
    for frac in (0.08, 0.15, 0.3, 0.5):
        alpha = frac * crit.alpha_max
        _, grad = crit.evaluate(alpha)
        warm = crit._warm
        supports = [np.flatnonzero(crit.last["coef"].any(1))]
        values = []
        for sign in (1, -1):
            f, _ = crit.evaluate(alpha * np.exp(sign * h), grad=False, warm=warm)
            values.append(f)
            supports.append(np.flatnonzero(crit.last["coef"].any(1)))
        if not all(np.array_equal(supports[0], s) for s in supports[1:]):
            continue  # support not locally constant: SURE is not differentiable here
        fd = (values[0] - values[1]) / (2 * h)
        assert abs(grad - fd) <= 1e-3 * max(abs(fd), 1e-8), (penalty, frac, grad, fd)
        n_checked += 1
    assert n_checked >= 3


def test_same_seed_same_criterion_and_empty_flag():
    gain, data, _ = _planted()
    a = SureCriterion(gain, data, "l21", n_orient=3, random_state=3)
    b = SureCriterion(gain, data, "l21", n_orient=3, random_state=3)
    assert np.array_equal(a.delta, b.delta)
    assert a.evaluate(0.3 * a.alpha_max)[0] == b.evaluate(0.3 * b.alpha_max)[0]
    amax = a.alpha_max
    with pytest.warns(RuntimeWarning, match="EMPTY"):
        sel = select_alpha(gain, data, "l21", 3, method="sure-grid",
                           grid=[1.5 * amax, 2.0 * amax])
    assert sel.empty and not sel.active_set.any()


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs"])
def test_hypergradient_selection_random_problem(optimizer, tmp_path):
    gain, data, coef = _planted(n_times=10, amp=1.0, seed=1)
    grid_sel = select_alpha(gain, data, "l21", 3, method="sure-grid", n_grid=30)
    sel = select_alpha(gain, data, "l21", 3, optimizer=optimizer)
    grid_a = grid_sel.curve[0]
    step = np.log(grid_a[1] / grid_a[0])
    assert abs(np.log(sel.alpha / grid_sel.alpha)) <= step * 1.01
    assert not sel.empty
    assert sel.sure <= grid_sel.sure + 1e-6 * abs(grid_sel.sure) or \
        abs(np.log(sel.alpha / grid_sel.alpha)) <= step
    assert len(sel.history["alphas"]) == len(sel.history["grads"]) >= 2
    out = plot_sure_curve(grid_sel, tmp_path / "sure.png")
    assert (tmp_path / "sure.png").stat().st_size > 1000 and str(out).endswith("sure.png")


def test_sigma_estimate_close_to_one():
    gain, data, _ = _planted(n_ch=80, n_times=20, seed=2)
    sel = select_alpha(gain, data, "l21", 3, method="sure-grid", n_grid=5, sigma="estimate")
    assert 0.8 < sel.sigma < 1.25


def test_heldout_recovers_planted_sources():
    rng = np.random.default_rng(4)
    gain, _, coef = _planted(n_times=10, amp=1.0, seed=4)
    epochs = gain @ coef + 3.0 * rng.standard_normal((20, gain.shape[0], 10))
    sel = select_alpha(gain, None, "l21", 3, method="heldout", epochs=epochs, n_grid=15)
    assert sel.curve[1].shape == (15,)
    planted = np.flatnonzero(coef.any(1))
    assert sel.active_set[planted].all()


# ---------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def sample_problem(sample_evoked, sample_forward, sample_cov):
    from meeg_inverse.problem import InverseProblem

    return InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=1.0,
                                      tmin=0.05, tmax=0.15)


def test_simulation_real_geometry(sample_problem):
    # Real gain (a 150-source subset of sample_forward, whitened), 3 planted
    # sources, N(0, 1) noise in whitened space.
    p = sample_problem
    o = p.n_orient
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(p.gain.shape[1] // o, 150, replace=False))
    gain = np.asfortranarray(p.gain.reshape(p.gain.shape[0], -1, o)[:, keep].reshape(
        p.gain.shape[0], -1))
    n_times = 8
    t = np.linspace(0, 1, n_times)
    coef = np.zeros((gain.shape[1], n_times))
    sources = [10, 70, 130]
    for i, k in enumerate(sources):
        ori = rng.standard_normal(o)
        ori /= np.linalg.norm(ori)
        blk = ori[:, None] * np.sin(np.pi * (i + 1) * t + i + 0.5)[None]
        blk *= 8.0 * np.sqrt(n_times) / np.linalg.norm(gain[:, k * o:(k + 1) * o] @ blk)
        coef[k * o:(k + 1) * o] = blk
    data = gain @ coef + rng.standard_normal((gain.shape[0], n_times))
    kw = dict(tol=1e-6, grid_range=(0.1, 0.95), bounds_fraction=(0.1, 0.95))
    grid_sel = select_alpha(gain, data, "l21", o, method="sure-grid", n_grid=30, **kw)
    sel = select_alpha(gain, data, "l21", o, **kw)
    step = np.log(grid_sel.curve[0][1] / grid_sel.curve[0][0])
    assert abs(np.log(sel.alpha / grid_sel.alpha)) <= step * 1.01, (
        sel.alpha_fraction, grid_sel.alpha_fraction, sel.sure, grid_sel.sure)
    assert 0.1 < grid_sel.alpha_fraction < 0.9  # an interior minimum, not a bound
    blocks = sel.active_set.reshape(-1, o).any(1)
    assert blocks[sources].all()


@pytest.mark.parametrize("penalty", ["l21", "l05"])
def test_real_sample_hypergradient_vs_grid(sample_problem, penalty):
    # Real gain and real (baseline-corrected) whitened evoked data, noise level
    # 1/sqrt(nave); every 12th time sample keeps it fast (the full problem is in
    # the benchmark). Not MCP/SCAD: on these data their SURE curve is jagged
    # (jumps of ~100 between neighbouring grid points, zero hypergradient where
    # every active source is unbiased), so no descent lands within one step of
    # the grid minimum (docs/sure.md, limitations).
    p = sample_problem
    data = np.ascontiguousarray(p.data[:, ::12])
    kw = dict(tol=1e-6, sigma=p.noise_std)
    grid_sel = select_alpha(p.gain, data, penalty, p.n_orient, method="sure-grid", n_grid=30,
                            **kw)
    sel = select_alpha(p.gain, data, penalty, p.n_orient, **kw)
    step = np.log(grid_sel.curve[0][1] / grid_sel.curve[0][0])
    # Within one grid step of the grid's minimum, or a lower SURE than it (the
    # curve can be flat over several steps: then the grid minimum is no better).
    assert (abs(np.log(sel.alpha / grid_sel.alpha)) <= step * 1.01
            or sel.sure <= grid_sel.sure), (
        sel.alpha_fraction, grid_sel.alpha_fraction, sel.sure, grid_sel.sure)
    assert 0.05 * 1.01 < grid_sel.alpha_fraction < 0.95 / 1.01  # interior, not a bound
    assert not sel.empty


def _planted_unequal(seed):
    rng = np.random.default_rng(seed)
    n_ch, n_src, n_times = 60, 40, 8
    base = rng.standard_normal((n_ch, n_src))
    gain = base + 0.8 * np.roll(base, 1, axis=1)  # correlated neighbours, as on a cortex
    coef = np.zeros((n_src, n_times))
    for k, amp in ((5, 3.0), (18, 1.0), (31, 0.8)):
        coef[k] = amp * np.sin(np.linspace(0, np.pi, n_times) + k)
    return gain, gain @ coef + rng.standard_normal((n_ch, n_times)), coef


def test_solve_from_convex_is_a_stationary_point():
    from meeg_inverse.penalties import make_penalty
    from meeg_inverse.solvers import alpha_max, solve_from_convex
    from meeg_inverse.solvers.convex_start import convex_start

    gain, data, _ = _planted_unequal(0)
    alpha = 0.2 * alpha_max(gain, data, 1)
    assert convex_start(make_penalty("l21", alpha)) is None
    start = convex_start(make_penalty("mcp", alpha, weights=np.full(40, 2.0)))
    assert start.alpha == alpha and np.all(start.weights == 2.0) and start.is_convex
    res = solve_from_convex(gain, data, make_penalty("mcp", alpha), n_orient=1, tol=1e-10)
    assert res.converged and res.kkt_violation < 1e-4 * np.abs(gain.T @ data).max()


def test_gradient_descent_predicted_stop_saves_the_last_evaluation():
    """On a smooth criterion the descent stops when its next step would move λ by
    less than rtol, instead of evaluating that point (two solves) to find out."""
    from meeg_inverse.sure import _gradient_descent

    x_star = np.log(0.2)
    for predicted_stop in (False, True):
        calls = []

        def fun(x):
            calls.append(x)
            return 3.0 * (x - x_star) ** 2 + 0.5 * (x - x_star) ** 4, \
                6.0 * (x - x_star) + 2.0 * (x - x_star) ** 3

        x, _, converged = _gradient_descent(fun, np.log(0.5), np.log(0.05), np.log(0.95),
                                            30, 1e-2, 1.0, predicted_stop=predicted_stop)
        assert converged
        assert abs(np.expm1(x - x_star)) < 2e-2
        if predicted_stop:
            assert len(calls) < n_plain
        else:
            n_plain = len(calls)
