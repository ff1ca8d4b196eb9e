"""Sparse localization of a continuous recording, window by window, in bounded memory.

:func:`localize_continuous` localizes every window of a raw recording with the
multitask solver on **one** prepared operator and returns one sparse source
estimate over the whole recording:

- the recording is read in chunks (``raw.get_data(start, stop)`` on a
  non-preloaded raw), never whole; a band-pass is applied per chunk with a
  margin of the filter's length, so that chunked filtering equals filtering
  the whole recording away from its two ends;
- windows overlapping a ``BAD_*`` annotation are skipped (their samples get no
  estimate);
- λ is **amortized**: the quantile universal threshold of a window
  (:func:`meeg_inverse.rules.quantile_universal_threshold`'s idea: the λ that
  noise alone exceeds with probability ``1 - level``) depends only on the gain,
  the window length and the noise, and is exactly proportional to the noise's
  standard deviation (λ_max is 1-homogeneous in the data). It is computed once
  for the whole recording from noise draws; a chunk whose own noise level
  differs by more than :data:`NOISE_CHANGE` rescales it, without new draws.
  A window whose λ_max is below it is empty: no solve at all;
- each solved window can be warm-started from the previous window's
  solution, shifted by the step (``warm_start``; off by default: it did not
  pay off);
- overlapping windows are blended with normalized Hann weights
  ``w_k(t) / Σ_j w_j(t)``: a partition of unity for any step ≤ window, so a
  source that every window reconstructs exactly is reconstructed exactly;
- samples are final as soon as no later window covers them: they are written
  at once (HDF5 through h5py, to a temporary name renamed at the end, so an
  interruption leaves no half-written file) and leave memory.

Warm-start chains restart at every chunk, so the work splits over processes
(``n_jobs``, joblib) with the same result as a serial run, bit for bit.
"""

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["localize_continuous", "read_continuous", "ContinuousResult", "DEFAULT_LEVEL"]

#: Probability that a noise-only window gives no source (the QUT level). With
#: 50 ms steps (20 windows per second) 0.99 allows ~0.2 noise-only windows per
#: second with a source.
DEFAULT_LEVEL = 0.99
#: Relative change of a chunk's noise variance that rescales the amortized λ.
NOISE_CHANGE = 0.2
#: Noise draws of the amortized λ (once per recording).
N_DRAWS = 300
#: Windows sampled over the recording to measure its noise level.
N_NOISE_WINDOWS = 60
_FORMAT = "meeg_inverse_continuous"
_FORMAT_VERSION = 1
_WINDOW_FIELDS = ("start", "stop", "status", "alpha", "alpha_max", "n_sources",
                  "explained_variance", "n_iter", "solve_time", "noise_ratio")
#: Window status codes (the ``status`` field).
STATUS = {0: "solved", 1: "empty", 2: "bad"}


