"""Hostile-input sweep of the ``meeg-inverse`` command line (issue 17).

Runs every case through the real command (``python -m meeg_inverse.cli`` of this
checkout, in a fresh process) and prints one verdict line per case: the exit
status against the expected one, whether a traceback was printed, whether a
stale or partial output was left (a staging folder or lock, or an output folder
after a refused run), and the time, against a budget.

Usage::

    python scripts/reliability_sweep.py            # all cases
    python scripts/reliability_sweep.py -k json    # cases whose name holds 'json'

Needs the shared sample data (``MEEG_INVERSE_SHARED_DATA``, default
``../shared/data``); builds (once, cached in ``.cache/tests``) the small
508-source forward the tests use. Cases needing ``unshare -m`` (read-only
mounts, root) are reported as skipped elsewhere. The same cases, with their
right values checked in detail, are rows of ``tests/test_reliability_table.py``.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE = SHARED / "sample"
EEGLAB = SHARED / "eeglab"
LEFTOVER = re.compile(r"^\.(meeg-inverse-.*|.*\.partial-\d+)$")
BUDGET_S = 180  # no case may run longer (the slowest, a read-only install, compiles ~30 s)


def prepare(folder):
    """Good and damaged inputs in ``folder``: forward and covariance variants."""
    import mne
    import numpy as np

    sys.path.insert(0, str(ROOT / "scripts"))
    from benchmark_solvers import cached_forward

    evoked = mne.read_evokeds(SAMPLE / "MEG" / "test-ave.fif.gz", condition="Left Auditory",
                              verbose=False)
    fwd = cached_forward(ROOT / ".cache" / "tests" / "sample-small-meeg-fwd.fif", evoked.info,
                         lambda: mne.read_source_spaces(
                             SAMPLE / "MEG" / "sample-small-src.fif.gz", verbose=False))
    cov = mne.read_cov(SAMPLE / "MEG" / "test-cov.fif", verbose=False)
    files = {"fwd": folder / "sample-fwd.fif", "fwd_meg": folder / "megonly-fwd.fif",
             "fwd_half": folder / "half-fwd.fif", "fwd_nan": folder / "nan-fwd.fif",
             "cov_no_eeg": folder / "noeeg-cov.fif", "cov_minus3": folder / "minus3-cov.fif",
             "empty": folder / "empty-ave.fif", "fifo": folder / "pipe-ave.fif"}
    mne.write_forward_solution(files["fwd"], fwd, overwrite=True, verbose=False)
    mne.write_forward_solution(files["fwd_meg"], mne.pick_types_forward(fwd, meg=True, eeg=False),
                               overwrite=True, verbose=False)
    mne.write_forward_solution(files["fwd_half"], mne.pick_channels_forward(
        fwd, fwd["sol"]["row_names"][::2], verbose=False), overwrite=True, verbose=False)
    nan = fwd.copy()
    nan["_orig_sol"] = nan["_orig_sol"].copy()
    nan["_orig_sol"][5, 7] = np.nan
    mne.write_forward_solution(files["fwd_nan"], nan, overwrite=True, verbose=False)
    eeg = [c for c in cov["names"] if c.startswith("EEG")]
    mne.write_cov(files["cov_no_eeg"], mne.pick_channels_cov(cov, exclude=eeg, verbose=False),
                  overwrite=True, verbose=False)
    mne.write_cov(files["cov_minus3"], mne.pick_channels_cov(
        cov, exclude=["MEG 0113", "MEG 1332", "EEG 010"], verbose=False), overwrite=True,
        verbose=False)
    files["empty"].write_bytes(b"")
    os.mkfifo(files["fifo"])
    files["sfreq"] = evoked.info["sfreq"]
    files["t_after_100ms"] = float(evoked.times[evoked.times > 0.1][0])
    return files


def base(f, out, *extra, fwd="fwd", cov=None, recording=None, window=True, condition=True):
    return ["localize", str(recording or SAMPLE / "MEG" / "test-ave.fif.gz"),
            *(["--condition", "Left Auditory"] if condition else []),
            "--noise-cov", str(cov or SAMPLE / "MEG" / "test-cov.fif"), "--forward", str(f[fwd]),
            *(["--tmin", "0.08", "--tmax", "0.12"] if window else []),
            "--alpha", "0.5", "--no-figures", "--out", str(out), *extra]


def cli(args, *, env=None, cwd=None, prefix=(), timeout=BUDGET_S):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "meeg_inverse.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def shell_status(rc):
    return 128 - rc if rc < 0 else rc


def signal_run(args, sig, watch, delay):
    """Start a run, send ``sig`` once a staging folder shows up in ``watch`` (or after
    ``delay`` s when ``watch`` is None); returns (status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "meeg_inverse.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if watch is not None:
        deadline = time.monotonic() + 60
        while not list(watch.glob(".meeg-inverse-partial-*")) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=BUDGET_S)
    return shell_status(proc.returncode), out, err


