"""Numba kernels: one epoch of proximal block coordinate descent (BCD).

Two variants of the same update ``B_k ← prox_{p/L_k}(B_k − ∇_k F(B) / L_k)``:

* :func:`epoch_gram` works on a small working set with the precomputed Gram
  matrix ``Q = G_Wᵀ G_W`` and ``H = G_Wᵀ Y``.  It keeps ``QB`` up to date, so
  an epoch never touches the channels (cost ``|W|²·n_orient²·n_times`` at most,
  much less since blocks that stay zero are skipped).
* :func:`epoch_residual` keeps the residual ``R = Y − G_W B`` up to date with
  two BLAS gemm calls per block (numba lowers ``np.dot`` to BLAS), for large
  working sets where the Gram matrix would not pay off.

Neither kernel knows the penalty: it receives the integer code, the per-block
regularisation and one parameter, and calls the cached dispatchers of
:mod:`meeg_inverse.penalties`.  All arrays are in block layout
``(n_blocks, n_orient * n_times)``.

Note: numba's on-disk cache of a function is invalidated only when *its own*
file changes.  After editing ``penalties.py`` in a development checkout,
delete ``meeg_inverse/solvers/__pycache__/bcd.*.nbi`` (or touch this file).
"""

import numpy as np
from numba import njit

from ..penalties import block_prox, block_prox_metric, has_metric_prox


@njit(cache=True)
def _add_gram_columns(gram, col0, delta, qcoef_blocks, n_orient, n_times):
    """``QB[j] += Q[j, col0:col0+n_orient] ΔB`` for every block ``j``.

    The orientations of ΔB are summed inside the time loop, so each row of
    QB is read and written once per update (not ``n_orient`` times); the
    Gram matrix is symmetric, so its rows ``col0…`` serve as its columns
    and are read contiguously.
    """
    n_blocks = qcoef_blocks.shape[0]
    if n_orient == 3:
        g0 = gram[col0]
        g1 = gram[col0 + 1]
        g2 = gram[col0 + 2]
        for j in range(n_blocks):
            qj = qcoef_blocks[j]
            for a in range(3):
                row = j * 3 + a
                q0 = g0[row]
                q1 = g1[row]
                q2 = g2[row]
                off = a * n_times
                for t in range(n_times):
                    qj[off + t] += (q0 * delta[t] + q1 * delta[n_times + t]
                                    + q2 * delta[2 * n_times + t])
        return
    for j in range(n_blocks):
        qj = qcoef_blocks[j]
        for a in range(n_orient):
            row = j * n_orient + a
            off_a = a * n_times
            for b in range(n_orient):
                q = gram[col0 + b, row]
                if q == 0.0:
                    continue
                off_b = b * n_times
                for t in range(n_times):
                    qj[off_a + t] += q * delta[off_b + t]


@njit(cache=True)
def _metric_update(code, alpha, old, grad, evals, evecs, n_orient, n_times, crot, nrot,
                   new):
    """Exact block minimisation in the eigenbasis of the block Gram matrix.

    ``new = argmin_b ½ (b − old)ᵀ(A ⊗ I)(b − old) + ∇ᵀ(b − old) + p(b)``, the
    datafit being exactly quadratic in the block with Hessian ``A = V diag(e) Vᵀ``:
    with one step ``1/‖A‖`` the weak orientations of a free-orientation source
    (radial MEG) move ``e_max/e_min`` times too slowly.
    """
    for r in range(n_orient):
        e_r = evals[r]
        for t in range(n_times):
            s_old = 0.0
            s_grad = 0.0
            for a in range(n_orient):
                v = evecs[a, r]
                s_old += v * old[a * n_times + t]
                s_grad += v * grad[a * n_times + t]
            crot[r * n_times + t] = e_r * s_old - s_grad
    nonzero = block_prox_metric(code, crot, evals, alpha, n_times, nrot)
    for a in range(n_orient):
        for t in range(n_times):
            s = 0.0
            for r in range(n_orient):
                s += evecs[a, r] * nrot[r * n_times + t]
            new[a * n_times + t] = s
    return nonzero


@njit(cache=True)
def _block_step(code, param, alpha, step, old, grad, metric, evals, evecs, k, n_orient,
                n_times, crot, nrot, new):
    """Write block ``k``'s update into ``new``: exact in the block metric or proximal gradient.

    ``evals``/``evecs`` are only read when ``metric`` (they are empty otherwise).
    """
    if metric:
        return _metric_update(code, alpha, old, grad, evals[k], evecs[k], n_orient, n_times,
                              crot, nrot, new)
    for i in range(old.shape[0]):
        new[i] = old[i] - step * grad[i]
    return block_prox(code, new, alpha, param, step, new)


