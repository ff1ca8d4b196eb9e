"""Continuous recordings: chunked reading, blending, BAD_ segments, interruption, bad input."""

import re

import mne
import numpy as np
import pytest

from meeg_inverse import InputError
from meeg_inverse import continuous as cont
from meeg_inverse.continuous import (_Blender, _MemoryWriter, _window_starts, blend_weights,
                                     localize_continuous, read_continuous)

SFREQ = 600.0


@pytest.fixture(scope="module")
def setup(sample_evoked, sample_forward, sample_cov):
    """A 4-s recording on the sample head: coloured noise + one source bursting twice."""
    info = sample_evoked.copy().pick(["meg", "eeg"], exclude="bads").info
    with info._unlock():
        info["sfreq"] = SFREQ
        info["lowpass"] = 200.0
    fwd = mne.pick_channels_forward(sample_forward, info.ch_names, ordered=True, verbose=False)
    fwd_fixed = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True,
                                             use_cps=True, verbose=False)
    rng = np.random.default_rng(0)
    n = int(4 * SFREQ)
    cov = mne.pick_channels_cov(sample_cov, info.ch_names, ordered=True)
    w, v = np.linalg.eigh(cov.data)
    colorer = v * np.sqrt(np.clip(w, 0, None))
    noise = colorer @ rng.standard_normal((len(info.ch_names), n))
    t = np.arange(n) / SFREQ
    moment = np.zeros(n)
    for onset in (1.0, 2.6):
        on = (t >= onset) & (t <= onset + 0.3)
        moment[on] = 80e-9 * np.sin(np.pi * (t[on] - onset) / 0.3) ** 2 * np.cos(
            2 * np.pi * 12 * (t[on] - onset))
    gain = fwd_fixed["sol"]["data"][:, 40]
    raw = mne.io.RawArray(noise + gain[:, None] * moment, info, verbose=False)
    return raw, sample_forward, sample_cov


@pytest.fixture(scope="module")
def raw_file(setup, tmp_path_factory):
    raw, _, _ = setup
    fname = tmp_path_factory.mktemp("cont") / "sim_raw.fif"
    raw.save(fname, verbose=False)
    return fname


def _run(raw, fwd, cov, **kw):
    kw.setdefault("warm_start", False)  # each window's solution then depends on it alone
    return localize_continuous(raw, fwd, cov, **kw)


def test_chunked_reading_equals_whole_reading(setup, raw_file, tmp_path):
    raw, fwd, cov = setup
    whole = _run(raw, fwd, cov, chunk=100.0)  # in memory, one chunk
    lazy = mne.io.read_raw_fif(raw_file, preload=False, verbose=False)
    assert not lazy.preload
    chunked = _run(lazy, fwd, cov, chunk=0.5, fname=tmp_path / "c.h5")
    assert (tmp_path / "c.h5").is_file()
    assert (whole.windows["status"] == 0).sum() > 0  # the bursts were found
    np.testing.assert_array_equal(whole.windows["status"], chunked.windows["status"])
    a, b = whole.stc, chunked.stc
    assert a.data.shape == b.data.shape
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-6 * np.abs(a.data).max())
    # The file reads back to the same estimate.
    again = read_continuous(tmp_path / "c.h5", fwd, cov, lazy.info)
    np.testing.assert_allclose(again.stc.data, b.data)
    # A band-pass per chunk (with a filter length of margin) equals filtering it all.
    ctx = cont._Context(
        raw=lazy, picks=list(range(len(lazy.ch_names))), whitener=np.eye(len(lazy.ch_names)),
        gain=None, n_orient=1, weighting=None, n_win=60, n_hop=30, pad=0,
        n_total=len(lazy.times), offset=0, penalty="l21", fixed_fraction=None, alpha_unit=1.0,
        noise_variance=1.0, tol=1e-6, warm_start=False,
        filter_kw=dict(sfreq=SFREQ, l_freq=2.0, h_freq=40.0, verbose=False), max_time=None)
    ctx.pad = len(mne.filter.create_filter(None, **ctx.filter_kw))
    full = mne.filter.filter_data(lazy.get_data(), **ctx.filter_kw)
    part, bad = cont._read_chunk(ctx, 1000, 1400)
    assert not bad.any()
    np.testing.assert_allclose(part, full[:, 1000:1400], atol=1e-9 * np.abs(full).max())


