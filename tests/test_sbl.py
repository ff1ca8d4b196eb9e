"""γ-MAP sparse Bayesian learning (meeg_inverse.solvers.sbl): agreement with MNE, fixed point."""

import numpy as np
import pytest

from meeg_inverse.solvers.sbl import gamma_map


def _problem(seed=0, n_channels=40, n_sources=30, n_orient=3, n_times=12, active=(3, 17)):
    rng = np.random.default_rng(seed)
    gain = rng.standard_normal((n_channels, n_sources * n_orient))
    coef = np.zeros((n_sources * n_orient, n_times))
    for k in active:
        coef[k * n_orient:(k + 1) * n_orient] = rng.standard_normal((n_orient, n_times)) * 3
    data = gain @ coef + rng.standard_normal((n_channels, n_times))
    return gain, data


@pytest.mark.parametrize("n_orient", [1, 3])
def test_equals_mne_gamma_map(n_orient):
    """Same estimate and active set as MNE's _gamma_map_opt (update mode 1), both
    the sensor-space (more columns than channels) and the Woodbury iterations."""
    from mne.inverse_sparse._gamma_map import _gamma_map_opt

    gain, data = _problem(n_orient=n_orient)
    ref, ref_active = _gamma_map_opt(data, gain, 1.0, maxit=10000, tol=1e-6, update_mode=1,
                                     group_size=n_orient, verbose=False)
    ours = gamma_map(gain, data, noise_var=1.0, n_orient=n_orient, tol=1e-6)
    assert ours.converged
    np.testing.assert_array_equal(np.flatnonzero(ours.active_set), ref_active)
    np.testing.assert_allclose(ours.coef[ours.active_set], ref, rtol=1e-6,
                               atol=1e-8 * np.abs(ref).max())
    # the planted sources are found
    found = set(np.flatnonzero(ours.active_set.reshape(-1, n_orient).any(1)))
    assert {3, 17} <= found


def test_fixed_point():
    """At convergence the γ satisfy the MacKay update (relative change below tol)."""
    gain, data = _problem(seed=1)
    res = gamma_map(gain, data, n_orient=3, tol=1e-10, max_iter=100000)
    assert res.converged
    again = gamma_map(gain, data, n_orient=3, tol=1e-10, gammas=res.gammas, max_iter=1)
    live = res.gammas > 1e-6 * res.gammas.max()  # the others are still decaying to 0
    np.testing.assert_allclose(again.gammas[live], res.gammas[live], rtol=1e-6)


def test_budget_and_empty():
    gain, data = _problem(seed=2)
    res = gamma_map(gain, data, n_orient=3, tol=0.0, max_iter=3)
    assert not res.converged and res.n_iter == 3
    zero = gamma_map(gain, np.zeros_like(data), n_orient=3)
    assert not zero.active_set.any() and not zero.coef.any()
    with pytest.raises(ValueError, match="multiple of n_orient"):
        gamma_map(gain[:, :-1], data, n_orient=3)
