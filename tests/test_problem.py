"""The whitened problem agrees with MNE's mixed_norm preparation on real data."""

import warnings

import mne
import numpy as np
import pytest
from mne.inverse_sparse.mxne_inverse import _prepare_gain

from meeg_inverse.errors import InputError
from meeg_inverse.problem import InverseProblem, group_norms


@pytest.mark.parametrize("threads", [None, 1])
@pytest.mark.parametrize("loose", [1.0, 0.2, 0.0])
def test_whitened_gain_and_alpha_max_match_mne(sample_evoked, sample_forward, sample_cov, loose,
                                               threads, monkeypatch):
    # The preparation runs with one BLAS thread on a busy machine (meeg_inverse._blas):
    # compared with MNE's under the same thread count. (The covariance's eigenvalues
    # span 18 orders of magnitude, and MNE's own whitener moves by ~1e-8 between one
    # and two BLAS threads.)
    from threadpoolctl import threadpool_limits

    from meeg_inverse import _blas

    monkeypatch.setattr(_blas, "blas_threads_for_load", lambda *args, **kwargs: threads)
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=loose,
                                         depth=0.8)
    with threadpool_limits(threads, user_api="blas"):
        fwd, gain, gain_info, whitener, source_weighting, _ = _prepare_gain(
            sample_forward, sample_evoked.info, sample_cov, True, 0.8, loose, None)
    sel = [sample_evoked.ch_names.index(c) for c in gain_info["ch_names"]]
    data = whitener @ sample_evoked.data[sel]
    n_orient = 1 if loose == 0 else 3
    assert problem.n_orient == n_orient
    assert problem.ch_names == gain_info["ch_names"]
    np.testing.assert_allclose(problem.gain, gain, rtol=1e-10, atol=1e-12 * np.abs(gain).max())
    np.testing.assert_allclose(problem.data, data, rtol=1e-10, atol=1e-12 * np.abs(data).max())
    np.testing.assert_allclose(problem.source_weighting, source_weighting, rtol=1e-10)
    # MNE divides the gain by 0.01 * alpha_max; lambda_max itself must agree.
    alpha_max_mne = group_norms(gain.T @ data, n_orient).max()
    assert problem.alpha_max == pytest.approx(alpha_max_mne, rel=1e-12)
    # The scaling MNE documents: ||G||_F^2 equals the covariance rank.
    assert np.linalg.norm(problem.gain) ** 2 == pytest.approx(problem.rank, rel=1e-10)


def test_to_stc_units_and_vertices(sample_evoked, sample_forward, sample_cov):
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=0.2,
                                         tmin=0.05, tmax=0.1)
    n_rows, n_times = problem.gain.shape[1], problem.data.shape[1]
    coef = np.zeros((n_rows, n_times))
    lh_source = 3
    rh_source = len(problem.forward["src"][0]["vertno"]) + 5
    coef[3 * lh_source:3 * lh_source + 3] = 1.0
    coef[3 * rh_source + 2] = 2.0
    stc = problem.to_stc(coef)
    assert isinstance(stc, mne.SourceEstimate)
    assert list(stc.vertices[0]) == [problem.forward["src"][0]["vertno"][lh_source]]
    assert list(stc.vertices[1]) == [problem.forward["src"][1]["vertno"][5]]
    weights = problem.source_weighting.reshape(-1, 3)
    expected_lh = np.linalg.norm(weights[lh_source])
    np.testing.assert_allclose(stc.data[0], expected_lh)
    np.testing.assert_allclose(stc.data[1], 2.0 * weights[rh_source, 2])
    assert stc.tmin == pytest.approx(problem.times[0])
    assert stc.data.shape[1] == n_times
    vec = problem.to_stc(coef, pick_ori="vector")
    assert isinstance(vec, mne.VectorSourceEstimate)
    np.testing.assert_allclose(np.linalg.norm(vec.data, axis=1), stc.data, rtol=1e-12)


def test_fixed_orientation_stc(sample_evoked, sample_forward, sample_cov):
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=0.0)
    coef = np.zeros((problem.gain.shape[1], problem.data.shape[1]))
    coef[7] = -1.0
    stc = problem.to_stc(coef)
    assert stc.data.shape[0] == 1
    assert np.all(stc.data < 0)  # signed amplitude along the cortical normal
    with pytest.raises(InputError, match="vector"):
        problem.to_stc(coef, pick_ori="vector")


def test_alpha_fraction_range(sample_evoked, sample_forward, sample_cov):
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=1.0)
    assert problem.alpha_from_fraction(0.5) == pytest.approx(0.5 * problem.alpha_max)
    for bad in (0.0, 1.0, 1.5, -0.1, "abc"):
        with pytest.raises(InputError, match="alpha"):
            problem.alpha_from_fraction(bad)


