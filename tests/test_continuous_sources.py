"""Reported sources of a continuous estimate: clusters per bin, events, tracking by position."""

import numpy as np
import pytest

from meeg_inverse.continuous_sources import bin_activity, track_sources

SFREQ = 600.0
N_BIN = 30  # 50 ms


def _segments(pieces, n_orient=1):
    """Stored-estimate segments from (block, start, values) pieces (one row per block)."""
    rows, starts, stops, offsets, values = [], [], [], [], []
    off = 0
    for block, start, v in pieces:
        v = np.asarray(v, float)
        for o in range(n_orient):
            rows.append(block * n_orient + o)
            starts.append(start)
            stops.append(start + v.size)
            offsets.append(off)
            values.append(v / np.sqrt(n_orient))
            off += v.size
    return {"row": np.array(rows), "start": np.array(starts), "stop": np.array(stops),
            "offset": np.array(offsets), "values": np.concatenate(values)}


def _burst(n, amp):
    return amp * np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2


# Three grid sources: two 8 mm apart in the left hemisphere, one in the right.
POS = np.array([[-0.040, 0.010, 0.050], [-0.040, 0.018, 0.050], [0.040, 0.010, 0.050]])
HEMIS = ["lh", "lh", "rh"]
INDEX = np.array([7, 8, 300])


def test_bin_activity_energy_peak_and_samples():
    v = _burst(90, 2e-8)
    seg = _segments([(0, 60, v[:40]), (0, 100, v[40:])], n_orient=3)  # split across a flush
    act = bin_activity(seg, 3, N_BIN)
    np.testing.assert_array_equal(act["bin"], [2, 3, 4])
    np.testing.assert_array_equal(act["block"], [0, 0, 0])
    for k, b in enumerate(act["bin"]):
        part = v[b * N_BIN - 60:(b + 1) * N_BIN - 60]
        assert act["energy"][k] == pytest.approx(np.sum(part ** 2))  # orientations summed
        assert act["peak"][k] == pytest.approx(np.abs(part).max())
    assert act["first"][0] == 60 and act["last"][-1] == 150


def test_two_grid_sources_8mm_apart_on_one_burst_are_one_source_at_the_centroid():
    # One burst carried by two neighbouring grid sources (amplitudes 2:1): one
    # reported source, one event, at the energy-weighted centroid (4:1).
    seg = _segments([(0, 600, _burst(120, 2e-8)), (1, 600, _burst(120, 1e-8))])
    act = bin_activity(seg, 1, N_BIN)
    out = track_sources(act, INDEX, POS, HEMIS, sfreq=SFREQ, tmin=0.0)
    assert len(out) == 1
    src = out[0]
    assert len(src["events"]) == 1
    expected = (4 * POS[0] + POS[1]) / 5
    np.testing.assert_allclose(src["position"], expected, atol=1e-9)
    np.testing.assert_allclose(src["events"][0]["position"], expected, atol=1e-9)
    assert src["source_indices"] == [7, 8]
    ev = src["events"][0]
    assert ev["start"] == pytest.approx(1.0) and ev["stop"] == pytest.approx(1.2)
    assert ev["peak_nAm"] == pytest.approx(20.0, rel=1e-3)


def test_alternating_grid_sources_within_one_burst_stay_one_event():
    # The burst's windows pick one neighbour, then the other: still one event.
    seg = _segments([(0, 600, _burst(60, 2e-8)), (1, 660, _burst(60, 2e-8))])
    out = track_sources(bin_activity(seg, 1, N_BIN), INDEX, POS, HEMIS, sfreq=SFREQ, tmin=0.0)
    assert len(out) == 1 and len(out[0]["events"]) == 1
    np.testing.assert_allclose(out[0]["position"], POS[:2].mean(axis=0), atol=1e-9)


