"""Working-set proximal block coordinate descent with Anderson extrapolation.

Outer loop (NumPy/BLAS over the full gain, once per outer iteration):

1. residual ``R = Y − G B`` on the support and full correlation ``GᵀR``
   (one gemm);
2. optimality: duality gap for convex penalties, otherwise the fixed-point
   criterion (see :func:`solve`); stop if small enough;
3. working set = current support plus the best-ranked other blocks (ranked by
   subdifferential distance for convex penalties, by the fixed-point score
   for non-convex ones, ties broken by ``‖∇_k‖/α_k``), of size
   ``max(p0, 2·|support|, min(2·previous, violating))``, so it grows by
   doubling;
4. inner solve on the working set (numba BCD epochs, Anderson extrapolation,
   warm start) to 0.3× the outer criterion; it is itself nested: epochs over
   the whole set alternate with solves on its non-zero blocks only.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from .._blas import one_blas_thread
from ..datafits import QuadraticMultiTask
from ..penalties import (
    BlockPenalty,
    IterativeReweightedL21,
    block_norms,
    correlation_scores,
    dual_ratios,
    has_metric_prox,
    make_penalty,
    optimality_scores,
    penalty_value,
)
from .anderson import AndersonAcceleration
from .bcd import epoch_gram, epoch_residual
from .support_newton import newton_candidate

#: Use the Gram matrix of the working set when it has at most this many
#: columns relative to the channels: a Gram epoch costs |non-zero|·|W|·o²·T
#: (zero blocks that stay zero cost nothing), a residual epoch 2·n_ch·|W|·o·T,
#: so the Gram pays off well beyond |W|·o = 2·n_ch; building it costs
#: (|W|o)²·n_ch, a few residual epochs.
GRAM_COLUMNS_PER_CHANNEL = 8.0
#: Hard cap on the Gram matrix size (columns) whatever the channel count.
GRAM_MAX_COLUMNS = 4000
#: Block steps in the metric of each block's Gram matrix for the penalties that
#: have one (see bcd._metric_update); False falls back to proximal gradient
#: steps 1/L_k (kept for comparisons).
METRIC_STEPS = True
#: Growth factor of the working set while violating blocks remain outside it.
WS_GROWTH = 3


@dataclass
class SolverResult:
    """Result of :func:`solve`.

    Attributes
    ----------
    coef : array, shape (n_sources * n_orient, n_times)
        Dense solution.
    active_set : array of bool, shape (n_sources * n_orient,)
        Rows whose block is non-zero.
    objective : float
        ``½‖Y − GB‖²_F + penalty(B)``.
    dual_gap : float | None
        Duality gap (convex penalties), else None.
    kkt_violation : float
        Max over blocks of the subdifferential distance (convex) or of the
        fixed-point score ``L_k‖B_k − prox(B_k − ∇_k/L_k)‖`` (non-convex).
    n_iter : int
        Outer (working-set) iterations.
    converged : bool
    tol : float
        Relative tolerance requested.
    n_epochs : int
        Total BCD epochs over all working sets.
    stop_criterion : float
        The quantity compared with ``tol·‖Y‖²_F`` (gap or fixed-point decrease).
    penalty : object
        The penalty object used.
    alpha : float
    n_orient : int
    time : float
        Wall time of the solve in seconds.
    history : list of dict
        Per outer iteration: objective, criterion, working set and support sizes.
    """

    coef: np.ndarray
    active_set: np.ndarray
    objective: float
    dual_gap: object
    kkt_violation: float
    n_iter: int
    converged: bool
    tol: float
    n_epochs: int = 0
    stop_criterion: float = np.nan
    penalty: object = None
    alpha: float = np.nan
    n_orient: int = 1
    time: float = 0.0
    history: list = field(default_factory=list)

    @property
    def n_active_sources(self):
        """Number of non-zero blocks (sources)."""
        return int(self.active_set.sum()) // self.n_orient


# --------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------
_MAX_ABS = 1e100


def _check_gain_data(gain, data, n_orient):
    """Validate shapes and finiteness; return float64 arrays (copy only if needed)."""
    if not isinstance(n_orient, (int, np.integer)) or n_orient < 1:
        raise ValueError(f"n_orient must be a positive integer (1 or 3), got {n_orient!r}")
    gain = np.asarray(gain)
    data = np.asarray(data)
    if gain.ndim != 2:
        raise ValueError(f"gain must be 2-D (n_channels, n_sources*n_orient), got shape {gain.shape}")
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D (n_channels, n_times), got shape {data.shape}")
    if gain.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(
            f"empty problem: gain has shape {gain.shape} and data {data.shape}; "
            "there must be at least one channel and one time sample")
    if gain.shape[0] != data.shape[0]:
        raise ValueError(
            f"gain has {gain.shape[0]} channels (rows) but data has {data.shape[0]}")
    if gain.shape[1] == 0 or gain.shape[1] % n_orient:
        raise ValueError(
            f"gain has {gain.shape[1]} columns, not a positive multiple of "
            f"n_orient={n_orient} (n_sources * n_orient must equal the gain columns)")
    # At most one copy of the gain: only when dtype/layout is unusable.
    if gain.dtype != np.float64 or not (gain.flags.c_contiguous or gain.flags.f_contiguous):
        gain = np.ascontiguousarray(gain, dtype=np.float64)
    data = np.ascontiguousarray(data, dtype=np.float64)
    if not np.isfinite(data).all():
        raise ValueError("data contains NaN or Inf")
    # Squares of larger numbers overflow; whitened M/EEG problems are O(1).
    if np.abs(data).max() > _MAX_ABS:
        raise ValueError(f"data has values beyond {_MAX_ABS:g} in magnitude: rescale it "
                         "(whitened data are of order 1)")
    # Fast path, one pass without temporaries: column sums of squares are all
    # finite and ≤ _MAX_ABS² only if every entry is finite and ≤ _MAX_ABS
    # (NaN/Inf propagate, larger values overflow or exceed the bound).
    col_sq = np.einsum("ij,ij->j", gain, gain)
    if np.isfinite(col_sq).all() and col_sq.max() <= _MAX_ABS ** 2:
        return gain, data
    # Slow path, only to say what is wrong; blockwise avoids a temporary
    # boolean array of the gain's size.
    for start in range(0, gain.shape[1], 4096):
        block = gain[:, start:start + 4096]
        if not np.isfinite(block).all():
            raise ValueError("gain contains NaN or Inf")
        if np.abs(block).max() > _MAX_ABS:
            raise ValueError(f"gain has values beyond {_MAX_ABS:g} in magnitude: rescale it "
                             "(a whitened gain is of order 1)")
    return gain, data


def _resolve_penalty(penalty, alpha, params):
    if isinstance(penalty, str):
        if alpha is None:
            raise ValueError("penalty given by name: pass alpha=...")
        return make_penalty(penalty, alpha, **params)
    if isinstance(penalty, (BlockPenalty, IterativeReweightedL21)):
        if params:
            raise ValueError(f"penalty parameters {sorted(params)} given with a penalty object")
        return penalty if alpha is None else penalty.with_alpha(alpha)
    raise ValueError(f"penalty must be a name or a penalty object, got {type(penalty).__name__}")


def alpha_max(gain, data, n_orient=1):
    """Smallest α giving the all-zero L2,1 solution: ``max_k ‖G_kᵀY‖_F``.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources * n_orient)
    data : array, shape (n_channels, n_times)
    n_orient : int

    Returns
    -------
    alpha_max : float
    """
    gain, data = _check_gain_data(gain, data, n_orient)
    corr = gain.T @ data
    return float(np.sqrt((corr.reshape(corr.shape[0] // n_orient, -1) ** 2).sum(1).max()))


def _block_rows(blocks, n_orient):
    """Row (gain column) indices of the blocks ``blocks``, in block order."""
    return (np.asarray(blocks)[:, None] * n_orient + np.arange(n_orient)).ravel()


# --------------------------------------------------------------------------
# Inner solver on a working set
# --------------------------------------------------------------------------
class _WorkingSetProblem:
    """The problem restricted to some blocks, with what pays off precomputed."""

    def __init__(self, gain, data, ws, n_orient, lipschitz, alphas, use_gram, evals, evecs):
        self.n_orient = n_orient
        self.n_times = data.shape[1]
        cols = _block_rows(ws, n_orient)
        self.cols = cols
        self.lipschitz = np.ascontiguousarray(lipschitz[ws])
        self.alphas = np.ascontiguousarray(alphas[ws])
        # Block eigen-decompositions (empty: proximal gradient steps 1/L_k).
        self.evals = np.ascontiguousarray(evals[ws]) if len(evals) else evals
        self.evecs = np.ascontiguousarray(evecs[ws]) if len(evecs) else evecs
        self.data = data
        gain_ws = gain[:, cols]  # small copy of the working-set columns
        self.use_gram = use_gram
        if use_gram:
            self.gram = gain_ws.T @ gain_ws
            self.xty = (gain_ws.T @ data).reshape(len(ws), -1)
        else:
            self.gain_ws = gain_ws
            self.gain_t_blocks = np.ascontiguousarray(gain_ws.T).reshape(
                len(ws), n_orient, -1)

    def restrict(self, idx):
        """The sub-problem on blocks ``idx`` (local indices), always with a Gram matrix.

        Gathered from this problem's Gram matrix (or its gain columns): no pass
        over the full gain.
        """
        child = object.__new__(_WorkingSetProblem)
        o = self.n_orient
        child.n_orient, child.n_times, child.data = o, self.n_times, self.data
        local = _block_rows(idx, o)
        child.local_cols = local
        child.cols = self.cols[local]
        child.lipschitz = np.ascontiguousarray(self.lipschitz[idx])
        child.alphas = np.ascontiguousarray(self.alphas[idx])
        child.evals = np.ascontiguousarray(self.evals[idx]) if len(self.evals) else self.evals
        child.evecs = np.ascontiguousarray(self.evecs[idx]) if len(self.evecs) else self.evecs
        child.use_gram = True
        if self.use_gram:
            child.gram = np.ascontiguousarray(self.gram[np.ix_(local, local)])
            child.xty = np.ascontiguousarray(self.xty[idx])
        else:
            gain_a = self.gain_ws[:, local]
            child.gram = gain_a.T @ gain_a
            child.xty = (gain_a.T @ self.data).reshape(len(idx), -1)
        return child

    def apply_delta(self, aux, local_cols, delta):
        """Update the state after the blocks of ``local_cols`` moved by ``delta``."""
        delta = delta.reshape(len(local_cols), -1)
        if self.use_gram:
            aux2 = aux.reshape(len(self.cols), -1)
            # Q is symmetric: gathering rows copies contiguous memory, columns do not.
            aux2 += self.gram[local_cols].T @ delta
        else:
            aux -= self.gain_ws[:, local_cols] @ delta

    def state(self, coef_ws):
        """Auxiliary state for the epochs: QB (Gram) or the residual."""
        if self.use_gram:
            return (self.gram @ coef_ws.reshape(len(self.cols), -1)).reshape(coef_ws.shape)
        return self.data - self.gain_ws @ coef_ws.reshape(len(self.cols), -1)

    def epoch(self, pen, coef_ws, aux):
        if self.use_gram:
            return epoch_gram(pen.code, pen.param, self.alphas, self.lipschitz,
                              self.gram, self.xty, coef_ws, aux, self.n_orient,
                              self.n_times, self.evals, self.evecs)
        return epoch_residual(pen.code, pen.param, self.alphas, self.lipschitz,
                              self.gain_t_blocks, coef_ws, aux, self.n_orient,
                              self.n_times, self.evals, self.evecs)

    def quantities(self, coef_ws, aux, norm_y2):
        """Return (‖R‖², <Y, R>, gradient in block layout)."""
        if self.use_gram:
            grad = aux - self.xty
            hb = float(np.vdot(self.xty, coef_ws))
            bqb = float(np.vdot(coef_ws, aux))
            res2 = max(norm_y2 - 2.0 * hb + bqb, 0.0)
            return res2, norm_y2 - hb, grad
        grad = -(self.gain_ws.T @ aux).reshape(coef_ws.shape)
        res2 = float(np.vdot(aux, aux))
        return res2, float(np.vdot(self.data, aux)), grad

    def objective(self, pen, coef_ws, aux, norm_y2):
        res2 = self.quantities(coef_ws, aux, norm_y2)[0] if self.use_gram else float(np.vdot(aux, aux))
        return 0.5 * res2 + penalty_value(pen.code, coef_ws, self.alphas, pen.param)


def _criterion(pen, coef_blocks, grad_blocks, alphas, lipschitz, res2, y_dot_r):
    """Stopping quantity in objective units, KKT violation, scores, primal, dual.

    Convex: duality gap with θ = s R, s = min(1, 1 / max_k ratio_k).
    Non-convex: ½ Σ_k (fixed-point score_k)² / L_k, the decrease a proximal
    step would promise on the quadratic model: same units as the gap.
    """
    scores = optimality_scores(pen.code, coef_blocks, grad_blocks, alphas, pen.param,
                               lipschitz, pen.uses_fixed_point)
    ratios = dual_ratios(pen.code, grad_blocks, alphas) if pen.is_convex else None
    value = penalty_value(pen.code, coef_blocks, alphas, pen.param)
    return _criterion_from_scores(pen, scores, ratios, value, lipschitz, res2, y_dot_r)


def _criterion_from_scores(pen, scores, ratios, penalty_val, lipschitz, res2, y_dot_r):
    """:func:`_criterion` from the per-block scores, dual ratios and penalty value."""
    kkt = float(scores.max()) if scores.size else 0.0
    p_obj = 0.5 * res2 + penalty_val
    if pen.is_convex:
        rmax = float(ratios.max()) if ratios.size else 0.0
        s = 1.0 if rmax <= 1.0 else 1.0 / rmax
        d_obj = s * y_dot_r - 0.5 * s * s * res2
        return p_obj - d_obj, kkt, scores, p_obj, d_obj
    with np.errstate(divide="ignore", invalid="ignore"):
        decrease = np.where(lipschitz > 0, scores ** 2 / lipschitz, 0.0)
    return 0.5 * float(decrease.sum()), kkt, scores, p_obj, None


def _check(sub, pen, coef_ws, aux, norm_y2, best_dual):
    """Inner criterion (gap with the best dual point seen, or fixed-point decrease).

    Returns the criterion, the best dual value and the per-block scores.
    """
    res2, ydr, grad = sub.quantities(coef_ws, aux, norm_y2)
    crit, _, scores, p_obj, d_obj = _criterion(pen, coef_ws, grad, sub.alphas,
                                               sub.lipschitz, res2, ydr)
    if d_obj is not None:  # keep the best dual point seen
        best_dual = max(best_dual, d_obj)
        crit = p_obj - best_dual
    return crit, best_dual, scores


def _try_newton(sub, pen, coef_ws, aux, norm_y2, crit, best_dual):
    """Newton steps on the support of ``coef_ws``, kept if they pay (Gram sub-problems).

    The candidate is accepted only if the objective does not increase and the
    criterion (which also scores the zero blocks) drops: a stationary point of
    the support's smooth equations need not be a fixed point of the proximal
    map (e.g. a small L0.5 block the prox would set to zero).  Updates
    ``coef_ws`` and ``aux`` in place; returns (accepted, crit, best_dual, scores).
    """
    support, delta = newton_candidate(sub.gram, sub.xty, coef_ws, aux, sub.alphas, pen.code,
                                      pen.param, sub.n_orient)
    if delta is None:
        return False, crit, best_dual, None
    new_coef = coef_ws.copy()
    new_coef[support] += delta
    new_aux = aux.copy()
    sub.apply_delta(new_aux, _block_rows(support, sub.n_orient), delta)
    new_crit, new_dual, new_scores = _check(sub, pen, new_coef, new_aux, norm_y2, best_dual)
    old_obj = sub.objective(pen, coef_ws, aux, norm_y2)
    if new_crit < crit and (sub.objective(pen, new_coef, new_aux, norm_y2)
                            <= old_obj + 1e-12 * abs(old_obj)):
        coef_ws[:] = new_coef
        aux[:] = new_aux
        return True, new_crit, new_dual, new_scores
    return False, crit, best_dual, None


#: Newton steps on a settled support for the penalties that allow them
#: (``newton_on_support``, see :func:`_epochs`); False runs plain BCD (kept
#: for comparisons).
NEWTON_STEPS = True
#: Checks with an unchanged support before a Newton step is tried.
NEWTON_STABLE_CHECKS = 2


def _epochs(sub, pen, coef_ws, aux, norm_y2, tol_abs, max_epochs, anderson_K,
            check_freq=5, best_dual=-np.inf, deadline=np.inf):
    """BCD epochs (Anderson-extrapolated) until the criterion ≤ ``tol_abs``.

    Weakly convex penalties (``pen.newton_on_support``: MCP, SCAD), Gram
    sub-problems: once the support has not changed
    for ``NEWTON_STABLE_CHECKS`` checks, Newton steps on its stationarity
    equations (:func:`_try_newton`) replace the slow linear tail of BCD (the
    concave part of MCP/SCAD cancels the curvature BCD relies on: thousands
    of epochs at small λ).  A rejected step is retried after twice as many
    checks as the last wait.

    Returns the epochs run, the criterion, the best dual value and the block
    scores of the last check.
    """
    accel = AndersonAcceleration(anderson_K) if anderson_K else None
    newton = NEWTON_STEPS and sub.use_gram and pen.newton_on_support
    stable, wait, last_support = 0, NEWTON_STABLE_CHECKS, None
    crit = np.inf
    scores = None
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        sub.epoch(pen, coef_ws, aux)
        if accel is not None:
            extrap, aux_acc = accel.push(coef_ws, aux)
            if extrap is not None:
                # Blocks the last epoch set to zero stay zero: extrapolating
                # a block that is leaving the support pushes it through zero
                # and the point is then rejected (seen on the volume problem:
                # no extrapolation accepted while the support shrank).
                leaving = np.flatnonzero((block_norms(coef_ws) == 0.0)
                                         & (block_norms(extrap) > 0.0))
                if leaving.size:
                    sub.apply_delta(aux_acc, _block_rows(leaving, sub.n_orient),
                                    -extrap[leaving])
                    extrap[leaving] = 0.0
                if (sub.objective(pen, extrap, aux_acc, norm_y2)
                        < sub.objective(pen, coef_ws, aux, norm_y2)):
                    coef_ws[:] = extrap
                    aux[:] = aux_acc
        if epoch % check_freq == 0 or epoch == max_epochs:
            crit, best_dual, scores = _check(sub, pen, coef_ws, aux, norm_y2, best_dual)
            if crit <= tol_abs or time.perf_counter() > deadline:
                break
            if newton:
                support = block_norms(coef_ws) > 0
                same = last_support is not None and np.array_equal(support, last_support)
                stable = stable + 1 if same else 0
                last_support = support
                if stable >= wait:
                    accepted, crit, best_dual, new_scores = _try_newton(
                        sub, pen, coef_ws, aux, norm_y2, crit, best_dual)
                    stable = 0
                    if accepted:
                        scores = new_scores
                        wait = NEWTON_STABLE_CHECKS
                        if accel is not None:  # its history is of the old path
                            accel = AndersonAcceleration(anderson_K)
                        if crit <= tol_abs:
                            break
                    else:
                        wait *= 2
    return epoch, crit, best_dual, scores


#: Nested working set: solve on the non-zero blocks of the working set (and
#: those that violate optimality) when they are at most this fraction of it
#: (epoch cost ∝ |non-zero| · |set|).
NESTED_MAX_FRACTION = 0.75
#: Plain epochs over the whole working set before the first nested solve.
FIRST_SET_EPOCHS = 5
#: The same for convex penalties: more plain epochs let more of the support in
#: before the nested solves, which then change less often. L2,1, one BLAS
#: thread, medians of 3 (CPU time): 5 mm volume α = 30 % 0.82 -> 0.69 s (335 ->
#: 210 epochs), 70 % and 50 % within ±0.01 s; surface (511 sources) α = 10 %
#: 0.32 -> 0.28 s, 30 %/50 % within ±0.01 s; 8 and 12 epochs about as good as
#: 10 (the volume at α = 20 % is erratic: 2.4-3.9 s whatever the value).
#: Non-convex penalties keep 5: the stationary point they reach depends on it.
FIRST_SET_EPOCHS_CONVEX = 10


def _inner_solve(sub, pen, coef_ws, norm_y2, tol_abs, max_epochs, anderson_K,
                 check_freq=5, sub_tol_ratio=0.3, deadline=np.inf):
    """BCD on the working set until its criterion ≤ ``tol_abs``.

    Nested working set: after ``FIRST_SET_EPOCHS`` epochs over the whole set, the
    blocks that are non-zero, plus the zero ones that violate optimality,
    are solved alone (Gram matrix gathered from the set's: epochs cost
    |child|² instead of |non-zero|·|set|), then the set's state is updated
    with one product and the set is checked again.  When no block outside
    the child violates optimality, the set's criterion is the child's, so
    the child is solved to the final tolerance in one go; otherwise to
    ``sub_tol_ratio`` × the set's criterion, and the violators join it.
    """
    aux = sub.state(coef_ws)
    n_set = coef_ws.shape[0]
    # A few plain epochs over the whole set let the first blocks in.
    n_first = min(FIRST_SET_EPOCHS_CONVEX if pen.is_convex else FIRST_SET_EPOCHS, max_epochs)
    total, crit, best_dual, scores = _epochs(sub, pen, coef_ws, aux, norm_y2, tol_abs,
                                             n_first, 0, n_first)
    while crit > tol_abs and total < max_epochs and time.perf_counter() < deadline:
        nonzero = block_norms(coef_ws) > 0
        violating = ~nonzero & (scores > 0)
        child_blocks = np.flatnonzero(nonzero | violating)
        if (child_blocks.size == 0 or child_blocks.size > NESTED_MAX_FRACTION * n_set
                or child_blocks.size * sub.n_orient > GRAM_MAX_COLUMNS):
            ep, crit, best_dual, _ = _epochs(sub, pen, coef_ws, aux, norm_y2, tol_abs,
                                             max_epochs - total, anderson_K, check_freq,
                                             best_dual, deadline)
            total += ep
            break
        child = sub.restrict(child_blocks)
        coef_c = coef_ws[child_blocks]  # a copy (fancy indexing)
        start = coef_c.copy()
        # Blocks may leave the child's support but none outside it wants in
        # unless some did just now: then an intermediate tolerance.
        child_tol = (tol_abs if not violating.any()
                     else max(tol_abs, sub_tol_ratio * crit))
        ep, _, _, _ = _epochs(child, pen, coef_c, child.state(coef_c), norm_y2, child_tol,
                              max_epochs - total, anderson_K, check_freq, deadline=deadline)
        total += ep
        coef_ws[child_blocks] = coef_c
        sub.apply_delta(aux, child.local_cols, coef_c - start)
        crit, best_dual, scores = _check(sub, pen, coef_ws, aux, norm_y2, best_dual)
    return total, crit


# --------------------------------------------------------------------------
# Public solver
# --------------------------------------------------------------------------
def solve(gain, data, penalty="l21", n_orient=1, tol=1e-6, max_iter=100,
          max_epochs=20_000, coef_init=None, verbose=False, alpha=None,
          p0=None, anderson_K=5, inner_tol_ratio=0.3, max_time=None, callback=None,
          block_eigh=None, data_correlation=None, **penalty_params):
    """Minimise ``½‖Y − G B‖²_F + Σ_k p(B_k)`` by working-set BCD.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources * n_orient)
        Gain (lead field), float64; used in place (never copied when it is a
        C- or F-contiguous float64 array).
    data : array, shape (n_channels, n_times)
        (Whitened) data.
    penalty : str | BlockPenalty | IterativeReweightedL21
        Penalty object or a name of :data:`meeg_inverse.penalties.PENALTIES`
        (then pass ``alpha`` and penalty parameters as keyword arguments).
        "irmxne" runs :func:`irmxne`.
    n_orient : int
        Rows per source block (1 fixed, 3 free/loose).
    tol : float
        Relative tolerance.  Convex penalties stop when the duality gap
        ``≤ tol·‖Y‖²_F``; non-convex ones when
        ``½ Σ_k L_k‖B_k − prox_{p/L_k}(B_k − ∇_k/L_k)‖² ≤ tol·‖Y‖²_F``
        (the decrease a further proximal BCD pass could promise on the
        quadratic model, in the same objective units as the gap).
    max_iter : int
        Maximum number of outer (working-set) iterations.
    max_epochs : int
        Maximum number of BCD epochs per inner solve.
    coef_init : array, shape (n_sources * n_orient, n_times) | None
        Warm start.
    verbose : bool
        Print one line per outer iteration.
    alpha : float | None
        Regularisation when ``penalty`` is a name (or to override it).
    p0 : int | None
        Initial working-set size (blocks).  None: 30 for convex penalties
        (fewer outer iterations, each a full ``GᵀR`` product), 10 for
        non-convex ones (larger first sets admit blocks greedily and ended at
        denser, slower-to-reach stationary points on the sample problems).
    anderson_K : int
        Anderson extrapolation memory (0 disables it).
    inner_tol_ratio : float
        Inner tolerance as a fraction of the outer criterion.
    max_time : float | None
        Time budget (s): past it the solve stops at the next check (within
        one BCD check of 5 epochs) and returns ``converged=False`` with the
        criterion it reached (``stop_criterion``); None: no budget.
    callback : callable | None
        Called after each outer iteration as ``callback(it, criterion,
        tol_abs, n_support, elapsed_s)`` (progress display).
    block_eigh : tuple of arrays | None
        ``(evals, evecs)`` of every block ``G_kᵀG_k``, as returned by
        :meth:`meeg_inverse.datafits.QuadraticMultiTask.block_eigh` for this
        gain (a prepared operator keeps them); None: computed here.
    data_correlation : array, shape (n_times, n_sources * n_orient) | None
        ``Yᵀ G`` if already computed (λ_max needs it): replaces the first
        outer iteration's product when the start is zero. Not modified.
    **penalty_params
        Parameters of a penalty given by name (gamma, eps, weights, n_iter).

    Returns
    -------
    result : SolverResult
    """
    t_start = time.perf_counter()
    pen = _resolve_penalty(penalty, alpha, penalty_params)
    if isinstance(pen, IterativeReweightedL21):
        return irmxne(gain, data, pen.alpha, n_orient=n_orient, n_iter=pen.n_iter,
                      tol=tol, max_iter=max_iter, coef_init=coef_init,
                      verbose=verbose, weights=pen.weights, max_time=max_time,
                      callback=callback, block_eigh=block_eigh,
                      data_correlation=data_correlation)
    gain, data = _check_gain_data(gain, data, n_orient)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    deadline = np.inf if max_time is None else t_start + float(max_time)
    n_channels, n_cols = gain.shape
    n_times = data.shape[1]
    n_blocks = n_cols // n_orient
    datafit = QuadraticMultiTask()
    if n_orient > 1 and METRIC_STEPS and has_metric_prox(pen.code):
        # Exact block steps need each block's eigen-decomposition (see bcd).
        if block_eigh is None:
            evals, evecs = datafit.block_eigh(gain, n_orient)
        else:
            evals, evecs = block_eigh
            if evals.shape != (n_blocks, n_orient) or evecs.shape != (n_blocks, n_orient,
                                                                          n_orient):
                raise ValueError(f"block_eigh must hold ({n_blocks}, {n_orient}) eigenvalues "
                                 f"and ({n_blocks}, {n_orient}, {n_orient}) eigenvectors")
        lipschitz = np.ascontiguousarray(evals[:, -1])
    else:
        evals, evecs = np.empty((0, n_orient)), np.empty((0, n_orient, n_orient))
        lipschitz = datafit.block_lipschitz(gain, n_orient)
    alphas = pen.block_alphas(n_blocks)
    norm_y2 = float(np.vdot(data, data))
    tol_abs = tol * norm_y2
    if p0 is None:
        p0 = 30 if pen.is_convex else 10

    coef = np.zeros((n_cols, n_times))
    if coef_init is not None:
        coef_init = np.asarray(coef_init, dtype=np.float64)
        if coef_init.shape != coef.shape:
            raise ValueError(f"coef_init must have shape {coef.shape}, got {coef_init.shape}")
        coef[:] = coef_init
    coef_blocks = coef.reshape(n_blocks, -1)
    coef_blocks[lipschitz <= 0] = 0.0  # zero columns never enter the model

    gram_limit = min(GRAM_MAX_COLUMNS, int(GRAM_COLUMNS_PER_CHANNEL * n_channels))
    # Buffer of the full correlation RᵀG (the gradient is −its transpose),
    # allocated once: a fresh 10-100 MB array per outer iteration costs as
    # much in page faults as the product itself.  BLAS computes RᵀG (n_times
    # × n_cols) about 3× faster than GᵀR for a tall gain (OpenBLAS, one
    # thread, 362 × 31 104 gain, 61 samples: 19 ms vs 58 ms), and the scores
    # read it in place (penalties.correlation_scores).
    corr_t = None
    support = block_norms(coef_blocks) > 0
    if data_correlation is not None:
        data_correlation = np.ascontiguousarray(data_correlation, dtype=np.float64)
        if data_correlation.shape != (n_times, n_cols):
            raise ValueError(f"data_correlation must have shape {(n_times, n_cols)}, got "
                             f"{data_correlation.shape}")
        if support.any():
            data_correlation = None  # not a zero start: RᵀG ≠ YᵀG

    history = []
    converged = False
    n_epochs = 0
    best_dual = -np.inf
    crit = kkt = p_obj = np.inf
    gap = None
    it = 0
    prev_ws_size = p0 // 2
    for it in range(1, max_iter + 1):
        cols = np.flatnonzero(np.repeat(support, n_orient))
        residual = data - gain[:, cols] @ coef[cols] if cols.size else data.copy()
        if it == 1 and data_correlation is not None:
            corr_t = data_correlation  # RᵀG = YᵀG at a zero start (read only)
        else:
            if corr_t is None or corr_t is data_correlation:
                corr_t = np.empty((n_times, n_cols))
            np.dot(residual.T, gain, out=corr_t)  # the one full-size product
        res2 = float(np.vdot(residual, residual))
        scores, ratios, grad_ratios, pen_val = correlation_scores(
            pen.code, pen.param, corr_t, coef_blocks, support, alphas, lipschitz,
            pen.uses_fixed_point, n_orient)
        crit, kkt, scores, p_obj, d_obj = _criterion_from_scores(
            pen, scores, ratios, pen_val, lipschitz, res2, float(np.vdot(data, residual)))
        if d_obj is not None:
            best_dual = max(best_dual, d_obj)
            crit = gap = p_obj - best_dual
        n_support = int(support.sum())
        history.append(dict(objective=p_obj, criterion=crit, kkt=kkt, n_support=n_support))
        if verbose:
            print(f"[{pen.name}] iter {it}: obj {p_obj:.10g} crit {crit:.3e} "
                  f"(tol {tol_abs:.3e}) kkt {kkt:.3e} support {n_support}")
        if callback is not None:
            callback(it, crit, tol_abs, n_support, time.perf_counter() - t_start)
        if crit <= tol_abs:
            converged = True
            break
        if time.perf_counter() > deadline:
            break  # out of budget: converged stays False, crit is what was reached
        # Working set: support first, then blocks by score (ties: ‖∇_k‖/α_k).
        # Size max(p0, 2|support|), and at least WS_GROWTH × the previous
        # working set while violating blocks remain outside it: support-doubling
        # alone needed 9 (L2,1) to ~12 (non-convex) outer iterations, each a
        # full GᵀR gemm, on the volume problem; growth 3 instead of 2 saved
        # one of 5-8 outer iterations and 10-30 % of the L2,1 time there
        # (volume α = 20/30/50 %, surface 10/30 %).  Larger working sets are
        # cheap since the inner solve is nested (see _inner_solve).
        n_violating = int(np.count_nonzero(scores[~support] > 0)) + n_support
        ws_size = max(p0, 2 * n_support)
        if n_violating > ws_size:
            ws_size = max(ws_size, min(WS_GROWTH * prev_ws_size, n_violating))
        ws_size = min(n_blocks, ws_size)
        prev_ws_size = ws_size
        priority = np.where(support, np.inf, scores)
        order = np.lexsort((-grad_ratios, -priority))
        ws = np.sort(order[:ws_size])
        history[-1]["ws_size"] = ws_size

        # When every violating block is already in the working set, one more
        # outer iteration can only be needed because the inner solve was
        # inexact: then solve it to the final tolerance right away (saves the
        # full GᵀR gemm of repeated outer iterations at the same working set).
        inner_tol = inner_tol_ratio * (tol_abs if n_violating <= ws_size or ws_size == n_blocks
                                       else crit)
        use_gram = ws_size * n_orient <= gram_limit
        sub = _WorkingSetProblem(gain, data, ws, n_orient, lipschitz, alphas, use_gram,
                                 evals, evecs)
        coef_ws = np.ascontiguousarray(coef[sub.cols]).reshape(ws_size, -1)
        # The inner solve is a long sequence of small BLAS calls: threading
        # them costs more than it brings (10x slower on a loaded 2-core box).
        with one_blas_thread():
            epochs, _ = _inner_solve(sub, pen, coef_ws, norm_y2, inner_tol, max_epochs,
                                     anderson_K, deadline=deadline)
        n_epochs += epochs
        coef_blocks[support] = 0.0  # the only non-zero rows
        coef_blocks[ws] = coef_ws
        support[:] = False
        support[ws] = block_norms(coef_ws) > 0

    active_set = np.repeat(support, n_orient)
    return SolverResult(
        coef=coef, active_set=active_set, objective=float(p_obj),
        dual_gap=float(gap) if pen.is_convex else None, kkt_violation=float(kkt),
        n_iter=it, converged=converged, tol=tol, n_epochs=n_epochs,
        stop_criterion=float(crit), penalty=pen, alpha=pen.alpha, n_orient=n_orient,
        time=time.perf_counter() - t_start, history=history)


def solve_path(gain, data, alphas, penalty="l21", n_orient=1, tol=1e-6, verbose=False,
               **kwargs):
    """Warm-started regularisation path, from the largest α downwards.

    Parameters
    ----------
    gain, data, n_orient, tol, verbose
        As in :func:`solve`.
    alphas : array-like of float
        Regularisation values; solved in decreasing order.
    penalty : str | BlockPenalty
        Name (penalty parameters in ``kwargs``) or object (its α is replaced).
    **kwargs
        Passed to :func:`solve` or, for a name, to :func:`make_penalty`.

    Returns
    -------
    results : list of SolverResult
        One per α, in decreasing-α order.
    """
    alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())[::-1]
    if alphas.size == 0:
        raise ValueError("alphas is empty")
    solve_keys = {"max_iter", "max_epochs", "p0", "anderson_K", "inner_tol_ratio"}
    solve_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in solve_keys}
    coef = kwargs.pop("coef_init", None)
    results = []
    for a in alphas:
        if isinstance(penalty, str):
            pen = make_penalty(penalty, a, **kwargs)
        else:
            pen = penalty.with_alpha(a)
        res = solve(gain, data, pen, n_orient=n_orient, tol=tol, coef_init=coef,
                    verbose=verbose, **solve_kw)
        coef = res.coef
        results.append(res)
    return results


def irmxne(gain, data, alpha, n_orient=1, n_iter=10, tol=1e-6, max_iter=100,
           coef_init=None, verbose=False, weights=None, **solve_kw):
    """Iteratively reweighted L2,1 (irMxNE, Strohmeier et al. 2016).

    Majorisation-minimisation of ``½‖Y − GB‖² + α Σ_k ‖B_k‖^0.5``: iteration
    ``i`` solves a weighted L2,1 problem with block regularisation
    ``α / (2 sqrt(‖B_k^{(i-1)}‖))`` (first iteration: plain L2,1), as MNE's
    ``iterative_mixed_norm_solver``; a block that is zero stays zero, so the
    support can only shrink.  Each weighted problem is warm-started.

    Parameters
    ----------
    gain, data, n_orient, tol, max_iter, verbose
        As in :func:`solve` (``tol`` is used for every weighted problem).
    alpha : float
    n_iter : int
        Maximum number of reweightings.
    coef_init : array | None
        Starting point; its block norms define the first weights.
    weights : array, shape (n_sources,) | None
        Extra fixed block weights (as MNE's ``weights`` prior).

    Returns
    -------
    result : SolverResult
        ``objective`` is the L0.5 objective; ``kkt_violation`` the L0.5
        fixed-point score; ``n_iter`` the number of reweightings; ``dual_gap``
        None.  ``converged`` is True when the support is unchanged and the
        coefficients moved by less than ``tol`` (relative, max-norm).
    """
    t_start = time.perf_counter()
    gain, data = _check_gain_data(gain, data, n_orient)
    n_blocks = gain.shape[1] // n_orient
    base = np.ones(n_blocks) if weights is None else np.asarray(weights, float)
    if base.shape != (n_blocks,):
        raise ValueError(f"weights must have shape ({n_blocks},)")
    coef = None if coef_init is None else np.asarray(coef_init, dtype=np.float64)
    if coef is None:
        block_w = base
    else:
        block_w = _reweight(coef, n_orient) * base
    converged = False
    n_epochs = 0
    res = None
    k = 0
    max_time = solve_kw.pop("max_time", None)
    deadline = np.inf if max_time is None else t_start + float(max_time)
    data_correlation = solve_kw.pop("data_correlation", None)  # YᵀG: zero start only
    for k in range(1, n_iter + 1):
        pen = make_penalty("weighted_l21", alpha, weights=block_w)
        left = None if max_time is None else max(deadline - time.perf_counter(), 0.0)
        res = solve(gain, data, pen, n_orient=n_orient, tol=tol, max_iter=max_iter,
                    coef_init=coef, max_time=left,
                    data_correlation=data_correlation if coef is None else None, **solve_kw)
        n_epochs += res.n_epochs
        if verbose:
            print(f"[irmxne] reweighting {k}: support {res.n_active_sources}")
        if coef is not None:
            same_support = np.array_equal(res.active_set, coef.any(axis=1))
            scale = max(np.abs(res.coef).max(), np.finfo(float).tiny)
            if same_support and np.abs(res.coef - coef).max() <= tol * scale:
                coef = res.coef
                converged = True
                break
        coef = res.coef
        if not res.active_set.any():
            converged = True
            break
        if time.perf_counter() > deadline:
            break
        block_w = _reweight(coef, n_orient) * base
    # Report the L0.5 objective and fixed-point score of the final iterate.
    l05 = make_penalty("l05", alpha)
    rows = np.flatnonzero(coef.any(axis=1))
    residual = data - gain[:, rows] @ coef[rows]
    grad_blocks = -(gain.T @ residual).reshape(n_blocks, -1)
    lips = QuadraticMultiTask.block_lipschitz(gain, n_orient)
    coef_blocks = coef.reshape(n_blocks, -1)
    scores = optimality_scores(l05.code, coef_blocks, grad_blocks,
                               l05.block_alphas(n_blocks), l05.param, lips, True)
    obj = 0.5 * float(np.vdot(residual, residual)) + l05.value(coef, n_orient)
    return SolverResult(
        coef=coef, active_set=np.repeat(block_norms(coef_blocks) > 0, n_orient),
        objective=obj, dual_gap=None, kkt_violation=float(scores.max()), n_iter=k,
        converged=converged, tol=tol, n_epochs=n_epochs, stop_criterion=np.nan,
        penalty=IterativeReweightedL21(alpha, n_iter), alpha=alpha, n_orient=n_orient,
        time=time.perf_counter() - t_start, history=[])


def _reweight(coef, n_orient):
    """irMxNE block weights 1/(2 sqrt‖B_k‖) as multipliers of α (inf at 0)."""
    norms = np.sqrt((coef.reshape(coef.shape[0] // n_orient, -1) ** 2).sum(1))
    with np.errstate(divide="ignore"):
        return 1.0 / (2.0 * np.sqrt(norms))


def time_pca(data, rank=None):
    """Reduce the time dimension by SVD, as MNE's ``time_pca``.

    Parameters
    ----------
    data : array, shape (n_channels, n_times)
    rank : int | None
        Number of components kept (None: numerical rank, at most n_channels).

    Returns
    -------
    reduced : array, shape (n_channels, rank)
        ``U · s``; solve on it, then map coefficients back with ``coef @ basis``.
    basis : array, shape (rank, n_times)
        Orthonormal rows ``Vh``.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or not np.isfinite(data).all():
        raise ValueError("data must be a finite 2-D array (n_channels, n_times)")
    u, s, vh = np.linalg.svd(data, full_matrices=False)
    if rank is None:
        rank = int((s > s[0] * max(data.shape) * np.finfo(float).eps).sum()) if s.size else 0
    rank = int(rank)
    if not 1 <= rank <= s.size:
        raise ValueError(f"rank must be in [1, {s.size}], got {rank}")
    return u[:, :rank] * s[:rank], vh[:rank]