@pytest.mark.parametrize("n_win,n_hop", [(60, 30), (60, 17), (61, 61), (50, 1)])
def test_overlap_blending_is_exact_on_a_stationary_source(n_win, n_hop):
    n_total = 1000
    f = np.vstack([np.sin(np.arange(n_total) / 7.0), np.cos(np.arange(n_total) / 3.0) + 2])
    writer = _MemoryWriter()
    blender = _Blender(0, writer)
    w = blend_weights(n_win)
    starts = _window_starts(n_total, n_win, n_hop)
    assert starts[0] == 0 and starts[-1] + n_win == n_total
    for k, s in enumerate(starts):
        # Every window reconstructs the same stationary source exactly.
        blender.add(int(s), w, [3, 8], f[:, s:s + n_win])
        if k % 5 == 4:
            blender.flush(int(starts[k + 1]) if k + 1 < len(starts) else n_total)
    blender.flush(n_total)
    seg = writer.segments()
    rows, data = cont._SourceMapper.dense(seg, n_total)
    np.testing.assert_array_equal(rows, [3, 8])
    np.testing.assert_allclose(data, f, rtol=1e-12, atol=1e-12)


def test_bad_annotations_are_skipped(setup):
    raw, fwd, cov = setup
    annotated = raw.copy()
    annotated.set_annotations(mne.Annotations([0.91], [0.47], ["BAD_movement"]))
    res = _run(annotated, fwd, cov)
    clean = _run(raw, fwd, cov)
    w = res.windows
    bad = w["status"] == 2
    # Exactly the windows overlapping [0.91, 1.38] s are skipped.
    overlaps = (w["stop"] > 0.91) & (w["start"] < 1.38)
    np.testing.assert_array_equal(bad, overlaps)
    assert bad.any()
    stc = res.stc
    inside = (stc.times >= 0.95) & (stc.times <= 1.35)
    assert np.all(stc.data[:, inside] == 0)
    # Windows away from the bad segment are those of the clean recording.
    far = (w["stop"] < 0.7) | (w["start"] > 1.6)
    np.testing.assert_array_equal(w["status"][far], clean.windows["status"][far])
    # The second burst (2.6-2.9 s) is still found.
    assert np.any(w["status"][(w["start"] > 2.55) & (w["stop"] < 2.95)] == 0)


def test_interruption_leaves_no_half_written_output(setup, tmp_path, monkeypatch):
    raw, fwd, cov = setup
    calls = []
    original = cont._process_chunk

    def interrupted(ctx, starts):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(ctx, starts)

    monkeypatch.setattr(cont, "_process_chunk", interrupted)
    out = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        localize_continuous(raw, fwd, cov, chunk=1.0, fname=out)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial one


@pytest.mark.parametrize("kwargs,words", [
    (dict(window=10.0), "longer than the recording"),
    (dict(window=0.1, step=0.2), "step"),
    (dict(window=-1), "window must be a positive"),
    (dict(step=float("nan")), "step must be a positive"),
    (dict(l_freq=40.0, h_freq=10.0), "l_freq"),
    (dict(h_freq=400.0), "h_freq"),
    (dict(n_jobs=0), "n_jobs"),
    (dict(alpha=1.5), "alpha"),
    (dict(tmin=3.0, tmax=1.0), "span"),
])
def test_bad_input_is_one_clear_error(setup, kwargs, words):
    raw, fwd, cov = setup
    with pytest.raises(InputError, match=words):
        localize_continuous(raw, fwd, cov, **kwargs)
    with pytest.raises(InputError, match="mne.io.Raw"):
        localize_continuous(raw.get_data(), fwd, cov)


def test_existing_file_is_refused_before_the_work(setup, tmp_path):
    raw, fwd, cov = setup
    out = tmp_path / "x.h5"
    out.write_text("keep me")
    with pytest.raises(InputError, match="exists"):
        localize_continuous(raw, fwd, cov, fname=out)
    assert out.read_text() == "keep me"


