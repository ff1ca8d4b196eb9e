"""Reported sources of a continuous estimate: clusters tracked over the recording.

Window by window, a source between the vertices of the inversion grid (every
real one) is picked up by one or a few neighbouring grid sources 10–25 mm
apart, not always the same ones: counted grid source by grid source, one
burst became several events, each one grid step off. As for averages
(:mod:`meeg_inverse.clusters`), the user is told about *parts of the brain*:

1. the estimate is cut into time bins (by default the window step); in each
   bin the active grid sources are clustered
   (:func:`~meeg_inverse.clusters.cluster_sources`: same hemisphere, within
   :data:`~meeg_inverse.clusters.CLUSTER_RADIUS_MM` of a stronger one) and
   each cluster sits at its energy-weighted centroid;
2. **events**: a bin's cluster continues an event of the previous bin whose
   position is within the cluster radius (nearest first), else starts one; an
   event's position is the energy-weighted centroid of all its bins' members —
   a position between grid vertices, from every window of the burst;
3. **reported sources**: the events are grouped by position as grid sources
   are in a bin (strongest event first, taking the free events of its
   hemisphere within :data:`TRACK_MM` of it); a reported source sits at the
   energy-weighted centroid of all its events' members.

One burst is one event however many grid sources carry it, so the neighbours
that pick up the same burst are no longer separate (false) events. A centroid
cannot undo a bias whose vertices all lie on one side of the source (docs/
continuous.md, the scored run of 2026-11-30): :func:`refine_tracked` then
puts each reported source at a **sub-grid position** fitted to the data of
all its events (:mod:`meeg_inverse.subgrid`), and merges the sources that
the fit puts together (one source carried by two groups of grid sources, or
by both hemispheres at the midline).

What it does not fix: the fit's fields are interpolated linearly between the
vertices of the inversion mesh; where they are 11-16 mm apart, the
interpolated field that best matches a real source can lie 14-15 mm from it
even without noise (docs/continuous.md, the scored run of amendment 2). With
the user's BEM, :mod:`meeg_inverse.dipole_positions` then places each source
by a dipole fit on forward-model fields (amendment 3).
"""

import numpy as np

from .clusters import CLUSTER_RADIUS_MM, cluster_sources
from .subgrid import SCAN_RADIUS_MM, STEP, SWEEPS, Scanner, inversion_mesh

__all__ = ["EVENT_COMPONENTS", "TRACK_MM", "bin_activity", "event_components", "refine_tracked",
           "track_sources"]

#: Spatial components kept of each event's whitened data in the sub-grid fit
#: (the source's field and those of sources active with it; the rest is noise).
EVENT_COMPONENTS = 6

#: Events within this distance of a stronger one are one reported source (mm);
#: chosen on development simulations (10 / 15 / 20 mm), docs/continuous.md.
TRACK_MM = 15.0


