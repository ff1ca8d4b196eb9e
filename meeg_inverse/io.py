"""Loading recordings and noise covariances through MNE.

Everything here returns plain MNE objects; the rest of the pipeline never reads
files itself.
"""

import re
import warnings
from pathlib import Path

import mne
import numpy as np

from ._choices import recording_kind  # noqa: F401 (MNE's naming; the launcher reads it too)
from .errors import InputError


def _existing_file(fname, what):
    """Return ``fname`` as a Path, or raise a clear error if it is not a file."""
    if fname is None:
        raise InputError(f"No {what} was given.", f"pass the path of the {what}.")
    path = Path(fname).expanduser()
    if not path.exists():
        raise InputError(f"The {what} {str(path)!r} does not exist.", "check the path.")
    if path.is_dir():
        if path.suffix.lower() in (".ds", ".mff"):  # formats stored as folders
            return path
        raise InputError(
            f"The {what} {str(path)!r} is a folder, not a file.",
            f"give the path of the {what} file inside it.",
        )
    if not path.is_file():
        import stat

        mode = path.stat().st_mode
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device")
        raise InputError(f"The {what} {str(path)!r} is {kind}, not a file.",
                         f"give the path of the {what} file itself.")
    try:
        with open(path, "rb") as fid:
            first = fid.read(1)
    except PermissionError:
        raise InputError(f"The {what} {str(path)!r} cannot be read: permission denied.",
                         "check the file's permissions (ls -l), or copy it somewhere you "
                         "can read it.") from None
    except OSError as exc:
        raise InputError(f"The {what} {str(path)!r} cannot be read: {exc.strerror}.",
                         "check the file and the disk it is on.") from None
    if not first:
        raise InputError(f"The {what} {str(path)!r} is empty (0 bytes).",
                         "the file was not fully written or copied: write or copy it again.")
    return path


def _existing_dir(dirname, what):
    """Return ``dirname`` as a Path, or raise a clear error if it is not a folder."""
    path = Path(dirname).expanduser()
    if not path.is_dir():
        raise InputError(f"The {what} {str(path)!r} is not an existing folder.", "check the path.")
    return path


def _read_failed(path, what, exc, hint):
    return InputError(
        f"Could not read the {what} {str(path)!r}: {type(exc).__name__}: {exc}",
        hint,
    )


def read_recording(fname, *, verbose=False):
    """Read a recording in any format MNE reads.

    Parameters
    ----------
    fname : path-like
        A raw recording (FIF, EDF/BDF, BrainVision, EEGLAB, CTF, ...), an
        epochs file (``-epo.fif``) or an evoked file (``-ave.fif``).
    verbose : bool
        Passed to MNE.

    Returns
    -------
    inst : mne.io.Raw | mne.Epochs | list of mne.Evoked
        Raw recordings are preloaded.
    """
    path = _existing_file(fname, "recording")
    kind = recording_kind(path)
    try:
        if kind == "evoked":
            inst = mne.read_evokeds(path, verbose=verbose)
        elif kind == "epochs":
            inst = mne.read_epochs(path, preload=True, verbose=verbose)
        else:
            inst = mne.io.read_raw(path, preload=True, verbose=verbose)
    except Exception as exc:  # MNE raises many types for unreadable files
        hint = (
            "check that the file is complete and in a format MNE reads "
            "(https://mne.tools/stable/auto_tutorials/io/index.html); "
            "MNE decides the format from the extension, so a file must have the "
            "extension of its real format."
        )
        raise _read_failed(path, "recording", exc, hint) from None
    return inst


