"""Cohorts: a BIDS dataset localized on a Dask cluster, resumable, with a group summary.

The dataset is read through **mne-bids** (``get_entity_vals``, ``BIDSPath``,
``read_raw_bids``, the events of each run's ``events.tsv``); the work runs on
**dask.distributed**: a ``LocalCluster`` (``workers``) or the scheduler of a
running cluster (``scheduler``, e.g. from dask-jobqueue or Kubernetes).

The graph has two kinds of task:

- one *preparation* per (subject, session): the forward model (a file named
  by ``forward``, the subject's FreeSurfer anatomy with the head↔MRI
  transform of its BIDS T1w landmarks, or the template head) and the noise
  covariance (the session's empty-room recording when BIDS has one, else the
  pre-stimulus baselines of the localized conditions' epochs of all its runs
  pooled, as a single run takes its condition's), made into **one** prepared
  operator (:mod:`meeg_inverse.operator`) written as HDF5 and read once per
  worker;
- one *localization* per (subject, session, run, condition), which applies
  that operator and writes its folder atomically
  (:class:`meeg_inverse._output_dir.OutputFolder`).

Each output carries a content key — the inputs' sizes and modification
times, the options that matter to it, the package version — so a rerun skips
what is finished and up to date, and a changed option redoes only what it
affects: the forward, the operator and the localizations each have their own
key (:data:`FORWARD_OPTIONS`, :data:`OPERATOR_OPTIONS`, :data:`SOLVE_OPTIONS`).
A task that fails is recorded with its message; the others complete. A
worker that dies has its tasks rerun by Dask; the atomic folders leave no
duplicate or half-written output.

Outputs (BIDS derivatives)::

    BIDS_ROOT/derivatives/meeg-inverse/
        dataset_description.json
        sub-XX/[ses-YY/]sub-XX[_ses-YY]_task-T_fwd.fif     forward (per subject/session)
        sub-XX/[ses-YY/]sub-XX[_ses-YY]_task-T_cov.fif     noise covariance
        sub-XX/[ses-YY/]sub-XX[_ses-YY]_task-T_inv.h5      prepared operator
        sub-XX/[ses-YY/]sub-XX[_ses-YY]_task-T[_run-R]_desc-COND/   one localization
            summary.json, sources-stc.h5, figures, viewer.html, index.html (mne.Report)
        group/task-T_sources.tsv, task-T_tasks.tsv, task-T_sources.png, index.html
"""

from __future__ import annotations

import csv
import hashlib
import json
import numbers
import os
import re
import sys
import time
import traceback
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path


from .errors import InputError

DERIVATIVE_NAME = "meeg-inverse"
#: Raw data files mne-bids reads (the data file of a run, not its sidecars).
DATA_EXTENSIONS = (".fif", ".set", ".vhdr", ".edf", ".bdf", ".con", ".sqd", ".ds", ".mff")
DATATYPES = ("meg", "eeg")

#: Options of the forward model: a change rebuilds the forward (and all after it).
FORWARD_OPTIONS = ("forward", "spacing", "montage", "montage_match")
#: Options of the operator (noise covariance and weighting).
OPERATOR_OPTIONS = ("epoch_tmin", "epoch_tmax", "baseline", "reject", "loose", "depth", "rank")
#: Options of each localization.
SOLVE_OPTIONS = ("alpha", "penalty", "tmin", "tmax", "tol", "random_state", "confidence",
                 "figures", "report_inputs")


@dataclass(frozen=True)
class CohortOptions:
    """What a cohort run computes (every field is part of some content key).

    Attributes
    ----------
    forward : str | None
        A forward solution file per subject, as a pattern relative to the BIDS
        root with ``{subject}`` and ``{session}`` (e.g.
        ``'derivatives/forward/sub-{subject}/sub-{subject}_fwd.fif'``).
    spacing : str | None
        Source spacing when the forward is built (template: ``'ico4'``,
        subject MRI: ``'oct6'``).
    montage, montage_match : str | None, str
        Electrode positions for EEG recordings without any (see
        :func:`meeg_inverse.forward.ensure_sensor_positions`).
    epoch_tmin, epoch_tmax, baseline, reject
        Epoching of the raw recordings (as ``meeg-inverse localize``).
    loose, depth, rank
        Orientation constraint, depth weighting, noise covariance rank.
    alpha, penalty, tmin, tmax, tol, random_state, confidence
        As :func:`meeg_inverse.pipeline.localize`.
    figures : bool
        Draw the figures and the viewer of each localization.
    report_inputs : bool
        Add the inputs (evoked, covariance, forward) to each report.
    """

    forward: str | None = None
    spacing: str | None = None
    montage: str | None = None
    montage_match: str = "name"
    epoch_tmin: float = -0.2
    epoch_tmax: float = 0.5
    baseline: tuple = (None, 0)
    reject: dict | None = None
    loose: float | str = "auto"
    depth: float | None = 0.8
    rank: object = None
    alpha: float | str = "auto"
    penalty: str | None = None
    tmin: float | None = None
    tmax: float | None = None
    tol: float = 1e-6
    random_state: int = 0
    confidence: int | None = None
    figures: bool = True
    report_inputs: bool = True

    def part(self, names):
        d = asdict(self)
        return {k: d[k] for k in names}


