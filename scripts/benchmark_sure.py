"""Benchmark automatic λ selection by SURE hypergradients.

Compares, on the real MNE 'sample' data (Left Auditory, MEG+EEG, 0.05-0.15 s,
free orientation, depth 0.8):

* ``select_alpha(method="sure-hypergradient")`` (our automatic choice),
* one fit at the chosen λ (target: automatic choice ≤ 3× one fit),
* ``mne.inverse_sparse.mixed_norm(evoked, forward, cov, alpha='sure', loose=1,
  depth=0.8)`` (target: ≥ 10× faster, equal or lower SURE evaluated by our
  criterion with the same δ at MNE's pick, MNE alpha % ↔ our fraction alpha/100).

Usage::

    python scripts/benchmark_sure.py [--repeat 3] [--mne-repeat 1] [--tol 1e-6]
"""

import argparse
import logging
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "sample" / "MEG"
FWD = ROOT / ".cache" / "tests" / "sample-small-meeg-fwd.fif"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mne-repeat", type=int, default=1)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--lower", type=float, default=0.1,
                        help="lower bound of the search, fraction of λmax (MNE: 0.1)")
    parser.add_argument("--no-mne", action="store_true")
    args = parser.parse_args()

    import mne

    from meeg_inverse.problem import InverseProblem
    from meeg_inverse.solvers import solve, warmup
    from meeg_inverse.sure import SureCriterion, select_alpha

    # The file's averages were saved without baseline correction.
    evoked = mne.read_evokeds(SAMPLE / "test-ave.fif.gz", condition="Left Auditory",
                              baseline=(None, 0), verbose=False)
    cov = mne.read_cov(SAMPLE / "test-cov.fif", verbose=False)
    fwd = mne.read_forward_solution(FWD, verbose=False)
    p = InverseProblem.from_evoked(evoked, fwd, cov, loose=1.0, depth=0.8, tmin=0.05,
                                   tmax=0.15)
    warmup()
    print(f"problem: gain {p.gain.shape}, data {p.data.shape}, n_orient {p.n_orient}")
    bounds = (args.lower, 0.95)

    t_sel, t_fit, sel = [], [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        sel = select_alpha(p.gain, p.data, "l21", p.n_orient, tol=args.tol,
                           bounds_fraction=bounds, random_state=0, sigma=p.noise_std)
        t_sel.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        solve(p.gain, p.data, "l21", alpha=sel.alpha, n_orient=p.n_orient, tol=args.tol)
        t_fit.append(time.perf_counter() - t0)
    print(f"ours: alpha = {sel.alpha_fraction:.4f} λmax, SURE {sel.sure:.1f}, "
          f"{sel.n_outer_iter} outer iterations, {sel.n_solves} solves, "
          f"{sel.active_set.sum() // p.n_orient} sources, empty={sel.empty}")

    rows = [("ours: select_alpha (hypergradient)", np.median(t_sel)),
            ("ours: one fit at chosen alpha", np.median(t_fit))]
    print(f"ours: median select {rows[0][1]:.2f} s, one fit {rows[1][1]:.2f} s, "
          f"ratio {rows[0][1] / rows[1][1]:.2f}", flush=True)
    mne_frac = None
    if not args.no_mne:
        ev = evoked.copy().crop(0.05, 0.15)
        records = []

        class _Grab(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        logger = logging.getLogger("mne")
        handler = _Grab()
        logger.addHandler(handler)
        t_mne = []
        try:
            for _ in range(args.mne_repeat):
                t0 = time.perf_counter()
                with mne.utils.use_log_level("INFO"):
                    mne.inverse_sparse.mixed_norm(ev, fwd, cov, alpha="sure", loose=1,
                                                  depth=0.8, random_state=0)
                t_mne.append(time.perf_counter() - t0)
        finally:
            logger.removeHandler(handler)
        picks = [m for m in records if m.startswith("Selected alpha")]
        mne_frac = float(picks[-1].split(":")[1]) / 100.0
        rows.append(("mne mixed_norm(alpha='sure')", np.median(t_mne)))
        print(f"mne: alpha = {mne_frac:.4f} λmax (from its log: {picks[-1]!r})")

    # SURE with the noise level of this average (1/sqrt(nave) in whitened units);
    # MNE's own SURE assumes 1.
    crit = SureCriterion(p.gain, p.data, "l21", p.n_orient, sigma=p.noise_std, random_state=0,
                         tol=args.tol)
    sure_ours = crit.evaluate(sel.alpha, grad=False)[0]
    print()
    print(f"{'method':40s} {'median time (s)':>16s}")
    for name, t in rows:
        print(f"{name:40s} {t:16.2f}")
    print(f"ratio select / one fit: {rows[0][1] / rows[1][1]:.2f} (target <= 3)")
    if mne_frac is not None:
        sure_mne = crit.evaluate(mne_frac * p.alpha_max, grad=False)[0]
        print(f"speed-up vs MNE: {rows[2][1] / rows[0][1]:.1f}x (target >= 10)")
        print(f"SURE (same delta, seed 0): ours {sure_ours:.1f} at {sel.alpha_fraction:.4f}, "
              f"MNE pick {sure_mne:.1f} at {mne_frac:.4f}")


if __name__ == "__main__":
    main()
