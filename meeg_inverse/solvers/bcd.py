"""Numba kernels: one epoch of proximal block coordinate descent (BCD).

Two variants of the same update ``B_k ← prox_{p/L_k}(B_k − ∇_k F(B) / L_k)``:

* :func:`epoch_gram` works on a small working set with the precomputed Gram
  matrix ``Q = G_Wᵀ G_W`` and ``H = G_Wᵀ Y``.  It keeps ``QB`` up to date, so
  an epoch never touches the channels (cost ``|W|²·n_orient²·n_times`` at most,
  much less since blocks that stay zero are skipped).
* :func:`epoch_residual` keeps the residual ``R = Y − G_W B`` up to date with
  BLAS gemm calls (numba lowers ``np.dot`` to BLAS), for large working sets
  where the Gram matrix would not pay off.

Neither kernel knows the penalty: it receives the integer code, the per-block
regularisation and one parameter, and calls the cached dispatchers of
:mod:`meeg_inverse.penalties`.  All arrays are in block layout
``(n_blocks, n_orient * n_times)``.

Both kernels defer the update of their auxiliary state (``QB`` or the
residual) for a few consecutive blocks and apply it as one BLAS gemm: the
gradient of a block is corrected by the pending updates it has not yet seen
(a few ``3×3·n_times`` products), so the iterates are those of the sequential
update, but the state, the bulk of an epoch's memory traffic, is streamed once
per batch instead of once per block (an epoch over a 133-block free-orientation
working set: 1.25 → 0.65 ms).  The residual kernel also computes ``G_kᵀR`` for
a whole batch with one gemm, at the state of the batch's start.

Note: numba's on-disk cache of a function is invalidated only when *its own*
file changes.  After editing ``penalties.py`` in a development checkout,
delete ``meeg_inverse/solvers/__pycache__/bcd.*.nbi`` (or touch this file).
"""

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

from ..penalties import block_prox, block_prox_metric, has_metric_prox

