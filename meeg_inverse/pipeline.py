"""The localization pipeline: load → whitened problem → solve → MNE objects → outputs.

:func:`localize_file` is what ``meeg-inverse localize`` runs; each step is a
function of its own so the Python API can enter at any point with MNE
objects in hand.
"""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from . import io as mio
from . import outputs
from ._output_dir import OutputFolder
from .errors import InputError
from .forward import (TEMPLATE_SUBJECT, check_forward_matches, make_subject_forward,
                      make_template_forward, read_forward)
from .problem import InverseProblem
from .progress import Progress
from .clusters import CLUSTER_RADIUS_MM, MATCH_MM
from .confidence import CONFIDENT, DEFAULT_REDRAWS
from .solve import DEFAULT_MAX_TIME, DEFAULT_RULE
from .summary import source_frames, source_label_at, source_records


@dataclass
class LoadedData:
    """What :func:`load_data` returns: the evoked to localize and where it came from."""

    evoked: mne.Evoked
    conditions: list
    epochs: mne.Epochs | None = None
    raw: mne.io.BaseRaw | None = None
    baseline_applied: bool = False
    notes: list = field(default_factory=list)


def load_data(recording, *, condition=None, events=None, stim_channel=None,
              epoch_tmin=None, epoch_tmax=None, baseline=(None, 0), reject=None,
              montage=None, montage_match="name", bads=None, ch_types=None, exclude=None,
              verbose=False):
    """Load a recording and reduce it to the evoked response to localize.

    Raw recordings are cut into epochs around their events (stim channel,
    annotations or an events file) and averaged per condition; epochs files are
    averaged; evoked files are read as they are, baseline-corrected with
    ``baseline`` when they were saved without it (the pre-stimulus offsets of
    uncorrected averages are many times the noise level and would be
    localized as sources).

    ``events``, ``epoch_tmin`` and ``epoch_tmax`` (None: -0.2 and 0.5 s) cut a
    raw recording into epochs and ``reject`` drops epochs (of a raw recording or
    an epochs file); given with a recording they do not apply to, they are
    refused (:class:`InputError`), not ignored. ``condition`` is an event name
    or code (or an evoked's comment).

    ``bads`` (channels to leave out) and ``ch_types`` (name → type, e.g. EOG
    leads typed as EEG) are applied first (:func:`meeg_inverse.channels.apply_channel_options`).
    Channels named ``exclude`` are dropped; EEG-typed channels whose names say
    they are EOG, ECG or EMG electrodes are retyped (a note in ``loaded.notes``
    says which).

    Returns
    -------
    loaded : LoadedData
    """
    from .channels import apply_channel_options

    inst = recording if not isinstance(recording, (str, os.PathLike)) else mio.read_recording(
        recording, verbose=verbose)
    notes = []
    for one in (inst if isinstance(inst, (list, tuple)) else [inst]):
        if hasattr(one, "info"):
            apply_channel_options(one, bads=bads, ch_types=ch_types)
    inst = mio.exclude_channels(inst, exclude)
    from ._choices import check_recording_options, epoch_window

    kind = ("raw" if isinstance(inst, mne.io.BaseRaw) else
            "epochs" if isinstance(inst, mne.BaseEpochs) else "evoked")
    name = (repr(str(recording)) if isinstance(recording, (str, os.PathLike)) else
            f"the {type(inst).__name__ if kind != 'evoked' else 'evoked'} given")
    check_recording_options(kind, name, events=events, epoch_tmin=epoch_tmin,
                            epoch_tmax=epoch_tmax, reject=reject)
    epoch_tmin, epoch_tmax = epoch_window(epoch_tmin, epoch_tmax)
    raw = epochs = None
    if isinstance(inst, mne.io.BaseRaw):
        raw = inst
        if montage is not None or _eeg_without_positions(raw.info):
            from .forward import ensure_sensor_positions

            ensure_sensor_positions(raw.info, montage, match_by=montage_match, notes=notes)
        notes += mio.type_channels_by_name(raw)
        if events is not None:
            ev, event_id = (mio.read_events_file(events, verbose=verbose)
                            if isinstance(events, (str, os.PathLike)) else (events, None))
            if event_id is None:
                event_id = {str(c): int(c) for c in np.unique(ev[:, 2])}
        else:
            ev, event_id = mio.find_events(raw, stim_channel=stim_channel, verbose=verbose)
        condition = _condition_name(condition, event_id)
        if condition is not None:
            if str(condition) not in event_id:
                raise InputError(f"Condition {condition!r} not found in the events.",
                                 f"choose one of: {', '.join(map(repr, event_id))}.")
            event_id = {str(condition): event_id[str(condition)]}
        epochs = mio.make_epochs(raw, ev, event_id, tmin=epoch_tmin, tmax=epoch_tmax,
                                 baseline=baseline, reject=reject, verbose=verbose)
        inst = epochs
    if isinstance(inst, mne.BaseEpochs):
        epochs = inst
        if raw is None and reject is not None:  # an epochs file: its epochs dropped here
            epochs = inst = mio.reject_epochs(epochs, reject, verbose=verbose)
        condition = _condition_name(condition, epochs.event_id)
        if raw is None:  # epochs cut from ``raw`` have its positions and types already
            if montage is not None:
                from .forward import ensure_sensor_positions

                ensure_sensor_positions(epochs.info, montage, match_by=montage_match,
                                        notes=notes)
            notes += mio.type_channels_by_name(epochs)
        evokeds = mio.average_conditions(epochs)
    elif isinstance(inst, mne.Evoked):
        evokeds = {inst.comment or "evoked": inst}
    elif isinstance(inst, (list, tuple)) and inst and all(isinstance(e, mne.Evoked) for e in inst):
        evokeds = {}
        for k, e in enumerate(inst):
            name = e.comment or f"evoked {k}"
            if name in evokeds:  # a dict keeps the last: the first would be silently lost
                raise InputError(f"Two averages of the file are named {name!r}: "
                                 "--condition cannot tell them apart.",
                                 "rename one (mne.read_evokeds, set .comment, save), or "
                                 "give the file of one of them.")
            evokeds[name] = e
    else:
        raise InputError(f"Cannot localize a {type(inst).__name__}.",
                         "give a Raw, Epochs or Evoked (or a file holding one).")
    evoked = mio.pick_condition(evokeds, condition).copy()
    baseline_applied = epochs is None and mio.baseline_evoked(evoked, baseline, verbose=verbose)
    if montage is not None and epochs is None:
        from .forward import ensure_sensor_positions

        ensure_sensor_positions(evoked.info, montage, match_by=montage_match, notes=notes)
    if epochs is None:
        notes += mio.type_channels_by_name(evoked)
    mio.set_average_reference(evoked)
    if epochs is not None:
        mio.set_average_reference(epochs)
    return LoadedData(evoked=evoked, conditions=list(evokeds), epochs=epochs, raw=raw,
                      baseline_applied=baseline_applied, notes=list(dict.fromkeys(notes)))


