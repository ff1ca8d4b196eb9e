"""``meeg-inverse localize RAW --continuous``: a whole recording, window by window, to a folder.

Reads the recording lazily (never preloaded), checks every option before the
forward model is read or built, localizes with
:func:`meeg_inverse.continuous.localize_continuous` straight into the staging
folder (:class:`meeg_inverse._output_dir.OutputFolder`), and puts the result
in place as a whole: ``sources-continuous.h5`` (the source time series,
:func:`~meeg_inverse.continuous.read_continuous`), ``windows.csv`` (per-window
λ, support, explained variance), ``summary.json`` (per-source activity
periods) and ``timeline.png``.
"""

import csv
from dataclasses import replace
from pathlib import Path

import mne
import numpy as np

from . import io as mio
from ._output_dir import OutputFolder
from .errors import InputError

H5_NAME = "sources-continuous.h5"


def read_raw_lazy(recording, *, verbose=False):
    """A raw recording opened without loading its data (one clear error otherwise)."""
    path = mio._existing_file(recording, "recording")
    if mio.recording_kind(path) != "raw":
        raise InputError(f"--continuous needs a raw recording; {path.name!r} holds "
                         f"{mio.recording_kind(path)} data.",
                         "give the raw file (or drop --continuous to localize an average).")
    try:
        return mne.io.read_raw(path, preload=False, verbose=verbose)
    except Exception as exc:  # MNE raises many types for unreadable files
        raise InputError(f"Could not read the recording {path.name!r}: {exc}",
                         "check that the file is complete and in a format MNE reads.") from None


def localize_continuous_file(recording, out_dir, *, forward_spec=None, noise_cov=None,
                             empty_room=None, window=0.1, step=0.05, l_freq=None, h_freq=None,
                             tmin=None, tmax=None, alpha="qut", penalty="l21", loose="auto",
                             depth=0.8, rank=None, tol=1e-6, bads=None, ch_types=None,
                             exclude=None, n_jobs=1, noise_segment=None, figures=True,
                             progress=None, verbose=False, overwrite=False,
                             allow_missing_types=False):
    """Localize a whole raw recording and write its outputs (what the CLI runs).

    ``noise_segment`` (start, stop) in seconds names a quiet segment of the
    recording: the noise covariance is estimated there when no ``noise_cov``
    or ``empty_room`` is given, and the noise level is measured there.
    ``allow_missing_types``: localize even when the forward or the covariance
    lacks a whole channel type of the recording (``--allow-missing-types``).

    Returns
    -------
    result : ContinuousResult
    paths : dict
        Name → path of each file written.
    """
    from .channels import apply_channel_options
    from .continuous import _check_args, localize_continuous
    from .continuous_messages import no_source_warning
    from .dipole_positions import _read_bem, _read_trans
    from ._choices import check_forward_spec
    from .pipeline import ForwardSpec, Progress, load_forward
    from .summary import write_json

    progress = progress or Progress(enabled=False)
    forward_spec = forward_spec or ForwardSpec()
    check_forward_spec(forward_spec, continuous=True)
    folder = OutputFolder(out_dir, overwrite=overwrite).acquire()
    try:
        progress.step(f"opening {Path(str(recording)).name}")
        raw = read_raw_lazy(recording, verbose=verbose)
        apply_channel_options(raw, bads=bads, ch_types=ch_types)
        raw = mio.exclude_channels(raw, exclude)
        # Every option is checked before the forward model is read or built.
        _check_args(raw, window, step, l_freq, h_freq, 0.99, n_jobs, 10.0, alpha, tmin, tmax,
                    noise_segment=noise_segment, penalty=penalty, tol=tol)
        # --bem (with --trans or the forward's): the reported sources are placed by a
        # dipole fit; unreadable files are named before the forward is read or built.
        bem = forward_spec.bem
        trans = forward_spec.trans if bem is not None else None
        if bem is not None:
            _read_bem(bem)
            if trans is not None:
                _read_trans(trans)
        notes = []
        if forward_spec.montage is not None:
            from .forward import ensure_sensor_positions

            ensure_sensor_positions(raw.info, forward_spec.montage,
                                    match_by=forward_spec.montage_match, notes=notes)
        notes += mio.type_channels_by_name(raw)
        for note in notes:
            progress.info(f"note: {note}")
        if noise_cov is None and empty_room is None and noise_segment is None:
            raise InputError(
                "A continuous recording needs a noise covariance (there are no baseline "
                "epochs to estimate one from).",
                "give --noise-cov FILE, --empty-room FILE, or a quiet segment of the "
                "recording with --noise-segment START,STOP (seconds).")
        progress.step("getting the noise covariance")
        if isinstance(noise_cov, mne.Covariance):
            cov = noise_cov
        elif noise_cov is not None:
            cov = mio.read_noise_cov(noise_cov, verbose=verbose)
        elif empty_room is not None:
            from .pipeline import check_empty_room_applies

            check_empty_room_applies(raw.info)
            cov = mio.noise_cov_from_empty_room(empty_room, verbose=verbose)
        else:
            cov = noise_cov_from_segment(raw, noise_segment, verbose=verbose)
        progress.step("reading the forward solution" if forward_spec.forward is not None
                      else "building the forward model (a few minutes the first time)")
        fwd, subject, subjects_dir = load_forward(replace(forward_spec, montage=None), raw.info,
                                                  verbose=verbose)
        progress.done()
        h5 = folder.staging / H5_NAME
        result = localize_continuous(
            raw, fwd, cov, window=window, step=step, l_freq=l_freq, h_freq=h_freq, tmin=tmin,
            tmax=tmax, alpha=alpha, penalty=penalty, loose=loose, depth=depth, rank=rank,
            tol=tol, fname=h5, n_jobs=n_jobs, noise_segment=noise_segment, progress=progress,
            verbose=verbose, bem=bem, trans=trans, allow_missing_types=allow_missing_types)
        progress.step("writing the summary and figures")
        written = {"h5": H5_NAME}
        _write_windows_csv(result.windows, folder.staging / "windows.csv")
        written["windows"] = "windows.csv"
        summary = result.summary()
        summary["recording"] = str(recording)
        summary["notes"] = notes + summary["notes"]
        # The run's own warnings (no high-pass, ...) came from localize_continuous, which
        # raised them as Python warnings: the console showed them (cli.py).
        if not summary["sources"]:
            none = no_source_warning(summary, figures)
            summary["warnings"].append(none)
            progress.warn(f"{none['message']} Fix: {none['fix']}")
        if figures and summary["sources"]:
            from .viz.timeline import plot_timeline

            plot_timeline(result, folder.staging / "timeline.png")
            written["timeline"] = "timeline.png"
            try:
                from .viz import plot_source_map

                plot_source_map(result.peak_stc(), fwd["src"], folder.staging / "peak_map.png",
                                subject=subject, subjects_dir=subjects_dir,
                                trans=fwd["mri_head_t"],
                                title="Largest amplitude of each source over the recording",
                                show_time=False)  # the peaks of the whole recording
                written["peak_map"] = "peak_map.png"
            except Exception as exc:  # a rendering problem must not lose the results
                progress.warn(f"the source map could not be drawn ({exc}); the other "
                              "outputs are complete.")
            # The viewer, its time slider over the whole recording (peak per bin).
            from .viz.viewer import write_viewer_html

            write_viewer_html(result.binned_stc(), fwd["src"], folder.staging / "viewer.html",
                              subject=subject, subjects_dir=subjects_dir,
                              trans=fwd["mri_head_t"],
                              reported=summary["reported_sources"],  # the one map-time rule
                              title=f"{Path(str(recording)).name}: peak amplitude per "
                                    f"{result.n_times / result.sfreq / 1000:.3g}-s bin")
            written["viewer"] = "viewer.html"
        summary["files"] = written
        write_json(summary, folder.staging / "summary.json")
        written["summary"] = "summary.json"
        folder.commit()
        progress.done()
    finally:
        folder.release()
    result.fname = folder.path / H5_NAME
    return result, {k: folder.path / v for k, v in written.items()}