def bin_activity(segments, n_orient, n_bin):
    """Activity of every gain block in time bins of ``n_bin`` samples.

    Parameters
    ----------
    segments : dict of ndarray
        The stored estimate (``row``, ``start``, ``stop``, ``offset``,
        ``values`` in A·m), as :func:`meeg_inverse.continuous.localize_continuous`
        writes it.
    n_orient : int
        Rows per source.
    n_bin : int
        Samples per bin.

    Returns
    -------
    activity : dict of ndarray
        One entry per (block, bin) with activity: ``block``, ``bin``,
        ``energy`` (Σ_t ‖x(t)‖², A²·m²), ``peak`` (max_t ‖x(t)‖, A·m),
        ``first``/``last`` (first and past-last active sample), sorted by bin
        then block.
    """
    power = {}
    for r, a, b, off in zip(segments["row"], segments["start"], segments["stop"],
                            segments["offset"]):
        key = (int(r) // n_orient, int(a), int(b))
        v = np.asarray(segments["values"][off:off + b - a], float)
        power[key] = power.get(key, 0.0) + v ** 2
    parts = {k: [] for k in ("block", "bin", "energy", "peak", "first", "last")}
    for (blk, a, b), p in power.items():
        t = np.arange(a, b)[p > 0]
        if t.size == 0:
            continue
        p = p[p > 0]
        bins = t // n_bin
        ub, start = np.unique(bins, return_index=True)
        stop = np.r_[start[1:], t.size]
        parts["block"].append(np.full(ub.size, blk))
        parts["bin"].append(ub)
        parts["energy"].append(np.add.reduceat(p, start))
        parts["peak"].append(np.sqrt(np.maximum.reduceat(p, start)))
        parts["first"].append(t[start])
        parts["last"].append(t[stop - 1] + 1)
    if not parts["block"]:
        return {k: np.zeros(0, float if k in ("energy", "peak") else int) for k in parts}
    act = {k: np.concatenate(v) for k, v in parts.items()}
    # A flush boundary inside a bin splits it: merge the pieces of one (block, bin).
    key = act["bin"] * (act["block"].max() + 1) + act["block"]
    uk, inv = np.unique(key, return_inverse=True)
    out = {"block": np.zeros(uk.size, int), "bin": np.zeros(uk.size, int)}
    out["block"][inv] = act["block"]
    out["bin"][inv] = act["bin"]
    out["energy"] = np.bincount(inv, act["energy"], uk.size)
    out["peak"] = np.zeros(uk.size)
    np.maximum.at(out["peak"], inv, act["peak"])
    out["first"] = np.full(uk.size, np.iinfo(np.int64).max)
    np.minimum.at(out["first"], inv, act["first"])
    out["last"] = np.zeros(uk.size, int)
    np.maximum.at(out["last"], inv, act["last"])
    return out


def track_sources(activity, index, positions, hemis, *, sfreq, tmin, radius_mm=CLUSTER_RADIUS_MM,
                  track_mm=TRACK_MM, minor_fraction=None):
    """Reported sources and their events from the binned activity of grid sources.

    Parameters
    ----------
    activity : dict of ndarray
        From :func:`bin_activity`.
    index : ndarray of int, shape (n_blocks,)
        Source index (of the forward's source space) of every gain block.
    positions : ndarray, shape (n_blocks, 3)
        Position of every gain block (m; any one frame).
    hemis : sequence of str | None, length n_blocks
        Hemisphere of every block.
    sfreq, tmin : float
        Sampling rate (Hz) and time of sample 0 (s).
    radius_mm : float
        Cluster radius within a bin; also the largest step of an event's
        position from one bin to the next.
    track_mm : float
        Events within this distance of a stronger event are one reported
        source (grouped strongest first).
    minor_fraction : float | None
        Drop a bin's clusters weaker than this fraction of its strongest.

    Returns
    -------
    sources : list of dict
        Strongest first: ``position`` (m, energy-weighted centroid of its
        events' members),
        ``hemi``, ``source_indices`` (grid sources that carried it, strongest
        first), ``energy``, ``events``: list of ``{"start", "stop"`` (s),
        ``"peak_nAm"``, ``"position"`` (m, the event's energy-weighted
        centroid)``}`` in time order.
    """
    positions = np.asarray(positions, float)
    hemis = np.asarray(list(hemis), dtype=object)
    index = np.asarray(index, int)
    events = []   # dicts: hemi, wpos (Σ energy·pos), energy, first, last, peak, members
    ongoing = {}  # event id -> centroid of its last bin
    bins = activity["bin"]
    if bins.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(bins)) + 1
    prev_bin = None
    for sel in np.split(np.arange(bins.size), cuts):
        b = int(bins[sel[0]])
        if prev_bin is None or b != prev_bin + 1:
            ongoing = {}
        prev_bin = b
        blocks = activity["block"][sel]
        energy = activity["energy"][sel]
        clusters = cluster_sources(np.arange(sel.size), positions[blocks], np.sqrt(energy),
                                   hemis[blocks], radius_mm=radius_mm)
        if minor_fraction is not None and clusters:
            top = clusters[0].amplitude
            clusters = [c for c in clusters if c.amplitude >= minor_fraction * top]
        now = {}
        for c in clusters:  # strongest first: the nearest ongoing event of its hemisphere
            cand = [(np.linalg.norm(pos - c.centroid), e) for e, pos in ongoing.items()
                    if events[e]["hemi"] == c.hemi and e not in now]
            cand = [(d, e) for d, e in cand if d <= radius_mm * 1e-3]
            if cand:
                e = min(cand, key=lambda x: x[0])[1]
            else:
                e = len(events)
                events.append(dict(hemi=c.hemi, wpos=np.zeros(3), energy=0.0,
                                   first=np.iinfo(np.int64).max, last=0, peak=0.0, members={}))
            ev = events[e]
            m = sel[c.members]
            ev["wpos"] += energy[c.members] @ positions[blocks[c.members]]
            ev["energy"] += float(energy[c.members].sum())
            ev["first"] = min(ev["first"], int(activity["first"][m].min()))
            ev["last"] = max(ev["last"], int(activity["last"][m].max()))
            ev["peak"] = max(ev["peak"], float(activity["peak"][m].max()))
            for k, en in zip(blocks[c.members], energy[c.members]):
                ev["members"][int(k)] = ev["members"].get(int(k), 0.0) + float(en)
            now[e] = c.centroid
        ongoing = now
    # Reported sources: the events grouped by position like grid sources in a bin
    # (strongest first, each taking the free events within track_mm of it).
    pos = np.array([e["wpos"] / e["energy"] for e in events])
    strength = np.sqrt([e["energy"] for e in events])
    groups = cluster_sources(np.arange(len(events)), pos, strength,
                             [e["hemi"] for e in events], radius_mm=track_mm)
    out = []
    for g in groups:
        members = {}
        for e in g.members:
            for k, en in events[e]["members"].items():
                members[k] = members.get(k, 0.0) + en
        order = sorted(g.members, key=lambda e: events[e]["first"])
        out.append(dict(
            position=g.centroid, hemi=g.hemi,
            source_indices=[int(index[k]) for k in sorted(members, key=lambda k: -members[k])],
            energy=g.amplitude ** 2,
            events=[dict(start=tmin + events[e]["first"] / sfreq,
                         stop=tmin + events[e]["last"] / sfreq,
                         peak_nAm=events[e]["peak"] * 1e9, position=pos[e],
                         samples=(events[e]["first"], events[e]["last"])) for e in order]))
    return out


