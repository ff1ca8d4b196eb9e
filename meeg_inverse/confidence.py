"""A confidence for every source: how often the data support a source there again.

The data are resampled and, each time, the question is asked that a user asks of
a reported source: is there, within ``tolerance_mm`` of it, a source that stands
above what noise alone produces? "Above noise" is the quantile universal
threshold λ_QUT (:func:`meeg_inverse.rules.quantile_universal_threshold`), the
λ that noise alone passes with 5 % probability, and the question is answered by
the L2,1 solution at λ_QUT. The confidence is the fraction of resamples that say
yes — the *selection frequency* of stability selection (Meinshausen & Bühlmann
2010, JRSS-B 72(4)), at one λ.

Resamples of an average are parametric (Efron & Tibshirani 1993, ch. 6): the
L2,1 fit at λ_QUT plus fresh noise at the level, and lag-1 temporal
autocorrelation, measured on the average's own baseline. The centre matters.
Redraws around the reported (debiased) estimate confirm anything: a source that
noise put above the threshold is in that estimate, and over T samples fresh
noise adds ≈ T σ² to its block energy, so it is found again in every redraw
(measured: confidence 1 on noise-only data on the real head). The L2,1 fit at
λ_QUT subtracts the noise's threshold from every block, so only what stands
clear of noise is left to be found again; a source that noise alone made is
usually absent from it altogether. When the single trials are given, trials are
drawn with replacement and averaged instead (the nonparametric bootstrap).

Neighbouring grid points (~5–10 mm apart) are the same source for a user; a
source counts as found again when the resample has an active source within
``tolerance_mm`` of it.
"""

import numpy as np

from .noise import draw_noise

__all__ = ["source_confidence", "CONFIDENT", "DEFAULT_REDRAWS", "TOLERANCE_MM"]

#: Resamples by default: a frequency to ±0.11 (binomial s.d. at 0.5).
DEFAULT_REDRAWS = 20
#: Two sources closer than this are one source (mm).
TOLERANCE_MM = 10.0
#: Below this confidence a source is drawn faded and flagged as uncertain.
CONFIDENT = 0.5


def source_confidence(gain, data, sources, n_orient, positions, *, noise, epochs=None,
                      n_redraws=DEFAULT_REDRAWS, tolerance_mm=TOLERANCE_MM, tol=1e-4,
                      random_state=0, alpha=None, callback=None):
    """Selection frequency of each reported source over resamples of the data.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources * n_orient)
        Whitened gain of the problem.
    data : ndarray, shape (n_channels, n_times)
        Whitened data.
    sources : array of int
        Reported sources (block indices of ``gain``).
    n_orient : int
        Rows per source.
    positions : ndarray, shape (n_sources, 3)
        Positions (m) of every block of ``gain``, to tell neighbours apart.
    noise : NoiseEstimate
        Noise of the whitened average: the redraws' level and λ_QUT.
    epochs : ndarray, shape (n_epochs, n_channels, n_times) | None
        Whitened single trials: resampled (with replacement) instead of
        redrawing noise when given (at least 2).
    n_redraws : int
        Number of resamples.
    tolerance_mm : float
        A resample's source within this distance is the same source.
    tol : float
        Solver tolerance of the resamples.
    random_state : int | None
        Seed.
    alpha : float | None
        The level a source must pass in a resample (None: λ_QUT of ``noise``).
    callback : callable | None
        Called with the number of resamples done.

    Returns
    -------
    confidence : ndarray, shape (len(sources),)
        In [0, 1].
    """
    from .penalties import make_penalty
    from .rules import quantile_universal_threshold
    from .solvers import solve

    sources = np.asarray(sources, int)
    if sources.size == 0 or n_redraws < 1:
        return np.zeros(sources.size)
    if alpha is None:
        alpha = quantile_universal_threshold(gain, data.shape[1], noise, n_orient,
                                             random_state=random_state)
    pen = make_penalty("l21", alpha)
    centre = solve(gain, data, pen, n_orient=n_orient, tol=tol)
    fit = gain @ np.asarray(centre.coef)
    rng = np.random.default_rng(random_state)
    hits = np.zeros(sources.size)
    tol_m = tolerance_mm * 1e-3
    for r in range(int(n_redraws)):
        if epochs is not None and len(epochs) >= 2:
            sample = epochs[rng.integers(0, len(epochs), len(epochs))].mean(axis=0)
        else:
            sample = fit + draw_noise(rng, fit.shape, noise)
        res = solve(gain, sample, pen, n_orient=n_orient, tol=tol, coef_init=centre.coef)
        found = np.flatnonzero(np.asarray(res.active_set).reshape(-1, n_orient).any(axis=1))
        if found.size:
            d = np.linalg.norm(positions[sources][:, None, :] - positions[found][None], axis=2)
            hits += d.min(axis=1) <= tol_m
        if callback is not None:
            callback(r + 1)
    return hits / n_redraws