# ----------------------------------------------------------------- the plan
@dataclass
class Recording:
    """One run of one subject (and session) in the BIDS dataset."""

    subject: str
    session: str | None
    run: str | None
    datatype: str
    fpath: str
    conditions: list

    def bids_path(self, root, task):
        import mne_bids

        return mne_bids.BIDSPath(root=root, subject=self.subject, session=self.session,
                                 task=task, run=self.run, datatype=self.datatype,
                                 suffix=self.datatype, extension=Path(self.fpath).suffix)


@dataclass
class SubjectGroup:
    """The runs of one (subject, session): they share one forward and one operator."""

    subject: str
    session: str | None
    recordings: list
    folder: Path
    base: str
    forward_key: str = ""
    operator_key: str = ""
    anatomy: dict = field(default_factory=dict)
    #: The conditions localized in the session (their epochs' baselines: the noise covariance).
    conditions: list = field(default_factory=list)

    @property
    def name(self):
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def forward_file(self):
        return self.folder / f"{self.base}_fwd.fif"

    @property
    def cov_file(self):
        return self.folder / f"{self.base}_cov.fif"

    @property
    def operator_file(self):
        return self.folder / f"{self.base}_inv.h5"

    @property
    def operator_sidecar(self):
        return self.folder / f"{self.base}_inv.json"


@dataclass
class Task:
    """One localization: a condition of one run."""

    subject: str
    session: str | None
    run: str | None
    condition: str
    recording: Recording
    folder: Path
    key: str = ""
    group: str = ""

    @property
    def name(self):
        return self.folder.name


def _safe(text):
    """A BIDS label (letters and digits) from a condition name."""
    label = re.sub(r"[^A-Za-z0-9]", "", str(text))
    return label or "none"


def _desc(condition, conditions):
    """The BIDS ``desc`` label of a condition, unique among the run's ``conditions``.

    Letters and digits only (:func:`_safe`); when two conditions give the same label
    ('Left/Aud' and 'LeftAud'), each gets a short hash of its full name, so that
    they do not share (and overwrite) one output folder.
    """
    label = _safe(condition)
    if sum(_safe(c) == label for c in conditions) > 1:
        label += hashlib.sha1(str(condition).encode()).hexdigest()[:6]
    return label


def _fingerprint(paths, root):
    """Path (relative to the BIDS root), size and modification time of each file.

    Sizes and times, not hashes: reading every recording on each rerun would
    cost as much as the run itself for large datasets; a changed file gets a
    new time.
    """
    out = []
    for p in sorted(set(map(Path, paths))):
        try:
            st = p.stat()
        except OSError:
            out.append([str(p), None, None])
            continue
        try:
            rel = str(p.relative_to(root))
        except ValueError:
            rel = str(p)
        out.append([rel, st.st_size, st.st_mtime_ns])
    return out


def _key(*parts):
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _version():
    from . import __version__

    return __version__


def _run_files(rec):
    """The files of a run: data file, its binary companion, sidecars, events."""
    fpath = Path(rec.fpath)
    stem = fpath.name[: -len(fpath.suffix)]
    prefix = stem[: -len(rec.datatype)] if stem.endswith(rec.datatype) else stem
    return [p for p in fpath.parent.iterdir() if p.name.startswith(prefix)
            or (p.is_dir() and p == fpath)]


def _session_files(group):
    """Files of the (subject, session) other than runs of other tasks: electrodes, coordsystem."""
    folders = {Path(r.fpath).parent for r in group.recordings}
    out = []
    for folder in folders:
        for p in folder.iterdir():
            if "_task-" not in p.name:
                out.append(p)
    return out


