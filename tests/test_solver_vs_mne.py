"""Same objective and support as MNE's own MxNE / irMxNE solvers on real data."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from meeg_inverse.solvers import irmxne, solve
from meeg_inverse.solvers.mne_compat import mne_mixed_norm_problem


def _l21_objective(gain, data, coef, alpha, n_orient):
    norms = np.linalg.norm(coef.reshape(coef.shape[0] // n_orient, -1), axis=1)
    return 0.5 * np.sum((data - gain @ coef) ** 2) + alpha * norms.sum()


def _dense(x_active, active_set, n_times):
    coef = np.zeros((active_set.size, n_times))
    coef[active_set] = x_active
    return coef


@pytest.fixture(scope="module")
def evoked(sample_evoked):
    return sample_evoked.copy().crop(0.05, 0.15)


@pytest.mark.parametrize("orientation", ["free", "fixed"])
def test_l21_matches_mne_mixed_norm_solver(sample_forward, evoked, sample_cov, orientation):
    import mne
    from mne.inverse_sparse.mxne_optim import mixed_norm_solver

    if orientation == "free":
        gain, data, n_orient = mne_mixed_norm_problem(sample_forward, evoked, sample_cov,
                                                      loose=1.0)
        assert n_orient == 3
    else:
        fwd = mne.convert_forward_solution(sample_forward, surf_ori=True, force_fixed=True,
                                           verbose=False)
        gain, data, n_orient = mne_mixed_norm_problem(fwd, evoked, sample_cov, loose=0.0)
        assert n_orient == 1
    alpha = 40.0
    norm_y2 = np.sum(data ** 2)
    with threadpool_limits(limits=1, user_api="blas"):  # small BLAS calls: 1 thread
        x_mne, as_mne, _ = mixed_norm_solver(data, gain, alpha, n_orient=n_orient,
                                             tol=1e-10 * norm_y2, maxit=20000,
                                             debias=False, active_set_size=10,
                                             verbose=False)
    coef_mne = _dense(x_mne, as_mne, data.shape[1])
    obj_mne = _l21_objective(gain, data, coef_mne, alpha, n_orient)

    res = solve(gain, data, "l21", alpha=alpha, n_orient=n_orient, tol=1e-10)
    assert res.converged
    assert abs(res.objective - obj_mne) <= 1e-6 * obj_mne
    assert res.objective == pytest.approx(_l21_objective(gain, data, res.coef, alpha, n_orient),
                                          rel=1e-12)
    # MNE's support may keep exact-zero rows inside an active block; compare blocks
    blocks_mne = np.abs(coef_mne).reshape(-1, n_orient * data.shape[1]).max(1) > 0
    blocks_ours = res.active_set[::n_orient]
    assert np.array_equal(blocks_ours, blocks_mne)
    np.testing.assert_allclose(res.coef, coef_mne, atol=1e-4 * np.abs(coef_mne).max())


def test_irmxne_matches_mne(sample_forward, evoked, sample_cov):
    from mne.inverse_sparse.mxne_optim import iterative_mixed_norm_solver

    gain, data, n_orient = mne_mixed_norm_problem(sample_forward, evoked, sample_cov)
    # MNE's irMxNE is slow at tight tolerances (~4 min at 1e-10, 5 iterations)
    alpha, n_iter = 40.0, 3
    tol = 1e-8
    with threadpool_limits(limits=1, user_api="blas"):
        x_mne, as_mne, _ = iterative_mixed_norm_solver(
            data, gain, alpha, n_iter, maxit=20000, tol=tol * np.sum(data ** 2),
            n_orient=n_orient, debias=False, active_set_size=10, verbose=False)
    coef_mne = _dense(x_mne, as_mne, data.shape[1])
    res = irmxne(gain, data, alpha, n_orient=n_orient, n_iter=n_iter, tol=tol)
    norms = np.linalg.norm(coef_mne.reshape(-1, n_orient * data.shape[1]), axis=1)
    obj_mne = 0.5 * np.sum((data - gain @ coef_mne) ** 2) + alpha * np.sqrt(norms).sum()
    assert np.array_equal(res.active_set[::n_orient], norms > 0)
    assert res.objective == pytest.approx(obj_mne, rel=1e-5)