def test_summary_has_activity_periods_of_the_bursts(setup):
    raw, fwd, cov = setup
    res = _run(raw, fwd, cov)
    summary = res.summary()
    assert summary["n_windows"] == len(res.windows["status"])
    periods = [p for s in summary["sources"] for p in s["periods"]]
    assert periods
    # Some period lies on each true burst (1.0-1.3 s, 2.6-2.9 s).
    for onset in (1.0, 2.6):
        assert any(p[0] < onset + 0.3 and p[1] > onset for p in periods)


def test_reported_sources_of_the_bursts(setup):
    """One source bursting twice: one reported source with both bursts as events, at
    the true grid source (on the grid here: the sub-grid fit lands on its vertex)."""
    raw, fwd, cov = setup
    res = _run(raw, fwd, cov)
    reported = res.summary()["reported_sources"]
    assert reported == res.reported_sources()  # (computed once: the fit reads the data)
    reported[0]["periods"].clear()  # a copy: the result's own stays intact
    reported = res.reported_sources()
    assert len(res._reported) == 1
    top = reported[0]
    for onset in (1.0, 2.6):
        assert any(p[0] < onset + 0.3 and p[1] > onset for p in top["periods"])
    assert len(top["period_positions_mm"]) == len(top["periods"])
    assert len(reported) == 1 and top["source_indices"] == [40]
    true_mm = res._mapper._problem.source_positions([40])[0][0] * 1e3  # MRI coordinates
    np.testing.assert_allclose(top["position_mm"], true_mm, atol=0.01)  # (rounded to 0.01 mm)
    assert top["position_method"] == "sub-grid fit"
    centroid = res.reported_sources(position="centroid")[0]
    assert centroid["position_method"] == "centroid"
    assert centroid["position_mm"] == centroid["centroid_mm"] == top["centroid_mm"]
    for kw in (dict(radius_mm=0), dict(track_mm=-5), dict(track_mm="15"),
               dict(minor_fraction=1.0), dict(position="fitted")):
        with pytest.raises(InputError, match=next(iter(kw))):
            res.reported_sources(**kw)


def test_read_back_with_the_raw_fits_sub_grid_positions(setup, raw_file, tmp_path):
    """A result read from its file fits positions only when given the recording (read
    again lazily); without it, the centroid, labelled as such."""
    raw, fwd, cov = setup
    lazy = mne.io.read_raw_fif(raw_file, preload=False, verbose=False)
    res = _run(lazy, fwd, cov, fname=tmp_path / "r.h5")
    direct = res.reported_sources()
    back = read_continuous(tmp_path / "r.h5", fwd, cov, raw=lazy).reported_sources()
    assert back == direct and back[0]["position_method"] == "sub-grid fit"
    plain = read_continuous(tmp_path / "r.h5", fwd, cov, res._mapper._problem.info)
    assert plain.reported_sources()[0]["position_method"] == "centroid"
    # Asked for, a fit that needs the recording is refused without it (it was silently
    # the centroid: position='sub-grid', a bem= given here or to read_continuous).
    for kw in (dict(position="sub-grid"), dict(bem="b-bem-sol.fif"),
               dict(position="dipole", bem="b-bem-sol.fif")):
        with pytest.raises(InputError, match="read the recording again") as err:
            plain.reported_sources(**kw)
        assert "raw=" in err.value.fix
    with pytest.raises(InputError, match="without raw") as err:
        read_continuous(tmp_path / "r.h5", fwd, cov, res._mapper._problem.info,
                        bem="b-bem-sol.fif")
    assert "raw=" in err.value.fix
    short = lazy.copy().crop(0, 2.0)
    with pytest.raises(InputError, match="shorter"):
        read_continuous(tmp_path / "r.h5", fwd, cov, raw=short)


def test_cli_continuous_bad_input_exits_2(raw_file, sample_paths, tmp_path, capsys):
    from meeg_inverse.cli import main

    status = main(["localize", str(raw_file), "--continuous", "--window", "100",
                   "--noise-cov", str(sample_paths["cov"]), "--out", str(tmp_path / "o"), "-q"])
    assert status == 2
    err = capsys.readouterr().err
    assert "longer than the recording" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    status = main(["localize", str(raw_file), "--continuous", "--window", "0.1", "--step",
                   "0.2", "--noise-cov", str(sample_paths["cov"]), "--out",
                   str(tmp_path / "o"), "-q"])
    assert status == 2
    assert "step" in capsys.readouterr().err