def find_events(raw, *, stim_channel=None, verbose=False):
    """Find the events of a raw recording, from a stim channel or annotations.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording.
    stim_channel : str | None
        Stim channel to read; by default MNE's usual stim channels are tried
        first, then the annotations.
    verbose : bool
        Passed to MNE.

    Returns
    -------
    events : ndarray of int, shape (n_events, 3)
    event_id : dict
        Condition name to event code.
    """
    events = np.empty((0, 3), int)
    event_id = {}
    has_stim = stim_channel is not None or len(mne.pick_types(raw.info, stim=True)) > 0
    if has_stim:
        try:
            events = mne.find_events(
                raw, stim_channel=stim_channel, shortest_event=1, verbose=verbose
            )
        except ValueError:
            events = np.empty((0, 3), int)
        event_id = {str(code): int(code) for code in np.unique(events[:, 2])}
    if len(events) == 0 and len(raw.annotations) > 0:
        keep = [
            d for d in np.unique(raw.annotations.description)
            if not d.lower().startswith(("bad", "edge", "boundary"))
        ]
        if keep:
            events, event_id = mne.events_from_annotations(
                raw, event_id={d: i + 1 for i, d in enumerate(sorted(keep))},
                verbose=verbose,
            )
    if len(events) == 0:
        raise InputError(
            "The recording has no events: no stim channel events and no annotations.",
            "give an events file (--events), add annotations, or pass an epochs "
            "(-epo.fif) or evoked (-ave.fif) file instead.",
        )
    return events, event_id


def read_events_file(fname, *, verbose=False):
    """Read an MNE events file (``-eve.fif`` or text), with clear errors."""
    events = read_checked(mne.read_events, fname, "events file",
                          "give an MNE -eve.fif or .eve text file.", verbose=verbose)
    if len(events) == 0:
        raise InputError(f"The events file {str(fname)!r} holds no events.", "check the file.")
    return events, {str(code): int(code) for code in np.unique(events[:, 2])}


def make_epochs(raw, events, event_id, *, tmin=-0.2, tmax=0.5, baseline=(None, 0),
                reject=None, verbose=False):
    """Cut epochs around events, with baseline correction and rejection.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording.
    events : ndarray, shape (n_events, 3)
        The events.
    event_id : dict
        Condition name to event code; only these conditions are kept.
    tmin, tmax : float
        The epoch window in seconds relative to the events.
    baseline : tuple | None
        Baseline interval for correction, as in :class:`mne.Epochs`.
    reject : dict | None
        Peak-to-peak rejection thresholds per channel type, e.g.
        ``dict(eeg=150e-6, grad=4000e-13, mag=4e-12)``.
    verbose : bool
        Passed to MNE.

    Returns
    -------
    epochs : mne.Epochs
    """
    if tmin >= tmax:
        raise InputError(f"The epoch window is empty: tmin={tmin} ≥ tmax={tmax}.", "use tmin < tmax.")
    duration = raw.times[-1] - raw.times[0]
    if tmax - tmin > duration:
        ms = _in_milliseconds(tmin, tmax, -duration, duration)
        raise InputError(
            f"The epoch window {tmin:g} to {tmax:g} s ({tmax - tmin:g} s) is longer than the "
            f"recording ({duration:.1f} s): no epoch fits in it.{ms}",
            (f"give seconds: --epoch-tmin {tmin / 1000:g} --epoch-tmax {tmax / 1000:g}."
             if ms else "shorten the epoch window (--epoch-tmin/--epoch-tmax, e.g. -0.2 and "
             "0.5)."))
    if baseline is not None and baseline[0] is not None and baseline[0] < tmin:
        raise InputError(
            f"The baseline starts at {baseline[0]} s, before the epoch start {tmin} s.",
            "make the baseline fit in the epoch window.",
        )
    if baseline is not None:
        start = tmin if baseline[0] is None else baseline[0]
        stop = tmax if baseline[1] is None else baseline[1]
        n_samples = int(np.floor((min(stop, tmax) - start) * raw.info["sfreq"] + 1e-9)) + 1
        if n_samples < 2:
            raise InputError(
                f"The epochs start at {tmin:g} s, so the baseline before the stimulus "
                f"({start:g} to {stop:g} s) holds {max(n_samples, 0)} sample(s): there is "
                "nothing to baseline-correct with.",
                "start the epochs before the stimulus (--epoch-tmin -0.2; tmin=-0.2 in "
                "Python), or switch the baseline correction off (--no-baseline; "
                "baseline=None) and give a noise covariance (--noise-cov or --empty-room).",
            )
    present = set(np.unique(events[:, 2]))
    event_id = {name: code for name, code in event_id.items() if code in present}
    if not event_id:
        raise InputError("None of the requested conditions occurs in the events.",
                         "check --condition and --events: the condition must be an event "
                         "name or code present in the recording.")
    with warnings.catch_warnings():  # MNE's "All epochs were dropped!": said below
        warnings.filterwarnings("ignore", "All epochs were dropped")
        epochs = mne.Epochs(
            raw, events, event_id, tmin=tmin, tmax=tmax, baseline=baseline,
            reject=reject, preload=True, on_missing="ignore", verbose=verbose,
        )
    if len(epochs) == 0:
        raise InputError(
            "All epochs were rejected or fell outside the recording.",
            "relax the rejection thresholds (--reject) or shorten the epoch window.",
        )
    return epochs