def test_bursts_at_different_times_of_one_place_are_events_of_one_source():
    # Two bursts 2 s apart, on different neighbours: one source, two events; its
    # position pools both (energies 4:1 -> centroid 1/5 of the way).
    seg = _segments([(0, 600, _burst(60, 2e-8)), (1, 1800, _burst(60, 1e-8))])
    out = track_sources(bin_activity(seg, 1, N_BIN), INDEX, POS, HEMIS, sfreq=SFREQ, tmin=10.0)
    assert len(out) == 1
    events = out[0]["events"]
    assert [round(e["start"], 3) for e in events] == [11.0, 13.0]
    np.testing.assert_allclose(events[0]["position"], POS[0])
    np.testing.assert_allclose(events[1]["position"], POS[1])
    np.testing.assert_allclose(out[0]["position"], (4 * POS[0] + POS[1]) / 5, atol=1e-9)


def test_hemispheres_and_far_sources_stay_apart():
    # Simultaneous bursts in both hemispheres: two sources; the stronger first.
    seg = _segments([(0, 600, _burst(60, 1e-8)), (2, 600, _burst(60, 3e-8))])
    out = track_sources(bin_activity(seg, 1, N_BIN), INDEX, POS, HEMIS, sfreq=SFREQ, tmin=0.0)
    assert [s["hemi"] for s in out] == ["rh", "lh"]
    # A same-hemisphere source 30 mm away is another source.
    pos = POS.copy()
    pos[1] = pos[0] + [0.0, 0.030, 0.0]
    seg = _segments([(0, 600, _burst(60, 2e-8)), (1, 600, _burst(60, 2e-8))])
    out = track_sources(bin_activity(seg, 1, N_BIN), INDEX, pos, HEMIS, sfreq=SFREQ, tmin=0.0)
    assert len(out) == 2


def test_minor_clusters_of_a_bin_are_left_out():
    # A source at 10 % of the strongest in the same bins, in the other hemisphere.
    seg = _segments([(0, 600, _burst(60, 2e-8)), (2, 600, _burst(60, 2e-9))])
    act = bin_activity(seg, 1, N_BIN)
    kept = track_sources(act, INDEX, POS, HEMIS, sfreq=SFREQ, tmin=0.0, minor_fraction=0.2)
    assert [s["hemi"] for s in kept] == ["lh"]
    both = track_sources(act, INDEX, POS, HEMIS, sfreq=SFREQ, tmin=0.0, minor_fraction=None)
    assert len(both) == 2


def test_empty_activity_has_no_sources():
    seg = {k: np.zeros(0, int) for k in ("row", "start", "stop", "offset")}
    seg["values"] = np.zeros(0)
    assert track_sources(bin_activity(seg, 1, N_BIN), INDEX, POS, HEMIS, sfreq=SFREQ,
                         tmin=0.0) == []


# ------------------------------------------------- sub-grid positions (refine_tracked)
def _events(spans):
    return [dict(start=a / SFREQ, stop=b / SFREQ, peak_nAm=1.0, position=np.zeros(3),
                 samples=(a, b)) for a, b in spans]


def _planted(problem):
    """Whitened data: a source inside a mesh triangle bursting 3 times (own orientation and
    time course each), and a vertex of the other hemisphere active during the 2nd burst."""
    from meeg_inverse.subgrid import free_gain_blocks, inversion_mesh

    tris = inversion_mesh(problem)
    tri = tris[40]
    weights = np.array([1 / 2, 1 / 3, 1 / 6])
    field = np.einsum("k,ckj->cj", weights, free_gain_blocks(problem, tri))
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    other = next(i for i in range(problem.n_sources) if hemis[i] != hemis[tri[0]])
    field2 = free_gain_blocks(problem, [other])[:, 0]
    rng = np.random.default_rng(1)
    data = np.zeros((field.shape[0], 1000))
    spans = [(100, 160), (400, 520), (800, 850)]
    for a, b in spans:
        t = np.arange(b - a)
        data[:, a:b] += np.outer(field @ rng.standard_normal(3),
                                 np.sin(2 * np.pi * rng.uniform(0.02, 0.05) * t))
    data[:, 380:540] += np.outer(field2 @ np.array([0.2, 0.7, -0.6]),
                                 np.cos(2 * np.pi * 0.03 * np.arange(160)))
    truth = weights @ positions[tri]
    return data, tri, weights, other, spans, truth, positions, hemis


