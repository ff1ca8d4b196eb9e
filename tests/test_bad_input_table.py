"""The bad-input table: every public entry point × every kind of bad input.

Each case must raise :class:`meeg_inverse.InputError` (a ``ValueError``) whose
message names the problem and carries a fix, never an error from deep inside
numpy or MNE.
"""

import mne
import numpy as np
import pytest

from meeg_inverse import InputError, SparseInverse, localize_epochs, localize_raw, sparse_inverse
from meeg_inverse.pipeline import localize


@pytest.fixture(scope="module")
def good(sample_evoked, sample_forward, sample_cov):
    return sample_evoked.copy().crop(0.08, 0.1), sample_forward, sample_cov


def _epochs_of(evoked):
    data = np.repeat(evoked.data[None], 3, axis=0)
    return mne.EpochsArray(data, evoked.info, tmin=evoked.times[0], verbose=False)


def _raw_of(evoked):
    return mne.io.RawArray(np.tile(evoked.data, 4), evoked.info, verbose=False)


# Entry points, each called with (evoked, forward, cov, **kwargs); alpha in its own unit.
ENTRY_POINTS = {
    "sparse_inverse": lambda e, f, c, **kw: sparse_inverse(e, f, c, **{"alpha": 50, **kw}),
    "SparseInverse.fit": lambda e, f, c, **kw: SparseInverse(**{"alpha": 50, **kw}).fit(e, f, c),
    "localize_epochs": lambda e, f, c, **kw: localize_epochs(
        _epochs_of(e) if isinstance(e, mne.Evoked) else e, f, c, **{"alpha": 50, **kw}),
    "localize_raw": lambda e, f, c, **kw: localize_raw(
        _raw_of(e) if isinstance(e, mne.Evoked) else e, f, c, 0.0, 0.02, **{"alpha": 50, **kw}),
    "pipeline.localize": lambda e, f, c, **kw: localize(
        e, f, c, **{"alpha": 0.5, **{k: (v / 100 if k == "alpha" and not isinstance(v, str)
                                         else v) for k, v in kw.items()}}),
}


def _with_nan(evoked):
    bad = evoked.copy()
    bad.data[3, 2] = np.inf
    return bad


def _renamed(evoked):
    info = mne.create_info([f"X{k}" for k in range(306)], evoked.info["sfreq"], "mag")
    return mne.EvokedArray(evoked.data[:306], info, tmin=evoked.times[0])


def _other_cov(cov):
    other = cov.copy()
    other["names"] = [f"Y{k}" for k in range(len(other["names"]))]
    return other


def _eeg_only_cov(cov):
    return mne.pick_channels_cov(cov, [c for c in cov["names"] if c.startswith("EEG")],
                                 verbose=False)


def _meg_only_forward(fwd):
    return mne.pick_types_forward(fwd, meg=True, eeg=False)