def _condition_name(condition, event_id):
    """The event name of ``condition`` when it is one of the codes of ``event_id``
    (``--condition 1`` for the event named 'Left Auditory' with code 1)."""
    if condition is None or str(condition) in event_id:
        return condition
    names = [name for name, code in event_id.items() if str(code) == str(condition).strip()]
    return names[0] if len(names) == 1 else condition


def _eeg_without_positions(info):
    picks = mne.pick_types(info, meg=False, eeg=True, exclude=[])
    if len(picks) == 0:
        return False
    locs = np.array([info["chs"][k]["loc"][:3] for k in picks])
    return bool((~np.isfinite(locs).all(axis=1) | (np.abs(locs).sum(axis=1) == 0)).any())


def load_noise_cov(noise_cov, loaded, *, empty_room=None, verbose=False):
    """Get the noise covariance: a file, the epochs' baseline, or an empty-room recording.

    Parameters
    ----------
    noise_cov : path-like | mne.Covariance | 'baseline' | None
        None means the baseline of the epochs when there are epochs.
    loaded : LoadedData
        From :func:`load_data`.
    empty_room : path-like | None
        An empty-room raw recording to estimate the covariance from.
    """
    if isinstance(noise_cov, mne.Covariance):
        return noise_cov
    if empty_room is not None:
        check_empty_room_applies(loaded.evoked.info)
        return mio.noise_cov_from_empty_room(empty_room, verbose=verbose)
    if noise_cov is None or noise_cov == "baseline":
        if loaded.epochs is None:
            raise InputError(
                "A noise covariance is needed, and an evoked file has no baseline epochs to "
                "estimate one from.",
                "give a covariance file (--noise-cov FILE) or an empty-room recording "
                "(--empty-room FILE), or start from the raw recording or epochs.")
        return mio.noise_cov_from_baseline(loaded.epochs, verbose=verbose)
    return mio.read_noise_cov(noise_cov, verbose=verbose)


def check_empty_room_applies(info, *, option="--empty-room"):
    """Refuse an empty-room recording for a recording without MEG channels.

    An empty room (the MEG sensors with no one under them) records the noise of
    MEG sensors only: EEG needs electrodes on a head. Its covariance would cover
    none of an EEG-only recording's channels.
    """
    if len(mne.pick_types(info, meg=True, exclude=[])):
        return
    types = sorted({t for t in info.get_channel_types() if t in ("eeg", "seeg", "ecog")}) or [
        "no MEG"]
    raise InputError(
        f"{option} gives the noise of MEG sensors (recorded with no one under them), but the "
        f"recording has no MEG channel ({', '.join(types)} only): an empty room holds no EEG "
        "noise.",
        "give a noise covariance of the recording's channels (--noise-cov FILE), or leave "
        f"{option} out to estimate it from the epochs' pre-stimulus baseline (a raw "
        "recording or an epochs file).")


