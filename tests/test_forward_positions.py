"""Reported positions by dipole fits with the forward's own BEM (amendment 7 of
docs/validation.md): meeg_inverse.subgrid.ForwardLatticeScanner and
meeg_inverse.dipole_positions.forward_bem_path / head_model_of."""

import copy
from pathlib import Path

import numpy as np
import pytest

from meeg_inverse.clusters import cluster_sources
from meeg_inverse.dipole_positions import forward_bem_path, head_model_of, read_head_model
from meeg_inverse.errors import InputError
from meeg_inverse.subgrid import (ForwardLatticeScanner, LatticeScanner, forward_field_function,
                                  free_gain_blocks, refine_positions)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def head_model(problem):
    model = head_model_of(problem)
    assert model is not None and model.channels == "meg+eeg"
    return model


def _with_command(forward, command, working_dir=None):
    fwd = copy.copy(forward)
    fwd["info"] = forward["info"].copy()
    with fwd["info"]._unlock():
        fwd["info"]["command_line"] = command
        if working_dir is not None:
            fwd["info"]["working_dir"] = str(working_dir)
    return fwd


def test_forward_names_its_bem(sample_forward, sample_paths, tmp_path):
    assert forward_bem_path(sample_forward).resolve() == Path(sample_paths["bem"]).resolve()
    bem = Path(sample_paths["bem"]).resolve()
    template = ("make_forward_solution(instance of Info, trans.fif, <SourceSpaces: [<surface "
                "(lh), n_vertices=1026, n_used=258>, <surface (rh)>] MRI (surface RAS) coords, "
                "subject 'sample', ~254 KiB>, {}, True, False, 5.0, 1, None)")
    # A relative path is relative to the folder make_forward_solution ran in.
    rel = _with_command(sample_forward, template.format(bem.name), working_dir=bem.parent)
    assert forward_bem_path(rel) == bem.parent / bem.name
    # No BEM file to read: a conductor model given as an object, a file gone, another program.
    for command in (template.format("instance of ConductorModel"),
                    template.format(tmp_path / "gone-bem-sol.fif"),
                    "mne_forward_solution --meg --eeg", ""):
        assert forward_bem_path(_with_command(sample_forward, command)) is None


def test_forward_fields_at_grid_vertices_are_the_gain(problem, head_model):
    """The head model's fields, whitened as the gain, at the grid's own vertices are the
    gain's columns (the same BEM and transform computed them)."""
    fields = forward_field_function(problem, head_model)
    sources = np.arange(0, problem.n_sources, 41)
    positions, _ = problem.source_positions(sources)
    got, kept = fields(positions)
    assert kept.sum() >= len(sources) - 1 and len(got) == kept.sum()
    want = free_gain_blocks(problem, sources[kept]).transpose(1, 0, 2)
    # The same 3-dimensional span (orientation frames may differ), the same energy.
    for g, w in zip(got, want):
        cosines = np.linalg.svd(np.linalg.qr(g)[0].T @ np.linalg.qr(w)[0])[1]
        assert cosines == pytest.approx(1.0, abs=1e-6)
        assert np.linalg.norm(g) == pytest.approx(np.linalg.norm(w), rel=1e-5)


