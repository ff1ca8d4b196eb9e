"""What the continuous mode tells its user: warnings (code, message, fix) and notes.

One place for the Python API (:func:`meeg_inverse.continuous.localize_continuous`) and the
command line (:mod:`meeg_inverse.continuous_file`), so that both say the same.
"""

import warnings

import numpy as np


def unfiltered_warning(raw, l_freq):
    """A warning (code, message, fix) when no high-pass applies to the windows, else None.

    Without one, each 100-ms window holds the channels' offsets and slow drifts: they
    are part of the noise level the threshold is set from (on EEGLAB's first 25 s, with
    the noise measured on them: a whitened level of 5.5 against 0.62 band-passed at
    1-40 Hz, and no window above the threshold against 43) and hide the sources.
    """
    if l_freq is not None or raw.info["highpass"] > 0:
        return None
    return {"code": "no_high_pass",
            "message": "The recording is not high-pass filtered (its high-pass is 0 Hz) and "
                       "no --l-freq was given: the channels' offsets and slow drifts stay in "
                       "every window, raise the noise level the threshold is set from, and "
                       "can hide the sources.",
            "fix": "band-pass the windows, e.g. --l-freq 1 --h-freq 40 (Python: l_freq=1, "
                   "h_freq=40), or high-pass the recording first (mne.io.Raw.filter)."}


def emit(warning, stacklevel=3):
    """Raise a (code, message, fix) warning as a :class:`RuntimeWarning` ("... Fix: ...").

    ``stacklevel=3`` names the caller of the function that calls this one.
    """
    warnings.warn(f"{warning['message']} Fix: {warning['fix']}", RuntimeWarning,
                  stacklevel=stacklevel)


def no_source_warning(summary, figures):
    """The warning (code, message, fix) of a run that kept no source in any window."""
    solved = summary["n_windows_solved"]
    why = (f"{solved} of {summary['n_windows']} windows were above the threshold, but BIC "
           "pruning kept no source in any of them" if solved else
           f"none of the {summary['n_windows']} windows was above the noise-only threshold")
    # BIC pruning weighs each source against the noise level: a lower threshold (--alpha)
    # solves more windows but keeps no more sources; the noise reference is what to check.
    fix = ("the windows do not stand out of the noise that the covariance describes: give "
           "one of a quiet segment or an empty-room recording (--noise-cov, --empty-room, or "
           "a --noise-segment without the activity: one over the activity whitens it away)."
           if solved else
           "check the noise covariance and the band (--l-freq/--h-freq); --alpha 0.5 (a "
           "fraction of each window's λ_max instead of the noise-only threshold) solves "
           "every window.")
    return {"code": "no_source",
            "message": f"No source in the recording: {why}"
                       + ("; no timeline, map or viewer was drawn." if figures else "."),
            "fix": fix}


def window_note(params, sfreq):
    """A note when the window or step used (whole samples) is not the one asked, else None.

    Parameters
    ----------
    params : dict
        :attr:`ContinuousResult.params <meeg_inverse.continuous.ContinuousResult.params>`:
        ``window`` and ``step`` asked (s), ``n_window_samples`` and ``n_step_samples`` used.
    sfreq : float
        Sampling rate (Hz).

    Returns
    -------
    note : str | None
        E.g. "windows of 13 samples (101.6 ms; 100 ms asked) and steps of 6 samples
        (46.9 ms; 50 ms asked) at 128 Hz: whole samples".
    """
    parts = []
    for what, asked, n in (("windows", params["window"], params["n_window_samples"]),
                           ("steps", params["step"], params["n_step_samples"])):
        used = int(n) / sfreq
        if not np.isclose(used, asked, rtol=1e-6, atol=0.0):
            parts.append(f"{what} of {int(n)} samples ({1e3 * used:.4g} ms; "
                         f"{1e3 * asked:.4g} ms asked)")
    if not parts:
        return None
    return f"{' and '.join(parts)} at {sfreq:g} Hz: a window and its step are whole samples"