@dataclass
class ForwardSpec:
    """How to get the forward: a file, a subject's anatomy, or the template head."""

    forward: str | os.PathLike | mne.Forward | None = None
    subject: str | None = None
    subjects_dir: str | os.PathLike | None = None
    trans: str | os.PathLike | None = None
    bem: str | os.PathLike | None = None
    src: str | os.PathLike | None = None
    spacing: str | None = None
    montage: str | None = None
    montage_match: str = "name"


def load_forward(spec, info, *, verbose=False):
    """Get the forward solution of a recording as ``spec`` says.

    Returns
    -------
    forward : mne.Forward
    subject : str | None
    subjects_dir : Path | None
    """
    if spec.forward is not None:
        fwd = spec.forward if isinstance(spec.forward, mne.Forward) else read_forward(
            spec.forward, verbose=verbose)
        check_forward_matches(fwd, info, subject=spec.subject)
        subject = spec.subject or fwd["src"][0].get("subject_his_id")
        return fwd, subject, spec.subjects_dir
    if spec.subject is not None and spec.subject != TEMPLATE_SUBJECT:
        from ._choices import check_subject_forward

        check_subject_forward(spec)
        fwd = make_subject_forward(info, subject=spec.subject, subjects_dir=spec.subjects_dir,
                                   trans=spec.trans, bem=spec.bem, src=spec.src,
                                   spacing=spec.spacing or "oct6", verbose=verbose)
        return fwd, spec.subject, Path(spec.subjects_dir)
    fwd, _, subjects_dir = make_template_forward(
        info, spacing=spec.spacing or "ico4", montage=spec.montage,
        montage_match=spec.montage_match, verbose=verbose)
    return fwd, TEMPLATE_SUBJECT, subjects_dir


@dataclass
class Localization:
    """The result of a localization, with everything needed to write and plot it.

    Attributes
    ----------
    stc : mne.SourceEstimate | mne.VectorSourceEstimate | mne.VolSourceEstimate
        Active sources only, in A·m.
    problem : InverseProblem
    coef : ndarray, shape (n_rows, n_times)
        Full solution of the whitened problem.
    alpha : float
        The lambda used (absolute, whitened units).
    alpha_fraction : float
        ``alpha / problem.alpha_max``.
    penalty : str
    solver_info : dict
        Objective, duality gap, KKT violation, iterations, convergence.
    records : list of dict
        One per active source (see :func:`meeg_inverse.summary.source_records`).
    field_cancellation : float
        See :meth:`InverseProblem.field_cancellation` (nan when empty).
    """

    stc: object
    problem: InverseProblem
    coef: np.ndarray
    alpha: float
    alpha_fraction: float
    penalty: str
    solver_info: dict
    records: list
    subject: str | None = None
    subjects_dir: Path | None = None
    extra: dict = field(default_factory=dict)
    selection: object = field(default=None, repr=False)
    field_cancellation: float = float("nan")

    @property
    def explained_variance(self):
        return self.problem.explained_variance(self.coef)

    def summary(self):
        """A JSON-ready dictionary of the result."""
        p = self.problem
        return {
            "subject": self.subject,
            "condition": p.evoked.comment if p.evoked is not None else None,
            "n_averaged_epochs": int(p.evoked.nave) if p.evoked is not None else None,
            "time_window_s": [float(p.times[0]), float(p.times[-1])],
            "n_channels": len(p.ch_names),
            "noise_cov_rank": p.rank,
            "n_sources": p.n_sources,
            "orientation": "fixed" if p.n_orient == 1 else ("free" if p.loose == 1 else f"loose {p.loose}"),
            "depth": p.depth,
            "source_space": p.forward["src"].kind,
            "penalty": self.penalty,
            "alpha": self.alpha,
            "alpha_fraction_of_max": self.alpha_fraction,
            "alpha_max": p.alpha_max,
            "n_active_sources": len(self.records),
            "explained_variance": self.explained_variance,
            "field_cancellation": _json_float(self.field_cancellation),
            "solver": self.solver_info,
            "sources": self.records,
            **self.extra,
        }


#: How the progress lines name each automatic rule.
RULE_NAMES = {"bic": "BIC of the refit", "qut": "the quantile universal threshold",
              "sure": "SURE"}