def _events_conditions(rec_fpath, datatype):
    """Trial types listed in a run's events.tsv (None when it has none)."""
    fpath = Path(rec_fpath)
    stem = fpath.name[: -len(fpath.suffix)]
    events = fpath.parent / (stem[: -len(datatype)] + "events.tsv")
    if not events.is_file():
        return None
    with open(events, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "trial_type" not in rows[0]:
        return []
    return list(dict.fromkeys(r["trial_type"] for r in rows if r["trial_type"] not in ("", "n/a")))


def find_recordings(bids_root, task, *, subjects=None, sessions=None):
    """The runs of ``task`` in a BIDS dataset, through mne-bids.

    Returns
    -------
    recordings : list of Recording

    Raises
    ------
    InputError
        Not a BIDS dataset, unknown task or subjects, no recording.
    """
    import mne_bids

    root = Path(bids_root)
    if not (root / "dataset_description.json").is_file():
        raise InputError(f"{str(root)!r} is not a BIDS dataset (no dataset_description.json).",
                         "give the root folder of a BIDS dataset (mne_bids.write_raw_bids "
                         "writes one).")
    ignore = ["emptyroom"]
    all_subjects = mne_bids.get_entity_vals(root, "subject", ignore_subjects=ignore)
    tasks = mne_bids.get_entity_vals(root, "task", ignore_tasks=["noise"])
    if task not in tasks:
        raise InputError(f"The dataset has no task {task!r}.",
                         f"choose one of: {', '.join(map(repr, tasks)) or '(none)'} (--task).")
    # every label asked for must exist: a typo would otherwise drop it silently
    for entity, asked in (("subject", subjects), ("session", sessions)):
        if not asked:
            continue
        known = all_subjects if entity == "subject" else mne_bids.get_entity_vals(root, entity)
        unknown = [s for s in asked if s not in known]
        if unknown:
            raise InputError(f"{entity.capitalize()}(s) {', '.join(map(repr, unknown))} not in "
                             "the dataset.",
                             (f"choose among: {', '.join(known)} (without '{entity[:3]}-')."
                              if known else f"the dataset has no {entity} level: leave out "
                              f"--{entity}s."))
    recordings = []
    for subject in subjects or all_subjects:
        bp = mne_bids.BIDSPath(root=root, subject=subject, task=task)
        for path in bp.match(ignore_json=True):
            if path.suffix not in DATATYPES or path.extension not in DATA_EXTENSIONS:
                continue
            if path.datatype not in DATATYPES:
                continue
            if sessions and path.session not in sessions:
                continue
            recordings.append(Recording(
                subject=path.subject, session=path.session, run=path.run,
                datatype=path.datatype, fpath=str(path.fpath),
                conditions=_events_conditions(path.fpath, path.datatype)))
    if not recordings:
        raise InputError(f"No MEG or EEG recording of task {task!r} found"
                         + (f" for subjects {', '.join(subjects)}" if subjects else "") + ".",
                         "check the task name and the subjects (--subjects).")
    recordings.sort(key=lambda r: (r.subject, r.session or "", r.run or "", r.datatype))
    return recordings


def _out_root(bids_root, out):
    return Path(out) if out is not None else Path(bids_root) / "derivatives" / DERIVATIVE_NAME


def plan_cohort(bids_root, task, *, subjects=None, sessions=None, conditions=None,
                options=None, subjects_dir=None, out=None):
    """Every (subject, session) group and localization task, with their content keys.

    Returns
    -------
    groups : list of SubjectGroup
    tasks : list of Task
    problems : list of dict
        Runs that cannot give a task (no events file, condition absent), with
        the message recorded in the group summary.
    """
    options = options or CohortOptions()
    # a label given twice (--subjects a a) made its tasks twice: run once, in the order given
    subjects, sessions, conditions = (list(dict.fromkeys(x)) if x else x
                                      for x in (subjects, sessions, conditions))
    root = Path(bids_root).resolve()
    out_root = _out_root(root, out)
    recordings = find_recordings(root, task, subjects=subjects, sessions=sessions)
    version = _version()
    groups, tasks, problems = [], [], []
    by_group = {}
    for rec in recordings:
        by_group.setdefault((rec.subject, rec.session), []).append(rec)
    if conditions:
        # a condition no run has is a typo, not a paradigm some subjects lack
        present = list(dict.fromkeys(c for r in recordings for c in (r.conditions or [])))
        absent = [c for c in conditions if c not in present]
        if absent and (subjects or sessions):  # other subjects of the task may have it
            present = list(dict.fromkeys(c for r in find_recordings(root, task)
                                         for c in (r.conditions or [])))
            absent = [c for c in conditions if c not in present]
        if absent:
            raise InputError(f"Condition(s) {', '.join(map(repr, absent))} in no events file "
                             f"of task {task!r}.",
                             f"choose among the trial_type values: "
                             f"{', '.join(map(repr, present)) or '(none)'} (--conditions).")
    for (subject, session), recs in by_group.items():
        folder = out_root / f"sub-{subject}" / (f"ses-{session}" if session else "")
        base = f"sub-{subject}" + (f"_ses-{session}" if session else "") + f"_task-{task}"
        group = SubjectGroup(subject, session, recs, folder, base)
        group.anatomy = _anatomy(root, group, options, subjects_dir)
        sensor_files = [p for r in recs for p in _run_files(r) if "_events." not in p.name]
        forward_options = options.part(FORWARD_OPTIONS)
        if group.anatomy["kind"] == "file":  # a forward file keeps its own source spacing
            forward_options.pop("spacing")
        group.forward_key = _key("forward", version, forward_options,
                                 _fingerprint(sensor_files + _session_files(group), root),
                                 _fingerprint(group.anatomy.get("files", []), root),
                                 {k: v for k, v in group.anatomy.items() if k != "files"})
        all_files = [p for r in recs for p in _run_files(r)] + group.anatomy.get("empty_room", [])
        # the conditions localized in this session: their baselines make its noise covariance
        group.conditions = list(dict.fromkeys(
            c for r in recs for c in (conditions or r.conditions or [])
            if c in (r.conditions or [])))
        group.operator_key = _key("operator", group.forward_key, options.part(OPERATOR_OPTIONS),
                                  _fingerprint(all_files, root), group.conditions)
        groups.append(group)
        for rec in recs:
            run_label = f"_run-{rec.run}" if rec.run else ""
            available = rec.conditions
            if available is None:
                problems.append(dict(subject=subject, session=session, run=rec.run,
                                     condition=None, status="failed",
                                     message=f"{Path(rec.fpath).name}: no events file "
                                     "(events.tsv), so no condition to localize."))
                continue
            # a run holding some of the conditions asked for gives those (a cohort may
            # mix paradigms); one holding none of them is recorded as failed
            wanted = [c for c in (conditions or available) if c in available]
            if not available:
                problems.append(dict(subject=subject, session=session, run=rec.run,
                                     condition=", ".join(conditions or []) or None,
                                     status="failed",
                                     message=f"{Path(rec.fpath).name}: its events.tsv lists no "
                                     "event (no trial_type), so no condition to localize."))
                continue
            if not wanted:
                problems.append(dict(subject=subject, session=session, run=rec.run,
                                     condition=", ".join(conditions or []), status="failed",
                                     message=f"{Path(rec.fpath).name}: none of the conditions "
                                     f"{', '.join(map(repr, conditions or []))} in its events "
                                     f"(has: {', '.join(available) or 'none'})."))
                continue
            for cond in wanted:
                t = Task(subject, session, rec.run, cond, rec,
                         group.folder / f"{base}{run_label}_desc-{_desc(cond, available)}",
                         group=group.name)
                t.key = _key("localization", group.operator_key, t.name, cond,
                             _fingerprint(_run_files(rec), root), options.part(SOLVE_OPTIONS))
                tasks.append(t)
    if options.spacing is not None and groups and all(
            g.anatomy["kind"] == "file" for g in groups):
        # A spacing no forward is built with would be a silent change of what was asked.
        raise InputError(f"--spacing {options.spacing} would have no effect: every subject's "
                         "forward solution comes from the --forward files, computed with "
                         "their own source space.",
                         "drop --spacing, or leave out --forward for the subjects whose "
                         "forward should be built here.")
    return groups, tasks, problems


def _anatomy(root, group, options, subjects_dir):
    """Where the forward of a (subject, session) comes from (a dict, part of its key)."""
    fs_dir = Path(subjects_dir) if subjects_dir else root / "derivatives" / "freesurfer"
    fs_subject = None
    for name in (f"sub-{group.subject}", group.subject):
        if (fs_dir / name).is_dir():
            fs_subject = name
            break
    info = {"subjects_dir": str(fs_dir) if fs_subject else None, "fs_subject": fs_subject}
    if options.forward:
        fname = root / options.forward.format(subject=group.subject,
                                              session=group.session or "")
        if fname.is_file():
            info.update(kind="file", forward=str(fname), files=[fname])
            return _with_empty_room(root, group, info)
    if fs_subject is not None:
        files = [p for p in (fs_dir / fs_subject / "bem").glob("*-sol.fif")]
        t1 = list((root / f"sub-{group.subject}").rglob("*_T1w.json"))
        info.update(kind="mri", files=files + t1)
    else:
        info.update(kind="template")
    return _with_empty_room(root, group, info)


def _with_empty_room(root, group, info):
    """The session's empty-room recording, found by mne-bids (MEG only)."""
    rec = next((r for r in group.recordings if r.datatype == "meg"), None)
    info["empty_room"] = []
    if rec is None:
        return info
    try:
        bp = rec.bids_path(root, _task_of(rec))
        er = bp.find_empty_room(use_sidecar_only=False, verbose=False)
    except Exception:  # no sub-emptyroom, no date: the baselines are used
        er = None
    if er is not None and Path(er.fpath).exists():
        info["empty_room"] = [Path(er.fpath)]
    return info


def _task_of(rec):
    match = re.search(r"_task-([A-Za-z0-9]+)", Path(rec.fpath).name)
    return match.group(1) if match else None


# -------------------------------------------------------- what workers run
def _read_raw(rec, root):
    import mne_bids

    bp = rec.bids_path(root, _task_of(rec))
    try:
        # loaded here (as localize preloads raws) so that a truncated or corrupt file
        # fails with its name, not later inside the epoching with MNE's internal message
        return mne_bids.read_raw_bids(bp, verbose=False).load_data(verbose=False)
    except Exception as exc:  # noqa: BLE001 - any reader's error means the same here
        raise InputError(f"{Path(rec.fpath).name} cannot be read ({type(exc).__name__}: "
                         f"{exc}).",
                         "check or replace that file (a truncated copy or an interrupted "
                         "transfer?); the other runs are not affected.") from None


def _load(rec, root, options, condition=None):
    from .pipeline import _eeg_without_positions, load_data

    raw = _read_raw(rec, root)
    # The montage is for EEG recordings without positions: one cohort may mix
    # those with MEG or digitized EEG, whose positions are kept.
    montage = options.montage if _eeg_without_positions(raw.info) else None
    return load_data(raw, condition=condition, epoch_tmin=options.epoch_tmin,
                     epoch_tmax=options.epoch_tmax, baseline=options.baseline,
                     reject=options.reject, montage=montage,
                     montage_match=options.montage_match)


def _write_atomic(path, writer):
    """Write a file through a temporary name renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")  # keeps MNE's name ending
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove_dead_tmp(folder):
    """Temporary files of killed workers (``.tmp<pid>-*``; pids of this machine)."""
    from ._output_dir import _pid_alive

    if not Path(folder).is_dir():
        return
    for p in Path(folder).iterdir():
        m = re.match(r"^\.tmp(\d+)-", p.name)
        if m and not _pid_alive(int(m.group(1))):
            p.unlink(missing_ok=True)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def prepare_group(group, root, options, force=False):
    """Forward, noise covariance and prepared operator of one (subject, session).

    Each of the three is reused when its key is unchanged. Runs on a worker.

    Returns
    -------
    status : dict
        ``status`` ('built' | 'reused' | 'failed'), the operator file and its
        sidecar (subject, subjects folder), ``message`` when it failed.
    """
    t0 = time.perf_counter()
    try:
        _remove_dead_tmp(group.folder)
        side = _read_json(group.operator_sidecar)
        if (not force and side is not None and side.get("key") == group.operator_key
                and group.operator_file.is_file()):
            # the files are where this run looks (a derivatives folder may be moved)
            side.update(operator=str(group.operator_file), forward=str(group.forward_file),
                        cov=str(group.cov_file))
            return {**side, "status": "reused", "seconds": time.perf_counter() - t0}
        side = _build_operator(group, root, options, force)
        return {**side, "status": "built", "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded in the group summary; the others go on
        return {"status": "failed", "message": _message(exc), "group": group.name,
                "seconds": time.perf_counter() - t0}


def _build_operator(group, root, options, force=False):
    import mne

    from . import io as mio
    from .channel_report import channel_report
    from .forward import TEMPLATE_SUBJECT, check_forward_matches, read_forward
    from .operator import make_sparse_inverse_operator
    from .pipeline import ForwardSpec, load_forward

    loaded = [_load(rec, root, options) for rec in group.recordings]
    info = loaded[0].evoked.info
    anatomy = group.anatomy
    # the forward: reused when its key is unchanged
    fwd_side = group.forward_file.with_suffix(".json")
    side = _read_json(fwd_side)
    subject, subjects_dir = anatomy.get("fs_subject"), anatomy.get("subjects_dir")
    if (not force and side is not None and side.get("key") == group.forward_key
            and group.forward_file.is_file()):
        fwd = read_forward(group.forward_file)
        subject, subjects_dir = side["subject"], side["subjects_dir"]
    else:
        if anatomy["kind"] == "file":
            fwd = read_forward(anatomy["forward"])
            check_forward_matches(fwd, info)
        elif anatomy["kind"] == "mri":
            trans = _bids_trans(group, root, anatomy)
            fwd, subject, subjects_dir = load_forward(
                ForwardSpec(subject=subject, subjects_dir=subjects_dir, trans=trans,
                            spacing=options.spacing), info)
        else:
            fwd, subject, subjects_dir = load_forward(
                ForwardSpec(spacing=options.spacing), info)
        subjects_dir = None if subjects_dir is None else str(subjects_dir)
        _write_atomic(group.forward_file,
                      lambda p: mne.write_forward_solution(p, fwd, overwrite=True,
                                                           verbose=False))
        _write_atomic(fwd_side, lambda p: p.write_text(json.dumps(
            {"key": group.forward_key, "subject": subject, "subjects_dir": subjects_dir})))
    # the noise covariance: empty room, else every run's baseline pooled
    if anatomy.get("empty_room"):
        cov = mio.noise_cov_from_empty_room(anatomy["empty_room"][0])
        cov_source = f"empty room ({Path(anatomy['empty_room'][0]).name})"
    else:
        # The baselines of the localized conditions' epochs, as a single run of the condition
        # takes them (load_data with condition): the baselines of other events (e.g. button
        # presses right after a stimulus) hold responses, not noise.
        epochs = [_condition_epochs(ld.epochs, group.conditions) for ld in loaded
                  if ld.epochs is not None]
        epochs = [e for e in epochs if e is not None]
        if not epochs:
            raise InputError(f"{group.name}: no epochs to estimate the noise covariance from.",
                             "give raw recordings with events, or an empty-room recording.")
        with warnings.catch_warnings():  # the epochs' annotations are not needed here
            warnings.filterwarnings("ignore", "Concatenation of Annotations")
            both = epochs[0] if len(epochs) == 1 else mne.concatenate_epochs(
                [e.copy().load_data() for e in epochs], verbose=False)
        cov = mio.noise_cov_from_baseline(both)
        cov_source = (f"pre-stimulus baselines of {len(epochs)} run(s), {len(both)} epochs"
                      + (f" ({', '.join(map(repr, group.conditions))})"
                         if group.conditions else ""))
    _write_atomic(group.cov_file, lambda p: mne.write_cov(p, cov, overwrite=True,
                                                          verbose=False))
    report = channel_report(info, fwd, cov)
    operator = make_sparse_inverse_operator(info, fwd, cov, loose=options.loose,
                                            depth=options.depth, rank=options.rank)
    _write_atomic(group.operator_file, lambda p: operator.save(p, overwrite=True))
    side = {"key": group.operator_key, "operator": str(group.operator_file),
            "forward": str(group.forward_file), "cov": str(group.cov_file),
            "subject": subject, "subjects_dir": subjects_dir,
            "template": subject == TEMPLATE_SUBJECT, "noise_cov": cov_source,
            "anatomy": anatomy["kind"], "channel_notes": report.lines(),
            "group": group.name}
    _write_atomic(group.operator_sidecar, lambda p: p.write_text(json.dumps(side, indent=1)))
    return side


def _condition_epochs(epochs, conditions):
    """The epochs of ``conditions`` (all when none is named; None when the run has none)."""
    import numpy as np

    if not conditions:
        return epochs
    codes = [epochs.event_id[c] for c in conditions if c in epochs.event_id]
    if not codes:
        return None
    keep = np.isin(epochs.events[:, 2], codes)
    return epochs if keep.all() else epochs[np.flatnonzero(keep)]


def _bids_trans(group, root, anatomy):
    """The head↔MRI transform from the BIDS T1w landmarks (mne-bids)."""
    import mne_bids

    rec = group.recordings[0]
    try:
        return mne_bids.get_head_mri_trans(
            rec.bids_path(root, _task_of(rec)), fs_subject=anatomy["fs_subject"],
            fs_subjects_dir=anatomy["subjects_dir"], verbose=False)
    except Exception as exc:
        raise InputError(
            f"{group.name}: the head↔MRI transform cannot be read from BIDS ({exc}).",
            "write the T1w image with its landmarks (mne_bids.write_anat(..., landmarks=...)), "
            "or give a forward file per subject (--forward PATTERN).") from None


@lru_cache(maxsize=4)
def _read_operator(path, key):
    """One read per worker and operator (``key`` makes a rebuilt one read again)."""
    from .operator import read_sparse_inverse_operator

    return read_sparse_inverse_operator(path)


def localize_task(task, prepared, root, options, force=False):
    """Localize one condition of one run with its subject's operator; write its folder.

    Runs on a worker; every error is caught and returned as a message.

    Returns
    -------
    status : dict
        ``status`` ('done' | 'skipped' | 'failed'), ``folder``, ``message``,
        ``seconds``.
    """
    t0 = time.perf_counter()
    out = dict(task=task.name, subject=task.subject, session=task.session, run=task.run,
               condition=task.condition, folder=str(task.folder), key=task.key)
    try:
        done = _read_json(task.folder / "summary.json")
        if not force and done is not None and done.get("cohort", {}).get("key") == task.key:
            return {**out, "status": "skipped", "seconds": time.perf_counter() - t0}
        if prepared.get("status") == "failed":
            # the preparation's message already holds its fix (InputError's str)
            raise InputError(f"the operator of {prepared.get('group')} could not be built: "
                             f"{prepared.get('message')}")
        _localize_task(task, prepared, root, options)
        return {**out, "status": "done", "seconds": time.perf_counter() - t0}
    except Exception as exc:
        return {**out, "status": "failed", "message": _message(exc),
                "seconds": time.perf_counter() - t0}


def _message(exc):
    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} ({traceback.extract_tb(exc.__traceback__)[-1].name})"


def _localize_task(task, prepared, root, options):
    from ._output_dir import OutputFolder
    from .confidence import DEFAULT_REDRAWS
    from .pipeline import localize, write_outputs

    operator = _read_operator(prepared["operator"], prepared["key"])
    loaded = _load(task.recording, root, options, condition=task.condition)
    evoked = loaded.evoked
    tmin = options.tmin
    if tmin is None and evoked.times[0] < 0 <= evoked.times[-1]:
        tmin = 0.0  # the pre-stimulus part is the noise reference (as localize)
    trials = loaded.epochs[task.condition] if loaded.epochs is not None else None
    confidence = DEFAULT_REDRAWS if options.confidence is None else options.confidence
    subjects_dir = prepared.get("subjects_dir")
    subject = prepared.get("subject")
    result = localize(evoked, None, None, alpha=options.alpha, penalty=options.penalty,
                      tmin=tmin, tmax=options.tmax, tol=options.tol,
                      random_state=options.random_state, subject=subject,
                      subjects_dir=None if subjects_dir is None else Path(subjects_dir),
                      epochs=trials, confidence=confidence, operator=operator)
    result.extra["recording"] = str(Path(task.recording.fpath).relative_to(root))
    result.extra["notes"] = list(loaded.notes) + list(prepared.get("channel_notes", []))
    result.extra["cohort"] = {
        "key": task.key, "subject": task.subject, "session": task.session, "run": task.run,
        "condition": task.condition, "operator": prepared["operator"],
        "noise_cov": prepared.get("noise_cov"), "anatomy": prepared.get("anatomy"),
        "version": _version()}
    inputs = None
    if options.report_inputs:
        inputs = {"evoked": evoked, "noise_cov": prepared.get("cov"),
                  "forward": prepared.get("forward")}
    folder = OutputFolder(task.folder, overwrite=True).acquire()
    try:
        write_outputs(result, folder.path, figures=options.figures, folder=folder,
                      report_inputs=inputs)
    finally:
        folder.release()


# ---------------------------------------------------------------- running
@dataclass
class CohortResult:
    """What :func:`run_cohort` did.

    Attributes
    ----------
    tasks : list of dict
        One per localization (and per run that could not give one): status
        'done', 'skipped' (up to date) or 'failed' with its message.
    operators : list of dict
        One per (subject, session) prepared: 'built', 'reused' or 'failed'.
    out_dir : Path
        The derivatives folder.
    group : dict
        Paths of the group summary files (empty when nothing changed).
    """

    tasks: list
    operators: list
    out_dir: Path
    group: dict

    @property
    def counts(self):
        out = {"done": 0, "skipped": 0, "failed": 0}
        for t in self.tasks:
            out[t["status"]] = out.get(t["status"], 0) + 1
        return out


def _client(workers, scheduler):
    """A Dask client: to a running scheduler, or a new LocalCluster (returns client, cluster)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s"), None
        except Exception as exc:  # refused, timed out, a bad scheme, or not a Dask server
            if isinstance(exc, (OSError, TimeoutError)):
                problem = f"No Dask scheduler answers at {scheduler!r} ({exc})."
            elif isinstance(exc, ValueError):
                problem = f"{scheduler!r} is not a Dask scheduler address ({exc})."
            else:  # e.g. an HTTP server: its reply is read as a huge Dask message
                problem = (f"The server at {scheduler!r} is not a Dask scheduler "
                           f"(its reply could not be read: {type(exc).__name__}).")
            raise InputError(problem,
                             "start one (dask scheduler, dask-jobqueue, Kubernetes) and give "
                             "its address, or use --workers N for a local cluster.") from None
    dashboard = ":0"  # any free port: other clusters may run on this machine
    # One BLAS thread per worker: the workers are the parallelism.
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                           dashboard_address=dashboard, env=env, silence_logs=40)
    return Client(cluster), cluster