def test_refine_tracked_fits_a_planted_sub_grid_source_over_its_events(problem):
    from meeg_inverse.continuous_sources import refine_tracked

    data, tri, weights, other, spans, truth, positions, hemis = _planted(problem)
    # Tracking put the source 6 mm off (a centroid), on its neighbour's vertex.
    sources = [dict(position=truth + [0.006, 0, 0], hemi=hemis[tri[0]], energy=3.0,
                    source_indices=[int(tri[1])], events=_events(spans)),
               dict(position=positions[other], hemi=hemis[other], energy=1.0,
                    source_indices=[int(other)], events=_events([(380, 540)]))]
    assert refine_tracked(problem, sources, lambda a, b: data[:, a:b])
    assert len(sources) == 2
    first, second = sources
    assert first["position_method"] == "sub-grid fit"
    got = dict(zip(first["position_sources"], first["position_weights"]))
    assert got == pytest.approx(dict(zip(tri.tolist(), weights)), abs=1e-9)
    np.testing.assert_allclose(first["position"], truth, atol=1e-9)
    np.testing.assert_allclose(first["centroid"], truth + [0.006, 0, 0])
    np.testing.assert_allclose(second["position"], positions[other], atol=1e-9)


def test_one_source_carried_by_two_groups_is_merged_and_its_events_joined(problem):
    """The same source reported twice (the second group labelled with the other
    hemisphere, as at the midline, 9 mm off): fitted alone, both land on it -> one source,
    the events that overlap in time one event."""
    from meeg_inverse.continuous_sources import refine_tracked

    data, tri, weights, other, spans, truth, positions, hemis = _planted(problem)
    data[:, 380:540] = 0.0  # no other source here
    twin_hemi = "rh" if hemis[tri[0]] == "lh" else "lh"

    def make():
        return [dict(position=truth + [0.004, 0, 0], hemi=hemis[tri[0]], energy=3.0,
                     source_indices=[int(tri[0])], events=_events(spans[:2])),
                dict(position=truth + [0, 0.009, 0], hemi=twin_hemi, energy=1.0,
                     source_indices=[int(tri[2])], events=_events([(410, 500), spans[2]]))]

    sources = make()
    assert refine_tracked(problem, sources, lambda a, b: data[:, a:b])
    assert len(sources) == 1
    np.testing.assert_allclose(sources[0]["position"], truth, atol=1e-9)
    assert [e["samples"] for e in sources[0]["events"]] == spans  # (410, 500) joined (400, 520)
    assert sources[0]["source_indices"] == [int(tri[0]), int(tri[2])]
    kept = make()
    refine_tracked(problem, kept, lambda a, b: data[:, a:b], merge_mm=None)
    assert len(kept) == 2


def test_refine_tracked_keeps_centroids_without_a_mesh_or_data(sample_evoked, sample_forward,
                                                                sample_cov):
    from meeg_inverse.continuous_sources import refine_tracked
    from meeg_inverse.problem import InverseProblem

    fixed = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=0.0,
                                       tmin=0.05, tmax=0.15)
    for prob, read in ((fixed, lambda a, b: fixed.data), (None, None)):
        sources = [dict(position=np.array([0.01, 0.02, 0.03]), hemi="lh", energy=1.0,
                        source_indices=[10], events=_events([(0, 10)]))]
        assert not refine_tracked(prob, sources, read)
        assert sources[0]["position_method"] == "centroid"
        np.testing.assert_allclose(sources[0]["position"], sources[0]["centroid"])
