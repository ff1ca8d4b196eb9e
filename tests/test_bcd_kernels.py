"""The numba epoch kernels against one epoch of the pure-NumPy reference BCD.

The kernels batch the updates of their state (QB or the residual) into BLAS
gemm calls and correct each block's gradient by the updates still pending; the
iterates must be those of the plain sequential update, whatever the mix of
blocks that move, stay at zero or have an all-zero gain column.
"""

import numpy as np
import pytest

from meeg_inverse.penalties import block_norms, block_prox, make_penalty
from meeg_inverse.solvers.bcd import PENDING_COLUMNS, epoch_gram, epoch_residual
from meeg_inverse.solvers.reference import reference_solve

EMPTY_EIG = {1: (np.empty((0, 1)), np.empty((0, 1, 1))),
             3: (np.empty((0, 3)), np.empty((0, 3, 3)))}


def _problem(n_orient, seed, n_blocks=None):
    rng = np.random.default_rng(seed)
    n_channels, n_times = 40, 7
    # Several batches of pending blocks, and a last batch cut short.
    n_blocks = n_blocks or 3 * (PENDING_COLUMNS // n_orient) + 5
    gain = rng.standard_normal((n_channels, n_blocks * n_orient))
    gain[:, 2 * n_orient:3 * n_orient] = 0.0  # a block the gain does not see
    data = rng.standard_normal((n_channels, n_times))
    coef = rng.standard_normal((n_blocks * n_orient, n_times))
    # Zero blocks: runs of them (some stay zero), scattered ones.
    zero = rng.random(n_blocks) < 0.5
    zero[5:5 + PENDING_COLUMNS // n_orient] = True
    coef.reshape(n_blocks, -1)[zero] = 0.0
    coef.reshape(n_blocks, -1)[2] = 0.0
    return gain, data, coef


def _sequential_epoch(gain, data, coef, pen, n_orient, lips):
    """One plain cyclic proximal BCD pass with the kernels' own block prox."""
    coef = coef.copy()
    n_blocks = gain.shape[1] // n_orient
    alphas = pen.block_alphas(n_blocks)
    residual = data - gain @ coef
    for k in range(n_blocks):
        if lips[k] <= 0:
            continue
        rows = slice(k * n_orient, (k + 1) * n_orient)
        step = 1.0 / lips[k]
        z = (coef[rows] + step * gain[:, rows].T @ residual).ravel()
        new = np.empty_like(z)
        block_prox(pen.code, z, alphas[k], pen.param, step, new)
        new = new.reshape(n_orient, -1)
        residual -= gain[:, rows] @ (new - coef[rows])
        coef[rows] = new
    return coef


def _lipschitz(gain, n_orient):
    n_blocks = gain.shape[1] // n_orient
    return np.array([np.linalg.norm(gain[:, k * n_orient:(k + 1) * n_orient], 2) ** 2
                     for k in range(n_blocks)])


@pytest.mark.parametrize("n_orient", [1, 3])
@pytest.mark.parametrize("name", ["l21", "mcp", "l05"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_epochs_equal_sequential_reference(n_orient, name, seed):
    gain, data, coef0 = _problem(n_orient, seed)
    n_times = data.shape[1]
    n_blocks = gain.shape[1] // n_orient
    corr = np.linalg.norm((gain.T @ data).reshape(n_blocks, -1), axis=1).max()
    # A λ at which some blocks enter, some leave and some stay at zero.
    pen = make_penalty(name, 0.5 * corr)
    lips = _lipschitz(gain, n_orient)
    expected = _sequential_epoch(gain, data, coef0, pen, n_orient, lips)
    # The pure-NumPy reference agrees (its non-convex prox is numerical: 1e-6).
    reference, _ = reference_solve(gain, data, pen, n_orient=n_orient, max_epochs=1,
                                   coef_init=coef0)
    np.testing.assert_allclose(expected, reference, rtol=1e-6, atol=1e-7)
    moved = block_norms(expected.reshape(n_blocks, -1)) != block_norms(
        coef0.reshape(n_blocks, -1))
    assert moved.sum() > PENDING_COLUMNS // n_orient  # several batches really flushed
    alphas = pen.block_alphas(n_blocks)
    evals, evecs = EMPTY_EIG[n_orient]

    coef_g = coef0.copy().reshape(n_blocks, -1)
    gram = gain.T @ gain
    qcoef = (gram @ coef0).reshape(n_blocks, -1)
    xty = (gain.T @ data).reshape(n_blocks, -1)
    epoch_gram(pen.code, pen.param, alphas, lips, gram, xty, coef_g, qcoef, n_orient,
               n_times, evals, evecs)
    np.testing.assert_allclose(coef_g.reshape(coef0.shape), expected, rtol=1e-9, atol=1e-10)
    # The state is that of the new iterate: no pending update was lost.
    np.testing.assert_allclose(qcoef.reshape(coef0.shape), gram @ expected, rtol=1e-9,
                               atol=1e-9)

    coef_r = coef0.copy().reshape(n_blocks, -1)
    residual = data - gain @ coef0
    gain_t_blocks = np.ascontiguousarray(gain.T).reshape(n_blocks, n_orient, -1)
    epoch_residual(pen.code, pen.param, alphas, lips, gain_t_blocks, coef_r, residual,
                   n_orient, n_times, evals, evecs)
    np.testing.assert_allclose(coef_r.reshape(coef0.shape), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(residual, data - gain @ expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n_blocks", [1, 2, PENDING_COLUMNS // 3 + 1])
def test_batched_epochs_few_blocks(n_blocks):
    """Fewer blocks than one batch, or one more: the last flush applies everything."""
    gain, data, coef0 = _problem(3, 3, n_blocks=n_blocks + 2)
    gain, coef0 = gain[:, 6:], coef0[6:]  # drop the zero-gain block
    pen = make_penalty("l21", 1e-3)
    expected, _ = reference_solve(gain, data, pen, n_orient=3, max_epochs=1, coef_init=coef0)
    gram = gain.T @ gain
    coef_g = coef0.copy().reshape(n_blocks, -1)
    qcoef = (gram @ coef0).reshape(n_blocks, -1)
    epoch_gram(pen.code, pen.param, pen.block_alphas(n_blocks), _lipschitz(gain, 3), gram,
               (gain.T @ data).reshape(n_blocks, -1), coef_g, qcoef, 3, data.shape[1],
               *EMPTY_EIG[3])
    np.testing.assert_allclose(coef_g.reshape(coef0.shape), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(qcoef.reshape(coef0.shape), gram @ expected, rtol=1e-9,
                               atol=1e-9)