def _has_bokeh():
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def run_cohort(bids_root, task, *, subjects=None, sessions=None, conditions=None,
               options=None, subjects_dir=None, out=None, workers=None, scheduler=None,
               client=None, force=False, progress=True, stream=None):
    """Localize every (subject, session, run, condition) of a BIDS task on Dask.

    Parameters
    ----------
    bids_root : path-like
        Root of the BIDS dataset.
    task : str
        The BIDS task (``task-<label>``).
    subjects, sessions, conditions : list of str | None
        Restrict to these (labels without ``sub-``/``ses-``; conditions are
        ``trial_type`` values of the events files). None: all.
    options : CohortOptions | None
    subjects_dir : path-like | None
        FreeSurfer subjects folder (default ``BIDS_ROOT/derivatives/freesurfer``).
    out : path-like | None
        Derivatives folder (default ``BIDS_ROOT/derivatives/meeg-inverse``).
    workers : int | None
        Workers of a new ``LocalCluster`` (default: the CPU count); 0 runs
        every task in this process, one after the other (no Dask).
    scheduler : str | None
        Address of a running Dask scheduler to use instead.
    client : distributed.Client | None
        A client already connected (takes precedence).
    force : bool
        Redo every task even when its outputs are up to date.
    progress : bool
        Print what is done (a progress bar, the dashboard link).

    Returns
    -------
    result : CohortResult

    Raises
    ------
    InputError
        Not a BIDS dataset, unknown task/subject, no scheduler at ``scheduler``.
    """
    options = options or CohortOptions()
    stream = stream if stream is not None else sys.stderr
    say = (lambda msg: print(f"[meeg-inverse] {msg}", file=stream, flush=True)) if progress \
        else (lambda msg: None)
    _check_workers(workers)
    root = Path(bids_root).resolve()
    groups, tasks, problems = plan_cohort(root, task, subjects=subjects, sessions=sessions,
                                          conditions=conditions, options=options,
                                          subjects_dir=subjects_dir, out=out)
    out_root = _out_root(root, out)
    _check_writable(out_root)
    own_client = None
    if client is None and scheduler is not None:  # a wrong address fails before any write
        client, _ = _client(None, scheduler)
        own_client = client
    try:
        return _run_planned(root, task, groups, tasks, problems, out_root, options, workers,
                            client, force, progress, stream, say)
    finally:
        if own_client is not None:
            own_client.close()


