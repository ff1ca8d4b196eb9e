"""The reliability table: every case of the hostile-input sweep (issue 17), with the
right behaviour as its expected value.

Each row runs the real command line (in process with :func:`meeg_inverse.cli.main`,
or as a subprocess where the case is about signals, pipes, terminals or a
read-only install) and states the exit status and the words the message must
hold. On top of each row's own checks, every row must show no traceback, a
``Fix:`` for exit status 2 (and no "please report it"), no staging folder or
lock left behind, and no output folder after a refused run.

``scripts/reliability_sweep.py`` runs the same kinds of case through the
installed command and prints one verdict line per case.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import mne
import numpy as np
import pytest

from meeg_inverse.cli import main

ROOT = Path(__file__).resolve().parents[1]
LEFTOVER = re.compile(r"^\.(meeg-inverse-.*|.*\.partial-\d+)$")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data(sample_paths, sample_forward, tmp_path_factory):
    """Forward and covariance files, good and damaged, written once."""
    folder = tmp_path_factory.mktemp("reliability-inputs")
    evoked = mne.read_evokeds(sample_paths["evoked"], condition="Left Auditory",
                              verbose=False)
    cov = mne.read_cov(sample_paths["cov"], verbose=False)
    fwd_names = sample_forward["sol"]["row_names"]
    files = {"fwd": folder / "sample-fwd.fif"}
    mne.write_forward_solution(files["fwd"], sample_forward, verbose=False)
    meg_only = mne.pick_types_forward(sample_forward, meg=True, eeg=False)
    files["fwd_meg_only"] = folder / "megonly-fwd.fif"
    mne.write_forward_solution(files["fwd_meg_only"], meg_only, verbose=False)
    every_other = mne.pick_channels_forward(sample_forward, fwd_names[::2], verbose=False)
    files["fwd_every_other"] = folder / "half-fwd.fif"
    mne.write_forward_solution(files["fwd_every_other"], every_other, verbose=False)
    nan = sample_forward.copy()
    for key in ("sol", "_orig_sol"):  # the file holds _orig_sol
        if key == "sol":
            nan["sol"]["data"] = nan["sol"]["data"].copy()
            nan["sol"]["data"][5, 7] = np.nan
        else:
            nan["_orig_sol"] = nan["_orig_sol"].copy()
            nan["_orig_sol"][5, 7] = np.nan
    files["fwd_nan"] = folder / "nan-fwd.fif"
    mne.write_forward_solution(files["fwd_nan"], nan, verbose=False)
    eeg = [c for c in cov["names"] if c.startswith("EEG")]
    files["cov_no_eeg"] = folder / "noeeg-cov.fif"
    mne.write_cov(files["cov_no_eeg"], mne.pick_channels_cov(cov, exclude=eeg, verbose=False),
                  verbose=False)
    three = ["MEG 0113", "MEG 1332", "EEG 010"]
    files["cov_minus3"] = folder / "minus3-cov.fif"
    mne.write_cov(files["cov_minus3"], mne.pick_channels_cov(cov, exclude=three, verbose=False),
                  verbose=False)
    types = dict(zip(evoked.ch_names, evoked.get_channel_types()))
    good = [c for c in evoked.ch_names
            if types[c] in ("mag", "grad", "eeg") and c not in evoked.info["bads"]]
    return SimpleNamespace(
        paths=sample_paths, files=files, three=three, good=good, types=types,
        removed_every_other=[c for c in good if c not in set(fwd_names[::2])],
        good_eeg=[c for c in good if types[c] == "eeg"], sfreq=evoked.info["sfreq"],
        times=evoked.times)


def localize_args(d, out, *extra, fwd="fwd", cov=None, quiet=True, window=True,
                  condition=True):
    """A fast localization (508 sources, 25 samples, alpha 0.5, no figures)."""
    return ["localize", str(d.paths["evoked"]),
            *(["--condition", "Left Auditory"] if condition else []),
            "--noise-cov", str(cov or d.paths["cov"]), "--forward", str(d.files[fwd]),
            *(["--tmin", "0.08", "--tmax", "0.12"] if window else []),
            "--alpha", "0.5", "--no-figures", "--out", str(out),
            *(["-q"] if quiet else []), *extra]


@dataclass
class Outcome:
    status: int
    out: str
    err: str
    out_dir: Path | None = None
    fresh_out: bool = True  # the output folder did not exist before the run


@dataclass
class Row:
    item: int
    run: object  # (ctx) -> Outcome; may assert the row's own right values
    status: int
    words: tuple = ()
    marks: list = field(default_factory=list)


def run_main(ctx, args, out_dir=None, fresh_out=True):
    status = main([str(a) for a in args])
    captured = ctx.capsys.readouterr()
    return Outcome(status, captured.out, captured.err, out_dir, fresh_out)


def run_cli(args, *, env=None, timeout=240, cwd=None, prefix=()):
    """The real command in a fresh interpreter (this checkout first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [*prefix, sys.executable, "-m", "meeg_inverse.cli", *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                         cwd=cwd)
    return res.returncode, res.stdout, res.stderr


def summary_of(out_dir):
    return json.loads((Path(out_dir) / "summary.json").read_text())


def shell_status(returncode):
    """The status a shell reports: 128 + N for a process ended by signal N.

    CPython ends by re-raising SIGINT when a KeyboardInterrupt passed through
    certain C-level code during startup, even after it was handled; a shell sees
    130 both ways.
    """
    return 128 - returncode if returncode < 0 else returncode


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def can_unshare():
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def read_only_binds(*folders):
    """Shell lines making ``folders`` read-only in a private mount namespace."""
    return " && ".join(f"mount --bind {f} {f} && mount -o remount,bind,ro {f}"
                       for f in folders)


# ------------------------------------------------------------------------------ rows
# 1. Channels left out: printed (even with -q), recorded, a lost type refused.
def r_fwd_meg_only(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, fwd="fwd_meg_only"), out)


