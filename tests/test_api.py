"""The drop-in API against MNE's own mixed_norm, on the real sample data."""

import warnings

import mne
import numpy as np
import pytest

from meeg_inverse.api import SparseInverse, sparse_inverse
from meeg_inverse.problem import debias_amplitudes
from meeg_inverse.errors import InputError


@pytest.fixture(scope="module")
def evoked_window(sample_evoked):
    return sample_evoked.copy().crop(0.05, 0.15)


def _vertices(stc):
    return np.concatenate(stc.vertices)


@pytest.mark.parametrize("loose, alpha", [(1.0, 50), (0.0, 30)])
def test_same_call_as_mne_mixed_norm_same_support_and_amplitudes(evoked_window, sample_forward,
                                                                   sample_cov, loose, alpha):
    # MNE's documented call, and ours with the very same arguments.
    kwargs = dict(alpha=alpha, loose=loose, depth=0.8, tol=1e-8, debias=False, time_pca=True,
                  return_residual=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stc_mne, res_mne = mne.inverse_sparse.mixed_norm(evoked_window, sample_forward, sample_cov,
                                                         verbose=False, **kwargs)
    stc, res = sparse_inverse(evoked_window, sample_forward, sample_cov, **kwargs)
    assert type(stc) is type(stc_mne)
    np.testing.assert_array_equal(_vertices(stc), _vertices(stc_mne))
    scale = np.abs(stc_mne.data).max()
    np.testing.assert_allclose(stc.data, stc_mne.data, atol=1e-4 * scale)
    np.testing.assert_allclose(res.data, res_mne.data, atol=1e-4 * np.abs(res_mne.data).max())
    assert res.ch_names == res_mne.ch_names


def test_debias_is_the_exact_minimizer_of_mne_debias_problem():
    from mne.inverse_sparse.mxne_debiasing import compute_bias

    rng = np.random.default_rng(0)
    gain = rng.standard_normal((40, 24))
    coef = 0.3 * rng.standard_normal((24, 6))
    data = 1.7 * gain @ coef + 0.1 * rng.standard_normal((40, 6))
    for n_orient in (1, 3):
        ours = debias_amplitudes(gain, data, coef, n_orient)
        scale = compute_bias(data, gain, coef, n_orient=n_orient, max_iter=100000, tol=1e-12)
        np.testing.assert_allclose(ours, coef * scale[:, None], rtol=1e-6, atol=1e-9)


def test_return_types_like_mne(evoked_window, sample_forward, sample_cov, sample_paths):
    other = mne.read_evokeds(sample_paths["evoked"], condition="Right Auditory",
                             baseline=(None, 0), verbose=False).crop(0.05, 0.15)
    stcs = sparse_inverse([evoked_window, other], sample_forward, sample_cov, alpha=50)
    assert isinstance(stcs, list) and len(stcs) == 2
    np.testing.assert_array_equal(_vertices(stcs[0]), _vertices(stcs[1]))  # joint support
    assert stcs[0].times[0] == pytest.approx(evoked_window.times[0])

    vec = sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=50, pick_ori="vector")
    assert isinstance(vec, mne.VectorSourceEstimate)

    dipoles = sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=50,
                             return_as_dipoles=True)
    assert dipoles and all(isinstance(d, mne.Dipole) for d in dipoles)
    assert len(dipoles) == vec.data.shape[0]
    np.testing.assert_allclose(np.sort([d.amplitude.max() for d in dipoles]),
                               np.sort(np.linalg.norm(vec.data, axis=1).max(axis=1)), rtol=1e-6)

    result = sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=50,
                            penalty="mcp", return_result=True)
    assert result.alpha_percent == pytest.approx(50)
    assert result.solver_info["converged"]
    assert result.n_active_sources == result.estimates[0].data.shape[0] >= 1


def test_irmxne_support_is_within_mxne_support(evoked_window, sample_forward, sample_cov):
    kwargs = dict(alpha=40, loose=1.0, tol=1e-6, debias=False)
    stc_l21 = sparse_inverse(evoked_window, sample_forward, sample_cov, **kwargs)
    stc_ir = sparse_inverse(evoked_window, sample_forward, sample_cov, n_mxne_iter=5, **kwargs)
    assert 1 <= len(_vertices(stc_ir)) <= len(_vertices(stc_l21))
    assert np.isin(_vertices(stc_ir), _vertices(stc_l21)).all()


