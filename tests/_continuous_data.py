"""Small continuous recordings for the continuous mode's tests (imported by them)."""

import mne
import numpy as np


def noise_only_eeg(sample_evoked, sample_cov, *, sfreq=200.0, seconds=6.0, offset=1.0,
                   highpass=0.0, seed=0):
    """Stationary noise of the sample's EEG noise covariance, plus a constant offset per
    channel (a recording without a high-pass) of ``offset`` times its whitened level.

    Returns
    -------
    raw : mne.io.RawArray
    cov : mne.Covariance
        The EEG channels' noise covariance the noise was drawn from.
    """
    info = sample_evoked.copy().pick("eeg", exclude="bads").info
    with info._unlock():
        info["sfreq"] = sfreq
        info["lowpass"] = sfreq / 3
        info["highpass"] = highpass
    cov = mne.pick_channels_cov(sample_cov, info.ch_names, ordered=True)
    w, v = np.linalg.eigh(cov.data)
    colorer = v * np.sqrt(np.clip(w, 0, None))
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq)
    data = colorer @ (rng.standard_normal((len(info.ch_names), n))
                      + offset * rng.standard_normal((len(info.ch_names), 1)))
    return mne.io.RawArray(data, info, verbose=False), cov
