"""Reported sources of a continuous recording placed by a dipole fit with the user's BEM.

The sub-grid scan (:mod:`meeg_inverse.subgrid`) interpolates the gain linearly
between the vertices of the inversion grid; where they are 11-16 mm apart the
interpolated field that best matches a real source can lie 14-15 mm from it
even without noise (docs/continuous.md, the scored run of amendment 2). When
the user gives a head model (a BEM solution, and the head↔MRI transform or the
forward's own), each reported source is instead placed where a dipole's
**forward-model field** (:func:`mne.make_forward_solution` with that BEM, not
an interpolation) best explains its data:

1. every event of the source is read again (whitened; its
   :data:`~meeg_inverse.continuous_sources.EVENT_COMPONENTS` strongest spatial
   components), and the **dominant spatial pattern** of all its events stacked
   (first left singular vector × singular value) is mapped back to the sensors;
2. one free-orientation dipole is fitted to that pattern: the points of a
   :data:`COARSE_MM` lattice within :data:`SEARCH_MM` of the source's sub-grid
   position, then of a :data:`FINE_MM` lattice around the best one, are scored
   by the share of the (whitened) pattern their field explains — a scanning
   dipole fit restricted to the neighbourhood the sparse estimate found;
3. **merging**: strongest first, a source whose lone fit (no other source
   projected out; coarse lattice) lands within ``merge_mm`` of a stronger one's
   joins it (one source carried by two groups of grid sources);
4. each source is fitted again, with the dominant patterns of the other
   sources active during each of its events projected out of that event's data
   (as :func:`~meeg_inverse.continuous_sources.refine_tracked` projects their
   fields).

:func:`mne.fit_dipole` was tried first (development recordings,
docs/continuous.md, amendment 3): its global 20-mm guess grid and simplex
jumped 12-32 mm away on 3 of 7 recordings with the one-layer BEM, where the
local lattice stays within 5.3 mm. A one-layer (inner skull) BEM models MEG
only: with it, the MEG channels are fitted (EEG needs three layers). The source
estimate itself is unchanged; only the reported position moves.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from .continuous_sources import _merge, co_active, event_spans, merge_within
from .errors import InputError
from .subgrid import _project_out

__all__ = ["HeadModel", "MIN_DIST_MM", "dipole_fit_positions", "read_head_model"]

#: Fitted dipoles stay this far inside the inner skull (mm; MNE's default).
MIN_DIST_MM = 5.0
#: The dipole is searched within this distance of the sub-grid position (mm; 15 and 20
#: tried on development recordings, docs/continuous.md amendment 3) ...
SEARCH_MM = 15.0
#: ... on a lattice of this step (mm), then refined on a lattice of FINE_MM steps.
COARSE_MM = 3.0
FINE_MM = 1.0
#: Rounds of moving events to the source whose fitted field explains them best.
REASSIGN_SWEEPS = 2
#: A trans differing from the forward's by more than this (mm, over the head) is refused.
TRANS_TOLERANCE_MM = 1.0
#: Share of the forward's source points that must lie inside the BEM's inner skull (the
#: sample forwards: 100 % and 99.98 % (5-mm volume); the template's forward in the sample
#: subject's BEM: 72 %).
MIN_INSIDE = 0.95

_HEAD = mne.io.constants.FIFF.FIFFV_COORD_HEAD
_MRI = mne.io.constants.FIFF.FIFFV_COORD_MRI
_BEM_FIX = ("give a BEM solution file (-bem-sol.fif, made by mne.make_bem_solution), e.g. "
            "subjects/SUBJECT/bem/SUBJECT-5120-5120-5120-bem-sol.fif, or an "
            "mne.bem.ConductorModel.")


@dataclass
class HeadModel:
    """What the dipole fits need: the conductor model and the head→MRI transform.

    Attributes
    ----------
    bem : mne.bem.ConductorModel
    head_mri_t : mne.transforms.Transform
        Head → MRI (the reported positions are MRI coordinates).
    channels : str
        'meg' (one-layer BEM, or a sphere without shells) or 'meg+eeg'.
    description : str
        For the outputs: which BEM, how many layers, which channels.
    """

    bem: object
    head_mri_t: object
    channels: str
    description: str


def _read_bem(bem):
    if isinstance(bem, mne.bem.ConductorModel):
        model, name = bem, "ConductorModel"
    elif isinstance(bem, (str, Path)):
        from .io import read_checked

        try:
            model = read_checked(mne.read_bem_solution, bem, "BEM solution", _BEM_FIX,
                                 verbose=False)
        except InputError:
            try:  # a -bem.fif of surfaces: name that, not "No BEM solution found"
                surfaces = mne.read_bem_surfaces(bem, verbose=False)
            except Exception:
                surfaces = None
            if surfaces:
                raise InputError(f"The BEM {Path(bem).name!r} holds {len(surfaces)} "
                                 "surface(s) without a solution.",
                                 "compute one with mne.make_bem_solution (and give that "
                                 "-bem-sol.fif).") from None
            raise
        name = Path(bem).name
    else:
        raise InputError(f"bem must be a BEM solution file or an mne.bem.ConductorModel, got "
                         f"{type(bem).__name__}.", _BEM_FIX)
    if model["is_sphere"]:
        n_layers = len(model.get("layers", []))
        return model, f"{name} (sphere, {n_layers} shell(s))", n_layers >= 3
    if model.get("solution") is None:
        raise InputError(f"The BEM {name!r} holds surfaces without a solution.",
                         "compute one with mne.make_bem_solution (and give that).")
    n_layers = len(model["surfs"])
    return model, f"{name} ({n_layers} layer(s))", n_layers == 3


def _read_trans(trans):
    if isinstance(trans, (str, Path)):
        from .io import read_checked

        trans = read_checked(mne.read_trans, trans, "head<->MRI transform",
                             "give the -trans.fif file of the subject (mne coreg writes it).")
    if not isinstance(trans, mne.transforms.Transform) or \
            {trans["from"], trans["to"]} != {_HEAD, _MRI}:
        raise InputError(f"trans must be a head<->MRI transform (a -trans.fif file or an "
                         f"mne.transforms.Transform between head and MRI), got "
                         f"{type(trans).__name__}"
                         + (f" from {trans['from']} to {trans['to']}"
                            if isinstance(trans, mne.transforms.Transform) else "") + ".",
                         "give the subject's -trans.fif (or omit trans: the forward's own "
                         "head<->MRI transform is used).")
    return trans if trans["from"] == _HEAD else mne.transforms.invert_transform(trans)


def read_head_model(bem, trans=None, forward=None, info=None, all_channels=False):
    """Check and read the head model of the dipole fits.

    Parameters
    ----------
    bem : path-like | mne.bem.ConductorModel
        BEM solution (``-bem-sol.fif``) or conductor model (a sphere model works
        too). One layer: MEG channels only.
    trans : path-like | mne.transforms.Transform | None
        Head↔MRI transform; None: the forward's (``forward["mri_head_t"]``).
    forward : mne.Forward | None
        The forward of the localization: a ``trans`` given too must agree with
        its transform (within :data:`TRANS_TOLERANCE_MM` over the head). Without
        an ``mri_head_t`` transform (e.g. not yet checked): ignored.
    info : mne.Info | None
        The recording's info: it must hold channels the BEM models.
    all_channels : bool
        With ``info``: the BEM must model *every* channel type of the recording
        (the reported positions of an evoked response); else a one-layer BEM
        fits the MEG channels of a recording with EEG (the continuous dipole fits).

    Returns
    -------
    head_model : HeadModel

    Raises
    ------
    InputError
        A missing or unreadable file, a BEM without a solution, a transform
        that is not head↔MRI or disagrees with the forward's, no trans and no
        forward, or no channel the BEM models (EEG only with a one-layer BEM).
    """
    model, description, eeg_ok = _read_bem(bem)
    mri_head = forward.get("mri_head_t") if isinstance(forward, dict) else None  # a Forward
    fwd_t = _read_trans(mri_head) if isinstance(mri_head, mne.transforms.Transform) else None
    if trans is None:
        if fwd_t is None:
            raise InputError("The dipole fit needs the head<->MRI transform.",
                             "give trans= (the subject's -trans.fif).")
        head_mri = fwd_t
    else:
        head_mri = _read_trans(trans)
        if fwd_t is not None:
            corners = np.array([[x, y, z] for x in (-.08, .08) for y in (-.1, .1)
                                for z in (-.04, .12)])
            diff = np.linalg.norm(mne.transforms.apply_trans(head_mri, corners)
                                  - mne.transforms.apply_trans(fwd_t, corners), axis=1).max()
            if diff > TRANS_TOLERANCE_MM * 1e-3:
                raise InputError(f"The head<->MRI transform given differs from the one the "
                                 f"forward solution was computed with (by up to "
                                 f"{diff * 1e3:.1f} mm over the head).",
                                 "give the -trans.fif the forward was computed with, or omit "
                                 "trans (the forward's own is then used).")
    if isinstance(forward, dict) and "source_rr" in forward and not model["is_sphere"]:
        _check_encloses(model, description, head_mri, forward)
    channels = "meg+eeg" if eeg_ok else "meg"
    if info is not None:
        n_meg = len(mne.pick_types(info, meg=True, eeg=False, exclude="bads"))
        n_eeg = len(mne.pick_types(info, meg=False, eeg=True, exclude="bads"))
        if n_meg == 0 and not (eeg_ok and n_eeg):
            raise InputError(f"The BEM {description} models MEG only, and the recording has "
                             f"no MEG channels.",
                             "give a three-layer BEM solution for EEG (mne.make_bem_model "
                             "with three conductivities, then mne.make_bem_solution).")
        if all_channels and n_eeg and not eeg_ok:
            raise InputError(f"The BEM {description} does not model every channel of the "
                             "recording (a one-layer BEM models MEG only).",
                             "give a three-layer BEM solution, or localize the MEG channels "
                             "alone (evoked.pick('meg')).")
        if n_eeg == 0:
            channels = "meg"
        elif n_meg == 0:
            channels = "eeg"
    return HeadModel(model, head_mri, channels, f"{description}; {channels.upper()} channels")


def _check_encloses(model, description, head_mri, forward):
    """Refuse a BEM whose inner skull does not hold the forward's sources.

    A BEM of another subject (or of the template for a subject's forward) has
    its own skull: the lattices around the reported sources would fall partly
    or wholly outside it, and the fits would be made in the wrong head.
    """
    try:  # MNE's point-in-surface test is private: skip the check if it moves
        from mne.surface import _CheckInside
    except ImportError:  # pragma: no cover
        return
    inner = next((s for s in model["surfs"]
                  if s["id"] == mne.io.constants.FIFF.FIFFV_BEM_SURF_ID_BRAIN),
                 model["surfs"][0])
    rr = np.asarray(forward["source_rr"], float)
    if forward["coord_frame"] == _HEAD:
        rr = mne.transforms.apply_trans(head_mri, rr)
    with mne.utils.use_log_level("error"):
        share = float(np.mean(_CheckInside(inner)(rr)))
    if share < MIN_INSIDE:
        raise InputError(f"The BEM {description} does not hold the forward's sources: only "
                         f"{100 * share:.0f} % of its {len(rr)} source points lie inside the "
                         f"BEM's inner skull (all of them should) — a BEM of another subject, "
                         f"or a forward computed with another head.",
                         "give the BEM solution of the subject the forward was computed for "
                         "(subjects/SUBJECT/bem/SUBJECT-...-bem-sol.fif).")


def _top_pattern(blocks):
    """First left singular vector × singular value of the blocks side by side."""
    m = np.hstack(blocks)
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, 0] * s[0]


def _lattice(step_mm, radius_mm):
    r = np.arange(-radius_mm, radius_mm + 1e-9, step_mm)
    g = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return g[np.linalg.norm(g, axis=1) <= radius_mm + 1e-9] * 1e-3


def _channel_picks(info, channels):
    kw = {"meg": dict(meg=True, eeg=False), "eeg": dict(meg=False, eeg=True),
          "meg+eeg": dict(meg=True, eeg=True)}[channels]
    return mne.pick_types(info, **kw, exclude=[])


def _forward_fields(points, info, head_model, min_dist_mm, modeler=None):
    """Free-orientation fields of MRI points by the head model, (n_channels, n_kept, 3); the
    mask of the points kept (inside the inner skull, ``min_dist_mm`` from it); channel names.
    ``modeler``: MNE's incremental forward modeler prepared for them (see
    :func:`forward_modeler`), else :func:`mne.make_forward_solution`."""
    src = mne.setup_volume_source_space(
        subject=None, pos=dict(rr=points, nn=np.tile([0.0, 0.0, 1.0], (len(points), 1))),
        verbose=False)
    try:
        if modeler is None:
            fwd = mne.make_forward_solution(info, head_model.head_mri_t, src, head_model.bem,
                                            meg="meg" in head_model.channels,
                                            eeg="eeg" in head_model.channels,
                                            mindist=min_dist_mm, verbose=False)
        else:
            with mne.utils.use_log_level("error"):
                fwd = modeler.compute(src)
    except RuntimeError as exc:  # every point outside the inner skull: none to fit
        if "No points left" not in str(exc):
            raise
        return (np.zeros((len(info["ch_names"]), 0, 3)), np.zeros(len(points), bool),
                list(info["ch_names"]))
    kept = np.zeros(len(points), bool)
    kept[fwd["src"][0]["vertno"]] = True  # points inside the inner skull (minus min_dist)
    gain = fwd["sol"]["data"]
    return gain.reshape(gain.shape[0], -1, 3), kept, fwd["info"]["ch_names"]


def forward_bem_path(forward):
    """The BEM solution file a forward solution was computed with, when it says so.

    :func:`mne.make_forward_solution` records its call in
    ``forward["info"]["command_line"]`` (the BEM as the path given, or
    "instance of ConductorModel") and the folder it ran in, in
    ``forward["info"]["working_dir"]``. The BEM is the argument before the
    ``meg`` and ``eeg`` flags.

    Parameters
    ----------
    forward : mne.Forward

    Returns
    -------
    path : pathlib.Path | None
        The file, when the forward names one that exists; None otherwise (a
        conductor model given as an object, a forward from another program or
        from another machine).
    """
    info = forward.get("info") or {}
    command = info.get("command_line") or ""
    if not command.startswith("make_forward_solution("):
        return None
    parts = command[len("make_forward_solution("):].rstrip(")").split(", ")
    flags = {"True", "False"}
    found = [i for i in range(len(parts) - 2) if parts[i + 1] in flags and parts[i + 2] in flags]
    if not found:
        return None
    path = Path(parts[found[-1]])
    if not path.is_absolute() and info.get("working_dir"):
        path = Path(info["working_dir"]) / path
    return path if path.suffix == ".fif" and path.is_file() else None


def checked_head_model(bem, trans, forward, info):
    """:func:`read_head_model` for the reported positions of an evoked response: the
    head model must model every channel type of ``info`` (``all_channels``).

    Raises
    ------
    InputError
        As :func:`read_head_model`, and a one-layer BEM for a recording with EEG.
    """
    return read_head_model(bem, trans, forward=forward, info=info, all_channels=True)


#: The last head models read from the BEM files forwards name, and the forward
#: modelers prepared for them: reading and preparing the sample's 320-triangle BEM
#: takes ~1 s (a 5120-triangle one longer, and ~1 GB), and a session often localizes
#: several averages with one forward. Two of each are kept (least recently used out).
_CACHE_SIZE = 2
_HEAD_MODELS = OrderedDict()
_MODELERS = OrderedDict()


_CACHE_LOCK = threading.Lock()  # Dask's threaded workers share the module


def _cached(cache, key, make):
    with _CACHE_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = make()  # outside the lock: a second thread may prepare it too, harmlessly
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def head_model_of(problem):
    """The head model the problem's forward was computed with, or None.

    The BEM file the forward names (:func:`forward_bem_path`, kept by the
    operator) and the forward's head↔MRI transform; read once per file,
    transform and channels (the file's size and time say when it changed).
    None when the forward names no readable BEM, or one that does not model
    every channel (a one-layer BEM with EEG): the reported positions then
    come from the grid's interpolated fields (:class:`meeg_inverse.subgrid.LatticeScanner`).
    """
    path = getattr(problem.operator, "bem_path", None)
    if path is None or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    head = problem.forward.get("mri_head_t")
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
           None if head is None else np.asarray(head["trans"]).tobytes(),
           tuple(problem.info["ch_names"]))

    def read():
        try:
            return checked_head_model(path, None, problem.forward, problem.info)
        except InputError:
            return None

    return _cached(_HEAD_MODELS, key, read)


def forward_modeler(info, head_model, min_dist_mm=0.0):
    """``compute(points)`` -> :func:`_forward_fields`' output, the BEM prepared once.

    MNE's incremental forward modeler (private; 0.03 s + 0.2 ms per point on the
    sample head) when this MNE has it, else :func:`mne.make_forward_solution`
    per call (0.4 s + 0.2 ms per point). Prepared once per head model and
    channels (the last two kept).
    """
    # The head model in the key's value too: its id stays its own while cached.
    key = (id(head_model), tuple(info["ch_names"]), float(min_dist_mm))
    return _cached(_MODELERS, key,
                   lambda: (head_model, _forward_modeler(info, head_model, min_dist_mm)))[1]


def _forward_modeler(info, head_model, min_dist_mm):
    info = mne.pick_info(info, _channel_picks(info, head_model.channels))
    try:
        from mne.forward._make_forward import _ForwardModeler
    except ImportError:  # another MNE layout (tests/test_forward_positions.py)
        return lambda points: _forward_fields(points, info, head_model, min_dist_mm)
    with mne.utils.use_log_level("error"):
        modeler = _ForwardModeler(info, head_model.head_mri_t, head_model.bem,
                                  mindist=min_dist_mm)
    return lambda points: _forward_fields(points, info, head_model, min_dist_mm, modeler)


class _LatticeFields:
    """Whitened forward fields of lattices around centres (cached by centre and lattice)."""

    def __init__(self, info, noise_cov, head_model, min_dist_mm):
        self.picks = _channel_picks(info, head_model.channels)
        self.info = mne.pick_info(info, self.picks)
        self.white = mne.cov.compute_whitener(noise_cov, self.info, pca=True,
                                              verbose=False)[0]
        self.head_model, self.min_dist_mm = head_model, min_dist_mm
        self.cache = {}

    def __call__(self, centres, step_mm, radius_mm):
        """Per centre: (points (n, 3) MRI m, orthonormal whitened fields (n, rank, 3))."""
        lattice = _lattice(step_mm, radius_mm)
        keys = [(tuple(np.round(np.asarray(c) * 1e6).astype(int)), step_mm, radius_mm)
                for c in centres]
        todo = [k for i, k in enumerate(keys) if k not in self.cache and k not in keys[:i]]
        if todo:  # one forward computation for every new lattice
            points = np.concatenate([np.array(k[0]) * 1e-6 + lattice for k in todo])
            fields, kept, names = _forward_fields(points, self.info, self.head_model,
                                                  self.min_dist_mm)
            order = [self.info["ch_names"].index(c) for c in names]
            q = np.linalg.qr(np.einsum("rc,cnj->nrj", self.white[:, order], fields))[0]
            owner = np.repeat(np.arange(len(todo)), len(lattice))[kept]
            points = points[kept]
            for i, k in enumerate(todo):
                self.cache[k] = (points[owner == i], q[owner == i])
        return [self.cache[k] for k in keys]

    def whiten(self, pattern, unwhiten):
        """A pattern of the data's whitened space, whitened on these channels."""
        return self.white @ (unwhiten @ pattern)[self.picks]