def test_dipole_fit_finds_an_off_grid_source_the_interpolation_misplaces(problem, head_model):
    """A dipole between the grid's vertices (the BEM's own field, noise-free): the
    forward-model scan puts it within the fine lattice step; the scan of interpolated
    fields may land further away, never closer."""
    fields = forward_field_function(problem, head_model)
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    rng = np.random.default_rng(3)
    n_times = problem.data.shape[1]
    errors = {"forward": [], "grid": []}
    for source in rng.choice(problem.n_sources, 4, replace=False):
        point = positions[source] + rng.uniform(-0.004, 0.004, 3)
        field, kept = fields(point[None])
        if not kept[0]:
            continue
        data = np.outer(field[0] @ np.array([0.2, -0.6, 0.77]), np.sin(np.linspace(0, 5, n_times)))
        for kind, model in (("forward", head_model), ("grid", None)):
            clusters = cluster_sources(np.array([source]), positions[[source]], np.ones(1),
                                       [hemis[source]], radius_mm=1.0)
            assert refine_positions(problem, data, clusters, prune=False, head_model=model)
            errors[kind].append(np.linalg.norm(clusters[0].position - point) * 1e3)
            assert clusters[0].position_method == ("dipole fit (BEM)" if model else
                                                   "sub-grid fit")
    assert len(errors["forward"]) >= 3
    # Lattice points within 1 mm steps of the scan centre: the nearest is <= 0.87 mm away.
    assert max(errors["forward"]) <= 1.0
    assert np.median(errors["forward"]) <= np.median(errors["grid"])


def test_reported_amplitude_is_the_fitted_dipole_moment(problem, head_model):
    """Two dipoles off the grid, noise-free: the moments fitted at the reported positions
    are theirs (not the root-sum-square of grid sources sharing them)."""
    fields = forward_field_function(problem, head_model)
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    points = positions[[120, 400]] + [0.002, -0.001, 0.001]
    field, kept = fields(points)
    assert kept.all()
    times = np.linspace(0, 5, problem.data.shape[1])
    moments = [np.outer([0.3, -0.5, 0.8], np.sin(times)) * 40e-9,
               np.outer([-0.7, 0.2, 0.6], np.cos(2 * times)) * 25e-9]
    data = field[0] @ moments[0] + field[1] @ moments[1]
    clusters = cluster_sources(np.array([120, 400]), positions[[120, 400]], np.ones(2),
                               [hemis[120], hemis[400]], radius_mm=1.0)
    assert refine_positions(problem, data, clusters, prune=False, head_model=head_model)
    for cluster, moment in zip(clusters, moments):
        peak = np.linalg.norm(moment, axis=0).max()
        assert np.linalg.norm(cluster.moment, axis=0).max() == pytest.approx(peak, rel=0.05)


