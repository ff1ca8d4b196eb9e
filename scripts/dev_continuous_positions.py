#!/usr/bin/env python
"""Development only: variants of the reported sources' positions on simulated recordings.

    python scripts/dev_continuous_positions.py --minutes 3 --seeds 1 2 3

Scores each variant by the rules of docs/continuous.md (amendment of 2026-11-30) on
the estimates that ``benchmark_continuous.py --part speed`` wrote for those recordings.
For choosing the method on development recordings, never on the held-out one.
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "centroid": None,
    "sub-grid K6 own hemi": dict(n_components=6),
    "sub-grid K6 both hemis": dict(n_components=6, both_hemispheres=True),
    "sub-grid K3": dict(n_components=3),
    "sub-grid K12": dict(n_components=12),
    "sub-grid K6 1 sweep": dict(n_components=6, sweeps=1),
    "K6 own + merge 10": dict(n_components=6, merge_mm=10.0),
    "K6 both + merge 7": dict(n_components=6, both_hemispheres=True, merge_mm=7.0),
    "K6 both + merge 10": dict(n_components=6, both_hemispheres=True, merge_mm=10.0),
    "K6 both + merge 15": dict(n_components=6, both_hemispheres=True, merge_mm=15.0),
    "K3 both + merge 15": dict(n_components=3, both_hemispheres=True, merge_mm=15.0),
    "K12 both + merge 15": dict(n_components=12, both_hemispheres=True, merge_mm=15.0),
    "K6 own + merge 15": dict(n_components=6, merge_mm=15.0),
}


def main(argv=None):
    import mne

    import benchmark_continuous as bc
    from meeg_inverse._blas import one_blas_thread
    from meeg_inverse.continuous import _read_chunk, read_continuous
    from meeg_inverse.continuous_sources import bin_activity, refine_tracked, track_sources

    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = p.parse_args(argv)
    for seed in args.seeds:
        raw, fwd, cov, truth, _ = bc.inputs(args.minutes, seed)
        ns = argparse.Namespace(minutes=args.minutes, seed=seed)
        res = read_continuous(bc.OUT / bc._speed_name(ns), fwd, cov, raw=raw)
        mapper, ctx = res._mapper, res._context
        problem = mapper._problem
        index = problem.block_sources()
        positions, hemis = problem.source_positions(index)
        activity = bin_activity(bc_segments(res), mapper.n_orient,
                                int(res.params["n_step_samples"]))
        base = track_sources(activity, index, positions, hemis, sfreq=res.sfreq, tmin=res.tmin,
                             minor_fraction=0.2)
        duration = res.n_times / res.sfreq
        true_pos = np.array([s["position_mm"] for s in truth["sources"]])
        for name in args.variants:
            kw = VARIANTS[name]
            found = copy.deepcopy(base)
            t0 = time.perf_counter()
            if kw is not None:
                with one_blas_thread():
                    refine_tracked(problem, found, lambda a, b: _read_chunk(ctx, a, b)[0], **kw)
            wall = time.perf_counter() - t0
            rep = [dict(position_mm=list(np.asarray(s["position"]) * 1e3),
                        periods=[[e["start"], e["stop"], e["peak_nAm"]] for e in s["events"]],
                        period_positions_mm=[list(np.asarray(e["position"]) * 1e3)
                                             for e in s["events"]]) for s in found]
            r = bc.score(bc.reported_events(rep, fwd, "source"), truth, 10.0, 0.05, duration)
            dists = []
            for s in found:
                h = mne.transforms.apply_trans(fwd["mri_head_t"], np.asarray(s["position"])) * 1e3
                d = np.linalg.norm(true_pos - h, axis=1)
                dists.append(f"{d.min():.1f}(#{d.argmin()},{len(s['events'])})")
            print(f"seed {seed} {args.minutes:g} min | {name:24s} | found {r['n_found']}/"
                  f"{r['n_bursts']} ({100 * r['recall']:.1f} %) | false/s {r['false_per_s']:.3f} |"
                  f" {wall:.1f} s | sources {' '.join(dists)}", flush=True)


def bc_segments(res):
    from meeg_inverse.continuous import _read_segments

    return res._segments if res._segments is not None else _read_segments(res.fname)


if __name__ == "__main__":
    main()
