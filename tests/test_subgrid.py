"""Sub-grid positions of the reported sources (meeg_inverse.subgrid)."""

import numpy as np
import pytest

from meeg_inverse.clusters import cluster_sources
from meeg_inverse.subgrid import (MERGE_MM, SCAN_RADIUS_MM, STEP, TWIN_COSINE, TWIN_MM, Scanner,
                                  free_gain_blocks, inversion_mesh, mls_weights,
                                  refine_positions)

N_OFF_GRID = 8
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _clusters_at(problem, sources):
    positions, hemis = problem.source_positions(np.asarray(sources))
    return cluster_sources(np.asarray(sources), positions, np.ones(len(sources)), hemis,
                           radius_mm=1.0)


def _second_source(problem, hemi, n_times):
    """A source at a vertex of the other hemisphere, with its own time course."""
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    other = next(i for i in range(problem.n_sources) if hemis[i] != hemi)
    field = free_gain_blocks(problem, [other])[:, 0] @ np.array([0, 0.6, 0.8])
    return other, np.outer(field, np.cos(np.linspace(0, 7, n_times)))


def test_triangle_scan_finds_a_planted_interpolated_source_beside_another(problem):
    # The triangle scan (kept for the continuous recordings' event scans).
    tris = inversion_mesh(problem)
    assert tris is not None and len(tris) > 100
    tri = tris[40]
    weights = np.array([1 / 2, 1 / 3, 1 / 6])
    field = np.einsum("k,ckj->cj", weights, free_gain_blocks(problem, tri))
    n_times = problem.data.shape[1]
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    other, data2 = _second_source(problem, hemis[tri[0]], n_times)
    data = np.outer(field @ np.array([0.3, -0.5, 0.8]), np.sin(np.linspace(0, 4, n_times)))
    scanner = Scanner(problem, tris, SCAN_RADIUS_MM, STEP)
    verts, got = scanner.scan(data + data2, positions[tri[0]], hemis[tri[0]],
                              scanner.fields([other])[:, 0])
    assert dict(zip(verts.tolist(), got)) == pytest.approx(dict(zip(tri.tolist(), weights)),
                                                           abs=1e-9)


def test_mls_weights_reproduce_quadratics(problem):
    positions, _ = problem.source_positions(np.arange(problem.n_sources))
    point = positions[100] + np.array([0.004, -0.003, 0.002])
    idx, w = mls_weights(positions, point)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert w @ positions[idx] == pytest.approx(point, abs=1e-12)
    quad = lambda x: 3 * x[..., 0] ** 2 - x[..., 1] * x[..., 2] + 0.5 * x[..., 2]  # noqa: E731
    assert w @ quad(positions[idx]) == pytest.approx(quad(point), rel=1e-8)
    # Too few vertices near a point far from the grid: no weights.
    assert mls_weights(positions, point + 0.2) is None


def test_lattice_scan_finds_a_planted_source_beside_another(problem):
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    centre_source = 100
    # A lattice point of the scan: the centre plus whole millimetres.
    point = positions[centre_source] + np.array([0.003, -0.002, 0.001])
    idx, w = mls_weights(positions, point)
    field = np.einsum("k,ckj->cj", w, free_gain_blocks(problem, idx))
    n_times = problem.data.shape[1]
    other, data2 = _second_source(problem, hemis[centre_source], n_times)
    data = np.outer(field @ np.array([0.3, -0.5, 0.8]), np.sin(np.linspace(0, 4, n_times)))
    clusters = _clusters_at(problem, [centre_source, other])
    assert refine_positions(problem, data + data2, clusters, prune=False)
    first = next(c for c in clusters if c.peak == centre_source)
    assert first.position_method == "sub-grid fit"
    assert first.position == pytest.approx(point, abs=1e-6)
    second = next(c for c in clusters if c.peak == other)
    # A vertex's own field is not the smoothed (MLS) one there: within the fine step.
    assert np.linalg.norm(second.position - positions[other]) <= 1.5e-3


