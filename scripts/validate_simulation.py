#!/usr/bin/env python
"""Validation study: simulated sources on the real MNE 'sample' head, then the real evokeds.

Regenerates the tables and figures of ``docs/validation.md``::

    python scripts/validate_simulation.py --quick --out docs/     # default: SNR 1, 3, 10; 12 trials each
    python scripts/validate_simulation.py --full  --out docs/     # SNR 1/3/10, 30 trials each, real data at 600 Hz

Simulation
    1-3 cortical dipoles at random vertices of the small surface source space
    (2 x ~256 vertices, median nearest-neighbour spacing 9.5 mm), at least 30 mm
    apart, oriented along the cortical normal, with Gaussian-windowed sinusoid
    time courses (random latency, width, frequency, sign); real MEG+EEG forward
    (3-layer BEM) and real noise covariance ``test-cov.fif``.  20 samples at
    100 Hz (0-190 ms).  One seed per trial.
SNR (amplitude)
    ``SNR = sqrt(||W X||_F^2 / (r T))`` where ``X`` is the noise-free sensor
    signal, ``W`` the rank-``r`` whitener of the noise covariance (with the SSP
    projectors), ``T`` the number of samples: the RMS of the whitened signal over
    channels and samples, divided by the RMS of the whitened noise (1).  The
    source amplitudes are scaled to reach it and the noise is drawn from the
    covariance itself (whitened noise has unit variance), so the covariance given
    to every inverse is exactly the true one.  Power SNR = SNR**2.
Methods
    ours: ``sparse_inverse(alpha='sure', penalty=p, loose='auto', depth=0.8, debias=True)``
    for p in l21, mcp, scad, l05, log;  MNE ``mixed_norm(alpha='sure')`` with
    loose=0 (fixed orientation, else > 13 min per call here) on the first
    ``--mne-sure-trials`` trials (default all; 20 samples keep it at a few s per call); MNE irMxNE ``mixed_norm(alpha=--irmxne-alpha,
    n_mxne_iter=10)`` at a fixed alpha; dSPM and sLORETA (lambda2 = 1/9,
    loose 0.2, depth 0.8) with peak picking: the K largest local maxima (within 15 mm)
    of the peak-over-time amplitude, K = number of true sources.
Scores (per trial)
    see :func:`score_trial`.
Real data
    the four evokeds of ``test-ave.fif.gz`` (3-6 trials each), 50-150 ms: the two
    strongest sources of each method, MNI coordinates, hemisphere, nearest ROI of the
    Dosenbach 2010 atlas shipped with nilearn (160 named MNI points; no anatomical
    parcellation is available offline for the sample subject), explained variance.

Per-trial results go to ``.cache/validation/`` (CSV / JSON); the tables are written
between the AUTO markers of ``<out>/validation.md`` and the figures to
``<out>/figures/validation_*.png``.
"""

