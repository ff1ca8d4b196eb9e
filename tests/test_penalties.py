"""Block penalties: closed-form proxes against a numerical prox, values, errors."""

import numpy as np
import pytest

from meeg_inverse.penalties import PENALTIES, make_penalty
from meeg_inverse.solvers.reference import numeric_radial_prox, radial_value

RADIAL = ["l21", "mcp", "scad", "l05", "l23", "log"]


def _prox_objective(pen, x, z, step, alpha):
    return (x - z) ** 2 / (2 * step) + float(radial_value(pen, x, alpha))


@pytest.mark.parametrize("name", RADIAL)
@pytest.mark.parametrize("step", [0.1, 1.0, 4.0])
def test_radial_prox_is_global_minimiser(name, step):
    """The closed-form/Newton prox reaches the numerical global minimum."""
    alpha = 1.3
    pen = make_penalty(name, alpha)
    rng = np.random.default_rng(0)
    # dense around the thresholds, where the non-convex proxes jump
    zs = np.concatenate([rng.uniform(0, 8 * alpha * max(step, 1), 200),
                         np.linspace(0.5, 3.0, 60) * alpha * step])
    for z in zs:
        block = np.array([z, 0.0, 0.0])
        ours = pen.prox(block, step)
        assert np.all(np.isfinite(ours))
        x_ours = np.linalg.norm(ours)
        x_num = numeric_radial_prox(pen, z, step, alpha)
        h_ours = _prox_objective(pen, x_ours, z, step, alpha)
        h_num = _prox_objective(pen, x_num, z, step, alpha)
        assert h_ours <= h_num + 1e-9 * (1 + abs(h_num)), (z, x_ours, x_num)


def test_l1_prox_is_soft_thresholding():
    pen = make_penalty("l1", 0.5)
    block = np.array([[1.0, -0.2], [-2.0, 0.4]])
    np.testing.assert_allclose(pen.prox(block, 2.0), [[0.0, 0.0], [-1.0, 0.0]])


@pytest.mark.parametrize("name", RADIAL + ["l1"])
def test_prox_of_zero_block_is_zero(name):
    """The radial prox divides by ‖B‖: a zero block must not give NaN."""
    pen = make_penalty(name, 1.0)
    with np.errstate(all="raise"):
        out = pen.prox(np.zeros((3, 4)), 0.7)
    assert np.array_equal(out, np.zeros((3, 4)))