def test_cli_continuous_writes_the_outputs(raw_file, sample_paths, sample_forward, tmp_path,
                                           capsys):
    import json

    from meeg_inverse.cli import main

    fwd_file = tmp_path / "small-fwd.fif"
    mne.write_forward_solution(fwd_file, sample_forward, verbose=False)
    out = tmp_path / "res"
    status = main(["localize", str(raw_file), "--continuous", "--noise-cov",
                   str(sample_paths["cov"]), "--forward", str(fwd_file), "--out", str(out),
                   "-q", "--json"])
    assert status == 0
    printed = capsys.readouterr().out
    # --json prints summary.json as written (its notes, warnings and files included).
    assert printed == (out / "summary.json").read_text()
    summary = json.loads(printed)
    assert summary["n_windows"] > 0
    assert {"sources-continuous.h5", "windows.csv", "timeline.png", "summary.json"} <= {
        p.name for p in out.iterdir()}
    assert summary["sources"] and summary["sources"][0]["periods"]
    assert (out / "windows.csv").read_text().count("\n") == summary["n_windows"] + 1
    # the viewer's time slider spans the whole recording (peak amplitude per bin)
    page = (out / "viewer.html").read_text()
    assert "<html" in page.lower() and summary["files"]["viewer"] == "viewer.html"
    # Epoch options make no sense here: refused, not ignored.
    assert main(["localize", str(raw_file), "--continuous", "--condition", "1",
                 "--noise-cov", str(sample_paths["cov"]), "--out", str(tmp_path / "o2"),
                 "-q"]) == 2


