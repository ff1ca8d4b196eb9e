#!/usr/bin/env python
"""Low-channel EEG confidence study (docs/studies/eeg_confidence_preregistration.md).

30-electrode EEGLAB montage on the template head, the recording's own noise covariance,
1-3 off-grid cortical sources (or none), 20 simulated trials per case; each case is localized
once with the product defaults and its reported sources' confidence computed with each
channel-subsample scheme of :func:`meeg_inverse.clusters.cluster_confidence`::

    PYTHONPATH=$PWD .venv/bin/python scripts/study_eeg_confidence.py --cases 8 \
        --csv .cache/eeg_confidence.csv

Prints one table row per scheme (and per SNR), and the pre-registered decision.
"""

import argparse
import csv
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
SHARED = Path(os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
EEGLAB = SHARED / "eeglab"
SCHEMES = ("half", "quarter", "placeable")
N_TRIALS = 20
TRUE_MM = 10.0
HIGH = 0.9


def setup():
    """Evoked (average reference), noise covariance, inversion and off-grid truth forwards."""
    import mne

    from meeg_inverse import io as mio
    from meeg_inverse.forward import TEMPLATE_SUBJECT, template_sphere_model, template_subjects_dir
    from meeg_inverse.pipeline import ForwardSpec, load_data, load_forward, load_noise_cov

    loaded = load_data(EEGLAB / "test_raw.set", condition="square",
                       montage=str(EEGLAB / "test_chans.locs"), montage_match="order")
    cov = load_noise_cov(None, loaded)
    fwd, _, _ = load_forward(ForwardSpec(), loaded.evoked.info)
    evoked = mio.with_average_reference(loaded.evoked)
    # The fsaverage5 vertices the ico-4 grid does not use, in the inversion's head frame,
    # with the same transform and sphere model (no head-model error).
    subjects_dir = template_subjects_dir()
    src = mne.setup_source_space(TEMPLATE_SUBJECT, spacing="ico4", subjects_dir=subjects_dir,
                                 add_dist=False, verbose=False)
    mri_head_t = fwd["mri_head_t"]
    sphere = template_sphere_model(mri_head_t, subjects_dir, src)
    rr = np.concatenate([s["rr"][s["inuse"] == 0] for s in src])
    nn = np.concatenate([s["nn"][s["inuse"] == 0] for s in src])
    rr = mne.transforms.apply_trans(mri_head_t, rr)
    nn = mne.transforms.apply_trans(mri_head_t, nn, move=False)
    disc = mne.setup_volume_source_space(pos=dict(rr=rr, nn=nn), verbose=False)
    identity = mne.transforms.Transform("head", "mri")
    info = mne.pick_info(evoked.info, mne.pick_types(evoked.info, eeg=True, exclude="bads"))
    truth = mne.make_forward_solution(info, identity, disc, sphere, meg=False, eeg=True,
                                      mindist=0.0, verbose=False)
    return evoked, cov, fwd, truth


def run(n_cases, snrs, log):
    import mne

    import meeg_inverse.solve as msolve
    from meeg_inverse.operator import make_sparse_inverse_operator
    from validate_simulation import Simulator

    evoked, cov, fwd, truth_fwd = setup()
    sim = Simulator(evoked, cov, fwd, sfreq=100.0, n_times=20, truth_fwd=truth_fwd)
    head_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
    op = make_sparse_inverse_operator(sim.info, fwd, cov)
    log(f"{len(sim.info.ch_names)} channels, {sim.rank} whitened rows, "
        f"{len(sim.pos)} grid sources, {len(sim.truth_pos)} off-grid truth positions")

    original = msolve._cluster_confidence
    captured = {}

    def every_scheme(problem, data, clusters, *args, scheme="half", **kw):
        conf = {}
        for name in SCHEMES[::-1]:  # 'half' last: the solution keeps its confidences
            out = original(problem, data, clusters, *args, scheme=name, **kw)
            conf[name] = [c.confidence for c in clusters]
        captured["conf"] = conf
        return out

    msolve._cluster_confidence = every_scheme
    rows = []
    try:
        for level, snr in enumerate([0.0] + list(snrs)):
            for i in range(n_cases):
                seed = 1000 * level + i
                t0 = time.perf_counter()
                _, info = sim.trial(seed, 1.0)
                idx = info["idx"]
                signal = sim.proj @ (sim.gain[:, idx] @ info["tc"])
                # SNR of the average of N_TRIALS (its noise is the trial noise / sqrt(N)).
                signal *= snr / (sim.snr(signal) * np.sqrt(N_TRIALS))
                rng = np.random.default_rng(10 ** 6 + seed)
                trials = np.array([signal + sim.proj @ (sim.colorer @ rng.standard_normal(
                    signal.shape)) for _ in range(N_TRIALS)])
                ev = mne.EvokedArray(trials.mean(axis=0), sim.info, tmin=0.0, nave=N_TRIALS,
                                     verbose=False)
                problem = op.problem(ev, tmin=0.0)
                picks = [sim.info.ch_names.index(c) for c in problem.ch_names]
                white = np.einsum("rc,ect->ert", problem.whitener, trials[:, picks])
                captured.clear()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sol = msolve.solve_inverse(problem, alpha="auto", penalty=None,
                                               confidence=20, epochs=white, random_state=0)
                truth_mri = (mne.transforms.apply_trans(head_mri, info["pos"]) if snr > 0
                             else np.zeros((0, 3)))
                est = np.array([c.position if c.position is not None else c.centroid
                                for c in sol.clusters]).reshape(-1, 3)
                dist = (1e3 * np.linalg.norm(est[:, None] - truth_mri[None], axis=2)
                        if len(est) and len(truth_mri) else np.full((len(est), len(truth_mri)),
                                                                    np.inf))
                conf = captured.get("conf", {s: [] for s in SCHEMES})
                for j in range(len(est)):
                    near = float(dist[j].min()) if dist.shape[1] else np.inf
                    nearest_truth = int(dist[j].argmin()) if dist.shape[1] else -1
                    # Is it the reported source nearest to that truth (the truth's match)?
                    match = (near <= TRUE_MM and int(dist[:, nearest_truth].argmin()) == j)
                    rows.append(dict(snr=snr, seed=seed, n_true=len(truth_mri), kind="reported",
                                     k_reported=len(est), dist_mm=near, true=near <= TRUE_MM,
                                     truth_match=match,
                                     **{s: conf[s][j] for s in SCHEMES}))
                for t in range(len(truth_mri)):
                    found = bool(len(est)) and dist[:, t].min() <= TRUE_MM
                    rows.append(dict(snr=snr, seed=seed, n_true=len(truth_mri), kind="truth",
                                     k_reported=len(est),
                                     dist_mm=float(dist[:, t].min()) if len(est) else np.inf,
                                     true=found, truth_match=found,
                                     **{s: np.nan for s in SCHEMES}))
                log(f"snr {snr:g} seed {seed}: {len(truth_mri)} true, {len(est)} reported, "
                    f"{time.perf_counter() - t0:.1f} s")
    finally:
        msolve._cluster_confidence = original
    return rows


def table(rows):
    """Per scheme (all SNR pooled, then per SNR): the pre-registered counts."""
    out = []
    snrs = sorted({r["snr"] for r in rows if r["snr"] > 0})
    truths = [r for r in rows if r["kind"] == "truth"]
    for scheme in SCHEMES:
        for label, keep in [("all", lambda r: r["snr"] > 0)] + [
                (f"snr {s:g}", lambda r, s=s: r["snr"] == s) for s in snrs]:
            rep = [r for r in rows if r["kind"] == "reported" and keep(r)]
            matched = [r[scheme] for r in rep if r["truth_match"]]
            high = [r for r in rep if r[scheme] >= HIGH]
            false = [r[scheme] for r in rep if not r["true"]]
            tr = [r for r in truths if keep(r)]
            noise = [r for r in rows if r["kind"] == "reported" and r["snr"] == 0]
            out.append(dict(
                scheme=scheme, cases=label,
                recall=f"{sum(r['true'] for r in tr)}/{len(tr)}",
                median_true_conf=float(np.median(matched)) if matched else np.nan,
                calibration=(sum(r["true"] for r in high) / len(high)) if high else np.nan,
                n_high=len(high),
                false_reported=len(false),
                median_false_conf=float(np.median(false)) if false else np.nan,
                noise_reported=len(noise),
                noise_high=sum(r[scheme] >= HIGH for r in noise)))
    return out


def decide(tab):
    passing = []
    for t in tab:
        if t["cases"] != "all":
            continue
        ok = (np.isfinite(t["calibration"]) and t["calibration"] >= 0.9
              and t["noise_high"] == 0 and t["median_true_conf"] >= 0.5)
        t["passes"] = bool(ok)
        if ok:
            passing.append(t)
    if not passing:
        return None
    order = {"half": 0, "quarter": 1, "placeable": 2}
    return sorted(passing, key=lambda t: (-t["median_true_conf"], -t["calibration"],
                                          order[t["scheme"]]))[0]["scheme"]


def markdown(tab):
    head = ("| scheme | cases | recall (10 mm) | median conf. of true sources | conf. ≥ 0.9: "
            "true / all | false sources (median conf.) | noise-only: reported / ≥ 0.9 |")
    lines = [head, "|" + "---|" * 7]
    for t in tab:
        cal = ("–" if not np.isfinite(t["calibration"]) else
               f"{t['calibration']:.0%} of {t['n_high']}")
        lines.append(
            f"| {t['scheme']} | {t['cases']} | {t['recall']} | {t['median_true_conf']:.2f} | "
            f"{cal} | {t['false_reported']} ({t['median_false_conf']:.2f}) | "
            + (f"{t['noise_reported']} / {t['noise_high']} |" if t["cases"] == "all" else "|"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="cases per level (SNR 0, 3, 10)")
    parser.add_argument("--snrs", type=float, nargs="+", default=[3.0, 10.0])
    parser.add_argument("--csv", type=Path, default=None, help="per-source rows")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    rows = run(args.cases, args.snrs, log)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    tab = table(rows)
    winner = decide(tab)
    print(markdown(tab))
    for t in tab:
        if t["cases"] == "all":
            print(f"{t['scheme']}: {'passes' if t['passes'] else 'fails'} the pre-registered rule")
    print(f"decision: {winner or 'none passes: no default changes'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