def _floor_note(selection):
    """What the discrepancy floor did to a BIC selection ('' when nothing): it raises λ
    past the criterion's minimum while the fit explains noise, past the path's top (and
    L2,1's λ_max: a non-convex penalty keeps sources there) where the BIC is not
    evaluated (``alpha_selection.criterion`` null)."""
    if selection.method != "bic" or not selection.n_raises:
        return ""
    return (f": raised {selection.n_raises} step(s) above the BIC's minimum by the "
            "discrepancy floor (a smaller lambda's fit explains noise)"
            + ("; above L2,1's lambda_max, a non-convex penalty still keeps sources"
               if selection.alpha_fraction > 1 else ""))


def _json_float(x):
    """A float for JSON: None for nan (JSON has no NaN)."""
    return None if not np.isfinite(x) else float(x)


def _solver_progress(progress, every=5.0):
    """A solver callback printing a line every ``every`` s of a long solve."""
    last = [0.0]

    def show(it, crit, tol_abs, n_support, elapsed):
        if elapsed - last[0] >= every:
            last[0] = elapsed
            progress.info(f"  ... {elapsed:.0f} s: outer iteration {it}, {n_support} active "
                          f"sources, criterion {crit / tol_abs:.3g} x the tolerance")
    return show


def _search_progress(progress, rule="sure"):
    """A progress bar for the λ search, and its callback."""
    from tqdm.auto import tqdm

    name = {"sure": "SURE", "bic": "BIC", "qut": "residual/noise"}[rule]
    # Not in a log file (each redraw would be a line); the chosen λ is printed after.
    bar = tqdm(desc=f"[meeg-inverse] lambda search ({name})",
               unit=" evaluation" if rule == "sure" else " solve",
               file=progress.stream, disable=not (progress.enabled and progress.interactive),
               leave=False)

    def show(count, fraction, value):
        bar.update(max(int(count) - bar.n, 0))  # counted as in the summary
        bar.set_postfix_str(f"lambda = {fraction:.3f} x lambda_max, {name} = {value:.5g}")
    return show, bar


#: How the summary names the confidence's channel subsamples (clusters.subsample_rows).
_SCHEME_WORDS = {"half": "half-channel subsamples",
                 "quarter": "subsamples leaving a quarter of the channels out",
                 "placeable": "subsamples leaving out as many channels as place every source"}


def _whitened_epochs(problem, epochs):
    """The single trials on the problem's channels and samples, whitened (or None)."""
    if epochs is None or len(epochs) < 2:
        return None
    picks = [epochs.ch_names.index(c) for c in problem.ch_names]
    times = np.asarray(epochs.times)
    first = int(np.argmin(np.abs(times - problem.times[0])))
    n_times = len(problem.times)
    if first + n_times > len(times):
        return None
    data = epochs.get_data(picks=picks)[:, :, first:first + n_times]
    return np.einsum("rc,ect->ert", problem.whitener, data)