def r_fwd_meg_only_accepted(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--allow-missing-types", fwd="fwd_meg_only"),
                 out)
    channels = summary_of(out)["channels"]
    assert channels["lost_types"] == ["eeg"]
    assert channels["left_out"]["not in the forward solution"] == ctx.d.good_eeg
    assert "eeg" not in channels["used"]
    return o


def r_fwd_every_other(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, fwd="fwd_every_other"), out)
    channels = summary_of(out)["channels"]
    assert channels["left_out"]["not in the forward solution"] == ctx.d.removed_every_other
    assert channels["lost_types"] == []
    assert f"{len(ctx.d.removed_every_other)} channel(s) not in the forward" in o.err
    return o


def r_cov_no_eeg(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, cov=ctx.d.files["cov_no_eeg"]), out)


def r_cov_minus3(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, cov=ctx.d.files["cov_minus3"]), out)
    left = summary_of(out)["channels"]["left_out"]["not in the noise covariance"]
    assert sorted(left) == sorted(ctx.d.three)
    assert summary_of(out)["n_channels"] == len(ctx.d.good) - 3
    return o


# 2. Channel types by name, --exclude, the chosen condition and window printed.
def r_eeglab_eog(ctx):
    eeglab = ctx.request.getfixturevalue("eeglab_dir")
    out = ctx.tmp / "eeg"
    o = run_main(ctx, ["localize", eeglab / "test_raw.set", "--montage",
                       eeglab / "test_chans.locs", "--montage-match", "order",
                       "--alpha", "0.3", "--out", out, "--no-figures"], out)
    s = summary_of(out)
    assert s["n_channels"] == 30 and s["channels"]["used"] == {"eeg": 30}
    assert s["condition"] == "rt" and s["time_window_s"][0] >= 0
    assert all(r["peak_time_s"] >= 0 for r in s["sources"])  # nothing from the baseline
    return o


def r_exclude(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--exclude", "MEG 0113,EEG 001"), out)
    assert summary_of(out)["n_channels"] == len(ctx.d.good) - 2
    return o


def r_exclude_unknown(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, "--exclude", "EOG1"), out)


def r_default_condition_window(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, quiet=False, window=False, condition=False),
                 out)
    s = summary_of(out)
    assert s["condition"] == "Left Auditory"
    assert s["time_window_s"][0] >= 0 and s["time_window_s"][1] == pytest.approx(
        ctx.d.times[-1])
    return o


# 3. Offsets without a baseline (Python API).
def r_api_uncorrected_cropped(ctx):
    from meeg_inverse.pipeline import localize

    paths = ctx.d.paths
    evoked = mne.read_evokeds(paths["evoked"], condition="Left Auditory", baseline=None,
                              verbose=False).crop(0.05, 0.15)
    fwd = mne.read_forward_solution(ctx.d.files["fwd"], verbose=False)
    cov = mne.read_cov(paths["cov"], verbose=False)
    with pytest.warns(RuntimeWarning, match="not baseline-corrected") as record:
        localize(evoked, fwd, cov, alpha=0.5)
    message = next(str(w.message) for w in record if "baseline" in str(w.message))
    assert "apply_baseline" in message
    # The same data baseline-corrected (and stripped of its baseline record): no warning.
    corrected = mne.read_evokeds(paths["evoked"], condition="Left Auditory",
                                 baseline=(None, 0), verbose=False).crop(0.05, 0.15)
    plain = mne.EvokedArray(corrected.data, corrected.info, corrected.times[0],
                            nave=corrected.nave)
    import warnings

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        localize(plain, fwd, cov, alpha=0.5)
    assert not [w for w in record if "baseline" in str(w.message)]
    return Outcome(0, "", "", None)


# 4. Head coordinates said, not MNI promised.
def r_head_coordinates(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out)[:-1], out)  # not quiet: the source list
    s = summary_of(out)
    assert s["coordinates"].startswith("head")
    assert all(r["position_mni_mm"] is None for r in s["sources"])
    assert "(head coordinates" in o.out
    return o


def r_mni_with_subjects_dir(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--subjects-dir",
                                    ctx.d.paths["subjects_dir"]), out)
    s = summary_of(out)
    assert s["coordinates"].startswith("MNI")
    assert all(r["position_mni_mm"] is not None for r in s["sources"])
    return o


def r_subject_of_another_forward(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, "--subject", "bert"), out)


def r_subject_of_the_forward(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--subject", "sample", "--subjects-dir",
                                    ctx.d.paths["subjects_dir"]), out)
    s = summary_of(out)
    assert s["subject"] == "sample" and s["coordinates"].startswith("MNI")
    assert all(r["label"] for r in s["sources"])  # named on its anatomy
    return o


# 5. A previous result: refused, or replaced as a whole with --overwrite; other files kept.
def _previous_result(ctx):
    """A result whose run also wrote a viewer (listed in its summary, as with figures)."""
    out = ctx.tmp / "r"
    assert main(localize_args(ctx.d, out)) == 0
    (out / "viewer.html").write_text("<html>the previous run's viewer</html>")
    summary = summary_of(out)
    summary["files"]["viewer"] = "viewer.html"
    (out / "summary.json").write_text(json.dumps(summary))
    ctx.capsys.readouterr()
    return out