def _scan(patterns, centres, unwhiten, fields, step_mm, radius_mm):
    """For each whitened pattern, the lattice point around its centre whose forward
    field (free orientation, whitened) explains most of it: MRI position, share (%),
    and the orthonormal whitened field there (None: no point)."""
    out_pos, out_share, out_q = [], [], []
    for u, centre, (points, q) in zip(patterns, centres, fields(centres, step_mm, radius_mm)):
        if len(points) == 0:  # no lattice point inside the skull: the centre stays
            out_pos.append(np.asarray(centre, float))
            out_share.append(np.nan)
            out_q.append(None)
            continue
        y = fields.whiten(u, unwhiten)
        explained = np.einsum("nrj,r->nj", q, y)
        score = np.einsum("nj,nj->n", explained, explained)
        best = int(np.argmax(score))
        out_pos.append(points[best])
        out_share.append(100.0 * float(score[best]) / float(y @ y))
        out_q.append(q[best])
    return np.array(out_pos), np.array(out_share), out_q


def _fit(patterns, centres, unwhiten, fields, fine=True):
    """One dipole per whitened pattern near its centre: MRI position (m), share explained (%).

    A coarse lattice (:data:`COARSE_MM` steps within :data:`SEARCH_MM` of the
    centre), then a fine one (:data:`FINE_MM` within a coarse step of the best
    point); the fields are the forward model's (:func:`mne.make_forward_solution`
    with the user's BEM), not interpolated.
    """
    found = _scan(patterns, centres, unwhiten, fields, COARSE_MM, SEARCH_MM)
    if not fine:
        return found
    return _scan(patterns, found[0], unwhiten, fields, FINE_MM, COARSE_MM)