import argparse
import csv
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The forwards are built and cached by the solver benchmark's helpers (same files).
sys.path.insert(0, str(ROOT / "scripts"))
SHARED = Path(os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
SAMPLE = SHARED / "sample"
CACHE = ROOT / ".cache"
FWD_CACHE = CACHE / "tests" / "sample-small-meeg-fwd.fif"
TOL = 0.010  # m: a true source is "found" if an estimate lies within 10 mm
OURS = ("l21", "mcp", "scad", "l05", "log")
METHODS = tuple(f"ours-{p}" for p in OURS) + ("mne-sure", "mne-irmxne", "dSPM", "sLORETA")
BEGIN, END = "<!-- BEGIN AUTO: validate_simulation.py -->", "<!-- END AUTO -->"


# ----------------------------------------------------------------------------
# Scoring (pure numpy: tested in tests/test_validation_smoke.py)
# ----------------------------------------------------------------------------
def _nearest(a, b):
    """For each row of ``a`` (n, 3) the distance to, and index of, the nearest row of ``b``."""
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return d.min(axis=1), d.argmin(axis=1)


def _abs_corr(x, y):
    x, y = x - x.mean(), y - y.mean()
    den = np.linalg.norm(x) * np.linalg.norm(y)
    return float(abs(x @ y) / den) if den > 0 else np.nan


def score_trial(true_pos, est_pos, true_amp=None, est_amp=None, true_tc=None, est_tc=None,
                tol=TOL):
    """Scores of one localization.

    Parameters
    ----------
    true_pos, est_pos : array (n_true, 3), (n_est, 3)
        Positions in m (``n_est`` may be 0).
    true_amp, est_amp : array (n_true,), (n_est,) | None
        Peak amplitudes (A·m); ``est_amp`` None (e.g. dSPM) gives no amplitude bias.
    true_tc, est_tc : array (n_true, T), (n_est, T) | None
        Time courses (sign-free: the absolute correlation is used).
    tol : float
        Match radius in m.

    Returns
    -------
    dict
        ``err_true_mm``: mean over true sources of the distance to the nearest
        estimate; ``err_est_mm``: mean over estimates of the distance to the nearest
        true source (spurious sources raise it); both ``inf`` with no estimate.
        ``recall``: fraction of true sources with an estimate within ``tol``;
        ``precision``: fraction of estimates within ``tol`` of a true source (nan
        with no estimate); ``all_found``: recall == 1.  ``amp_bias``: median over the
        matched true sources (nearest estimate within ``tol``) of
        est_peak / true_peak - 1; ``corr``: median |Pearson correlation| of matched
        time courses; ``n_est``.
    """
    true_pos = np.atleast_2d(np.asarray(true_pos, float))
    est_pos = np.asarray(est_pos, float).reshape(-1, 3)
    n_true, n_est = len(true_pos), len(est_pos)
    out = dict(n_true=n_true, n_est=n_est, err_true_mm=np.inf, err_est_mm=np.inf, recall=0.0,
               precision=np.nan, all_found=False, amp_bias=np.nan, corr=np.nan)
    if n_est == 0:
        return out
    d_true, match = _nearest(true_pos, est_pos)
    d_est, _ = _nearest(est_pos, true_pos)
    found = d_true <= tol
    out.update(err_true_mm=float(d_true.mean() * 1e3), err_est_mm=float(d_est.mean() * 1e3),
               recall=float(found.mean()), precision=float((d_est <= tol).mean()),
               all_found=bool(found.all()))
    if found.any():
        k = np.flatnonzero(found)
        if true_amp is not None and est_amp is not None:
            ratio = np.asarray(est_amp, float)[match[k]] / np.asarray(true_amp, float)[k]
            out["amp_bias"] = float(np.median(ratio - 1.0))
        if true_tc is not None and est_tc is not None:
            out["corr"] = float(np.median([_abs_corr(true_tc[i], est_tc[match[i]]) for i in k]))
    return out


def local_peaks(score, pos, k, radius=0.015):
    """Indices of the ``k`` largest local maxima of ``score`` over positions ``pos``.

    A source is a local maximum when no source within ``radius`` (m) scores higher.
    """
    score = np.asarray(score, float)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    neigh = (d <= radius) & (d > 0)
    is_peak = np.array([not np.any(score[neigh[i]] > score[i]) for i in range(len(score))])
    idx = np.flatnonzero(is_peak)
    return idx[np.argsort(-score[idx])][:k]


def summarize(rows):
    """Per (method, SNR) aggregate of per-trial score dicts."""
    groups = {}
    for r in rows:
        groups.setdefault((r["method"], r["snr"]), []).append(r)
    table = []
    for (method, snr), rs in groups.items():
        def col(name):
            return np.array([r[name] for r in rs], float)

        prec = col("precision")
        # absent from runs written before the column existed (--reuse-simulation)
        canc = col("field_cancellation") if "field_cancellation" in rs[0] else np.array([np.nan])
        table.append(dict(
            method=method, snr=snr, n=len(rs),
            err_true_mm=float(np.median(col("err_true_mm"))),
            err_est_mm=float(np.median(col("err_est_mm"))),
            all_found=float(np.mean(col("all_found"))),
            recall=float(np.mean(col("recall"))),
            precision=float(np.nanmean(prec)) if np.isfinite(prec).any() else np.nan,
            n_est=float(np.median(col("n_est"))),
            n_empty=int(np.sum(col("n_est") == 0)),
            amp_bias=_nanmedian(col("amp_bias")),
            corr=_nanmedian(col("corr")),
            canc_median=_nanmedian(canc),
            canc_max=float(canc[np.isfinite(canc)].max()) if np.isfinite(canc).any() else np.nan,
            time_s=float(np.median(col("time_s")))))
    order = {m: i for i, m in enumerate(METHODS)}
    table.sort(key=lambda r: (r["snr"], order.get(r["method"], 99)))
    return table


SIM_TABLE_HEADER = [
    "| SNR | method | trials | err true→est (mm) | err est→true (mm) | all found ≤10 mm "
    "| recall | precision | n est. | empty | amp. bias | abs. corr | canc. med / max | time (s) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]


def _sim_table_row(r):
    """One markdown row of a :func:`summarize` aggregate."""
    bias = _fmt(100 * r["amp_bias"], "+.0f") + ("" if np.isnan(r["amp_bias"]) else " %")
    canc = ("—" if np.isnan(r["canc_median"])
            else f"{_fmt(r['canc_median'], '.2f')} / {_fmt(r['canc_max'], '.1f')}")
    cells = [r["snr"], r["method"], r["n"], _fmt(r["err_true_mm"], ".1f"),
             _fmt(r["err_est_mm"], ".1f"), _fmt(r["all_found"], ".2f"), _fmt(r["recall"], ".2f"),
             _fmt(r["precision"], ".2f"), _fmt(r["n_est"], ".0f"), r["n_empty"], bias,
             _fmt(r["corr"], ".2f"), canc, _fmt(r["time_s"], ".1f")]
    return "| " + " | ".join(map(str, cells)) + " |"


def _nanmedian(x):
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else np.nan


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def load_inputs(source_space="surface"):
    """Evoked (for its info), noise covariance and the forward of ``source_space``.

    "surface": the small cortical source space (cached with the tests' forward);
    "volume": the 5 mm grid inside the inner skull of the solver benchmark
    (``scripts/benchmark_solvers.py``, cached under ``.cache/bench/``).
    """
    import mne

    if source_space == "volume":
        from benchmark_solvers import _forward

        evoked = mne.read_evokeds(SAMPLE / "MEG" / "test-ave.fif.gz",
                                  condition="Left Auditory", verbose=False)
        cov = mne.read_cov(SAMPLE / "MEG" / "test-cov.fif", verbose=False)
        return evoked, cov, _forward("volume", evoked)

    evoked = mne.read_evokeds(SAMPLE / "MEG" / "test-ave.fif.gz", condition="Left Auditory",
                              verbose=False)
    cov = mne.read_cov(SAMPLE / "MEG" / "test-cov.fif", verbose=False)
    from benchmark_solvers import cached_forward

    return evoked, cov, cached_forward(
        FWD_CACHE, evoked.info,
        lambda: mne.read_source_spaces(SAMPLE / "MEG" / "sample-small-src.fif.gz",
                                       verbose=False))


def _make_projector(projs, ch_names):
    try:
        from mne._fiff.proj import make_projector
    except ImportError:  # older MNE
        from mne.io.proj import make_projector
    return make_projector(projs, ch_names)


def _normal_gain(fwd):
    """Gain along the source normals: the cortical patch normals of a surface source
    space (as MNE's loose=0), the given normals of a discrete one."""
    import mne

    if fwd["src"].kind == "surface":
        return mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True,
                                            use_cps=True, verbose=False)["sol"]["data"]
    nn = np.concatenate([s["nn"][s["vertno"]] for s in fwd["src"]])  # head frame
    gain = fwd["sol"]["data"].reshape(fwd["sol"]["data"].shape[0], -1, 3)
    return np.einsum("cki,ki->ck", gain, nn)


OFFGRID_FWD = CACHE / "validation" / "offgrid-truth-fwd.fif"


MODEL_ERROR_BEM = CACHE / "validation" / "sample-1280x3-skull1to80-bem-sol.fif"
#: The head model of the truth in the model-error check (docs/validation.md,
#: amendment 7): the sample subject's three BEM surfaces at ico-3 (1280 triangles
#: each, the inversion's BEM has 320) with the classic 1:80 skull conductivity ratio
#: (0.3, 0.00375, 0.3 S/m; MNE's default, the inversion's, is 1:50).
MODEL_ERROR_CONDUCTIVITY = (0.3, 0.00375, 0.3)


def model_error_bem():
    """The BEM solution file of the model-error truth (built once, cached)."""
    import mne

    if not MODEL_ERROR_BEM.exists():
        model = mne.make_bem_model("sample", ico=3, conductivity=MODEL_ERROR_CONDUCTIVITY,
                                   subjects_dir=SAMPLE / "subjects", verbose=False)
        solution = mne.make_bem_solution(model, verbose=False)
        MODEL_ERROR_BEM.parent.mkdir(parents=True, exist_ok=True)
        tmp = MODEL_ERROR_BEM.with_name("tmp-" + MODEL_ERROR_BEM.name)
        mne.write_bem_solution(tmp, solution, overwrite=True, verbose=False)
        tmp.replace(MODEL_ERROR_BEM)
    return MODEL_ERROR_BEM


def offgrid_truth_forward(evoked, model_error=False):
    """Forward of the cortical vertices the small source space does *not* use.

    The source-space file stores its whole (decimated) cortical surface, 2 × 1026
    vertices with normals, of which 2 × 258 are in use; the other 2 × 768 lie
    between them, on the same cortex.  Simulating there and inverting on the used
    vertices avoids the inverse crime.  A discrete source space with the
    vertex normals, 3-layer BEM; cached. ``model_error``: with :func:`model_error_bem`
    instead of the inversion's BEM (another head model than the inverses').
    """
    import mne

    path = OFFGRID_FWD.with_name("offgrid-truth-model-error-fwd.fif") if model_error \
        else OFFGRID_FWD
    if path.exists():
        return mne.read_forward_solution(path, verbose=False)
    src = mne.read_source_spaces(SAMPLE / "MEG" / "sample-small-src.fif.gz", verbose=False)
    rr = np.concatenate([s["rr"][s["inuse"] == 0] for s in src])  # MRI frame, m
    nn = np.concatenate([s["nn"][s["inuse"] == 0] for s in src])
    disc = mne.setup_volume_source_space("sample", pos=dict(rr=rr, nn=nn),
                                         subjects_dir=SAMPLE / "subjects", verbose=False)
    from benchmark_solvers import cached_forward

    return cached_forward(path, evoked.info, lambda: disc,
                          bem=model_error_bem() if model_error else None)


class Simulator:
    """Real forward + real noise covariance; 20 samples at 100 Hz.

    ``orientation``: "normal" (along the cortical normal, surface source spaces
    only) or "random" (a uniformly random unit vector per source).
    ``truth_fwd``: forward the sources are simulated with (default ``fwd``, the one
    the inverses use — the "inverse crime"); ``pos`` are the inverse grid's
    positions, ``truth_pos`` the simulation grid's.
    """

    def __init__(self, evoked, cov, fwd, sfreq=100.0, n_times=20, orientation="normal",
                 truth_fwd=None):
        import mne

        if orientation not in ("normal", "random"):
            raise ValueError(f"orientation must be 'normal' or 'random', got {orientation!r}")
        self.kind = fwd["src"].kind
        truth_kinds = {s["type"] for s in (truth_fwd or fwd)["src"]}
        if orientation == "normal" and truth_kinds - {"surf", "discrete"}:
            raise ValueError("normal orientations need a surface source space: use "
                             "orientation='random' with a volume source space")
        self.orientation = orientation

        info = evoked.copy().pick([c for c in evoked.ch_names if c in fwd["sol"]["row_names"]
                                   and c in cov["names"] and c not in evoked.info["bads"]]).info
        with info._unlock():
            info["sfreq"] = sfreq
            info["lowpass"] = min(info["lowpass"], sfreq / 2.0)
        self.info, self.cov = info, cov
        self.times = np.arange(n_times) / sfreq
        fwd = mne.pick_channels_forward(fwd, info.ch_names, ordered=True, verbose=False)
        self.fwd = fwd
        truth = fwd if truth_fwd is None else mne.pick_channels_forward(
            truth_fwd, info.ch_names, ordered=True, verbose=False)
        if orientation == "normal":
            self.gain = _normal_gain(truth)  # (n_chan, n_src), along the cortical normal
        else:
            self.gain = truth["sol"]["data"]  # (n_chan, 3 n_src), x/y/z (head frame)
        self.pos = np.concatenate([s["rr"][s["vertno"]] for s in fwd["src"]])  # head frame, m
        self.truth_pos = np.concatenate([s["rr"][s["vertno"]] for s in truth["src"]])
        self.off_grid = truth_fwd is not None
        self.n_lh = len(fwd["src"][0]["vertno"])
        self.vertno = [s["vertno"] for s in fwd["src"]]
        self.offsets = np.cumsum([0] + [len(v) for v in self.vertno])
        W, _, rank, colorer = mne.cov.compute_whitener(cov, info, return_rank=True,
                                                    return_colorer=True, pca=False,
                                                    verbose=False)
        self.whitener, self.rank, self.colorer = W, rank, colorer
        self.proj, _, _ = _make_projector(info["projs"], info.ch_names)

    def global_index(self, vertices):
        """stc vertices (one array per source space) -> indices into the forward's sources."""
        return np.concatenate([np.searchsorted(v, vert) + off for v, vert, off
                               in zip(self.vertno, vertices, self.offsets)]).astype(int)

    def snr(self, signal):
        return float(np.sqrt(np.sum((self.whitener @ signal) ** 2) / (self.rank * signal.shape[1])))

    def trial(self, seed, snr, n_sources=None, min_dist=0.03):
        import mne

        rng = np.random.default_rng(seed)
        if n_sources is None:
            n_sources = int(rng.integers(1, 4))
        idx = []
        while len(idx) < n_sources:
            k = int(rng.integers(len(self.truth_pos)))
            if all(np.linalg.norm(self.truth_pos[k] - self.truth_pos[j]) >= min_dist
                   for j in idx):
                idx.append(k)
        idx = np.array(idx)
        t = self.times
        tcs = []
        for _ in idx:
            lat = rng.uniform(0.05, 0.14)
            width = rng.uniform(0.015, 0.035)
            freq = rng.uniform(4.0, 12.0)
            phase = rng.uniform(0, 2 * np.pi)
            tc = np.exp(-0.5 * ((t - lat) / width) ** 2) * np.cos(2 * np.pi * freq * (t - lat) + phase)
            tc *= rng.uniform(0.6, 1.0) * rng.choice([-1, 1]) / np.abs(tc).max()
            tcs.append(tc)
        tcs = np.array(tcs)  # relative, peak |.| in [0.6, 1]
        ori = None
        if self.orientation == "normal":
            signal = self.proj @ (self.gain[:, idx] @ tcs)
        else:
            ori = rng.standard_normal((len(idx), 3))
            ori /= np.linalg.norm(ori, axis=1, keepdims=True)
            cols = (3 * idx[:, None] + np.arange(3)).ravel()
            moments = (ori[:, :, None] * tcs[:, None, :]).reshape(-1, len(t))
            signal = self.proj @ (self.gain[:, cols] @ moments)
        scale = snr / self.snr(signal)
        tcs, signal = tcs * scale, signal * scale  # A·m
        noise = self.proj @ (self.colorer @ rng.standard_normal(signal.shape))
        evoked = mne.EvokedArray(signal + noise, self.info, tmin=0.0, nave=1,
                                 comment=f"sim seed={seed}", verbose=False)
        return evoked, dict(idx=idx, pos=self.truth_pos[idx], tc=tcs,
                            amp=np.abs(tcs).max(axis=1), n_sources=n_sources, ori=ori)


# ----------------------------------------------------------------------------
# Methods: each returns estimated source indices, peak amplitudes, time courses
# ----------------------------------------------------------------------------
def _from_stc(sim, stc, with_amp=True):
    idx = sim.global_index(stc.vertices)
    data = stc.data
    if data.ndim == 3:  # vector: (n, 3, T) -> amplitude and dominant-orientation time course
        amp = np.linalg.norm(data, axis=1).max(axis=1)
        tcs = []
        for block in data:
            u, s, vt = np.linalg.svd(block, full_matrices=False)
            tcs.append(s[0] * vt[0])
        tcs = np.array(tcs).reshape(len(idx), -1)
    else:
        amp, tcs = np.abs(data).max(axis=1), data
    keep = amp > 0
    return idx[keep], (amp[keep] if with_amp else None), tcs[keep]


def run_method(method, sim, evoked, n_true, inv_ops, irmxne_alpha, seed):
    import mne
    from mne.inverse_sparse import mixed_norm

    from meeg_inverse import sparse_inverse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        if method.startswith("ours-"):
            # "ours-<penalty>": the API's default orientation model (loose 0.2 on a
            # surface, 1 on a volume); "ours-<penalty>-free": loose=1.
            penalty, free = (method[5:-5], True) if method.endswith("-free") else (method[5:], False)
            stc = sparse_inverse(evoked, sim.fwd, sim.cov, alpha="sure", penalty=penalty,
                                 loose=1.0 if free else "auto", depth=0.8, debias=True,
                                 pick_ori="vector", random_state=seed)
        elif method == "mne-sure":
            stc = mixed_norm(evoked, sim.fwd, sim.cov, alpha="sure", loose=0.0, depth=0.8,
                             debias=True, random_state=seed, verbose=False)
        elif method == "mne-irmxne":
            stc = mixed_norm(evoked, sim.fwd, sim.cov, alpha=irmxne_alpha, n_mxne_iter=10,
                             loose=0.2, depth=0.8, debias=True, pick_ori="vector", verbose=False)
        elif method in ("dSPM", "sLORETA"):
            stc = mne.minimum_norm.apply_inverse(evoked, inv_ops, 1.0 / 9.0, method=method,
                                                 pick_ori="vector", verbose=False)
        else:
            raise ValueError(method)
        elapsed = time.perf_counter() - t0
    if isinstance(stc, list):
        stc = stc[0]
    if method in ("dSPM", "sLORETA"):
        mag = np.linalg.norm(stc.data, axis=1).max(axis=1)
        idx_all = sim.global_index(stc.vertices)
        peaks = local_peaks(mag, sim.pos[idx_all], n_true)
        data = stc.data[peaks]
        tcs = []
        for block in data:
            u, s, vt = np.linalg.svd(block, full_matrices=False)
            tcs.append(s[0] * vt[0])
        return idx_all[peaks], None, np.array(tcs), elapsed, np.nan
    idx, amp, tcs = _from_stc(sim, stc)
    return idx, amp, tcs, elapsed, _cancellation(stc, sim)


def _cancellation(stc, sim):
    """Field cancellation of a sparse estimate (see ``InverseProblem.field_cancellation``)."""
    if not len(stc.data):
        return np.nan
    power, _, total = field_power(stc, sim.fwd, sim.info, sim.whitener, return_total=True)
    return _cancellation_ratio(power, total)


def _cancellation_ratio(power, total):
    """Summed per-source field energy over the energy of their sum."""
    return float(power.sum() / total) if total > 0 else np.nan


def make_inverse_operator(info, fwd, cov):
    import mne

    loose = 0.2 if fwd["src"].kind == "surface" else 1.0  # volumes have no normals
    return mne.minimum_norm.make_inverse_operator(info, fwd, cov, loose=loose, depth=0.8,
                                                  verbose=False)


#: MNE's sparse solvers on the 5 mm volume (31 104 columns, free orientation):
#: SURE takes > 13 min per call already on the 1533-column surface problem with
#: free orientation, irMxNE 10 reweightings of ~10 s solves; not run there.
VOLUME_SKIP = ("mne-sure", "mne-irmxne")


# ----------------------------------------------------------------------------
# Study
# ----------------------------------------------------------------------------
def simulate_study(sim, snrs, n_trials, mne_sure_trials, irmxne_alpha, log, examples,
                   max_sources=3, seed_offset=0, methods=METHODS):
    inv = make_inverse_operator(sim.info, sim.fwd, sim.cov)
    rows = []
    for snr in snrs:
        for trial in range(n_trials):
            seed = 1000 * int(round(10 * snr)) + trial + seed_offset
            n_src = 1 + trial % max_sources
            evoked, truth = sim.trial(seed, snr, n_sources=n_src)
            if sim.off_grid:
                # Geometry only: the grid vertex nearest to each true source.
                near = np.argmin(np.linalg.norm(sim.pos[None] - truth["pos"][:, None], axis=2),
                                 axis=1)
                s = score_trial(truth["pos"], sim.pos[near])
                s.update(method="oracle-nearest", snr=snr, trial=trial, seed=seed, time_s=0.0,
                         n_sources=n_src, field_cancellation=np.nan)
                rows.append(s)
            for method in methods:
                if method == "mne-sure" and trial >= mne_sure_trials:
                    continue
                if sim.kind != "surface" and method in VOLUME_SKIP:
                    continue
                idx, amp, tcs, elapsed, canc = run_method(method, sim, evoked, n_src, inv,
                                                          irmxne_alpha, seed)
                s = score_trial(truth["pos"], sim.pos[idx], truth["amp"], amp, truth["tc"], tcs)
                s.update(method=method, snr=snr, trial=trial, seed=seed, time_s=elapsed,
                         n_sources=n_src, field_cancellation=canc)
                rows.append(s)
                log(f"SNR {snr:>4} trial {trial:2d} ({n_src} src) {method:11s} "
                    f"err {s['err_true_mm']:6.1f}/{s['err_est_mm']:6.1f} mm  n_est {s['n_est']:3d} "
                    f"rec {s['recall']:.2f} prec {s['precision']:.2f}  {elapsed:6.1f} s")
                if (snr, trial) == examples["key"]:
                    examples["est"][method] = (sim.pos[idx], amp)
                    examples["truth"] = truth
    return rows


def _real_methods(methods, ours_looses):
    """(label, method, loose) for the real data: ours at each orientation model.

    ``loose=0.2`` is the default of the API (label ``ours-<penalty>``);
    ``loose=0`` (label ``ours-<penalty>-fixed``) is the orientation model MNE's
    SURE gets on the real data (it is too slow with free orientations), so
    that pair compares the λ choices and penalties on the same model.
    """
    out = []
    for method in methods:
        if method.startswith("ours-"):
            for loose in ours_looses:
                label = method if loose == 0.2 else (
                    f"{method}-fixed" if loose == 0 else f"{method}-loose{loose:g}")
                out.append((label, method, loose))
        else:
            out.append((method, method, None))
    return out


POOLED_AUDITORY = "Auditory (L+R pooled)"


def real_evokeds(pool_auditory=True):
    """The four baseline-corrected sample averages, and their pooled auditory average.

    The shared averages hold 3 ('Left Auditory') and 6 trials: the auditory
    verdicts flipped between neighbouring vertices. Both tones evoke a bilateral
    auditory response, so their nave-weighted average (9 trials, noise down by
    sqrt(3) from the 3-trial one) is added as ``POOLED_AUDITORY`` — the test
    written down before it was first computed (docs/validation.md).
    """
    import mne

    # Saved without baseline correction: the DC offsets are ~6x the noise (whitened).
    evokeds = mne.read_evokeds(SAMPLE / "MEG" / "test-ave.fif.gz", baseline=(None, 0),
                               verbose=False)
    auditory = [ev for ev in evokeds if "auditory" in ev.comment.lower()]
    if pool_auditory and len(auditory) == 2:
        pooled = mne.combine_evoked(auditory, weights="nave")
        pooled.comment = POOLED_AUDITORY
        evokeds.append(pooled)
    return evokeds


def real_data(sim_fwd, cov, irmxne_alpha, log, methods=METHODS, decim=1, tmin=0.05, tmax=0.15,
              ours_looses=(0.2, 0.0), conditions=None):
    import mne
    from mne.inverse_sparse import mixed_norm

    from meeg_inverse import sparse_inverse
    from meeg_inverse.summary import mni_transform

    subjects_dir = SAMPLE / "subjects"
    to_mni = mni_transform("sample", str(subjects_dir))
    atlas = _dosenbach()
    results = []
    evokeds = [ev for ev in real_evokeds()
               if conditions is None or ev.comment in conditions]
    for ev in evokeds:
        ev = ev.copy().crop(tmin, tmax)
        if decim > 1:
            ev = mne.EvokedArray(ev.data[:, ::decim], _decimated_info(ev.info, decim),
                                 tmin=ev.times[0], nave=ev.nave, comment=ev.comment, verbose=False)
        fwd = mne.pick_channels_forward(sim_fwd, [c for c in ev.ch_names
                                                  if c in sim_fwd["sol"]["row_names"]
                                                  and c not in ev.info["bads"]], verbose=False)
        step = max(1, int(round(3 / decim)))  # MNE-SURE: ~20 samples
        ev_dec = mne.EvokedArray(ev.data[:, ::step], _decimated_info(ev.info, step),
                                 tmin=ev.times[0], nave=ev.nave, comment=ev.comment, verbose=False)
        pos = np.concatenate([s["rr"][s["vertno"]] for s in fwd["src"]])
        n_lh = len(fwd["src"][0]["vertno"])
        head_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
        inv = None
        for label, method, loose in _real_methods(methods, ours_looses):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                data_ev = ev
                if method.startswith("ours-"):
                    stc, res = sparse_inverse(ev, fwd, cov, alpha="sure", penalty=method[5:],
                                              loose=loose,
                                              pick_ori="vector" if loose else None,
                                              return_residual=True, random_state=0)
                elif method == "mne-sure":
                    data_ev = ev_dec
                    stc, res = mixed_norm(ev_dec, fwd, cov, alpha="sure", loose=0.0,
                                          return_residual=True, random_state=0, verbose=False)
                elif method == "mne-irmxne":
                    stc, res = mixed_norm(ev, fwd, cov, alpha=irmxne_alpha, n_mxne_iter=10,
                                          loose=0.2, pick_ori="vector", return_residual=True,
                                          verbose=False)
                else:
                    if inv is None:
                        inv = make_inverse_operator(ev.info, fwd, cov)
                    stc = mne.minimum_norm.apply_inverse(ev, inv, 1.0 / 9.0, method=method,
                                                         pick_ori="vector", verbose=False)
                    res = None
                elapsed = time.perf_counter() - t0
            power = None
            if res is not None:
                Wp, _ = mne.cov.compute_whitener(cov, res.info, pca=False, verbose=False)
                y = data_ev.copy().pick(res.ch_names).data
                ev_frac = 1 - np.sum((Wp @ res.data) ** 2) / np.sum((Wp @ y) ** 2)
                power, mismatch, total = field_power(stc, fwd, res.info, Wp, y - res.data,
                                                     return_total=True)
                cancellation = _cancellation_ratio(power, total)
                if mismatch > 1e-3:
                    log(f"   ! {label}: sum of the per-source fields differs from the fit "
                        f"by {mismatch:.1e} (relative)")
            else:
                ev_frac = cancellation = np.nan
            vert = stc.vertices
            gidx = np.concatenate([np.searchsorted(fwd["src"][0]["vertno"], vert[0]),
                                   np.searchsorted(fwd["src"][1]["vertno"], vert[1]) + n_lh])
            data = stc.data
            mag = np.linalg.norm(data, axis=1) if data.ndim == 3 else np.abs(data)
            peak = mag.max(axis=1)
            # The strongest source of each hemisphere (dSPM/sLORETA: their
            # largest value; a local maximum by definition).
            lh = gidx < n_lh

            def strongest(score):
                top = [int(np.flatnonzero(side)[np.argmax(score[side])]) if side.any()
                       else None for side in (lh, ~lh)]
                out = []
                for j in top:
                    if j is None:
                        out.append(None)
                        continue
                    k = gidx[j]
                    rr_mri = mne.transforms.apply_trans(head_mri, pos[k])
                    mni = mne.transforms.apply_trans(to_mni, rr_mri) * 1e3
                    name, dist = _nearest_roi(atlas, mni)
                    out.append(dict(hemi="lh" if k < n_lh else "rh",
                                    mni=np.round(mni).tolist(), roi=name, roi_dist_mm=dist,
                                    peak=float(score[j]),
                                    peak_time_ms=float(1e3 * stc.times[int(np.argmax(mag[j]))])))
                return out

            sources = strongest(peak)
            # Pre-registered at the previous stop (before computing it): the
            # strongest source by the whitened field it puts on the sensors.
            sources_field = None if power is None else strongest(power)
            dense = method in ("dSPM", "sLORETA")
            ac = (None if dense or "auditory" not in ev.comment.lower()
                  else auditory_sources(gidx, peak, pos, n_lh, head_mri, to_mni))
            results.append(dict(condition=ev.comment, nave=int(round(ev.nave)), method=label,
                                expected=expected_sources(ev.comment, sources),
                                sources_field=sources_field,
                                expected_field=None if sources_field is None
                                else expected_sources(ev.comment, sources_field),
                                auditory_sources=ac,
                                n_active=int(len(gidx)) if method not in ("dSPM", "sLORETA")
                                else None, explained_variance=float(ev_frac),
                                field_cancellation=cancellation, time_s=elapsed,
                                sources=sources))
            log(f"{ev.comment:15s} {label:17s} EV {ev_frac:5.2f} "
                + "; ".join(f"{s['hemi']} {s['mni']} {s['roi']}" for s in sources if s)
                + f"  {elapsed:.1f} s")
    return results


# Reference points (MNI, mm) of the expected generators: the auditory cortices
# (Heschl's gyrus / planum temporale) and the occipital lobe (y < -60 mm).
AUDITORY_MNI = {"lh": np.array([-50.0, -24.0, 8.0]), "rh": np.array([52.0, -22.0, 8.0])}
AUDITORY_TOL_MM = 20.0  # source-space spacing (~10 mm) plus the affine MNI warp
OCCIPITAL_MAX_Y_MM = -60.0


def field_power(stc, fwd, info, whitener, fit=None, return_total=False):
    """Whitened field power ``‖W G_j X_j‖²_F`` of each source of a sparse estimate.

    For the same field on the sensors a deeper dipole needs a larger amplitude
    (the gain falls with the distance to the sensors), so ranking sources by
    amplitude favours deep ones; ranking them by the field they put on the
    sensors, in noise units, ranks them by how much of the data they explain.

    Parameters
    ----------
    stc : SourceEstimate | VectorSourceEstimate | VolVectorSourceEstimate
        Sparse estimate on the source space of ``fwd`` (a vector
        estimate in head coordinates, or a scalar one along the cortical
        normals, loose=0).
    fwd : Forward
        Free-orientation forward the estimate was computed with.
    info : Info
        Channels of ``whitener`` and their SSP projectors (applied to each
        source's field, as to the data the estimate was fitted to).
    whitener : array, shape (n_channels, n_channels)
    fit : array, shape (n_channels, n_times) | None
        The method's fitted data ``y − residual``: the per-source fields must
        sum to it.
    return_total : bool
        Also return ``‖W Σ_j G_j X_j‖²_F`` (the field cancellation is
        ``power.sum()`` over it).

    Returns
    -------
    power : array, shape (n_sources,)
    mismatch : float
        ``‖Σ_j G_j X_j − fit‖ / ‖fit‖`` (nan without ``fit``).
    """
    import mne

    fwd = mne.pick_channels_forward(fwd, info["ch_names"], ordered=True, verbose=False)
    proj = _make_projector(info["projs"], info["ch_names"])[0]
    vector = stc.data.ndim == 3
    if not vector:  # along the normals, as loose=0 (MNE uses the patch normals)
        fwd = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True,
                                           use_cps=True, verbose=False)
    gain = fwd["sol"]["data"]
    # one vertex array per source space (two hemispheres, or one volume)
    offsets = np.cumsum([0] + [len(s["vertno"]) for s in fwd["src"]])
    gidx = np.concatenate([np.searchsorted(s["vertno"], v) + off
                           for s, v, off in zip(fwd["src"], stc.vertices, offsets)])
    total = np.zeros((gain.shape[0], stc.data.shape[-1]))
    power = np.empty(len(gidx))
    for j, k in enumerate(gidx):
        field = proj @ (gain[:, 3 * k:3 * k + 3] @ stc.data[j] if vector
                        else np.outer(gain[:, k], stc.data[j]))
        total += field
        power[j] = np.sum((whitener @ field) ** 2)
    mismatch = (np.nan if fit is None
                else float(np.linalg.norm(total - fit) / max(np.linalg.norm(fit), 1e-300)))
    if return_total:
        return power, mismatch, float(np.sum((whitener @ total) ** 2))
    return power, mismatch


