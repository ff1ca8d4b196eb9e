"""Benchmark the non-convex solves with and without Newton steps on a settled support.

On the real MNE 'sample' averages (MEG + EEG, 50-150 ms, loose 0.2, depth 0.8 — the
API's problem), for each non-convex penalty, in one process:

* single solves from the L2,1 solution at fixed λ (fractions of λ_max), tolerance
  1e-8 (the one SURE uses): time, epochs, objective and support of plain BCD
  (``working_set.NEWTON_STEPS = False``, the engine before Newton steps) and of
  BCD + Newton steps, and the relative distance between their solutions;
* the whole SURE selection (``select_alpha``, tol 1e-8, as ``sparse_inverse``
  with ``alpha='sure'`` runs it): time, chosen λ, SURE value, sources.

Times are medians of ``--repeat`` runs; ratios are plain / Newton.

Usage::

    python scripts/benchmark_nonconvex.py [--repeat 3] [--penalties mcp scad l05 log]
        [--conditions "Right visual" "Left visual"] [--fractions 0.05 0.1 0.15 0.3]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--penalties", nargs="+", default=["mcp", "scad", "l05", "log"])
    parser.add_argument("--conditions", nargs="+", default=["Right visual", "Left visual"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.3])
    parser.add_argument("--no-sure", action="store_true", help="single solves only")
    args = parser.parse_args(argv)

    import mne

    import validate_simulation as vs
    from meeg_inverse.penalties import make_penalty
    from meeg_inverse.problem import InverseProblem
    from meeg_inverse.solvers import alpha_max, solve, warmup, working_set
    from meeg_inverse.solvers.convex_start import convex_start
    from meeg_inverse.sure import select_alpha

    mne.set_log_level("ERROR")
    _, cov, fwd_all = vs.load_inputs()
    warmup()
    evokeds = {ev.comment: ev for ev in vs.real_evokeds()}
    sure_rows, ratios_solve, ratios_sure = [], [], []
    for cond in args.conditions:
        ev = evokeds[cond].copy().crop(0.05, 0.15)
        fwd = mne.pick_channels_forward(
            fwd_all, [c for c in ev.ch_names if c in fwd_all["sol"]["row_names"]
                      and c not in ev.info["bads"]])
        p = InverseProblem.from_evoked(ev, fwd, cov, loose=0.2, depth=0.8)
        amax = alpha_max(p.gain, p.data, p.n_orient)
        print(f"\n{cond} (nave {ev.nave}): gain {p.gain.shape}, {p.data.shape[1]} samples")
        print(f"{'penalty':8s} {'λ/λmax':>7s} | {'plain s':>8s} {'epochs':>6s} {'objective':>12s} "
              f"{'n':>3s} | {'newton s':>8s} {'epochs':>6s} {'objective':>12s} {'n':>3s} | "
              f"{'ratio':>6s} {'Δobj':>9s} {'‖ΔB‖/‖B‖':>8s}")
        for name in args.penalties:
            for frac in args.fractions:
                pen = make_penalty(name, frac * amax)
                start = solve(p.gain, p.data, convex_start(pen), n_orient=p.n_orient,
                              tol=1e-8).coef
                res = {}
                for newton in (False, True):
                    working_set.NEWTON_STEPS = newton
                    res[newton] = _median_time(
                        lambda: solve(p.gain, p.data, pen, n_orient=p.n_orient, tol=1e-8,
                                      coef_init=start), args.repeat)
                working_set.NEWTON_STEPS = True
                (tp, rp), (tn, rn) = res[False], res[True]
                diff = np.linalg.norm(rp.coef - rn.coef) / max(np.linalg.norm(rp.coef), 1e-300)
                ratios_solve.append(tp / tn)
                print(f"{name:8s} {frac:7.3f} | {tp:8.3f} {rp.n_epochs:6d} {rp.objective:12.6f} "
                      f"{rp.n_active_sources:3d} | {tn:8.3f} {rn.n_epochs:6d} "
                      f"{rn.objective:12.6f} {rn.n_active_sources:3d} | {tp / tn:6.1f} "
                      f"{rn.objective - rp.objective:+9.3g} {diff:8.2e}", flush=True)
        if args.no_sure:
            continue
        for name in args.penalties:
            row = {}
            for newton in (False, True):
                working_set.NEWTON_STEPS = newton
                row[newton] = _median_time(
                    lambda: select_alpha(p.gain, p.data, name, p.n_orient, tol=1e-8,
                                         sigma=p.noise_std, random_state=0), args.repeat)
            working_set.NEWTON_STEPS = True
            (tp, sp), (tn, sn) = row[False], row[True]
            ratios_sure.append(tp / tn)
            sure_rows.append((cond, name, tp, sp, tn, sn))
    if sure_rows:
        print("\nSURE selection (select_alpha, tol 1e-8)")
        print(f"{'condition':14s} {'penalty':8s} | {'plain s':>8s} {'λ/λmax':>7s} {'SURE':>9s} "
              f"{'n':>3s} | {'newton s':>8s} {'λ/λmax':>7s} {'SURE':>9s} {'n':>3s} | ratio")
        for cond, name, tp, sp, tn, sn in sure_rows:
            print(f"{cond:14s} {name:8s} | {tp:8.2f} {sp.alpha_fraction:7.4f} {sp.sure:9.1f} "
                  f"{int(sp.active_set.sum()) // 3:3d} | {tn:8.2f} {sn.alpha_fraction:7.4f} "
                  f"{sn.sure:9.1f} {int(sn.active_set.sum()) // 3:3d} | {tp / tn:5.1f}")
    print(f"\nmedian ratio plain / Newton: single solves {np.median(ratios_solve):.1f}"
          + ("" if not ratios_sure else f", SURE selections {np.median(ratios_sure):.1f}")
          + f" (min {min(ratios_solve + ratios_sure):.2f}, max {max(ratios_solve + ratios_sure):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