def localize(evoked, forward, noise_cov, *, alpha="auto", penalty=None, loose="auto",
             depth=0.8, tmin=None, tmax=None, pick_ori=None, rank=None, tol=1e-6,
             penalty_params=None, random_state=0, sure_curve=False, debias=True, subject=None,
             subjects_dir=None, progress=None, verbose=False, max_time=DEFAULT_MAX_TIME,
             epochs=None, confidence=DEFAULT_REDRAWS, operator=None, head_model="auto",
             allow_missing_types=False):
    """Localize an evoked response with MNE objects in and out.

    Parameters
    ----------
    evoked : mne.Evoked
    forward : mne.Forward
    noise_cov : mne.Covariance
    alpha : 'auto' | 'bic' | 'qut' | 'sure' | float
        Regularization: 'auto' (the default rule, :mod:`meeg_inverse.rules`),
        'bic', 'qut' or 'sure' choose it automatically; a number is a
        fraction of lambda_max, in (0, 1).
    penalty : str | None
        Penalty name (see :data:`meeg_inverse.penalties.PENALTIES`); None: L0.5
        with ``alpha='auto'``, L2,1 otherwise.
    loose, depth, rank
        As in :func:`mne.inverse_sparse.mixed_norm`.
    tmin, tmax : float | None
        Time window to localize.
    pick_ori : None | 'vector'
    tol : float
        Solver tolerance (relative duality gap for convex penalties).
    debias : bool
        Rescale the active sources to undo the penalty's amplitude shrinkage
        (as ``mixed_norm(debias=True)``).
    max_time : float | None
        Time budget (s) of the solve (and of each solve of the λ search); past
        it the result says ``converged: false``.
    epochs : mne.Epochs | None
        The single trials of ``evoked``: the confidence of each source then
        resamples them (bootstrap) instead of redrawing noise.
    confidence : int
        Resamples for each source's confidence (0: none).
    operator : SparseInverseOperator | None
        A prepared operator (:func:`meeg_inverse.operator.make_sparse_inverse_operator`)
        used instead of ``forward`` and ``noise_cov`` (which may then be None):
        what a cohort builds once per subject and applies to each of its data
        sets. ``loose``, ``depth`` and ``rank`` are then the operator's.
    head_model : 'auto' | meeg_inverse.dipole_positions.HeadModel | None
        The reported positions' dipole fits: 'auto' with the BEM the forward
        names, a head model (:func:`meeg_inverse.dipole_positions.checked_head_model`),
        or None (fields interpolated between the grid's).
    allow_missing_types : bool
        Localize even when the forward or the covariance lacks a whole channel
        type of the recording (see :func:`meeg_inverse.make_sparse_inverse_operator`);
        ignored with ``operator``.

    Returns
    -------
    result : Localization
    """
    from .assessment import annotate_records, reported_sources, result_warnings, selection_facts
    from .solve import resolve_penalty, solve_inverse

    penalty = resolve_penalty(penalty, alpha)

    progress = progress or Progress(enabled=False)
    progress.step("whitening and weighting the forward model")
    evoked = mio.with_average_reference(evoked)
    if operator is not None:  # same as from_evoked, minus the preparation
        problem = operator.problem(evoked, tmin=tmin, tmax=tmax)
    else:
        problem = InverseProblem.from_evoked(evoked, forward, noise_cov, loose=loose,
                                             depth=depth, rank=rank, tmin=tmin, tmax=tmax,
                                             allow_missing_types=allow_missing_types,
                                             verbose=verbose)
    problem.check_pick_ori(pick_ori)  # refused before solving
    automatic = isinstance(alpha, str)
    rule = {"auto": DEFAULT_RULE}.get(alpha, alpha) if automatic else None
    if not automatic:
        progress.step(f"solving ({penalty}, alpha = {alpha} x lambda_max, "
                      f"{problem.n_sources} sources x {problem.n_orient} orientations, "
                      f"{problem.data.shape[1]} time samples)")
        show, bar = _solver_progress(progress), None
    else:
        progress.info(f"choosing lambda by {RULE_NAMES.get(rule, rule)} ({penalty}, "
                      f"{problem.n_sources} sources x {problem.n_orient} orientations, "
                      f"{problem.data.shape[1]} time samples)")
        show, bar = _search_progress(progress, rule)
    trials = _whitened_epochs(problem, epochs) if confidence else None
    try:
        solution = solve_inverse(
            problem, alpha=alpha, penalty=penalty, penalty_params=penalty_params, tol=tol,
            debias=debias, random_state=random_state, sure_curve=sure_curve,
            max_time=max_time, callback=show if bar is not None else None,
            solver_callback=show if bar is None else None, verbose=verbose,
            confidence=confidence, epochs=trials, head_model=head_model)
    finally:
        if bar is not None:
            bar.close()
    progress.done()
    coef = solution.full_coef()
    alpha_abs, solver_info, selection = solution.alpha, solution.solver_info, solution.selection
    if selection is not None:
        progress.info(f"{RULE_NAMES.get(rule, rule)} chose lambda = "
                      f"{selection.alpha_fraction:.3f} x lambda_max ({selection.n_solves} "
                      f"solves, {selection.time:.1f} s)" + _floor_note(selection))
    stc = problem.to_stc(coef, pick_ori=pick_ori)
    cancellation = problem.field_cancellation(coef)
    problem.warn_if_cancelling(cancellation, penalty)
    records = source_records(problem, coef, subject=subject, subjects_dir=subjects_dir)
    annotate_records(records, confidence=solution.confidence, subject=subject,
                     subjects_dir=subjects_dir)
    reported = reported_sources(
        records, solution.clusters, times=problem.times,
        frames_of=lambda idx: source_frames(problem, idx, subject=subject,
                                            subjects_dir=subjects_dir)[0],
        label_at=lambda index, mni: source_label_at(problem, index, mni, subject=subject,
                                                    subjects_dir=subjects_dir))
    if not records:
        warnings.warn(f"No active source at alpha = {alpha_abs / problem.alpha_max:.3g} x "
                      "lambda_max.", stacklevel=2)
    noise = problem.noise_estimate
    residual_ratio = problem.residual_ratio(coef)
    extra = {
        "noise": {**noise.as_dict(), "residual_ratio": residual_ratio},
        "confidence": {"method": ("stability selection over "
                                  + _SCHEME_WORDS.get(solution.confidence_scheme,
                                                      "channel subsamples")
                                  + (" and trial bootstrap" if trials is not None else "")
                                  + ", above the noise-only threshold"),
                       "n_resamples": int(confidence), "match_mm": MATCH_MM,
                       "faded_below": CONFIDENT} if confidence else None,
        # The few parts of the brain: clusters of neighbouring grid sources.
        "reported_sources": reported,
        # How their positions were fitted (the forward's BEM, or interpolated fields).
        "position_model": solution.position_model,
        "cluster_radius_mm": CLUSTER_RADIUS_MM,
        "minor_sources_dropped": len(solution.minor_clusters),
    }
    if selection is not None:
        extra["alpha_selection"] = {
            "method": selection.method, "rule": alpha,
            "criterion": _json_float(selection.sure),
            "discrepancy_floor_raises": (int(selection.n_raises) if selection.method == "bic"
                                         else None),
            "n_outer_iter": int(selection.n_outer_iter), "n_solves": int(selection.n_solves),
            "dof": _json_float(selection.dof), "time_s": float(selection.time),
            "empty": bool(selection.empty), "at_search_bound": bool(selection.at_bound),
            "search_bound": getattr(selection, "search_bound", None),
            "random_state": random_state,
            "path": {"alpha_fraction": [a / problem.alpha_max for a in selection.history["alphas"]],
                     "criterion": [_json_float(v) for v in selection.history["sure"]]},
        }
    extra["warnings"] = result_warnings(
        records, field_cancellation=cancellation, residual_ratio=residual_ratio,
        alpha_fraction=alpha_abs / problem.alpha_max, empty=not records, penalty=penalty,
        n_channels=len(problem.ch_names), reported=reported, **selection_facts(selection))
    return Localization(stc=stc, problem=problem, coef=coef, alpha=alpha_abs,
                        alpha_fraction=alpha_abs / problem.alpha_max, penalty=penalty,
                        solver_info=solver_info, records=records, subject=subject,
                        subjects_dir=subjects_dir, extra=extra, selection=selection,
                        field_cancellation=cancellation)


