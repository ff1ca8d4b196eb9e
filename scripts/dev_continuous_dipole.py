#!/usr/bin/env python
"""Development only: reported positions by BEM dipole fit against the sub-grid scan.

    python scripts/dev_continuous_dipole.py --minutes 3 --seeds 1 2 3 --bem 1280

Scores each variant by the rules of docs/continuous.md on the estimates that
``benchmark_continuous.py --part speed`` wrote for those recordings (development
recordings only, never the held-out one). ``--bem 1280``: the one-layer MEG BEM
(``sample-1280-bem-sol.fif``, MEG channels; not the simulation's BEM);
``--bem 320``: the 3-layer BEM the simulation used (no model error, optimistic).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

BEMS = {"1280": "sample-1280-bem-sol.fif", "320": "sample-320-320-320-bem-sol.fif"}


def main(argv=None):
    import mne

    import benchmark_continuous as bc
    from meeg_inverse.continuous import read_continuous
    from meeg_inverse.io import with_average_reference

    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--bem", nargs="+", default=["1280"], choices=list(BEMS))
    p.add_argument("--no-subgrid", action="store_true")
    args = p.parse_args(argv)
    bem_dir = bc.SHARED / "sample" / "subjects" / "sample" / "bem"
    trans = bc.SHARED / "sample" / "MEG" / "sample_audvis_trunc-trans.fif"
    for seed in args.seeds:
        raw, fwd, cov, truth, _ = bc.inputs(args.minutes, seed)
        ns = argparse.Namespace(minutes=args.minutes, seed=seed)
        res = read_continuous(bc.OUT / bc._speed_name(ns), fwd, cov,
                              with_average_reference(raw).info, raw=raw)
        duration = res.n_times / res.sfreq
        true_pos = np.array([s["position_mm"] for s in truth["sources"]])
        variants = ([] if args.no_subgrid else [("sub-grid", {})]) + [
            (f"dipole {b}", dict(bem=bem_dir / BEMS[b], trans=trans)) for b in args.bem]
        for name, kw in variants:
            t0 = time.perf_counter()
            rep = res.reported_sources(position="dipole" if kw else "sub-grid", **kw)
            wall = time.perf_counter() - t0
            r = bc.score(bc.reported_events(rep, fwd, "source"), truth, 10.0, 0.05, duration)
            dists = []
            for s in rep:
                h = mne.transforms.apply_trans(fwd["mri_head_t"],
                                               np.asarray(s["position_mm"]) * 1e-3) * 1e3
                d = np.linalg.norm(true_pos - h, axis=1)
                extra = f",gof {s['dipole_gof']:.0f}" if "dipole_gof" in s else ""
                dists.append(f"{d.min():.1f}(#{d.argmin()},{len(s['periods'])}{extra})")
            print(f"seed {seed} {args.minutes:g} min | {name:12s} | found {r['n_found']}/"
                  f"{r['n_bursts']} ({100 * r['recall']:.1f} %) | false/s {r['false_per_s']:.3f} |"
                  f" {wall:.1f} s ({bc.load()}) | sources {' '.join(dists)}", flush=True)


if __name__ == "__main__":
    main()
