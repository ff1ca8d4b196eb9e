"""Issue 14, part 1: why does SURE's λ keep so many sources?

On off-grid simulations with the real sample head (truth at the cortical
vertices between those of the inverse grid, their own BEM forward) and the real
noise covariance, for L2,1 and non-convex penalties, on a λ grid:

* the FDMC SURE curve against the true prediction risk ‖G B̂(Y) − μ‖² (μ the
  noiseless whitened signal), both averaged over noise draws of one truth;
* the FDMC degrees of freedom against the exact trace of the support Jacobian
  ``tr((G_S ⊗ I) H⁻¹ (G_Sᵀ ⊗ I))``, H the Jacobian of the support's
  stationarity equations;
* the support-recovery F1 (within 10 mm) of each λ: where prediction is best
  is not where the sources are right.

    .venv/bin/python scripts/diagnose_sure.py [--draws 8] [--out docs/studies/sure_diagnosis.json]
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

GRID = np.geomspace(0.9, 0.03, 14)


def exact_dof(gain, coef, pen, n_orient):
    """tr of d(fit)/dY on the support (dense loop over the support's rows × times)."""
    from meeg_inverse.sure import _SupportSystem

    sys_ = _SupportSystem(gain, coef, pen, n_orient)
    if sys_.act.size == 0:
        return 0.0
    gram = sys_.gs.T @ sys_.gs
    n_rows, n_times = len(sys_.rows), coef.shape[1]
    total = 0.0
    for i in range(n_rows):
        rhs = np.zeros((n_rows, n_times))
        rhs[:, :] = 0.0
        for t in range(n_times):
            rhs[:] = 0.0
            rhs[:, t] = gram[:, i]
            total += sys_.solve(rhs)[i, t]
    return float(total)


def f1_within(est_pos, true_pos, tol=0.01):
    if len(est_pos) == 0:
        return 0.0, 0.0, 0.0
    d = np.linalg.norm(est_pos[:, None] - true_pos[None], axis=2)
    precision = float(np.mean(d.min(axis=1) <= tol))
    recall = float(np.mean(d.min(axis=0) <= tol))
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def main():
    import mne

    from meeg_inverse.penalties import make_penalty
    from meeg_inverse.problem import InverseProblem
    from meeg_inverse.solvers import solve
    from validate_simulation import Simulator, load_inputs, offgrid_truth_forward

    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--truths", type=int, default=3)
    parser.add_argument("--snr", type=float, default=3.0)
    parser.add_argument("--penalties", nargs="+", default=["l21", "mcp", "l05"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    evoked, cov, fwd = load_inputs("surface")
    sim = Simulator(evoked, cov, fwd, truth_fwd=offgrid_truth_forward(evoked))
    report = {"grid": GRID.tolist(), "snr": args.snr, "draws": args.draws, "truths": []}
    for truth_seed in range(args.truths):
        ev0, truth = sim.trial(10_000 + truth_seed, args.snr, n_sources=2)
        mu_ev = mne.EvokedArray(ev0.data * 0, ev0.info, tmin=0, nave=1, verbose=False)
        # the noiseless signal: the same trial without its noise
        signal = sim.proj @ (sim.gain[:, truth["idx"]] @ truth["tc"])
        mu_ev.data[:] = signal
        p_mu = InverseProblem.from_evoked(mu_ev, sim.fwd, cov, loose=0.2)
        mu = p_mu.data
        # positions of the inverse grid (head frame, as the truth)
        pos = sim.pos
        per = {}
        for pen_name in args.penalties:
            rows = []
            for draw in range(args.draws):
                rng = np.random.default_rng(100 * truth_seed + draw)
                noise = sim.proj @ (sim.colorer @ rng.standard_normal(signal.shape))
                ev = mne.EvokedArray(signal + noise, sim.info, tmin=0, nave=1, verbose=False)
                p = InverseProblem.from_evoked(ev, sim.fwd, cov, loose=0.2)
                g, y, no = p.gain, p.data, p.n_orient
                eps = 2.0 / y.size ** 0.3
                delta = np.random.default_rng(7 + draw).standard_normal(y.shape)
                init = init_e = None
                for frac in GRID:
                    pen = make_penalty(pen_name, frac * p.alpha_max)
                    if pen_name != "l21":  # as SURE does: start from the L2,1 solution
                        l21 = make_penalty("l21", frac * p.alpha_max)
                        init = solve(g, y, l21, n_orient=no, tol=1e-8, coef_init=init).coef
                        init_e = solve(g, y + eps * delta, l21, n_orient=no, tol=1e-8,
                                       coef_init=init_e).coef
                    r = solve(g, y, pen, n_orient=no, tol=1e-8, coef_init=init)
                    re = solve(g, y + eps * delta, pen, n_orient=no, tol=1e-8, coef_init=init_e)
                    if pen_name == "l21":
                        init, init_e = r.coef, re.coef
                    fit, fit_e = g @ r.coef, g @ re.coef
                    dof = float(np.vdot(fit_e - fit, delta)) / eps
                    sure = float(np.vdot(y - fit, y - fit)) - y.size + 2 * dof
                    risk = float(np.vdot(fit - mu, fit - mu))
                    try:
                        dof_exact = exact_dof(g, r.coef, pen, no)
                    except Exception:  # singular support system
                        dof_exact = np.nan
                    act = np.flatnonzero(np.asarray(r.active_set).reshape(-1, no).any(1))
                    prec, rec, f1 = f1_within(pos[act], truth["pos"])
                    rows.append(dict(draw=draw, frac=float(frac), sure=sure, risk=risk, dof=dof,
                                     dof_exact=dof_exact, n_sources=int(act.size),
                                     precision=prec, recall=rec, f1=f1))
            per[pen_name] = rows
            summarize(truth_seed, pen_name, rows)
        report["truths"].append(dict(seed=10_000 + truth_seed, results=per))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


def summarize(truth_seed, pen_name, rows):
    fr = np.array(sorted({r["frac"] for r in rows}))[::-1]
    mean = {k: np.array([np.nanmean([r[k] for r in rows if r["frac"] == f]) for f in fr])
            for k in ("sure", "risk", "dof", "dof_exact", "n_sources", "f1")}
    i_sure, i_risk, i_f1 = (int(np.argmin(mean["sure"])), int(np.argmin(mean["risk"])),
                            int(np.argmax(mean["f1"])))
    ratio = np.nanmedian([r["dof"] / r["dof_exact"] for r in rows if r["dof_exact"] > 0])
    print(f"truth {truth_seed} {pen_name:4s}: argmin mean SURE {fr[i_sure]:.3f} "
          f"(n {mean['n_sources'][i_sure]:.1f}, F1 {mean['f1'][i_sure]:.2f}) | argmin true "
          f"risk {fr[i_risk]:.3f} (n {mean['n_sources'][i_risk]:.1f}, F1 "
          f"{mean['f1'][i_risk]:.2f}) | best F1 {fr[i_f1]:.3f} (n "
          f"{mean['n_sources'][i_f1]:.1f}, F1 {mean['f1'][i_f1]:.2f}) | FDMC/exact dof "
          f"median {ratio:.3f}; mean SURE - risk at SURE's pick "
          f"{mean['sure'][i_sure] - mean['risk'][i_sure]:+.1f}", flush=True)


if __name__ == "__main__":
    main()
