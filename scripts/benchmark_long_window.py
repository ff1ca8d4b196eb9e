"""Peak memory (and time) of localizing a long raw window: ours vs MNE's mixed_norm.

The case of issue 18: EEGLAB's 32-channel sample EEG (238 s at 128 Hz) on the
fsaverage template head (ico-4, 5124 sources, loose 0.2), the window 5-235 s
(29 440 samples), alpha = 20 % of lambda_max, defaults otherwise (time_pca, debias):

* ours: ``meeg_inverse.localize_raw(raw, fwd, cov, 5, 235, alpha=20)``;
* MNE: the same window as an ``EvokedArray`` with the average-reference
  projector, then ``mne.inverse_sparse.mixed_norm(evoked, fwd, cov, alpha=20)``.

Each call runs in a fresh subprocess that has already read the same inputs (raw,
forward, covariance: prepared once by the parent and cached under
``.cache/bench``), measured the same way: the process's peak resident memory
during the call above its resident memory just before (``VmHWM - VmRSS`` from
``/proc/self/status``), the peak of numpy/Python allocations during the call
(``tracemalloc``), and the wall time. Medians over ``--repeat`` runs, ratios printed.

Usage::

    python scripts/benchmark_long_window.py [--repeat 3] [--start 5] [--stop 235]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EEGLAB = ROOT.parent / "shared" / "data" / "eeglab"
CACHE = ROOT / ".cache" / "bench"

CHILD = r"""
import json, sys, time, tracemalloc, warnings
warnings.simplefilter("ignore")
import mne, numpy as np
mne.set_log_level("ERROR")
which, start, stop, raw_f, fwd_f, cov_f, alpha = sys.argv[1:8]
start, stop = float(start), float(stop)
alpha = alpha if alpha in ("auto", "bic", "qut", "sure") else float(alpha)
raw = mne.io.read_raw_fif(raw_f, preload=True)
fwd = mne.read_forward_solution(fwd_f)
cov = mne.read_cov(cov_f)
if which == "ours":
    from meeg_inverse import localize_raw
    localize_raw(raw.copy().crop(0, 1.0), fwd, cov, 0.1, 0.9, alpha=20)  # compile / import
else:
    from mne.inverse_sparse import mixed_norm

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0

def run():
    if which == "ours":
        return localize_raw(raw, fwd, cov, start, stop, alpha=alpha)
    first, last = raw.time_as_index([start, stop], use_rounding=True)
    evoked = mne.EvokedArray(raw.get_data(start=first, stop=last + 1), raw.info,
                             tmin=raw.times[first], nave=1)
    evoked.set_eeg_reference("average", projection=True)
    return mixed_norm(evoked, fwd, cov, alpha=20)

before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
    f.write("5")
tracemalloc.start()
t0 = time.perf_counter()
stc = run()
wall = time.perf_counter() - t0
_, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"rss_before": before, "hwm": status("VmHWM"), "traced_peak": traced_peak,
                  "wall": wall, "n_sources": int(stc.data.shape[0]),
                  "n_times": int(stc.data.shape[1])}))
"""


def prepare(start, stop):
    """Raw (with the montage), template forward and noise covariance, cached as FIF."""
    import mne

    from meeg_inverse.forward import make_template_forward
    from meeg_inverse.io import set_average_reference

    CACHE.mkdir(parents=True, exist_ok=True)
    raw_f, fwd_f, cov_f = (CACHE / "eeglab-raw.fif", CACHE / "eeglab-template-fwd.fif",
                           CACHE / "eeglab-cov.fif")
    if not (raw_f.exists() and fwd_f.exists() and cov_f.exists()):
        raw = mne.io.read_raw_eeglab(EEGLAB / "test_raw.set", preload=True, verbose=False)
        montage = mne.channels.read_custom_montage(EEGLAB / "test_chans.locs")
        mne.rename_channels(raw.info, dict(zip(raw.ch_names, montage.ch_names)))
        raw.set_montage(montage, verbose=False)
        fwd, _, _ = make_template_forward(raw.info, spacing="ico4")
        raw.save(raw_f, overwrite=True, verbose=False)
        mne.write_forward_solution(fwd_f, fwd, overwrite=True, verbose=False)
        cov = mne.compute_raw_covariance(set_average_reference(raw.copy()), tmin=0, tmax=start,
                                         method="empirical", rank="info", verbose=False)
        cov.save(cov_f, overwrite=True, verbose=False)
    return raw_f, fwd_f, cov_f


def measure(which, files, start, stop, alpha="20"):
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(start), str(stop),
                          *map(str, files), str(alpha)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                              "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--start", type=float, default=5.0)
    parser.add_argument("--stop", type=float, default=235.0)
    parser.add_argument("--alpha", default="20",
                        help="ours: a percentage of lambda_max or a rule ('auto'); MNE: 20")
    args = parser.parse_args()
    files = prepare(args.start, args.stop)
    runs = {"ours": [], "mne": []}
    for _ in range(args.repeat):  # alternate, so both see the same machine load
        for which in runs:
            runs[which].append(measure(which, files, args.start, args.stop, args.alpha))
    gb = 1024 ** 3
    summary = {}
    for which, rs in runs.items():
        summary[which] = {
            "call_peak_gb": statistics.median((r["hwm"] - r["rss_before"]) / gb for r in rs),
            "process_peak_gb": statistics.median(r["hwm"] / gb for r in rs),
            "traced_peak_gb": statistics.median(r["traced_peak"] / gb for r in rs),
            "wall_s": statistics.median(r["wall"] for r in rs),
            "n_sources": rs[0]["n_sources"], "n_times": rs[0]["n_times"]}
    print(f"window {args.start}-{args.stop} s, medians of {args.repeat} runs each")
    print(f"{'':6s} {'call peak GB':>13s} {'process peak GB':>16s} {'numpy peak GB':>14s} "
          f"{'wall s':>8s} {'sources':>8s} {'samples':>8s}")
    for which, m in summary.items():
        print(f"{which:6s} {m['call_peak_gb']:13.3f} {m['process_peak_gb']:16.3f} "
              f"{m['traced_peak_gb']:14.3f} {m['wall_s']:8.1f} {m['n_sources']:8d} "
              f"{m['n_times']:8d}")
    o, m = summary["ours"], summary["mne"]
    print(f"ratio ours/MNE: call peak {o['call_peak_gb'] / m['call_peak_gb']:.2f}, "
          f"numpy peak {o['traced_peak_gb'] / m['traced_peak_gb']:.2f}, "
          f"wall {o['wall_s'] / m['wall_s']:.2f}")
    return summary


if __name__ == "__main__":
    main()
