#!/usr/bin/env python
"""Post hoc (after the scored run of amendment 2; not a method, not scored): a BEM dipole fit
(mne.fit_dipole, the 3-layer BEM of the simulation: no model error) at the true peaks of a
dipole's strongest bursts.

    python scripts/posthoc_continuous_dipole_fit.py SEED DIPOLE N_BURSTS   # e.g. 10 1 10
"""
import sys, argparse, time, numpy as np, mne
sys.path.insert(0, "scripts"); sys.path.insert(0, ".")
import benchmark_continuous as bc
from meeg_inverse.io import with_average_reference
from pathlib import Path
seed, dip, n_ev = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
raw, fwd, cov, truth, _ = bc.inputs(10, seed)
raw = with_average_reference(raw)
tp = np.array(truth["sources"][dip]["position_mm"]) * 1e-3  # head
bursts = sorted([b for b in truth["bursts"] if b["source"] == dip], key=lambda b: -b["snr"])[:n_ev]
S = bc.SHARED / "sample"
bem = mne.read_bem_solution(S / "subjects" / "sample" / "bem" / "sample-320-320-320-bem-sol.fif", verbose=False)
trans = S / "MEG" / "sample_audvis_trunc-trans.fif"
picks = mne.pick_types(raw.info, meg=True, eeg=True, exclude="bads")
out = []
t0 = time.time()
for b in bursts:
    # the true burst's peak (known timing; what is tested is the position)
    tpk = b["onset"] + b["duration"] / 2
    a = raw.time_as_index(tpk - 0.01)[0]
    seg = raw.get_data(picks=picks, start=a, stop=a + 12)
    ev = mne.EvokedArray(seg, mne.pick_info(raw.info, picks), tmin=0, nave=1, verbose=False)
    ev = ev.copy().crop(0.0083, 0.0083 + 1 / 600)  # ~2 samples at the peak
    d, _ = mne.fit_dipole(ev, cov, bem, trans, verbose=False)
    out.append(np.linalg.norm(d.pos - tp, axis=1).min())
print(f"seed {seed} dipole {dip}: BEM dipole fit at {len(bursts)} strongest bursts' peaks: median {1e3*np.median(out):.1f} mm, "
      f"share <= 10 mm {np.mean(np.array(out) <= 0.01):.2f}; {time.time()-t0:.0f} s", flush=True)
