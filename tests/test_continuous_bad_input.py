"""Bad input to the continuous mode: one InputError naming the problem, before any work."""

import mne
import numpy as np
import pytest

from meeg_inverse import InputError
from meeg_inverse.continuous import localize_continuous


@pytest.fixture(scope="module")
def tiny_raw():
    """2 s of 4-channel EEG at 100 Hz (never solved: every case fails in the checks)."""
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 100.0, "eeg")
    return mne.io.RawArray(np.random.default_rng(0).standard_normal((4, 200)) * 1e-6, info,
                           verbose=False)


@pytest.mark.parametrize("kw, named", [
    (dict(window=True), "window"),          # a bool is not a number of seconds
    (dict(n_jobs=True), "n_jobs"),
    (dict(l_freq="1"), "l_freq"),           # was a numpy TypeError
    (dict(h_freq="40"), "h_freq"),
    (dict(tmin="0"), "tmin"),               # was a UFuncTypeError
    (dict(tmax=[1.0]), "tmax"),
    (dict(level="0.99"), "level"),          # was a TypeError
    (dict(noise_segment="0,1"), "noise_segment"),   # was "too many values to unpack"
    (dict(noise_segment=(0,)), "noise_segment"),
    (dict(noise_segment=("a", "b")), "noise_segment"),
    (dict(fname=3), "fname"),               # was a TypeError from pathlib
    (dict(penalty="nope"), "penalty"),      # was accepted silently (no window solved)
    (dict(penalty="weighted_l21"), "penalty"),  # needs weights the mode has no way to take
    (dict(tol="x"), "tol"),                 # was accepted silently
    (dict(tol=2.0), "tol"),
    (dict(max_time="x"), "max_time"),       # was accepted silently
    (dict(max_time=-1.0), "max_time"),
    (dict(warm_start="no"), "warm_start"),
    (dict(random_state="0"), "random_state"),
])
def test_wrong_types_get_one_clear_error(tiny_raw, kw, named):
    with pytest.raises(InputError, match=named) as info:
        localize_continuous(tiny_raw, None, None, **kw)
    assert info.value.fix  # names the fix, too
