"""End-to-end speed and memory: what a user waits for, ours next to MNE.

One process runs every competitor side by side (alternating, medians of
``--repeats`` runs, ratios printed):

1. **API on the 5 mm volume** (35 826 gain columns, 'Left Auditory' 50-150 ms,
   61 samples, baseline-corrected): ``sparse_inverse(evoked, fwd, cov, alpha,
   loose=1, depth=0.9, tol=1e-6, debias=False, time_pca=False)`` against
   ``mne.inverse_sparse.mixed_norm`` with the same arguments, at α = 50 % and
   30 %; same support checked; the solve's share of our wall time printed,
   with the 1-min load average and the CPU-time ratio. Each timed call comes
   after a ``--settle`` pause (1 s): right after a ``mixed_norm`` call a call of
   ours took ~0.4 s more wall time at the same CPU time.
2. **An operator applied to a second evoked** ('Right Auditory', same
   window): wall time of ``operator.apply`` over the time of its solve.
3. **The whole job**, fresh processes: ``meeg-inverse localize`` with its
   defaults on 'Left Auditory', 50-150 ms (61 samples; MNE's SURE on the
   whole 421-sample average takes over 10 min per run on the shared 2-core
   box) (508-source surface forward: read, prepare,
   select λ, solve, debias, write stc/json, figures, viewer) against a script
   doing the MNE equivalent (read, ``mixed_norm(alpha='sure')``, write the
   stc, one ``plot_sparse_source_estimates``-style figure: the source-space
   surface with the active sources as spheres, off-screen, and their time
   courses). Peak memory of each: the maximum resident set size of one
   process (``/usr/bin/time -v``), the peak of the summed resident set
   sizes of the whole process tree (sampled every 20 ms: a child that renders
   or probes while its parent works adds to what the machine must hold), and
   the peak of each process (ours: the launcher and its compute, figures and
   report stages, run one after the other; the VTK probe).
4. ``meeg-inverse --help`` wall time.

The load of the machine (``uptime``) is printed before and after: on a
shared box, every number is only as good as that.

Usage::

    python scripts/benchmark_end_to_end.py [--repeats 3] [--skip api,operator,job,help]
        [--settle 1.0]

The forwards are built once and cached under ``.cache/`` (see
``scripts/benchmark_solvers.py``).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
SHARED = Path(os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE = SHARED / "sample"
EVOKED = SAMPLE / "MEG" / "test-ave.fif.gz"
COV = SAMPLE / "MEG" / "test-cov.fif"
SURFACE_FWD = ROOT / ".cache" / "tests" / "sample-small-meeg-fwd.fif"
#: Time window of the whole-job comparison (61 samples, the issue's): on the whole
#: 421-sample average MNE's SURE grid takes over 10 min per run on the shared box.
WINDOW = (0.05, 0.15)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def median(values):
    return statistics.median(values)


def fmt(values):
    return f"{median(values):7.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)})"


# --------------------------------------------------------------------------
# 1 + 2: API on the 5 mm volume, operator on a second evoked
# --------------------------------------------------------------------------
def _read_window(condition):
    import mne

    return mne.read_evokeds(EVOKED, condition=condition, baseline=(None, 0),
                            verbose=False).crop(0.05, 0.15)


def bench_api(repeats, settle=1.0):
    import mne
    import numpy as np

    from benchmark_solvers import _forward
    from meeg_inverse import sparse_inverse
    from meeg_inverse.solvers import warmup

    evoked = _read_window("Left Auditory")
    cov = mne.read_cov(COV, verbose=False)
    fwd = _forward("volume", evoked)
    n_cols = fwd["sol"]["data"].shape[1]
    print(f"\n1. API on the 5 mm volume ({n_cols} gain columns, {len(evoked.times)} samples)")
    print(f"   numba kernels loaded before timing: {warmup():.2f} s (excluded); "
          f"{settle:g} s pause before each timed call")
    kwargs = dict(loose=1.0, depth=0.9, tol=1e-6, debias=False, time_pca=False)
    # One untimed call of each at a large alpha: the modules both import on their
    # first call (MNE's mixed_norm imports scikit-learn then, ~1 s) are not timed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        sparse_inverse(evoked, fwd, cov, alpha=90, **kwargs)
        t1 = time.perf_counter()
        mne.inverse_sparse.mixed_norm(evoked, fwd, cov, alpha=90, verbose=False, **kwargs)
    print(f"   warm-up calls at alpha = 90 % (excluded): ours {t1 - t0:.2f} s, MNE "
          f"{time.perf_counter() - t1:.2f} s")
    rows = []
    for alpha in (50, 30):
        ours, theirs, solve_share, same, loads = [], [], [], [], []
        cpu_ours, cpu_theirs = [], []
        for _ in range(repeats):
            loads.append(os.getloadavg()[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                time.sleep(settle)
                t0, c0 = time.perf_counter(), time.process_time()
                res = sparse_inverse(evoked, fwd, cov, alpha=alpha, return_result=True,
                                     **kwargs)
                ours.append(time.perf_counter() - t0)
                cpu_ours.append(time.process_time() - c0)
                solve_share.append(res.timings["solve"] / ours[-1])
                time.sleep(settle)
                t0, c0 = time.perf_counter(), time.process_time()
                stc_mne = mne.inverse_sparse.mixed_norm(evoked, fwd, cov, alpha=alpha,
                                                        verbose=False, **kwargs)
                theirs.append(time.perf_counter() - t0)
                cpu_theirs.append(time.process_time() - c0)
            stc = res.estimates[0]
            same.append(np.array_equal(np.concatenate(stc.vertices),
                                       np.concatenate(stc_mne.vertices)))
        ratio = median(theirs) / median(ours)
        print(f"   alpha = {alpha} %: ours {fmt(ours)}")
        print(f"               MNE  {fmt(theirs)}")
        print(f"               ratio MNE/ours = {ratio:.1f}x (1-min load {min(loads):.1f}-"
              f"{max(loads):.1f}); solve share of our wall time "
              f"{100 * median(solve_share):.0f} %; same support in {sum(same)}/{len(same)} "
              f"runs ({len(np.concatenate(stc.vertices))} sources ours, "
              f"{len(np.concatenate(stc_mne.vertices))} MNE)")
        # CPU time (all threads of the process): what each computes, less
        # sensitive to the other jobs on a shared machine than wall time.
        print(f"               CPU time: ours {median(cpu_ours):.2f} s, MNE "
              f"{median(cpu_theirs):.2f} s, ratio {median(cpu_theirs) / median(cpu_ours):.1f}x")
        rows.append((alpha, median(ours), median(theirs), ratio, median(solve_share)))
    return rows


def bench_operator(repeats):
    import mne

    from benchmark_solvers import _forward
    from meeg_inverse import make_sparse_inverse_operator

    first = _read_window("Left Auditory")
    second = _read_window("Right Auditory")
    cov = mne.read_cov(COV, verbose=False)
    fwd = _forward("volume", first)
    t0 = time.perf_counter()
    op = make_sparse_inverse_operator(first.info, fwd, cov, loose=1.0, depth=0.9)
    t_make = time.perf_counter() - t0
    print(f"\n2. Operator (5 mm volume) applied to a second evoked; made in {t_make:.2f} s")
    rows = []
    for alpha in (50, 30):
        wall, solve = [], []
        for _ in range(repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                res = op.apply(second, alpha=alpha, tol=1e-6, debias=False, time_pca=False,
                               return_result=True)
                wall.append(time.perf_counter() - t0)
            solve.append(res.timings["solve"])
        ratio = median(wall) / median(solve)
        print(f"   alpha = {alpha} %: apply {fmt(wall)}; its solve {median(solve):.2f} s; "
              f"apply/solve = {ratio:.2f}")
        rows.append((alpha, median(wall), median(solve), ratio))
    return rows


# --------------------------------------------------------------------------
# 3: the whole job, fresh processes
# --------------------------------------------------------------------------
def mne_job(out_dir):
    """The MNE equivalent of ``meeg-inverse localize`` (run in a fresh process)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne
    import numpy as np
    import pyvista as pv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    evoked = mne.read_evokeds(EVOKED, condition="Left Auditory", baseline=(None, 0),
                              verbose=False).crop(*WINDOW)
    cov = mne.read_cov(COV, verbose=False)
    fwd = mne.read_forward_solution(SURFACE_FWD, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stc = mne.inverse_sparse.mixed_norm(evoked, fwd, cov, alpha="sure", loose="auto",
                                            depth=0.8, random_state=0, verbose=False)
    stc.save(out_dir / "mne-sources", ftype="stc", overwrite=True, verbose=False)
    # plot_sparse_source_estimates-style: the source surfaces, the active sources
    # as spheres (off-screen; MNE's own needs an interactive 3D backend), and their
    # time courses.
    pv.OFF_SCREEN = True
    pl = pv.Plotter(off_screen=True, window_size=(800, 600))
    src = fwd["src"]
    for s in src:
        faces = np.hstack([np.full((len(s["use_tris"]), 1), 3),
                           np.searchsorted(s["vertno"], s["use_tris"])]).ravel()
        pl.add_mesh(pv.PolyData(s["rr"][s["vertno"]], faces), color="w", opacity=0.3)
    positions = []
    for s, vertices in zip(src, stc.vertices):
        positions.append(s["rr"][vertices])
    positions = np.concatenate(positions)
    if len(positions):
        pl.add_mesh(pv.PolyData(positions).glyph(geom=pv.Sphere(radius=0.004), scale=False),
                    color="r")
    pl.screenshot(str(out_dir / "mne-sources-3d.png"))
    pl.close()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(1e3 * stc.times, 1e9 * stc.data.T)
    ax.set(xlabel="Time (ms)", ylabel="Source amplitude (nA·m)")
    fig.savefig(out_dir / "mne-sources-timecourses.png", dpi=100)
    print(f"MNE: {len(np.concatenate(stc.vertices))} active sources")


def _tree_rss(root_pid):
    """Resident set size (MB) of a process and each of its descendants (Linux /proc).

    Returns ``{pid: (MB, label)}``: the summed value is what the machine has to
    hold at that moment (a child that renders or probes while its parent works
    adds to it; shared library pages are counted once per process, so the sum
    is an upper bound).
    """
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        found[pid] = (int(line.split()[1]) / 1024, _label(pid))
                        break
        except OSError:
            continue
    return found


def _tree_rss_mb(root_pid):
    """Summed resident set size (MB) of a process and all its descendants."""
    return sum(mb for mb, _ in _tree_rss(root_pid).values())


def _label(pid):
    """What a process of the job is: a stage of meeg-inverse localize, the VTK probe, ..."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if any("meeg_inverse._stages" in a for a in argv) and len(argv) > 4:
        return f"{argv[4]} stage"
    if any("pyvista" in a for a in argv):
        return "VTK probe"
    if "meeg_inverse.cli" in argv:
        return "launcher"
    return Path(argv[0]).name


def _run_timed(cmd, env):
    """Wall time, maximum RSS (MB), peak summed RSS of the process tree (MB), the process.

    The maximum RSS is ``/usr/bin/time -v``'s (the largest single process); the
    summed peak samples the whole tree every 20 ms (children included), and the
    peak of each kind of process (:func:`_label`) is kept in ``proc.peaks``.
    """
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    peak, peaks = [0.0], {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            found = _tree_rss(proc.pid)
            peak[0] = max(peak[0], sum(mb for mb, _ in found.values()))
            for mb, label in found.values():
                peaks[label] = max(peaks.get(label, 0.0), mb)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    # /usr/bin/time itself (~2 MB) is in the tree; it is not the job's.
    peaks.pop("time", None)
    done_proc = subprocess.CompletedProcess(cmd, 0, stdout, stderr)
    done_proc.peaks = peaks
    return wall, rss / 1024, peak[0], done_proc


def bench_job(repeats, mne_repeats=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if not SURFACE_FWD.exists():
        from benchmark_solvers import _forward

        _forward("surface", _read_window("Left Auditory"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    ours_cmd = [sys.executable, "-m", "meeg_inverse.cli", "localize", str(EVOKED),
                "--condition", "Left Auditory", "--noise-cov", str(COV),
                "--forward", str(SURFACE_FWD), "--tmin", str(WINDOW[0]), "--tmax",
                str(WINDOW[1]), "--out", str(tmp / "ours"), "--quiet", "--overwrite"]
    mne_cmd = [sys.executable, str(Path(__file__).resolve()), "--mne-job", str(tmp / "mne")]
    print("\n3. The whole job, fresh processes: meeg-inverse localize (defaults) vs the MNE "
          "equivalent")
    print("   ours: " + " ".join(ours_cmd[1:]))
    mne_repeats = repeats if mne_repeats is None else mne_repeats
    ours, theirs, ours_rss, theirs_rss, ours_tree, theirs_tree = [], [], [], [], [], []

    def timed(k, name, cmd, walls, rsss, trees):
        wall, rss, tree, proc = _run_timed(cmd, env)
        walls.append(wall)
        rsss.append(rss)
        trees.append(tree)
        each = ", ".join(f"{label} {mb:.0f}" for label, mb in proc.peaks.items())
        print(f"   run {k + 1}: {name} {wall:.1f} s, max RSS {rss:.0f} MB, "
              f"process tree peak {tree:.0f} MB (peak of each process, MB: {each})",
              flush=True)
        return proc

    try:
        for k in range(max(repeats, mne_repeats)):
            if k < repeats:
                timed(k, "ours", ours_cmd, ours, ours_rss, ours_tree)
            if k < mne_repeats:
                proc = timed(k, "MNE ", mne_cmd, theirs, theirs_rss, theirs_tree)
        with open(tmp / "ours" / "summary.json") as f:
            import json

            summary = json.load(f)
        print(f"   ours {fmt(ours)}, max RSS {median(ours_rss):.0f} MB "
              f"(runs: {', '.join(f'{r:.0f}' for r in ours_rss)}), process tree peak "
              f"{median(ours_tree):.0f} MB (runs: {', '.join(f'{r:.0f}' for r in ours_tree)}); "
              f"{summary['n_active_sources']} active sources, lambda = "
              f"{summary['alpha_fraction_of_max']:.3f} x lambda_max")
        if not theirs:  # --mne-job-repeats 0: ours only
            return median(ours), None, None, median(ours_rss), None, median(ours_tree), None
        print(f"   MNE  {fmt(theirs)}, max RSS {median(theirs_rss):.0f} MB, process tree peak "
              f"{median(theirs_tree):.0f} MB; {proc.stdout.strip().splitlines()[-1]}")
        ratio = median(theirs) / median(ours)
        print(f"   ratio MNE/ours = {ratio:.1f}x end to end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return (median(ours), median(theirs), ratio, median(ours_rss), median(theirs_rss),
            median(ours_tree), median(theirs_tree))


def bench_help(repeats):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    walls = []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "meeg_inverse.cli", "--help"], check=True,
                       capture_output=True, env=env)
        walls.append(time.perf_counter() - t0)
    print(f"\n4. meeg-inverse --help: {fmt(walls)}")
    return median(walls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: api,operator,job,help")
    parser.add_argument("--mne-job-repeats", type=int, default=None,
                        help="runs of the MNE whole job (default --repeats; one takes "
                             "10-20 min on a loaded 2-core box; 0: ours only)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="pause (s) before each timed API call, ours and MNE's: right "
                             "after a mixed_norm call, a call of ours took 0.4 s more wall "
                             "time at the same CPU time (volume, alpha = 50 %%, load 4-5), "
                             "as if the machine were still busy with MNE's call")
    parser.add_argument("--mne-job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mne_job:
        mne_job(args.mne_job)
        return
    skip = set(filter(None, args.skip.split(",")))
    print(f"load before: {uptime()}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, repeats {args.repeats}")
    if "api" not in skip:
        bench_api(args.repeats, args.settle)
    if "operator" not in skip:
        bench_operator(args.repeats)
    if "job" not in skip:
        bench_job(args.repeats, args.mne_job_repeats)
    if "help" not in skip:
        bench_help(args.repeats)
    print(f"\nload after: {uptime()}")


if __name__ == "__main__":
    main()
