"""γ-MAP candidates of the automatic rules' reporting (meeg_inverse.candidates)."""

import numpy as np
import pytest

from meeg_inverse.candidates import sbl_candidates
from meeg_inverse.subgrid import free_gain_blocks

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _two_sources(problem, rng, n_times=None):
    """Two vertex sources in different hemispheres with their own time courses, plus
    white noise at the problem's noise level (whitened units)."""
    _, hemis = problem.source_positions(np.arange(problem.n_sources))
    a = 100
    b = next(i for i in range(problem.n_sources) if hemis[i] != hemis[a])
    g = free_gain_blocks(problem, [a, b]) @ np.array([0.3, -0.5, 0.8])
    t = np.linspace(0, 4, problem.data.shape[1] if n_times is None else n_times)
    signal = np.outer(g[:, 0], np.sin(t)) + np.outer(g[:, 1], np.cos(2 * t))
    signal *= 10 / np.sqrt(np.mean(signal ** 2))  # amplitude SNR 10
    noise = np.sqrt(problem.noise_estimate.variance) * rng.standard_normal(signal.shape)
    return a, b, signal + noise


def test_candidates_are_sbl_sources_not_yet_taken(problem):
    a, b, data = _two_sources(problem, np.random.default_rng(0))
    found, coef = sbl_candidates(problem, data, set())
    assert coef.shape == (problem.gain.shape[1], data.shape[1])
    peaks = [c.peak for c in found]
    assert {a, b} <= {int(m) for c in found[:2] for m in c.members}
    # What the path's estimate holds already is left out.
    found, _ = sbl_candidates(problem, data, {int(m) for c in found if a in c.members
                                              for m in c.members})
    assert all(a not in c.members for c in found)
    assert any(b in c.members for c in found)
    assert len(peaks) >= 2


def test_time_svd_components_give_the_same_candidates(problem):
    # A recording longer than its channels is solved on its time-SVD components
    # (as many as channels): the same candidates.
    n_times = problem.n_channels + 40
    _, _, data = _two_sources(problem, np.random.default_rng(1), n_times)
    u, s, _ = np.linalg.svd(data, full_matrices=False)
    reduced = u * s
    full, _ = sbl_candidates(problem, data, set())
    assert reduced.shape[1] < n_times
    comp, _ = sbl_candidates(problem, reduced, set(), n_times=n_times)
    # (members of equal amplitude to rounding may swap places)
    assert [sorted(c.members.tolist()) for c in comp] == [sorted(c.members.tolist()) for c in full]
    assert [c.peak for c in comp] == [c.peak for c in full]