def test_two_clusters_fitted_together_are_merged(problem):
    # One source between two grid vertices 8-16 mm apart, reported as two clusters
    # (as a grid estimate spreads it): their fits meet, and they become one source.
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    d = np.linalg.norm(positions[:, None] - positions[None], axis=2)
    a, b = next((i, j) for i in range(problem.n_sources) for j in range(i + 1, problem.n_sources)
                if hemis[i] == hemis[j] and 0.008 < d[i, j] < 0.016)
    point = (positions[a] + positions[b]) / 2
    idx, w = mls_weights(positions, point)
    field = np.einsum("k,ckj->cj", w, free_gain_blocks(problem, idx)) @ np.array([0, 0.6, 0.8])
    data = np.outer(field, np.sin(np.linspace(0, 4, problem.data.shape[1])))
    clusters = _clusters_at(problem, [a, b])
    assert len(clusters) == 2
    assert refine_positions(problem, data, clusters)
    assert len(clusters) == 1
    assert sorted(clusters[0].members.tolist()) == sorted([a, b])
    assert np.linalg.norm(clusters[0].position - point) <= MERGE_MM * 1e-3 / 2


def test_sources_within_the_others_model_error_are_pruned(problem):
    # Two real sources and a third cluster whose field explains under
    # PRUNE_FRACTION of the data that the other two do not: the third goes.
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    a = 100
    b = next(i for i in range(problem.n_sources) if hemis[i] != hemis[a])
    far = np.linalg.norm(positions - positions[a], axis=1)
    ghost = next(i for i in np.argsort(far) if hemis[i] == hemis[a] and far[i] > 0.04)
    n_times = problem.data.shape[1]
    t = np.linspace(0, 4, n_times)
    g = free_gain_blocks(problem, [a, b, ghost])
    ori = np.array([0.3, -0.5, 0.8])
    data = (np.outer(g[:, 0] @ ori, np.sin(t)) + np.outer(g[:, 1] @ ori, np.cos(t))
            + 0.02 * np.outer(g[:, 2] @ ori, np.sin(3 * t)))
    clusters = _clusters_at(problem, [a, b, ghost])
    assert refine_positions(problem, data, clusters)
    assert sorted(c.peak for c in clusters) == sorted([a, b])
    # Kept when asked (an alpha the user gave), and big enough to count then.
    clusters = _clusters_at(problem, [a, b, ghost])
    assert refine_positions(problem, data, clusters, prune=False)
    assert len(clusters) == 3


def test_nearby_sources_with_one_time_course_are_one_source(problem):
    # A second source 20-27 mm from a strong one explains a quarter of its energy:
    # with the strong one's time course it is taken for its model error (twins,
    # the weaker dropped); with its own time course, or with a user's alpha, kept.
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    a = 100
    dist = np.linalg.norm(positions - positions[a], axis=1)
    c = next(i for i in np.argsort(dist) if hemis[i] == hemis[a] and 0.020 < dist[i] < 0.027)
    assert dist[c] < TWIN_MM * 1e-3
    g = free_gain_blocks(problem, [a, c]) @ np.array([0.3, -0.5, 0.8])
    t = np.linspace(0, 4, problem.data.shape[1])
    own = np.cos(2.3 * t)
    assert abs(own @ np.sin(t)) / (np.linalg.norm(own) * np.linalg.norm(np.sin(t))) < TWIN_COSINE
    for second, prune, n_kept in ((np.sin(t), True, 1), (own, True, 2), (np.sin(t), False, 2)):
        data = np.outer(g[:, 0], np.sin(t)) + 0.5 * np.outer(g[:, 1], second)
        clusters = _clusters_at(problem, [a, c])
        assert refine_positions(problem, data, clusters, prune=prune)
        assert len(clusters) == n_kept
        assert clusters[0].peak == a


