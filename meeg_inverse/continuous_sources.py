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
that pick up the same burst are no longer separate (false) events. What it
does not fix: a source that the estimates carry only on vertices on one side
of it stays a grid step off, and clusters never cross hemispheres, so a
source on the midline can be reported twice (docs/continuous.md, the scored
run).
"""

import numpy as np

from .clusters import CLUSTER_RADIUS_MM, cluster_sources

__all__ = ["TRACK_MM", "bin_activity", "track_sources"]

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
                         peak_nAm=events[e]["peak"] * 1e9, position=pos[e]) for e in order]))
    return out
