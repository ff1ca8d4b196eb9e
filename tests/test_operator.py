"""The prepared operator: file round trip, same estimates as sparse_inverse, budgets."""

import time
import warnings

import numpy as np
import pytest

from meeg_inverse import sparse_inverse
from meeg_inverse.errors import InputError
from meeg_inverse.operator import make_sparse_inverse_operator, read_sparse_inverse_operator
from meeg_inverse.problem import InverseProblem, debias_amplitudes
from meeg_inverse.solve import ALPHA_FRACTION_FLOOR, solve_inverse


@pytest.fixture(scope="module")
def evoked_window(sample_evoked):
    return sample_evoked.copy().crop(0.05, 0.15)


@pytest.fixture(scope="module")
def operator(evoked_window, sample_forward, sample_cov):
    from meeg_inverse._blas import one_blas_thread

    # One BLAS thread, as the comparisons below: otherwise the thread count follows
    # the machine's load (meeg_inverse._blas) and the whitener moves by ~1e-8.
    with one_blas_thread():
        return make_sparse_inverse_operator(evoked_window.info, sample_forward, sample_cov,
                                            loose=1.0, depth=0.8)


def test_operator_does_not_copy_or_modify_the_forward(evoked_window, sample_forward, sample_cov):
    before = sample_forward["sol"]["data"].copy()
    op = make_sparse_inverse_operator(evoked_window.info, sample_forward, sample_cov, loose=1.0)
    assert op.gain.flags.f_contiguous
    assert op._sensor_gain is sample_forward["sol"]["data"]  # a reference, not a copy
    np.testing.assert_array_equal(sample_forward["sol"]["data"], before)
    assert np.linalg.norm(op.gain) ** 2 == pytest.approx(op.rank, rel=1e-10)


def test_operator_round_trips_through_a_file(operator, evoked_window, tmp_path):
    fname = tmp_path / "op-inv.h5"
    operator.save(fname)
    with pytest.raises(InputError, match="exists"):
        operator.save(fname)
    back = read_sparse_inverse_operator(fname)
    for name in ("gain", "whitener", "source_weighting", "source_nn"):
        np.testing.assert_array_equal(getattr(back, name), getattr(operator, name))
    assert back.ch_names == operator.ch_names
    assert (back.n_orient, back.loose, back.depth, back.rank) == \
        (operator.n_orient, operator.loose, operator.depth, operator.rank)
    np.testing.assert_array_equal(back.mri_head_t["trans"], operator.mri_head_t["trans"])
    assert [len(s["vertno"]) for s in back.src] == [len(s["vertno"]) for s in operator.src]
    cols = np.array([0, 7, 100])
    np.testing.assert_array_equal(back.sensor_gain(cols), operator.sensor_gain(cols))
    # The estimate (and its residual) from the file equals the one in memory.
    kwargs = dict(alpha=40, tol=1e-8, return_residual=True)
    stc_a, res_a = operator.apply(evoked_window, **kwargs)
    stc_b, res_b = back.apply(evoked_window, **kwargs)
    np.testing.assert_array_equal(stc_a.data, stc_b.data)
    np.testing.assert_allclose(res_a.data, res_b.data, rtol=1e-12, atol=1e-25)
    with pytest.raises(InputError, match="not a meeg-inverse operator"):
        (tmp_path / "junk.h5").write_text("junk")
        read_sparse_inverse_operator(tmp_path / "junk.h5")


@pytest.mark.parametrize("alpha", [40, "sure"])
def test_operator_apply_equals_sparse_inverse(operator, evoked_window, sample_forward,
                                              sample_cov, alpha):
    from meeg_inverse._blas import one_blas_thread

    kwargs = dict(alpha=alpha, tol=1e-8, return_residual=True, return_result=True)
    # One BLAS thread for both calls: the thread count otherwise follows the
    # machine's load (meeg_inverse._blas), which moves the last bits between them.
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore")
        ours = sparse_inverse(evoked_window, sample_forward, sample_cov, loose=1.0, depth=0.8,
                              **kwargs)
        applied = operator.apply(evoked_window, **kwargs)
    assert applied.alpha == ours.alpha
    np.testing.assert_array_equal(applied.active_set, ours.active_set)
    np.testing.assert_array_equal(applied.estimates[0].data, ours.estimates[0].data)
    np.testing.assert_array_equal(applied.residuals[0].data, ours.residuals[0].data)