def test_cli_continuous_lost_channel_type_needs_allow_missing_types(
        raw_file, sample_paths, sample_forward, tmp_path, capsys, monkeypatch):
    """A forward without the EEG: refused, and localized with the MEG channels given
    --allow-missing-types (the option reaches the operator's preparation)."""
    from meeg_inverse import operator
    from meeg_inverse.cli import main

    fwd_file = tmp_path / "meg-fwd.fif"
    mne.write_forward_solution(fwd_file, mne.pick_types_forward(sample_forward, meg=True,
                                                                eeg=False), verbose=False)
    made = []
    real = operator.make_sparse_inverse_operator
    monkeypatch.setattr(operator, "make_sparse_inverse_operator",
                        lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    args = ["localize", str(raw_file), "--continuous", "--noise-cov", str(sample_paths["cov"]),
            "--forward", str(fwd_file), "--tmin", "0.9", "--tmax", "1.5", "--no-figures", "-q"]
    assert main(args + ["--out", str(tmp_path / "refused")]) == 2
    assert "All EEG channels of the recording would be left out" in capsys.readouterr().err
    assert not made
    assert main(args + ["--out", str(tmp_path / "res"), "--allow-missing-types"]) == 0
    [op] = made
    assert set(op.info.get_channel_types()) == {"grad", "mag"}
    raw_info = mne.io.read_info(raw_file, verbose=False)
    assert len(op.ch_names) == len(mne.pick_types(raw_info, meg=True, eeg=False,
                                                  exclude="bads"))


def test_parallel_windows_equal_serial(setup):
    raw, fwd, cov = setup
    serial = localize_continuous(raw, fwd, cov, chunk=1.0, n_jobs=1)
    parallel = localize_continuous(raw, fwd, cov, chunk=1.0, n_jobs=2)
    for key in serial.windows:
        if key != "solve_time":  # (a wall time)
            np.testing.assert_array_equal(serial.windows[key], parallel.windows[key])
    np.testing.assert_array_equal(serial.stc.data, parallel.stc.data)


def test_binned_stc_spans_the_recording_with_the_peaks(setup):
    raw, fwd, cov = setup
    res = localize_continuous(raw, fwd, cov, chunk=1.0)
    stc = res.binned_stc(n_bins=50)
    assert stc.data.shape[1] == 50
    assert stc.times[0] == pytest.approx(res.tmin)
    assert stc.times[-1] + stc.tstep == pytest.approx(res.tmin + res.n_times / res.sfreq)
    # each source's largest bin is its peak over the recording
    peak = res.peak_stc()
    order = np.argsort(peak.vertices[0].tolist() + (peak.vertices[1] + 10 ** 6).tolist())
    mine = np.argsort(stc.vertices[0].tolist() + (stc.vertices[1] + 10 ** 6).tolist())
    # (the activity periods keep their peaks to 4 decimals of nA·m)
    np.testing.assert_allclose(stc.data[mine].max(axis=1), peak.data[order, 0], rtol=1e-4)


def test_dask_cluster_windows_equal_serial(setup):
    """The same chunks as tasks of a real dask.distributed LocalCluster: same result."""
    from distributed import Client, LocalCluster

    raw, fwd, cov = setup
    serial = localize_continuous(raw, fwd, cov, chunk=1.0, n_jobs=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = localize_continuous(raw, fwd, cov, chunk=1.0, client=client)
    for key in serial.windows:
        if key != "solve_time":
            np.testing.assert_allclose(serial.windows[key], dask.windows[key], rtol=1e-9,
                                       atol=1e-12)
    np.testing.assert_allclose(serial.stc.data, dask.stc.data, rtol=1e-9,
                               atol=1e-9 * np.abs(serial.stc.data).max())


def test_dask_futures_are_cancelled_when_a_chunk_fails(setup, tmp_path):
    """A chunk that fails on a worker: the error comes back, and the run's other
    futures are cancelled, not left running or held on the cluster."""
    import time
    import traceback

    from distributed import Client, LocalCluster

    raw, fwd, cov = setup
    fname = tmp_path / "cut_raw.fif"
    raw.save(fname, verbose=False)
    lazy = mne.io.read_raw_fif(fname, preload=False, verbose=False)
    # Cut the file at its third 1-s data buffer: the first 2 s read (the noise
    # segment, in this process), the rest fails (in the workers).
    assert list(lazy._raw_extras[0]["bounds"]) == [0, 600, 1200, 1800, 2400]
    with open(fname, "r+b") as f:
        f.truncate(lazy._raw_extras[0]["ent"][2].pos)

    def n_tasks():
        return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        try:
            localize_continuous(lazy, fwd, cov, chunk=0.5, noise_segment=(0.0, 0.5),
                                client=client, fname=tmp_path / "out.h5")
        except ValueError as exc:
            # The exception's traceback still references the run's futures (as a
            # caller that keeps it would): only a cancel releases them.
            failed = exc
        else:
            pytest.fail("the cut recording was read whole")
        deadline = time.monotonic() + 10
        while n_tasks() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert n_tasks() == 0
        # (the error is the workers' one, raised while consuming the chunks' results)
        assert "_read_chunk" in {f.name for f in traceback.extract_tb(failed.__traceback__)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut_raw.fif"]  # no output at all


@pytest.mark.parametrize("n_orient", [1, 3])
def test_learned_step_gradient_matches_finite_differences(n_orient):
    from meeg_inverse.learned import LearnedSolver

    rng = np.random.default_rng(0)
    gain = rng.standard_normal((20, 30))
    data = gain[:, :3] @ rng.standard_normal((3, 5)) + 0.1 * rng.standard_normal((20, 5))
    solver = LearnedSolver(gain, n_orient, n_layers=5)
    lam = 0.3 * np.linalg.norm((gain.T @ data).reshape(30 // n_orient, -1), axis=1).max()
    steps = solver.steps * rng.uniform(0.5, 3.0, 5)
    _, grad = solver._value_and_grad(steps, data, lam)
    h = 1e-6 * solver.steps[0]
    numeric = [(solver._value_and_grad(steps + h * e, data, lam)[0]
                - solver._value_and_grad(steps - h * e, data, lam)[0]) / (2 * h)
               for e in np.eye(5)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-4)
    # Learning lowers the objective reached after the last layer.
    before = solver.objective(solver.predict(data, lam), data, lam)
    solver.fit([(data, lam)], maxiter=10)
    assert solver.objective(solver.predict(data, lam), data, lam) < before


def test_benchmark_scoring_rules():
    """The recovery rules of docs/continuous.md, on a hand-made truth and estimate."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from benchmark_continuous import reported_events, score

    truth = {"sources": [{"position_mm": [0, 0, 0]}, {"position_mm": [50, 0, 0]}],
             "bursts": [dict(source=0, onset=1.0, duration=0.2, snr=1.0),
                        dict(source=1, onset=3.0, duration=0.1, snr=2.0),
                        dict(source=0, onset=5.0, duration=0.3, snr=3.0)]}
    grid = np.array([[0.008, 0, 0], [0.05, 0.015, 0], [0.1, 0, 0]])  # m
    sources = [
        {"source_index": 0, "periods": [[1.22, 1.3, 5.0],    # 20 ms after the burst: found
                                        [5.36, 5.4, 5.0],    # 60 ms after: not found, false
                                        [8.0, 8.1, 5.0]]},   # no burst: false
        {"source_index": 1, "periods": [[3.0, 3.1, 5.0]]},   # 15 mm away: not found, false
        {"source_index": 2, "periods": [[1.0, 1.2, 5.0]]},   # 100 mm away: false
    ]
    events = [(grid[s["source_index"]] * 1e3, a, b) for s in sources for a, b, _ in s["periods"]]
    r = score(events, truth, tol_mm=10.0, tol_s=0.05, duration=10.0)
    assert (r["n_found"], r["n_bursts"], r["n_events"], r["n_false"]) == (1, 3, 5, 4)
    assert r["false_per_s"] == pytest.approx(0.4)
    relaxed = score(events, truth, tol_mm=20.0, tol_s=0.05, duration=10.0)
    assert (relaxed["n_found"], relaxed["n_false"]) == (2, 3)
    # Amended rule: events of reported sources at the source's position (MRI -> head).
    fwd = {"mri_head_t": mne.transforms.Transform("mri", "head", np.eye(4))}
    fwd["mri_head_t"]["trans"][:3, 3] = [0.001, 0, 0]  # 1 mm shift
    reported = [{"position_mm": [8.5, 0, 0], "periods": [[1.22, 1.3, 5.0], [5.36, 5.4, 5.0]],
                 "period_positions_mm": [[12.0, 0, 0], [0, 0, 0]]}]
    at_source = reported_events(reported, fwd, "source")
    np.testing.assert_allclose(at_source[0][0], [9.5, 0, 0])
    r = score(at_source, truth, tol_mm=10.0, tol_s=0.05, duration=10.0)
    assert (r["n_found"], r["n_false"]) == (1, 1)
    own = score(reported_events(reported, fwd, "event"), truth, 10.0, 0.05, 10.0)
    assert (own["n_found"], own["n_false"]) == (0, 2)  # 13 mm, then (1 mm) 60 ms late


def test_reported_sources_by_a_bem_dipole_fit(setup, raw_file, sample_paths, tmp_path):
    """With a head model the reported source is placed by a dipole fit on forward-model
    fields (here the one-layer BEM on the MEG channels, the data simulated with the 3-layer
    BEM on M/EEG); without one, position='dipole' names the fix."""
    raw, fwd, cov = setup
    bem = sample_paths["bem_meg"]
    if not bem.exists():
        pytest.skip("the sample subject's one-layer BEM is missing")
    res = _run(raw, fwd, cov, bem=bem, fname=tmp_path / "d.h5")
    top = res.summary()["reported_sources"][0]
    assert top["position_method"] == "dipole fit (BEM)"
    assert "MEG channels" in top["head_model"] and "1 layer" in top["head_model"]
    true_mm = res._mapper._problem.source_positions([40])[0][0] * 1e3  # MRI coordinates
    assert np.linalg.norm(np.subtract(top["position_mm"], true_mm)) < 4.0  # model error
    assert top["dipole_gof"] > 90
    np.testing.assert_allclose(top["subgrid_position_mm"], true_mm, atol=0.01)
    assert res.reported_sources(position="sub-grid")[0]["position_method"] == "sub-grid fit"
    plain = _run(raw, fwd, cov)
    with pytest.raises(InputError, match="needs a head model") as err:
        plain.reported_sources(position="dipole")
    assert "bem=" in err.value.fix
    again = plain.reported_sources(bem=bem)[0]  # given afterwards: the same fit
    assert again["position_mm"] == top["position_mm"]
    lazy = mne.io.read_raw_fif(raw_file, preload=False, verbose=False)
    back = read_continuous(tmp_path / "d.h5", fwd, cov, raw=lazy, bem=bem)  # read back
    assert back.reported_sources()[0]["position_mm"] == top["position_mm"]


def test_cli_continuous_bem_places_the_reported_sources(raw_file, sample_paths, sample_fwd_file,
                                                        tmp_path, capsys):
    """--bem with --continuous: summary.json's reported sources come from the dipole fit
    (--trans defaults to the forward's); a trans that disagrees with the forward: exit 2."""
    import json

    from meeg_inverse.cli import main

    bem = sample_paths["bem_meg"]
    if not bem.exists():
        pytest.skip("the sample subject's one-layer BEM is missing")
    base = ["localize", str(raw_file), "--continuous", "--noise-cov", str(sample_paths["cov"]),
            "--forward", str(sample_fwd_file), "-q", "--no-figures", "--bem", str(bem)]
    assert main(base + ["--out", str(tmp_path / "res")]) == 0
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    top = summary["reported_sources"][0]
    assert top["position_method"] == "dipole fit (BEM)" and "MEG" in top["head_model"]
    # The printed summary said "(clusters)" whatever placed them.
    printed = capsys.readouterr().out
    assert "reported source(s) (dipole fit (BEM))" in printed
    # the time printed is the whole command's (the dipole fits included), then the solving's
    whole, data, solving = re.search(r"; (\d+) s in all for (\d+) s of data \(localizing "
                                     r"(\d+) s\)", printed).groups()
    assert int(whole) >= int(solving) and int(data) > 0
    off = mne.read_trans(sample_paths["trans"])
    off["trans"][:3, 3] += [0.01, 0, 0]
    mne.write_trans(tmp_path / "off-trans.fif", off)
    assert main(base + ["--trans", str(tmp_path / "off-trans.fif"), "--out",
                        str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "differs from the one the forward" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists()


def test_cli_interrupted_during_the_dipole_fits_keeps_the_previous_result(
        raw_file, sample_paths, sample_fwd_file, tmp_path, capsys, monkeypatch):
    """Ctrl-C during the dipole fits (after every window, while the summary is made):
    exit 130, no partial folder, and the previous result of --overwrite left whole."""
    from meeg_inverse import dipole_positions
    from meeg_inverse.cli import main

    bem = sample_paths["bem_meg"]
    if not bem.exists():
        pytest.skip("the sample subject's one-layer BEM is missing")
    out = tmp_path / "res"
    out.mkdir()
    (out / "summary.json").write_text("previous")
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(dipole_positions, "dipole_fit_positions", interrupted)
    status = main(["localize", str(raw_file), "--continuous", "--noise-cov",
                   str(sample_paths["cov"]), "--forward", str(sample_fwd_file), "-q",
                   "--no-figures", "--bem", str(bem), "--out", str(out), "--overwrite"])
    assert calls and status == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no partial folder
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert (out / "summary.json").read_text() == "previous"


def test_result_of_a_lost_channel_type_reads_back(setup, tmp_path):
    """Localized with allow_missing_types (a MEG-only forward), the file reads back with
    the same forward: the operator is prepared again with the run's choice (it was
    refused: 'All EEG channels of the recording would be left out')."""
    raw, fwd, cov = setup
    meg_fwd = mne.pick_types_forward(fwd, meg=True, eeg=False)
    res = _run(raw.copy().crop(0, 1.5), meg_fwd, cov, chunk=100.0, fname=tmp_path / "m.h5",
               allow_missing_types=True)
    assert res.params["allow_missing_types"] is True
    back = read_continuous(tmp_path / "m.h5", meg_fwd, cov, raw.info)
    np.testing.assert_allclose(back.stc.data, res.stc.data)
