"""Cohort benchmark: 1 vs 2 Dask workers, the scheduler's overhead per task, memory per task.

Builds a BIDS dataset with mne-bids from the shared data (tests/_cohort_data.py:
EEGLAB's recording as 2 subjects x 2 runs on the template head, plus N_SIM subjects
simulated on the real sample forward), then in ONE process, side by side:

- the whole cohort (``run_cohort(force=True)``: forwards, operators, every
  localization, the group summary) on a 1-worker and on a 2-worker LocalCluster
  (clusters started beforehand: their start-up is not counted), alternated,
  ``--repeats`` times; medians and the speed-up ratio;
- the same cohort serially in this process (``workers=0``, one BLAS thread):
  (1-worker time - serial time) / tasks is what Dask adds per task (scheduling,
  pickling, the operator read once per worker);
- ``--n-noop`` empty tasks on the 2-worker cluster: the scheduler's own cost
  per task;
- each worker's peak resident memory (``ru_maxrss``) after the runs, and the
  sizes of the per-subject files (forward, operator) and per-task outputs.

Other processes may share the cores: the load average is printed beside the
timings; the ratios come from runs interleaved in one process.

    PYTHONPATH=$PWD python scripts/benchmark_cohort.py [--n-sim 8] [--repeats 2]
"""

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _noop(i):
    return i


def _maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root, n_sim, seed=0):
    import mne

    from _cohort_data import write_dataset
    from conftest import CACHE, EEGLAB, sample_layout, sample_source

    kind, folder = sample_source()
    paths = sample_layout(kind, folder)
    fwd_file = CACHE / "sample-small-meeg-fwd.fif"
    if not fwd_file.exists():
        sys.exit(f"{fwd_file} is missing: run tests/test_cohort.py once (it caches it).")
    evoked = mne.read_evokeds(paths["evoked"], condition="Left Auditory", baseline=(None, 0),
                              verbose=False)
    cov = mne.read_cov(paths["cov"], verbose=False)
    rng = np.random.default_rng(seed)
    sim = {f"sim{k + 1:02d}": [(0, int(rng.integers(258)), 55.0),
                               (1, int(rng.integers(258)), 55.0)] for k in range(n_sim)}
    write_dataset(root, eeglab_dir=EEGLAB, sample_paths=paths, forward_file=fwd_file,
                  evoked=evoked, noise_cov=cov, sim_sources=sim)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sim", type=int, default=8, help="simulated subjects (8)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (2)")
    parser.add_argument("--n-noop", type=int, default=400, help="empty tasks (400)")
    parser.add_argument("--confidence", type=int, default=20,
                        help="resamples per source's confidence (20; the default rule's "
                             "cost per task)")
    args = parser.parse_args()

    import mne
    from distributed import Client, LocalCluster

    from _cohort_data import FORWARD_PATTERN, TASK
    from meeg_inverse.cohort import CohortOptions, run_cohort

    mne.set_log_level("ERROR")
    warnings.simplefilter("ignore")  # the small simulated baselines warn on every run
    tmp = Path(tempfile.mkdtemp(prefix="bench-cohort-"))
    try:
        root = tmp / "ds"
        build(root, args.n_sim)
        options = CohortOptions(forward=FORWARD_PATTERN,
                                montage=str(ROOT.parent / "shared/data/eeglab/test_chans.locs"),
                                montage_match="order", spacing="ico3", tmax=0.3,
                                confidence=args.confidence,
                                figures=False)
        kw = dict(conditions=["square", "tone"], options=options, force=True, progress=False)
        env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    dashboard_address=":0", env=env, silence_logs=50)
                    for n in (1, 2)}
        clients = {n: Client(c) for n, c in clusters.items()}
        # warm-up: imports and numba caches in every process
        n_tasks = None
        for n, client in clients.items():
            res = run_cohort(root, TASK, client=client, out=tmp / f"out{n}", **kw)
            n_tasks = res.counts["done"] + res.counts["failed"]
        run_cohort(root, TASK, workers=0, out=tmp / "out0", **kw)
        times = {0: [], 1: [], 2: []}
        busy = {0: [], 1: [], 2: []}
        for _ in range(args.repeats):
            for n in (1, 2, 0):
                t0 = time.perf_counter()
                if n == 0:
                    res = run_cohort(root, TASK, workers=0, out=tmp / "out0", **kw)
                else:
                    res = run_cohort(root, TASK, client=clients[n], out=tmp / f"out{n}", **kw)
                times[n].append(time.perf_counter() - t0)
                busy[n].append(sum(t.get("seconds") or 0 for t in res.tasks)
                               + sum(o.get("seconds") or 0 for o in res.operators))
        load = os.getloadavg()
        med = {n: statistics.median(v) for n, v in times.items()}
        print(f"dataset: {len(list(root.glob('sub-*')))} subjects, {n_tasks} tasks "
              f"(1 failing on purpose); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        for n, label in ((0, "serial (no Dask)"), (1, "1 worker"), (2, "2 workers")):
            print(f"  {label:18s} median {med[n]:7.2f} s  runs "
                  + " ".join(f"{t:.2f}" for t in times[n])
                  + f"  (time inside the tasks: median {statistics.median(busy[n]):.2f} s)")
        print(f"speed-up 1 -> 2 workers: {med[1] / med[2]:.2f}x (goal >= 1.7x)")
        print(f"Dask cost per task (1 worker - serial) / tasks: "
              f"{(med[1] - med[0]) / n_tasks * 1e3:+.0f} ms")
        client = clients[2]
        noop = []
        for _ in range(3):
            t0 = time.perf_counter()
            futures = client.map(_noop, range(args.n_noop), pure=False)
            client.gather(futures)
            noop.append((time.perf_counter() - t0) / args.n_noop)
            del futures
        print(f"scheduler overhead per empty task (2 workers, {args.n_noop} tasks): "
              f"median {statistics.median(noop) * 1e3:.2f} ms")
        rss = clients[2].run(_maxrss_mb)
        print("peak resident memory per worker process (MB): "
              + ", ".join(f"{v:.0f}" for v in rss.values())
              + f"; this process: {_maxrss_mb():.0f}")
        out = tmp / "out2"
        sizes = {
            "forward (per subject)": [p.stat().st_size for p in out.glob("sub-*/*_fwd.fif")],
            "operator .h5 (per subject)": [p.stat().st_size for p in out.glob("sub-*/*_inv.h5")],
            "one task's outputs": [sum(f.stat().st_size for f in d.iterdir())
                                   for d in out.glob("sub-*/*_desc-*")],
        }
        for name, values in sizes.items():
            print(f"  {name}: median {statistics.median(values) / 1e6:.2f} MB, "
                  f"max {max(values) / 1e6:.2f} MB")
        for c in clients.values():
            c.close()
        for c in clusters.values():
            c.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