def auditory_sources(gidx, peak, pos, n_lh, head_mri, to_mni):
    """Secondary (post hoc) auditory check: the estimated source nearest each AC.

    For each hemisphere, among the estimated sources of that hemisphere: the
    one nearest to the auditory-cortex reference point, its distance (mm) and
    its rank by peak amplitude (1 = the hemisphere's strongest), and the number
    of sources there.  Added after the primary criterion (the strongest source
    of each hemisphere) failed on 'Left Auditory': it says whether a method
    puts a source in each auditory cortex at all, and how far down its list.
    """
    import mne

    out = {}
    for hemi, side in (("lh", gidx < n_lh), ("rh", gidx >= n_lh)):
        idx = np.flatnonzero(side)
        if idx.size == 0:
            out[hemi] = None
            continue
        mni = mne.transforms.apply_trans(
            to_mni, mne.transforms.apply_trans(head_mri, pos[gidx[idx]])) * 1e3
        dist = np.linalg.norm(mni - AUDITORY_MNI[hemi], axis=1)
        j = int(np.argmin(dist))
        rank = 1 + int(np.sum(peak[idx] > peak[idx[j]]))
        out[hemi] = dict(dist_mm=float(dist[j]), rank=rank, n=int(idx.size))
    return out


def expected_sources(condition, sources):
    """Whether the strongest sources are where the stimulus should put them.

    Auditory conditions: the strongest source of *each* hemisphere lies within
    ``AUDITORY_TOL_MM`` of that hemisphere's auditory cortex. Visual conditions:
    the strongest source of either hemisphere is occipital (MNI y < -60 mm).
    ``sources`` is ``[lh, rh]`` (dicts with ``mni`` and ``peak``, or None).
    """
    if "auditory" in condition.lower():
        return all(s is not None and np.linalg.norm(np.asarray(s["mni"]) - AUDITORY_MNI[h])
                   <= AUDITORY_TOL_MM for s, h in zip(sources, ("lh", "rh")))
    if "visual" in condition.lower():
        present = [s for s in sources if s is not None]
        return bool(present) and max(present, key=lambda s: s["peak"])["mni"][1] \
            < OCCIPITAL_MAX_Y_MM
    return None