#: Most local workers per CPU: each is a process holding ~0.5 GB (docs/cohort.md);
#: beyond a few per CPU they only compete for the cores and the memory.
MAX_WORKERS_PER_CPU = 4


def _check_workers(workers):
    """``workers``: None, or an int from 0 (serial) to a few per CPU of this machine."""
    if workers is None:
        return
    n_cpu = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
        raise InputError(f"workers must be a whole number >= 0, got {workers!r}.",
                         "give a number of workers (--workers N; 0: no Dask, one task after "
                         "the other).")
    if workers > MAX_WORKERS_PER_CPU * n_cpu:
        raise InputError(f"{workers} local workers on a machine with {n_cpu} CPU(s): each is a "
                         "process of ~0.5 GB, so they would compete for cores and memory.",
                         f"give at most {MAX_WORKERS_PER_CPU * n_cpu} (--workers; the CPU count "
                         "is usually best), or --scheduler ADDRESS to run on a larger cluster.")


def _check_writable(out_root):
    """Fail before any work when the derivatives folder cannot be written (leaves no trace).

    A trial write, not ``os.access``: root ignores permission bits, and a read-only
    mount (a shared dataset on a cluster) or a file in the way shows only on writing.
    """
    import tempfile

    out_root = Path(out_root)
    ancestor = out_root
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    try:
        if not ancestor.is_dir():
            raise NotADirectoryError(f"{str(ancestor)!r} is a file")
        tempfile.TemporaryDirectory(dir=ancestor, prefix=".meeg-inverse-probe-").cleanup()
    except OSError as exc:
        raise InputError(f"The derivatives folder {str(out_root)!r} cannot be written "
                         f"({exc.strerror or exc}).",
                         "choose a writable folder with --out (a read-only BIDS dataset "
                         "needs one).") from None


