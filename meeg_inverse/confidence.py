"""A confidence for every source: how often it is found again under resampling.

For an average, new data are drawn from the fitted (debiased) model plus noise
at the level — and lag-1 temporal autocorrelation — measured on the average's
own baseline (a parametric bootstrap, Efron & Tibshirani 1993, ch. 6), and
solved at λ or at the quantile universal threshold λ_QUT, whichever is larger:
the level that noise alone passes with only 5 % probability
(:func:`meeg_inverse.rules.quantile_universal_threshold`). Solved at the
selected λ alone, a redraw finds again any source that noise put above λ —
the fitted model contains it, and a block of T samples of noise has a norm
comparable to the threshold — so a noise-only recording got confidence 1 in
tests; at λ_QUT a source must stand clear of what noise produces. The
confidence is therefore conservative, which is what calibration asks: sources
reported with a high confidence must be real. When the
single trials are given, trials are drawn with replacement and averaged (the
nonparametric bootstrap). Each resample is solved at the selected λ (warm
started from the estimate), and a source counts as found again when the
resample has an active source within ``tolerance_mm`` of it — neighbouring
grid points (~5–10 mm apart) are the same source for a user. The confidence is
the fraction of resamples that found it: the *selection frequency* of
stability selection (Meinshausen & Bühlmann 2010, JRSS-B 72(4)), at one λ.
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


def source_confidence(gain, fit, coef, penalty, n_orient, positions, *, noise=None, epochs=None,
                      n_redraws=DEFAULT_REDRAWS, tolerance_mm=TOLERANCE_MM, tol=1e-6,
                      random_state=0, alpha_floor=None, callback=None):
    """Selection frequency of each active source over resamples of the data.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources * n_orient)
        Whitened gain of the problem.
    fit : ndarray, shape (n_channels, n_times)
        The centre of the parametric redraws: the whitened fit of the debiased
        estimate.
    coef : ndarray, shape (n_sources * n_orient, n_times)
        The penalized solution at the selected λ (warm start of every resample).
    penalty : BlockPenalty
        The penalty at the selected λ.
    n_orient : int
        Rows per source.
    positions : ndarray, shape (n_sources, 3)
        Source positions (m), to tell neighbours apart.
    noise : NoiseEstimate | None
        Noise of the whitened average, for parametric redraws.
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
    alpha_floor : float | None
        Resamples are solved at ``max(penalty.alpha, alpha_floor)``; None: the
        quantile universal threshold of ``noise`` (no floor with ``epochs``).
    callback : callable | None
        Called with the number of resamples done.

    Returns
    -------
    confidence : ndarray, shape (n_active_sources,)
        In [0, 1], for the active sources of ``coef`` in increasing index order.

    Raises
    ------
    ValueError
        When neither ``noise`` nor ``epochs`` is given.
    """
    from .solvers import solve

    if noise is None and epochs is None:
        raise ValueError("source_confidence needs a noise estimate or the single trials")
    active = np.flatnonzero(np.any(np.asarray(coef).reshape(-1, n_orient, coef.shape[1]) != 0,
                                   axis=(1, 2)))
    if active.size == 0 or n_redraws < 1:
        return np.zeros(active.size)
    if alpha_floor is None and epochs is None:
        from .rules import quantile_universal_threshold

        alpha_floor = quantile_universal_threshold(gain, fit.shape[1], noise, n_orient,
                                                   random_state=random_state)
    if alpha_floor is not None and alpha_floor > penalty.alpha:
        penalty = penalty.with_alpha(alpha_floor)
    rng = np.random.default_rng(random_state)
    hits = np.zeros(active.size)
    tol_m = tolerance_mm * 1e-3
    for r in range(int(n_redraws)):
        if epochs is not None and len(epochs) >= 2:
            data = epochs[rng.integers(0, len(epochs), len(epochs))].mean(axis=0)
        else:
            data = fit + draw_noise(rng, fit.shape, noise)
        res = solve(gain, data, penalty, n_orient=n_orient, tol=tol, coef_init=coef)
        found = np.flatnonzero(np.asarray(res.active_set).reshape(-1, n_orient).any(axis=1))
        if found.size:
            d = np.linalg.norm(positions[active][:, None, :] - positions[found][None], axis=2)
            hits += d.min(axis=1) <= tol_m
        if callback is not None:
            callback(r + 1)
    return hits / n_redraws
