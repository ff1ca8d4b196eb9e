"""``meeg-inverse localize`` end to end on real recordings, and its bad-input handling."""

import json
from pathlib import Path

import mne
import numpy as np
import pytest

from meeg_inverse.cli import main


def _localize_args(sample_paths, fwd_file, out, *extra):
    return ["localize", str(sample_paths["evoked"]), "--condition", "Left Auditory",
            "--noise-cov", str(sample_paths["cov"]), "--forward", str(fwd_file),
            "--tmin", "0.05", "--tmax", "0.15", "--out", str(out), "--quiet", *extra]


def test_localize_left_auditory_writes_outputs_mne_reads(sample_paths, sample_fwd_file, tmp_path,
                                                         capsys):
    out = tmp_path / "result"
    status = main(_localize_args(sample_paths, sample_fwd_file, out, "--alpha", "0.3",
                                 "--subjects-dir", str(sample_paths["subjects_dir"]),
                                 "--no-figures", "--json"))
    assert status == 0
    printed = capsys.readouterr().out
    # --json prints summary.json as written (its notes, warnings and files included).
    assert printed == (out / "summary.json").read_text()
    summary = json.loads(printed)
    assert summary["n_active_sources"] == len(summary["sources"]) >= 1
    assert summary["solver"]["converged"]
    assert summary["condition"] == "Left Auditory"
    assert 0.0 < summary["explained_variance"] < 1.0
    # The file's averages carry no baseline correction: localize applies one.
    assert summary["baseline_applied"] == [None, 0]

    stc = mne.read_source_estimate(out / "sources", subject="sample")
    stc_h5 = mne.read_source_estimate(out / "sources-stc.h5")
    np.testing.assert_allclose(stc.data, stc_h5.data, rtol=1e-6)
    assert stc.data.shape[0] == summary["n_active_sources"]
    assert stc.tmin == pytest.approx(0.05, abs=2e-3)
    # Vertices are real vertices of the source space.
    for verts, src in zip(stc.vertices, mne.read_source_spaces(sample_paths["src"], verbose=False)):
        assert np.isin(verts, src["vertno"]).all()
    # Amplitudes in A·m: cortical evoked sources are nA·m to a few hundred nA·m.
    peak = np.abs(stc.data).max()
    assert 1e-10 < peak < 1e-6
    first = summary["sources"][0]
    assert first["peak_amplitude_nAm"] == pytest.approx(peak * 1e9, rel=1e-6)
    assert first["hemisphere"] in ("lh", "rh")
    assert 0.05 <= first["peak_time_s"] <= 0.15
    assert first["position_mni_mm"] is not None  # talairach.xfm of 'sample' is there
    # The MRI position is that of the source's vertex in the source space file.
    src = mne.read_source_spaces(sample_paths["src"], verbose=False)
    hemi = 0 if first["hemisphere"] == "lh" else 1
    np.testing.assert_allclose(first["position_mri_mm"], src[hemi]["rr"][first["vertex"]] * 1e3,
                               atol=0.01)
    # Every active source carries what the summary promises: position in head and MNI mm,
    # hemisphere, peak time, peak amplitude in nA·m and its own explained variance.
    head_mri_t = mne.transforms.invert_transform(mne.read_trans(sample_paths["trans"]))
    for record in summary["sources"]:
        assert record["hemisphere"] in ("lh", "rh")
        for key in ("position_head_mm", "position_mri_mm", "position_mni_mm"):
            assert len(record[key]) == 3 and np.isfinite(record[key]).all(), key
        np.testing.assert_allclose(
            record["position_head_mm"],
            mne.transforms.apply_trans(head_mri_t, np.array(record["position_mri_mm"]) / 1e3)
            * 1e3, atol=0.05)
        assert 0.05 - 2e-3 <= record["peak_time_s"] <= 0.15 + 2e-3
        assert record["peak_amplitude_nAm"] > 0
        assert np.isfinite(record["explained_variance"]) and record["explained_variance"] <= 1
    amplitudes = [r["peak_amplitude_nAm"] for r in summary["sources"]]
    assert amplitudes == sorted(amplitudes, reverse=True)  # strongest first