def test_estimator_params_and_fit(evoked_window, sample_forward, sample_cov):
    est = SparseInverse(alpha=50, penalty="l21")
    assert est.get_params()["alpha"] == 50
    est.set_params(penalty="scad", penalty_params={"gamma": 3.7})
    assert est.penalty == "scad"
    with pytest.raises(InputError, match="Unknown parameter"):
        est.set_params(lam=3)
    est.fit(evoked_window, sample_forward, sample_cov)
    assert isinstance(est.stc_, mne.SourceEstimate)
    assert est.alpha_percent_ == pytest.approx(50)
    assert "SparseInverse(" in repr(est)


@pytest.mark.parametrize("alpha", [0, 100, 150, -3, "automatic", None, True])
def test_bad_alpha(evoked_window, sample_forward, sample_cov, alpha):
    with pytest.raises(InputError, match="alpha"):
        sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=alpha)


def test_bad_inputs(evoked_window, sample_forward, sample_cov):
    with pytest.raises(InputError, match="mne.Evoked"):
        sparse_inverse(evoked_window.data, sample_forward, sample_cov, alpha=30)
    with pytest.raises(InputError, match="penalty"):
        sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=30, penalty="lasso2")
    with pytest.raises(InputError, match="tol"):
        sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=30, tol=0)
    for max_time in (0, -1, "10", True):  # an empty estimate, silently, before
        with pytest.raises(InputError, match="max_time must be a positive number"):
            sparse_inverse(evoked_window, sample_forward, sample_cov, alpha=30,
                           max_time=max_time)
    with pytest.raises(InputError, match="same channels"):
        sparse_inverse([evoked_window, evoked_window.copy().pick("eeg")], sample_forward,
                       sample_cov, alpha=30)