def _run_planned(root, task, groups, tasks, problems, out_root, options, workers, client,
                 force, progress, stream, say):
    scheduler = None
    _write_description(out_root, root)
    # a task that failed with the same inputs and options fails again: not rerun
    # (--force retries it); a task lost with its workers was not recorded, so it is
    failures_file = out_root / "group" / f".task-{task}_failures.json"
    old_failures = (_read_json(failures_file) or {}) if not force else {}
    pending, finished = [], []
    for t in tasks:
        if not force and _up_to_date(t):
            finished.append({**_task_out(t), "status": "skipped"})
        elif t.name in old_failures and old_failures[t.name]["key"] == t.key:
            finished.append({**_task_out(t), "status": "failed", "unchanged": True,
                             "message": old_failures[t.name]["message"]})
        else:
            pending.append(t)
    n_failed_before = sum(1 for f in finished if f["status"] == "failed")
    say(f"{len(tasks)} localization(s) of {len(groups)} subject/session(s): "
        f"{len(finished) - n_failed_before} up to date, {len(pending)} to run"
        + (f", {n_failed_before} failed before with the same inputs (--force retries)"
           if n_failed_before else "")
        + (f", {len(problems)} run(s) without the condition(s)" if problems else ""))
    results, operators = list(finished), []
    if pending:
        needed = [g for g in groups if any(t.group == g.name for t in pending)]
        if workers == 0 and client is None and scheduler is None:
            operators, done = _run_serial(needed, pending, root, options, say, stream,
                                          progress, force)
        else:
            operators, done = _run_dask(needed, pending, root, options, workers, scheduler,
                                        client, say, stream, progress, force)
        results += done
    else:
        say("nothing to do: every localization is up to date"
            + (f" or failed before with the same inputs ({n_failed_before})"
               if n_failed_before else "") + " (--force redoes them)")
    results += problems
    failures = {r["task"]: {"key": r["key"], "message": r["message"]} for r in results
                if r["status"] == "failed" and r.get("key") and r.get("recorded", True)}
    if failures != _read_json(failures_file):
        _write_atomic(failures_file, lambda p: p.write_text(json.dumps(failures, indent=1)))
    results.sort(key=lambda r: (r["subject"], r.get("session") or "", r.get("run") or "",
                                r.get("condition") or ""))
    for r in results:
        if r["status"] == "failed":
            say(f"failed: sub-{r['subject']} run {r.get('run')} {r.get('condition')!r}: "
                f"{r['message']}")
    from .group import write_group_summary

    group_paths = write_group_summary(out_root, task, results, say=say)
    res = CohortResult(tasks=results, operators=operators, out_dir=out_root, group=group_paths)
    c = res.counts
    say(f"{c['done']} done, {c['skipped']} up to date, {c['failed']} failed; "
        f"operators: {sum(o['status'] == 'built' for o in operators)} built, "
        f"{sum(o['status'] == 'reused' for o in operators)} reused")
    return res


