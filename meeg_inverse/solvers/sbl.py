"""Sparse Bayesian learning (γ-MAP / MacKay updates) on a whitened problem.

Model: ``Y = G X + E`` with ``E`` white of variance ``noise_var`` and each block
(source) ``X_k ~ N(0, γ_k I)`` a priori; the γ are fitted by type-II maximum
likelihood and most of them go to zero (Wipf & Nagarajan 2009, NeuroImage 44;
Wipf et al. 2010, NeuroImage 49: "Robust Bayesian estimation of the location,
orientation, and time course of multiple correlated neural sources using MEG").
This is the estimator of MNE's :func:`mne.inverse_sparse.gamma_map` (update
mode 1, ``xyz_same_gamma``), written so that each iteration costs
``O(n_active³)`` once fewer sources than channels remain: the model covariance
``Σ = noise_var·I + G Γ Gᵀ`` is inverted through the Woodbury identity in the
space of the active sources.  A solver of the project: it never knows which
data or rule it serves.
"""

import time
from dataclasses import dataclass

import numpy as np

_EPS = np.finfo(float).eps


@dataclass
class SBLResult:
    """Result of :func:`gamma_map`.

    Attributes
    ----------
    coef : ndarray, shape (n_sources * n_orient, n_times)
        Posterior mean of the sources (zero outside ``active_set``).
    active_set : ndarray of bool, shape (n_sources * n_orient,)
    gammas : ndarray, shape (n_sources,)
        Prior variance of each column of a block, on the normalized scale (0: pruned).
    n_iter : int
    converged : bool
        Relative change of the γ below ``tol`` within ``max_iter`` and ``max_time``.
    time : float
        Seconds.
    """

    coef: np.ndarray
    active_set: np.ndarray
    gammas: np.ndarray
    n_iter: int
    converged: bool
    time: float


def _sensor_space_step(G, M, gam_cols, noise_var):
    """(numerator, denominator) of the MacKay update with Σ formed in sensor space."""
    n_ch = G.shape[0]
    scaled = G * np.sqrt(gam_cols)
    sigma = scaled @ scaled.T  # numpy's A @ Aᵀ runs BLAS syrk: half the flops
    sigma.flat[::n_ch + 1] += noise_var
    # Σ is symmetric positive definite (noise_var > 0): its Cholesky factor L.
    chol = np.linalg.cholesky(sigma)
    # L⁻¹ once (n_ch³), then matrix products: solving with L against the
    # n_cols columns of G (LAPACK's LU-based solve) took 2× longer.
    inv_chol = np.linalg.inv(chol)
    sol_g = inv_chol @ G                        # L⁻¹ G
    sol_m = inv_chol @ M                        # L⁻¹ M
    a = sol_g.T @ sol_m                         # Gᵀ Σ⁻¹ M
    diag = np.einsum("ij,ij->j", sol_g, sol_g)  # diag(Gᵀ Σ⁻¹ G)
    return a, diag


def _source_space_step(K, GtM, gam_cols, noise_var):
    """The same with Woodbury: Σ⁻¹ = (I − G (noise_var Γ⁻¹ + GᵀG)⁻¹ Gᵀ) / noise_var."""
    S = K.copy()
    S.flat[::K.shape[0] + 1] += noise_var / gam_cols
    chol = np.linalg.cholesky(S)
    w_k = np.linalg.solve(chol, K)              # L⁻¹ K
    w_m = np.linalg.solve(chol, GtM)            # L⁻¹ GᵀM
    a = (GtM - w_k.T @ w_m) / noise_var
    diag = (np.diag(K) - np.einsum("ij,ij->j", w_k, w_k)) / noise_var
    return a, diag


