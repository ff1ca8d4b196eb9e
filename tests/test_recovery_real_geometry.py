"""Known sources simulated on the real 'sample' head are recovered with λ chosen by SURE.

Real MEG+EEG forward model (3-layer BEM) and real noise covariance; the
simulation and scoring are those of ``scripts/validate_simulation.py`` (the
full study is in ``docs/validation.md``). A few seconds per penalty.
"""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "validate_simulation.py"
SNR = 3.0
TRIALS = range(6)  # 1, 2, 3, 1, 2, 3 sources


@pytest.fixture(scope="module")
def study(sample_evoked, sample_cov, sample_forward):
    spec = importlib.util.spec_from_file_location("validate_simulation", SCRIPT)
    vs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vs)
    sim = vs.Simulator(sample_evoked, sample_cov, sample_forward)
    trials = [sim.trial(3000 + t, SNR, n_sources=1 + t % 3) for t in TRIALS]
    return vs, sim, trials


def _scores(study, penalty):
    from meeg_inverse import sparse_inverse

    vs, sim, trials = study
    scores = []
    for evoked, truth in trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stc = sparse_inverse(evoked, sim.fwd, sim.cov, alpha="sure", penalty=penalty,
                                 pick_ori="vector", random_state=0)
        idx, amp, tcs = vs._from_stc(sim, stc)
        scores.append(vs.score_trial(truth["pos"], sim.pos[idx], truth["amp"], amp,
                                     truth["tc"], tcs))
    return scores


@pytest.fixture(scope="module")
def l21_scores(study):
    return _scores(study, "l21")


def test_l21_finds_the_sources(l21_scores):
    assert sum(s["all_found"] for s in l21_scores) >= 5


@pytest.mark.parametrize("penalty", ["mcp", "l05"])
def test_nonconvex_finds_the_sources_with_fewer_false_ones(study, l21_scores, penalty):
    scores = _scores(study, penalty)
    # every true source within 10 mm in at least 5 of the 6 trials ...
    assert sum(s["all_found"] for s in scores) >= 5, [s["err_true_mm"] for s in scores]
    # ... with fewer estimated sources than L2,1 and most of them true ones
    assert sum(s["n_est"] for s in scores) < sum(s["n_est"] for s in l21_scores)
    assert np.mean([s["precision"] for s in scores]) >= 0.8
    # amplitudes of the sources found are close to the truth (debiased)
    bias = [s["amp_bias"] for s in scores if np.isfinite(s["amp_bias"])]
    assert np.median(np.abs(bias)) < 0.2