def r_second_run_refused(ctx):
    out = _previous_result(ctx)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    o = run_main(ctx, localize_args(ctx.d, out), out, fresh_out=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    return o


def r_overwrite_replaces_whole(ctx):
    out = _previous_result(ctx)
    o = run_main(ctx, localize_args(ctx.d, out, "--overwrite", "--alpha", "0.4"), out,
                 fresh_out=False)
    assert o.status == 0, o.err
    s = summary_of(out)
    listed = {f for v in s["files"].values() for f in (v if isinstance(v, list) else [v])}
    assert {p.name for p in out.iterdir()} == listed | {"summary.json"}  # no viewer.html
    assert s["alpha_fraction_of_max"] == pytest.approx(0.4)  # the new run's result
    return o


def r_own_files_beside_a_result_kept(ctx):
    """--overwrite replaces a result, never the user's own files put beside it."""
    out = _previous_result(ctx)
    (out / "extra.txt").write_text("my notes")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    o = run_main(ctx, localize_args(ctx.d, out, "--overwrite"), out, fresh_out=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    return o


def r_other_files_kept(ctx):
    out = ctx.tmp / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    o = run_main(ctx, localize_args(ctx.d, out, "--overwrite"), out, fresh_out=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    return o


# 6. Signals clean up; stale staging folders of dead processes are removed.
def _signal_run(ctx, sig):
    out = ctx.tmp / "r"
    args = localize_args(ctx.d, out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "meeg_inverse.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not list(ctx.tmp.glob(".meeg-inverse-partial-*")):  # staging made: run under way
        assert time.monotonic() < deadline and proc.poll() is None, "no staging folder seen"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert "interrupted" in stderr
    return Outcome(shell_status(proc.returncode), stdout, stderr, out)


def r_sigterm(ctx):
    return _signal_run(ctx, signal.SIGTERM)


def r_sighup(ctx):
    return _signal_run(ctx, signal.SIGHUP)


def r_stale_staging_removed(ctx):
    pid = dead_pid()
    new_style = ctx.tmp / f".meeg-inverse-partial-{pid}-0badc0de"
    old_style = ctx.tmp / f".r.partial-{pid}"
    for folder in (new_style, old_style):
        folder.mkdir()
        (folder / "sources-stc.h5").write_text("half written")
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out), out)
    assert not new_style.exists() and not old_style.exists()
    return o


# 7. Every location checked before computing; long names; read-only parents.
def r_long_out_name(ctx):
    out = ctx.tmp / ("x" * 250)
    o = run_main(ctx, localize_args(ctx.d, out), out)
    assert (out / "summary.json").exists()
    return o


def r_too_long_out_name(ctx):
    out = ctx.tmp / ("x" * 256)
    o = run_main(ctx, localize_args(ctx.d, out, quiet=False), None)  # can't even be stat()ed
    assert "reading" not in o.err  # refused before reading
    assert [p.name for p in ctx.tmp.iterdir()] == []
    return o


def r_out_in_read_only_parent(ctx):
    parent = ctx.tmp / "ro"
    out = parent / "out"
    out.mkdir(parents=True)
    cmd = " ".join(f"'{a}'" for a in localize_args(ctx.d, out))
    # The parent read-only, --out itself a writable mount inside it.
    script = (f"mount --bind {parent} {parent} && mount --bind {out} {out} && "
              f"mount -o remount,bind,ro {parent} && "
              f"touch {parent}/x 2>/dev/null; touch {out}/probe && rm {out}/probe && "
              f"PYTHONPATH={ROOT} {sys.executable} -m meeg_inverse.cli {cmd}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                         text=True, timeout=240)
    assert not (parent / "x").exists(), res.stderr  # the parent really was read-only
    assert (out / "summary.json").exists(), res.stderr
    return Outcome(res.returncode, res.stdout, res.stderr, out, fresh_out=False)


def r_out_on_read_only_fs(ctx):
    parent = ctx.tmp / "ro"
    parent.mkdir()
    out = parent / "out"
    cmd = " ".join(f"'{a}'" for a in localize_args(ctx.d, out, quiet=False))
    script = (f"{read_only_binds(parent)} && "
              f"PYTHONPATH={ROOT} {sys.executable} -m meeg_inverse.cli {cmd}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                         text=True, timeout=240)
    assert "reading" not in res.stderr  # refused before reading anything
    return Outcome(res.returncode, res.stdout, res.stderr, out)


# 8. Two runs into one folder.
def r_locked(ctx):
    from meeg_inverse._output_dir import OutputFolder

    out = ctx.tmp / "r"
    held = OutputFolder(out).acquire()
    try:
        o = run_main(ctx, localize_args(ctx.d, out), out)
        assert f"process {os.getpid()}" in o.err
    finally:
        held.release()
    return o


# 9. An empty --out.
def r_empty_out(ctx):
    ctx.monkeypatch.chdir(ctx.tmp)
    o = run_main(ctx, localize_args(ctx.d, ""), None)
    assert list(ctx.tmp.iterdir()) == []  # nothing written in the current folder
    return o


# 10. Read-only install and HOME.
def r_read_only_install(ctx):
    install = ctx.tmp / "install"
    shutil.copytree(ROOT / "meeg_inverse", install / "meeg_inverse",
                    ignore=shutil.ignore_patterns("__pycache__"))
    home = ctx.tmp / "home"
    home.mkdir()
    out = ctx.tmp / "r"
    cmd = " ".join(f"'{a}'" for a in localize_args(ctx.d, out, quiet=False))
    script = (f"{read_only_binds(install, home)} && cd {ctx.tmp} && HOME={home} "
              f"TMPDIR={ctx.tmp} PYTHONPATH={install} {sys.executable} -m meeg_inverse.cli "
              f"{cmd}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                         text=True, timeout=400)
    assert not list(install.rglob("*.nbi"))  # nothing written into the install
    assert (out / "summary.json").exists()
    return Outcome(res.returncode, res.stdout, res.stderr, out)


def r_cache_fallback_in_process(ctx):
    """The fallback logic itself, on an unwritable cache folder (no mount needed)."""
    from meeg_inverse import _cache_env

    ctx.monkeypatch.setattr(_cache_env, "NOTES", [])
    blocked = ctx.tmp / "file"
    blocked.write_text("a file, so nothing can be made below it")
    folder = _cache_env.writable_cache_dir(blocked / "cache", "meeg-inverse-test-cache")
    assert folder != blocked / "cache" and _cache_env._can_write(folder)
    assert str(folder) in _cache_env.NOTES[0]
    return Outcome(0, "", "", None)


# 11. --json errors.
def r_json_error(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--json", "--tol", "-1"), out)
    obj = json.loads(o.out)
    assert set(obj) == {"error", "fix"} and "--tol" in obj["error"] and obj["fix"]
    return o


def r_json_usage_error(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--json", "--alpha", "abc"), out)
    assert "alpha" in json.loads(o.out)["error"]
    return o


# 12. Closed pipes and ASCII terminals after a successful run.
def r_json_closed_pipe(ctx):
    out = ctx.tmp / "r"
    cmd = " ".join(f"'{a}'" for a in localize_args(ctx.d, out, "--json"))
    script = (f"PYTHONPATH={ROOT} {sys.executable} -m meeg_inverse.cli {cmd} | true; "
              "echo \"status=${PIPESTATUS[0]}\" >&2")
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=240)
    status = int(re.search(r"status=(\d+)", res.stderr).group(1))
    assert (out / "summary.json").exists()
    return Outcome(status, res.stdout, res.stderr.replace(f"status={status}", ""), out)


def r_ascii_stdout(ctx):
    out = ctx.tmp / "r"
    status, stdout, stderr = run_cli(localize_args(ctx.d, out)[:-1],
                                     env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"})
    assert "nA.m" in stdout
    return Outcome(status, stdout, stderr, out)


# 13. Ctrl-C while the program starts (importing MNE).
def r_ctrl_c_at_start(ctx):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = ctx.tmp / "r"
    from conftest import sigint_as_at_a_terminal

    proc = subprocess.Popen([sys.executable, "-m", "meeg_inverse.cli",
                             *localize_args(ctx.d, out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=sigint_as_at_a_terminal)
    time.sleep(0.6)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert "interrupted" in stderr
    return Outcome(shell_status(proc.returncode), stdout, stderr, out)


# 14-15. Messages that name the problem and the fix, before any reading.
def _refused_before_reading(ctx, *extra, **kwargs):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, *extra, quiet=False, **kwargs), out)
    assert "[meeg-inverse] reading" not in o.err, o.err
    return o


def r_tol_negative(ctx):
    return _refused_before_reading(ctx, "--tol", "-1")


def r_continuous_options_on_an_average(ctx):
    return _refused_before_reading(ctx, "--noise-segment", "0,1", "--n-jobs", "4")


def r_continuous_option_at_its_default(ctx):
    # Given at the value --continuous would use: still an option that would be ignored.
    return _refused_before_reading(ctx, "--window", "0.1", "--step", "0.05")


def r_sure_curve_without_a_search(ctx):
    return _refused_before_reading(ctx, "--sure-curve")  # localize_args gives --alpha 0.5


def r_window_reversed(ctx):
    return _refused_before_reading(ctx, "--tmin", "0.15", "--tmax", "0.05", window=False)


def r_alpha_bad(ctx):
    for value in ("1.5", "0", "-1", "nan"):
        o = _refused_before_reading(ctx, "--alpha", value)
        assert o.status == 2 and "--alpha" in o.err, (value, o.err)
    return o


def r_tol_too_loose(ctx):
    return _refused_before_reading(ctx, "--tol", "0.5")


def r_depth_above_one(ctx):
    return _refused_before_reading(ctx, "--depth", "5")


def r_epoch_options_on_an_average(ctx):
    o = _refused_before_reading(ctx, "--epoch-tmin", "-0.1")
    assert o.status == 2 and "holds averages" in o.err, o.err
    return _refused_before_reading(ctx, "--events", ctx.tmp / "x-eve.fif", "--reject",
                                   "eeg=1e-4", "--epoch-tmax", "0.3")


def _epochs_file(ctx):
    """Ten epochs of the 'Left Auditory' (code 1) and 'Right Auditory' (code 2) averages."""
    evokeds = mne.read_evokeds(ctx.d.paths["evoked"], baseline=(None, 0), verbose=False)[:2]
    rng = np.random.default_rng(0)
    data = np.array([evokeds[k % 2].data * (1 + 0.1 * rng.standard_normal())
                     for k in range(10)])
    events = np.c_[np.arange(10) * 1000, np.zeros(10, int), 1 + np.arange(10) % 2]
    epochs = mne.EpochsArray(data, evokeds[0].info, events=events, tmin=evokeds[0].times[0],
                             event_id={"Left Auditory": 1, "Right Auditory": 2},
                             verbose=False)
    fname = ctx.tmp / "two-epo.fif"
    epochs.save(fname, verbose=False)
    return fname


def _localize_epochs_file(ctx, *extra):
    out = ctx.tmp / "r"
    args = localize_args(ctx.d, out, *extra, condition=False)
    args[1] = str(_epochs_file(ctx))
    return run_main(ctx, args, out)


def r_epoch_window_on_epochs(ctx):
    o = _localize_epochs_file(ctx, "--epoch-tmax", "0.3")
    assert "[meeg-inverse] reading" not in o.err
    return o


def r_condition_code_on_epochs(ctx):
    o = _localize_epochs_file(ctx, "--condition", "2")
    s = summary_of(ctx.tmp / "r")
    assert s["condition"] == "Right Auditory" and s["n_averaged_epochs"] == 5
    return o


def r_reject_on_epochs(ctx):
    """--reject applies to an epochs file (here it drops them all: said, not ignored)."""
    return _localize_epochs_file(ctx, "--reject", "eeg=1e-9")


def r_window_before_the_stimulus(ctx):
    return _refused_before_reading(ctx, "--tmin", "-0.1", "--tmax", "-0.02", window=False)


def r_window_before_the_stimulus_asked(ctx):
    """Asked for: localized, and the stage's warning reaches the console once."""
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--tmin", "-0.1", "--tmax", "-0.02",
                                    "--allow-prestimulus", window=False), out)
    assert o.err.count("lies entirely before the stimulus") == 1, o.err
    assert summary_of(out)["time_window_s"][1] < 0
    return o


def r_window_in_milliseconds(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, "--tmin", "50", "--tmax", "150",
                                       window=False), out)


def r_epoch_window_in_milliseconds(ctx):
    o = _refused_before_reading(ctx, "--epoch-tmin", "-200", "--epoch-tmax", "500")
    args = ["localize", ctx.d.paths["raw"], "--noise-cov", ctx.d.paths["cov"], "--forward",
            ctx.d.files["fwd"], "--events", ctx.d.paths["events"], "--epoch-tmin", "-2",
            "--epoch-tmax", "5", "--alpha", "0.5",
            "--no-figures", "--out", ctx.tmp / "raw"]  # the shared raw file is 1 s long
    long = run_main(ctx, args, ctx.tmp / "raw")
    assert long.status == 2 and "is longer than the recording" in long.err, long.err
    assert "did you mean --epoch-tmin -0.002 --epoch-tmax 0.005" not in long.err
    assert not (ctx.tmp / "raw").exists()
    return o


def r_loose_0_vector(ctx):
    return _refused_before_reading(ctx, "--loose", "0", "--pick-ori", "vector")


def r_alpha_below_floor(ctx):
    return _refused_before_reading(ctx, "--alpha", "1e-9")


def r_noise_cov_and_empty_room(ctx):
    return _refused_before_reading(ctx, "--empty-room", ctx.d.paths["raw"])


def r_empty_room_eeg_only(ctx):
    evoked = mne.read_evokeds(ctx.d.paths["evoked"], condition="Left Auditory",
                              baseline=(None, 0), verbose=False).pick("eeg")
    fname = ctx.tmp / "eeg-ave.fif"
    evoked.save(fname, verbose=False)
    out = ctx.tmp / "r"
    # The empty-room file need not exist: refused before it is read.
    return run_main(ctx, ["localize", fname, "--empty-room", ctx.tmp / "missing_raw.fif",
                          "--forward", ctx.d.files["fwd"], "--tmin", "0.08", "--tmax", "0.12",
                          "--alpha", "0.5", "--no-figures", "--out", out], out)


def r_fetch_path_is_a_file(ctx):
    blocker = ctx.tmp / "a-file"
    blocker.write_text("not a folder")
    o = run_main(ctx, ["fetch", "eeglab", "--path", blocker])
    below = run_main(ctx, ["fetch", "eeglab", "--path", blocker / "data"])
    assert below.status == 2 and "a folder above it" in below.err, below.err
    assert [p.name for p in ctx.tmp.iterdir()] == ["a-file"]  # no lock, no folder
    assert blocker.read_text() == "not a folder"
    return o


def _all_channels(ctx):
    import mne

    return mne.read_evokeds(ctx.d.paths["evoked"], condition=0, verbose=False).ch_names


def r_exclude_everything(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, "--exclude", ",".join(_all_channels(ctx))),
                    out)


def r_exclude_all_but_one_eeg(ctx):
    out = ctx.tmp / "r"
    names = [c for c in _all_channels(ctx) if c != "EEG 001"]
    return run_main(ctx, localize_args(ctx.d, out, "--exclude", ",".join(names)), out)


def r_rank_too_large(ctx):
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, "--rank", "meg=5000"), out)


def r_reject_unknown_type(ctx):
    """With an epochs file (--reject does not apply to an evoked file: refused as such)."""
    return _localize_epochs_file(ctx, "--reject", "foo=1e-6")


def r_window_after_the_data(ctx):
    """Only a start, after the data's end: the fix names the end, not a swap."""
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, "--tmin", "0.6", window=False), out)
    assert "swap" not in o.err, o.err
    return o