def gamma_map(gain, data, *, noise_var=1.0, n_orient=1, max_iter=10000, tol=1e-6,
              gammas=None, max_time=None, prune=_EPS):
    """γ-MAP sparse Bayesian learning (MacKay fixed-point updates), block-wise.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources * n_orient)
        Whitened (and source-weighted) gain.
    data : ndarray, shape (n_channels, n_times)
        Whitened data.
    noise_var : float
        Noise variance of the whitened data (1 when the whitener is that of
        the data's noise covariance).
    n_orient : int
        Columns per source sharing one γ (MNE's ``xyz_same_gamma``).
    max_iter : int
    tol : float
        Stop when ``Σ|γ − γ_old| / Σ|γ_old| < tol`` (MNE's criterion).
    gammas : ndarray, shape (n_sources,) | None
        Initial prior variances (None: 1 on MNE's normalized scale).
    max_time : float | None
        Time budget in seconds; past it the result has ``converged = False``.
    prune : float
        A block whose γ (on the normalized scale) falls to this value or below
        is removed for good (MNE: machine epsilon).

    Returns
    -------
    result : SBLResult

    Notes
    -----
    Data and gain are scaled as MNE's ``_gamma_map_opt`` does (data by
    ``‖Y Yᵀ‖_F^{1/2}``, gain by its ∞-norm) so that the same γ start, pruning
    threshold and stopping rule give the same estimate; that is checked
    against :func:`mne.inverse_sparse.gamma_map` in the tests.
    """
    t0 = time.perf_counter()
    G = np.asarray(gain, float)
    M = np.asarray(data, float)
    n_ch, n_cols = G.shape
    if n_cols % n_orient:
        raise ValueError(f"{n_cols} gain columns are not a multiple of n_orient={n_orient}")
    n_src = n_cols // n_orient
    m_scale = np.sqrt(np.linalg.norm(M @ M.T, ord="fro"))
    g_scale = np.linalg.norm(G, ord=np.inf)
    if m_scale == 0 or g_scale == 0:
        return SBLResult(np.zeros((n_cols, M.shape[1])), np.zeros(n_cols, bool),
                         np.zeros(n_src), 0, True, time.perf_counter() - t0)
    M = M / m_scale
    G = G / g_scale
    alpha = noise_var / m_scale ** 2
    gam = np.ones(n_src) if gammas is None else np.array(gammas, float).copy()
    active = np.arange(n_src)
    cols = np.arange(n_cols)
    G_act, K, GtM = G, None, None
    gam_old_full = np.zeros(n_src)
    gam_old_full[active] = gam
    converged = False
    it = 0
    a = None
    for it in range(1, max_iter + 1):
        gam[~np.isfinite(gam)] = 0.0
        keep = gam > prune
        if not keep.all():
            active, gam = active[keep], gam[keep]
            keep_cols = np.repeat(keep, n_orient)
            cols, G_act = cols[keep_cols], G_act[:, keep_cols]
            if K is not None:
                K, GtM = K[np.ix_(keep_cols, keep_cols)], GtM[keep_cols]
        if active.size == 0:
            converged = True
            break
        gam_cols = np.repeat(gam, n_orient)
        if G_act.shape[1] < n_ch:
            if K is None:  # once: Gram and correlation of the active columns
                K, GtM = G_act.T @ G_act, G_act.T @ M
            a, diag = _source_space_step(K, GtM, gam_cols, alpha)
        else:
            a, diag = _sensor_space_step(G_act, M, gam_cols, alpha)
        # MacKay update, γ shared by a block's n_orient columns (MNE update_mode=1).
        numer = (gam_cols ** 2 * np.mean(a * a, axis=1)).reshape(-1, n_orient).sum(1)
        denom = (gam_cols * diag).reshape(-1, n_orient).sum(1)
        # MNE divides the block's γ among its n_orient columns (the prior
        # variance of each column).
        gam = numer / np.maximum(denom, _EPS) / n_orient
        gam_full = np.zeros(n_src)
        gam_full[active] = gam
        err = np.abs(gam_full - gam_old_full).sum() / np.abs(gam_old_full).sum()
        gam_old_full = gam_full
        if err < tol:
            converged = True
            break
        if max_time is not None and time.perf_counter() - t0 > max_time:
            break
    coef = np.zeros((n_cols, M.shape[1]))
    if active.size and a is not None:
        # Posterior mean with the updated γ and the last Σ⁻¹Y (as MNE), in data units.
        coef[cols] = np.repeat(gam, n_orient)[:, None] * a * (m_scale / g_scale)
    active_set = np.zeros(n_cols, bool)
    active_set[cols] = np.repeat(gam > 0, n_orient)
    return SBLResult(coef, active_set, gam_old_full, it, converged,
                     time.perf_counter() - t0)