def reject_epochs(epochs, reject, *, verbose=False):
    """Drop the epochs (of an epochs file) whose peak-to-peak amplitude exceeds ``reject``."""
    with warnings.catch_warnings():  # MNE's "All epochs were dropped!": said below
        warnings.filterwarnings("ignore", "All epochs were dropped")
        kept = epochs.copy().drop_bad(reject=reject, verbose=verbose)
    if len(kept) == 0:
        raise InputError(f"--reject dropped all {len(epochs)} epochs of the file.",
                         "relax the rejection thresholds (--reject), or drop --reject.")
    return kept


def _in_milliseconds(lo, hi, first, last):
    """A hint when ``lo`` to ``hi`` (seconds) read as milliseconds falls in [first, last]."""
    if max(abs(lo), abs(hi)) < 1 or hi / 1000 < first or lo / 1000 > last:
        return ""
    return (f" Times are in seconds: did you mean {lo / 1000:g}–{hi / 1000:g} s "
            f"({lo:g}–{hi:g} ms)?")


def average_conditions(epochs):
    """Average epochs per condition.

    Returns
    -------
    evokeds : dict
        Condition name to :class:`mne.Evoked`, for conditions with ≥ 1 epoch.
    """
    evokeds = {}
    for name in epochs.event_id:
        sub = epochs[name]
        if len(sub):
            evokeds[name] = sub.average()
    return evokeds


def pick_condition(evokeds, condition=None):
    """Pick one evoked from a list or dict by name (or the first)."""
    if isinstance(evokeds, mne.Evoked):
        return evokeds
    items = evokeds.items() if isinstance(evokeds, dict) else [(e.comment, e) for e in evokeds]
    items = list(items)
    names = [str(name) for name, _ in items]
    if condition is None:
        return items[0][1]
    for name, evoked in items:
        if str(name) == str(condition):
            return evoked
    raise InputError(
        f"Condition {condition!r} not found.",
        f"choose one of: {', '.join(repr(n) for n in names)}.",
    )


def time_window(times, tmin=None, tmax=None):
    """Check a time window against the sample times; returns the bounds to crop to.

    Cropping follows MNE (:meth:`mne.Evoked.crop`: bounds rounded to the nearest
    sample), so a window that holds samples keeps MNE's samples.

    Raises
    ------
    InputError
        The window is empty (``tmin > tmax``), outside the data, or holds no
        sample (it falls between two samples: cropping would silently take
        one outside it).
    """
    lo = times[0] if tmin is None else tmin
    hi = times[-1] if tmax is None else tmax
    if lo > hi and tmax is None:  # only a start, after the data's end
        ms = _in_milliseconds(lo, lo, times[0], times[-1])
        raise InputError(f"The time window is empty: tmin {lo} s is after the end of the "
                         f"data ({times[-1]:.3f} s).{ms}",
                         f"choose --tmin before {times[-1]:.3f} s"
                         + (f", e.g. --tmin {lo / 1000:g}." if ms else "."))
    if lo > hi and tmin is None:  # only an end, before the data's start
        raise InputError(f"The time window is empty: tmax {hi} s is before the start of the "
                         f"data ({times[0]:.3f} s).",
                         f"choose --tmax after {times[0]:.3f} s.")
    if lo > hi:
        raise InputError(f"The time window is empty: tmin {lo} s is after tmax {hi} s.",
                         f"swap them: --tmin {hi} --tmax {lo}.")
    if hi < times[0] or lo > times[-1]:
        ms = _in_milliseconds(lo, hi, times[0], times[-1])
        raise InputError(
            f"The time window [{lo}, {hi}] s does not overlap the data "
            f"[{times[0]:.3f}, {times[-1]:.3f}] s.{ms}",
            (f"give seconds: --tmin {lo / 1000:g} --tmax {hi / 1000:g}." if ms else
             "choose --tmin/--tmax inside the data."))
    # Half a microsecond of slack: times written as decimals are rounded.
    if not np.any((times >= lo - 5e-7) & (times <= hi + 5e-7)):
        before = times[times < lo][-1]
        after = times[times > hi][0]
        raise InputError(
            f"The time window [{lo}, {hi}] s holds no sample: it falls between the samples "
            f"at {before:.4f} s and {after:.4f} s.",
            f"widen it to hold at least one sample, e.g. --tmin {before:.4f} --tmax "
            f"{after:.4f}.")
    return lo, hi