def _task_out(t):
    return dict(task=t.name, subject=t.subject, session=t.session, run=t.run,
                condition=t.condition, folder=str(t.folder), key=t.key)


def _up_to_date(t):
    done = _read_json(t.folder / "summary.json")
    return done is not None and done.get("cohort", {}).get("key") == t.key


def _run_serial(groups, tasks, root, options, say, stream, progress, force=False):
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    operators, results = [], []
    bar = tqdm(total=len(tasks), desc="[meeg-inverse] localizations", file=stream,
               disable=not progress)
    # one BLAS thread, as each Dask worker has: a serial run gives the same numbers
    try:
        with threadpool_limits(limits=1):
            for g in groups:
                prepared = prepare_group(g, root, options, force)
                operators.append(prepared)
                for t in tasks:
                    if t.group == g.name:
                        results.append(localize_task(t, prepared, root, options, force))
                        bar.update(1)
    except KeyboardInterrupt:
        _interrupted(groups)
    bar.close()
    return operators, results


class CohortInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a cohort: ``note`` says what was kept."""

    def __init__(self, note, signum=None):
        super().__init__(note)
        self.note = note
        if signum is not None:
            self.signum = signum


def _interrupted(groups):
    """After Ctrl-C: remove what killed workers left half-written, say what was kept, re-raise."""
    from ._output_dir import remove_stale

    exc = sys.exc_info()[1]
    for g in groups:  # the workers are closed: their staging folders and locks are stale
        remove_stale(g.folder)
        _remove_dead_tmp(g.folder)
    # not a count: a worker may have finished a task whose result had not come back yet
    note = ("the localizations finished before it are kept, no half-written output is "
            "left; run the same command again to resume (finished ones are skipped).")
    raise CohortInterrupted(note, getattr(exc, "signum", None)) from None


def _run_dask(groups, tasks, root, options, workers, scheduler, client, say, stream, progress,
              force=False):
    from distributed import as_completed
    from tqdm.auto import tqdm

    own = client is None
    cluster = None
    if own:
        n = workers if workers is not None else os.cpu_count()
        n = max(1, min(int(n), len(tasks) + len(groups)))  # an idle worker is a process for nothing
        client, cluster = _client(n, scheduler)
    try:
        link = client.dashboard_link if _has_bokeh() else None
        say(f"Dask: {len(client.scheduler_info(n_workers=-1)['workers'])} worker(s) at "
            f"{client.scheduler.address}" + (f"; dashboard: {link}" if link else ""))
        futures, kinds = [], {}
        operators, results, interrupted = [], [], False
        for g in groups:
            # pure=False and unique keys: a rerun of the same graph is not taken from memory
            pf = client.submit(prepare_group, g, root, options, force,
                               key=f"prepare-{g.name}-{uuid.uuid4().hex[:8]}", pure=False)
            futures.append(pf)
            kinds[pf.key] = "operator"
            for t in tasks:
                if t.group == g.name:
                    tf = client.submit(localize_task, t, pf, root, options, force,
                                       key=f"localize-{t.name}-{uuid.uuid4().hex[:8]}", pure=False)
                    futures.append(tf)
                    kinds[tf.key] = t
        bar = tqdm(total=len(tasks), desc="[meeg-inverse] localizations", file=stream,
                   disable=not progress)
        for fut in as_completed(futures):
            kind = kinds[fut.key]
            try:
                value = fut.result()
            except Exception as exc:  # e.g. KilledWorker: every retry's worker died
                value = ({"status": "failed", "message": _message(exc)} if kind == "operator"
                         else {**_task_out(kind), "status": "failed", "recorded": False,
                               "message": _message(exc)})
            if kind == "operator":
                operators.append(value)
            else:
                results.append(value)
                bar.update(1)
        bar.close()
        return operators, results
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP (the CLI raises it for them)
        interrupted = True
        raise
    finally:
        if interrupted:  # nothing queued runs on; a running task of a shared cluster ends whole
            client.cancel(futures)
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
        if interrupted:
            _interrupted(groups)


def _write_description(out_root, root):
    """The derivative's dataset_description.json (mne-bids writes it)."""
    import mne_bids

    out_root.mkdir(parents=True, exist_ok=True)
    if (out_root / "dataset_description.json").is_file():
        return
    mne_bids.make_dataset_description(
        path=out_root, name="meeg-inverse sparse source estimates", dataset_type="derivative",
        generated_by=[{"Name": "meeg-inverse", "Version": _version()}],
        source_datasets=[{"URL": Path(root).as_uri()}], overwrite=True, verbose=False)