def test_bad_inputs_get_clear_errors(sample_evoked, sample_forward, sample_cov):
    nan_evoked = sample_evoked.copy()
    nan_evoked.data[10, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        InverseProblem.from_evoked(nan_evoked, sample_forward, sample_cov)

    # (Evoked.rename_channels would also rename the projectors of the original.)
    renamed = mne.EvokedArray(
        sample_evoked.data[:306],
        mne.create_info([f"X{k}" for k in range(306)], sample_evoked.info["sfreq"], "mag"))
    with pytest.raises(InputError, match="forward solution"):
        InverseProblem.from_evoked(renamed, sample_forward, sample_cov)

    zero_cov = sample_cov.copy()
    zero_cov["data"][:, :] = 0.0
    with pytest.raises(InputError, match="singular"):
        InverseProblem.from_evoked(sample_evoked, sample_forward, zero_cov)

    other_cov = sample_cov.copy()
    other_cov["names"] = [f"Y{k}" for k in range(len(other_cov["names"]))]
    with pytest.raises(InputError, match="covariance"):
        InverseProblem.from_evoked(sample_evoked, sample_forward, other_cov)

    with pytest.raises(InputError, match="mne.Evoked"):
        InverseProblem.from_evoked(sample_evoked.data, sample_forward, sample_cov)
    with pytest.raises(InputError, match="loose"):
        InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=2.0)
    with pytest.raises(InputError, match="time window"):
        InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, tmin=5.0, tmax=6.0)
    no_ref = sample_evoked.copy().pick("eeg")
    with no_ref.info._unlock():
        no_ref.info["projs"] = []
    with pytest.raises(InputError, match="average-reference"):
        InverseProblem.from_evoked(no_ref, sample_forward, sample_cov)


def test_uncorrected_evoked_is_flagged(sample_paths, sample_forward, sample_cov):
    # The shared averages were saved without baseline correction: whitened, their
    # pre-stimulus offsets are ~6x the noise and every method then "localizes" them.
    raw_evoked = mne.read_evokeds(sample_paths["evoked"], condition="Left Auditory",
                                  verbose=False)
    assert raw_evoked.baseline is None
    with pytest.warns(RuntimeWarning, match="not baseline-corrected.*apply_baseline"):
        InverseProblem.from_evoked(raw_evoked, sample_forward, sample_cov)
    corrected = raw_evoked.copy().apply_baseline((None, 0), verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            InverseProblem.from_evoked(corrected, sample_forward, sample_cov)
        except RuntimeWarning as w:
            assert "baseline" not in str(w), w


def test_noise_level_follows_the_number_of_averaged_trials(sample_evoked, sample_forward,
                                                           sample_cov):
    # The covariance describes one trial: the whitened baseline of an average of
    # nave trials has variance 1/nave, which is what SURE is told.
    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov)
    assert problem.nave == sample_evoked.nave == 3
    assert problem.noise_std == pytest.approx(1 / np.sqrt(3))
    baseline = problem.data[:, problem.times < 0]
    assert np.var(baseline) == pytest.approx(problem.noise_std ** 2, rel=0.2)


def test_field_cancellation_flags_opposing_neighbours(sample_evoked, sample_forward, sample_cov):
    """≈ 1 for one source; ≫ 1, with a warning naming the fix, for a pair of
    sources whose large fields nearly cancel; nan when empty."""
    from meeg_inverse.problem import FIELD_CANCELLATION_WARNING

    problem = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=1.0,
                                         tmin=0.05, tmax=0.1)
    gain = problem.gain
    n_rows, n_times = gain.shape[1], problem.data.shape[1]
    tc = np.random.default_rng(0).standard_normal(n_times)
    n_src = n_rows // 3
    # the pair (j, k) where source k's three columns best reproduce the third
    # column of source j (neighbours on the sample grid: > 90 % of its field)
    bases = np.concatenate([np.linalg.qr(gain[:, 3 * k:3 * k + 3])[0] for k in range(n_src)],
                           axis=1)
    third = gain[:, 2::3]
    explained = ((bases.T @ third) ** 2).reshape(n_src, 3, n_src).sum(axis=1) \
        / np.sum(third ** 2, axis=0)  # [k, j]
    np.fill_diagonal(explained, 0)
    k, j = np.unravel_index(np.argmax(explained), explained.shape)
    assert explained[k, j] > 0.9
    single = np.zeros((n_rows, n_times))
    single[3 * j + 2] = tc
    assert problem.field_cancellation(single) == pytest.approx(1.0)
    # source k set to cancel source j's field
    w = np.linalg.lstsq(gain[:, 3 * k:3 * k + 3], third[:, j], rcond=None)[0]
    pair = single.copy()
    pair[3 * k:3 * k + 3] = -np.outer(w, tc)
    ratio = problem.field_cancellation(pair)
    assert ratio == pytest.approx((1 + explained[k, j]) / (1 - explained[k, j]), rel=1e-6)
    assert ratio > FIELD_CANCELLATION_WARNING
    with pytest.warns(RuntimeWarning, match="cancel.*penalty='l05' or 'l21'"):
        assert problem.warn_if_cancelling(ratio, "mcp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not problem.warn_if_cancelling(1.0, "mcp")
    rows = np.any(pair != 0, axis=1)
    assert problem.field_cancellation(pair[rows], active_set=rows) == pytest.approx(ratio)
    assert np.isnan(problem.field_cancellation(np.zeros((n_rows, n_times))))
