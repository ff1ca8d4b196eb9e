"""Noise level from the baseline, AR(1) redraws, and the per-source confidence."""

import mne
import numpy as np
import pytest

from meeg_inverse.confidence import source_confidence
from meeg_inverse.noise import NoiseEstimate, baseline_noise, draw_noise
from meeg_inverse.penalties import make_penalty


def _evoked(data, tmin, nave):
    info = mne.create_info([f"c{k}" for k in range(data.shape[0])], 100.0, "eeg")
    return mne.EvokedArray(data, info, tmin=tmin, nave=nave, verbose=False)


def test_baseline_noise_measures_level_and_autocorrelation():
    rng = np.random.default_rng(0)
    truth = NoiseEstimate(0.5, 0.6, 0.25, 0, "x")
    data = draw_noise(rng, (50, 400), truth)
    ev = _evoked(data, -3.0, nave=4)
    noise = baseline_noise(ev, np.eye(50), ev.ch_names)
    assert noise.source == "baseline" and noise.n_samples == 300
    assert noise.variance == pytest.approx(0.5, rel=0.05)
    assert noise.autocorrelation == pytest.approx(0.6, abs=0.03)
    assert noise.nominal_variance == 0.25 and noise.ratio_to_nominal == pytest.approx(2, rel=0.05)


def test_baseline_noise_falls_back_to_nominal_without_baseline():
    ev = _evoked(np.ones((3, 40)), 0.05, nave=8)  # starts after the stimulus
    noise = baseline_noise(ev, np.eye(3), ev.ch_names)
    assert noise.source == "nominal" and noise.variance == 1 / 8 and noise.autocorrelation == 0


def _toy(rng, n_ch=60, n_src=80, n_times=20):
    gain = rng.standard_normal((n_ch, n_src))
    gain /= np.linalg.norm(gain, axis=0)
    positions = np.column_stack([np.arange(n_src) * 0.02, np.zeros(n_src), np.zeros(n_src)])
    return gain, positions, n_times


def test_confidence_of_a_strong_source_is_high_and_of_noise_low():
    from meeg_inverse.solvers import solve

    rng = np.random.default_rng(1)
    gain, positions, n_times = _toy(rng)
    noise = NoiseEstimate(0.01, 0.0, 0.01, 0, "x")
    truth = np.zeros((gain.shape[1], n_times))
    truth[10] = 3.0 * np.sin(np.linspace(0, 3, n_times))
    data = gain @ truth + draw_noise(rng, (gain.shape[0], n_times), noise)
    conf = source_confidence(gain, data, [10], 1, positions, noise=noise, n_redraws=20)
    assert conf[0] >= 0.9

    # Noise only: the strongest noise sources (what a rule that always keeps one
    # reports) are not found again above the noise level.
    for seed in range(5):
        pure = draw_noise(np.random.default_rng(100 + seed), (gain.shape[0], n_times), noise)
        amax = np.sqrt(((gain.T @ pure) ** 2).sum(1)).max()
        res = solve(gain, pure, make_penalty("l21", 0.85 * amax), n_orient=1, tol=1e-8)
        reported = np.flatnonzero(res.active_set)
        assert reported.size
        conf = source_confidence(gain, pure, reported, 1, positions, noise=noise, n_redraws=20)
        assert conf.max() < 0.9


def test_confidence_resamples_trials_when_given():
    rng = np.random.default_rng(2)
    gain, positions, n_times = _toy(rng)
    truth = np.zeros((gain.shape[1], n_times))
    truth[30] = 2.0
    epochs = np.stack([gain @ truth + 0.3 * rng.standard_normal((gain.shape[0], n_times))
                       for _ in range(12)])
    noise = NoiseEstimate(0.09 / 12, 0.0, 0.09 / 12, 0, "x")
    conf = source_confidence(gain, epochs.mean(0), [30, 70], 1, positions, noise=noise,
                             epochs=epochs, n_redraws=15)
    assert conf[0] == 1.0 and conf[1] < 0.5