def test_weights_and_weights_min_like_mne(evoked_window, sample_forward, sample_cov):
    # MNE's example weights the sources with a dSPM estimate and drops weak ones.
    inverse = mne.minimum_norm.make_inverse_operator(evoked_window.info, sample_forward,
                                                     sample_cov, loose=1.0, depth=0.8,
                                                     verbose=False)
    stc_dspm = mne.minimum_norm.apply_inverse(evoked_window, inverse, lambda2=1.0 / 9,
                                              method="dSPM", verbose=False)
    kwargs = dict(alpha=40, loose=1.0, depth=0.8, tol=1e-8, debias=False, weights=stc_dspm,
                  weights_min=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stc_mne = mne.inverse_sparse.mixed_norm(evoked_window, sample_forward, sample_cov,
                                                verbose=False, **kwargs)
    stc = sparse_inverse(evoked_window, sample_forward, sample_cov, **kwargs)
    np.testing.assert_array_equal(_vertices(stc), _vertices(stc_mne))
    np.testing.assert_allclose(stc.data, stc_mne.data, atol=1e-4 * np.abs(stc_mne.data).max())


def test_epochs_and_raw_entry_points(sample_paths, sample_forward, sample_cov):
    from meeg_inverse import localize_epochs, localize_raw

    raw = mne.io.read_raw_fif(sample_paths["raw"], verbose=False).load_data()
    raw.pick(["meg", "eeg", "stim"]).filter(1.0, 40.0, verbose=False)
    # The raw file is Maxwell-filtered: its noise covariance must be too (issue 18).
    sample_cov = mne.compute_raw_covariance(raw, rank="info", verbose=False)
    stc = localize_raw(raw, sample_forward, sample_cov, raw.times[0] + 0.2,
                       raw.times[0] + 0.4, alpha=50, loose=1.0)
    assert isinstance(stc, mne.SourceEstimate) and stc.data.shape[0] >= 1
    assert stc.tmin == pytest.approx(raw.times[0] + 0.2, abs=1e-2)
    with pytest.raises(InputError, match="window"):
        localize_raw(raw, sample_forward, sample_cov, 5.0, 2.0, alpha=50)

    events = mne.make_fixed_length_events(raw, duration=0.3)
    epochs = mne.Epochs(raw, events, tmin=-0.1, tmax=0.2, baseline=(None, 0), preload=True,
                        verbose=False)
    stc = localize_epochs(epochs, sample_forward, sample_cov, alpha=50, loose=1.0)
    assert isinstance(stc, mne.SourceEstimate) and stc.data.shape[0] >= 1
    with pytest.raises(InputError, match="mne.Epochs"):
        localize_epochs(raw, sample_forward, sample_cov)


def test_signature_is_a_superset_of_mne_mixed_norm():
    # Every argument of MNE's mixed_norm exists here, with the same default — except
    # alpha, whose default is the rule chosen for "which few sources" (issue 14,
    # docs/studies/); alpha='sure' keeps MNE's meaning.
    import inspect

    theirs = inspect.signature(mne.inverse_sparse.mixed_norm).parameters
    ours = inspect.signature(sparse_inverse).parameters
    missing = [name for name in theirs if name not in ours]
    assert not missing, f"mixed_norm arguments sparse_inverse lacks: {missing}"
    differ = {name: (theirs[name].default, ours[name].default) for name in theirs
              if theirs[name].default is not ours[name].default
              and theirs[name].default != ours[name].default}
    assert differ == {"alpha": ("sure", "auto")}, \
        f"defaults that differ from mixed_norm (MNE's, ours): {differ}"
    for extra in ("penalty", "penalty_params", "return_result"):
        assert extra in ours


@pytest.fixture(scope="module")
def volume_forward(sample_paths, evoked_window):
    """A coarse (20 mm) volume source space in the inner skull, real 3-layer BEM."""
    vsrc = mne.setup_volume_source_space(
        "sample", pos=20.0, subjects_dir=sample_paths["subjects_dir"],
        surface=sample_paths["subjects_dir"] / "sample" / "bem" / "inner_skull.surf",
        add_interpolator=False, verbose=False)
    return mne.make_forward_solution(evoked_window.info, sample_paths["trans"], vsrc,
                                     sample_paths["bem"], meg=True, eeg=True, verbose=False)


def test_volume_source_space_gives_vol_source_estimate_like_mne(evoked_window, volume_forward,
                                                                 sample_cov):
    kwargs = dict(alpha=70, loose=1.0, depth=0.8, tol=1e-8, debias=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stc_mne = mne.inverse_sparse.mixed_norm(evoked_window, volume_forward, sample_cov,
                                                verbose=False, **kwargs)
    stc = sparse_inverse(evoked_window, volume_forward, sample_cov, **kwargs)
    assert isinstance(stc, mne.VolSourceEstimate) and type(stc) is type(stc_mne)
    assert len(stc.vertices) == 1 and len(stc.vertices[0]) >= 1
    assert np.isin(stc.vertices[0], volume_forward["src"][0]["vertno"]).all()
    np.testing.assert_array_equal(stc.vertices[0], stc_mne.vertices[0])
    np.testing.assert_allclose(stc.data, stc_mne.data, atol=1e-4 * np.abs(stc_mne.data).max())
    vec = sparse_inverse(evoked_window, volume_forward, sample_cov, pick_ori="vector", **kwargs)
    assert isinstance(vec, mne.VolVectorSourceEstimate)
    np.testing.assert_allclose(np.linalg.norm(vec.data, axis=1), stc.data, rtol=1e-6)


@pytest.mark.slow
def test_result_object_carries_lambda_sure_and_convergence(evoked_window, sample_forward,
                                                           sample_cov):
    result = sparse_inverse(evoked_window.copy().crop(0.09, 0.1), sample_forward, sample_cov,
                            alpha="sure", return_result=True)
    assert 0 < result.alpha_percent < 100
    assert result.alpha == pytest.approx(result.alpha_percent / 100 * result.alpha_max, rel=1e-9)
    assert result.sure is not None and np.isfinite(result.sure)
    assert result.selection is not None and result.selection.sure == pytest.approx(result.sure)
    assert result.solver_info["converged"]
    assert isinstance(result.estimates[0], mne.SourceEstimate)
    assert result.n_active_sources == result.estimates[0].data.shape[0] >= 1
    assert 0 < result.explained_variance <= 1


def test_window_measures_the_noise_on_the_baseline(sample_evoked, sample_forward, sample_cov):
    """tmin/tmax: the automatic λ's noise level is measured on the whole evoked's baseline
    (as the CLI's --tmin/--tmax); the evoked cropped first has none: the nominal 1/nave is
    assumed, and said (it was silent)."""
    whole = sparse_inverse(sample_evoked, sample_forward, sample_cov, tmin=0.05, tmax=0.15,
                           return_result=True)
    assert whole.noise.source == "baseline" and whole.noise.n_samples >= 10
    stc = whole.estimates[0]
    assert stc.times[0] == pytest.approx(0.05, abs=0.002)
    assert stc.times[-1] == pytest.approx(0.15, abs=0.002)
    cropped = sample_evoked.copy().crop(0.05, 0.15)
    with pytest.warns(RuntimeWarning, match="no pre-stimulus baseline.*tmin/tmax"):
        nominal = sparse_inverse(cropped, sample_forward, sample_cov, return_result=True)
    assert nominal.noise.source == "nominal"
    assert nominal.noise.variance == pytest.approx(1 / sample_evoked.nave)
    with warnings.catch_warnings():  # a fixed α needs no noise level: nothing said
        warnings.simplefilter("error", RuntimeWarning)
        sparse_inverse(cropped, sample_forward, sample_cov, alpha=50)
    with pytest.raises(InputError, match="one evoked"):
        sparse_inverse([sample_evoked, sample_evoked], sample_forward, sample_cov, tmin=0.05)