def r_window_between_samples(ctx):
    t = ctx.d.times[(ctx.d.times > 0.1)][0]
    step = 1 / ctx.d.sfreq
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, "--tmin", f"{t + 0.2 * step:.6f}",
                                       "--tmax", f"{t + 0.6 * step:.6f}", window=False), out)


def r_empty_file(ctx):
    empty = ctx.tmp / "empty-ave.fif"
    empty.write_bytes(b"")
    out = ctx.tmp / "r"
    args = localize_args(ctx.d, out)
    args[1] = str(empty)
    return run_main(ctx, args, out)


def r_unreadable_file(ctx):
    locked = ctx.tmp / "locked-cov.fif"
    shutil.copy(ctx.d.paths["cov"], locked)
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open itself fail as for a user
        # (in the compute stage, a child process: see the stage_patch fixture)
        ctx.request.getfixturevalue("stage_patch")(f"""
import builtins
import meeg_inverse.io as mio

real_open = builtins.open

def guarded(file, *a, **k):
    if str(file) == {str(locked)!r}:
        raise PermissionError(13, "Permission denied", str(file))
    return real_open(file, *a, **k)

mio.open = guarded
""")
    out = ctx.tmp / "r"
    return run_main(ctx, localize_args(ctx.d, out, cov=locked), out)


