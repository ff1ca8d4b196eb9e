"""Benchmark the meeg-inverse solver engine against MNE, skglm, celer, scikit-learn.

Problems (real MNE 'sample' data, 'Left Auditory' cropped to 0.05–0.15 s, 61
samples, whitened, time-PCA'd and scaled exactly as ``mne.inverse_sparse.mixed_norm``
does, so α is a percentage of α_max):

* ``surface``: the small surface source space (511 sources, free orientation);
* ``volume``: a 5 mm volume source space inside the inner skull (3-layer BEM);
  its forward is cached under ``.cache/bench/``.

Fairness rules
--------------
* Every solver solves the same ``min ½‖M − GX‖² + α Σ_k ‖X_k‖`` (scikit-learn,
  celer and skglm scale the datafit by 1/n_channels: their α is α/n_channels).
* All are brought to the same final objective: the reference optimum ``P*`` is
  our solver at tol=1e-10; each competitor's tolerance is tightened (×0.1)
  until ``(P − P*)/‖M‖² ≤ 1e-6`` (the duality-gap tolerance MNE's ``tol=1e-6``
  means), then timed with that tolerance.  Achieved suboptimality is printed.
* skglm, celer and scikit-learn have no groups of 3 for multi-task problems,
  so they run the fixed-orientation variant (n_orient=1, every column its own
  source) against ours and MNE with n_orient=1 on the same matrix.
* Compile time is excluded (``warmup()`` before timing, each library run once
  untimed) and reported separately for numba (cold cache vs warm cache, in
  fresh processes).  Medians over ``--repeats`` runs.  BLAS is limited to
  ``--blas-threads`` threads for everybody (default 1: small BLAS calls are
  much slower threaded on a shared 2-core machine).
* Peak memory: tracemalloc peak of one extra (untimed) run per solver.

Usage: ``python scripts/benchmark_solvers.py [--quick] [--repeats 3]``
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE = SHARED / "sample"
TARGET_SUBOPT = 1e-6


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------
def _read_inputs():
    import mne

    # Baseline-corrected as the pipeline does: the file's averages were saved without
    # it, and their channel offsets dominated the whitened data of earlier runs.
    evoked = mne.read_evokeds(SAMPLE / "MEG" / "test-ave.fif.gz", condition="Left Auditory",
                              baseline=(None, 0), verbose=False).crop(0.05, 0.15)
    cov = mne.read_cov(SAMPLE / "MEG" / "test-cov.fif", verbose=False)
    return evoked, cov


def _forward(kind, evoked):
    import mne

    subjects_dir = SAMPLE / "subjects"
    if kind == "surface":
        cached = ROOT / ".cache" / "tests" / "sample-small-meeg-fwd.fif"

        def make_src():
            return mne.read_source_spaces(SAMPLE / "MEG" / "sample-small-src.fif.gz",
                                          verbose=False)
    else:
        cached = ROOT / ".cache" / "bench" / "sample-vol5mm-meeg-fwd.fif"

        def make_src():
            print("building the 5 mm volume forward (minutes, cached afterwards)...")
            return mne.setup_volume_source_space(
                "sample", pos=5.0, surface=str(subjects_dir / "sample" / "bem" / "inner_skull.surf"),
                subjects_dir=subjects_dir, verbose=False)
    return cached_forward(cached, evoked.info, make_src)


def cached_forward(path, info, make_src, bem=None):
    """Sample MEG+EEG forward (3-layer BEM; ``bem``: another BEM solution file) of the
    source space ``make_src()`` builds, cached at ``path`` (written through a temporary
    file: never a half-written cache; the source space is only built when the cache is
    absent)."""
    import mne

    if path.exists():
        return mne.read_forward_solution(path, verbose=False)
    fwd = mne.make_forward_solution(
        info, SAMPLE / "MEG" / "sample_audvis_trunc-trans.fif", make_src(),
        bem or SAMPLE / "subjects" / "sample" / "bem" / "sample-320-320-320-bem-sol.fif",
        meg=True, eeg=True, mindist=0.0, verbose=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("tmp-" + path.name)
    mne.write_forward_solution(tmp, fwd, overwrite=True, verbose=False)
    tmp.replace(path)
    return fwd


def required_files():
    """The shared data files the benchmark reads (see CONTRIBUTING.md to get them)."""
    meg, bem = SAMPLE / "MEG", SAMPLE / "subjects" / "sample" / "bem"
    return [meg / "test-ave.fif.gz", meg / "test-cov.fif", meg / "sample-small-src.fif.gz",
            meg / "sample_audvis_trunc-trans.fif", bem / "sample-320-320-320-bem-sol.fif"]


def check_data():
    """Stop at once, with the fix, when the data are missing (not after compiling)."""
    missing = [p for p in required_files() if not p.exists()]
    if missing:
        print(f"benchmark: error: the benchmark data are missing: {missing[0]}"
              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}.\n"
              f"  Fix: set MEEG_INVERSE_SHARED_DATA to the folder holding sample/MEG/... "
              f"(now {SHARED}); CONTRIBUTING.md says how to get the files.", file=sys.stderr)
        raise SystemExit(2)


def build_problem(kind):
    from meeg_inverse.solvers.mne_compat import mne_mixed_norm_problem

    evoked, cov = _read_inputs()
    fwd = _forward(kind, evoked)
    gain, data, n_orient = mne_mixed_norm_problem(fwd, evoked, cov, loose=1.0)
    return gain, data, n_orient


# --------------------------------------------------------------------------
# Solvers: each returns a dense coef (n_cols, n_times)
# --------------------------------------------------------------------------
def run_ours(gain, data, alpha, n_orient, tol, penalty="l21"):
    from meeg_inverse.solvers import solve

    return solve(gain, data, penalty, alpha=alpha, n_orient=n_orient, tol=tol).coef


def run_mne(gain, data, alpha, n_orient, tol):
    from mne.inverse_sparse.mxne_optim import mixed_norm_solver

    x, active, _ = mixed_norm_solver(data, gain, alpha, n_orient=n_orient,
                                     tol=tol * np.sum(data ** 2), maxit=100000,
                                     debias=False, active_set_size=10, verbose=False)
    coef = np.zeros((gain.shape[1], data.shape[1]))
    coef[active] = x
    return coef


def run_sklearn(gain, data, alpha, n_orient, tol):
    from sklearn.linear_model import MultiTaskLasso

    est = MultiTaskLasso(alpha=alpha / gain.shape[0], fit_intercept=False, tol=tol,
                         max_iter=200000)
    est.fit(gain, data)
    return est.coef_.T.copy()


def run_celer(gain, data, alpha, n_orient, tol):
    from celer.homotopy import mtl_path

    _, coefs, _ = mtl_path(gain, data, alphas=[alpha / gain.shape[0]], tol=tol,
                           max_epochs=200000)
    coefs = np.asarray(coefs)
    coef = coefs[..., 0] if coefs.ndim == 3 else coefs
    return coef if coef.shape[0] == gain.shape[1] else coef.T


def run_skglm(gain, data, alpha, n_orient, tol):
    from skglm import MultiTaskLasso

    est = MultiTaskLasso(alpha=alpha / gain.shape[0], tol=tol, fit_intercept=False,
                         max_epochs=200000)
    est.fit(gain, data)
    coef = np.asarray(est.coef_)
    return coef if coef.shape[0] == gain.shape[1] else coef.T


def l21_objective(gain, data, coef, alpha, n_orient):
    norms = np.linalg.norm(coef.reshape(coef.shape[0] // n_orient, -1), axis=1)
    return 0.5 * np.sum((data - gain @ coef) ** 2) + alpha * norms.sum()


# --------------------------------------------------------------------------
SLOW_RUN_S = 30.0


def timed(fn, *args, repeats=3):
    """Median wall time over ``repeats`` runs (a single run when one takes > 30 s)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
        if times[-1] > SLOW_RUN_S:
            break
    timed.n_runs = len(times)
    return float(np.median(times)), out