def test_forward_scanner_positions_are_affine_combinations_of_grid_sources(problem, head_model):
    """The reported (indices, weights) place the point (outputs map them to head, MRI,
    MNI), while the field is the forward model's at the point."""
    scanner = ForwardLatticeScanner(problem, forward_field_function(problem, head_model))
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    centre = positions[120]
    points = scanner._points_near(centre, scanner.step, scanner.fine, hemis[120])
    assert points
    key, point = points[len(points) // 2]
    verts, weights = scanner._weights[key]
    assert weights @ positions[verts] == pytest.approx(point, abs=1e-9)
    direct, _ = forward_field_function(problem, head_model)(point[None])
    assert scanner.field_at(verts, weights) == pytest.approx(direct[0], rel=1e-9)
    interpolated = LatticeScanner(problem).field_at(verts, weights)
    assert not np.allclose(interpolated, direct[0], rtol=1e-3)


def test_lattices_computed_together_have_the_fields_computed_one_by_one(problem, head_model):
    """The confidence asks the head model for all its subsamples' lattices at once
    (prefetch): the same fields as lattice by lattice, and no point computed twice."""
    fields = forward_field_function(problem, head_model)
    calls = []

    def counted(points):
        calls.append(len(points))
        return fields(points)

    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    together = ForwardLatticeScanner(problem, counted)
    # Three fine lattices, two of them overlapping (centres 1 mm apart).
    centres = [positions[120], positions[120] + [0.001, 0, 0], positions[400]]
    lattices = [(c, together.step, together.fine, hemis[i])
                for c, i in zip(centres, (120, 120, 400))]
    together.prefetch(lattices)
    assert len(calls) == 1
    one_by_one = ForwardLatticeScanner(problem, fields)
    keys = set()
    for centre, radius, step, hemi in lattices:
        points = one_by_one._points_near(centre, radius, step, hemi)
        assert points
        got = together._points_near(centre, radius, step, hemi)  # cached: no new call
        assert [k for k, _ in got] == [k for k, _ in points]
        keys.update(k for k, _ in points)
        want = one_by_one._fields_of([k for k, _ in points], slice(None))
        assert together._fields_of([k for k, _ in got], slice(None)) == pytest.approx(
            want, rel=1e-9, abs=1e-9 * np.abs(want).max())
    assert len(calls) == 1 and calls[0] == len(set(together._point_fields)) >= len(keys)


def test_position_check_asks_only_the_sources_it_is_given(problem, head_model):
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    # Two dipoles beside grid sources 120 and 400, noise-free, other time courses.
    fields, kept = forward_field_function(problem, head_model)(
        positions[[120, 400]] + [0.002, -0.001, 0.001])
    assert kept.all()
    times = np.linspace(0, 5, problem.data.shape[1])
    data = (np.outer(fields[0] @ [0.3, -0.5, 0.8], np.sin(times))
            + np.outer(fields[1] @ [-0.7, 0.2, 0.6], np.cos(2 * times)))
    clusters = cluster_sources(np.array([120, 400]), positions[[120, 400]], np.ones(2),
                               [hemis[120], hemis[400]], radius_mm=1.0)
    stability = refine_positions(problem, data, clusters, prune=False, head_model=head_model)
    rows = np.arange(0, problem.n_channels, 2)
    none, first = stability([(rows, data[rows], np.zeros(2, bool)),
                             (rows, data[rows], np.array([True, False]))])
    assert not none.any() and not first[1]
    # The full data confirm the positions fitted on them.
    assert stability([(np.arange(problem.n_channels), data, np.ones(2, bool))])[0].all()


def test_without_mnes_incremental_modeler_the_public_forward_gives_the_same_fields(
        problem, head_model, monkeypatch):
    """MNE's _ForwardModeler is private: where an MNE lacks it, each batch of points
    goes through mne.make_forward_solution (slower), with the same fields."""
    import mne.forward._make_forward as make_forward

    from meeg_inverse.dipole_positions import _forward_modeler

    positions, _ = problem.source_positions(np.array([30, 300, 480]))
    fast = _forward_modeler(problem.info, head_model, 0.0)(positions)
    monkeypatch.delattr(make_forward, "_ForwardModeler")
    slow = _forward_modeler(problem.info, head_model, 0.0)(positions)
    assert slow[2] == fast[2] and slow[1].tolist() == fast[1].tolist() and fast[1].any()
    assert slow[0] == pytest.approx(fast[0], rel=1e-9, abs=1e-9 * np.abs(fast[0]).max())


def test_sparse_inverse_uses_the_forwards_bem_unless_told(sample_evoked, sample_forward,
                                                          sample_cov):
    from meeg_inverse import sparse_inverse

    evoked = sample_evoked.copy().crop(0.05, 0.15)
    auto = sparse_inverse(evoked, sample_forward, sample_cov, return_result=True)
    grid = sparse_inverse(evoked, sample_forward, sample_cov, return_result=True, bem=None)
    assert auto.sources and {c.position_method for c in auto.sources} == {"dipole fit (BEM)"}
    assert {c.position_method for c in grid.sources} == {"sub-grid fit"}


def test_bad_head_models_are_refused(sample_evoked, sample_forward, sample_cov, sample_paths,
                                     tmp_path):
    from meeg_inverse import sparse_inverse

    evoked = sample_evoked.copy().crop(0.05, 0.15)
    one_layer = sample_paths.get("bem_meg")
    if one_layer is not None and one_layer.exists():  # MEG only, and the recording has EEG
        with pytest.raises(InputError, match="does not model every channel"):
            sparse_inverse(evoked, sample_forward, sample_cov, bem=one_layer)
    with pytest.raises(InputError, match="trans= is used only with a bem="):
        sparse_inverse(evoked, sample_forward, sample_cov, bem=None,
                       trans=sample_paths["trans"])
    with pytest.raises(InputError):
        sparse_inverse(evoked, sample_forward, sample_cov, bem=tmp_path / "none-bem-sol.fif")


def test_one_layer_bem_named_by_the_forward_falls_back(problem, sample_paths):
    """A forward naming a BEM that cannot model its EEG: interpolated fields, no error."""
    one_layer = sample_paths.get("bem_meg")
    if one_layer is None or not one_layer.exists():
        pytest.skip("no one-layer sample BEM in the data")
    other = copy.copy(problem)
    other.operator = copy.copy(problem.operator)
    other.operator.bem_path = one_layer
    assert head_model_of(other) is None
    # Read once per file: the same head model (and prepared BEM) for the next operator.
    assert head_model_of(problem) is head_model_of(copy.copy(problem))
    assert read_head_model(one_layer, forward=problem.forward).channels == "meg"


def test_operator_file_keeps_the_bem(problem, tmp_path):
    from meeg_inverse.operator import read_sparse_inverse_operator

    problem.operator.save(tmp_path / "op.h5")
    assert read_sparse_inverse_operator(tmp_path / "op.h5").bem_path == problem.operator.bem_path


def test_reported_peak_time_is_that_of_the_fitted_moment():
    """A fitted source's peak amplitude and peak time are those of one curve, its fitted
    moment; a centroid keeps its strongest member's."""
    from types import SimpleNamespace

    from meeg_inverse.assessment import reported_sources

    times = np.linspace(0.05, 0.15, 11)
    moment = np.zeros((3, times.size))
    moment[:, 7] = [30e-9, -40e-9, 0.0]  # peaks at 50 nA·m, at times[7]
    moment[:, 2] = [20e-9, 0.0, 0.0]
    members = [dict(source_index=4, hemisphere="lh", peak_time_s=0.06,
                    peak_amplitude_nAm=35.0, position_head_mm=[0.0, 0.0, 50.0]),
               dict(source_index=9, hemisphere="lh", peak_time_s=0.08,
                    peak_amplitude_nAm=20.0, position_head_mm=[0.0, 10.0, 50.0])]

    def cluster(method):
        return SimpleNamespace(members=np.array([4, 9]), weights=np.array([0.6, 0.4]),
                               position_method=method, position_sources=np.array([4, 9]),
                               position_weights=np.array([0.5, 0.5]), moment=moment,
                               confidence=None)

    def frames(idx):
        return {"head": np.array([[0.0, 0.0, 0.05], [0.0, 0.01, 0.05]])[
            [0 if i == 4 else 1 for i in idx]], "mri": None, "mni": None}

    fitted, centroid = (reported_sources([dict(m) for m in members], [cluster(method)],
                                         frames_of=frames, times=times)[0]
                        for method in ("dipole fit (BEM)", "centroid"))
    assert fitted["peak_amplitude_nAm"] == pytest.approx(50.0)
    assert fitted["peak_time_s"] == pytest.approx(times[7])
    assert centroid["peak_time_s"] == 0.06  # the strongest member's, with its amplitude
    assert centroid["peak_amplitude_nAm"] == pytest.approx(np.hypot(35.0, 20.0))


def test_reported_sources_are_ordered_by_the_amplitude_they_show():
    """Two clusters whose fitted moments order them otherwise than their grid members:
    listed strongest first by the fitted amplitude, numbered in that order, and each grid
    record carries its reported source's number."""
    from types import SimpleNamespace

    from meeg_inverse.assessment import reported_sources

    records = [dict(source_index=1, hemisphere="lh", peak_time_s=0.1, peak_amplitude_nAm=80.0,
                    position_head_mm=[0.0, 0.0, 50.0]),
               dict(source_index=2, hemisphere="rh", peak_time_s=0.1, peak_amplitude_nAm=60.0,
                    position_head_mm=[0.0, 10.0, 50.0])]

    def cluster(index, moment_nAm):
        moment = np.zeros((3, 3))
        moment[0, 1] = moment_nAm * 1e-9
        return SimpleNamespace(members=np.array([index]), weights=np.array([1.0]),
                               position_method="dipole fit (BEM)",
                               position_sources=np.array([index]),
                               position_weights=np.array([1.0]), moment=moment,
                               confidence=None)

    def frames(idx):
        return {"head": np.array([[0.0, 0.0, 0.05] if i == 1 else [0.0, 0.01, 0.05]
                                  for i in idx]), "mri": None, "mni": None}

    # The grid's order (1 first) and the fitted moments' (2 first: 40 vs 20 nA·m) disagree.
    out = reported_sources(records, [cluster(1, 20.0), cluster(2, 40.0)], frames_of=frames,
                           times=np.array([0.05, 0.1, 0.15]))
    assert [(e["source"], e["members"], e["peak_amplitude_nAm"]) for e in out] == [
        (1, [2], pytest.approx(40.0)), (2, [1], pytest.approx(20.0))]
    assert {r["source_index"]: r["source"] for r in records} == {2: 1, 1: 2}


def test_fitted_source_is_named_where_the_fit_put_it(problem, sample_paths):
    """A fitted source's hemisphere and label are those of its fitted position (named by
    the grid source weighing most in it), not its strongest member's; a centroid keeps
    its member's, and so does a fit the atlas cannot name."""
    from types import SimpleNamespace

    from meeg_inverse.assessment import reported_sources
    from meeg_inverse.summary import source_frames, source_label_at

    subjects_dir = sample_paths["subjects_dir"]
    _, hemis = problem.source_positions(np.arange(problem.n_sources))
    lh, rh = hemis.index("lh"), hemis.index("rh")
    frames = source_frames(problem, np.array([lh, rh]), subject="sample",
                           subjects_dir=subjects_dir)[0]
    mni_rh = np.round(frames["mni"][1] * 1e3, 2).tolist()
    member = dict(source_index=lh, hemisphere="lh", label="member-lh", label_atlas="x",
                  peak_time_s=0.1, peak_amplitude_nAm=10.0, position_mni_mm=[0.0, 0.0, 0.0])

    def cluster(method, weights):
        return SimpleNamespace(members=np.array([lh]), weights=np.array([1.0]),
                               position_method=method, position_sources=np.array([lh, rh]),
                               position_weights=np.array(weights), moment=None,
                               confidence=None)

    def label_at(index, mni):
        return source_label_at(problem, index, mni, subject="sample",
                               subjects_dir=subjects_dir)

    def frames_of(idx):
        return source_frames(problem, idx, subject="sample", subjects_dir=subjects_dir)[0]

    [fitted] = reported_sources([dict(member)], [cluster("sub-grid fit", [0.1, 0.9])],
                                frames_of=frames_of, label_at=label_at)
    hemisphere, expected = label_at(rh, fitted["position_mni_mm"])
    assert hemisphere == "rh" and fitted["hemisphere"] == "rh"
    assert expected["name"] is not None and fitted["label"] == expected["name"]
    assert fitted["label"].endswith("-rh") and fitted["label_atlas"] == expected["atlas"]
    # The rh grid source's own position names it as its record would.
    assert label_at(rh, mni_rh)[1]["name"].endswith("-rh")
    [centroid] = reported_sources([dict(member)], [cluster("centroid", [0.1, 0.9])],
                                  frames_of=frames_of, label_at=label_at)
    assert (centroid["hemisphere"], centroid["label"]) == ("lh", "member-lh")
    [unnamed] = reported_sources([dict(member)], [cluster("sub-grid fit", [0.1, 0.9])],
                                 frames_of=frames_of,
                                 label_at=lambda i, m: ("rh", dict(name=None, atlas=None)))
    assert (unnamed["hemisphere"], unnamed["label"]) == ("lh", "member-lh")


def test_reported_peak_times_of_simulated_sources(sample_forward, sample_cov,
                                                  sample_fixed_forward, monkeypatch):
    """Two sources of the real head peaking at 80 and 115 ms: through the pipeline, each
    reported source's peak time is where its fitted moment peaks, within one sample of
    the truth's."""
    import mne

    from meeg_inverse import assessment
    from meeg_inverse.pipeline import localize

    fixed, info = sample_fixed_forward
    sfreq = info["sfreq"]
    times = np.arange(-0.1, 0.16, 1 / sfreq)
    whitener, _, colorer = mne.cov.compute_whitener(sample_cov, info, return_colorer=True,
                                                    pca=False, verbose=False)
    nave, signal, truth = 4, 0.0, {}
    for k, peak_s in ((120, 0.080), (300, 0.115)):  # one source per hemisphere
        tc = np.exp(-0.5 * ((times - peak_s) / 0.012) ** 2)
        field = fixed["sol"]["data"][:, [k]]
        # Peak whitened SNR 8 against the noise of the average.
        scale = 8.0 / (np.sqrt(np.mean((whitener @ field) ** 2)) * np.sqrt(nave))
        signal = signal + scale * field @ tc[None]
        truth[k] = int(np.argmax(tc))
    rng = np.random.default_rng(1)
    noise = colorer @ rng.standard_normal((colorer.shape[1], times.size))
    ev = mne.EvokedArray(signal + noise / np.sqrt(nave), info, tmin=times[0], nave=nave,
                         verbose=False)
    ev.set_eeg_reference("average", projection=True, verbose=False)
    truth = {k: ev.times[i] for k, i in truth.items()}  # the evoked's own sample times

    seen = {}
    original = assessment.reported_sources

    def spy(records, clusters, **kwargs):
        seen["clusters"], seen["times"] = list(clusters), kwargs["times"]
        return original(records, clusters, **kwargs)

    monkeypatch.setattr(assessment, "reported_sources", spy)
    res = localize(ev, sample_forward, sample_cov, tmin=0.05, tmax=0.15, confidence=0)
    reported = res.extra["reported_sources"]
    fitted = [r for r in reported if r["position_method"] != "centroid"]
    assert fitted, reported
    # Strongest first by the amplitude shown, numbered in that order.
    amplitudes = [r["peak_amplitude_nAm"] for r in reported]
    assert amplitudes == sorted(amplitudes, reverse=True)
    assert [r["source"] for r in reported] == list(range(1, len(reported) + 1))
    by_members = {tuple(r["members"]): r for r in reported}
    checked = 0
    for cluster in seen["clusters"]:
        entry = by_members.get(tuple(int(m) for m in cluster.members))
        if entry is not None and entry["position_method"] != "centroid":
            checked += 1
            norm = np.linalg.norm(cluster.moment, axis=0)
            assert entry["peak_time_s"] == pytest.approx(seen["times"][np.argmax(norm)],
                                                         abs=1e-5)
            assert entry["peak_amplitude_nAm"] == pytest.approx(norm.max() * 1e9)
    assert checked == len(fitted)
    src_rr = np.concatenate([s["rr"][s["vertno"]] for s in fixed["src"]]) * 1e3  # head, mm
    for k, peak_s in truth.items():
        near = min(fitted, key=lambda r: np.linalg.norm(np.subtract(r["position_head_mm"],
                                                                    src_rr[k])))
        assert np.linalg.norm(np.subtract(near["position_head_mm"], src_rr[k])) < 20, near
        # peak_time_s is rounded to 10 µs
        assert abs(near["peak_time_s"] - peak_s) <= 1 / sfreq + 1e-5, (k, near, peak_s)
