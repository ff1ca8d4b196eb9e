#!/usr/bin/env python
"""Post hoc (after the scored run of amendment 2; not a method, not scored): the sub-grid
scan of the NOISE-FREE true field of each dipole, around the centroid and around the truth.

    python scripts/posthoc_continuous_scan_limit.py
"""
import sys, argparse, numpy as np, mne
sys.path.insert(0, "scripts"); sys.path.insert(0, ".")
import benchmark_continuous as bc
from simulate_continuous import _setup
from meeg_inverse.continuous import read_continuous
from meeg_inverse.subgrid import Scanner, inversion_mesh
sim, _, _ = _setup()
for minutes, seed, dip in [(10, 10, 1), (10, 10, 0), (10, 10, 2), (10, 0, 0), (10, 0, 1), (10, 0, 2)]:
    raw, fwd, cov, truth, _ = bc.inputs(minutes, seed)
    res = read_continuous(bc.OUT / bc._speed_name(argparse.Namespace(minutes=minutes, seed=seed)), fwd, cov, raw=raw)
    prob = res._mapper._problem
    op = prob.operator
    k = truth["sources"][dip]["index"]
    g = sim.proj @ sim.gain[:, k]
    chn = list(sim.info.ch_names)
    picks = [chn.index(c) for c in op.ch_names]
    y = (op.whitener @ g[picks])[:, None]
    head_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
    tp = mne.transforms.apply_trans(head_mri, np.array(truth["sources"][dip]["position_mm"]) * 1e-3)
    sc = Scanner(prob, inversion_mesh(prob), 15.0, 6)
    rep = res.reported_sources(position="centroid")
    s = min(rep, key=lambda r: np.linalg.norm(np.array(r["position_mm"]) * 1e-3 - tp))
    cen = np.array(s["centroid_mm"]) * 1e-3
    for centre, tag in ((cen, "centroid"), (tp, "truth")):
        verts, w = sc.scan_pooled([(y, None)], centre, None)
        print(seed, dip, "noise-free true field, scan around", tag, "-> best point",
              np.round(np.linalg.norm(sc.position(verts, w) - tp) * 1e3, 1), "mm from truth")