def _final_fit(sources, lone, centres, components, unwhiten, fields):
    """Each source fitted to its events, the lone patterns of the sources active with it
    in each event projected out of that event's data."""
    spans = event_spans(sources)
    final = []
    for j in range(len(sources)):
        blocks = []
        for a, b in spans[j]:
            others = [lone[k] for k in co_active(spans, j, a, b)]
            basis = np.linalg.qr(np.column_stack(others))[0] if others else None
            blocks.append(_project_out(basis, components(int(a), int(b))))
        final.append(_top_pattern(blocks))
    return _fit(final, centres, unwhiten, fields)


def _reassign(sources, qs, components, unwhiten, fields):
    """Move each event to the source whose fitted field explains most of its data, when
    that source has no event at the same time (co-active sources keep their events).

    Tracking groups events by the positions of the grid sources that carried them: two
    sources ~30 mm apart, each carried by vertices a grid step towards the other, can
    become one reported source (development recording 13, amendment 3). Returns the
    indices of the sources that lost or gained events.
    """
    spans = event_spans(sources)
    moves = []
    for j, s in enumerate(sources):
        if qs[j] is None:
            continue
        for i, (a, b) in enumerate(spans[j]):
            y = fields.whiten(components(int(a), int(b)), unwhiten)
            score = [-np.inf if q is None else float(np.sum((q.T @ y) ** 2)) for q in qs]
            k = int(np.argmax(score))
            if k != j and k not in co_active(spans, j, a, b):
                moves.append((j, i, k))
    if not moves:
        return set()
    taken = {}
    for j, i, k in moves:
        taken.setdefault(k, []).append(sources[j]["events"][i])
    for j in {j for j, _, _ in moves}:
        gone = {i for jj, i, _ in moves if jj == j}
        sources[j]["events"] = [e for i, e in enumerate(sources[j]["events"]) if i not in gone]
    for k, events in taken.items():  # events overlapping in time become one (as merging)
        _merge(sources[k], dict(energy=0.0, centroid=sources[k]["centroid"],
                                source_indices=[], events=events))
    return {j for j, _, _ in moves} | set(taken)