def peak_memory(fn, *args):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def calibrated(name, fn, gain, data, alpha, n_orient, p_star, tols):
    """First tolerance of ``tols`` reaching the target suboptimality."""
    norm_y2 = np.sum(data ** 2)
    for tol in tols:
        coef = fn(gain, data, alpha, n_orient, tol)
        sub = (l21_objective(gain, data, coef, alpha, n_orient) - p_star) / norm_y2
        if sub <= TARGET_SUBOPT:
            return tol
    print(f"   ! {name} did not reach the target suboptimality (last {sub:.1e})")
    return tols[-1]


def numba_compile_times():
    """Cold-cache compile vs warm-cache load of all kernels, fresh processes."""
    code = ("import time; t=time.perf_counter(); import meeg_inverse.solvers as s; "
            "s.warmup(); print(time.perf_counter()-t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def bench_problem(kind, args, rows):
    from meeg_inverse.solvers import warmup

    t0 = time.perf_counter()
    gain, data, n_orient = build_problem(kind)
    print(f"\n== {kind}: gain {gain.shape}, data {data.shape}, n_orient={n_orient} "
          f"(prepared in {time.perf_counter() - t0:.1f} s)")
    warmup()
    norm_y2 = np.sum(data ** 2)
    others = {"skglm": run_skglm, "celer": run_celer, "sklearn": run_sklearn}
    for pct in args.alphas:
        alpha = float(pct)
        for n_ori, label in ((n_orient, "free"), (1, "fixed")):
            p_star = l21_objective(gain, data, run_ours(gain, data, alpha, n_ori, 1e-10),
                                   alpha, n_ori)
            solvers = {"ours": (run_ours, 1e-6), "mne": (run_mne, 1e-6)}
            if label == "fixed":
                for name, fn in others.items():
                    if name in args.skip:
                        continue
                    try:
                        fn(gain[:, :30], data, alpha, 1, 1e-4)  # compile / import, untimed
                        tol = calibrated(name, fn, gain, data, alpha, 1, p_star,
                                         [1e-6, 1e-7, 1e-8, 1e-9])
                        solvers[name] = (fn, tol)
                    except Exception as err:  # report, do not hide, a broken library
                        print(f"   ! {name} failed: {type(err).__name__}: {err}")
            for name, (fn, tol) in solvers.items():
                if name in args.skip:
                    continue
                med, coef = timed(fn, gain, data, alpha, n_ori, tol, repeats=args.repeats)
                obj = l21_objective(gain, data, coef, alpha, n_ori)
                n_src = int((np.abs(coef).reshape(-1, n_ori * data.shape[1]).max(1) > 0).sum())
                mem = (peak_memory(fn, gain, data, alpha, n_ori, tol)
                       if pct == args.alphas[0] and med < SLOW_RUN_S else np.nan)
                rows.append(dict(problem=kind, orient=label, alpha=pct, solver=name, time=med,
                                 n_runs=timed.n_runs,
                                 subopt=(obj - p_star) / norm_y2, n_src=n_src, tol=tol,
                                 mem=mem))
                print(f"   α={pct:>4}% {label:5s} {name:8s} {med:8.3f} s  subopt {rows[-1]['subopt']:.1e}"
                      f"  sources {n_src:4d}  tol {tol:.0e}  peak {mem:7.1f} MiB", flush=True)
        # non-convex vs L2,1 (ours, free orientation)
        for pen in ("mcp", "l05"):
            med, coef = timed(run_ours, gain, data, alpha, n_orient, 1e-6, pen,
                              repeats=args.repeats)
            n_src = int((np.abs(coef).reshape(-1, n_orient * data.shape[1]).max(1) > 0).sum())
            rows.append(dict(problem=kind, orient="free", alpha=pct, solver=f"ours-{pen}",
                             time=med, n_runs=timed.n_runs, subopt=np.nan, n_src=n_src, tol=1e-6, mem=np.nan))
            print(f"   α={pct:>4}% free  ours-{pen:4s} {med:8.3f} s  sources {n_src:4d}",
                  flush=True)


def print_table(rows):
    print("\n| problem | orient | α % | solver | median time (s) | runs | ours speed-up | "
          "subopt (P−P*)/‖M‖² | sources | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ours = [q for q in rows if q["problem"] == r["problem"] and q["orient"] == r["orient"]
                and q["alpha"] == r["alpha"] and q["solver"] == "ours"]
        ratio = r["time"] / ours[0]["time"] if ours else np.nan
        if r["solver"].startswith("ours-"):
            ratio_s = f"{ratio:.2f}× L2,1 time"
        else:
            ratio_s = "—" if r["solver"] == "ours" else f"{ratio:.1f}×"
        sub = "—" if np.isnan(r["subopt"]) else f"{r['subopt']:.1e}"
        mem = "—" if np.isnan(r["mem"]) else f"{r['mem']:.1f}"
        print(f"| {r['problem']} | {r['orient']} | {r['alpha']} | {r['solver']} | "
              f"{r['time']:.3f} | {r['n_runs']} | {ratio_s} | {sub} | {r['n_src']} | {mem} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small surface problem only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alphas", type=float, nargs="+", default=[50.0, 30.0],
                        help="α in percent of α_max")
    parser.add_argument("--skip", nargs="*", default=[], help="solvers to skip")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    check_data()

    import mne
    from threadpoolctl import threadpool_limits

    mne.set_log_level("WARNING")
    cold, warm = numba_compile_times()
    print(f"numba kernels, fresh process: cold cache (compile) {cold:.1f} s, "
          f"warm cache (load) {warm:.2f} s")
    rows = []
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        for kind in (["surface"] if args.quick else ["surface", "volume"]):
            bench_problem(kind, args, rows)
    print_table(rows)
    import resource

    print(f"\nprocess max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"numba compile cold {cold:.1f} s / warm-cache load {warm:.2f} s (excluded above)")


if __name__ == "__main__":
    main()