def r_nan_forward(ctx):
    out = ctx.tmp / "r"
    o = run_main(ctx, localize_args(ctx.d, out, fwd="fwd_nan"), out)
    assert "interpolate" not in o.err  # not the fix meant for data
    return o


def r_pipe_recording(ctx):
    fifo = ctx.tmp / "pipe-ave.fif"
    os.mkfifo(fifo)
    out = ctx.tmp / "r"
    args = localize_args(ctx.d, out)
    args[1] = str(fifo)
    return run_main(ctx, args, out)


def r_pipe_out(ctx):
    fifo = ctx.tmp / "pipe"
    os.mkfifo(fifo)
    return run_main(ctx, localize_args(ctx.d, fifo), fifo, fresh_out=False)


# 16. Subcommands.
def r_benchmark_quick_without_data(ctx):
    ctx.monkeypatch.setenv("MEEG_INVERSE_SHARED_DATA", str(ctx.tmp / "no-data"))
    t0 = time.perf_counter()
    o = run_main(ctx, ["benchmark", "--quick"])
    assert time.perf_counter() - t0 < 30  # stops at once: no kernel compilation first
    return o


def _result_folder(ctx):
    out = ctx.tmp / "result"
    assert main(localize_args(ctx.d, out)) == 0
    (out / "viewer.html").write_text("<html></html>")
    ctx.capsys.readouterr()
    return out