def can_unshare():
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


def cases(f, tmp):
    """(name, item, expected status, runner) with runner(out_dir) -> (status, stdout, stderr)."""
    def run(*args, **kw):
        return lambda out: _res(cli(base(f, out, *args, **kw)))

    def _res(proc):
        return shell_status(proc.returncode), proc.stdout, proc.stderr

    def previous_then(*args):
        def runner(out):
            cli(base(f, out))
            (out / "viewer.html").write_text("<html>old</html>")
            return _res(cli(base(f, out, *args)))
        return runner

    def stale_then_run(out):
        dead = subprocess.Popen(["true"])
        dead.wait()
        (out.parent / f".meeg-inverse-partial-{dead.pid}-0badc0de").mkdir()
        (out.parent / f".{out.name}.partial-{dead.pid}").mkdir()
        return _res(cli(base(f, out)))

    def two_runs(out):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        first = subprocess.Popen([sys.executable, "-m", "meeg_inverse.cli", *base(f, out)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
        while not list(out.parent.glob(".meeg-inverse-partial-*")) and first.poll() is None:
            time.sleep(0.05)
        second = cli(base(f, out))
        first.communicate(timeout=BUDGET_S)
        if first.returncode != 0:  # the first run must finish undisturbed
            return -1, second.stdout, f"first run exit {first.returncode}; " + second.stderr
        return shell_status(second.returncode), second.stdout, second.stderr

    def empty_out(out):
        cwd = out.parent / "cwd"
        cwd.mkdir()
        res = _res(cli(base(f, ""), cwd=cwd))
        return res[0], res[1], res[2] + ("" if not list(cwd.iterdir()) else " WROTE INTO CWD")

    def closed_pipe(out):
        cmd = " ".join(f"'{a}'" for a in base(f, out, "--json"))
        res = subprocess.run(["bash", "-c", f"PYTHONPATH={ROOT} {sys.executable} -m "
                              f"meeg_inverse.cli {cmd} | true; echo status=${{PIPESTATUS[0]}} >&2"],
                             capture_output=True, text=True, timeout=BUDGET_S)
        status = int(re.search(r"status=(\d+)", res.stderr).group(1))
        return status, res.stdout, res.stderr

    def read_only(out, parent_only=False):
        if not can_unshare():
            return None
        install = out.parent / "install"
        home = out.parent / "home"
        shutil.copytree(ROOT / "meeg_inverse", install / "meeg_inverse",
                        ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        home.mkdir(exist_ok=True)
        cmd = " ".join(f"'{a}'" for a in base(f, out))
        binds = " && ".join(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}"
                            for d in (install, home))
        script = (f"{binds} && cd {out.parent} && HOME={home} TMPDIR={out.parent} "
                  f"PYTHONPATH={install} {sys.executable} -m meeg_inverse.cli {cmd}")
        res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                             text=True, timeout=BUDGET_S)
        return shell_status(res.returncode), res.stdout, res.stderr

    def api_baseline(out):
        code = ("import warnings, mne; from meeg_inverse.pipeline import localize\n"
                f"e = mne.read_evokeds('{SAMPLE}/MEG/test-ave.fif.gz', condition='Left Auditory',"
                " baseline=None, verbose=False).crop(0.05, 0.15)\n"
                f"f = mne.read_forward_solution('{f['fwd']}', verbose=False)\n"
                f"c = mne.read_cov('{SAMPLE}/MEG/test-cov.fif', verbose=False)\n"
                "with warnings.catch_warnings(record=True) as w:\n"
                "    warnings.simplefilter('always'); localize(e, f, c, alpha=0.5)\n"
                "hit = [x for x in w if 'baseline' in str(x.message)]\n"
                "print('warned' if hit else 'NO WARNING'); raise SystemExit(0 if hit else 3)\n")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=BUDGET_S)
        return res.returncode, res.stdout, res.stderr

    t = f["t_after_100ms"]
    step = 1 / f["sfreq"]
    recording_eeglab = EEGLAB / "test_raw.set"
    return [
        ("forward without the EEG", 1, 2, run(fwd="fwd_meg")),
        ("forward without the EEG, --allow-missing-types", 1, 0,
         run("--allow-missing-types", fwd="fwd_meg")),
        ("forward with every other channel", 1, 0, run(fwd="fwd_half")),
        ("covariance without the EEG", 1, 2, run(cov=f["cov_no_eeg"])),
        ("covariance without 3 channels", 1, 0, run(cov=f["cov_minus3"])),
        ("EEGLAB, EOG electrodes, default condition and window", 2, 0,
         lambda out: _res(cli(["localize", recording_eeglab, "--montage",
                               EEGLAB / "test_chans.locs", "--montage-match", "order",
                               "--alpha", "0.3", "--no-figures", "--out", out]))),
        ("--exclude two channels", 2, 0, run("--exclude", "MEG 0113,EEG 001")),
        ("--exclude an unknown channel", 2, 2, run("--exclude", "EOG1")),
        ("no --condition, no --tmin", 2, 0, run(window=False, condition=False)),
        ("API: uncorrected evoked cropped after the stimulus warns", 3, 0, api_baseline),
        ("--forward without --subjects-dir", 4, 0, run()),
        ("second run into a result", 5, 2, previous_then()),
        ("--overwrite a result", 5, 0, previous_then("--overwrite")),
        ("SIGTERM while running", 6, 128 + signal.SIGTERM,
         lambda out: signal_run(base(f, out), signal.SIGTERM, out.parent, 0.5)),
        ("SIGHUP while running", 6, 128 + signal.SIGHUP,
         lambda out: signal_run(base(f, out), signal.SIGHUP, out.parent, 0.5)),
        ("staging folders of dead processes", 6, 0, stale_then_run),
        ("250-character --out", 7, 0, lambda out: _res(cli(base(f, out.parent / ("x" * 250))))),
        ("256-character --out", 7, 2, lambda out: _res(cli(base(f, out.parent / ("x" * 256))))),
        ("two runs into one --out", 8, 2, two_runs),
        ("--out ''", 9, 2, empty_out),
        ("read-only install and HOME", 10, 0, read_only),
        ("--json on an error", 11, 2, run("--json", "--tol", "-1")),
        ("--json on a usage error", 11, 2, run("--json", "--alpha", "abc")),
        ("--json | true", 12, 0, closed_pipe),
        ("ASCII-only stdout", 12, 0,
         lambda out: _res(cli(base(f, out), env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"}))),
        ("Ctrl-C while starting (0.6 s)", 13, 128 + signal.SIGINT,
         lambda out: signal_run(base(f, out), signal.SIGINT, None, 0.6)),
        ("--tol -1", 14, 2, run("--tol", "-1")),
        ("empty file", 15, 2, run(recording=f["empty"])),
        ("--tmin 0.15 --tmax 0.05", 15, 2, run("--tmin", "0.15", "--tmax", "0.05", window=False)),
        ("window between two samples", 15, 2,
         run("--tmin", f"{t + 0.2 * step:.6f}", "--tmax", f"{t + 0.6 * step:.6f}",
             window=False)),
        ("NaN in the forward", 15, 2, run(fwd="fwd_nan")),
        ("named pipe as the recording", 15, 2, run(recording=f["fifo"])),
        ("--alpha 1.5", 15, 2, run("--alpha", "1.5")),
        ("--alpha nan", 15, 2, run("--alpha", "nan")),
        ("benchmark --quick without data", 16, 2,
         lambda out: _res(cli(["benchmark", "--quick"],
                              env={"MEEG_INVERSE_SHARED_DATA": str(out.parent / "none")}))),
        ("view without a browser", 16, 1,
         lambda out: (cli(base(f, out)), (out / "viewer.html").write_text("<html/>"),
                      _res(cli(["view", out], env={"BROWSER": "false", "DISPLAY": ""})))[-1]),
        ("view --show --src missing", 16, 2,
         lambda out: (cli(base(f, out)), _res(cli(["view", out, "--show", "--src",
                                                   out.parent / "missing-src.fif"])))[-1]),
        ("--penalty weighted_l21", 16, 2, run("--penalty", "weighted_l21")),
        ("irmxne --gamma 2", 16, 2, run("--penalty", "irmxne", "--gamma", "2")),
    ]


def leftovers(folder):
    return [p.name for p in folder.iterdir() if LEFTOVER.match(p.name)] if folder.is_dir() else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only cases whose name holds this text")
    args = parser.parse_args()
    if not (SAMPLE / "MEG" / "test-ave.fif.gz").exists():
        raise SystemExit(f"sweep: the sample data are missing under {SHARED} "
                         "(set MEEG_INVERSE_SHARED_DATA; see CONTRIBUTING.md)")
    with tempfile.TemporaryDirectory(prefix="meeg-inverse-sweep-") as tmp:
        tmp = Path(tmp)
        files = prepare(tmp)
        n_bad = 0
        print(f"{'item':>4}  {'case':58s} {'exit':>9}  {'traceback':9}  {'leftover':8}  "
              f"{'time':>6}  verdict")
        for k, (name, item, expected, runner) in enumerate(cases(files, tmp)):
            if args.k.lower() not in name.lower():
                continue
            work = tmp / f"case{k:02d}"
            work.mkdir()
            out = work / "r"
            t0 = time.perf_counter()
            try:
                result = runner(out)
            except subprocess.TimeoutExpired:
                result = (-999, "", "TIMEOUT")
            elapsed = time.perf_counter() - t0
            if result is None:
                print(f"{item:>4}  {name:58s} {'-':>9}  {'-':9}  {'-':8}  {'-':>6}  skipped "
                      "(needs unshare -m)")
                continue
            status, stdout, stderr = result
            traceback = "Traceback" in stderr or "Traceback" in stdout
            left = leftovers(work) + leftovers(out)
            partial = bool(left) or (status != 0 and out.exists() and expected != 0
                                     and not name.startswith(("second", "two", "view")))
            ok = (status == expected and not traceback and not partial
                  and elapsed < BUDGET_S and "please report" not in stderr * (status == 2))
            n_bad += not ok
            print(f"{item:>4}  {name:58s} {status:>4} ({expected:>2})  "
                  f"{'yes' if traceback else 'no':9}  {'yes' if partial else 'no':8}  "
                  f"{elapsed:5.1f}s  {'ok' if ok else 'FAIL'}"
                  + ("" if ok else f"  <- {(stderr.strip().splitlines() or [''])[-1][:100]}"))
        print(f"\n{n_bad} case(s) failed" if n_bad else "\nall cases ok")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