@njit(cache=True)
def epoch_gram(code, param, alphas, lipschitz, gram, xty_blocks, coef_blocks,
               qcoef_blocks, n_orient, n_times, evals, evecs):
    """One cyclic BCD pass using the Gram matrix.

    Parameters
    ----------
    code, param : int, float
        Penalty code and parameter.
    alphas : array, shape (n_blocks,)
        Per-block regularisation.
    lipschitz : array, shape (n_blocks,)
        Block Lipschitz constants ``‖G_kᵀG_k‖₂``.
    gram : array, shape (n_blocks * n_orient, n_blocks * n_orient)
        ``G_Wᵀ G_W``.
    xty_blocks : array, shape (n_blocks, n_orient * n_times)
        ``G_Wᵀ Y`` in block layout.
    coef_blocks : array, shape (n_blocks, n_orient * n_times)
        Coefficients, updated in place.
    qcoef_blocks : array, shape (n_blocks, n_orient * n_times)
        ``Q B`` in block layout, updated in place.
    n_orient, n_times : int
    evals, evecs : arrays, shapes (n_blocks, n_orient) and (n_blocks, n_orient, n_orient)
        Eigen-decomposition of each block's Gram matrix ``G_kᵀG_k``: used for
        an exact block minimisation when the penalty has one
        (:func:`~meeg_inverse.penalties.has_metric_prox`); pass empty arrays
        (first dimension 0) for proximal gradient steps ``1/L_k``.

    Returns
    -------
    max_change : float
        Largest ``L_k ‖ΔB_k‖`` of the pass.
    """
    n_blocks, block_size = coef_blocks.shape
    new = np.empty(block_size)
    delta = np.empty(block_size)
    grad = np.empty(block_size)
    crot = np.empty(block_size)
    nrot = np.empty(block_size)
    metric = has_metric_prox(code) and n_orient > 1 and evals.shape[0] == n_blocks
    max_change = 0.0
    for k in range(n_blocks):
        lip = lipschitz[k]
        if lip <= 0.0:
            continue
        step = 1.0 / lip
        old = coef_blocks[k]
        qk = qcoef_blocks[k]
        xk = xty_blocks[k]
        was_zero = True
        for i in range(block_size):
            # gradient of the datafit: Q_k B − H_k
            grad[i] = qk[i] - xk[i]
            if old[i] != 0.0:
                was_zero = False
        is_nonzero = _block_step(code, param, alphas[k], step, old, grad, metric, evals,
                                 evecs, k, n_orient, n_times, crot, nrot, new)
        if was_zero and not is_nonzero:
            continue  # the common case in a working set: nothing to update
        change = 0.0
        for i in range(block_size):
            delta[i] = new[i] - old[i]
            change += delta[i] * delta[i]
            old[i] = new[i]
        if change == 0.0:
            continue
        max_change = max(max_change, lip * np.sqrt(change))
        # QB += Q[:, block k] ΔB_k, a rank-n_orient update of QB.
        _add_gram_columns(gram, k * n_orient, delta, qcoef_blocks, n_orient, n_times)
    return max_change


@njit(cache=True)
def epoch_residual(code, param, alphas, lipschitz, gain_t_blocks, coef_blocks,
                   residual, n_orient, n_times, evals, evecs):
    """One cyclic BCD pass keeping the residual up to date with BLAS.

    Parameters
    ----------
    code, param, alphas, lipschitz
        As in :func:`epoch_gram`.
    gain_t_blocks : array, shape (n_blocks, n_orient, n_channels)
        ``G_Wᵀ`` split by block (C-contiguous, so each block is a BLAS operand).
    coef_blocks : array, shape (n_blocks, n_orient * n_times)
        Coefficients, updated in place.
    residual : array, shape (n_channels, n_times)
        ``Y − G_W B``, updated in place.
    evals, evecs
        As in :func:`epoch_gram`.

    Returns
    -------
    max_change : float
    """
    n_blocks, block_size = coef_blocks.shape
    new = np.empty(block_size)
    delta = np.empty((n_orient, n_times))
    grad = np.empty(block_size)
    crot = np.empty(block_size)
    nrot = np.empty(block_size)
    metric = has_metric_prox(code) and n_orient > 1 and evals.shape[0] == n_blocks
    max_change = 0.0
    for k in range(n_blocks):
        lip = lipschitz[k]
        if lip <= 0.0:
            continue
        step = 1.0 / lip
        old = coef_blocks[k]
        corr = np.dot(gain_t_blocks[k], residual)  # G_kᵀ R (BLAS gemm)
        was_zero = True
        for a in range(n_orient):
            for t in range(n_times):
                i = a * n_times + t
                grad[i] = -corr[a, t]
                if old[i] != 0.0:
                    was_zero = False
        is_nonzero = _block_step(code, param, alphas[k], step, old, grad, metric, evals,
                                 evecs, k, n_orient, n_times, crot, nrot, new)
        if was_zero and not is_nonzero:
            continue
        change = 0.0
        for a in range(n_orient):
            for t in range(n_times):
                i = a * n_times + t
                d = new[i] - old[i]
                delta[a, t] = d
                change += d * d
                old[i] = new[i]
        if change == 0.0:
            continue
        max_change = max(max_change, lip * np.sqrt(change))
        residual -= np.dot(gain_t_blocks[k].T, delta)  # R -= G_k ΔB_k (BLAS gemm)
    return max_change