def r_view_headless(ctx):
    out = _result_folder(ctx)
    ctx.monkeypatch.setattr("webbrowser.open", lambda uri: False)
    o = run_main(ctx, ["view", out], out, fresh_out=False)
    assert str((out / "viewer.html").resolve()) in o.err
    return o


def r_view_show_missing_src(ctx):
    out = _result_folder(ctx)
    return run_main(ctx, ["view", out, "--show", "--src", ctx.tmp / "missing-src.fif"], out,
                    fresh_out=False)


def r_weighted_l21(ctx):
    return _refused_before_reading(ctx, "--penalty", "weighted_l21")


def r_gamma_not_applicable(ctx):
    return _refused_before_reading(ctx, "--penalty", "irmxne", "--gamma", "2")


def r_gamma_out_of_range(ctx):
    return _refused_before_reading(ctx, "--penalty", "scad", "--gamma", "1.5")


# 17. Docs and figures that agree with the program.
def r_docs_alpha_default(ctx):
    from meeg_inverse.cli import build_parser

    args = build_parser().parse_args(["localize", "x"])
    assert args.alpha == "auto"
    guide = (ROOT / "docs" / "guide" / "localize.md").read_text()
    assert "by default `auto`" in guide and "default\n  0.3" not in guide
    return Outcome(0, "", "", None)


def r_fit_band_is_noise_of_average(ctx):
    import matplotlib.axes

    from meeg_inverse.viz import plot_fit_residual

    spans = []
    real = matplotlib.axes.Axes.axhspan
    ctx.monkeypatch.setattr(matplotlib.axes.Axes, "axhspan",
                            lambda self, lo, hi, **k: spans.append((lo, hi)) or real(
                                self, lo, hi, **k))
    data = np.random.default_rng(0).standard_normal((5, 20)) / np.sqrt(60)
    plot_fit_residual(np.arange(20) / 100, data, 0 * data, ctx.tmp / "fit.png", nave=60)
    assert spans and all(np.allclose((lo, hi), (-1 / np.sqrt(60), 1 / np.sqrt(60)))
                         for lo, hi in spans)
    text = (ROOT / "docs" / "figures.md").read_text()
    assert "1/√N" in text and "the ±1 noise band" not in text
    return Outcome(0, "", "", None)


def r_index_links_lambda_curve(ctx):
    from meeg_inverse.viz.report import _write_index

    stc = mne.SourceEstimate(np.ones((1, 3)) * 1e-9, [np.array([0]), np.array([], int)],
                             0.0, 0.01, subject="sample")
    (ctx.tmp / "lambda_curve.png").write_bytes(b"png")
    _write_index(ctx.tmp, {"lambda_curve": ctx.tmp / "lambda_curve.png"}, stc, "t", {})
    page = (ctx.tmp / "index.html").read_text()
    assert 'href="lambda_curve.png"' in page and "selection criterion along λ" in page
    return Outcome(0, "", "", None)


def r_viewer_names_start_view(ctx):
    html = (ROOT / "meeg_inverse" / "viz" / "_viewer_assets.py").read_text()
    # Started in whichever view shows the sources best, the page names it (checked in
    # headless Chromium by tests/test_viewer_html.py: start_view == 'view: Left').
    assert "showView(viewOf(cam.yaw, cam.pitch))" in html and "start_view" in html
    return Outcome(0, "", "", None)


# 18. A contributor can get the data.
def r_contributing(ctx):
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for words in ("meeg-inverse fetch sample", "MEEG_INVERSE_SHARED_DATA",
                  "benchmark_solvers.py --quick", "Add a penalty, step by step", "PENALTIES"):
        assert words in text, words
    return Outcome(0, "", "", None)


def r_tests_use_fetched_layout(ctx):
    import conftest

    root = ctx.tmp / "mne_data"
    sample = root / "MNE-sample-data"
    for rel in conftest.FETCHED_SAMPLE.values():
        if rel is None:
            continue
        path = sample / rel
        if rel == "subjects":
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    ctx.monkeypatch.setenv("MEEG_INVERSE_DATA", str(root))
    ctx.monkeypatch.setattr(conftest, "SAMPLE", ctx.tmp / "no-shared-data")
    kind, folder = conftest.sample_source()
    assert (kind, folder) == ("fetched", sample)
    paths = conftest.sample_layout(kind, folder)
    assert all(p.exists() for role, p in paths.items() if p is not None)
    return Outcome(0, "", "", None)


needs_unshare = pytest.mark.skipif(not can_unshare(),
                                   reason="needs `unshare -m` (root) for a read-only mount")
slow = pytest.mark.slow