def _read_rows(fname):
    rows = []
    with open(fname) as f:
        for r in csv.DictReader(f):
            out = {}
            for k, v in r.items():
                if k == "method":
                    out[k] = v
                elif k == "all_found":
                    out[k] = v == "True"
                else:
                    out[k] = float(v) if v not in ("", "nan") else np.nan
            snr = out["snr"]
            out["snr"] = int(snr) if float(snr).is_integer() else snr
            rows.append(out)
    return rows


def _decimated_info(info, factor):
    info = info.copy()
    with info._unlock():
        info["sfreq"] = info["sfreq"] / factor
        info["lowpass"] = min(info["lowpass"], info["sfreq"] / 2)
    return info


def _dosenbach():
    import nilearn

    fname = Path(nilearn.__file__).parent / "datasets" / "data" / "dosenbach_2010.csv"
    if not fname.exists():
        return None
    with open(fname) as f:
        rows = list(csv.DictReader(f))
    xyz = np.array([[float(r["x"]), float(r["y"]), float(r["z"])] for r in rows])
    names = [r["name"] for r in rows]
    return xyz, names


def _nearest_roi(atlas, mni):
    if atlas is None:
        return None, None
    xyz, names = atlas
    d = np.linalg.norm(xyz - mni, axis=1)
    k = int(np.argmin(d))
    side = "L" if xyz[k, 0] < 0 else ("R" if xyz[k, 0] > 0 else "mid")
    return f"{names[k]} ({side})", float(round(d[k], 1))


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------
def _fmt(x, spec):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    if isinstance(x, float) and np.isinf(x):
        return "∞"
    return format(x, spec)