@pytest.mark.parametrize("extra, message", [
    (["--alpha", "1.5"], "alpha"),
    (["--alpha", "0"], "alpha"),
    (["--penalty", "nope"], "penalty"),
    (["--tmin", "3", "--tmax", "4"], "time window"),
])
def test_localize_bad_options_exit_2_without_output(sample_paths, sample_fwd_file, tmp_path,
                                                    capsys, extra, message):
    out = tmp_path / "result"
    status = main(_localize_args(sample_paths, sample_fwd_file, out, *extra))
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Fix:" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".result.partial*"))


def test_localize_bad_files_exit_2(sample_paths, sample_fwd_file, tmp_path, capsys):
    out = tmp_path / "result"
    assert main(_localize_args(sample_paths, sample_fwd_file, out)[:1] + [str(tmp_path / "missing-ave.fif"),
                "--out", str(out), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err

    garbage = tmp_path / "broken-ave.fif"
    garbage.write_bytes(b"\x00\x01not a fif file" * 100)
    assert main(["localize", str(garbage), "--out", str(out), "-q"]) == 2
    assert "Could not read the recording" in capsys.readouterr().err

    text = tmp_path / "notes_raw.fif"
    text.write_text("this is a text file with a .fif name\n")
    assert main(["localize", str(text), "--out", str(out), "-q"]) == 2
    assert "Could not read the recording" in capsys.readouterr().err

    bad_cov = tmp_path / "bad-cov.fif"
    bad_cov.write_text("nope")
    args = _localize_args(sample_paths, sample_fwd_file, out)
    args[args.index("--noise-cov") + 1] = str(bad_cov)
    assert main(args) == 2
    assert "noise covariance" in capsys.readouterr().err

    # A corrupted forward solution, and a text file named like one.
    for content in (b"\x00\x01\x02 corrupted" * 50, b"forward solution? no, a text file\n"):
        bad_fwd = tmp_path / "bad-fwd.fif"
        bad_fwd.write_bytes(content)
        assert main(_localize_args(sample_paths, bad_fwd, out)) == 2
        err = capsys.readouterr().err
        assert "forward solution" in err and str(bad_fwd) in err and "Fix:" in err, err

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(_localize_args(sample_paths, sample_fwd_file, blocker / "sub")) == 2
    assert "is a file" in capsys.readouterr().err
    assert not out.exists()


def test_forward_of_another_session_is_refused(sample_paths, sample_forward, tmp_path, capsys):
    moved = sample_forward.copy()
    with moved["info"]._unlock():
        moved["info"]["dev_head_t"] = moved["info"]["dev_head_t"].copy()
        moved["info"]["dev_head_t"]["trans"][:3, 3] += [0.0, 0.02, 0.01]
    fname = tmp_path / "other-fwd.fif"
    mne.write_forward_solution(fname, moved, verbose=False)
    out = tmp_path / "result"
    assert main(_localize_args(sample_paths, fname, out)) == 2
    assert "another subject or session" in capsys.readouterr().err
    assert not out.exists()


def test_raw_without_events_is_refused(sample_paths, tmp_path, capsys):
    raw = mne.io.read_raw_fif(sample_paths["raw"], verbose=False).pick(["meg"])
    raw.set_annotations(None)
    fname = tmp_path / "noevents_raw.fif"
    raw.save(fname, verbose=False)
    assert main(["localize", str(fname), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "no events" in capsys.readouterr().err


def test_evoked_without_noise_cov_is_refused(sample_paths, sample_fwd_file, tmp_path, capsys):
    assert main(["localize", str(sample_paths["evoked"]), "--forward", str(sample_fwd_file),
                 "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "--noise-cov" in capsys.readouterr().err


def test_view_opens_the_viewer_of_a_result(tmp_path, monkeypatch, capsys):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or True)
    (tmp_path / "viewer.html").write_text("<html></html>")
    assert main(["view", str(tmp_path)]) == 0
    assert opened == [(tmp_path / "viewer.html").resolve().as_uri()]
    assert main(["view", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["view", str(tmp_path), "--show"]) == 2  # no sources-stc.h5 / display
    # A file of the result (summary.json) opens its folder's viewer ...
    (tmp_path / "summary.json").write_text("{}")
    assert main(["view", str(tmp_path / "summary.json")]) == 0
    assert opened[-1] == (tmp_path / "viewer.html").resolve().as_uri()
    # ... any other file is refused, not handed to the browser.
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    capsys.readouterr()
    assert main(["view", str(other / "notes.txt")]) == 2
    assert "neither a result folder nor a viewer page" in capsys.readouterr().err
    assert len(opened) == 2


def test_localize_builds_the_forward_from_the_subject_anatomy(sample_paths, tmp_path):
    out = tmp_path / "anat"
    status = main(["localize", str(sample_paths["evoked"]), "--condition", "Left Auditory",
                   "--noise-cov", str(sample_paths["cov"]), "--subject", "sample",
                   "--subjects-dir", str(sample_paths["subjects_dir"]),
                   "--trans", str(sample_paths["trans"]), "--src", str(sample_paths["src"]),
                   "--bem", str(sample_paths["bem"]), "--tmin", "0.08", "--tmax", "0.12",
                   "--alpha", "0.5", "--out", str(out), "-q", "--no-figures"])
    assert status == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["subject"] == "sample" and summary["n_active_sources"] >= 1
    # mindist=5 mm drops sources next to the inner skull: fewer than the 516 in the file.
    assert 0 < summary["n_sources"] < 516


def test_fetch_lists_and_refuses_unknown_names(capsys):
    assert main(["fetch", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("sample", "somato", "fsaverage", "eeglab"):
        assert name in listed
    assert main(["fetch", "no-such-data"]) == 2
    assert "Unknown data set" in capsys.readouterr().err


def test_help_of_every_subcommand_has_examples(capsys):
    for command in ("localize", "demo", "view", "fetch", "benchmark"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "example" in capsys.readouterr().out


def test_localize_picks_alpha_by_sure_and_draws_everything(sample_paths, sample_fwd_file,
                                                            tmp_path):
    out = tmp_path / "sure"
    args = _localize_args(sample_paths, sample_fwd_file, out)
    args[args.index("--tmin") + 1], args[args.index("--tmax") + 1] = "0.08", "0.12"
    assert main(args + ["--alpha", "sure"]) == 0  # figures on
    summary = json.loads((out / "summary.json").read_text())
    selection = summary["alpha_selection"]
    assert selection["method"] == "sure-hypergradient" and not selection["empty"]
    assert selection["n_outer_iter"] >= 1
    assert 0 < summary["alpha_fraction_of_max"] < 1
    assert selection["criterion"] == pytest.approx(min(selection["path"]["criterion"]))
    for name in ("source_map.png", "time_courses.png", "fit_residual.png", "viewer.html",
                 "index.html", "lambda_curve.png"):
        assert (out / name).stat().st_size > 1000, name


def test_default_localize_names_sources_with_a_confidence(sample_paths, sample_fwd_file,
                                                          tmp_path):
    """Issue 14: the default rule, each source named and with a confidence, where users look."""
    out = tmp_path / "default"
    args = _localize_args(sample_paths, sample_fwd_file, out)
    args += ["--subject", "sample", "--subjects-dir", str(sample_paths["subjects_dir"])]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alpha_selection"]["method"] == "bic" and summary["penalty"] == "l05"
    assert 1 <= summary["n_active_sources"] <= 10
    assert summary["noise"]["source"] == "baseline"
    assert isinstance(summary["warnings"], list)
    for rec in summary["sources"]:
        assert rec["label"] and rec["label"].endswith(("-lh", "-rh"))
        assert 0.0 <= rec["confidence"] <= 1.0
    # the result page is an mne.Report (issue 19): its HTML, and the HDF5 MNE reads back
    page = (out / "index.html").read_text()
    assert "Sources" in page and summary["sources"][0]["label"] in page
    assert "Reported sources" in page and "Position MNI" in page
    report = mne.open_report(out / "report.h5")
    assert {"Sources", "Interactive 3D viewer", "Provenance"} <= {c.name for c in
                                                                    report._content}
    viewer = (out / "viewer.html").read_text()
    assert summary["sources"][0]["label"] in viewer
    # The map is drawn at the peak of the strongest reported source, not at the grid's
    # largest amplitude (on 'Left Auditory' a window edge), and its caption says so.
    from meeg_inverse.viz._utils import source_amplitudes

    strongest = summary["reported_sources"][0]
    stc = mne.read_source_estimate(out / "sources-stc.h5")
    t_map = stc.times[np.argmin(np.abs(stc.times - strongest["peak_time_s"]))]
    said = f"t = {1e3 * t_map:.1f} ms, peak of source 1 ({strongest['label']})"
    grid_peak = stc.times[np.argmax(source_amplitudes(stc).max(axis=0))]
    assert abs(grid_peak - t_map) > 0.01
    assert f"Source map at {said}" in page and f"opens at {said}" in viewer
    # one entry per reported source (clusters of grid sources), each with its members
    reported = summary["reported_sources"]
    assert 1 <= len(reported) <= summary["n_active_sources"]
    assert sorted(m for r in reported for m in r["members"]) == sorted(
        rec["source_index"] for rec in summary["sources"])
    assert all(0.0 <= r["confidence"] <= 1.0 and len(r["centroid_mni_mm"]) == 3
               for r in reported)
    # the reported position: a dipole fit with the BEM this surface forward was computed
    # with (it names it; amendment 7), within the cluster's reach of its centroid
    assert all(r["position_method"] == "dipole fit (BEM)" for r in reported)
    assert summary["position_model"].startswith(
        f"dipole fits with {Path(sample_paths['bem']).name} (3 layer(s))")
    assert all(np.linalg.norm(np.subtract(r["position_head_mm"], r["centroid_head_mm"])) < 40
               for r in reported)


def test_demo_runs_end_to_end(tmp_path, capsys):
    """`make demo`'s job (issue 14's must-show): λ inside the search, both simulated
    sources found, no extra confident source; its report (diagonal covariance) is written."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["alpha_selection"]["at_search_bound"]
    assert 0.01 < summary["alpha_fraction_of_max"] < 0.95
    assert all(err <= 10 for err in summary["demo"]["localization_error_mm"].values())
    confident = [r for r in summary["reported_sources"] if r["confidence"] >= 0.5]
    assert len(confident) <= 2
    assert (out / "index.html").is_file() and (out / "report.h5").is_file()


def test_unwritable_output_folder_is_refused_before_any_work(sample_paths, sample_fwd_file,
                                                             tmp_path, monkeypatch, capsys):
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path)
                        else real_access(path, mode))
    assert main(_localize_args(sample_paths, sample_fwd_file, tmp_path / "out")) == 2
    assert "cannot be written" in capsys.readouterr().err


def _bad_data_case(case, sample_paths, sample_fwd_file, tmp_path):
    """(recording, noise cov, extra options, expected message) for one kind of bad data."""
    evoked = mne.read_evokeds(sample_paths["evoked"], condition="Left Auditory",
                              baseline=(None, 0), verbose=False)
    recording, cov, extra = sample_paths["evoked"], sample_paths["cov"], []
    if case == "NaN/Inf data":
        evoked.data[10, 200] = np.nan
        recording, message = tmp_path / "nan-ave.fif", "NaN"
        mne.write_evokeds(recording, evoked, verbose=False)
    elif case == "channels not in the forward":
        info = mne.create_info([f"X{k:03d}" for k in range(306)], evoked.info["sfreq"], "mag")
        renamed = mne.EvokedArray(evoked.data[:306], info, tmin=evoked.times[0],
                                  comment="Left Auditory", nave=evoked.nave)
        renamed.apply_baseline((None, 0), verbose=False)
        recording, message = tmp_path / "renamed-ave.fif", "forward solution"
        mne.write_evokeds(recording, renamed, verbose=False)
    elif case == "singular covariance":
        zero = mne.read_cov(sample_paths["cov"], verbose=False)
        zero["data"][:, :] = 0.0
        cov, message = tmp_path / "zero-cov.fif", "singular"
        mne.write_cov(cov, zero, verbose=False)
    else:  # a forward solution of another subject
        extra, message = ["--subject", "bert"], "computed for subject 'sample'"
    args = ["localize", str(recording), "--condition", "Left Auditory", "--noise-cov", str(cov),
            "--forward", str(sample_fwd_file), "--alpha", "0.3", "--tmin", "0.05",
            "--tmax", "0.15", "-q", "--no-figures", *extra]
    return args, message


@pytest.mark.parametrize("case", ["NaN/Inf data", "channels not in the forward",
                                  "singular covariance", "forward of another subject"])
def test_localize_bad_data_exit_2_without_output(sample_paths, sample_fwd_file, tmp_path, capsys,
                                                 case):
    args, message = _bad_data_case(case, sample_paths, sample_fwd_file, tmp_path)
    out = tmp_path / "result"
    assert main(args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Fix:" in err and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".result")]


def test_unexpected_failure_exits_1_with_a_plain_message(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("meeg_inverse.demo.run_demo", broken)
    assert main(["demo", "--out", str(tmp_path / "o"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "failed: RuntimeError: simulated bug" in err and "--verbose" in err
    assert "Traceback" not in err
    assert main(["demo", "--out", str(tmp_path / "o"), "-q", "--verbose"]) == 1
    assert "Traceback" in capsys.readouterr().err  # --verbose shows where it failed


def test_progress_on_stderr_json_alone_on_stdout_and_quiet(sample_paths, sample_fwd_file,
                                                           tmp_path, capsys):
    args = ["localize", str(sample_paths["evoked"]), "--condition", "Left Auditory",
            "--noise-cov", str(sample_paths["cov"]), "--forward", str(sample_fwd_file),
            "--tmin", "0.08", "--tmax", "0.12", "--alpha", "0.5", "--no-figures", "--json"]
    assert main(args + ["--out", str(tmp_path / "loud")]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout is the JSON summary and nothing else
    assert summary["n_active_sources"] >= 1 and "files" in summary
    steps = [line for line in captured.err.splitlines() if line.startswith("[meeg-inverse]")]
    for step in ("reading", "noise covariance", "forward model", "whitening", "solving",
                 "writing", "condition 'Left Auditory', 3 trial(s)",
                 "time window 0.080 to 0.120 s"):
        assert any(step in line for line in steps), (step, captured.err)
    assert main(args + ["--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["n_active_sources"] >= 1


def test_search_progress_bar_only_on_a_terminal(monkeypatch):
    """A log file would get every redraw of the λ search's bar as a line of its own."""
    import io

    from meeg_inverse.pipeline import _search_progress
    from meeg_inverse.progress import TERMINAL_ENV, Progress

    for inherited, drawn in (("0", False), ("1", True)):
        monkeypatch.setenv(TERMINAL_ENV, inherited)  # as the launcher sets it for a stage
        stream = io.StringIO()
        show, bar = _search_progress(Progress(stream=stream), "bic")
        show(4, 0.5, 10.0)
        show(9, 0.4, 9.0)
        bar.close()
        text = stream.getvalue()
        assert ("lambda search (BIC)" in text) is drawn
        assert not drawn or "9 solve" in text  # solves, as the summary counts them


def test_localize_debias_and_rank_options(sample_paths, sample_fwd_file, tmp_path):
    # Debiasing (the default, as mixed_norm) only scales the active sources up.
    common = ("--alpha", "0.5", "--no-figures", "--quiet")
    assert main(_localize_args(sample_paths, sample_fwd_file, tmp_path / "a", *common)) == 0
    assert main(_localize_args(sample_paths, sample_fwd_file, tmp_path / "b", *common,
                               "--no-debias", "--rank", "meg=303,eeg=59")) == 0
    debiased = json.loads((tmp_path / "a" / "summary.json").read_text())
    shrunk = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert shrunk["noise_cov_rank"] == 362
    def key(s):
        return s["hemisphere"], s["vertex"]

    peak = {key(s): s["peak_amplitude_nAm"] for s in debiased["sources"]}
    assert set(peak) == {key(s) for s in shrunk["sources"]}
    assert all(peak[key(s)] >= s["peak_amplitude_nAm"] * (1 - 1e-9) for s in shrunk["sources"])
    assert max(peak.values()) > max(s["peak_amplitude_nAm"] for s in shrunk["sources"])


@pytest.mark.parametrize("mode, extra, message, fix", [
    # --forward: the file's own transform, BEM and source space are used. --trans and
    # --bem were read by nothing (even a missing file ran to the end, exit 0).
    ([], ["--forward", "f-fwd.fif", "--trans", "t-trans.fif"], "--trans would have no effect",
     "drop --trans"),
    ([], ["--forward", "f-fwd.fif", "--bem", "b-bem-sol.fif", "--src", "s-src.fif"],
     "--src would have no effect", "drop --src"),
    ([], ["--forward", "f-fwd.fif", "--spacing", "oct5"], "--spacing would have no effect",
     "drop --spacing"),
    # The template head (no --forward, no --subject) uses its own transform and BEM.
    ([], ["--trans", "t-trans.fif", "--src", "s-src.fif"],
     "--trans and --src would have no effect here: no --forward or --subject", "--subject"),
    # --continuous: --trans counts only as the transform of --bem's dipole fits.
    (["--continuous"], ["--forward", "f-fwd.fif", "--trans", "t-trans.fif"],
     "--trans would have no effect", "add --bem"),
    (["--continuous"], ["--trans", "t-trans.fif"], "--trans would have no effect", "add --bem"),
    (["--continuous"], ["--forward", "f-fwd.fif", "--bem", "b-bem-sol.fif", "--src", "s-src.fif"],
     "--src would have no effect", "drop --src"),
    # Building a subject's forward needs its folder and transform: said before reading
    # the recording (it was said after reading it).
    ([], ["--subject", "s"], "needs the subjects folder", "give --subjects-dir and --trans"),
    ([], ["--subject", "s", "--trans", "t-trans.fif"], "needs the subjects folder",
     "give --subjects-dir and --trans"),
    (["--continuous"], ["--subject", "s", "--subjects-dir", "d"], "needs the subjects folder",
     "give --subjects-dir and --trans"),
])
def test_head_model_options_without_effect_are_refused(tmp_path, capsys, mode, extra, message,
                                                       fix):
    out = tmp_path / "result"
    # Refused before any file is read: none of these files exists.
    status = main(["localize", str(tmp_path / "rec_raw.fif"), "--out", str(out), "-q",
                   "--noise-cov", "c-cov.fif"] + mode + extra)
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert fix in err.split("Fix:")[1]
    assert not out.exists()


def test_localize_refuses_a_bem_that_cannot_model_the_eeg(sample_paths, sample_fwd_file,
                                                           tmp_path, capsys):
    """--bem with --forward places the reported sources (amendment 7); a one-layer BEM
    cannot model the recording's EEG: one message, exit 2, no output folder."""
    one_layer = sample_paths.get("bem_meg")
    if one_layer is None or not one_layer.exists():
        pytest.skip("no one-layer sample BEM in the data")
    out = tmp_path / "one-layer"
    assert main(_localize_args(sample_paths, sample_fwd_file, out)
                + ["--bem", str(one_layer)]) == 2
    err = capsys.readouterr().err
    assert "does not model every channel" in err and "Traceback" not in err
    assert not out.exists()


def test_head_model_options_that_count_are_accepted():
    from meeg_inverse.errors import InputError
    from meeg_inverse._choices import check_forward_spec
    from meeg_inverse.pipeline import ForwardSpec

    # Building a subject's forward uses all of them; --bem fits dipoles with --trans
    # (or the forward's); the template takes a --spacing.
    check_forward_spec(ForwardSpec(subject="s", subjects_dir="d", trans="t", bem="b",
                                   src="s", spacing="oct5"))
    check_forward_spec(ForwardSpec(forward="f", bem="b", trans="t"), continuous=True)
    check_forward_spec(ForwardSpec(bem="b", trans="t", spacing="ico4"), continuous=True)
    check_forward_spec(ForwardSpec(spacing="ico4"))
    # Averages too (amendment 7): --bem places the reported sources by dipole fits.
    check_forward_spec(ForwardSpec(forward="f", bem="b"))
    check_forward_spec(ForwardSpec(bem="b", trans="t"))
    with pytest.raises(InputError, match="--src would have no effect"):
        check_forward_spec(ForwardSpec(forward="f", src="s"))


def test_two_averages_of_one_name_are_refused(sample_paths, tmp_path, capsys):
    """--condition would pick one of them (the last) without a word."""
    import mne

    evokeds = mne.read_evokeds(sample_paths["evoked"], condition=[0, 1], verbose=False)
    for evoked in evokeds:
        evoked.comment = "A"
    fname = tmp_path / "dup-ave.fif"
    mne.write_evokeds(fname, evokeds, verbose=False)
    out = tmp_path / "out"
    assert main(["localize", str(fname), "--condition", "A", "--noise-cov",
                 str(sample_paths["cov"]), "--alpha", "0.5", "--no-figures", "--out",
                 str(out), "-q"]) == 2
    assert "Two averages of the file are named 'A'" in capsys.readouterr().err
    assert not out.exists()


def test_console_names_how_reported_sources_were_placed(capsys):
    """The console's header says how the reported sources were placed (their
    position_method): 34 centroids were announced as 'each placed by a fit'; and past
    the 10 listed it says where the others are."""
    from types import SimpleNamespace

    from meeg_inverse.cli import _print_result

    def rec(k, method):
        return {"source": k, "hemisphere": "lh", "label": None, "position_mni_mm": None,
                "position_head_mm": [-40.0, 10.0, 60.0], "position_method": method,
                "peak_amplitude_nAm": 100.0 - k, "peak_time_s": 0.1, "confidence": 0.5}

    def printed(methods):
        summary = {"sources": [], "explained_variance": 0.5, "field_cancellation": 1.0,
                   "warnings": [], "reported_sources": [rec(k, m) for k, m in
                                                        enumerate(methods, 1)]}
        _print_result(summary, {"summary": Path("out/summary.json")},
                      SimpleNamespace(json=False))
        return capsys.readouterr().out

    out = printed(["centroid"] * 12)
    assert "12 reported source(s) (neighbouring grid sources grouped, each at its grid " \
           "sources' centroid;" in out and "placed by a fit" not in out
    assert "... and 2 weaker ones: summary.json (reported_sources), index.html" in out
    assert out.count("head (-40, 10, 60) mm") == 10
    out = printed(["dipole fit (BEM)", "centroid"])
    assert "1 placed by a fit, 1 at their centroid" in out and "weaker ones" not in out
    out = printed(["sub-grid fit"])
    assert "each placed by a fit" in out


def test_one_continuous_only_option_is_named_in_the_singular(tmp_path, capsys):
    """'--window only applies with --continuous' (was 'only apply'), exit 2, nothing
    written."""
    rec = tmp_path / "x-ave.fif"
    rec.write_bytes(b"not read")
    out = tmp_path / "out"
    assert main(["localize", str(rec), "--window", "0.1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--window only applies with --continuous" in err and "Traceback" not in err
    assert "drop it to localize an average" in err
    assert not out.exists()
    assert main(["localize", str(rec), "--window", "0.1", "--step", "0.05",
                 "--out", str(out)]) == 2
    assert "--window, --step only apply with --continuous" in capsys.readouterr().err