def test_fixed_orientation_keeps_the_centroid(sample_evoked, sample_forward, sample_cov):
    from meeg_inverse.problem import InverseProblem

    fixed = InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov, loose=0.0,
                                       tmin=0.05, tmax=0.15)
    clusters = _clusters_at(fixed, [10])
    assert not refine_positions(fixed, fixed.data, clusters)
    assert clusters[0].position_method == "centroid"
    assert clusters[0].position == pytest.approx(clusters[0].centroid)


def test_many_sources_keep_their_centroids(problem):
    # Beyond MAX_SOURCES the fit is skipped (its cost grows with the square of the
    # number of sources: 75 s for 35 at a tiny alpha), not run for minutes.
    from meeg_inverse.subgrid import MAX_SOURCES

    sources = np.arange(0, 4 * (MAX_SOURCES + 1), 4)[:MAX_SOURCES + 1]
    clusters = _clusters_at(problem, sources)
    assert len(clusters) == MAX_SOURCES + 1
    assert refine_positions(problem, problem.data, clusters) is None
    assert all(c.position_method == "centroid" for c in clusters)


def test_the_channels_bound_the_sources_placed_together():
    # Each source's scan keeps 6 data dimensions beyond the others' fields (3 each):
    # 30 EEG electrodes (29 whitened rows) place 8, MEG the cap of 10, 9 rows place 2.
    from meeg_inverse.subgrid import _placeable, max_sources

    assert max_sources(29) == 8 and max_sources(366) == 10 and max_sources(9) == 2
    assert _placeable(29, 8) and not _placeable(29, 9)
    assert _placeable(15, 4) and not _placeable(14, 4)  # a half-channel subsample of 30


def test_fewer_channels_than_the_sources_need_keep_centroids(problem):
    # 20 channels place 5 sources (20 - 3 x 4 = 8 >= 6), not 6 (20 - 15 = 5).
    rows = np.arange(20)
    clusters = _clusters_at(problem, np.arange(0, 24, 4))
    assert len(clusters) == 6
    assert refine_positions(problem, problem.data[rows], clusters, prune=False) is None
    assert all(c.position_method == "centroid" for c in clusters)