def check_output_dir(out_dir, *, overwrite=False):
    """Fail early, before any computation, when the output folder can't be written.

    See :class:`meeg_inverse._output_dir.OutputFolder` for what is checked.

    Returns
    -------
    out_dir : Path
        The resolved folder.
    """
    return OutputFolder(out_dir, overwrite=overwrite).path


def write_outputs(result, out_dir, *, basename="sources", figures=True, progress=None,
                  overwrite=False, folder=None, extra_files=None, report_inputs=None):
    """Write the source estimate, the JSON summary and figures into ``out_dir``.

    Everything is written into a staging folder first and put in place at the
    end, as a whole: a failure leaves no half-written output, and a previous
    result is replaced entirely (with ``overwrite=True``), never mixed.

    Parameters
    ----------
    overwrite : bool
        Replace a previous result in ``out_dir``; without it such a folder is
        refused (:class:`InputError`).
    folder : OutputFolder | None
        A folder already reserved by the caller (checked and locked before
        computing); ``out_dir`` and ``overwrite`` are then ignored.
    extra_files : dict | None
        Name → file or folder to copy into the result as well.
    report_inputs : dict | None
        ``evoked``, ``noise_cov``, ``forward`` shown in the report for
        provenance (see :func:`meeg_inverse.report.write_result_report`).
        With ``figures``, the report (``index.html``, an ``mne.Report``, and
        ``report.h5`` for :func:`mne.open_report`) is written.

    Returns
    -------
    paths : dict
        Name → path of each file written.
    """
    progress = progress or Progress(enabled=False)
    _check_not_empty(result)
    own = folder is None
    if own:
        folder = OutputFolder(out_dir, overwrite=overwrite).acquire()
    staging = folder.staging
    try:
        progress.step("writing the source estimate and summary")
        written = outputs.write_estimate(result, staging, basename=basename,
                                         extra_files=extra_files)
        summary = result.summary()
        if figures:
            progress.step("drawing figures")
            inputs = outputs.FigureInputs.of(result, report_inputs)
            written.update(outputs.draw_figures(staging, summary, inputs))
            progress.step("writing the report")
            outputs.write_report(staging, summary, written, inputs)
        outputs.write_summary(staging, summary, written)
        progress.step("moving the outputs into place")
        folder.commit()
        progress.done()
    finally:
        if own:
            folder.release()
    out_dir = folder.path
    return {name: ([out_dir / f for f in files] if isinstance(files, list) else out_dir / files)
            for name, files in written.items()}


def _check_not_empty(result):
    if not result.records:
        raise InputError(
            f"The estimate is empty: no source is active at alpha = {result.alpha_fraction:.3g} "
            "x lambda_max, so there is nothing to write.",
            "give a smaller --alpha explicitly (e.g. 0.2).")