def baseline_evoked(evoked, baseline=(None, 0), *, verbose=False):
    """Baseline-correct an evoked response that was saved without it (in place).

    Averages written without baseline correction keep each channel's DC offset,
    which after whitening is typically tens of times the noise level and would
    be explained by (wrong) sources. Evokeds that were already corrected, or
    that have no pre-stimulus samples in ``baseline``, are left as they are.

    Returns
    -------
    corrected : bool
        Whether a baseline correction was applied.
    """
    if baseline is None or evoked.baseline is not None:
        return False
    start = evoked.times[0] if baseline[0] is None else baseline[0]
    stop = 0.0 if baseline[1] is None else baseline[1]
    n_pre = int(np.sum((evoked.times >= start) & (evoked.times <= stop)))
    if evoked.times[0] >= 0 or n_pre < 2:
        return False
    evoked.apply_baseline(baseline, verbose=verbose)
    return True


_NON_EEG_NAMES = {"eog": re.compile(r"EOG", re.I), "ecg": re.compile(r"ECG|EKG", re.I),
                  "emg": re.compile(r"EMG", re.I)}


def type_channels_by_name(inst):
    """Retype EEG channels whose names say they are EOG, ECG or EMG (in place).

    Formats without channel types (EEGLAB, EDF, BrainVision) type every
    channel EEG; an eye electrode used as a scalp electrode distorts the
    average reference and the fit.

    Returns
    -------
    notes : list of str
        What was retyped, for the user.
    """
    mapping = {}
    bads = set(inst.info["bads"])
    for name, kind in zip(inst.ch_names, inst.get_channel_types()):
        if kind != "eeg" or name in bads:  # already left out (e.g. no position, see --eog)
            continue
        for new, pattern in _NON_EEG_NAMES.items():
            if pattern.search(name):
                mapping[name] = new
                break
    if not mapping:
        return []
    inst.set_channel_types(mapping, on_unit_change="ignore", verbose=False)
    described = ", ".join(f"{n} -> {k.upper()}" for n, k in mapping.items())
    return [f"channel(s) typed EEG but named as non-scalp electrodes are not used as EEG: "
            f"{described} (leave channels out with --exclude)"]


def exclude_channels(inst, exclude):
    """Drop the channels named in ``exclude`` from a recording (list of evokeds too)."""
    if not exclude:
        return inst
    exclude = [c.strip() for c in (exclude.split(",") if isinstance(exclude, str) else exclude)
               if c.strip()]
    insts = inst if isinstance(inst, (list, tuple)) else [inst]
    names = insts[0].ch_names
    missing = [c for c in exclude if c not in names]
    if missing:
        raise InputError(f"--exclude names channel(s) the recording does not have: "
                         f"{', '.join(missing)}.",
                         f"use names of the recording, e.g. {', '.join(names[:4])}.")
    meeg = [names[k] for k in mne.pick_types(insts[0].info, meg=True, eeg=True, exclude=[])]
    if meeg and set(meeg) <= set(exclude):
        raise InputError(f"--exclude leaves out every MEG and EEG channel "
                         f"({len(exclude)} of {len(names)} channels named).",
                         "name only the channels to leave out, e.g. --exclude 'MEG 0113,EEG "
                         "053'.")
    for one in insts:
        one.drop_channels(exclude)
    return inst


def needs_average_reference(info):
    """Whether the good EEG channels of ``info`` lack an average-reference projector.

    A sparse inverse models the EEG against the average reference (MNE's
    forward solutions are referenced that way once the projector is applied to
    the data and the gain alike); data recorded or re-referenced to another
    reference (a vertex electrode, linked mastoids: ``info['custom_ref_applied']``)
    must be given the projector, or the fit is made against the wrong model.
    """
    from mne._fiff.proj import _has_eeg_average_ref_proj

    if len(mne.pick_types(info, meg=False, eeg=True, exclude="bads")) == 0:
        return False
    return not _has_eeg_average_ref_proj(info)