CASES = {
    "wrong type": (lambda e, f, c: (e.data, f, c), {}, "mne"),
    "channel mismatch data/forward": (lambda e, f, c: (_renamed(e), f, c), {}, "forward"),
    "forward and covariance of different channels": (
        lambda e, f, c: (e, f, _other_cov(c)), {}, "covariance"),
    "forward of the wrong type": (lambda e, f, c: (e, "fwd.fif", c), {},
                                  "forward must be an mne.Forward, got str"),
    "covariance of the wrong type": (lambda e, f, c: (e, f, c.data), {},
                                     "noise_cov must be an mne.Covariance, got ndarray"),
    "NaN/Inf": (lambda e, f, c: (_with_nan(e), f, c), {}, "NaN or Inf"),
    "negative alpha": (lambda e, f, c: (e, f, c), {"alpha": -10}, "alpha"),
    "alpha at lambda_max": (lambda e, f, c: (e, f, c), {"alpha": 100}, "alpha"),
    "unknown penalty": (lambda e, f, c: (e, f, c), {"penalty": "l7"}, "penalty"),
    # A whole channel type of the recording lost: refused (MNE leaves it out with a log
    # line; the command line refuses it too, unless --allow-missing-types).
    "covariance without the MEG": (
        lambda e, f, c: (e, f, _eeg_only_cov(c)), {},
        r"All gradiometer and magnetometer channels of the recording would be left out "
        r"\(not in the noise covariance\)"),
    "forward without the EEG": (
        lambda e, f, c: (e, _meg_only_forward(f), c), {},
        r"All EEG channels of the recording would be left out \(not in the forward"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_bad_input_table(good, entry, case):
    make_args, kwargs, message = CASES[case]
    if entry in ("localize_epochs", "localize_raw") and case == "wrong type":
        args = ("not data", good[1], good[2])  # the recording itself is of the wrong type
    else:
        args = make_args(*good)
    with pytest.raises(InputError, match=message) as excinfo:
        ENTRY_POINTS[entry](*args, **kwargs)
    assert "Fix:" in str(excinfo.value)


def test_empty_data_is_refused(good):
    evoked, fwd, cov = good
    empty = evoked.copy()
    empty.data[:] = 0.0
    with pytest.raises(InputError, match="zero"):
        sparse_inverse(empty, fwd, cov, alpha=50)
    with pytest.raises(InputError, match="time window"):
        localize(evoked, fwd, cov, alpha=0.5, tmin=10.0, tmax=11.0)


def test_lost_channel_type_fix_names_the_pick(good):
    evoked, fwd, cov = good
    with pytest.raises(InputError) as excinfo:
        sparse_inverse(evoked, fwd, _eeg_only_cov(cov), alpha=50)
    assert "evoked.copy().pick(['eeg'])" in str(excinfo.value)
    # The fix works: the channels picked, the same covariance is accepted.
    sparse_inverse(evoked.copy().pick("eeg"), fwd, _eeg_only_cov(cov), alpha=50)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_lost_channel_type_is_localized_when_allowed(good, entry, monkeypatch):
    """``allow_missing_types=True`` (the command line's --allow-missing-types): every
    entry point localizes the refused case above with the channels of the other types."""
    from meeg_inverse import operator

    evoked, fwd, cov = good
    made = []
    real = operator.make_sparse_inverse_operator
    monkeypatch.setattr(operator, "make_sparse_inverse_operator",
                        lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    ENTRY_POINTS[entry](evoked, _meg_only_forward(fwd), cov, allow_missing_types=True)
    [op] = made
    meg = mne.pick_types(evoked.info, meg=True, eeg=False, exclude="bads")
    assert op.ch_names == [evoked.ch_names[k] for k in meg]
    assert set(op.info.get_channel_types()) == {"grad", "mag"}
    if entry == "sparse_inverse":  # the covariance's side: its EEG only
        sparse_inverse(evoked, fwd, _eeg_only_cov(cov), alpha=50, allow_missing_types=True)
        assert set(made[-1].info.get_channel_types()) == {"eeg"}


def test_depth_above_one_warns_as_mne_accepts_it(good):
    """MNE documents the depth exponent in [0, 1] but computes any value: a drop-in
    accepts it, with a warning; None, 0 and dicts stay silent (tests/test_mne_dropin.py)."""
    evoked, fwd, cov = good
    with pytest.warns(RuntimeWarning, match=r"depth=5 is above 1: MNE documents"):
        sparse_inverse(evoked, fwd, cov, alpha=50, depth=5)
    import warnings

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sparse_inverse(evoked, fwd, cov, alpha=50, depth=dict(exp=0.8, limit=None))
    assert not [w for w in record if "depth" in str(w.message)]
    with pytest.raises(InputError, match="depth"):
        localize(evoked, fwd, cov, depth=-1)


def test_prestimulus_window_warns(sample_evoked, sample_forward, sample_cov):
    """A window before the stimulus localizes noise: warned (mixed_norm accepts it; the
    command line refuses it unless --allow-prestimulus)."""
    with pytest.warns(RuntimeWarning, match="lies entirely before the stimulus"):
        sparse_inverse(sample_evoked.copy().crop(-0.1, -0.02), sample_forward, sample_cov,
                       alpha=50)
    with pytest.warns(RuntimeWarning, match="lies entirely before the stimulus"):
        localize(sample_evoked, sample_forward, sample_cov, alpha=0.5, tmin=-0.1,
                 tmax=-0.02)


def test_window_in_milliseconds_is_hinted(good, sample_evoked):
    _, fwd, cov = good
    with pytest.raises(InputError, match=r"did you mean 0.05–0.15 s \(50–150 ms\)"):
        localize(sample_evoked, fwd, cov, alpha=0.5, tmin=50, tmax=150)


def test_vector_with_fixed_orientation_refused_before_solving(good, monkeypatch):
    import meeg_inverse.solve

    def no_solve(*args, **kwargs):
        raise AssertionError("solved before refusing")

    monkeypatch.setattr(meeg_inverse.solve, "solve_inverse", no_solve)
    evoked, fwd, cov = good
    with pytest.raises(InputError, match="needs loose or free orientation"):
        localize(evoked, fwd, cov, alpha=0.5, loose=0, pick_ori="vector")


def _write(tmp_path, evoked):
    fname = tmp_path / "two-ave.fif"
    mne.write_evokeds(fname, evoked, verbose=False)
    epochs = _epochs_of(evoked)
    epochs.event_id = {"Left Auditory": 1}
    epo = tmp_path / "one-epo.fif"
    epochs.save(epo, verbose=False)
    return fname, epo


def test_load_data_refuses_epoch_options_it_cannot_apply(good, tmp_path):
    from meeg_inverse.pipeline import load_data

    ave, epo = _write(tmp_path, good[0])
    with pytest.raises(InputError, match="--epoch-tmin only applies .* holds averages"):
        load_data(ave, epoch_tmin=-0.1)
    with pytest.raises(InputError, match="--reject only applies .* holds averages"):
        load_data(ave, reject=dict(eeg=1e-4))
    with pytest.raises(InputError, match="--events only applies .* holds epochs already cut"):
        load_data(epo, events=np.array([[0, 0, 1]]))
    # An event code picks its condition; --reject applies to epochs.
    loaded = load_data(epo, condition=1, reject=dict(eeg=1.0))
    assert loaded.evoked.comment == "Left Auditory" and loaded.evoked.nave == 3
    with pytest.raises(InputError, match="--reject dropped all 3 epochs"):
        load_data(epo, reject=dict(eeg=1e-12))


def test_empty_room_for_eeg_only_refused(good):
    from meeg_inverse.pipeline import LoadedData, load_noise_cov

    eeg = good[0].copy().pick("eeg")
    with pytest.raises(InputError, match="no MEG channel"):
        load_noise_cov(None, LoadedData(evoked=eeg, conditions=["x"]),
                       empty_room="never-read_raw.fif")
