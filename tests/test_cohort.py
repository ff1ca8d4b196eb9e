"""Cohorts: a BIDS dataset (written here with mne-bids) localized on a Dask cluster.

The dataset (tests/_cohort_data.py): EEGLAB's real recording as 2 subjects x 2 runs on
the template head, 2 subjects simulated on the real sample forward with known
sources, and one subject whose data file is cut short. The runs share one serial
reference run (``workers=0``, no Dask) that the Dask runs are compared with.
"""

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

mne = pytest.importorskip("mne")
pytest.importorskip("mne_bids")
pytest.importorskip("distributed")

from _cohort_data import FORWARD_PATTERN, TASK, write_dataset  # noqa: E402

from meeg_inverse.cohort import CohortOptions, plan_cohort, run_cohort  # noqa: E402

N_TASKS = 6  # 2 EEG subjects x 2 runs + 2 simulated subjects x 1 run
CONDITIONS = ["square", "tone"]


def _options(eeglab_dir, **kw):
    base = dict(forward=FORWARD_PATTERN, montage=str(eeglab_dir / "test_chans.locs"),
                montage_match="order", spacing="ico3", tmax=0.3, confidence=3, figures=False)
    base.update(kw)
    return CohortOptions(**base)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, eeglab_dir, sample_paths, sample_forward, sample_cov):
    root = tmp_path_factory.mktemp("bids") / "ds"
    evoked = mne.read_evokeds(sample_paths["evoked"], condition="Left Auditory",
                              baseline=(None, 0), verbose=False)
    fwd_file = tmp_path_factory.mktemp("fwd") / "sample-fwd.fif"
    mne.write_forward_solution(fwd_file, sample_forward, verbose=False)
    known = write_dataset(root, eeglab_dir=eeglab_dir, sample_paths=sample_paths,
                          forward_file=fwd_file, evoked=evoked, noise_cov=sample_cov)
    return root, known


@pytest.fixture(scope="module")
def serial(dataset, eeglab_dir, tmp_path_factory):
    """The reference: every task in this process, one after the other (no Dask)."""
    root, _ = dataset
    out = tmp_path_factory.mktemp("serial") / "meeg-inverse"
    result = run_cohort(root, TASK, conditions=CONDITIONS, options=_options(eeglab_dir),
                        workers=0, out=out, progress=False)
    return result


def _stcs(out):
    found = {}
    for f in sorted(Path(out).glob("sub-*/*_desc-*/sources-stc.h5")):
        found[f.parent.name] = mne.read_source_estimate(f)
    return found


def _assert_same_results(a, b):
    sa, sb = _stcs(a), _stcs(b)
    assert sorted(sa) == sorted(sb) and len(sa) == N_TASKS
    for name in sa:
        for va, vb in zip(sa[name].vertices, sb[name].vertices):
            np.testing.assert_array_equal(va, vb, err_msg=name)
        np.testing.assert_allclose(sa[name].data, sb[name].data, rtol=1e-6,
                                   atol=1e-6 * np.abs(sa[name].data).max(), err_msg=name)


def _no_partial_output(out):
    """No staging folder, temporary file or lock left; every task folder complete."""
    leftovers = [p for p in Path(out).rglob("*") if p.name.startswith((".meeg-inverse-", ".tmp"))]
    assert leftovers == [], leftovers
    for folder in Path(out).glob("sub-*/*_desc-*"):
        names = {p.name for p in folder.iterdir()}
        assert {"summary.json", "sources-stc.h5"} <= names, (folder, names)