ROWS = {
    # item 1
    "forward without the EEG": Row(1, r_fwd_meg_only, 2, ("All EEG channels",
                                                         "not in the forward solution",
                                                         "--allow-missing-types")),
    "forward without the EEG, accepted": Row(1, r_fwd_meg_only_accepted, 0, (
        "channel(s) not in the forward solution are left out",)),
    "forward with every other channel": Row(1, r_fwd_every_other, 0),
    "covariance without the EEG": Row(1, r_cov_no_eeg, 2, ("All EEG channels",
                                                           "not in the noise covariance")),
    "covariance without 3 channels": Row(1, r_cov_minus3, 0, (
        "3 channel(s) not in the noise covariance are left out",)),
    # item 2
    "EEGLAB: EOG typed by name, condition and window printed": Row(
        2, r_eeglab_eog, 0, ("EOG1 -> EOG", "EOG2 -> EOG", "condition 'rt' (the first of 2",
                             "time window 0.000"), [slow]),
    "--exclude channels": Row(2, r_exclude, 0),
    "--exclude an unknown channel": Row(2, r_exclude_unknown, 2, ("EOG1",)),
    "no --condition, no --tmin": Row(2, r_default_condition_window, 0, (
        "condition 'Left Auditory' (the first of 4", "time window 0.000")),
    # item 3
    "API: uncorrected evoked cropped after the stimulus": Row(3, r_api_uncorrected_cropped, 0),
    # item 4
    "--forward without --subjects-dir": Row(4, r_head_coordinates, 0, ("head coordinates",)),
    "--forward with --subjects-dir": Row(4, r_mni_with_subjects_dir, 0),
    "--subject other than the forward's": Row(4, r_subject_of_another_forward, 2, (
        "computed for subject 'sample', not 'bert' (--subject)",
        "drop --subject (the forward's subject 'sample' is used)")),
    "--subject of the forward": Row(4, r_subject_of_the_forward, 0),
    # item 5
    "second run into a result": Row(5, r_second_run_refused, 2, ("already holds a result",
                                                                 "--overwrite")),
    "--overwrite replaces the result as a whole": Row(5, r_overwrite_replaces_whole, 0),
    "--out holding other files": Row(5, r_other_files_kept, 2, ("holds other files",)),
    "--overwrite on a result with the user's files": Row(
        5, r_own_files_beside_a_result_kept, 2, ("holds a result and other files (extra.txt)",
                                                 "move those files out")),
    # item 6
    "SIGTERM while running": Row(6, r_sigterm, 128 + signal.SIGTERM, ("SIGTERM",)),
    "SIGHUP while running": Row(6, r_sighup, 128 + signal.SIGHUP, ("SIGHUP",)),
    "staging folders of dead processes": Row(6, r_stale_staging_removed, 0),
    # item 7
    "250-character --out": Row(7, r_long_out_name, 0),
    "256-character --out": Row(7, r_too_long_out_name, 2, ("bytes long",)),
    "writable --out in a read-only parent": Row(7, r_out_in_read_only_parent, 0,
                                                marks=[needs_unshare]),
    "--out on a read-only file system": Row(7, r_out_on_read_only_fs, 2, ("cannot be written",),
                                            [needs_unshare]),
    # item 8
    "--out in use by another run": Row(8, r_locked, 2, ("Another meeg-inverse run",)),
    # item 9
    "--out ''": Row(9, r_empty_out, 2, ("output folder name is empty",)),
    # item 10
    "read-only install and HOME": Row(10, r_read_only_install, 0, (
        "compiled kernels are cached in",), [needs_unshare, slow]),
    "unwritable cache folder": Row(10, r_cache_fallback_in_process, 0),
    # item 11
    "--json on an error": Row(11, r_json_error, 2, ("--tol",)),
    "--json on a usage error": Row(11, r_json_usage_error, 2, ("alpha",)),
    # item 12
    "--json | true": Row(12, r_json_closed_pipe, 0),
    "ASCII-only stdout": Row(12, r_ascii_stdout, 0),
    # item 13
    "Ctrl-C while starting": Row(13, r_ctrl_c_at_start, 128 + signal.SIGINT, ("SIGINT",)),
    # item 14
    "--tol -1": Row(14, r_tol_negative, 2, ("--tol must be in (0, 0.01]",)),
    "--tol 0.5": Row(14, r_tol_too_loose, 2, ("--tol must be in (0, 0.01], got 0.5",
                                              "stops it before the sources are found",
                                              "use the default 1e-6")),
    "--depth 5": Row(14, r_depth_above_one, 2, ("--depth must be in [0, 1], got 5",
                                                "use 0.8 (MNE's default)")),
    "epoch options with an evoked file": Row(14, r_epoch_options_on_an_average, 2, (
        "--events, --epoch-tmax and --reject only apply to the epochs cut from a raw "
        "recording", "holds averages (an evoked file)", "give the raw recording")),
    "--epoch-tmax with an epochs file": Row(14, r_epoch_window_on_epochs, 2, (
        "--epoch-tmax only applies to a raw recording", "holds epochs already cut")),
    "--condition by event code, epochs file": Row(14, r_condition_code_on_epochs, 0),
    "--reject on an epochs file": Row(14, r_reject_on_epochs, 2, (
        "--reject dropped all 10 epochs of the file",)),
    "window before the stimulus": Row(14, r_window_before_the_stimulus, 2, (
        "ends at or before the stimulus (0 s)", "--tmin 0.05 --tmax 0.15",
        "--allow-prestimulus")),
    "window before the stimulus, asked for": Row(14, r_window_before_the_stimulus_asked, 0, (
        "meeg-inverse: warning: The time window to localize",)),
    "window in milliseconds": Row(14, r_window_in_milliseconds, 2, (
        "Times are in seconds: did you mean 0.05–0.15 s (50–150 ms)?",
        "give seconds: --tmin 0.05 --tmax 0.15")),
    "epoch window in milliseconds": Row(14, r_epoch_window_in_milliseconds, 2, (
        "did you mean --epoch-tmin -0.2 --epoch-tmax 0.5?",)),
    "--loose 0 --pick-ori vector": Row(14, r_loose_0_vector, 2, (
        "--pick-ori vector writes the x, y, z components", "--loose 0")),
    "--alpha below the floor": Row(14, r_alpha_below_floor, 2, (
        "--alpha 1e-09 is below the floor of 0.0001", "--alpha auto")),
    "--noise-cov and --empty-room": Row(14, r_noise_cov_and_empty_room, 2, (
        "--noise-cov and --empty-room both give the noise covariance",)),
    "--empty-room for EEG only": Row(14, r_empty_room_eeg_only, 2, (
        "the recording has no MEG channel (eeg only)", "--noise-cov FILE")),
    # item 15
    "empty file": Row(15, r_empty_file, 2, ("is empty (0 bytes)",)),
    "unreadable file": Row(15, r_unreadable_file, 2, ("permission denied",)),
    "--tmin after --tmax": Row(15, r_window_reversed, 2, ("--tmin 0.15 is after --tmax 0.05",
                                                          "swap them")),
    "continuous-only options on an average": Row(15, r_continuous_options_on_an_average, 2, (
        "--n-jobs, --noise-segment only apply with --continuous",)),
    "continuous-only option at its default value": Row(15, r_continuous_option_at_its_default,
                                                         2, ("--window, --step only apply with "
                                                             "--continuous",)),
    "--sure-curve with a given alpha": Row(15, r_sure_curve_without_a_search, 2, (
        "with --alpha 0.5 there is no search",)),
    "--exclude every channel": Row(15, r_exclude_everything, 2, (
        "--exclude leaves out every MEG and EEG channel",)),
    "--exclude all but one EEG channel": Row(15, r_exclude_all_but_one_eeg, 2, (
        "Too few channels are left for their projectors", "leave out fewer channels")),
    "--rank above the channels": Row(15, r_rank_too_large, 2, (
        "The rank asked for is too large", "at most its number of channels")),
    "--reject of an unknown channel type": Row(15, r_reject_unknown_type, 2, (
        "--reject names an unknown channel type 'foo'",)),
    "--tmin after the data's end": Row(15, r_window_after_the_data, 2, (
        "tmin 0.6 s is after the end of the data (0.499 s)", "choose --tmin before 0.499 s")),
    "window between two samples": Row(15, r_window_between_samples, 2, ("holds no sample",)),
    "NaN in the forward": Row(15, r_nan_forward, 2, ("The forward solution contains",
                                                     "recompute the forward solution")),
    "named pipe as the recording": Row(15, r_pipe_recording, 2, ("is a named pipe",)),
    "named pipe as --out": Row(15, r_pipe_out, 2, ("is a named pipe, not a folder",)),
    "bad --alpha values": Row(15, r_alpha_bad, 2, ("--alpha",)),
    # item 16
    "benchmark --quick without data": Row(16, r_benchmark_quick_without_data, 2, (
        "benchmark data are missing", "MEEG_INVERSE_SHARED_DATA")),
    "view without a browser": Row(16, r_view_headless, 1, ("no web browser could be opened",)),
    "fetch --path FILE": Row(16, r_fetch_path_is_a_file, 2, (
        "is a file; a data set is downloaded into a folder", "give a folder")),
    "view --show --src missing": Row(16, r_view_show_missing_src, 2, ("source space",
                                                                     "does not exist")),
    "--penalty weighted_l21": Row(16, r_weighted_l21, 2, ("Python API",)),
    "irmxne --gamma": Row(16, r_gamma_not_applicable, 2, ("--gamma does not apply",)),
    "scad --gamma 1.5": Row(16, r_gamma_out_of_range, 2, ("Bad --gamma",)),
    # item 17
    "docs: --alpha default": Row(17, r_docs_alpha_default, 0),
    "fit_residual band is the noise of the average": Row(17, r_fit_band_is_noise_of_average, 0),
    "index.html links lambda_curve.png": Row(17, r_index_links_lambda_curve, 0),
    "viewer names its start view": Row(17, r_viewer_names_start_view, 0),
    # item 18
    "CONTRIBUTING.md": Row(18, r_contributing, 0),
    "tests find what `meeg-inverse fetch` writes": Row(18, r_tests_use_fetched_layout, 0),
}