def event_components(read, n_components=EVENT_COMPONENTS):
    """``components(first, last)``: the strongest spatial components of those samples.

    ``read(first, last)`` -> whitened data (n_channels, last - first); the
    ``n_components`` strongest components U·S (= Y·V, from the smaller Gram
    matrix) are returned, each span read once (cached).
    """
    cache = {}

    def components(a, b):
        if (a, b) not in cache:
            y = np.asarray(read(a, b), float)
            k = min(int(n_components), *y.shape)
            if y.shape[1] <= y.shape[0]:
                v = np.linalg.eigh(y.T @ y)[1][:, ::-1][:, :k]
                cache[(a, b)] = y @ v
            else:
                w, u = np.linalg.eigh(y @ y.T)
                cache[(a, b)] = u[:, ::-1][:, :k] * np.sqrt(np.maximum(w[::-1][:k], 0))
        return cache[(a, b)]

    return components


def _merge(into, other):
    """Source ``other`` joins ``into``: events that overlap in time become one."""
    into["energy"] += other["energy"]
    w = into["energy"]
    into["centroid"] = ((w - other["energy"]) * np.asarray(into["centroid"])
                        + other["energy"] * np.asarray(other["centroid"])) / w
    into["source_indices"] += [k for k in other["source_indices"]
                               if k not in into["source_indices"]]
    events = sorted(into["events"] + other["events"], key=lambda e: e["samples"][0])
    joined = []
    for e in events:
        if joined and e["samples"][0] < joined[-1]["samples"][1]:
            last = joined[-1]
            if e["peak_nAm"] > last["peak_nAm"]:
                last["position"] = e["position"]
            last["samples"] = (last["samples"][0], max(last["samples"][1], e["samples"][1]))
            last["stop"] = max(last["stop"], e["stop"])
            last["peak_nAm"] = max(last["peak_nAm"], e["peak_nAm"])
        else:
            joined.append(dict(e))
    into["events"] = joined


def event_spans(sources):
    """Per source, its events' (first, last) samples, shape (n_events, 2)."""
    return [np.array([e["samples"] for e in s["events"]], int).reshape(-1, 2) for s in sources]


def co_active(spans, j, first, last):
    """Indices of the sources other than ``j`` with an event overlapping [first, last)."""
    return [k for k, span in enumerate(spans) if k != j
            and np.any((span[:, 0] < last) & (span[:, 1] > first))]


def merge_within(sources, positions, merge_mm):
    """Strongest first, a source whose position lies within ``merge_mm`` of a kept one's
    joins it (:func:`_merge`); ``sources`` is reordered in place, strongest first.

    ``positions`` (MRI, m; None: never merged) are those of ``sources`` as given.
    Returns the kept sources' indices in the given list (in their new order) and
    the set of those that took in another.
    """
    kept, took = [], set()
    for j in np.argsort([-s["energy"] for s in sources], kind="stable"):
        target = next((k for k in kept if positions[k] is not None and positions[j] is not None
                       and np.linalg.norm(positions[k] - positions[j]) <= merge_mm * 1e-3),
                      None)
        if target is None:
            kept.append(int(j))
        else:
            _merge(sources[target], sources[j])
            took.add(target)
    kept = sorted(kept, key=lambda k: -sources[k]["energy"])
    sources[:] = [sources[k] for k in kept]
    return kept, took