def test_bids_layout_and_failures_recorded(serial, dataset):
    root, _ = dataset
    out = serial.out_dir
    assert serial.counts == {"done": N_TASKS, "skipped": 0, "failed": 1}
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "meeg-inverse"
    names = sorted(p.name for p in out.glob("sub-*/*_desc-*"))
    assert names == ["sub-eeg01_task-cohort_run-1_desc-square",
                     "sub-eeg01_task-cohort_run-2_desc-square",
                     "sub-eeg02_task-cohort_run-1_desc-square",
                     "sub-eeg02_task-cohort_run-2_desc-square",
                     "sub-sim01_task-cohort_run-1_desc-tone",
                     "sub-sim02_task-cohort_run-1_desc-tone"]
    # one forward and one operator per subject, reused by its runs
    assert len(list(out.glob("sub-*/*_inv.h5"))) == 4
    summary = json.loads((out / "sub-eeg01" / names[0] / "summary.json").read_text())
    assert summary["cohort"]["operator"].endswith("sub-eeg01_task-cohort_inv.h5")
    assert summary["subject"] == "fsaverage"  # the template head: no MRI
    sim = json.loads((out / "sub-sim01" / names[4] / "summary.json").read_text())
    assert sim["cohort"]["anatomy"] == "file"
    # the broken subject is recorded with its message; the others completed
    failed = [t for t in serial.tasks if t["status"] == "failed"]
    assert [t["subject"] for t in failed] == ["bad01"]
    assert "Incorrect number of samples" in failed[0]["message"]
    tasks_tsv = (out / "group" / f"task-{TASK}_tasks.tsv").read_text()
    assert "bad01" in tasks_tsv and "Incorrect number of samples" in tasks_tsv
    _no_partial_output(out)


def test_group_table_finds_the_simulated_sources(serial, dataset):
    _, known = dataset
    table = (serial.out_dir / "group" / f"task-{TASK}_sources.tsv").read_text().splitlines()
    header = table[0].split("\t")
    assert header[:10] == ["subject", "session", "run", "condition", "x_mni_mm", "y_mni_mm",
                           "z_mni_mm", "hemisphere", "label", "amplitude_nAm"]
    assert "confidence" in header and "cluster" in header
    rows = [dict(zip(header, line.split("\t"))) for line in table[1:]]
    assert {r["subject"] for r in rows} >= {"eeg01", "eeg02", "sim01", "sim02"}
    for subject, positions in known.items():
        mine = np.array([[float(r[c]) for c in ("x_mni_mm", "y_mni_mm", "z_mni_mm")]
                         for r in rows if r["subject"] == subject])
        for pos in positions:
            dist = np.linalg.norm(mine - pos, axis=1).min()
            assert dist <= 10.0, (subject, pos, dist)
        # the hemisphere and label columns are filled
        sub_rows = [r for r in rows if r["subject"] == subject]
        assert all(r["hemisphere"] in ("lh", "rh") and r["label"] for r in sub_rows)
    assert (serial.out_dir / "group" / f"task-{TASK}_sources.png").stat().st_size > 10_000


def test_two_workers_equal_serial_then_rerun_does_nothing(serial, dataset, eeglab_dir,
                                                           tmp_path, capsys):
    root, _ = dataset
    out = tmp_path / "meeg-inverse"
    result = run_cohort(root, TASK, conditions=CONDITIONS, options=_options(eeglab_dir),
                        workers=2, out=out, progress=True)
    assert result.counts == serial.counts
    _assert_same_results(serial.out_dir, out)
    assert "Dask: 2 worker(s)" in capsys.readouterr().err
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    # a rerun does nothing and says so
    again = run_cohort(root, TASK, conditions=CONDITIONS, options=_options(eeglab_dir),
                       workers=2, out=out, progress=True)
    err = capsys.readouterr().err
    assert again.counts == {"done": 0, "skipped": N_TASKS, "failed": 1}
    assert "nothing to do" in err and "group summary up to date" in err
    assert again.operators == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes


def test_changed_option_reruns_only_what_it_affects(serial, dataset, eeglab_dir, tmp_path):
    root, _ = dataset
    out = tmp_path / "meeg-inverse"
    shutil.copytree(serial.out_dir, out, symlinks=True)
    forwards = {p: p.stat().st_mtime_ns for p in out.glob("sub-*/*_fwd.fif")}
    operators = {p: p.stat().st_mtime_ns for p in out.glob("sub-*/*_inv.h5")}
    # 1. a solver option: every localization again, forwards and operators reused
    res = run_cohort(root, TASK, conditions=CONDITIONS, workers=0, out=out, progress=False,
                     options=_options(eeglab_dir, alpha=0.4))
    assert res.counts["done"] == N_TASKS
    assert sorted(o["status"] for o in res.operators) == ["failed"] + ["reused"] * 4
    assert {p: p.stat().st_mtime_ns for p in out.glob("sub-*/*_inv.h5")} == operators
    # 2. an operator option (depth): operators again, forwards reused (the subjects'
    # forward files: no --spacing, which only a built forward uses)
    res = run_cohort(root, TASK, conditions=CONDITIONS, workers=0, out=out, progress=False,
                     subjects=["sim01", "sim02"], options=_options(eeglab_dir, alpha=0.4,
                                                                   depth=0.9, spacing=None))
    assert res.counts == {"done": 2, "skipped": 0, "failed": 0}
    assert sorted(o["status"] for o in res.operators) == ["built", "built"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("sub-*/*_fwd.fif")} == forwards
    # 3. one subject's recording changed: only its tasks (and operator) again
    events = root / "sub-eeg02" / "eeg" / f"sub-eeg02_task-{TASK}_run-2_events.tsv"
    os.utime(events, ns=(time.time_ns(), time.time_ns()))
    res = run_cohort(root, TASK, conditions=CONDITIONS, workers=0, out=out, progress=False,
                     subjects=["eeg01", "eeg02"], options=_options(eeglab_dir, alpha=0.4))
    status = {t["task"]: t["status"] for t in res.tasks}
    assert status == {"sub-eeg01_task-cohort_run-1_desc-square": "skipped",
                      "sub-eeg01_task-cohort_run-2_desc-square": "skipped",
                      "sub-eeg02_task-cohort_run-1_desc-square": "done",
                      "sub-eeg02_task-cohort_run-2_desc-square": "done"}
    assert [o["status"] for o in res.operators] == ["built"]
    # 4. --force redoes everything asked for
    res = run_cohort(root, TASK, conditions=["tone"], workers=0, out=out, progress=False,
                     subjects=["sim01"], options=_options(eeglab_dir, alpha=0.4, depth=0.9,
                                                          spacing=None), force=True)
    assert res.counts == {"done": 1, "skipped": 0, "failed": 0}


@pytest.mark.slow
def test_killed_worker_still_completes_every_task(serial, dataset, eeglab_dir, tmp_path):
    """A worker process SIGKILLed mid-task: Dask reruns its tasks; no duplicate, no partial output."""
    from distributed import Client, LocalCluster

    root, _ = dataset
    out = tmp_path / "meeg-inverse"
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=50)
    client = Client(cluster)
    holder = {}

    def run():
        holder["result"] = run_cohort(root, TASK, conditions=CONDITIONS, client=client,
                                      options=_options(eeglab_dir), out=out, progress=False)

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and thread.is_alive():
        busy = {w: keys for w, keys in client.processing().items()
                if any(str(k).startswith("localize-") for k in keys)}
        if busy and list(out.glob("sub-*/*_desc-*/summary.json")):
            worker = sorted(busy)[0]
            pid = client.run(os.getpid, workers=[worker])[worker]
            os.kill(pid, signal.SIGKILL)  # the worker dies in the middle of a localization
            killed = pid
        time.sleep(0.2)
    thread.join(600)
    client.close()
    cluster.close()
    assert killed is not None, "no worker was killed: the run ended first"
    result = holder["result"]
    assert result.counts == {"done": N_TASKS, "skipped": 0, "failed": 1}, result.tasks
    # every task once, complete, and equal to the serial run
    assert len({t["task"] for t in result.tasks}) == len(result.tasks)
    _no_partial_output(out)
    _assert_same_results(serial.out_dir, out)


def test_plan_errors_are_input_errors(dataset, eeglab_dir, tmp_path):
    from meeg_inverse.errors import InputError

    root, _ = dataset
    with pytest.raises(InputError, match="no task 'nope'"):
        plan_cohort(root, "nope")
    with pytest.raises(InputError, match="not in the dataset"):
        plan_cohort(root, TASK, subjects=["zz99"])
    with pytest.raises(InputError, match="not a BIDS dataset"):
        plan_cohort(tmp_path, TASK)
    # the simulated subjects have forward files: a spacing would be used by none
    with pytest.raises(InputError, match="--spacing ico3 would have no effect"):
        plan_cohort(root, TASK, subjects=["sim01", "sim02"], options=_options(eeglab_dir))
    plan_cohort(root, TASK, subjects=["sim01", "sim02"], options=_options(eeglab_dir,
                                                                           spacing=None))
    _, tasks, problems = plan_cohort(root, TASK, conditions=["rt"],
                                     options=_options(eeglab_dir))
    # the simulated runs have no 'rt' events: recorded, not localized
    assert {t.subject for t in tasks} == {"eeg01", "eeg02", "bad01"}
    assert {p["subject"] for p in problems} == {"sim01", "sim02"}
    assert all("none of the conditions" in p["message"] for p in problems)