def noise_cov_from_segment(raw, segment, *, verbose=False):
    """Noise covariance of a quiet segment ``(start, stop)`` (s) of a raw recording.

    Empirical, on the EEG average reference (as the inverse uses it), with the
    rank of the measurement info; ``BAD_*`` annotated samples are left out.
    """
    start, stop = segment
    # The recording ends one sample after its last sample's time (a 301-sample, 300.3 Hz
    # recording lasts 1.002 s, and 0,1 is inside it).
    begin, end = raw.times[0], raw.times[-1] + 1.0 / raw.info["sfreq"]
    if end - begin < 1.0:
        raise InputError(f"The recording lasts {end - begin:.3f} s: too short for a noise "
                         "segment of at least 1 s.",
                         "give a noise covariance instead: --noise-cov FILE or --empty-room FILE.")
    if not (begin <= start < stop <= end + 0.5 / raw.info["sfreq"]) or stop - start < 1.0:
        raise InputError(f"The noise segment [{start:g}, {stop:g}] s is not a segment of at "
                         f"least 1 s inside the recording [{begin:.3f}, {end:.3f}] s.",
                         "give --noise-segment START,STOP inside the recording, e.g. "
                         f"{begin:g},{min(begin + 20.0, end):.3f}.")
    from .continuous import bad_mask

    clean = int((~bad_mask(raw, start, min(stop, raw.times[-1]))).sum()) / raw.info["sfreq"]
    if clean < 1.0:  # MNE would stop with "No samples found to compute the covariance matrix"
        raise InputError(f"Only {clean:.3f} s of the noise segment [{start:g}, {stop:g}] s lie "
                         "outside BAD_ annotations; at least 1 s is needed.",
                         "choose a quiet segment outside the BAD_ annotations with "
                         "--noise-segment, or give --noise-cov FILE / --empty-room FILE.")
    return mne.compute_raw_covariance(mio.with_average_reference(raw), tmin=start,
                                      tmax=min(stop, raw.times[-1]), method="empirical",
                                      rank="info", verbose=verbose)


def _write_windows_csv(windows, fname):
    from .continuous import STATUS

    keys = list(windows)
    with open(fname, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(keys)
        for row in zip(*(windows[k] for k in keys)):
            out.writerow([STATUS[int(v)] if k == "status" else
                          (f"{v:.6g}" if isinstance(v, (float, np.floating)) else v)
                          for k, v in zip(keys, row)])