def refine_tracked(problem, sources, read, *, scan_radius_mm=SCAN_RADIUS_MM, step=STEP,
                   sweeps=SWEEPS, n_components=EVENT_COMPONENTS, both_hemispheres=True,
                   merge_mm=TRACK_MM, components=None):
    """Sub-grid positions of tracked sources, each fitted to the data of all its events.

    For every reported source, the triangles of the inversion mesh within
    ``scan_radius_mm`` of its centroid are scanned (free-orientation gain
    interpolated between a triangle's vertices, :class:`meeg_inverse.subgrid.Scanner`);
    the point chosen maximizes the **sum over its events** of the energy of the
    event's whitened data that a dipole there explains, with an orientation and
    time course of its own per event, once the fields of the other reported
    sources active during that event (at their current fitted positions) are
    projected out. Coordinate ascent over the sources, strongest first,
    ``sweeps`` times. Each event's data enter through their ``n_components``
    strongest spatial components (singular vectors × values).

    Parameters
    ----------
    problem : InverseProblem
        The operator's problem (whitened, weighted gain; ``n_orient == 3``).
    sources : list of dict
        From :func:`track_sources` (events with ``samples``).
    read : callable
        ``read(first, last)`` -> whitened data (n_channels, last - first) of
        those samples of the estimate.
    scan_radius_mm, step, sweeps
        As :func:`meeg_inverse.subgrid.refine_positions`.
    n_components : int
        See :data:`EVENT_COMPONENTS`.
    both_hemispheres : bool
        Scan the triangles of both hemispheres (default; else only the
        source's own): the fit, not the grid sources' hemisphere, decides
        (a source at the midline is carried by grid sources of both).
    merge_mm : float | None
        First fit every source alone (no other field projected out); a source
        whose fit lands within ``merge_mm`` of a stronger one's joins it (its
        events overlapping the other's in time become one): one source
        carried by two groups of grid sources (a grid step apart, or both
        hemispheres at the midline). Default :data:`TRACK_MM`, the grouping
        distance of events, applied to the fitted positions; None: no
        merging. Modifies ``sources`` in place (the list may shrink).
    components : callable | None
        :func:`event_components` of ``read`` already made (its cache shared
        with a later dipole fit); None: made here.

    Development (docs/continuous.md, amendment 2): on 7 simulated 3-minute
    recordings (seeds 1-7), 10 and 15 mm gave the same recall; 15 mm left
    no false source on any, 10 mm 0.07 and 0.03 / s on two. One or both
    hemispheres and 3 / 6 / 12 components gave the same results.

    Returns
    -------
    refined : bool
        False when the source space allows no scan (volume or discrete
        sources, fixed orientation, no mesh, masked sources): positions then
        stay the centroids.

    Notes
    -----
    Sets each source's ``position`` (MRI, m; the centroid moves to
    ``centroid``), ``position_sources``/``position_weights`` (the triangle's
    source indices with non-zero barycentric weight), ``position_method``
    ('sub-grid fit') and ``hemi`` (the fitted triangle's hemisphere).
    """
    for s in sources:
        s.setdefault("centroid", np.asarray(s["position"], float))
        s.setdefault("position_method", "centroid")
    readable = read is not None or components is not None
    tris = inversion_mesh(problem) if problem is not None and readable else None
    if tris is None or not sources:
        return False
    scanner = Scanner(problem, tris, scan_radius_mm, step)
    block = components if components is not None else event_components(read, n_components)

    def hemi(s):
        return None if both_hemispheres else s["hemi"]

    if merge_mm is not None and len(sources) > 1:
        alone = []
        for s in sources:
            found = scanner.scan_pooled([(block(*map(int, e["samples"])), None)
                                         for e in s["events"]], s["centroid"], hemi(s))
            alone.append(None if found is None else scanner.position(*found))
        merge_within(sources, alone, merge_mm)
    spans = event_spans(sources)
    overlaps = [[co_active(spans, j, a, b) for a, b in spans[j]] for j in range(len(sources))]
    # Start: each source's field is that of its strongest grid source.
    fits = [(np.array([s["source_indices"][0]]), np.ones(1)) for s in sources]
    for _ in range(int(sweeps)):
        for j, s in enumerate(sources):
            items = []
            for (a, b), others in zip(spans[j], overlaps[j]):
                fields = [scanner.field_at(*fits[k]) for k in others]
                items.append((block(int(a), int(b)), np.hstack(fields) if fields else None))
            found = scanner.scan_pooled(items, s["centroid"], hemi(s))
            if found is not None:
                fits[j] = found
    for s, (verts, weights) in zip(sources, fits):
        keep = weights > 0
        s["position_sources"] = [int(v) for v in verts[keep]]
        s["position_weights"] = [float(w) for w in weights[keep]]
        s["position"] = scanner.position(verts[keep], weights[keep])
        s["position_method"] = "sub-grid fit"
        s["hemi"] = scanner.hemis[int(verts[keep][0])]
    return True