def test_operator_applied_to_a_second_evoked(operator, evoked_window, sample_paths):
    import mne

    other = mne.read_evokeds(sample_paths["evoked"], condition="Right Auditory",
                             baseline=(None, 0), verbose=False).crop(0.05, 0.15)
    gain_before = operator.gain
    p1, p2 = operator.problem(evoked_window), operator.problem(other)
    assert p1.gain is gain_before and p2.gain is gain_before  # shared, not rebuilt
    assert not np.allclose(p1.data, p2.data)
    stc = operator.apply(other, alpha=40)
    assert stc.data.shape[1] == len(other.times)
    with pytest.raises(InputError, match="lacks"):
        operator.problem(other.copy().drop_channels(other.ch_names[:2]))


def _debias_bvls_dense(gain, data, coef, n_orient):
    """The former dense BVLS on the stacked fields F_k = G_k X_k (reference)."""
    from scipy.optimize import lsq_linear

    n_active = coef.shape[0] // n_orient
    columns = np.stack([(gain[:, k * n_orient:(k + 1) * n_orient]
                         @ coef[k * n_orient:(k + 1) * n_orient]).ravel()
                        for k in range(n_active)], axis=1)
    scale = lsq_linear(columns, data.ravel(), bounds=(1.0, np.inf), method="bvls").x
    return coef * np.repeat(scale, n_orient)[:, None]


@pytest.mark.parametrize("n_orient", [1, 3])
def test_gram_debias_equals_dense_bvls(n_orient):
    rng = np.random.default_rng(1)
    gain = rng.standard_normal((60, 30))
    coef = 0.3 * rng.standard_normal((30, 8))
    # Some sources under-estimated (scale > 1), some not (bound active at 1).
    truth = coef * np.repeat(rng.choice([0.5, 1.0, 2.0], 30 // n_orient), n_orient)[:, None]
    data = gain @ truth + 0.05 * rng.standard_normal((60, 8))
    ours = debias_amplitudes(gain, data, coef, n_orient)
    ref = _debias_bvls_dense(gain, data, coef, n_orient)
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-12)
    assert np.any(np.isclose(ours / np.where(coef == 0, 1, coef), 1.0))  # some at the bound


def test_gram_debias_equals_dense_bvls_on_real_support(sample_evoked, sample_forward,
                                                       sample_cov):
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=1.0,
                                         tmin=0.05, tmax=0.15)
    sol = solve_inverse(problem, alpha=0.2, debias=False)
    gain = problem.gain[:, sol.active_set]
    ours = debias_amplitudes(gain, problem.data, sol.coef_active, 3)
    ref = _debias_bvls_dense(gain, problem.data, sol.coef_active, 3)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())


def test_tiny_alpha_returns_within_budget_not_converged(sample_evoked, sample_forward,
                                                        sample_cov):
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=1.0)
    budget = 2.0
    t0 = time.perf_counter()
    with pytest.warns(RuntimeWarning) as record:
        sol = solve_inverse(problem, alpha=1e-3, tol=1e-10, max_time=budget)
    elapsed = time.perf_counter() - t0
    messages = " ".join(str(w.message) for w in record)
    assert "is small" in messages and "time budget" in messages
    assert sol.solver_info["converged"] is False
    assert sol.solver_info["stop_criterion"] > 1e-10  # the criterion it reached, reported
    assert sol.solver_info["max_time_s"] == budget
    # Stops at the first check past the budget (plus debiasing), not minutes later.
    assert elapsed < budget + 30
    with pytest.raises(InputError, match="floor"):
        solve_inverse(problem, alpha=ALPHA_FRACTION_FLOOR / 10)
    with pytest.raises(InputError, match="floor"):
        sparse_inverse(sample_evoked, sample_forward, sample_cov, alpha=1e-10)


def test_one_rank_estimate_serves_the_whitener_and_the_rank_check(evoked_window, sample_cov):
    # The operator estimates the covariance's rank once (in MNE's prepare_noise_cov)
    # and the consistency check reads it from the prepared covariance: it must be
    # what mne.compute_rank estimates with the data's and the covariance's projectors.
    import mne

    from meeg_inverse.consistency import check_rank_consistency
    from meeg_inverse.operator import _prepared_rank

    info = evoked_window.info
    ch_names = [c for c in info["ch_names"] if c not in info["bads"]
                and c in sample_cov["names"]
                and mne.channel_type(info, info["ch_names"].index(c)) in ("mag", "grad", "eeg")]
    picked = mne.pick_info(info, [info["ch_names"].index(c) for c in ch_names])
    prepared = mne.cov.prepare_noise_cov(sample_cov, info, ch_names, None, verbose=False)
    shared = _prepared_rank(prepared, picked)
    with_projs = picked.copy()
    known = {p["desc"] for p in with_projs["projs"]}
    with with_projs._unlock():
        with_projs["projs"] = list(with_projs["projs"]) + [
            p for p in sample_cov["projs"] if p["desc"] not in known]
    estimated = mne.compute_rank(mne.pick_channels_cov(sample_cov, ch_names, ordered=True,
                                                       verbose=False),
                                 rank=None, info=with_projs, verbose=False)
    assert shared == estimated == {"meg": 303, "eeg": 59}
    # The check uses the rank it is given: one far above the data's is refused.
    assert check_rank_consistency(info, sample_cov, ch_names, cov_rank=shared) == {
        "meg": (303, 303), "eeg": (59, 59)}
    with pytest.raises(InputError, match="rank 400 on the MEG"):
        check_rank_consistency(info, sample_cov, ch_names, cov_rank={"meg": 400, "eeg": 59})