def markdown_tables(table, real, meta):
    out = [f"_Generated by `{meta['command']}` in {meta['elapsed_min']:.1f} min "
           f"({meta['mode']}: SNR {', '.join(map(str, meta['snrs']))}; {meta['n_trials']} trials per "
           f"SNR, MNE-SURE on the first {meta['mne_sure_trials']}; irMxNE alpha = "
           f"{meta['irmxne_alpha']} % of lambda_max)._", ""]
    out += ["### Simulation", "", *SIM_TABLE_HEADER]
    out += [_sim_table_row(r) for r in table]
    if real:
        out += ["", "### Real data (sample, 50–150 ms): the strongest source of each hemisphere",
                "", "Expected: auditory conditions — the strongest source of *each* hemisphere "
                f"within {AUDITORY_TOL_MM:.0f} mm of its auditory cortex (MNI "
                f"{AUDITORY_MNI['lh'].astype(int).tolist()} / "
                f"{AUDITORY_MNI['rh'].astype(int).tolist()}); visual — the strongest source "
                f"occipital (MNI y < {OCCIPITAL_MAX_Y_MM:.0f} mm).  Post hoc column (added after "
                "the primary criterion failed on 'Left Auditory', so exploratory): in each "
                "hemisphere, the estimated source nearest its auditory cortex, its distance "
                "and its rank by peak amplitude among that hemisphere's sources.  "
                "`-fixed` rows: loose=0, the orientation model MNE-SURE gets here "
                "(decided before looking at them); other rows of ours: loose=0.2, the default.",
                "",
                "`canc.`: field cancellation, Σ_j ‖W G_j X_j‖² / ‖W Σ_j G_j X_j‖² (≈ 1 when "
                "the sources' fields add up, ≫ 1 for opposing neighbours; the API warns "
                "above 10).",
                "",
                "| condition (nave) | method | EV | active | canc. | strongest lh | strongest rh | "
                "expected | nearest to AC, lh / rh (post hoc) | time (s) |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in real:
            def src(s):
                if s is None:
                    return "—"
                return (f"{s['hemi']} ({s['mni'][0]:.0f}, {s['mni'][1]:.0f}, {s['mni'][2]:.0f}) "
                        f"{s['roi']} {s['roi_dist_mm']:.0f} mm, {s['peak_time_ms']:.0f} ms")
            ss = r["sources"] + [None, None]
            verdict = {True: "yes", False: "**no**", None: "—"}[r.get("expected")]
            def ac(a):
                if a is None:
                    return "none"
                return f"{a['dist_mm']:.0f} mm (#{a['rank']}/{a['n']})"
            acs = r.get("auditory_sources")
            ac_col = "—" if not acs else f"{ac(acs['lh'])} / {ac(acs['rh'])}"
            out.append(f"| {r['condition']} ({r['nave']}) | {r['method']} | "
                       f"{_fmt(r['explained_variance'], '.2f')} | "
                       f"{'—' if r['n_active'] is None else r['n_active']} | "
                       f"{_fmt(r.get('field_cancellation', np.nan), '.1f')} | {src(ss[0])} | "
                       f"{src(ss[1])} | {verdict} | {ac_col} | {r['time_s']:.1f} |")
        field_rows = [r for r in real if r.get("sources_field") is not None]
        if field_rows:
            out += ["", "### Real data: the strongest source of each hemisphere by field power",
                    "", "Same criterion, with the sources of a sparse estimate ranked by the "
                    "whitened field each puts on the sensors, `‖W G_j X_j‖²_F` over the window, "
                    "instead of by dipole amplitude (which favours deep sources: they need a "
                    "larger amplitude for the same field).  Chosen at the previous stop, after "
                    "the amplitude criterion failed on 'Left Auditory' and before this ranking "
                    "was computed on any data — but on the same four averages, so it is not an "
                    "independent test.  "
                    f"'{POOLED_AUDITORY}' (nine trials: the nave-weighted average of both "
                    "auditory conditions — both tones evoke a bilateral response) is the test "
                    "written down before it was first computed: it counts for the issue if "
                    "**ours-l05** (loose 0.2) passes it by field power; the other rows are "
                    "reported, not used for that decision.", "",
                    "| condition (nave) | method | strongest lh | strongest rh | expected |",
                    "|---|---|---|---|---|"]
            for r in field_rows:
                ss = r["sources_field"] + [None, None]
                def fsrc(s):
                    if s is None:
                        return "—"
                    return (f"{s['hemi']} ({s['mni'][0]:.0f}, {s['mni'][1]:.0f}, "
                            f"{s['mni'][2]:.0f}) {s['roi']}")
                verdict = {True: "yes", False: "**no**", None: "—"}[r.get("expected_field")]
                out.append(f"| {r['condition']} ({r['nave']}) | {r['method']} | {fsrc(ss[0])} | "
                           f"{fsrc(ss[1])} | {verdict} |")
    return "\n".join(out)


def write_markdown(path, block, begin=BEGIN):
    """Replace the text between ``begin`` and the next END marker (append both if absent)."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Validation\n\n" + begin + "\n" + END + "\n"
    if begin not in text:
        text += "\n" + begin + "\n" + END + "\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda m: begin + "\n" + block + "\n" + END, text)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # never a half-written page


#: Variants of the simulation (``--variant``): what changes from the main study.
VARIANTS = {
    "random-orientation": dict(
        source_space="surface", orientation="random",
        extra_methods=tuple(f"ours-{p}-free" for p in OURS),
        what="surface source space as above, but each source has a uniformly random "
             "orientation (not the cortical normal: the default loose=0.2 and MNE's "
             "fixed-orientation SURE are mis-specified; rows `ours-*-free`: ours with "
             "loose=1, the right model here)"),
    "off-grid": dict(
        source_space="surface", orientation="normal", truth="off-grid",
        what="sources along the cortical normal as in the main study, but at the cortical "
             "vertices *between* those of the inverse source space (1523 of 2 × 768 inside "
             "the inner skull; same surface, "
             "their own normals and forward): no inverse crime — the nearest vertex an "
             "inverse can pick is 7.4 mm away (median; 5–95 %: 4.3–10.7 mm) and its normal "
             "differs.  Row `oracle-nearest`: the inverse grid's nearest vertex to each true "
             "source, the best any method restricted to that grid can do"),
    "volume": dict(
        source_space="volume", orientation="random",
        what="the 5 mm volume source space of the solver benchmark (10 368 positions "
             "inside the inner skull, 31 104 columns), random orientations; ours and "
             "dSPM/sLORETA with free orientation (loose=1), MNE's sparse solvers not run "
             "(see VOLUME_SKIP in the script)"),
}


def variant_tables(rows, name, meta):
    """Markdown of a variant: one table for 1-3 sources, one for 4-5."""
    out = [f"_Generated by `{meta['command']}` in {meta['elapsed_min']:.1f} min: "
           f"{VARIANTS[name]['what']}; SNR {', '.join(map(str, meta['snrs']))}, "
           f"{meta['n_trials']} trials per SNR, 1–{meta['max_sources']} sources "
           "(cycling), seeds disjoint from the main study's._", ""]
    for label, keep in (("1–3 sources", lambda n: n <= 3), ("4–5 sources", lambda n: n >= 4)):
        sub = [r for r in rows if keep(int(r["n_sources"]))]
        if not sub:
            continue
        out += [f"**{label}**", "", *SIM_TABLE_HEADER]
        out += [_sim_table_row(r) for r in summarize(sub)]
        out.append("")
    return "\n".join(out)


def run_variant(name, args, log):
    """Simulation-only study of one variant; its own AUTO block and error figure."""
    import mne

    conf = VARIANTS[name]
    snrs = args.snrs or [3.0, 10.0]
    snrs = [int(x) if float(x).is_integer() else x for x in snrs]
    n_trials = args.n_trials or 15
    max_sources = 5
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    res_dir = CACHE / "validation" / name
    res_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    evoked, cov, fwd = load_inputs(conf["source_space"])
    truth_fwd = offgrid_truth_forward(evoked) if conf.get("truth") == "off-grid" else None
    sim = Simulator(evoked, cov, fwd, orientation=conf["orientation"], truth_fwd=truth_fwd)
    log(f"variant {name}: {len(sim.pos)} sources ({sim.kind}), orientation "
        f"{conf['orientation']}, whitener rank {sim.rank}")
    mne_sure_trials = args.mne_sure_trials if args.mne_sure_trials is not None else n_trials
    examples = {"key": None, "est": {}, "truth": None}
    rows = simulate_study(sim, snrs, n_trials, mne_sure_trials, args.irmxne_alpha, log,
                          examples, max_sources=max_sources, seed_offset=500,
                          methods=METHODS + conf.get("extra_methods", ()))
    with open(res_dir / "simulation.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot_errors(rows, snrs, out / "figures" / f"validation_errors_{name}.png")
    elapsed = (time.perf_counter() - t_start) / 60
    meta = dict(command=f"python scripts/validate_simulation.py --variant {name} --out {args.out}",
                elapsed_min=elapsed, snrs=snrs, n_trials=n_trials, max_sources=max_sources)
    block = variant_tables(rows, name, meta)
    write_markdown(out / "validation.md", block,
                   begin=f"<!-- BEGIN AUTO: validate_simulation.py --variant {name} -->")
    print(block)
    log(f"done in {elapsed:.1f} min; per-trial results in {res_dir}")
    return 0


def plot_errors(rows, snrs, fname):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cap = 100.0
    fig, axes = plt.subplots(1, len(snrs), figsize=(5.2 * len(snrs), 4.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, snr in zip(axes, snrs):
        data, labels = [], []
        for m in list(METHODS) + sorted({r["method"] for r in rows} - set(METHODS)):
            v = np.array([r["err_true_mm"] for r in rows if r["method"] == m and r["snr"] == snr])
            if len(v):
                data.append(np.minimum(v, cap))
                labels.append(m.replace("ours-", ""))
        ax.boxplot(data, showfliers=False, widths=0.6)
        rng = np.random.default_rng(0)
        for i, v in enumerate(data):
            ax.plot(i + 1 + rng.uniform(-0.15, 0.15, len(v)), v, "o", ms=3, alpha=0.6, color="C0")
        ax.axhline(10, ls="--", color="gray", lw=1)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right")
        ax.set_title(f"SNR {snr}")
        ax.set_yscale("symlog", linthresh=10)
    axes[0].set_ylabel(f"localization error true→est (mm, capped at {cap:.0f})")
    fig.tight_layout()
    fig.savefig(fname, dpi=80)
    plt.close(fig)


def plot_example(pos_all, examples, fname):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = examples["truth"]
    show = [m for m in ("ours-l21", "ours-mcp", "mne-irmxne", "mne-sure", "dSPM")
            if m in examples["est"]]
    fig, axes = plt.subplots(1, len(show), figsize=(3.3 * len(show), 3.6))
    for ax, m in zip(np.atleast_1d(axes), show):
        ax.scatter(pos_all[:, 0] * 1e3, pos_all[:, 1] * 1e3, s=4, color="0.8")
        ax.scatter(truth["pos"][:, 0] * 1e3, truth["pos"][:, 1] * 1e3, marker="*", s=260,
                   color="k", label="true", zorder=3)
        p, amp = examples["est"][m]
        if len(p):
            size = 30 if amp is None else 20 + 120 * amp / amp.max()
            ax.scatter(p[:, 0] * 1e3, p[:, 1] * 1e3, s=size, facecolor="none", edgecolor="r",
                       lw=1.5, label="estimated", zorder=4)
        ax.set_title(m, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=7)
    snr, trial = examples["key"]
    fig.suptitle(f"Example trial (SNR {snr}, trial {trial}, {truth['n_sources']} sources), "
                 "top view, head coordinates; marker size ∝ amplitude", fontsize=9)
    fig.tight_layout()
    fig.savefig(fname, dpi=80)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="default: SNR 1, 3 and 10, 12 trials each (~15 min on 2 cores)")
    mode.add_argument("--full", action="store_true",
                      help="SNR 1, 3, 10, 30 trials each, real data at 600 Hz (not timed; ~30-60 min)")
    parser.add_argument("--out", default="docs", help="folder of validation.md and figures/")
    parser.add_argument("--n-trials", type=int, help="trials per SNR (overrides the mode)")
    parser.add_argument("--snrs", type=float, nargs="+", help="amplitude SNRs (overrides)")
    parser.add_argument("--mne-sure-trials", type=int, help="trials per SNR run with MNE-SURE")
    parser.add_argument("--irmxne-alpha", type=float, default=40.0,
                        help="fixed alpha of MNE's irMxNE, %% of lambda_max (default 40)")
    parser.add_argument("--no-real", action="store_true", help="skip the real-data part")
    parser.add_argument("--variant", choices=sorted(VARIANTS),
                        help="run one simulation variant instead (random orientations, or the "
                             "5 mm volume; SNR 3 and 10, 15 trials, 1-5 sources; no real data)")
    parser.add_argument("--reuse-simulation", action="store_true",
                        help="read the per-trial results of the last run from "
                             ".cache/validation/simulation.csv instead of simulating again "
                             "(only the example trial is recomputed)")
    args = parser.parse_args(argv)
    full = args.full
    snrs = args.snrs or [1.0, 3.0, 10.0]
    snrs = [int(s) if float(s).is_integer() else s for s in snrs]
    n_trials = args.n_trials or (30 if full else 12)
    mne_sure_trials = args.mne_sure_trials if args.mne_sure_trials is not None else n_trials
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    res_dir = CACHE / "validation"
    res_dir.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    import mne

    mne.set_log_level("ERROR")
    t_start = time.perf_counter()
    if args.variant:
        return run_variant(args.variant, args, log)
    evoked, cov, fwd = load_inputs()
    sim = Simulator(evoked, cov, fwd)
    log(f"{len(sim.pos)} sources, {len(sim.info.ch_names)} channels, whitener rank {sim.rank}")
    examples = {"key": (snrs[min(1, len(snrs) - 1)], 1), "est": {}, "truth": None}
    if args.reuse_simulation:
        rows = _read_rows(res_dir / "simulation.csv")
        snrs = sorted({r["snr"] for r in rows})
        n_trials = 1 + max(int(r["trial"]) for r in rows)
        mne_sure_trials = len({(r["snr"], r["trial"]) for r in rows
                               if r["method"] == "mne-sure"}) // len(snrs)
        examples["key"] = (snrs[min(1, len(snrs) - 1)], 1)
        simulate_study(sim, [examples["key"][0]], 2, 2, args.irmxne_alpha, log, examples)
    else:
        rows = simulate_study(sim, snrs, n_trials, mne_sure_trials, args.irmxne_alpha, log,
                              examples)
        with open(res_dir / "simulation.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    table = summarize(rows)
    # Real data: the full 600 Hz window (60 samples) with --full; decimated by 3 (20
    # samples) with --quick. MNE-SURE always gets ~20 samples and loose=0.
    real = [] if args.no_real else real_data(fwd, cov, args.irmxne_alpha, log,
                                             decim=1 if full else 3)
    with open(res_dir / "real.json", "w") as f:
        json.dump(real, f, indent=1)
    plot_errors(rows, snrs, out / "figures" / "validation_errors.png")
    if examples["truth"] is not None:
        plot_example(sim.pos, examples, out / "figures" / "validation_example.png")
    elapsed = (time.perf_counter() - t_start) / 60
    cmd = "python scripts/validate_simulation.py " + ("--full" if full else "--quick") + \
        f" --out {args.out}"
    meta = dict(command=cmd, elapsed_min=elapsed, mode="full" if full else "quick", snrs=snrs,
                n_trials=n_trials, mne_sure_trials=mne_sure_trials, irmxne_alpha=args.irmxne_alpha)
    block = markdown_tables(table, real, meta)
    write_markdown(out / "validation.md", block)
    print(block)
    log(f"done in {elapsed:.1f} min; per-trial results in {res_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