# --------------------------------------------------------------------- results
@dataclass
class ContinuousResult:
    """What :func:`localize_continuous` returns (and :func:`read_continuous` reads).

    Attributes
    ----------
    windows : dict of ndarray
        One entry per window: ``start``, ``stop`` (s, recording times),
        ``status`` (0 solved, 1 empty: λ_max below λ, 2 skipped: overlaps a
        ``BAD_*`` annotation), ``alpha`` (λ, whitened units), ``alpha_max``,
        ``n_sources`` (active sources), ``explained_variance`` (of the window's
        whitened data by its debiased fit; nan when not solved), ``n_iter``,
        ``solve_time`` (s), ``noise_ratio`` (the chunk's noise variance over the
        recording's).
    alpha : float
        The amortized λ of a window at the recording's noise level.
    noise : dict
        The recording's whitened noise: variance, autocorrelation, how measured.
    sfreq, tmin : float
        Sampling rate (Hz) and time of the first sample of the estimate (s).
    n_times : int
        Samples of the estimate.
    params : dict
        The arguments (window, step, band, penalty, level, ...).
    timings : dict
        Seconds spent preparing, measuring the noise, λ, and localizing.
    fname : Path | None
        The HDF5 file holding the source time series (None: kept in memory).
    warnings : list of dict
        What the run warned about, each ``{"code", "message", "fix"}`` (e.g.
        ``no_high_pass``); also raised as :class:`RuntimeWarning` by
        :func:`localize_continuous`.
    """

    windows: dict
    alpha: float
    noise: dict
    sfreq: float
    tmin: float
    n_times: int
    params: dict
    timings: dict
    fname: Path | None = None
    warnings: list = field(default_factory=list)
    _segments: dict | None = field(default=None, repr=False)
    _mapper: object = field(default=None, repr=False)
    _context: object = field(default=None, repr=False)  # for benchmarks: one window again
    _reported: dict = field(default_factory=dict, repr=False)  # reported_sources() by arguments
    _noise_cov: object = field(default=None, repr=False)  # for the dipole fits
    _head_model: object = field(default=None, repr=False)  # bem=/trans= given: dipole fits

    @property
    def stc(self):
        """The sparse source estimate over the whole recording (union of supports), A·m.

        Returns
        -------
        stc : mne.SourceEstimate | mne.VolSourceEstimate | mne.MixedSourceEstimate
            The sources active in some window, on every sample of the analysed span.
            When no window kept a source it holds no source (no vertices, data of
            shape ``(0, n_times)``), as MNE's sparse solvers
            (:func:`mne.inverse_sparse.mixed_norm`) return when no dipole is active:
            it is saved, read back and combined as any other.
            ``summary()["n_windows_with_sources"]`` is then 0.
        """
        segments = self._segments if self._segments is not None else _read_segments(self.fname)
        return self._mapper.to_stc(segments, self.n_times, self.tmin)

    def source_activity(self, threshold=0.0):
        """Activity periods of every source of the estimate.

        Returns
        -------
        activity : list of dict
            ``{"vertex", "hemi"|None, "position_mm", "periods": [[start_s, stop_s,
            peak_nAm], ...]}``, one per source of :attr:`stc`.
        """
        segments = self._segments if self._segments is not None else _read_segments(self.fname)
        return self._mapper.activity(segments, self.tmin, threshold)

    def reported_sources(self, *, radius_mm=None, track_mm=None, minor_fraction=None,
                         position="auto", bem=None, trans=None):
        """The parts of the brain active in the recording, each with its events.

        Grid sources are clustered in every time bin (the window step), a
        bin's cluster continues an event of the previous bin, and events are
        grouped by position into reported sources
        (:mod:`meeg_inverse.continuous_sources`). A source's position is a
        dipole fit with the user's BEM to the data of all its events
        (:mod:`meeg_inverse.dipole_positions`), or fitted between the grid
        vertices to those data (:func:`~meeg_inverse.continuous_sources.refine_tracked`),
        or the energy-weighted centroid of its events' grid sources.

        Parameters
        ----------
        radius_mm : float | None
            Cluster radius in a bin (default
            :data:`meeg_inverse.clusters.CLUSTER_RADIUS_MM`).
        track_mm : float | None
            Events within this distance are one reported source (default
            :data:`meeg_inverse.continuous_sources.TRACK_MM`).
        minor_fraction : float | None
            A bin's clusters weaker than this fraction of its strongest are left
            out (default :data:`meeg_inverse.clusters.MINOR_FRACTION`; 0 keeps all).
        position : 'auto' | 'dipole' | 'sub-grid' | 'centroid'
            'dipole': a BEM dipole fit (a local lattice scan with fields from
            :func:`mne.make_forward_solution`,
            :mod:`meeg_inverse.dipole_positions`) to the
            dominant pattern of each source's events, after the sub-grid fit
            (which gives the fields projected out of the events and merges);
            needs a head model (``bem``, here or given to
            :func:`localize_continuous` / :func:`read_continuous`).
            'sub-grid': the fields interpolated between the grid vertices
            (:mod:`meeg_inverse.subgrid`); the source space must have a mesh
            and free or loose orientations, else the centroid. Both read the
            recording again, event by event (a result of
            :func:`localize_continuous`, or of :func:`read_continuous` given
            the ``raw``; else the centroid). 'centroid': always the centroid.
            'auto' (default): 'dipole' when a head model is known, else
            'sub-grid'. ``position_method`` says which was used.
        bem, trans
            Head model of the dipole fits, as :func:`localize_continuous`
            takes it (default: the one given there, if any).

        Returns
        -------
        sources : list of dict
            Strongest first: ``{"position_mm"`` (MRI coordinates),
            ``"position_method"`` ('dipole fit (BEM)', 'sub-grid fit' or
            'centroid'; with "(no dipole fit: ...)" added where no point of
            the search lattice lay inside the BEM's inner skull),
            ``"centroid_mm"`` (the energy-weighted centroid of its events'
            grid sources), with a dipole fit ``"subgrid_position_mm"`` (the
            position before it), ``"dipole_gof"`` (%; None without a fit) and
            ``"head_model"``,
            ``"hemi"``, ``"source_indices"`` (grid sources that
            carried it, strongest first), ``"periods"``: ``[[start_s, stop_s,
            peak_nAm], ...]``, ``"period_positions_mm"``: each event's own
            centroid``}``.

        Raises
        ------
        InputError
            A distance that is not a positive number, a fraction outside [0, 1),
            an unknown ``position``, 'dipole' without a head model, a bad
            ``bem`` or ``trans`` (see :func:`localize_continuous`).
        """
        from .clusters import CLUSTER_RADIUS_MM, MINOR_FRACTION
        from .continuous_sources import TRACK_MM, bin_activity, refine_tracked, track_sources

        radius_mm = CLUSTER_RADIUS_MM if radius_mm is None else radius_mm
        track_mm = TRACK_MM if track_mm is None else track_mm
        minor_fraction = MINOR_FRACTION if minor_fraction is None else minor_fraction
        for name, value, usual in (("radius_mm", radius_mm, CLUSTER_RADIUS_MM),
                                   ("track_mm", track_mm, TRACK_MM)):
            if not _is_real(value) or value <= 0:
                raise InputError(f"{name} must be a positive distance in mm, got {value!r}.",
                                 f"use e.g. {name}={usual:g}.")
        if not _is_real(minor_fraction) or not 0 <= minor_fraction < 1:
            raise InputError(f"minor_fraction must be in [0, 1), got {minor_fraction!r}.",
                             f"use e.g. {MINOR_FRACTION:g} (0 keeps every cluster).")
        if position not in ("auto", "dipole", "sub-grid", "centroid"):
            raise InputError(f"position must be 'auto', 'dipole', 'sub-grid' or 'centroid', "
                             f"got {position!r}.", "use position='auto' (the default).")
        ctx = self._context
        can_read = ctx is not None and ctx.raw is not None
        fit_asked = position == "sub-grid" or position in ("auto", "dipole") and (
            self._head_model is not None or bem is not None)
        if fit_asked and not can_read:
            # Both fits read the recording again: without it they were silently centroids.
            raise InputError(f"The {'sub-grid' if position == 'sub-grid' else 'dipole'} fits "
                             "of the reported sources read the recording again, and this "
                             "result was read without it.",
                             "pass raw= to read_continuous (the recording it was computed "
                             "from, need not be preloaded), or use position='centroid'.")
        head_model = self._head_model
        if bem is not None or trans is not None:
            head_model = _head_model(bem, trans, self._mapper._problem.forward,
                                     mne_pick_info(ctx) if can_read else None)
        if position == "dipole" and head_model is None:
            raise InputError("position='dipole' needs a head model for the dipole fits.",
                             "give bem= (and trans=) here, to localize_continuous or to "
                             "read_continuous; or use position='sub-grid'.")
        if position == "auto":
            position = "sub-grid" if head_model is None else "dipole"
        # The head model is kept with its entry, so its id is not reused while cached.
        key = (float(radius_mm), float(track_mm), float(minor_fraction), position,
               id(head_model) if position == "dipole" else None)
        if key in self._reported:  # the fit reads the recording again: once per result
            return copy.deepcopy(self._reported[key][1])
        segments = self._segments if self._segments is not None else _read_segments(self.fname)
        mapper = self._mapper
        index = mapper._problem.block_sources()
        positions, hemis = mapper._problem.source_positions(index)
        activity = bin_activity(segments, mapper.n_orient, int(self.params["n_step_samples"]))
        found = track_sources(activity, index, positions, hemis, sfreq=self.sfreq,
                              tmin=self.tmin, radius_mm=radius_mm, track_mm=track_mm,
                              minor_fraction=minor_fraction)
        if position in ("sub-grid", "dipole") and can_read:
            from ._blas import one_blas_thread
            from .continuous_sources import event_components

            def read(a, b):
                return _read_chunk(ctx, a, b)[0]

            components = event_components(read)  # each event read once for both fits
            with one_blas_thread():  # small matrices: threads only cost on a shared machine
                refine_tracked(mapper._problem, found, read, components=components)
                if position == "dipole":
                    from .dipole_positions import dipole_fit_positions

                    info = mne_pick_info(ctx)
                    dipole_fit_positions(found, components, ctx.whitener, info,
                                         self._noise_cov, head_model, merge_mm=track_mm)
        else:
            refine_tracked(None, found, None)  # centroids, labelled as such

        def mm(x):
            return [round(float(v) * 1e3, 2) for v in x]

        self._reported[key] = (head_model, [
            {"position_mm": mm(s["position"]), "position_method": s["position_method"],
             "centroid_mm": mm(s["centroid"]), "hemi": s["hemi"],
             **({"subgrid_position_mm": mm(s["subgrid_position"]),
                 "dipole_gof": (None if s["dipole_gof"] is None else round(s["dipole_gof"], 2)),
                 "head_model": s["head_model"]}
                if "dipole_gof" in s else {}),
             "source_indices": [int(k) for k in s["source_indices"]],
             "periods": [[round(e["start"], 4), round(e["stop"], 4), round(e["peak_nAm"], 3)]
                         for e in s["events"]],
             "period_positions_mm": [mm(e["position"]) for e in s["events"]]}
            for s in found])
        return copy.deepcopy(self._reported[key][1])

    def timeline(self, n_bins=2000):
        """Peak amplitude of every source in ``n_bins`` time bins (bounded memory).

        Returns
        -------
        labels : list of str
            'lh 1234' / 'rh 88' / 'vol 5012', one per source.
        edges : ndarray, shape (n_bins + 1,)
            Bin edges (s).
        amplitude : ndarray, shape (n_sources, n_bins)
            Largest amplitude (nA·m) in each bin (0: inactive).
        """
        segments = self._segments if self._segments is not None else _read_segments(self.fname)
        return self._mapper.timeline(segments, self.n_times, self.tmin, n_bins)

    def binned_stc(self, n_bins=1000):
        """Source estimate of each source's peak amplitude in ``n_bins`` bins (A·m).

        The whole recording on one time axis of bounded size — what the viewer's
        time slider shows (bin width = duration / ``n_bins``). Without any source, an
        estimate with no vertices, as :attr:`stc`.
        """
        segments = self._segments if self._segments is not None else _read_segments(self.fname)
        mapper = self._mapper
        blocks, amp, edges = mapper.binned(segments, self.n_times, self.tmin, n_bins)
        rows = blocks * mapper.n_orient  # the amplitude on one orientation row
        values = amp * 1e-9 / mapper.weighting[rows][:, None]
        stc = mapper._problem.to_stc(values, active_set=rows, times=edges[:-1])
        stc.tstep = float(edges[1] - edges[0])  # one sample per bin
        return stc

    def peak_stc(self):
        """One-sample source estimate: each source's largest amplitude over the recording (A·m).

        For maps of *where* the recording's sources are (the time axis has one
        sample, at :attr:`tmin`). Without any source, an estimate with no vertices,
        as :attr:`stc`.
        """
        activity = self.source_activity()
        mapper = self._mapper
        index = np.array([a["source_index"] for a in activity], int)
        peaks = np.array([max(p[2] for p in a["periods"]) for a in activity]) * 1e-9
        blocks = np.searchsorted(mapper._problem.block_sources(), index)
        rows = blocks * mapper.n_orient  # the amplitude on one orientation row
        values = (peaks / mapper.weighting[rows])[:, None]
        return mapper._problem.to_stc(values, active_set=rows, times=np.array([self.tmin]))

    @property
    def window_used(self):
        """The window's length used (s): :attr:`params`' ``window`` in whole samples."""
        return int(self.params["n_window_samples"]) / self.sfreq

    @property
    def step_used(self):
        """The step used between windows (s): :attr:`params`' ``step`` in whole samples."""
        return int(self.params["n_step_samples"]) / self.sfreq

    def summary(self):
        """A JSON-ready summary: parameters, λ, noise, window counts, source periods.

        ``window_used_s`` and ``step_used_s`` are the window and step in whole samples
        (``params`` holds those asked); ``notes`` says when they differ; ``warnings``
        are :attr:`warnings`.
        """
        from .continuous_messages import window_note

        note = window_note(self.params, self.sfreq)
        w = self.windows
        status = np.asarray(w["status"])
        solved = status == 0
        ev = np.asarray(w["explained_variance"], float)
        return {
            "kind": "continuous",
            "params": self.params,
            "window_used_s": self.window_used,
            "step_used_s": self.step_used,
            "alpha": self.alpha,
            "noise": self.noise,
            "n_windows": int(status.size),
            "n_windows_solved": int(solved.sum()),
            # Solved windows whose support kept a source (BIC pruning can empty it).
            "n_windows_with_sources": int((solved & (np.asarray(w["n_sources"]) > 0)).sum()),
            "n_windows_empty": int((status == 1).sum()),
            "n_windows_bad": int((status == 2).sum()),
            "explained_variance_median_solved": (float(np.nanmedian(ev[solved]))
                                                 if solved.any() else None),
            "duration_s": self.n_times / self.sfreq,
            "timings_s": self.timings,
            "sources": self.source_activity(),
            "reported_sources": self.reported_sources(),
            "notes": [] if note is None else [note],
            "warnings": copy.deepcopy(self.warnings),
        }