def test_blas_threads_follow_the_machine_load(monkeypatch):
    # One BLAS thread once the load average fills every core (threaded OpenBLAS
    # then waits for its slowest thread), BLAS's own default otherwise.
    import os

    from meeg_inverse import _blas

    assert _blas.blas_threads_for_load(load=0.3, n_cpus=2) is None
    assert _blas.blas_threads_for_load(load=1.9, n_cpus=2) is None
    assert _blas.blas_threads_for_load(load=2.0, n_cpus=2) == 1
    assert _blas.blas_threads_for_load(load=9.0, n_cpus=16) is None
    assert _blas.blas_threads_for_load(load=50.0, n_cpus=1) is None  # nothing to limit
    with monkeypatch.context() as m:  # pinned: one thread whatever the load
        m.setenv(_blas.PIN_ENV, "1")
        assert _blas.blas_threads_for_load(load=0.3, n_cpus=2) == 1

    seen = []

    @_blas.load_aware
    def threads_inside():
        from threadpoolctl import threadpool_info

        seen.append({d["num_threads"] for d in threadpool_info()
                     if d["user_api"] == "blas"})

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    threads_inside()
    assert seen[-1] == {1}
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    threads_inside()
    from threadpoolctl import threadpool_info

    assert seen[-1] == {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}


def test_block_diagonal_whitening_equals_one_product():
    """The per-block whitening (MNE's whitener is block-diagonal by channel type) gives
    the product over all channels, also when the channels' forward rows are not in
    the whitener's order (padded blocks) and for a full whitener (one product)."""
    from meeg_inverse.operator import _whiten_gain, _whitener_blocks

    rng = np.random.default_rng(0)
    n_fwd, n_cols = 9, 12
    sol = np.asfortranarray(rng.standard_normal((n_fwd, n_cols)))
    whitener = np.zeros((6, 7))  # rows 0-3 on channels 0-4, rows 4-5 on channels 5-6
    whitener[:4, :5] = rng.standard_normal((4, 5))
    whitener[4:, 5:] = rng.standard_normal((2, 2))
    assert [(b[0].start, b[0].stop, b[1].start, b[1].stop)
            for b in _whitener_blocks(whitener)] == [(0, 4, 0, 5), (4, 6, 5, 7)]
    assert _whitener_blocks(rng.standard_normal((6, 7))) is None
    for rows in (np.arange(1, 8), np.array([8, 0, 3, 1, 6, 2, 5])):
        gain = _whiten_gain(sol, rows, whitener)[0]
        assert gain.flags.f_contiguous
        np.testing.assert_allclose(gain, whitener @ sol[rows], rtol=1e-13, atol=1e-13)
    full = rng.standard_normal((6, 7))
    np.testing.assert_allclose(_whiten_gain(sol, np.arange(7), full)[0], full @ sol[:7],
                               rtol=1e-13, atol=1e-13)


def test_solver_reuses_lambda_max_correlation(evoked_window, sample_forward, sample_cov):
    """The problem's YᵀG (from λ_max) as the solver's first product, and the
    operator's block eigendecompositions: the same solution as without them."""
    from meeg_inverse.solvers import solve

    problem = InverseProblem.from_evoked(evoked_window, sample_forward, sample_cov, loose=1.0)
    assert problem.data_correlation.shape == (problem.data.shape[1], problem.gain.shape[1])
    alpha = 0.3 * problem.alpha_max
    plain = solve(problem.gain, problem.data, "l21", alpha=alpha, n_orient=3, tol=1e-8)
    reused = solve(problem.gain, problem.data, "l21", alpha=alpha, n_orient=3, tol=1e-8,
                   data_correlation=problem.data_correlation,
                   block_eigh=problem.operator.block_eigh())
    np.testing.assert_array_equal(reused.active_set, plain.active_set)
    np.testing.assert_allclose(reused.coef, plain.coef, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="data_correlation"):
        solve(problem.gain, problem.data, "l21", alpha=alpha, n_orient=3,
              data_correlation=problem.data_correlation[:, :-3])