def set_average_reference(inst):
    """Add an average-reference projector on the good EEG channels when none is there.

    The one place where every entry point (``sparse_inverse``,
    ``SparseInverse``, ``localize_epochs``, ``localize_raw`` and the command
    line) makes the EEG reference consistent with the forward model, as
    :func:`mne.inverse_sparse.mixed_norm` requires. A custom reference (e.g.
    linked mastoids) is overridden by the projector, which removes whatever
    common signal the reference added: the result does not depend on the
    recording reference. Modifies ``inst`` in place and returns it.
    """
    if needs_average_reference(inst.info):
        mne.set_eeg_reference(inst, "average", projection=True, copy=False, verbose=False)
    return inst


def with_average_reference(inst):
    """``inst`` itself when its EEG is average-referenced, else a copy with the projector."""
    if not hasattr(inst, "info") or not needs_average_reference(inst.info):
        return inst  # (a wrong type is reported by the caller's own check)
    return set_average_reference(inst.copy())


def read_checked(reader, fname, what, hint, **kwargs):
    """Read ``fname`` with an MNE reader; any failure becomes one clear :class:`InputError`.

    Parameters
    ----------
    reader : callable
        E.g. :func:`mne.read_cov`; called as ``reader(path, **kwargs)``.
    fname : path-like
        The file.
    what : str
        What the file is, for the message ("noise covariance").
    hint : str
        The fix to suggest when the file can't be read.
    """
    path = _existing_file(fname, what)
    try:
        return reader(path, **kwargs)
    except Exception as exc:  # MNE raises many types for unreadable files
        raise _read_failed(path, what, exc, hint) from None


def read_noise_cov(fname, *, verbose=False):
    """Read a noise covariance file (``-cov.fif``), with a clear error."""
    return read_checked(mne.read_cov, fname, "noise covariance",
                        "give a -cov.fif file written by mne.write_cov.", verbose=verbose)


def noise_cov_from_baseline(epochs, *, tmax=0.0, method="ledoit_wolf", verbose=False):
    """Estimate the noise covariance from the pre-stimulus part of epochs."""
    if epochs.tmin >= tmax:
        raise InputError(
            f"The epochs start at {epochs.tmin} s, so there is no baseline before {tmax} s "
            "to estimate the noise covariance from.",
            "start the epochs before the stimulus (--epoch-tmin -0.2; tmin=-0.2 in "
            "mne.Epochs), or give a noise covariance (--noise-cov FILE or --empty-room FILE).",
        )
    n_samples = int((min(tmax, epochs.tmax) - epochs.tmin) * epochs.info["sfreq"]) * len(epochs)
    n_channels = len(mne.pick_types(epochs.info, meg=True, eeg=True, exclude="bads"))
    if n_samples < 2:
        raise InputError("The baseline is too short to estimate a noise covariance.",
                         "use a longer pre-stimulus window or a covariance file.")
    # A regularized estimator: with few baseline samples per channel the
    # empirical covariance is singular. Ledoit-Wolf's closed-form shrinkage, not
    # MNE's cross-validated 'shrunk' (~40 s per estimate on 366 channels).
    if method == "ledoit_wolf" and n_samples > 20 * n_channels:
        method = "empirical"
    # rank='info': Maxwell-filtered data keep their reduced rank in the estimate
    # (the shrinkage would otherwise fill the removed dimensions).
    return mne.compute_covariance(epochs, tmax=tmax, method=method, rank="info", verbose=verbose)


def noise_cov_from_empty_room(fname, *, method="ledoit_wolf", verbose=False):
    """Estimate the noise covariance from an empty-room recording."""
    _existing_file(fname, "empty-room recording")  # not "The recording ... does not exist"
    raw = read_recording(fname, verbose=verbose)
    if not isinstance(raw, mne.io.BaseRaw):
        raise InputError(f"{fname!r} is not a raw recording.", "give the empty-room raw file.")
    return mne.compute_raw_covariance(raw, method=method, rank="info", verbose=verbose)