def mne_pick_info(ctx):
    """Info of the channels the operator uses (in its order), with the projectors."""
    import mne

    return mne.pick_info(ctx.raw.info, ctx.picks)


class _SourceMapper:
    """Rows of the gain (source × orientation) → MNE source estimates and positions."""

    def __init__(self, operator):
        from .problem import InverseProblem

        self.n_orient = operator.n_orient
        self.weighting = operator.source_weighting
        self._problem = InverseProblem(
            gain=operator.gain, data=np.zeros((operator.gain.shape[0], 1)),
            n_orient=operator.n_orient, source_weighting=operator.source_weighting,
            whitener=operator.whitener, forward=operator.forward, info=operator.info,
            ch_names=operator.ch_names, times=np.zeros(1), loose=operator.loose,
            depth=operator.depth, rank=operator.rank, alpha_max=1.0,
            source_mask=operator.source_mask, operator=operator)

    @staticmethod
    def dense(segments, n_times):
        rows = np.unique(segments["row"]) if len(segments["row"]) else np.zeros(0, int)
        data = np.zeros((len(rows), n_times))
        where = np.searchsorted(rows, segments["row"])
        values = segments["values"]
        for k, (r, a, b, o) in enumerate(zip(where, segments["start"], segments["stop"],
                                              segments["offset"])):
            data[r, a:b] = values[o:o + b - a]
        return rows, data

    def to_stc(self, segments, n_times, tmin):
        rows, data = self.dense(segments, n_times)  # no row: an estimate without sources
        times = tmin + np.arange(n_times) / self._problem.sfreq
        # Stored in A·m; to_stc applies the source weighting itself.
        return self._problem.to_stc(data / self.weighting[rows][:, None], active_set=rows,
                                    times=times)

    def timeline(self, segments, n_times, tmin, n_bins):
        sources, amp, edges = self.binned(segments, n_times, tmin, n_bins)
        index = self._block_index(sources)
        vertices = self._vertices(index)
        kinds = [s["type"] for s in self._problem.forward["src"]]
        sizes = np.cumsum([len(s["vertno"]) for s in self._problem.forward["src"]])
        labels = []
        for i, v in zip(index, vertices):
            space = int(np.searchsorted(sizes, i, side="right"))
            name = ("lh", "rh")[space] if kinds == ["surf", "surf"] else (
                "vol" if kinds[space] == "vol" else f"s{space}")
            labels.append(f"{name} {v}")
        return labels, edges, amp

    def binned(self, segments, n_times, tmin, n_bins):
        """(gain blocks, peak amplitude (nA·m) per block and bin, bin edges (s))."""
        o = self.n_orient
        n_bins = int(min(n_bins, n_times))
        sources = np.unique(np.asarray(segments["row"], int) // o)
        amp = np.zeros((len(sources), n_bins))
        bin_of = (np.arange(n_times) * n_bins) // n_times
        by_block = {}
        for r, a, b, off in zip(segments["row"], segments["start"], segments["stop"],
                                segments["offset"]):
            key = (int(r) // o, int(a), int(b))
            v = segments["values"][off:off + b - a]
            by_block[key] = by_block.get(key, 0.0) + v ** 2
        for (blk, a, b), power in by_block.items():
            k = np.searchsorted(sources, blk)
            np.maximum.at(amp[k], bin_of[a:b], np.sqrt(power) * 1e9)
        edges = tmin + np.linspace(0, n_times, n_bins + 1) / self._problem.sfreq
        return sources, amp, edges

    def activity(self, segments, tmin, threshold=0.0):
        """Contiguous non-zero periods of each source, from the stored segments."""
        sfreq = self._problem.sfreq
        o = self.n_orient
        by_source = {}
        for r, a, b, off in zip(segments["row"], segments["start"], segments["stop"],
                                segments["offset"]):
            by_source.setdefault(int(r) // o, {}).setdefault((int(a), int(b)), []).append(
                segments["values"][off:off + b - a])
        out = []
        if not by_source:
            return out
        sources = np.array(sorted(by_source))
        full = sources if self._problem.source_mask is None else sources  # gain blocks
        positions, hemis = self._problem.source_positions(self._block_index(full))
        vertices = self._vertices(self._block_index(full))
        for k, s in enumerate(sources):
            periods = []
            for (a, b), comps in sorted(by_source[s].items()):
                amp = np.sqrt(np.sum(np.square(comps), axis=0))
                on = amp > threshold
                if not on.any():
                    continue
                edges = np.flatnonzero(np.diff(np.r_[0, on.astype(int), 0]))
                for e0, e1 in zip(edges[::2], edges[1::2]):
                    start, stop = (a + e0) / sfreq + tmin, (a + e1) / sfreq + tmin
                    peak = float(amp[e0:e1].max()) * 1e9
                    if periods and abs(periods[-1][1] - start) < 0.5 / sfreq:
                        periods[-1][1] = stop  # contiguous across blocks
                        periods[-1][2] = max(periods[-1][2], peak)
                    else:
                        periods.append([start, stop, peak])
            out.append({"source_index": int(self._block_index([s])[0]),
                        "vertex": int(vertices[k]), "hemi": hemis[k],
                        "position_mm": [round(float(x) * 1e3, 2) for x in positions[k]],
                        "periods": [[round(p[0], 4), round(p[1], 4), round(p[2], 3)]
                                    for p in periods]})
        return out

    def _block_index(self, blocks):
        """Gain blocks → source indices of the unmasked source space."""
        return self._problem.block_sources()[np.asarray(blocks, int)]

    def _vertices(self, index):
        vertno = np.concatenate([s["vertno"] for s in self._problem.forward["src"]])
        return vertno[index]


# ------------------------------------------------------------------- writing
class _MemoryWriter:
    """Segments kept in memory (no file)."""

    def __init__(self):
        self.parts = {"row": [], "start": [], "stop": [], "values": []}
        self.windows = {k: [] for k in _WINDOW_FIELDS}
        self.n_values = 0

    def write_block(self, start, rows, block):
        n = block.shape[1]
        for r, v in zip(rows, block):
            self.parts["row"].append(r)
            self.parts["start"].append(start)
            self.parts["stop"].append(start + n)
            self.parts["values"].append(v.copy())

    def write_windows(self, records):
        for k in _WINDOW_FIELDS:
            self.windows[k].extend(records[k])

    def segments(self):
        lengths = [len(v) for v in self.parts["values"]]
        return {"row": np.asarray(self.parts["row"], int),
                "start": np.asarray(self.parts["start"], int),
                "stop": np.asarray(self.parts["stop"], int),
                "offset": np.r_[0, np.cumsum(lengths)[:-1]].astype(int) if lengths
                else np.zeros(0, int),
                "values": np.concatenate(self.parts["values"]) if lengths else np.zeros(0)}

    def window_arrays(self):
        return {k: np.asarray(v) for k, v in self.windows.items()}

    def finish(self, attrs):
        return None

    def abort(self):
        pass


class _H5Writer:
    """Segments and window records appended to an HDF5 file under a temporary name.

    Layout: ``segments/{row,start,stop,offset}`` (one entry per source row and
    finalized block: gain row, first and past-last sample of the estimate,
    offset into ``segments/values``), ``segments/values`` (A·m, concatenated),
    ``windows/<field>`` (per-window records), attributes (sfreq, tmin, n_times,
    parameters as JSON). The file appears under its name only when complete.
    """

    def __init__(self, fname, overwrite=False):
        import h5py

        self.fname = Path(fname)
        if self.fname.exists() and not overwrite:
            raise InputError(f"{str(self.fname)!r} exists.", "pass overwrite=True or another name.")
        if not self.fname.parent.is_dir():
            raise InputError(f"The folder of {str(self.fname)!r} does not exist.",
                             "create it first or choose another file name.")
        self.tmp = self.fname.with_name(f".{self.fname.name}.partial-{os.getpid()}")
        self.h5 = h5py.File(self.tmp, "w")
        seg = self.h5.create_group("segments")
        for name in ("row", "start", "stop", "offset"):
            seg.create_dataset(name, shape=(0,), maxshape=(None,), dtype="i8", chunks=(4096,))
        seg.create_dataset("values", shape=(0,), maxshape=(None,), dtype="f8", chunks=(65536,))
        win = self.h5.create_group("windows")
        for name in _WINDOW_FIELDS:
            win.create_dataset(name, shape=(0,), maxshape=(None,),
                               dtype="i8" if name in ("status", "n_sources", "n_iter") else "f8",
                               chunks=(1024,))
        self.n_values = 0

    @staticmethod
    def _append(ds, values):
        n = ds.shape[0]
        ds.resize((n + len(values),))
        ds[n:] = values

    def write_block(self, start, rows, block):
        if len(rows) == 0:
            return
        n = block.shape[1]
        seg = self.h5["segments"]
        self._append(seg["row"], np.asarray(rows, int))
        self._append(seg["start"], np.full(len(rows), start))
        self._append(seg["stop"], np.full(len(rows), start + n))
        self._append(seg["offset"], self.n_values + n * np.arange(len(rows)))
        self._append(seg["values"], np.ascontiguousarray(block).ravel())
        self.n_values += block.size

    def write_windows(self, records):
        for k in _WINDOW_FIELDS:
            self._append(self.h5["windows"][k], np.asarray(records[k]))

    def window_arrays(self):
        return {k: self.h5["windows"][k][()] for k in _WINDOW_FIELDS}

    def finish(self, attrs):
        import json

        for key, value in attrs.items():
            self.h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        self.h5.attrs["format"] = _FORMAT
        self.h5.attrs["format_version"] = _FORMAT_VERSION
        self.h5.close()
        os.replace(self.tmp, self.fname)
        return self.fname

    def abort(self):
        try:
            self.h5.close()
        except Exception:  # already closed or broken: the file goes anyway
            pass
        self.tmp.unlink(missing_ok=True)


def _read_segments(fname):
    import h5py

    with h5py.File(fname, "r") as h5:
        return {k: h5["segments"][k][()] for k in ("row", "start", "stop", "offset", "values")}


def read_continuous(fname, forward, noise_cov=None, info=None, raw=None, *, bem=None,
                    trans=None):
    """Read a continuous localization written by :func:`localize_continuous`.

    Parameters
    ----------
    fname : path-like
        The HDF5 file.
    forward : mne.Forward
        The forward solution it was computed with (the source space).
    noise_cov, info
        The noise covariance and measurement info it was computed with (the
        operator is prepared again to map rows to sources).
    raw : mne.io.Raw | None
        The recording it was computed from (need not be preloaded): with it,
        :meth:`ContinuousResult.reported_sources` fits sub-grid positions to
        the data (read again event by event); its info is used if ``info`` is
        None.
    bem, trans
        Head model of the reported sources' dipole fits (with ``raw``), as
        :func:`localize_continuous` takes it.

    Returns
    -------
    result : ContinuousResult

    Raises
    ------
    InputError
        A file that is not a continuous result, a ``raw`` shorter than the
        result, ``bem``/``trans`` without ``raw`` (the fits read it again), a
        bad head model (see :func:`localize_continuous`).
    """
    import json

    import h5py

    from .operator import make_sparse_inverse_operator

    fname = Path(fname)
    if not fname.is_file():
        raise InputError(f"No continuous result file {str(fname)!r}.", "check the path.")
    try:
        with h5py.File(fname, "r") as h5:
            if h5.attrs.get("format") != _FORMAT:
                raise OSError("not a continuous result")
            attrs = dict(h5.attrs)
            windows = {k: h5["windows"][k][()] for k in _WINDOW_FIELDS}
    except OSError as exc:
        raise InputError(f"{str(fname)!r} is not a meeg-inverse continuous result ({exc}).",
                         "give a file written by localize_continuous.") from None
    params = json.loads(attrs["params"])
    if raw is None and (bem is not None or trans is not None):
        raise InputError("bem/trans were given without raw: the dipole fits of the reported "
                         "sources read the recording again.",
                         "pass raw= too (the recording the result was computed from), or "
                         "drop bem and trans (the reported sources are then centroids).")
    ctx = None
    if raw is not None:
        from .io import with_average_reference

        raw = with_average_reference(raw)
        info = raw.info if info is None else info
    op = make_sparse_inverse_operator(
        info, forward, noise_cov, loose=params["loose"], depth=params["depth"],
        rank=params.get("rank"), allow_missing_types=params.get("allow_missing_types", False))
    head_model = None
    if raw is not None:
        ctx = _reading_context(raw, op, params, int(attrs["n_times"]), float(attrs["sfreq"]))
    if bem is not None or trans is not None:
        head_model = _head_model(bem, trans, forward, None if ctx is None else mne_pick_info(ctx))
    return ContinuousResult(windows=windows, alpha=float(attrs["alpha"]),
                            noise=json.loads(attrs["noise"]), sfreq=float(attrs["sfreq"]),
                            tmin=float(attrs["tmin"]), n_times=int(attrs["n_times"]),
                            params=params, timings=json.loads(attrs["timings"]), fname=fname,
                            warnings=json.loads(attrs.get("warnings", "[]")),
                            _mapper=_SourceMapper(op), _context=ctx, _noise_cov=noise_cov,
                            _head_model=head_model)


def _head_model(bem, trans, forward, info):
    """The dipole fits' head model (checked), or None when neither is given."""
    from .dipole_positions import read_head_model

    if bem is None and trans is None:
        return None
    if bem is None:
        raise InputError("trans was given without bem: the dipole fit of the reported "
                         "sources needs both.", "give bem= too (a -bem-sol.fif), or drop trans.")
    return read_head_model(bem, trans, forward, info)


def _reading_context(raw, op, params, n_times, sfreq):
    """A context that reads whitened data of the estimate's samples (:func:`_read_chunk`)."""
    missing = [c for c in op.ch_names if c not in raw.ch_names]
    if missing or abs(raw.info["sfreq"] - sfreq) > 1e-6:
        raise InputError(f"The raw recording does not match the result (sampling rate "
                         f"{raw.info['sfreq']:g} Hz for {sfreq:g} Hz; channels missing: "
                         f"{missing[:5]}).", "give the recording the result was computed from.")
    sfreq = raw.info["sfreq"]
    filter_kw, pad = None, 0
    if params.get("l_freq") is not None or params.get("h_freq") is not None:
        from mne.filter import create_filter

        filter_kw = dict(sfreq=sfreq, l_freq=params["l_freq"], h_freq=params["h_freq"],
                         verbose=False)
        pad = int(len(create_filter(None, **filter_kw)))
    first = int(round((params["tmin"] - raw.times[0]) * sfreq))
    if first < 0 or first + n_times > len(raw.times):
        raise InputError("The raw recording is shorter than the result's span.",
                         "give the recording the result was computed from.")
    return _Context(raw=raw, picks=[raw.ch_names.index(c) for c in op.ch_names],
                    whitener=op.whitener, gain=op.gain, n_orient=op.n_orient,
                    weighting=op.source_weighting, n_win=int(params["n_window_samples"]),
                    n_hop=int(params["n_step_samples"]), pad=pad, n_total=n_times,
                    offset=first, penalty=params.get("penalty", "l21"), fixed_fraction=None,
                    alpha_unit=np.nan, noise_variance=1.0, tol=1e-6, warm_start=False,
                    filter_kw=filter_kw, max_time=None)


# ------------------------------------------------------------------ blending
class _Blender:
    """Normalized overlap-add of window estimates, flushed as samples become final.

    The estimate at sample t is ``Σ_k w_k(t) x_k(t) / Σ_k w_k(t)`` over the
    windows k that cover t and were localized (skipped windows add nothing;
    samples no localized window covers stay zero).
    """

    def __init__(self, origin, writer):
        self.start = origin  # sample (of the estimate) of buffer[0]
        self.wsum = np.zeros(0)
        self.rows = {}
        self.writer = writer

    def _grow(self, end):
        n = end - self.start
        if n > self.wsum.size:
            extra = n - self.wsum.size
            self.wsum = np.r_[self.wsum, np.zeros(extra)]
            for r in self.rows:
                self.rows[r] = np.r_[self.rows[r], np.zeros(extra)]

    def add(self, start, weights, rows=(), values=None):
        end = start + weights.size
        self._grow(end)
        a = start - self.start
        self.wsum[a:a + weights.size] += weights
        for r, v in zip(rows, values if values is not None else ()):
            if r not in self.rows:
                self.rows[r] = np.zeros(self.wsum.size)
            self.rows[r][a:a + weights.size] += weights * v

    def flush(self, upto):
        """Write the samples before ``upto`` (no later window reaches them)."""
        n = upto - self.start
        if n <= 0:
            return
        self._grow(upto)
        ws = self.wsum[:n]
        scale = np.divide(1.0, ws, out=np.zeros(n), where=ws > 0)
        rows = sorted(r for r, v in self.rows.items() if np.any(v[:n] != 0))
        if rows:
            block = np.stack([self.rows[r][:n] * scale for r in rows])
            self.writer.write_block(self.start, rows, block)
        self.wsum = self.wsum[n:]
        self.rows = {r: v[n:] for r, v in self.rows.items() if np.any(v[n:] != 0)}
        self.start = upto


#: Longest band-pass filter (s) a chunk may be padded with: the padding is real
#: data read on each side, so this bounds what a chunk reads (MNE's high-pass
#: filters last 3.3 / l_freq s below 2 Hz: 0.06 Hz and up).
MAX_FILTER_S = 60.0


def blend_weights(n_samples):
    """Hann weights of a window, positive at every sample: ``sin²(π (t + ½) / n)``."""
    return np.sin(np.pi * (np.arange(n_samples) + 0.5) / n_samples) ** 2


# ------------------------------------------------------------------ the work
@dataclass
class _Context:
    """Everything a chunk's worker needs (pickled once per task by joblib)."""

    raw: object
    picks: list
    whitener: np.ndarray
    gain: np.ndarray
    n_orient: int
    weighting: np.ndarray
    n_win: int
    n_hop: int
    pad: int
    n_total: int  # samples of the analysed span
    offset: int   # first sample of the span in the raw (raw.get_data index)
    penalty: str
    fixed_fraction: float | None
    alpha_unit: float  # λ at noise variance 1 (amortized)
    noise_variance: float
    tol: float
    warm_start: bool
    filter_kw: dict | None
    max_time: float | None
    learned: object = None
    prune: str | None = "bic"


def _read_chunk(ctx, a, b):
    """Whitened data of span samples [a, b) and a mask of samples in BAD_ segments."""
    lo, hi = max(a - ctx.pad, 0), min(b + ctx.pad, ctx.n_total)
    data = ctx.raw.get_data(picks=ctx.picks, start=ctx.offset + lo, stop=ctx.offset + hi,
                            reject_by_annotation="NaN")
    bad = np.isnan(data).any(axis=0)
    if ctx.filter_kw is not None:
        from mne.filter import filter_data

        if bad.any():
            data = np.where(np.isnan(data), 0.0, data)
        data = filter_data(data, **ctx.filter_kw)
        if bad.any() and ctx.pad:
            # Filtered samples within half a filter of a bad one are contaminated.
            kernel = np.ones(2 * (ctx.pad // 2) + 1)
            bad = np.convolve(bad.astype(float), kernel, mode="same") > 0
    cut = slice(a - lo, a - lo + (b - a))
    return ctx.whitener @ data[:, cut], bad[cut]


def _window_noise(y):
    return float(np.mean(y ** 2))


def _process_chunk(ctx, starts):
    """Localize the windows starting at ``starts`` (span samples), in order.

    Returns ``(records, estimates)``: per-window records, and for each solved
    window ``(start, rows, values)`` with values in A·m, shape (n_rows, n_win).
    """
    from ._blas import one_blas_thread

    # A window's matrices are small (rank x 60): BLAS threads only cost, and
    # parallel chunks are the way to use several cores.
    with one_blas_thread():
        return _localize_windows(ctx, starts)


def _localize_windows(ctx, starts):
    from .penalties import make_penalty
    from .problem import debias_amplitudes
    from .solvers import solve_from_convex

    a, b = starts[0], starts[-1] + ctx.n_win
    y_all, bad_all = _read_chunk(ctx, a, b)
    n = ctx.n_win
    rec = {k: [] for k in _WINDOW_FIELDS}
    out = []
    # The chunk's noise level: the lower quartile of its windows' variances
    # (sources are active in a minority of windows).
    good = [s for s in starts if not bad_all[s - a:s - a + n].any()]
    ratio = 1.0
    if len(good) >= 8:
        level = np.quantile([_window_noise(y_all[:, s - a:s - a + n]) for s in good], 0.25)
        if abs(level / ctx.noise_variance - 1.0) > NOISE_CHANGE:
            ratio = level / ctx.noise_variance
    lam_amortized = ctx.alpha_unit * np.sqrt(ctx.noise_variance * ratio)
    prev = None
    gain = ctx.gain
    n_blocks = gain.shape[1] // ctx.n_orient
    hop_energy = {}

    def block_energy(a0, a1):
        # Σ_t ||G_kᵀ y_t||² over samples [a0, a1) of the chunk, per source k.
        c = gain.T @ y_all[:, a0 - a:a1 - a]
        return np.einsum("kt,kt->k", *(c.reshape(n_blocks, -1),) * 2)

    def window_energy(s0):
        # ||G_kᵀ Y||²_F of the window = the sum of its hops' energies: with overlapping
        # windows each hop's correlations are computed once, not once per window.
        if n % ctx.n_hop:
            return block_energy(s0, s0 + n)
        total = np.zeros(n_blocks)
        for h0 in range(s0, s0 + n, ctx.n_hop):
            if h0 not in hop_energy:
                hop_energy[h0] = block_energy(h0, h0 + ctx.n_hop)
            total += hop_energy[h0]
        hop_energy.pop(s0 - ctx.n_hop, None)  # no later window starts before s0
        return total

    for s in starts:
        y = y_all[:, s - a:s - a + n]
        rec["start"].append(s)
        rec["stop"].append(s + n)
        rec["noise_ratio"].append(ratio)
        if bad_all[s - a:s - a + n].any():
            for k, v in (("status", 2), ("alpha", np.nan), ("alpha_max", np.nan),
                         ("n_sources", 0), ("explained_variance", np.nan), ("n_iter", 0),
                         ("solve_time", 0.0)):
                rec[k].append(v)
            prev = None
            continue
        t0 = time.perf_counter()
        lmax = float(np.sqrt(window_energy(s).max()))
        lam = lam_amortized if ctx.fixed_fraction is None else ctx.fixed_fraction * lmax
        rec["alpha"].append(lam)
        rec["alpha_max"].append(lmax)
        if lmax <= lam:
            for k, v in (("status", 1), ("n_sources", 0), ("explained_variance", 0.0),
                         ("n_iter", 0)):
                rec[k].append(v)
            rec["solve_time"].append(time.perf_counter() - t0)
            prev = None
            continue
        init = None
        if ctx.learned is not None:
            init = ctx.learned.predict(y, lam)
        elif ctx.warm_start and prev is not None:
            # The previous window's solution shifted by the step; its last
            # sample held over the new tail.
            init = np.empty_like(prev)
            h = min(ctx.n_hop, n)
            init[:, :n - h] = prev[:, h:]
            init[:, n - h:] = prev[:, -1:]
        kw = {} if ctx.max_time is None else {"max_time": ctx.max_time}
        res = solve_from_convex(gain, y, make_penalty(ctx.penalty, lam),
                                n_orient=ctx.n_orient, tol=ctx.tol, coef_init=init, **kw)
        active = np.asarray(res.active_set, bool)
        coef = np.asarray(res.coef)
        prev = coef if active.any() else None
        rows = np.flatnonzero(active)
        n_sources = len(np.unique(rows // ctx.n_orient))
        ev = 0.0
        if rows.size and ctx.prune == "bic":
            rows, values = prune_bic(gain, y, rows, ctx.n_orient, ctx.noise_variance * ratio)
            n_sources = len(np.unique(rows // ctx.n_orient))
        elif rows.size:
            values = debias_amplitudes(gain[:, rows], y, coef[rows], ctx.n_orient)
        if rows.size:
            resid = y - gain[:, rows] @ values
            ev = 1.0 - float(np.sum(resid ** 2) / np.sum(y ** 2))
            out.append((s, rows, values * ctx.weighting[rows][:, None]))
        rec["status"].append(0)
        rec["n_sources"].append(n_sources)
        rec["explained_variance"].append(ev)
        rec["n_iter"].append(int(res.n_iter))
        rec["solve_time"].append(time.perf_counter() - t0)
    return rec, out


def prune_bic(gain, data, rows, n_orient, noise_variance):
    """Backward elimination of a window's support by BIC, then the least-squares refit.

    The L2,1 support at the noise-only threshold keeps, besides each source,
    some of its neighbours (correlated gain columns share the fit). A source
    stays only if the least-squares fit without it loses more than the BIC
    price of its parameters, ``log(n T) · n_orient · T`` noise variances
    (Schwarz 1978; the criterion of :func:`meeg_inverse.rules.select_bic`),
    removing first the source whose loss is smallest.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_rows)
    data : ndarray, shape (n_channels, n_times)
    rows : ndarray of int
        Active rows (whole sources: ``n_orient`` consecutive rows each).
    n_orient : int
    noise_variance : float
        Whitened noise variance per channel and sample.

    Returns
    -------
    rows : ndarray of int
        The rows kept.
    values : ndarray, shape (len(rows), n_times)
        Their least-squares amplitudes (whitened units).
    """
    n_channels, n_times = data.shape
    price = np.log(n_channels * n_times) * n_orient * n_times * noise_variance
    blocks = list(np.unique(rows // n_orient))
    g = gain[:, rows]
    gram = g.T @ g
    corr = g.T @ data
    local = {b: np.flatnonzero(rows // n_orient == b) for b in blocks}

    def explained(keep):
        idx = np.concatenate([local[b] for b in keep])
        sol = np.linalg.lstsq(gram[np.ix_(idx, idx)], corr[idx], rcond=None)[0]
        return float(np.sum(corr[idx] * sol)), idx, sol

    current, _, _ = explained(blocks)
    while len(blocks) > 1:
        losses = []
        for b in blocks:
            value, _, _ = explained([c for c in blocks if c != b])
            losses.append(current - value)
        k = int(np.argmin(losses))
        if losses[k] >= price:
            break
        blocks.pop(k)
        current -= losses[k]
    if len(blocks) == 1 and current < price:
        return rows[:0], np.zeros((0, n_times))
    _, idx, sol = explained(blocks)
    return rows[idx], sol


def _window_starts(n_total, n_win, n_hop):
    """Window starts covering [0, n_total): every hop, plus one ending at the last sample."""
    starts = list(range(0, n_total - n_win + 1, n_hop))
    if starts[-1] + n_win < n_total:
        starts.append(n_total - n_win)
    return np.asarray(starts, int)


def _noise_reference(ctx, starts, noise_segment, sfreq, tmin_span):
    """Whitened noise of the recording (variance, lag-1 autocorrelation).

    From ``noise_segment`` (s) when given, else from :data:`N_NOISE_WINDOWS`
    windows spread over the recording: the lower quartile of their variances
    (sources are active in a minority of windows) and the median lag-1
    autocorrelation of those below the median.
    """
    from .noise import NoiseEstimate

    if noise_segment is not None:
        t0, t1 = noise_segment
        a = int(round((t0 - tmin_span) * sfreq))
        b = int(round((t1 - tmin_span) * sfreq))
        if not (0 <= a < b <= ctx.n_total) or b - a < ctx.n_win:
            raise InputError(f"noise_segment {noise_segment} is not a segment of at least one "
                             "window inside the analysed span.",
                             "give (start, stop) in seconds of the recording, at least one "
                             "window long.")
        y, bad = _read_chunk(ctx, a, b)
        y = y[:, ~bad]
        if y.shape[1] < ctx.n_win:
            raise InputError("noise_segment lies in BAD_ annotated samples.",
                             "choose a clean quiet segment.")
        # Not mean-subtracted: the windows are not either (a per-window mean would be a
        # high-pass at 1/window, 10 Hz for 100 ms, taking the sources' slow part). The
        # reference describes a noise-only window as the solver sees it, offsets of an
        # un-high-passed recording included; high-passed, the mean is ~0 either way.
        var = float(np.mean(y ** 2))
        rho = float(np.sum(y[:, :-1] * y[:, 1:]) / np.sum(y ** 2))
        return NoiseEstimate(var, float(np.clip(rho, 0, 0.99)), 1.0, y.shape[1],
                             "noise_segment")
    pick = starts[np.unique(np.linspace(0, len(starts) - 1, N_NOISE_WINDOWS).round().astype(int))]
    stats = []
    for s in pick:
        y, bad = _read_chunk(ctx, s, s + ctx.n_win)
        if bad.any():
            continue
        stats.append((float(np.mean(y ** 2)),
                      float(np.sum(y[:, :-1] * y[:, 1:]) / max(np.sum(y ** 2), 1e-300))))
    if len(stats) < 4:
        raise InputError("Fewer than 4 clean windows to measure the noise level on.",
                         "give a longer recording or fewer BAD_ annotations, or name a quiet "
                         "clean segment with noise_segment (--noise-segment START,STOP).")
    var = np.array([v for v, _ in stats])
    rho = np.array([r for _, r in stats])
    quiet = var <= np.median(var)
    return NoiseEstimate(float(np.quantile(var, 0.25)), float(np.clip(np.median(rho[quiet]),
                                                                       0, 0.99)),
                         1.0, int(len(stats) * ctx.n_win), "windows (lower quartile)")


def train_learned_solver(ctx, starts, lam, operator, n_train=6, n_layers=8):
    """A :class:`meeg_inverse.learned.LearnedSolver` trained on the recording's own windows.

    The training windows are the first ``n_train`` windows above the threshold
    among up to 400 spread over the recording; None when fewer than 2 are.
    """
    from .learned import LearnedSolver
    from .problem import group_norms

    pick = starts[np.unique(np.linspace(0, len(starts) - 1, 400).round().astype(int))]
    windows = []
    for s in pick:
        y, bad = _read_chunk(ctx, s, s + ctx.n_win)
        if not bad.any() and group_norms(operator.gain.T @ y, operator.n_orient).max() > lam:
            windows.append((y, lam))
            if len(windows) == n_train:
                break
    if len(windows) < 2:
        return None
    return LearnedSolver(operator.gain, operator.n_orient, n_layers=n_layers).fit(windows)


def amortized_lambda(gain, n_times, noise, n_orient, level=DEFAULT_LEVEL, n_draws=N_DRAWS,
                     random_state=0):
    """λ of a window at unit noise variance: the ``level`` quantile of noise-only λ_max.

    λ_max of noise with standard deviation σ is σ times that of unit noise, so
    the threshold of a window at any noise level is ``σ ×`` this value. The
    quantile is that of a Gumbel law fitted to the ``n_draws`` maxima (a
    maximum of many correlations; an empirical 99 % quantile of a few hundred
    draws is one of its largest values).

    Returns
    -------
    lambda_unit : float
    """
    from scipy.stats import gumbel_r

    from .noise import NoiseEstimate, draw_noise

    from ._blas import one_blas_thread

    unit = NoiseEstimate(1.0, noise.autocorrelation, 1.0, 0, "unit")
    rng = np.random.default_rng(random_state)
    n_channels, n_cols = gain.shape
    lmax = np.empty(n_draws)
    with one_blas_thread():
        for k in range(n_draws):
            corr = gain.T @ draw_noise(rng, (n_channels, n_times), unit)
            lmax[k] = np.sqrt((corr.reshape(n_cols // n_orient, -1) ** 2).sum(axis=1)).max()
    loc, scale = gumbel_r.fit(lmax)
    return float(gumbel_r.ppf(level, loc, scale))


def _is_real(value):
    """A finite real number (a bool or a numeric string is not one)."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value)))


def _check_types(*, l_freq, h_freq, tmin, tmax, level, alpha, n_jobs, noise_segment=None,
                 penalty="l21", tol=1e-6, max_time=None, fname=None, warm_start=True,
                 random_state=0):
    """Types of the arguments, before any comparison of their values (no TypeError later)."""
    for name, value in (("l_freq", l_freq), ("h_freq", h_freq), ("tmin", tmin), ("tmax", tmax),
                        ("max_time", max_time)):
        if value is not None and not _is_real(value):
            raise InputError(f"{name} must be a finite number or None, got {value!r}.",
                             f"give {name} as a number (e.g. {name}=1.0) or leave it None.")
    if not _is_real(level):
        raise InputError(f"level must be a number in [0.5, 1), got {level!r}.", "use e.g. 0.99.")
    if not (alpha == "qut" or _is_real(alpha)):
        raise InputError(f"alpha must be 'qut' (amortized) or a fraction of each window's "
                         f"lambda_max in (0, 1), got {alpha!r}.", "use alpha='qut'.")
    if not (isinstance(n_jobs, (int, np.integer)) and not isinstance(n_jobs, bool)):
        raise InputError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.",
                         "use n_jobs=1 (serial), 2, ... or -1 (all cores).")
    if noise_segment is not None and (
            isinstance(noise_segment, (str, bytes)) or not hasattr(noise_segment, "__len__")
            or len(noise_segment) != 2 or not all(_is_real(x) for x in noise_segment)):
        raise InputError(f"noise_segment must be (start, stop) in seconds, got "
                         f"{noise_segment!r}.", "use e.g. noise_segment=(0.0, 20.0).")
    if max_time is not None and max_time <= 0:
        raise InputError(f"max_time must be a positive number of seconds or None, got "
                         f"{max_time!r}.", "use e.g. max_time=30.")
    if not (_is_real(tol) and 0 < tol < 1):
        raise InputError(f"tol must be a number in (0, 1), got {tol!r}.", "use e.g. tol=1e-6.")
    if fname is not None and not isinstance(fname, (str, os.PathLike)):
        raise InputError(f"fname must be a file path or None, got {fname!r}.",
                         "use e.g. fname='sources-continuous.h5'.")
    if not isinstance(warm_start, (bool, np.bool_)):
        raise InputError(f"warm_start must be True or False, got {warm_start!r}.",
                         "use warm_start=True.")
    if not (isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)):
        raise InputError(f"random_state must be an integer seed, got {random_state!r}.",
                         "use e.g. random_state=0.")
    from .penalties import PENALTIES, make_penalty

    try:
        make_penalty(penalty, 1.0)
    except Exception:  # unknown name, or one that needs per-source weights
        raise InputError(f"penalty {penalty!r} cannot be used on continuous recordings.",
                         "choose one of: " + ", ".join(
                             p for p in sorted(PENALTIES) if p != "weighted_l21")) from None


def bad_mask(raw, span0, span1):
    """Which samples of [span0, span1] s (both included) lie in a ``BAD_*`` annotation."""
    from mne.annotations import _annotations_starts_stops

    a, b = raw.time_as_index([span0, span1], use_rounding=True)
    a, b = int(a), min(int(b) + 1, len(raw.times))
    covered = np.zeros(max(b - a, 0), bool)
    if not len(raw.annotations):
        return covered
    starts, stops = _annotations_starts_stops(raw, ("BAD",))
    for s0, s1 in zip(starts, stops):
        covered[max(s0 - a, 0):max(min(s1 - a, b - a), 0)] = True
    return covered


def _check_not_all_bad(raw, span0, span1):
    """One clear error when ``BAD_*`` annotations cover the whole span (nothing to localize)."""
    covered = bad_mask(raw, span0, span1)
    if covered.size and covered.all():
        raise InputError(f"Every sample of [{span0:.3f}, {span1:.3f}] s lies in a BAD_ "
                         "annotation: nothing is left to localize.",
                         "remove or shorten the BAD_ annotations (raw.annotations), or choose "
                         "a span outside them with tmin/tmax (--tmin/--tmax).")


def _check_args(raw, window, step, l_freq, h_freq, level, n_jobs, chunk, alpha, tmin, tmax,
                prune="bic", **more):
    """Every argument checked before any work (``more``: the rest of :func:`_check_types`)."""
    import mne

    if not isinstance(raw, mne.io.BaseRaw):
        raise InputError(f"raw must be an mne.io.Raw, got {type(raw).__name__}.",
                         "read one with mne.io.read_raw(fname) (preload not needed).")
    for name, value in (("window", window), ("step", step), ("chunk", chunk)):
        if not _is_real(value) or value <= 0:
            raise InputError(f"{name} must be a positive number of seconds, got {value!r}.",
                             "use e.g. window=0.1, step=0.05, chunk=10.")
    if step > window:
        raise InputError(f"step ({step} s) is longer than the window ({window} s): samples "
                         "between windows would get no estimate.",
                         "use step <= window (e.g. step = window / 2).")
    sfreq = raw.info["sfreq"]
    if round(window * sfreq) < 2:
        raise InputError(f"window={window} s is shorter than 2 samples at {sfreq:g} Hz.",
                         "use a longer window.")
    if round(step * sfreq) < 1:
        raise InputError(f"step={step} s is shorter than one sample at {sfreq:g} Hz.",
                         "use a longer step.")
    _check_types(l_freq=l_freq, h_freq=h_freq, tmin=tmin, tmax=tmax, level=level, alpha=alpha,
                 n_jobs=n_jobs, **more)
    span0 = raw.times[0] if tmin is None else tmin
    span1 = raw.times[-1] if tmax is None else tmax
    if not (raw.times[0] <= span0 < span1 <= raw.times[-1] + 0.5 / sfreq):
        raise InputError(f"The span [{span0:g}, {span1:g}] s is not inside the recording "
                         f"[{raw.times[0]:.3f}, {raw.times[-1]:.3f}] s.",
                         "choose tmin < tmax inside it.")
    _check_not_all_bad(raw, span0, span1)
    # In samples: a span of n samples lasts n / sfreq (a 301-sample recording at 300.3 Hz
    # holds a 1-s window although its last sample is at 0.999 s).
    n_span = int(round((span1 - span0) * sfreq)) + 1
    if round(window * sfreq) > n_span:
        what = "recording" if tmin is None and tmax is None else "span tmin..tmax"
        raise InputError(f"The window ({window:g} s) is longer than the {what} "
                         f"({n_span / sfreq:.3f} s).",
                         "use a shorter window" + ("." if what == "recording" else
                                                   ", or a longer span (--tmin/--tmax)."))
    nyq = sfreq / 2.0
    for name, f in (("l_freq", l_freq), ("h_freq", h_freq)):
        if f is not None and not (np.isfinite(f) and 0 < f < nyq):
            raise InputError(f"{name}={f} Hz is outside (0, {nyq:g}) Hz.",
                             "give a frequency between 0 and the Nyquist frequency.")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise InputError(f"l_freq ({l_freq} Hz) is not below h_freq ({h_freq} Hz).",
                         "swap them, or give one of the two.")
    if not 0.5 <= level < 1:
        raise InputError(f"level must be in [0.5, 1), got {level}.", "use e.g. 0.99.")
    if not isinstance(n_jobs, (int, np.integer)) or (n_jobs < 1 and n_jobs != -1):
        raise InputError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.",
                         "use n_jobs=1 (serial), 2, ... or -1 (all cores).")
    if prune not in ("bic", None):
        raise InputError(f"prune must be 'bic' or None, got {prune!r}.", "use prune='bic'.")
    if not (alpha == "qut" or (isinstance(alpha, (int, float)) and 0 < alpha < 1)):
        raise InputError(f"alpha must be 'qut' (amortized) or a fraction of each window's "
                         f"lambda_max in (0, 1), got {alpha!r}.", "use alpha='qut'.")


def localize_continuous(raw, forward, noise_cov, *, window=0.1, step=0.05, l_freq=None,
                        h_freq=None, tmin=None, tmax=None, alpha="qut", level=DEFAULT_LEVEL,
                        penalty="l21", prune="bic", loose="auto", depth=0.8, rank=None, tol=1e-6,
                        warm_start=False, learned=None, noise_segment=None, chunk=10.0,
                        fname=None, overwrite=False, n_jobs=1, max_time=30.0,
                        random_state=0, progress=None, verbose=False, client=None, bem=None,
                        trans=None, allow_missing_types=False):
    """Sparse source estimate of a whole continuous recording, window by window.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording; need not be preloaded (it is read chunk by chunk).
        ``BAD_*`` annotations mark samples to leave out.
    forward : mne.Forward
    noise_cov : mne.Covariance
        Noise covariance of single samples (empty room, a quiet segment, ...).
    window, step : float
        Window length and step (s); ``step <= window`` (default 100 ms windows,
        50 % overlap). Both are rounded to whole samples: the result's
        :attr:`~ContinuousResult.window_used` and :attr:`~ContinuousResult.step_used`
        (and ``progress`` notes it when they differ).
    l_freq, h_freq : float | None
        Band-pass (Hz) applied to each chunk (MNE's default FIR filter).
    tmin, tmax : float | None
        Span of the recording to localize (s; default all of it).
    alpha : 'qut' | float
        'qut': the amortized threshold (see :func:`amortized_lambda`); a
        number: that fraction of each window's own λ_max.
    level : float
        Probability that a noise-only window gives no source.
    penalty : str
        Penalty of :mod:`meeg_inverse.penalties` (default 'l21').
    prune : 'bic' | None
        'bic': each window's support is pruned by BIC and refit by least
        squares (:func:`prune_bic`); None: the support as solved, debiased.
    loose, depth, rank
        As :func:`meeg_inverse.make_sparse_inverse_operator`.
    tol : float
        Solver tolerance (relative).
    warm_start : bool
        Start each window from the previous one's solution, shifted by the step.
        Off by default: it did not pay off in the benchmark (the same outer
        iterations, a little more time; docs/continuous.md).
    learned : bool | LearnedSolver | None
        An amortized solver (:mod:`meeg_inverse.learned`) whose output starts
        each solve instead of the previous window (the exact solver then
        certifies it); True: trained here on the recording's own windows.
        Off by default: it did not pay off in the benchmark (docs/continuous.md).
    noise_segment : (float, float) | None
        A quiet segment (s) to measure the noise level on; default: the lower
        quartile of windows spread over the recording.
    chunk : float
        Seconds read at once (also the length of a warm-start chain and the
        unit of parallel work).
    fname : path-like | None
        HDF5 file to write the estimate to as it is computed (bounded memory);
        None keeps it in memory.
    overwrite : bool
        Replace ``fname``.
    n_jobs : int
        Processes for the chunks (joblib); the result does not depend on it.
    client : distributed.Client | None
        A Dask client: the chunks become tasks of its cluster (``n_jobs`` is
        then ignored); the prepared operator and settings are scattered to the
        workers once. The result does not depend on it.
    max_time : float | None
        Time budget of one window's solve (s).
    random_state : int
        Seed of the noise draws of λ.
    progress : meeg_inverse.pipeline.Progress | None
        Prints progress with the estimated time left, and a note when the window or
        step in whole samples is not the one asked.
    verbose : bool
        MNE's verbosity while preparing.
    bem : path-like | mne.bem.ConductorModel | None
        A BEM solution (``-bem-sol.fif``): the reported sources
        (:meth:`ContinuousResult.reported_sources`) are then placed by a
        dipole fit with it (:mod:`meeg_inverse.dipole_positions`) instead of
        the sub-grid scan. A one-layer BEM fits the MEG channels only.
    trans : path-like | mne.transforms.Transform | None
        The head↔MRI transform of the dipole fits; default: the forward's
        (a transform given must agree with it).
    allow_missing_types : bool
        As :func:`meeg_inverse.make_sparse_inverse_operator`.

    Returns
    -------
    result : ContinuousResult

    Raises
    ------
    InputError
        A window longer than the recording, a step longer than the window, a
        band outside (0, Nyquist), a span outside the recording, a missing or
        unreadable BEM or trans file, a BEM without a solution, a transform
        that is not head↔MRI or disagrees with the forward's, EEG alone with a
        one-layer BEM, ``trans`` without ``bem``, ...

    Warns
    -----
    RuntimeWarning
        The recording is not high-pass filtered and no ``l_freq`` was given
        (``no_high_pass``: its offsets and drifts stay in every window); also in the
        result's :attr:`~ContinuousResult.warnings`.
    """
    import mne

    from .io import with_average_reference
    from .operator import make_sparse_inverse_operator

    timings = {}
    t_start = time.perf_counter()
    _check_args(raw, window, step, l_freq, h_freq, level, n_jobs, chunk, alpha, tmin, tmax,
                prune, noise_segment=noise_segment, penalty=penalty, tol=tol, max_time=max_time,
                fname=fname, warm_start=warm_start, random_state=random_state)
    # The head model of the dipole fits is checked before the work, not after it.
    head_model = _head_model(bem, trans, forward, raw.info)
    from .continuous_messages import emit, unfiltered_warning, window_note

    run_warnings = [w for w in (unfiltered_warning(raw, l_freq),) if w is not None]
    for warning in run_warnings:
        emit(warning)
    if fname is not None:  # fail before the work, not after it
        fname = Path(fname)
        if fname.exists() and not overwrite:
            raise InputError(f"{str(fname)!r} exists.", "pass overwrite=True or another name.")
        if not fname.parent.is_dir():  # was found only after the noise and λ work
            raise InputError(f"The folder of {str(fname)!r} does not exist.",
                             "create it first or choose another file name.")
    raw = with_average_reference(raw)
    sfreq = raw.info["sfreq"]
    filter_kw, pad = None, 0
    if l_freq is not None or h_freq is not None:
        from mne.filter import create_filter

        filter_kw = dict(sfreq=sfreq, l_freq=l_freq, h_freq=h_freq, verbose=False)
        h = create_filter(None, **filter_kw)
        pad = int(len(h))  # a whole filter length of real data on each side
        if pad > MAX_FILTER_S * sfreq:  # each chunk would read minutes around it
            raise InputError(
                f"A {l_freq:g}-Hz high-pass needs a {pad / sfreq:.0f}-s filter: every chunk "
                f"would read that much data on each side (memory and reading no longer "
                f"bounded by the chunk).",
                f"use l_freq >= {3.3 / MAX_FILTER_S:.2f} Hz (--l-freq), or high-pass the "
                "whole recording first (mne.io.Raw.filter) and localize the filtered file.")
    with mne.utils.use_log_level(verbose):
        op = make_sparse_inverse_operator(raw.info, forward, noise_cov, loose=loose,
                                          depth=depth, rank=rank,
                                          allow_missing_types=allow_missing_types)
    picks = [raw.ch_names.index(c) for c in op.ch_names]
    first = 0 if tmin is None else int(raw.time_as_index(tmin, use_rounding=True)[0])
    last = len(raw.times) if tmax is None else int(raw.time_as_index(tmax, use_rounding=True)[0]) + 1
    n_total = last - first
    n_win = int(round(window * sfreq))
    n_hop = int(round(step * sfreq))
    timings["prepare"] = time.perf_counter() - t_start
    ctx = _Context(raw=raw, picks=picks, whitener=op.whitener, gain=op.gain,
                   n_orient=op.n_orient, weighting=op.source_weighting, n_win=n_win,
                   n_hop=n_hop, pad=pad, n_total=n_total, offset=first, penalty=penalty,
                   fixed_fraction=None if alpha == "qut" else float(alpha), alpha_unit=np.nan,
                   noise_variance=1.0, tol=tol, warm_start=warm_start, filter_kw=filter_kw,
                   max_time=max_time, learned=None if learned is True else learned,
                   prune=prune)
    starts = _window_starts(n_total, n_win, n_hop)
    t0 = time.perf_counter()
    noise = _noise_reference(ctx, starts, noise_segment, sfreq, raw.times[first])
    timings["noise"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx.noise_variance = noise.variance
    ctx.alpha_unit = amortized_lambda(op.gain, n_win, noise, op.n_orient, level=level,
                                      random_state=random_state)
    timings["lambda"] = time.perf_counter() - t0
    alpha_abs = ctx.alpha_unit * np.sqrt(noise.variance)
    if learned is True:
        t0 = time.perf_counter()
        ctx.learned = train_learned_solver(ctx, starts, alpha_abs, op)
        timings["learn"] = time.perf_counter() - t0

    per_chunk = max(1, int(round(chunk * sfreq)) // n_hop)
    chunks = [starts[k:k + per_chunk] for k in range(0, len(starts), per_chunk)]
    writer = _H5Writer(fname, overwrite) if fname is not None else _MemoryWriter()
    params = dict(window=window, step=step, l_freq=l_freq, h_freq=h_freq, alpha=alpha,
                  level=level, penalty=penalty, prune=prune, loose=loose, depth=depth, tol=tol,
                  warm_start=warm_start, learned=bool(learned), chunk=chunk,
                  n_window_samples=n_win, n_step_samples=n_hop,
                  # read_continuous prepares the operator again: the same channels.
                  rank=rank, allow_missing_types=bool(allow_missing_types),
                  tmin=float(raw.times[first]), tmax=float(raw.times[last - 1]))
    note = window_note(params, sfreq)
    if note is not None and progress is not None:
        progress.info(f"note: {note}")
    weights = blend_weights(n_win)
    blender = _Blender(0, writer)
    t0 = time.perf_counter()
    pending = []  # Dask futures, cancelled if the run fails
    try:
        if client is not None:
            # One task per chunk; the context (operator, settings) sent once to
            # every worker; results consumed in order, as the serial loop does.
            shared = client.scatter(ctx, broadcast=True)
            pending = [shared]
            futures = client.map(_process_chunk, [shared] * len(chunks), chunks, pure=False)
            pending += futures
            results = (f.result() for f in futures)
        elif n_jobs == 1:
            results = (_process_chunk(ctx, c) for c in chunks)
        else:
            from joblib import Parallel, delayed

            results = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_process_chunk)(ctx, c) for c in chunks)
        done, last_report = 0, time.perf_counter()
        for k, (rec, estimates) in enumerate(results):
            solved = {s: (rows, values) for s, rows, values in estimates}
            for s, status in zip(rec["start"], rec["status"]):
                if status == 2:
                    continue
                rows, values = solved.get(s, ((), None))
                blender.add(int(s), weights, rows, values)
            nxt = chunks[k + 1][0] if k + 1 < len(chunks) else n_total
            blender.flush(int(nxt))
            rec = dict(rec)
            rec["start"] = (np.asarray(rec["start"]) + first) / sfreq + raw.times[0]
            rec["stop"] = (np.asarray(rec["stop"]) + first) / sfreq + raw.times[0]
            writer.write_windows(rec)
            done += len(rec["status"])
            now = time.perf_counter()
            if progress is not None and (now - last_report > 2.0 or k + 1 == len(chunks)):
                last_report = now
                elapsed = now - t0
                eta = elapsed / done * (len(starts) - done)
                progress.info(f"windows {done}/{len(starts)} ({100 * done / len(starts):.0f} %), "
                              f"{elapsed:.0f} s elapsed, about {eta:.0f} s left")
        blender.flush(n_total)
        timings["localize"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        windows = writer.window_arrays()
        noise_d = noise.as_dict()
        out = writer.finish(dict(alpha=alpha_abs, noise=noise_d, sfreq=sfreq,
                                 tmin=float(raw.times[first]), n_times=n_total, params=params,
                                 timings=timings, warnings=run_warnings))
    except BaseException:
        writer.abort()
        if pending:
            # A failed chunk (or an interruption) must not leave the other chunks
            # running or held on the cluster.
            try:
                client.cancel(pending)
            except Exception:  # the cluster may be gone: the original error matters
                pass
        raise
    return ContinuousResult(
        windows=windows, alpha=alpha_abs, noise=noise_d, sfreq=sfreq,
        tmin=float(raw.times[first]), n_times=n_total, params=params, timings=timings,
        fname=out, warnings=run_warnings,
        _segments=None if out is not None else writer.segments(), _mapper=_SourceMapper(op),
        _context=ctx, _noise_cov=noise_cov, _head_model=head_model)