def hand_off_outputs(result, staging, *, figures=True, progress=None, extra_files=None,
                     report_inputs=None):
    """The compute stage's part of :func:`write_outputs` (see :mod:`meeg_inverse._stages`).

    Writes the source estimate into ``staging``; with ``figures``, pickles what
    the figures stage draws from (:class:`meeg_inverse.outputs.FigureInputs`,
    the summary, the files written) into ``staging`` too, else writes
    ``summary.json`` at once. Nothing is put in place: the launcher does that.
    """
    from ._stages import dump_handoff

    progress = progress or Progress(enabled=False)
    _check_not_empty(result)
    progress.step("writing the source estimate and summary")
    written = outputs.write_estimate(result, staging, extra_files=extra_files)
    summary = result.summary()
    if figures:
        dump_handoff({"summary": summary, "written": written,
                      "inputs": outputs.FigureInputs.of(result, report_inputs)}, staging)
    else:
        outputs.write_summary(staging, summary, written)
    progress.done()


def _named_in_result(path, extra_files, out_dir):
    """``path``, or where it will be in the result when it is among ``extra_files``
    (the demo's simulated inputs: their temporary folder is gone afterwards)."""
    for name, source in (extra_files or {}).items():
        try:
            return Path(out_dir) / name / Path(path).resolve().relative_to(
                Path(source).resolve())
        except ValueError:
            continue
    return path


def localize_file(recording, out_dir, *, forward_spec=None, noise_cov=None, empty_room=None,
                  condition=None, events=None, epoch_tmin=None, epoch_tmax=None,
                  baseline=(None, 0), reject=None, tmin=None, tmax=None, alpha="auto",
                  penalty=None, penalty_params=None, loose="auto", depth=0.8, pick_ori=None,
                  rank=None, tol=1e-6, random_state=0, sure_curve=False, debias=True,
                  bads=None, ch_types=None, figures=True, progress=None, verbose=False,
                  overwrite=False, exclude=None, allow_missing_types=False, extra_files=None):
    """Run the whole pipeline on a file and write its outputs (what the CLI runs).

    The output folder is checked and locked before anything is read (see
    :class:`meeg_inverse._output_dir.OutputFolder`). Channels left out (bad,
    or missing from the forward solution or the noise covariance) are reported
    and recorded in the summary; losing a whole channel type of the recording
    raises :class:`InputError` unless ``allow_missing_types``.

    Parameters
    ----------
    overwrite : bool
        Replace a previous result in ``out_dir`` as a whole.
    exclude : list of str | None
        Channels to leave out (e.g. EOG electrodes typed as EEG).
    allow_missing_types : bool
        Localize even when a channel type of the recording is lost.
    extra_files : dict | None
        Name → file or folder copied into the result (see :func:`write_outputs`).

    Returns
    -------
    result : Localization
    paths : dict
    """
    progress = progress or Progress()
    folder = OutputFolder(out_dir, overwrite=overwrite).acquire()
    try:
        return _localize_file(
            recording, folder, forward_spec=forward_spec, noise_cov=noise_cov,
            empty_room=empty_room, condition=condition, events=events,
            epoch_tmin=epoch_tmin, epoch_tmax=epoch_tmax, baseline=baseline, reject=reject,
            tmin=tmin, tmax=tmax, alpha=alpha, penalty=penalty, penalty_params=penalty_params,
            loose=loose, depth=depth, pick_ori=pick_ori, rank=rank, tol=tol,
            random_state=random_state, sure_curve=sure_curve, debias=debias, figures=figures,
            progress=progress, verbose=verbose, exclude=exclude, bads=bads, ch_types=ch_types,
            allow_missing_types=allow_missing_types, extra_files=extra_files)
    finally:
        folder.release()


