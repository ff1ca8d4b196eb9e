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


CASES = {
    "wrong type": (lambda e, f, c: (e.data, f, c), {}, "mne"),
    "channel mismatch data/forward": (lambda e, f, c: (_renamed(e), f, c), {}, "forward"),
    "forward and covariance of different channels": (
        lambda e, f, c: (e, f, _other_cov(c)), {}, "covariance"),
    "NaN/Inf": (lambda e, f, c: (_with_nan(e), f, c), {}, "NaN or Inf"),
    "negative alpha": (lambda e, f, c: (e, f, c), {"alpha": -10}, "alpha"),
    "alpha at lambda_max": (lambda e, f, c: (e, f, c), {"alpha": 100}, "alpha"),
    "unknown penalty": (lambda e, f, c: (e, f, c), {"penalty": "l7"}, "penalty"),
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