@pytest.mark.parametrize("name", ["l21", "l1", "mcp", "scad", "log"])
def test_subdiff_distance_vanishes_at_prox_output(name):
    """B = prox_{s p}(Z) ⇔ (Z − B)/s ∈ ∂p(B), i.e. distance 0 for ∇ = (B − Z)/s."""
    pen = make_penalty(name, 1.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        z = rng.standard_normal((3, 5)) * 2
        step = 0.3
        b = pen.prox(z, step)
        assert pen.subdiff_distance(b, (b - z) / step) < 1e-10
        assert pen.fixed_point_score(b, (b - z) / step, 1 / step) < 1e-10


def test_fixed_point_score_detects_nonzero_candidates_for_lq():
    """Subdifferential distance is 0 at zero for Lq; the fixed-point score is not."""
    pen = make_penalty("l05", 1.0)
    grad = np.array([-10.0, 0.0, 0.0])
    assert pen.subdiff_distance(np.zeros(3), grad) == 0.0
    assert pen.fixed_point_score(np.zeros(3), grad, 1.0) > 1.0


def test_values_and_support():
    coef = np.zeros((6, 2))
    coef[3:6] = [[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]]
    assert make_penalty("l21", 2.0).value(coef, 3) == pytest.approx(10.0)
    assert make_penalty("l1", 2.0).value(coef, 3) == pytest.approx(14.0)
    assert make_penalty("l05", 2.0).value(coef, 3) == pytest.approx(2 * np.sqrt(5))
    mcp = make_penalty("mcp", 1.0, gamma=2.0)
    assert mcp.value(coef, 3) == pytest.approx(1.0)  # above γα the MCP is flat: γα²/2
    w = make_penalty("weighted_l21", 2.0, weights=np.array([1.0, 3.0]))
    assert w.value(coef, 3) == pytest.approx(30.0)
    assert make_penalty("l21", 1.0).support(coef, 3).tolist() == [False] * 3 + [True] * 3
    assert make_penalty("log", 1.0, eps=0.5).value(np.array([0.0, 5.0])) == pytest.approx(
        np.log1p(10.0))


def test_bad_penalty_parameters():
    with pytest.raises(ValueError, match="valid names are: l21, weighted_l21, l1"):
        make_penalty("lasso", 1.0)
    with pytest.raises(ValueError, match="alpha"):
        make_penalty("l21", 0.0)
    with pytest.raises(ValueError, match="alpha"):
        make_penalty("mcp", -1.0)
    with pytest.raises(ValueError, match="gamma"):
        make_penalty("scad", 1.0, gamma=1.5)
    with pytest.raises(ValueError, match="weights"):
        make_penalty("weighted_l21", 1.0)
    with pytest.raises(ValueError, match="weights"):
        make_penalty("l21", 1.0, weights=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="bad parameters"):
        make_penalty("l21", 1.0, gamma=3.0)
    assert set(PENALTIES) >= {"l21", "weighted_l21", "l1", "mcp", "scad", "l05", "l23",
                              "log", "irmxne"}


@pytest.mark.parametrize("name, q", [("l05", 0.5), ("l23", 2.0 / 3.0)])
def test_lq_closed_form_prox_matches_numerical(name, q):
    """Half / two-thirds thresholding (cubic / Ferrari closed forms) against the
    grid + golden-section minimiser and the generic Newton iteration, over
    regularisations and steps spanning 6 decades, dense around the jump."""
    from meeg_inverse.penalties import CODE_LQ, scalar_prox

    rng = np.random.default_rng(3)
    for _ in range(300):
        alpha, step = 10 ** rng.uniform(-3, 3), 10 ** rng.uniform(-3, 3)
        # the prox jumps from 0 at z = thr: L0.5 (54^(1/3)/4)(2 step alpha)^(2/3)
        # (Xu et al. 2012), L2/3 (2/3)(3 (2 step alpha)^3)^(1/4) (Cao et al. 2013)
        lam = 2 * step * alpha
        thr = (54 ** (1 / 3) / 4 * lam ** (2 / 3) if q == 0.5
               else 2 / 3 * (3 * lam ** 3) ** 0.25)
        z = thr * rng.choice([rng.uniform(0.5, 1.5), 10 ** rng.uniform(-1, 2)])
        pen = make_penalty(name, alpha)
        x = np.linalg.norm(pen.prox(np.array([z, 0.0]), step))
        assert (x > 0) == (z > thr * (1 + 1e-12)) or abs(z / thr - 1) < 1e-9, (z, thr, x)
        x_num = numeric_radial_prox(pen, z, step, alpha)
        h, h_num = (_prox_objective(pen, v, z, step, alpha) for v in (x, x_num))
        assert h <= h_num + 1e-9 * (1 + abs(h_num)), (z, x, x_num)
        # generic Newton path (q perturbed by one ulp so the closed form is not used)
        x_newton = scalar_prox(CODE_LQ, z, alpha, np.nextafter(q, 1.0), step)
        if x > 0 and x_newton > 0:
            np.testing.assert_allclose(x, x_newton, rtol=1e-9)


def test_metric_block_minimiser_is_exact_for_l21():
    """The exact L2,1 block step (secular equation in the eigenbasis of the
    block Gram matrix) minimises ½ bᵀ(A⊗I)b − cᵀb + α‖b‖: its gradient
    condition holds to rounding and no random nearby point does better;
    it returns zero exactly when ‖c‖ ≤ α (the subdifferential test)."""
    from meeg_inverse.penalties import CODE_L21, block_prox_metric, has_metric_prox

    assert has_metric_prox(CODE_L21) and not has_metric_prox(make_penalty("mcp", 1.0).code)
    rng = np.random.default_rng(7)
    n_times = 4
    for trial in range(200):
        # anisotropic 3x3 Gram blocks (radial MEG sensitivity is weak), condition up to 1e4
        v, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        e = np.sort(10 ** rng.uniform(-2, 2, 3))
        a_mat = (v * e) @ v.T
        c = rng.standard_normal((3, n_times)) * 10 ** rng.uniform(-1, 1)
        alpha = np.linalg.norm(c) * rng.uniform(0.05, 1.3)
        out = np.empty(3 * n_times)
        nonzero = block_prox_metric(CODE_L21, (v.T @ c).ravel(), e, alpha, n_times, out)
        b = v @ out.reshape(3, n_times)

        def objective(x):
            return 0.5 * np.sum(x * (a_mat @ x)) - np.sum(c * x) + alpha * np.linalg.norm(x)

        assert nonzero == (np.linalg.norm(c) > alpha)
        if nonzero:
            # stationarity: A b − c + α b/‖b‖ = 0
            resid = a_mat @ b - c + alpha * b / np.linalg.norm(b)
            assert np.linalg.norm(resid) <= 1e-9 * (np.linalg.norm(c) + alpha), trial
        else:
            assert not b.any()
        f_b = objective(b)
        for _ in range(20):
            x = b + 1e-3 * (1 + np.linalg.norm(b)) * rng.standard_normal(b.shape)
            assert objective(x) >= f_b - 1e-12 * (1 + abs(f_b))


def test_metric_block_minimiser_degenerate_blocks():
    """Rank-deficient block Gram matrices (zero eigenvalues) and regularisations down
    to 1e-300 (found by the property test: gain [[1, 1, 1]], α = 6e-140) give a
    finite minimiser with nothing along the directions the gain does not see (where
    c only holds rounding), never a division by zero."""
    from meeg_inverse.penalties import CODE_L21, block_prox_metric

    for e in (np.array([0.0, 0.0, 3.0]), np.array([0.0, 1e-300, 1.0]), np.zeros(3)):
        seen = e > 1e-12 * e.max()
        for alpha in (6.2e-140, 1e-300, 0.5, 10.0):
            c = np.where(seen, np.array([1.0, -2.0, 0.5]), 1e-16)  # rounding off range(A)
            out = np.empty(3)
            nonzero = block_prox_metric(CODE_L21, c.copy(), e, alpha, 1, out)
            assert np.all(np.isfinite(out)) and not out[~seen].any()
            assert nonzero == (np.linalg.norm(c[seen]) > alpha)
            if nonzero:  # stationarity on the seen directions: e b − c + α b/‖b‖ = 0
                b = out[seen]
                resid = e[seen] * b - c[seen] + alpha * b / np.linalg.norm(b)
                assert np.linalg.norm(resid) <= 1e-9 * (np.linalg.norm(c) + alpha)


@pytest.mark.parametrize("name", sorted(set(PENALTIES) - {"irmxne"}))  # irMxNE: a strategy
@pytest.mark.parametrize("n_orient", [1, 3])
def test_correlation_scores_match_block_layout_helpers(name, n_orient):
    """The outer loop's one-pass scores from ``RᵀG`` equal the block-layout helpers."""
    from meeg_inverse.penalties import (
        correlation_scores,
        dual_ratios,
        optimality_scores,
        penalty_value,
    )

    rng = np.random.default_rng(1)
    n_blocks, n_times = 23, 5
    kwargs = {"weights": rng.uniform(0.5, 2, n_blocks)} if name == "weighted_l21" else {}
    pen = make_penalty(name, 0.7, **kwargs)
    corr_t = rng.standard_normal((n_times, n_blocks * n_orient))
    coef = rng.standard_normal((n_blocks, n_orient * n_times))
    support = rng.random(n_blocks) < 0.4
    coef[~support] = 0.0
    lips = rng.uniform(0.5, 3, n_blocks)
    lips[3] = 0.0  # an all-zero gain column
    support[3], coef[3] = False, 0.0
    alphas = pen.block_alphas(n_blocks)
    grad = np.ascontiguousarray(-corr_t.T).reshape(n_blocks, -1)
    scores, ratios, grad_ratios, value = correlation_scores(
        pen.code, pen.param, corr_t, coef, support, alphas, lips, pen.uses_fixed_point,
        n_orient)
    np.testing.assert_allclose(scores, optimality_scores(
        pen.code, coef, grad, alphas, pen.param, lips, pen.uses_fixed_point), rtol=1e-12)
    np.testing.assert_allclose(ratios, dual_ratios(pen.code, grad, alphas), rtol=1e-12)
    assert value == pytest.approx(penalty_value(pen.code, coef, alphas, pen.param), rel=1e-12)
    expected = np.linalg.norm(grad, axis=1) / alphas
    expected[3] = -1.0
    np.testing.assert_allclose(grad_ratios, expected, rtol=1e-12)
    # Zero blocks take a one-norm shortcut: also with an excluded (α = ∞) and an
    # unpenalised (α = 0) zero block, the same values as the helpers.
    zero_blocks = np.flatnonzero(~support)
    alphas = alphas.copy()
    alphas[zero_blocks[-1]], alphas[zero_blocks[-2]] = np.inf, 0.0
    scores, ratios, _, _ = correlation_scores(
        pen.code, pen.param, corr_t, coef, support, alphas, lips, pen.uses_fixed_point,
        n_orient)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(scores, optimality_scores(
            pen.code, coef, grad, alphas, pen.param, lips, pen.uses_fixed_point), rtol=1e-12)
        np.testing.assert_allclose(ratios, dual_ratios(pen.code, grad, alphas), rtol=1e-12)


def test_dual_ratio_of_an_unpenalised_block():
    """α_k = 0 (a weight times α that underflowed): ratio ∞, or 0 for a zero gradient,
    never a ZeroDivisionError inside numba (found by the property test: irMxNE with
    gain [[2.7e-132]], α = 1e-300)."""
    from meeg_inverse.penalties import CODE_L1, CODE_L21, block_dual_ratio
    from meeg_inverse.solvers import solve

    for code in (CODE_L21, CODE_L1):
        assert block_dual_ratio(code, np.array([1.0, -2.0]), 0.0) == np.inf
        assert block_dual_ratio(code, np.zeros(2), 0.0) == 0.0
        assert block_dual_ratio(code, np.array([3.0, 4.0]), np.inf) == 0.0
    res = solve(np.array([[2.7465838e-132]]), np.array([[1.0]]), "irmxne", alpha=1e-300,
                tol=1e-4, max_iter=20)
    assert np.isfinite(res.coef).all()