@pytest.mark.parametrize("case", [pytest.param(name, marks=row.marks, id=f"{row.item}: {name}")
                                  for name, row in ROWS.items()])
def test_reliability_table(case, data, tmp_path, capsys, monkeypatch, request):
    row = ROWS[case]
    ctx = SimpleNamespace(d=data, tmp=tmp_path, capsys=capsys, monkeypatch=monkeypatch,
                          request=request)
    outcome = row.run(ctx)
    text = outcome.err + outcome.out
    assert outcome.status == row.status, text[-3000:]
    for words in row.words:
        assert words in text, (words, text[-3000:])
    assert "Traceback" not in text and "Error:" not in outcome.err.replace("error:", ""), text
    if outcome.status == 2:
        assert "Fix:" in outcome.err and "please report" not in outcome.err, outcome.err
    # No staging folder or lock left anywhere near the output.
    places = {tmp_path} | ({outcome.out_dir.parent} if outcome.out_dir else set())
    if outcome.out_dir is not None and outcome.out_dir.is_dir():
        places.add(outcome.out_dir)
    for place in places:
        if place.is_dir():
            left = [p.name for p in place.iterdir() if LEFTOVER.match(p.name)]
            assert not left, (place, left)
    if outcome.status != 0 and outcome.fresh_out and outcome.out_dir is not None:
        assert not outcome.out_dir.exists(), "a refused or interrupted run left an output"


def test_every_item_has_a_row():
    assert sorted({row.item for row in ROWS.values()}) == list(range(1, 19))
