"""Noise level from the baseline, AR(1) redraws, and the per-source confidence."""

import mne
import numpy as np
import pytest

from meeg_inverse.clusters import cluster_confidence, cluster_sources, minor_clusters
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


def _confidence(gain, data, reported, positions, noise, epochs=None, fraction=None):
    """Confidence of single-source clusters at ``reported`` (L2,1 at ``fraction`` of λ_max)."""
    from meeg_inverse.clusters import cluster_sources

    clusters = cluster_sources(reported, positions[reported], np.ones(len(reported)))
    if fraction is None:  # the fraction at which the reported sources were solved
        fraction = 0.5
    return cluster_confidence(gain, data, clusters, penalty="l21", alpha_fraction=fraction,
                              n_orient=1, positions=positions, hemis=None,
                              amplitude_scale=np.ones(gain.shape[1]), noise=noise,
                              epochs=epochs, n_resamples=20), clusters


def test_clusters_group_neighbours_strongest_first_per_hemisphere():
    positions = np.array([[0, 0, 0], [0.010, 0, 0], [0.030, 0, 0], [0.005, 0, 0], [0.1, 0, 0]])
    amps = np.array([1.0, 3.0, 2.0, 0.5, 0.1])
    hemis = ["lh", "lh", "lh", "rh", "lh"]
    clusters = cluster_sources(np.arange(5), positions, amps, hemis)
    # 1 (strongest) takes 0 and 2 (10 and 20 mm away, same hemisphere), not 3 (other hemisphere)
    assert [c.members.tolist() for c in clusters] == [[1, 2, 0], [3], [4]]
    first = clusters[0]
    assert first.weights == pytest.approx(np.array([9, 4, 1]) / 14)
    assert first.centroid == pytest.approx(first.weights @ positions[[1, 2, 0]])
    assert first.amplitude == pytest.approx(np.sqrt(14))
    kept, minor = minor_clusters(clusters)
    # 0.1 and 0.5 are below 0.2 x sqrt(14) = 0.75
    assert [c.peak for c in kept] == [1] and sorted(c.peak for c in minor) == [3, 4]


def _one_strong_source():
    """The toy problem with one strong source (row 10) in noise, and its noise estimate."""
    rng = np.random.default_rng(1)
    gain, positions, n_times = _toy(rng)
    noise = NoiseEstimate(0.01, 0.0, 0.01, 0, "x")
    truth = np.zeros((gain.shape[1], n_times))
    truth[10] = 3.0 * np.sin(np.linspace(0, 3, n_times))
    data = gain @ truth + draw_noise(rng, (gain.shape[0], n_times), noise)
    return gain, positions, n_times, data, noise


def test_confidence_of_a_strong_source_is_high_and_of_noise_low():
    from meeg_inverse.solvers import solve

    gain, positions, n_times, data, noise = _one_strong_source()
    conf, _ = _confidence(gain, data, [10], positions, noise)
    assert conf[0] >= 0.9

    # Noise only: the strongest noise sources (what a rule that always keeps one
    # reports) are not confirmed above the noise level.
    for seed in range(5):
        pure = draw_noise(np.random.default_rng(100 + seed), (gain.shape[0], n_times), noise)
        amax = np.sqrt(((gain.T @ pure) ** 2).sum(1)).max()
        res = solve(gain, pure, make_penalty("l21", 0.85 * amax), n_orient=1, tol=1e-8)
        reported = np.flatnonzero(res.active_set)
        assert reported.size
        conf, _ = _confidence(gain, pure, reported, positions, noise, fraction=0.85)
        assert conf.max() < 0.9


def _trials_of_one_source():
    """12 trials of the toy problem with one source (row 30), and their noise estimate."""
    rng = np.random.default_rng(2)
    gain, positions, n_times = _toy(rng)
    truth = np.zeros((gain.shape[1], n_times))
    truth[30] = 2.0
    epochs = np.stack([gain @ truth + 0.3 * rng.standard_normal((gain.shape[0], n_times))
                       for _ in range(12)])
    return gain, positions, epochs, NoiseEstimate(0.09 / 12, 0.0, 0.09 / 12, 0, "x")


def test_confidence_resamples_trials_when_given():
    gain, positions, epochs, noise = _trials_of_one_source()
    conf, _ = _confidence(gain, epochs.mean(0), [30, 70], positions, noise, epochs=epochs)
    assert conf[0] == 1.0 and conf[1] < 0.5


def test_confidence_noise_threshold_is_that_of_the_resampled_trials(monkeypatch):
    """With trials, each subsample's data are trial averages of the trials' length:
    the noise-only threshold is for that many samples, not for the columns of
    ``data`` (the estimate's time-SVD components, fewer: found on EEGLAB's recording,
    29 components of 65 samples, where the threshold was 0.111 instead of 0.150)."""
    from meeg_inverse import rules

    asked = []
    real = rules.quantile_universal_threshold

    def recording(gain, n_times, *args, **kw):
        asked.append(n_times)
        return real(gain, n_times, *args, **kw)

    monkeypatch.setattr(rules, "quantile_universal_threshold", recording)
    gain, positions, epochs, noise = _trials_of_one_source()
    n_times = epochs.shape[2]
    u, s, _ = np.linalg.svd(epochs.mean(0), full_matrices=False)
    components = (u * s)[:, :8]  # fewer columns than the trials' 20 samples
    _confidence(gain, components, [30], positions, noise, epochs=epochs)
    assert asked == [n_times]
    _confidence(gain, components, [30], positions, noise)  # no trials: data's own
    assert asked == [n_times, 8]


def test_confidence_stops_at_its_time_budget():
    """A small alpha makes each resample slow: the confidence's solves share one time
    budget (the solve's max_time), and say how many resamples they used."""
    gain, positions, _, data, noise = _one_strong_source()
    clusters = cluster_sources([10], positions[[10]], np.ones(1))
    common = dict(penalty="l21", alpha_fraction=0.5, n_orient=1, positions=positions,
                  hemis=None, amplitude_scale=np.ones(gain.shape[1]), noise=noise,
                  n_resamples=20)
    with pytest.warns(RuntimeWarning, match="used 0 of 20 resamples"):
        spent = cluster_confidence(gain, data, clusters, max_time=0.0, **common)
    assert spent.tolist() == [0.0]
    # A budget that is not reached changes nothing.
    assert (cluster_confidence(gain, data, clusters, max_time=300.0, **common)
            == cluster_confidence(gain, data, clusters, **common)).all()