# BLAS dgemm of SciPy (the library numba's np.dot calls), bound to a symbol
# name rather than a ctypes pointer so that the kernels calling it can be
# cached on disk; the address is registered again in every process.
_DGEMM_SYMBOL = "meeg_inverse_scipy_dgemm"
llvm.add_symbol(_DGEMM_SYMBOL,
                get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
_dgemm = types.ExternalFunction(_DGEMM_SYMBOL, types.void(*([types.voidptr] * 13)))

#: Columns (blocks × orientations) whose state updates are batched in one gemm.
PENDING_COLUMNS = 24


@njit(cache=True)
def _gemm_add(n_rows, n_cols, inner, alpha, a, lda, b, ldb, trans_b, c, ldc):
    """``C += alpha · A op(B)`` in column-major terms (BLAS ``dgemm``).

    ``a``, ``b``, ``c`` are 1-D views starting at the first element of each
    operand; ``A`` is ``n_rows × inner``, ``op(B)`` is ``inner × n_cols``
    (``B`` itself when ``trans_b`` is False, else the transpose of the
    ``n_cols × inner`` matrix stored at ``b``).
    """
    ints = np.empty(6, np.int32)
    ints[0] = n_rows
    ints[1] = n_cols
    ints[2] = inner
    ints[3] = lda
    ints[4] = ldb
    ints[5] = ldc
    scal = np.empty(2)
    scal[0] = alpha
    scal[1] = 1.0
    trans = np.empty(2, np.uint8)
    trans[0] = 78  # 'N'
    trans[1] = 84 if trans_b else 78  # 'T' or 'N'
    _dgemm(trans[0:].ctypes, trans[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
           scal[0:].ctypes, a.ctypes, ints[3:].ctypes, b.ctypes, ints[4:].ctypes,
           scal[1:].ctypes, c.ctypes, ints[5:].ctypes)


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
def _scattered(nz_blocks, n_nz):
    """Whether the ``n_nz`` moved blocks of a batch are better applied one by one:
    a single one, or so spread out that a gemm over their range would mostly
    multiply zeros."""
    return n_nz == 1 or nz_blocks[n_nz - 1] - nz_blocks[0] + 1 > 2 * n_nz


@njit(cache=True)
def _move(old, new, delta):
    """``delta = new − old``, then ``old = new``; returns ``‖delta‖²``."""
    change = 0.0
    for i in range(old.shape[0]):
        delta[i] = new[i] - old[i]
        change += delta[i] * delta[i]
        old[i] = new[i]
    return change


@njit(cache=True)
def _epoch_buffers(block_size, n_orient):
    """Work arrays of one epoch: the new block, its gradient, the two rotated
    blocks of the metric step, and the batch of pending updates — ``pending[i]``
    the update of block ``first + i`` (zero until it moves), ``nz_blocks`` the
    blocks of the batch that moved."""
    n_pending = max(1, PENDING_COLUMNS // n_orient)
    return (np.empty(block_size), np.empty(block_size), np.empty(block_size),
            np.empty(block_size), np.zeros((n_pending, block_size)),
            np.empty(n_pending, np.int64))


@njit(cache=True)
def _flush_gram(gram, pending, first, nz_blocks, n_nz, qcoef_blocks, n_orient, n_times):
    """Apply the pending updates ``QB += Q[:, pending] ΔB_pending`` and clear them.

    ``pending[i]`` holds ΔB of block ``first + i`` (zero for blocks that did
    not move); ``nz_blocks[:n_nz]`` lists, in increasing order, those that did.
    """
    if n_nz == 0:
        return
    lo = nz_blocks[0]
    hi = nz_blocks[n_nz - 1]
    if _scattered(nz_blocks, n_nz):
        for i in range(n_nz):
            _add_gram_columns(gram, nz_blocks[i] * n_orient, pending[nz_blocks[i] - first],
                              qcoef_blocks, n_orient, n_times)
    else:
        # In column-major terms QBᵀ (n_times × n_rows) += ΔBᵀ Q[cols, :], Q symmetric.
        n_rows = gram.shape[0]
        _gemm_add(n_times, n_rows, (hi - lo + 1) * n_orient, 1.0,
                  pending.reshape(-1)[(lo - first) * n_orient * n_times:], n_times,
                  gram.reshape(-1)[lo * n_orient:], n_rows, False,
                  qcoef_blocks.reshape(-1), n_times)
    for i in range(n_nz):
        pending[nz_blocks[i] - first, :] = 0.0


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
        ``G_Wᵀ G_W`` (C-contiguous).
    xty_blocks : array, shape (n_blocks, n_orient * n_times)
        ``G_Wᵀ Y`` in block layout.
    coef_blocks : array, shape (n_blocks, n_orient * n_times)
        Coefficients, updated in place.
    qcoef_blocks : array, shape (n_blocks, n_orient * n_times)
        ``Q B`` in block layout (C-contiguous), updated in place.
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
    new, grad, crot, nrot, pending, nz_blocks = _epoch_buffers(block_size, n_orient)
    n_pending = pending.shape[0]
    metric = has_metric_prox(code) and n_orient > 1 and evals.shape[0] == n_blocks
    first = 0
    n_nz = 0
    max_change = 0.0
    for k in range(n_blocks):
        if k - first == n_pending:
            _flush_gram(gram, pending, first, nz_blocks, n_nz, qcoef_blocks, n_orient,
                        n_times)
            first = k
            n_nz = 0
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
        for i in range(n_nz):  # … with the pending updates QB has not seen
            j = nz_blocks[i]
            dj = pending[j - first]
            for a in range(n_orient):
                row = k * n_orient + a
                for b in range(n_orient):
                    q = gram[j * n_orient + b, row]
                    for t in range(n_times):
                        grad[a * n_times + t] += q * dj[b * n_times + t]
        is_nonzero = _block_step(code, param, alphas[k], step, old, grad, metric, evals,
                                 evecs, k, n_orient, n_times, crot, nrot, new)
        if was_zero and not is_nonzero:
            continue  # the common case in a working set: nothing to update
        change = _move(old, new, pending[k - first])
        if change == 0.0:
            continue
        max_change = max(max_change, lip * np.sqrt(change))
        nz_blocks[n_nz] = k
        n_nz += 1
    _flush_gram(gram, pending, first, nz_blocks, n_nz, qcoef_blocks, n_orient, n_times)
    return max_change


@njit(cache=True)
def _flush_residual(gain_t_blocks, pending, first, nz_blocks, n_nz, residual, n_orient,
                    n_times):
    """Apply the pending updates ``R −= G_pending ΔB_pending`` and clear them (as
    :func:`_flush_gram`)."""
    if n_nz == 0:
        return
    lo = nz_blocks[0]
    hi = nz_blocks[n_nz - 1]
    if _scattered(nz_blocks, n_nz):
        for i in range(n_nz):
            j = nz_blocks[i]
            residual -= np.dot(gain_t_blocks[j].T,
                               pending[j - first].reshape(n_orient, n_times))
    else:
        # In column-major terms Rᵀ (n_times × n_channels) −= ΔBᵀ G_rangeᵀ.
        n_channels = gain_t_blocks.shape[2]
        _gemm_add(n_times, n_channels, (hi - lo + 1) * n_orient, -1.0,
                  pending.reshape(-1)[(lo - first) * n_orient * n_times:], n_times,
                  gain_t_blocks.reshape(-1)[lo * n_orient * n_channels:], n_channels, True,
                  residual.reshape(-1), n_times)
    for i in range(n_nz):
        pending[nz_blocks[i] - first, :] = 0.0


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
        ``Y − G_W B`` (C-contiguous), updated in place.
    evals, evecs
        As in :func:`epoch_gram`.

    Returns
    -------
    max_change : float
    """
    n_blocks, block_size = coef_blocks.shape
    n_channels = gain_t_blocks.shape[2]
    new, grad, crot, nrot, pending, nz_blocks = _epoch_buffers(block_size, n_orient)
    n_pending = pending.shape[0]
    metric = has_metric_prox(code) and n_orient > 1 and evals.shape[0] == n_blocks
    first = 0
    n_nz = 0
    max_change = 0.0
    # G_kᵀR of the blocks of the current batch, at the state of its start
    # (one gemm for the batch; the pending updates are corrected below).
    corr = np.dot(gain_t_blocks[0:n_pending].reshape(-1, n_channels), residual)
    for k in range(n_blocks):
        if k - first == n_pending:
            _flush_residual(gain_t_blocks, pending, first, nz_blocks, n_nz, residual,
                            n_orient, n_times)
            first = k
            n_nz = 0
            corr = np.dot(gain_t_blocks[first:first + n_pending].reshape(-1, n_channels),
                          residual)
        lip = lipschitz[k]
        if lip <= 0.0:
            continue
        step = 1.0 / lip
        old = coef_blocks[k]
        gk = gain_t_blocks[k]
        was_zero = True
        for a in range(n_orient):
            for t in range(n_times):
                i = a * n_times + t
                grad[i] = -corr[(k - first) * n_orient + a, t]
                if old[i] != 0.0:
                    was_zero = False
        for i in range(n_nz):  # … with the pending updates R has not seen
            j = nz_blocks[i]
            gj = gain_t_blocks[j]
            dj = pending[j - first]
            for a in range(n_orient):
                for b in range(n_orient):
                    q = 0.0
                    for c in range(n_channels):
                        q += gk[a, c] * gj[b, c]
                    for t in range(n_times):
                        grad[a * n_times + t] += q * dj[b * n_times + t]
        is_nonzero = _block_step(code, param, alphas[k], step, old, grad, metric, evals,
                                 evecs, k, n_orient, n_times, crot, nrot, new)
        if was_zero and not is_nonzero:
            continue
        change = _move(old, new, pending[k - first])
        if change == 0.0:
            continue
        max_change = max(max_change, lip * np.sqrt(change))
        nz_blocks[n_nz] = k
        n_nz += 1
    _flush_residual(gain_t_blocks, pending, first, nz_blocks, n_nz, residual, n_orient,
                    n_times)
    return max_change
