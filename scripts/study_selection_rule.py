"""Issue 14 study: which λ-selection rule gives few sources in the right places.

The rules of this study were written down before any candidate was computed:
docs/studies/selection_rule_preregistration.md. This script computes every
candidate on the four shared sample averages (50–150 ms, 508-source forward) and
the EEGLAB recording on the template head, and prints one table.

    .venv/bin/python scripts/study_selection_rule.py [--out docs/studies/selection_rule_real.json]
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import mne
import numpy as np
from scipy import linalg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meeg_inverse.problem import InverseProblem  # noqa: E402
from meeg_inverse.solvers import solve, solve_path  # noqa: E402
from meeg_inverse.summary import source_records  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SAMPLE = SHARED / "sample" / "MEG"
SUBJECTS = SHARED / "sample" / "subjects"
CACHE = ROOT / ".cache" / "tests"
AUDITORY_MNI = {"lh": np.array([-50.0, -24.0, 8.0]), "rh": np.array([52.0, -22.0, 8.0])}
CONDITIONS = ["Left Auditory", "Right Auditory", "Left visual", "Right visual"]
GRID = np.geomspace(0.95, 0.01, 40)


def sample_forward(info):
    cached = CACHE / "sample-small-meeg-fwd.fif"
    if cached.exists():
        return mne.read_forward_solution(cached, verbose=False)
    src = mne.read_source_spaces(SAMPLE / "sample-small-src.fif.gz", verbose=False)
    fwd = mne.make_forward_solution(info, SAMPLE / "sample_audvis_trunc-trans.fif", src,
                                    SUBJECTS / "sample/bem/sample-320-320-320-bem-sol.fif",
                                    meg=True, eeg=True, mindist=0.0, verbose=False)
    CACHE.mkdir(parents=True, exist_ok=True)
    mne.write_forward_solution(cached, fwd, overwrite=True, verbose=False)
    return fwd


def baseline_noise(evoked, forward, cov):
    """σ̂² (whitened pre-stimulus variance) and the lag-1 autocorrelation of the baseline."""
    full = InverseProblem.from_evoked(evoked, forward, cov)
    base = full.data[:, evoked.times < 0]
    if base.shape[1] < 10:
        return 1.0 / evoked.nave, 0.0
    b = base - base.mean(1, keepdims=True)
    rho = float(np.sum(b[:, :-1] * b[:, 1:]) / np.sum(b * b))
    return float(np.mean(base ** 2)), rho


def refit_rss(gain, data, rows):
    if rows.size == 0:
        return float(np.vdot(data, data))
    b, *_ = linalg.lstsq(gain[:, rows], data)
    r = data - gain[:, rows] @ b
    return float(np.vdot(r, r))


def qut_lambda(gain, n_times, sigma2, rho, n_orient, n_draws=200, seed=0):
    """95 % quantile of λ_max over noise-only data (AR(1) in time at the baseline's ρ)."""
    rng = np.random.default_rng(seed)
    n = gain.shape[0]
    lmax = []
    for _ in range(n_draws):
        e = rng.standard_normal((n, n_times))
        for t in range(1, n_times):  # AR(1) with unit marginal variance
            e[:, t] = rho * e[:, t - 1] + np.sqrt(1 - rho ** 2) * e[:, t]
        e *= np.sqrt(sigma2)
        c = gain.T @ e
        lmax.append(np.sqrt((c ** 2).reshape(-1, n_orient * n_times).sum(1)).max())
    return float(np.quantile(lmax, 0.95))


def describe(problem, coef, subject, subjects_dir, sigma2):
    act = np.any(coef != 0, axis=1)
    full = problem.full_coef(coef) if problem.source_mask is not None else coef
    recs = source_records(problem, full, subject=subject, subjects_dir=subjects_dir)
    strongest = {}
    for r in recs:
        strongest.setdefault(r["hemisphere"], r)
    overall = recs[0]["position_mni_mm"] if recs else None
    resid = problem.data - problem.gain[:, act] @ coef[act]
    # Secondary ranking (amendment 4): whitened field energy of each source.
    no = problem.n_orient
    power = {r["source_index"]: float(np.sum((problem.gain[:, r["source_index"] * no:
                                                           (r["source_index"] + 1) * no]
                                              @ coef[r["source_index"] * no:
                                                     (r["source_index"] + 1) * no]) ** 2))
             for r in recs}
    strongest_fp = {}
    for r in sorted(recs, key=lambda r: -power[r["source_index"]]):
        strongest_fp.setdefault(r["hemisphere"], r)
    overall_fp = max(recs, key=lambda r: power[r["source_index"]])["position_mni_mm"] \
        if recs else None
    return dict(n_sources=len(recs),
                strongest_fp={h: r["position_mni_mm"] for h, r in strongest_fp.items()},
                overall_fp=overall_fp,
                resid_ratio=float(np.mean(resid ** 2) / sigma2),
                strongest={h: r["position_mni_mm"] for h, r in strongest.items()},
                overall=overall)


def verdict(condition, d, by="amplitude"):
    if d["n_sources"] == 0:
        return False, False
    few = d["n_sources"] <= 10
    if condition is None:
        return few, None
    strongest, overall = ((d["strongest"], d["overall"]) if by == "amplitude" else
                          (d["strongest_fp"], d["overall_fp"]))
    if "auditory" in condition.lower():
        ok = all(h in strongest and
                 np.linalg.norm(np.array(strongest[h]) - AUDITORY_MNI[h]) <= 20
                 for h in ("lh", "rh"))
    else:
        ok = overall[1] < -60
    return few, ok


def debias(problem, coef, data=None):
    """The product's debiasing: one scale >= 1 per source (amendment 2).

    The same bounded least squares as ``debias_amplitudes``, solved on its
    n_active x n_active Gram form (NNLS on the Cholesky factor) for speed.
    """
    from scipy.optimize import nnls

    data = problem.data if data is None else data
    no = problem.n_orient
    blocks = np.flatnonzero(np.any(coef.reshape(-1, no, coef.shape[1]) != 0, axis=(1, 2)))
    out = np.zeros_like(coef)
    if blocks.size == 0:
        return out
    fields = np.stack([problem.gain[:, k * no:(k + 1) * no] @ coef[k * no:(k + 1) * no]
                       for k in blocks])
    flat = fields.reshape(len(blocks), -1)
    gram = flat @ flat.T
    rhs = flat @ data.ravel() - gram.sum(axis=1)  # d = 1 + u, u >= 0
    chol = linalg.cholesky(gram + 1e-12 * np.trace(gram) * np.eye(len(blocks)), lower=True)
    u, _ = nnls(chol.T, linalg.solve_triangular(chol, rhs, lower=True))
    scale = 1.0 + u
    for j, k in enumerate(blocks):
        out[k * no:(k + 1) * no] = coef[k * no:(k + 1) * no] * scale[j]
    return out


def qut_mcp_floor(problem, sigma2, rho):
    """Amendment 4: the product's implementation (meeg_inverse.threshold.select_qut)."""
    from meeg_inverse.noise import NoiseEstimate
    from meeg_inverse.threshold import select_qut

    noise = NoiseEstimate(sigma2, rho, 1 / problem.nave, 1, "baseline")
    sel = select_qut(problem.gain, problem.data, noise, penalty="mcp",
                     n_orient=problem.n_orient)
    return {"qut-mcp-floor": (debias(problem, np.asarray(sel.coef)), sel.alpha_fraction)}, 0.0


def candidates(problem, sigma2, rho, only=None):
    """Every candidate rule's coefficient matrix (refitted where the rule refits)."""
    from meeg_inverse.sure import select_alpha

    if only == "qut-mcp-floor":
        return qut_mcp_floor(problem, sigma2, rho)
    if only in ("bic-l05", "bic-mcp"):  # amendment 5: the product's select_bic
        from meeg_inverse.noise import NoiseEstimate
        from meeg_inverse.rules import select_bic

        noise = NoiseEstimate(sigma2, rho, 1 / problem.nave, 1, "baseline")
        sel = select_bic(problem.gain, problem.data, noise, penalty=only.split("-")[1],
                         n_orient=problem.n_orient)
        return {only: (debias(problem, np.asarray(sel.coef)), sel.alpha_fraction)}, 0.0

    g, y, no = problem.gain, problem.data, problem.n_orient
    n, T = y.shape
    out = {}
    amax = problem.alpha_max
    t = time.time()
    path = solve_path(g, y, GRID * amax, penalty="l21", n_orient=no, tol=1e-8)
    rows = [np.flatnonzero(r.active_set) for r in path]
    rss = np.array([refit_rss(g, y, r) for r in rows])
    k = np.array([r.size for r in rows])
    cp = rss - n * T * sigma2 + 2 * sigma2 * k * T
    bic = rss / sigma2 + np.log(n * T) * k * T
    ok = np.flatnonzero(rss <= n * T * sigma2)
    for name, i in (("cp-refit", int(np.argmin(cp))), ("bic-refit", int(np.argmin(bic))),
                    ("discrepancy-refit", int(ok[0]) if ok.size else len(GRID) - 1)):
        out[name] = (debias(problem, np.asarray(path[i].coef)), GRID[i])
    # sure-debiased (amendment 3): FDMC SURE of the debiased L2,1 estimate, baseline σ̂.
    sig = np.sqrt(sigma2)
    eps = 2 * sig / y.size ** 0.3
    delta = np.random.default_rng(0).standard_normal(y.shape)
    path_e = solve_path(g, y + eps * delta, GRID * amax, penalty="l21", n_orient=no, tol=1e-8)
    sure_db = []
    for r, re in zip(path, path_e):
        f = g @ debias(problem, np.asarray(r.coef))
        fe = g @ debias(problem, np.asarray(re.coef), data=y + eps * delta)
        dof = float(np.vdot(fe - f, delta)) / eps
        sure_db.append(float(np.vdot(y - f, y - f)) - y.size * sigma2 + 2 * sigma2 * dof)
    i = int(np.argmin(sure_db))
    out["sure-debiased"] = (debias(problem, np.asarray(path[i].coef)), GRID[i])
    for pen in ("l21", "l05"):
        sel = select_alpha(g, y, penalty=pen, n_orient=no, tol=1e-8,
                           sigma=1 / np.sqrt(problem.nave), random_state=0)
        out[f"sure-{pen}"] = (debias(problem, np.asarray(sel.solver_result.coef)),
                              sel.alpha_fraction)
    lam = qut_lambda(g, T, sigma2, rho, no)
    for pen in ("l21", "l05", "mcp", "scad"):
        init = None
        if pen != "l21":  # non-convex: started from the L2,1 solution (as SURE does)
            init = np.asarray(out["qut"][2].coef)
        res = solve(g, y, pen, n_orient=no, alpha=min(lam, 0.999 * amax), tol=1e-8,
                    coef_init=init)
        out["qut" if pen == "l21" else f"qut-{pen}"] = (debias(problem, np.asarray(res.coef)),
                                                        lam / amax, res)
    return out, time.time() - t


def sample_cases():
    cov = mne.read_cov(SAMPLE / "test-cov.fif", verbose=False)
    for cond in CONDITIONS:
        ev = mne.read_evokeds(SAMPLE / "test-ave.fif.gz", condition=cond, baseline=(None, 0),
                              verbose=False)
        ev.set_eeg_reference("average", projection=True, verbose=False)
        fwd = sample_forward(ev.info)
        yield cond, ev, fwd, cov, "sample", SUBJECTS, (0.05, 0.15)


def eeglab_case():
    from meeg_inverse.pipeline import ForwardSpec, load_data, load_forward, load_noise_cov

    d = SHARED / "eeglab"
    loaded = load_data(d / "test_raw.set", condition="square", montage=str(d / "test_chans.locs"),
                       montage_match="order")
    cov = load_noise_cov(None, loaded)
    fwd, subject, sdir = load_forward(ForwardSpec(montage=str(d / "test_chans.locs"),
                                                  montage_match="order"), loaded.evoked.info)
    return "EEGLAB square", loaded.evoked, fwd, cov, subject, sdir, (0.05, 0.3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip-eeglab", action="store_true")
    parser.add_argument("--only-eeglab", action="store_true")
    parser.add_argument("--only", default=None, help="one candidate (qut-mcp-floor)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    cases = [] if args.only_eeglab else list(sample_cases())
    if not args.skip_eeglab:
        cases.append(eeglab_case())
    table = {}
    for cond, ev, fwd, cov, subject, sdir, (tmin, tmax) in cases:
        sigma2, rho = baseline_noise(ev, fwd, cov)
        problem = InverseProblem.from_evoked(ev, fwd, cov, tmin=tmin, tmax=tmax)
        cands, dt = candidates(problem, sigma2, rho, only=args.only)
        print(f"\n{cond}: nave {ev.nave}, sigma2*nave {sigma2 * ev.nave:.2f}, rho {rho:.2f}, "
              f"{dt:.1f} s")
        table[cond] = {}
        for name, (coef, frac, *_) in cands.items():
            d = describe(problem, coef, subject, sdir, sigma2)
            few, ok = verdict(None if cond.startswith("EEGLAB") else cond, d)
            _, ok_fp = verdict(None if cond.startswith("EEGLAB") else cond, d, by="field")
            d.update(alpha_fraction=float(frac), few=few, anatomy=ok, anatomy_field_power=ok_fp)
            table[cond][name] = d
            where = {h: [round(v) for v in p] for h, p in d["strongest"].items()}
            print(f"  {name:18s} frac {frac:6.3f}  n {d['n_sources']:4d}  "
                  f"resid/σ̂² {d['resid_ratio']:.2f}  few {few!s:5s} anat {ok!s:5s} "
                  f"(field power: {ok_fp!s:5s}) {where}")
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
