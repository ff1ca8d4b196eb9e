"""Pure-NumPy reference solver (for tests): cyclic proximal BCD, no tricks.

Same mathematics as the numba engine but written independently: the block
proximal operators are computed *numerically* (grid search on ``[0, ‖z‖]``
then golden-section refinement of the radial 1-D problem) from the penalty
*value* only, so they check the closed forms of :mod:`meeg_inverse.penalties`.
No working set, no extrapolation, no Gram matrix: slow, only for small
problems.
"""

import math

import numpy as np

from ..penalties import CODE_L1, CODE_L21, make_penalty

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def radial_value(penalty, norm, alpha_k):
    """Value of the penalty of a block of Frobenius norm ``norm`` (not L1)."""
    x = np.asarray(norm, dtype=float)
    name = penalty.name
    if name in ("l21", "weighted_l21"):
        return alpha_k * x
    if name == "mcp":
        g = penalty.param
        return np.where(x <= g * alpha_k, alpha_k * x - x ** 2 / (2 * g), g * alpha_k ** 2 / 2)
    if name == "scad":
        g = penalty.param
        mid = (2 * g * alpha_k * x - x ** 2 - alpha_k ** 2) / (2 * (g - 1))
        return np.where(x <= alpha_k, alpha_k * x,
                        np.where(x <= g * alpha_k, mid, alpha_k ** 2 * (g + 1) / 2))
    if name in ("l05", "l23", "lq"):
        return alpha_k * x ** penalty.param
    if name == "log":
        return alpha_k * np.log1p(x / penalty.param)
    raise ValueError(f"no reference value for penalty {name!r}")


def numeric_radial_prox(penalty, z, step, alpha_k, n_grid=201, n_golden=60):
    """argmin_{x ≥ 0} (x − z)²/(2 step) + φ(x) by grid + golden section."""
    if z <= 0 or not np.isfinite(alpha_k):
        return 0.0
    grid = np.linspace(0.0, z, n_grid)
    vals = (grid - z) ** 2 / (2 * step) + radial_value(penalty, grid, alpha_k)
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, n_grid - 1)]

    def h(x):
        return (x - z) ** 2 / (2 * step) + float(radial_value(penalty, x, alpha_k))

    a, b = lo + (1 - _GOLDEN) * (hi - lo), lo + _GOLDEN * (hi - lo)
    ha, hb = h(a), h(b)
    for _ in range(n_golden):
        if ha <= hb:
            hi, b, hb = b, a, ha
            a = lo + (1 - _GOLDEN) * (hi - lo)
            ha = h(a)
        else:
            lo, a, ha = a, b, hb
            b = lo + _GOLDEN * (hi - lo)
            hb = h(b)
    x = 0.5 * (lo + hi)
    return x if h(x) < h(0.0) else 0.0


def reference_block_prox(penalty, block, step, alpha_k):
    """Block prox in NumPy: closed form for L1/L2,1, numerical otherwise."""
    if not np.isfinite(alpha_k):
        return np.zeros_like(block)
    if penalty.code == CODE_L1:
        return np.sign(block) * np.maximum(np.abs(block) - step * alpha_k, 0.0)
    norm = float(np.linalg.norm(block))
    if norm == 0.0:
        return np.zeros_like(block)
    if penalty.code == CODE_L21:
        new = max(norm - step * alpha_k, 0.0)
    else:
        new = numeric_radial_prox(penalty, norm, step, alpha_k)
    return block * (new / norm)


def reference_objective(gain, data, coef, penalty, n_orient):
    """½‖Y − GB‖² + Σ_k p(B_k) in NumPy."""
    n_blocks = gain.shape[1] // n_orient
    alphas = penalty.block_alphas(n_blocks)
    blocks = coef.reshape(n_blocks, -1)
    if penalty.code == CODE_L1:
        with np.errstate(invalid="ignore"):
            pen = np.where(np.abs(blocks).sum(1) > 0, alphas * np.abs(blocks).sum(1), 0.0)
    else:
        norms = np.linalg.norm(blocks, axis=1)
        with np.errstate(invalid="ignore"):
            pen = np.where(norms > 0, radial_value(penalty, norms, alphas), 0.0)
    return 0.5 * np.sum((data - gain @ coef) ** 2) + pen.sum()


def reference_solve(gain, data, penalty, n_orient=1, alpha=None, tol=1e-10,
                    max_epochs=5000, coef_init=None, **params):
    """Cyclic proximal BCD over all blocks until the iterates stop moving.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources * n_orient)
    data : array, shape (n_channels, n_times)
    penalty : str | BlockPenalty
    n_orient : int
    alpha : float | None
        Needed when ``penalty`` is a name.
    tol : float
        Stop when ``max_k L_k ‖ΔB_k‖ ≤ tol · max_k ‖G_kᵀY‖``.
    max_epochs : int
    coef_init : array | None

    Returns
    -------
    coef : array, shape (n_sources * n_orient, n_times)
    n_epochs : int
    """
    if isinstance(penalty, str):
        penalty = make_penalty(penalty, alpha, **params)
    gain = np.asarray(gain, dtype=float)
    data = np.asarray(data, dtype=float)
    n_blocks = gain.shape[1] // n_orient
    alphas = penalty.block_alphas(n_blocks)
    coef = np.zeros((gain.shape[1], data.shape[1])) if coef_init is None else np.array(coef_init, float)
    residual = data - gain @ coef
    g_blocks = [gain[:, k * n_orient:(k + 1) * n_orient] for k in range(n_blocks)]
    lips = np.array([np.linalg.norm(g.T @ g, 2) for g in g_blocks])
    scale = max(np.linalg.norm(g.T @ data) for g in g_blocks)
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        max_move = 0.0
        for k, g_k in enumerate(g_blocks):
            if lips[k] == 0:
                continue
            rows = slice(k * n_orient, (k + 1) * n_orient)
            old = coef[rows].copy()
            new = reference_block_prox(penalty, old + g_k.T @ residual / lips[k],
                                       1.0 / lips[k], alphas[k])
            if np.any(new != old):
                residual -= g_k @ (new - old)
                coef[rows] = new
                max_move = max(max_move, lips[k] * np.linalg.norm(new - old))
        if max_move <= tol * scale:
            break
    return coef, epoch