def _localize_file(recording, folder, *, forward_spec, noise_cov, empty_room, condition, events,
                   epoch_tmin, epoch_tmax, baseline, reject, tmin, tmax, alpha, penalty,
                   penalty_params, loose, depth, pick_ori, rank, tol, random_state, sure_curve,
                   debias, figures, progress, verbose, exclude, allow_missing_types,
                   extra_files, bads=None, ch_types=None, staged=False):
    """``staged``: the compute stage of :mod:`meeg_inverse._stages` — the outputs
    and the figures' inputs are left in ``folder.staging`` (:func:`hand_off_outputs`);
    returns ``(result, None)``."""
    from .channel_report import channel_report, check_channel_types

    if figures and not staged:
        # The off-screen rendering check (a VTK subprocess, 1-2 s) runs meanwhile.
        from .viz._render import start_backend_probe

        start_backend_probe()
    forward_spec = forward_spec or ForwardSpec()
    from ._choices import check_forward_spec

    check_forward_spec(forward_spec)
    progress.step(f"reading {Path(str(recording)).name}")
    loaded = load_data(recording, condition=condition, events=events, epoch_tmin=epoch_tmin,
                       epoch_tmax=epoch_tmax, baseline=baseline, reject=reject,
                       montage=forward_spec.montage, montage_match=forward_spec.montage_match,
                       bads=bads, ch_types=ch_types, exclude=exclude, verbose=verbose)
    for note in loaded.notes:
        progress.info(f"note: {note}")
    # What is localized is always said: the condition and the time window.
    others = [c for c in loaded.conditions if c != loaded.evoked.comment]
    progress.info(f"condition {loaded.evoked.comment!r}"
                  + (f" (the first of {len(loaded.conditions)}; the others: "
                     f"{', '.join(map(repr, others[:6]))}; choose with --condition)"
                     if others and condition is None else
                     f", {loaded.evoked.nave} trial(s)" if loaded.evoked.nave else ""))
    if loaded.baseline_applied:
        progress.info(f"the evoked response was saved without baseline correction: "
                      f"applied baseline {baseline}")
    times = loaded.evoked.times
    if tmin is None and times[0] < 0 <= times[-1]:
        # The pre-stimulus part is the noise reference, not a response to localize.
        tmin = 0.0
        progress.info(f"time window {tmin:.3f} to "
                      f"{times[-1] if tmax is None else tmax:.3f} s: after the stimulus "
                      "(choose with --tmin/--tmax)")
    else:
        progress.info(f"time window {times[0] if tmin is None else tmin:.3f} to "
                      f"{times[-1] if tmax is None else tmax:.3f} s")
    progress.step("getting the noise covariance")
    cov = load_noise_cov(noise_cov, loaded, empty_room=empty_room, verbose=verbose)
    what = ("reading the forward solution" if forward_spec.forward is not None else
            "building the forward model (a few minutes the first time)")
    progress.step(what)
    # load_data has put the montage's positions on the channels already (and retyped
    # EOG electrodes): matching it again by order would count the retyped ones.
    from dataclasses import replace

    fwd, subject, subjects_dir = load_forward(replace(forward_spec, montage=None),
                                              loaded.evoked.info, verbose=verbose)
    progress.done()
    report = channel_report(loaded.evoked.info, fwd, cov)
    for line in report.lines():
        progress.warn(line)
    check_channel_types(report, allow=allow_missing_types)
    coordinates = "MNI"
    if subject != TEMPLATE_SUBJECT and subjects_dir is None:
        coordinates = "head"
        progress.info("source positions are in head coordinates: MNI coordinates need the "
                      "subject's MRI (add --subjects-dir)")
    trials = None
    if loaded.epochs is not None:  # the trials of the localized condition, for the confidence
        try:
            trials = loaded.epochs[loaded.evoked.comment]
        except KeyError:
            trials = loaded.epochs if len(loaded.conditions) == 1 else None
    head_model = "auto"  # the BEM the forward names, if any
    built_with_bem = (forward_spec.forward is None
                      and forward_spec.subject not in (None, TEMPLATE_SUBJECT))
    if forward_spec.bem is not None and not built_with_bem:
        # --bem with a forward file or the template: the reported sources' dipole fits.
        from .dipole_positions import checked_head_model

        head_model = checked_head_model(forward_spec.bem, forward_spec.trans, fwd,
                                        loaded.evoked.info)
    result = localize(loaded.evoked, fwd, cov, alpha=alpha, penalty=penalty, loose=loose,
                      depth=depth, tmin=tmin, tmax=tmax, pick_ori=pick_ori, rank=rank, tol=tol,
                      penalty_params=penalty_params, random_state=random_state,
                      sure_curve=sure_curve, debias=debias, subject=subject,
                      subjects_dir=subjects_dir, progress=progress, verbose=verbose,
                      epochs=trials, head_model=head_model,
                      allow_missing_types=allow_missing_types)  # checked and reported above
    if loaded.notes:  # what the channel matching did
        result.extra["notes"] = loaded.notes
    result.extra["recording"] = str(_named_in_result(recording, extra_files, folder.path))
    result.extra["conditions_available"] = loaded.conditions
    result.extra["baseline_applied"] = list(baseline) if loaded.baseline_applied else None
    result.extra["channels"] = report.as_dict()
    result.extra["notes"] = list(loaded.notes) + report.lines()
    result.extra["coordinates"] = (
        "MNI (position_mni_mm)" if coordinates == "MNI" else
        "head only (position_head_mm): no subjects folder, so MNI is unknown")
    progress.info(f"{len(result.records)} active source(s), explained variance "
                  f"{100 * result.explained_variance:.1f} %")
    report_inputs = {"evoked": loaded.evoked, "noise_cov": cov, "forward": fwd}
    if staged:
        hand_off_outputs(result, folder.staging, figures=figures, progress=progress,
                         extra_files=extra_files, report_inputs=report_inputs)
        return result, None
    paths = write_outputs(result, folder.path, figures=figures, progress=progress, folder=folder,
                          extra_files=extra_files, report_inputs=report_inputs)
    return result, paths
