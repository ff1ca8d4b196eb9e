#!/usr/bin/env python
"""A simulated continuous recording with known bursts of cortical activity (cached).

    python scripts/simulate_continuous.py                      # 10 min -> .cache/continuous/
    python scripts/simulate_continuous.py --minutes 1 --seed 0 # a 1-minute one

What it writes (``.cache/continuous/``, gitignored, never committed):
``sim-<minutes>min-seed<seed>_raw.fif`` (float32) and ``...-truth.json``.

Head and sensors
    The real sample subject: MEG + EEG channels of ``test-ave.fif.gz`` (366
    good M/EEG channels), sampled at 600 Hz, its SSP projectors (and the EEG
    average reference).
Sources (off the inversion grid)
    ``n_sources`` (2-4) fixed dipoles on the cortical vertices the small source
    space does *not* use (``validate_simulation.offgrid_truth_forward``: the
    other 2 x 768 vertices of the same decimated cortex, between the 2 x 258
    used ones, normals as orientations; 3-layer BEM), at least 30 mm apart,
    among the half of the vertices with the largest whitened gain (deep,
    nearly silent sources are not what a detection benchmark is about).
Bursts
    Each source switches on and off: bursts of 50-500 ms (uniform), separated
    by 1-6 s of silence (uniform), a Hann envelope times a cosine of 8-25 Hz
    (random phase and sign). The amplitude of a burst is set by its whitened
    SNR: ``SNR = ||W g|| · peak / sqrt(r)`` (the whitened field at the peak,
    RMS over the r whitened channels, over the unit whitened noise), drawn in
    [``--snr-min``, ``--snr-max``]; the truth file gives the amplitude in nA·m.
Noise (coloured)
    Spatially: the real noise covariance ``test-cov.fif`` (its colourer, with
    the SSP projectors); temporally: AR(1) with lag-1 autocorrelation
    ``--rho`` (unit marginal variance), continuous across chunks.
Generated in chunks of one minute (never the whole recording in memory),
each written to a temporary FIF, then concatenated from disk into one file.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
OUT = ROOT / ".cache" / "continuous"
SFREQ = 600.0


def sim_paths(minutes, seed, out=OUT):
    stem = f"sim-{minutes:g}min-seed{seed}"
    return Path(out) / f"{stem}_raw.fif", Path(out) / f"{stem}-truth.json"


def _setup():
    import mne

    from validate_simulation import Simulator, load_inputs, offgrid_truth_forward

    evoked, cov, fwd = load_inputs("surface")
    sim = Simulator(evoked, cov, fwd, sfreq=SFREQ, n_times=2,
                    truth_fwd=offgrid_truth_forward(evoked))
    return sim, cov, fwd


def draw_truth(sim, minutes, seed, n_sources, snr_range, min_dist=0.03):
    """Source positions and bursts (times in s from the recording's start)."""
    rng = np.random.default_rng(seed)
    wnorm = np.linalg.norm(sim.whitener @ sim.proj @ sim.gain, axis=0)
    candidates = np.flatnonzero(wnorm >= np.median(wnorm))
    idx = []
    while len(idx) < n_sources:
        k = int(rng.choice(candidates))
        if all(np.linalg.norm(sim.truth_pos[k] - sim.truth_pos[j]) >= min_dist for j in idx):
            idx.append(k)
    duration = minutes * 60.0
    bursts = []
    for j, k in enumerate(idx):
        t = rng.uniform(0.5, 3.0)
        while True:
            length = rng.uniform(0.05, 0.5)
            if t + length > duration - 0.1:
                break
            snr = rng.uniform(*snr_range)
            peak = snr * np.sqrt(sim.rank) / wnorm[k]  # A·m
            bursts.append(dict(source=j, onset=round(float(t), 4), duration=round(float(length), 4),
                               freq=round(float(rng.uniform(8, 25)), 3),
                               phase=float(rng.uniform(0, 2 * np.pi)),
                               sign=int(rng.choice([-1, 1])), snr=round(float(snr), 3),
                               peak_nAm=float(peak * 1e9)))
            t += length + rng.uniform(1.0, 6.0)
    bursts.sort(key=lambda b: b["onset"])
    return np.array(idx), bursts


def burst_waveform(b, times):
    """The burst's dipole moment (A·m) at ``times`` (s); zero outside it."""
    u = (times - b["onset"]) / b["duration"]
    on = (u >= 0) & (u <= 1)
    out = np.zeros_like(times)
    tt = times[on] - b["onset"]
    out[on] = (b["sign"] * b["peak_nAm"] * 1e-9 * np.sin(np.pi * u[on]) ** 2
               * np.cos(2 * np.pi * b["freq"] * tt + b["phase"]))
    return out


def simulate(minutes=10.0, seed=0, n_sources=3, snr_range=(1.0, 3.0), rho=0.5, out=OUT,
             chunk_s=60.0, log=print):
    """Write the recording and its truth; returns their paths (cached: not rewritten)."""
    import mne

    raw_path, truth_path = sim_paths(minutes, seed, out)
    if raw_path.exists() and truth_path.exists():
        return raw_path, truth_path
    Path(out).mkdir(parents=True, exist_ok=True)
    sim, cov, _ = _setup()
    idx, bursts = draw_truth(sim, minutes, seed, n_sources, snr_range)
    info = sim.info.copy()
    gain = sim.proj @ sim.gain[:, idx]  # (n_channels, n_sources), normal orientation
    rng = np.random.default_rng(seed + 1000)
    n_total = int(round(minutes * 60.0 * SFREQ))
    n_chunk = int(round(chunk_s * SFREQ))
    scale = np.sqrt(1.0 - rho ** 2)
    state = None
    parts = []
    t0 = time.perf_counter()
    from scipy.signal import lfilter

    tmpdir = Path(out) / f".parts-{os.getpid()}"
    tmpdir.mkdir(exist_ok=True)
    try:
        for k, a in enumerate(range(0, n_total, n_chunk)):
            b = min(a + n_chunk, n_total)
            times = np.arange(a, b) / SFREQ
            moments = np.zeros((len(idx), b - a))
            for burst in bursts:
                if burst["onset"] < times[-1] + 1 / SFREQ and \
                        burst["onset"] + burst["duration"] > times[0]:
                    moments[burst["source"]] += burst_waveform(burst, times)
            e = rng.standard_normal((sim.colorer.shape[1], b - a))
            if state is None:  # stationary start: x_0 = e_0
                state = (1.0 - scale) * e[:, :1]
            e, state = lfilter([scale], [1.0, -rho], e, axis=1, zi=state)
            data = gain @ moments + sim.proj @ (sim.colorer @ e)
            part = mne.io.RawArray(data, info, first_samp=0, verbose=False)
            fname = tmpdir / f"part{k:03d}_raw.fif"
            part.save(fname, fmt="single", overwrite=True, verbose=False)
            parts.append(fname)
            log(f"  chunk {k + 1}: {b / SFREQ:.0f} s of {n_total / SFREQ:.0f} s "
                f"({time.perf_counter() - t0:.0f} s)")
        raws = [mne.io.read_raw_fif(p, preload=False, verbose=False) for p in parts]
        raw = mne.concatenate_raws(raws, preload=False, verbose=False)
        raw.set_annotations(None)  # no boundary annotations: one continuous recording
        tmp = raw_path.with_name("tmp-" + raw_path.name)
        raw.save(tmp, fmt="single", overwrite=True, split_size="2GB", verbose=False)
        del raw, raws
        tmp.replace(raw_path)
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
        tmpdir.rmdir()
    src_pos = sim.truth_pos[idx]  # head frame (the forward's source space), m
    truth = dict(minutes=minutes, seed=seed, sfreq=SFREQ, rho=rho, snr_range=list(snr_range),
                 n_channels=len(info.ch_names), noise_cov="sample/MEG/test-cov.fif",
                 sources=[dict(index=int(k), position_mm=[round(float(x) * 1e3, 2) for x in p])
                          for k, p in zip(idx, src_pos)],
                 position_frame="head (the forward's source-space frame), mm",
                 bursts=bursts)
    tmp = truth_path.with_name("tmp-" + truth_path.name)
    tmp.write_text(json.dumps(truth, indent=1))
    tmp.replace(truth_path)
    return raw_path, truth_path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-sources", type=int, default=3, choices=(2, 3, 4))
    p.add_argument("--snr-min", type=float, default=1.0)
    p.add_argument("--snr-max", type=float, default=3.0)
    p.add_argument("--rho", type=float, default=0.5, help="lag-1 autocorrelation of the noise")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    raw_path, truth_path = simulate(args.minutes, args.seed, args.n_sources,
                                    (args.snr_min, args.snr_max), args.rho, Path(args.out))
    print(f"{raw_path} ({raw_path.stat().st_size / 1e6:.0f} MB), {truth_path}; "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