def test_cli_cohort(dataset, tmp_path, capsys):
    from meeg_inverse.cli import main

    root, _ = dataset
    assert main(["cohort", str(root), "--task", "nope"]) == 2
    assert "no task 'nope'" in capsys.readouterr().err
    assert main(["cohort", str(root), "--task", TASK, "--workers", "-1"]) == 2
    # no scheduler at the address: one message, exit 2, nothing run
    assert main(["cohort", str(root), "--task", TASK, "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(tmp_path / "none"), "-q"]) == 2
    assert "No Dask scheduler answers" in capsys.readouterr().err
    status = main(["cohort", str(root), "--task", TASK, "--subjects", "sim01",
                   "--forward", FORWARD_PATTERN, "--workers", "0", "--tmax", "0.3",
                   "--confidence", "0", "--no-figures", "--out", str(tmp_path / "d"), "-q",
                   "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    out = json.loads(captured.out[captured.out.index("{"):])
    assert out["counts"] == {"done": 1, "skipped": 0, "failed": 0}


# ------------------------------------------------------------------ reports
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--enable-logging=stderr", "--v=0", "--window-size=1280,900"]


def _console_errors(path, tmp_path):
    """Console messages of a page loaded in headless Chromium, minus WebGL performance notes."""
    import subprocess

    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
    if exe is None:
        pytest.skip("Chromium not installed: run scripts/install_system_deps.sh")
    res = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", Path(path).resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    # SwiftShader reports read-backs as "GL Driver Message (..., Performance, ...)"
    errors = [line for line in console if "Performance" not in line]
    return errors, res.stdout


@pytest.mark.slow
def test_reports_open_in_chromium_and_mne(dataset, eeglab_dir, tmp_path):
    root, _ = dataset
    out = tmp_path / "meeg-inverse"
    result = run_cohort(root, TASK, conditions=CONDITIONS, subjects=["eeg01", "sim01"],
                        options=_options(eeglab_dir, figures=True), workers=0, out=out,
                        progress=False)
    assert result.counts["done"] == 3
    page = out / "sub-sim01" / "sub-sim01_task-cohort_run-1_desc-tone" / "index.html"
    errors, dom = _console_errors(page, tmp_path)
    assert errors == []
    assert "<iframe" in dom and "srcdoc" in dom  # the viewer, embedded
    assert "superiortemporal" in dom or "MNI" in dom  # the sources table
    report = mne.open_report(page.with_name("report.h5"))
    titles = [c.name for c in report._content] + [c.section for c in report._content]
    for wanted in ("Sources", "Interactive 3D viewer", "Provenance",
                   "Inputs: evoked and noise covariance", "Input: forward solution"):
        assert wanted in titles, titles
    assert any("λ curve" in t or "criterion" in t for t in titles), titles
    group = out / "group" / "index.html"
    errors, dom = _console_errors(group, tmp_path)
    assert errors == []
    links = re.findall(r'href="(\.\./sub-[^"]+/index\.html)"', dom)
    assert len(links) == 3
    assert all((group.parent / link).is_file() for link in links)
    assert mne.open_report(group.with_name("report.h5")).title.startswith("meeg-inverse cohort")


def test_group_table_rows_are_the_reported_sources(tmp_path):
    """The group table lists the reported sources (what each localization's console line,
    summary and report name), not the grid sources they group. Found on EEGLAB's
    recording as a 2-subject BIDS dataset (newuser-21): 4 grid sources per subject in the
    table where the summaries reported 3 (two parsopercularis grid sources are one source),
    and the table's isthmus cingulate source was the grid vertex's (MNI -1, -40, 7; 148
    nA·m at 406 ms), not the reported one (3, -44, 3; 172 nA·m at 398 ms)."""
    from meeg_inverse.group import source_rows

    def grid(index, hemi, mni, nam, t):
        return {"source": index, "hemisphere": hemi, "position_mni_mm": mni,
                "peak_amplitude_nAm": nam, "peak_time_s": t, "label": "x", "confidence": 0.0}

    summary = {
        "sources": [grid(1, "lh", [-0.96, -40.05, 6.57], 148.141, 0.40625),
                    grid(2, "lh", [-40.03, 13.19, 7.31], 62.48, 0.42188),
                    grid(3, "lh", [-53.88, 21.51, 16.59], 30.338, 0.42188)],
        "reported_sources": [
            {"source": 1, "hemisphere": "lh", "label": "isthmuscingulate-lh",
             "position_mni_mm": [3.04, -44.05, 2.57], "peak_amplitude_nAm": 171.712,
             "peak_time_s": 0.39844, "confidence": 0.0, "members": [2420]},
            {"source": 2, "hemisphere": "lh", "label": "parsopercularis-lh",
             "position_mni_mm": [-45.0, 15.0, 10.0], "peak_amplitude_nAm": 70.0,
             "peak_time_s": 0.42188, "confidence": 0.1, "members": [1893, 120]}]}
    folder = tmp_path / "sub-01_task-T_run-1_desc-square"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    task = {"task": folder.name, "subject": "01", "session": None, "run": "1",
            "condition": "square", "status": "done", "folder": str(folder)}
    rows = source_rows([task])
    assert len(rows) == 2
    assert [r["x_mni_mm"] for r in rows] == [3.04, -45.0]
    assert [r["amplitude_nAm"] for r in rows] == [171.712, 70.0]
    assert [r["peak_time_s"] for r in rows] == [0.39844, 0.42188]
    assert [r["label"] for r in rows] == ["isthmuscingulate-lh", "parsopercularis-lh"]
    # a summary written before reported sources existed: its grid sources
    del summary["reported_sources"]
    (folder / "summary.json").write_text(json.dumps(summary))
    assert [r["amplitude_nAm"] for r in source_rows([task])] == [148.141, 62.48, 30.338]


def test_noise_covariance_is_the_single_runs(eeglab_dir, tmp_path):
    """The session's noise covariance pools the localized condition's baselines, as the
    single run of that condition does (not every event's: EEGLAB's 'rt' button presses
    follow the squares; pooling their 74 baselines changed the covariance by 33 %)."""
    import mne_bids

    from meeg_inverse.pipeline import load_data, load_noise_cov

    root = tmp_path / "ds"
    raw = mne.io.read_raw_eeglab(eeglab_dir / "test_raw.set", verbose=False)
    bp = mne_bids.BIDSPath(subject="01", task=TASK, datatype="eeg", root=root)
    mne_bids.write_raw_bids(raw, bp, overwrite=True, verbose=False)
    options = CohortOptions(montage=str(eeglab_dir / "test_chans.locs"), montage_match="order",
                            spacing="ico3", figures=False)
    groups, tasks, _ = plan_cohort(root, TASK, conditions=["square"], options=options,
                                   out=tmp_path / "out")
    assert groups[0].conditions == ["square"] and [t.condition for t in tasks] == ["square"]
    from meeg_inverse.cohort import prepare_group

    side = prepare_group(groups[0], root.resolve(), options)
    assert side["status"] == "built", side
    assert "80 epochs ('square')" in side["noise_cov"]
    cohort_cov = mne.read_cov(side["cov"], verbose=False)
    single = load_data(mne.io.read_raw_eeglab(eeglab_dir / "test_raw.set", preload=True,
                                              verbose=False),
                       condition="square", montage=options.montage, montage_match="order")
    single_cov = load_noise_cov(None, single)
    assert cohort_cov["nfree"] == single_cov["nfree"]
    np.testing.assert_allclose(cohort_cov.data, single_cov.data, rtol=1e-12,
                               atol=1e-12 * np.abs(single_cov.data).max())
    # every condition localized (no --conditions): every event's baselines, as before
    groups, _, _ = plan_cohort(root, TASK, options=options, out=tmp_path / "out")
    assert sorted(groups[0].conditions) == ["rt", "square"]