def dipole_fit_positions(sources, components, whitener, info, noise_cov, head_model, *,
                         merge_mm, min_dist_mm=MIN_DIST_MM):
    """Place each tracked source by a BEM dipole fit to the data of all its events.

    Parameters
    ----------
    sources : list of dict
        From :func:`~meeg_inverse.continuous_sources.track_sources` (after
        :func:`~meeg_inverse.continuous_sources.refine_tracked`), strongest first.
    components : callable
        ``components(first, last)`` -> the whitened data's strongest spatial
        components (rank, k) of those samples.
    whitener : ndarray, shape (rank, n_channels)
        The whitener of the data (``components`` are in its space).
    info : mne.Info
        Info of the whitener's channels (in its order), with the projectors.
    noise_cov : mne.Covariance
        The noise covariance the whitener was made from.
    head_model : HeadModel
        From :func:`read_head_model`.
    merge_mm : float | None
        Sources whose lone fits lie within this distance of a stronger one's
        join it (None: no merging). Modifies ``sources`` in place.
    min_dist_mm : float
        Fitted dipoles stay this far inside the inner skull.

    Notes
    -----
    Sets each source's ``position`` (MRI, m), ``position_method`` ('dipole fit
    (BEM)'), ``dipole_gof`` (%, of the fitted dominant pattern) and
    ``head_model`` (its description); the previous position moves to
    ``subgrid_position`` (the sub-grid fit, or the centroid).
    """
    if not sources:
        return
    unwhiten = np.linalg.pinv(whitener)
    centres = [np.asarray(s["position"], float) for s in sources]  # sub-grid or centroid
    fields = _LatticeFields(info, noise_cov, head_model, min_dist_mm)

    def lone_pattern(s):
        return _top_pattern([components(*map(int, e["samples"])) for e in s["events"]])

    lone = [lone_pattern(s) for s in sources]
    if merge_mm is not None and len(sources) > 1:
        pos = _fit(lone, centres, unwhiten, fields, fine=False)[0]  # enough to merge
        kept, took = merge_within(sources, list(pos), merge_mm)
        lone = [lone_pattern(sources[i]) if k in took else lone[k] for i, k in enumerate(kept)]
    subgrid = [np.asarray(s["position"], float) for s in sources]
    pos, gof, qs = _final_fit(sources, lone, subgrid, components, unwhiten, fields)
    for _ in range(REASSIGN_SWEEPS):
        changed = _reassign(sources, qs, components, unwhiten, fields)
        if not changed:
            break
        keep = [j for j, s in enumerate(sources) if s["events"]]
        sources[:] = [sources[j] for j in keep]
        subgrid = [subgrid[j] for j in keep]
        lone = [lone_pattern(s) if j in changed else lone[j]
                for s, j in zip(sources, keep)]
        pos, gof, qs = _final_fit(sources, lone, subgrid, components, unwhiten, fields)
    for s, p, g, c in zip(sources, pos, gof, subgrid):
        s["subgrid_position"] = c
        s["subgrid_method"] = s.get("position_method", "centroid")
        s["position"] = p
        s["head_model"] = head_model.description
        if np.isfinite(g):
            s["position_method"] = "dipole fit (BEM)"
            s["dipole_gof"] = float(g)
        else:  # no lattice point inside the inner skull: nothing was fitted
            s["position_method"] = (f"{s['subgrid_method']} (no dipole fit: no point within "
                                    f"{SEARCH_MM:g} mm inside the BEM's inner skull)")
            s["dipole_gof"] = None