def test_tied_scores_go_to_the_point_nearest_the_centre():
    from meeg_inverse.subgrid import _best_index

    points = np.array([[3.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [0, 0, 0.5]])
    # Equal to the last bit but one: a tie, whatever the rounding; the nearest wins.
    scores = np.array([5.0, 5.0 * (1 - 1e-15), 4.0, 5.0 * (1 - 1e-15)])
    assert _best_index(scores, points, np.zeros(3)) == 3
    assert _best_index(np.array([5.0, 4.9, 1.0, 1.0]), points, np.zeros(3)) == 0


def test_real_off_grid_sources_are_placed_closer_than_the_grid(sample_paths, sample_evoked,
                                                               sample_forward, sample_cov):
    """Dipoles at cortical vertices the inversion grid does not use, real BEM forward
    and real noise: the default's reported position beats the nearest grid vertex."""
    import mne

    from meeg_inverse.problem import InverseProblem
    from meeg_inverse.solve import solve_inverse

    src = sample_forward["src"]
    used = np.concatenate([s["rr"][s["vertno"]] for s in src])
    rng = np.random.default_rng(3)
    # Off-grid vertices of the left hemisphere's mesh, 7-10 mm from every grid vertex.
    s = src[0]
    cand = np.flatnonzero(s["inuse"] == 0)
    d = np.array([np.linalg.norm(used - s["rr"][v], axis=1).min() for v in cand])
    cand = cand[(d > 0.007) & (d < 0.010)]
    picks = rng.choice(cand, N_OFF_GRID, replace=False)
    disc = mne.setup_volume_source_space(
        pos=dict(rr=mne.transforms.apply_trans(
            mne.transforms.invert_transform(sample_forward["mri_head_t"]), s["rr"][picks])
            if s["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD else s["rr"][picks],
            nn=s["nn"][picks]), verbose=False)
    info = sample_evoked.info
    truth = mne.make_forward_solution(info, sample_paths["trans"], disc, sample_paths["bem"],
                                      meg=True, eeg=True, verbose=False)
    truth = mne.convert_forward_solution(truth, surf_ori=True, force_fixed=True, verbose=False)
    gain = truth["sol"]["data"]
    evoked = sample_evoked.copy().pick(truth["info"]["ch_names"]).crop(0.05, 0.15)
    errors, grid_dist, centroid = [], [], []
    noise_cov = sample_cov
    W, _ = mne.cov.compute_whitener(noise_cov, evoked.info, verbose=False)
    for j in range(N_OFF_GRID):
        tc = np.hanning(len(evoked.times))
        signal = np.outer(gain[:, j], tc)
        scale = 10.0 / np.sqrt(np.mean((W @ signal) ** 2))  # whitened SNR 10 on one trial
        noise = np.linalg.pinv(W) @ rng.standard_normal(signal.shape)
        ev = mne.EvokedArray(signal * scale + noise, evoked.info, tmin=0.05, nave=1,
                             verbose=False)
        # The default's estimate (alpha 'auto'), without the confidence's resamples.
        problem = InverseProblem.from_evoked(ev, sample_forward, noise_cov)
        solution = solve_inverse(problem, alpha="auto")
        true_pos = s["rr"][picks[j]]
        top = solution.clusters[0]
        pos_head = np.asarray(top.position_weights) @ used[np.asarray(top.position_sources)]
        errors.append(np.linalg.norm(pos_head - true_pos))
        grid_dist.append(np.linalg.norm(used - true_pos, axis=1).min())
        cen = np.asarray(top.weights) @ used[np.asarray(top.members)]
        centroid.append(np.linalg.norm(cen - true_pos))
    errors, grid_dist, centroid = map(np.array, (errors, grid_dist, centroid))
    # The grid cannot do better than its nearest vertex (7-10 mm here); the fit
    # does (measured: median 3.9 mm against 8.3 mm, the centroid 5.3 mm).
    assert np.median(errors) < 0.6 * np.median(grid_dist)
    assert np.median(errors) < np.median(centroid)
    assert (errors > 0.010).sum() <= 1


def test_position_check_scans_each_coarse_lattice_once(problem, monkeypatch):
    """The confidence's position check keeps each subsample's coarse scan for its fine
    scan: one coarse scan per (subsample, source), and the answers of whole scans."""
    from meeg_inverse import subgrid

    sources = [120, 400]  # one per hemisphere
    fields = free_gain_blocks(problem, sources)
    t = np.linspace(0, 5, problem.data.shape[1])
    data = (np.outer(fields[:, 0] @ [0.3, -0.5, 0.8], np.sin(t))
            + np.outer(fields[:, 1] @ [-0.7, 0.2, 0.6], np.cos(2 * t)))
    clusters = _clusters_at(problem, sources)
    stability = refine_positions(problem, data, clusters, prune=False)
    calls = []
    real = subgrid.LatticeScanner.scan_coarse
    monkeypatch.setattr(subgrid.LatticeScanner, "scan_coarse",
                        lambda self, *a, **k: calls.append(self) or real(self, *a, **k))
    rng = np.random.default_rng(0)
    noise = 0.3 * np.abs(data).max() * rng.standard_normal(data.shape)
    subsamples = []
    for _ in range(3):
        rows = np.sort(rng.choice(problem.n_channels, problem.n_channels // 2, replace=False))
        subsamples.append((rows, (data + noise)[rows], np.ones(2, bool)))
    stable = stability(subsamples)
    assert len(calls) == 3 * len(clusters)
    scanner = calls[0]
    for (rows, sub_data, _), got in zip(subsamples, stable):
        for j, c in enumerate(clusters):
            others = np.hstack([scanner.field_at(o.position_sources, o.position_weights, rows)
                                for i, o in enumerate(clusters) if i != j])
            found = scanner.scan(sub_data, c.position, c.hemi, others, rows)
            assert got[j] == (np.linalg.norm(scanner.position(*found) - c.position)
                              <= subgrid.STABLE_MM * 1e-3)
    assert np.concatenate(stable).any()
