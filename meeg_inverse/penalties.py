"""Block penalties for sparse M/EEG inverse problems.

A penalty acts on blocks ``B_k`` of the coefficient matrix: the ``n_orient``
consecutive rows of source ``k`` over all time points.  Except for the
elementwise L1 penalty, each penalty is a function of the Frobenius norm
``‖B_k‖_F`` only, ``p(B_k) = φ(‖B_k‖_F)``, so its block proximal operator is a
radial rescaling ``prox(B) = B · ρ(‖B‖) / ‖B‖`` where ``ρ`` is the proximal
operator of the scalar function ``φ`` on ``[0, ∞)``.

Design
------
The solver never knows which penalty it runs.  A penalty object only exposes
an integer ``code``, a per-block regularisation vector (``alpha`` times the
block weights) and one float parameter (``gamma`` for MCP/SCAD, the exponent
``q`` for Lq quasi-norms, ``eps`` for log-sum).  The numerical work is done by
the ``@njit(cache=True)`` functions of this module, which dispatch on the
integer code.  Numba can cache such functions across processes (unlike
jitclasses or functions receiving other jitted functions as arguments), so a
fresh process loads machine code from ``__pycache__`` instead of compiling.

Numba arrays use the *block layout*: a C-contiguous coefficient matrix of
shape ``(n_blocks * n_orient, n_times)`` reshaped (for free) to
``(n_blocks, n_orient * n_times)`` so that row ``k`` is the flattened block.
"""

import math

import numpy as np

from numba import njit

from ._choices import check_shape_parameter

# Integer codes understood by the numba dispatchers below.
CODE_L21 = 0
CODE_L1 = 1
CODE_MCP = 2
CODE_SCAD = 3
CODE_LQ = 4
CODE_LOG = 5

_INF = np.inf


# --------------------------------------------------------------------------
# Scalar (radial) functions, x >= 0 is a block norm.
# --------------------------------------------------------------------------
@njit(cache=True)
def scalar_value(code, x, alpha, param):
    """Penalty value φ(x) of a block of norm ``x`` (elementwise L1: ``alpha*x``)."""
    if x == 0.0:
        return 0.0
    if not math.isfinite(alpha):
        return _INF
    if code == CODE_L21 or code == CODE_L1:
        return alpha * x
    if code == CODE_MCP:
        gamma = param
        if x <= gamma * alpha:
            return alpha * x - x * x / (2.0 * gamma)
        return 0.5 * gamma * alpha * alpha
    if code == CODE_SCAD:
        gamma = param
        if x <= alpha:
            return alpha * x
        if x <= gamma * alpha:
            return (2.0 * gamma * alpha * x - x * x - alpha * alpha) / (2.0 * (gamma - 1.0))
        return 0.5 * alpha * alpha * (gamma + 1.0)
    if code == CODE_LQ:
        return alpha * x ** param
    if code == CODE_LOG:
        return alpha * math.log1p(x / param)
    return _INF


@njit(cache=True)
def scalar_derivative(code, x, alpha, param):
    """Derivative φ'(x) for ``x > 0``."""
    if code == CODE_L21 or code == CODE_L1:
        return alpha
    if code == CODE_MCP:
        return max(alpha - x / param, 0.0)
    if code == CODE_SCAD:
        gamma = param
        if x <= alpha:
            return alpha
        if x <= gamma * alpha:
            return (gamma * alpha - x) / (gamma - 1.0)
        return 0.0
    if code == CODE_LQ:
        return alpha * param * x ** (param - 1.0)
    if code == CODE_LOG:
        return alpha / (param + x)
    return 0.0


@njit(cache=True)
def radius_at_zero(code, alpha, param):
    """Radius of the (Clarke) subdifferential ball of the penalty at zero."""
    if code == CODE_LQ:
        return _INF  # Lq quasi-norms: infinite slope at 0, any gradient is "optimal"
    if code == CODE_LOG:
        return alpha / param
    return alpha


@njit(cache=True)
def _prox_objective(code, x, z, alpha, param, step):
    # Objective of the 1-D prox problem, used to pick among candidate minima.
    return 0.5 * (x - z) * (x - z) / step + scalar_value(code, x, alpha, param)


@njit(cache=True)
def _best_of(code, cands, n_cands, z, alpha, param, step):
    best = 0.0
    best_val = 0.5 * z * z / step  # value at x = 0; ties keep the sparser point
    for i in range(n_cands):
        x = cands[i]
        if x <= 0.0:
            continue
        val = _prox_objective(code, x, z, alpha, param, step)
        if val < best_val:
            best_val = val
            best = x
    return best


_TWO_THIRDS = 2.0 / 3.0


@njit(cache=True)
def _l05_stationary(z, alpha, step):
    """Largest stationary point of ``(x−z)²/(2 step) + alpha·sqrt(x)`` (0 if none).

    With ``u = sqrt(x)`` it is the largest root of the depressed cubic
    ``u³ − z u + step·alpha/2 = 0`` (trigonometric form; Xu et al. 2012,
    "L1/2 regularization: a thresholding representation theory").
    """
    if z <= 0.0:
        return 0.0
    arg = -(0.75 * step * alpha / z) * math.sqrt(3.0 / z)
    if arg < -1.0:
        return 0.0  # a single real root, negative: no positive stationary point
    u = 2.0 * math.sqrt(z / 3.0) * math.cos(math.acos(arg) / 3.0)
    return u * u


@njit(cache=True)
def _l23_stationary(z, alpha, step):
    """Largest stationary point of ``(x−z)²/(2 step) + alpha·x^(2/3)`` (0 if none).

    With ``u = x^(1/3)``: ``u⁴ − z u + c = 0``, ``c = 2 step alpha / 3``, solved
    by Ferrari's method (Cao et al. 2013, L2/3 thresholding): ``m`` the
    positive root of the resolvent ``m³ − c m − z²/8 = 0``, ``A = sqrt(2m)``,
    ``u = (A + sqrt(2z/A − A²)) / 2``.
    """
    if z <= 0.0:
        return 0.0
    c = 2.0 * step * alpha / 3.0
    p3 = c / 3.0
    qh = z * z / 16.0
    disc = qh * qh - p3 * p3 * p3
    if disc >= 0.0:
        sq = math.sqrt(disc)
        m = (qh + sq) ** (1.0 / 3.0) + max(qh - sq, 0.0) ** (1.0 / 3.0)
    else:
        m = 2.0 * math.sqrt(p3) * math.cos(math.acos(min(qh / (p3 * math.sqrt(p3)), 1.0)) / 3.0)
    if m <= 0.0:
        return 0.0
    a = math.sqrt(2.0 * m)
    inner = 2.0 * z / a - a * a
    if inner < 0.0:
        return 0.0
    u = 0.5 * (a + math.sqrt(inner))
    return u * u * u


@njit(cache=True)
def scalar_prox(code, z, alpha, param, step):
    """Proximal operator of ``step * φ`` at ``z >= 0`` (global minimiser).

    Non-convex penalties are handled by evaluating the 1-D objective at every
    candidate (stationary points of each smooth piece, clipped to the piece,
    and the breakpoints) so no condition on ``gamma`` versus ``step`` is needed.
    """
    if z <= 0.0 or not math.isfinite(alpha):
        return 0.0
    if alpha == 0.0:
        return z
    if code == CODE_L21 or code == CODE_L1:
        return max(z - step * alpha, 0.0)
    cands = np.empty(6)
    if code == CODE_MCP:
        gamma = param
        knot = gamma * alpha
        n = 0
        if step < gamma:
            x = (z - step * alpha) / (1.0 - step / gamma)
            cands[n] = min(max(x, 0.0), knot)
            n += 1
        cands[n] = knot
        n += 1
        cands[n] = max(z, knot)
        n += 1
        return _best_of(code, cands, n, z, alpha, param, step)
    if code == CODE_SCAD:
        gamma = param
        knot = gamma * alpha
        n = 0
        cands[n] = min(max(z - step * alpha, 0.0), alpha)
        n += 1
        cands[n] = alpha
        n += 1
        if gamma - 1.0 > step:
            x = ((gamma - 1.0) * z - step * gamma * alpha) / (gamma - 1.0 - step)
            cands[n] = min(max(x, alpha), knot)
            n += 1
        cands[n] = knot
        n += 1
        cands[n] = max(z, knot)
        n += 1
        return _best_of(code, cands, n, z, alpha, param, step)
    if code == CODE_LQ:
        q = param
        if q == 0.5 or q == _TWO_THIRDS:
            # closed forms (half / two-thirds thresholding), one Newton polish
            if q == 0.5:
                x = _l05_stationary(z, alpha, step)
            else:
                x = _l23_stationary(z, alpha, step)
            if x <= 0.0:
                return 0.0
            hess = 1.0 / step + alpha * q * (q - 1.0) * x ** (q - 2.0)
            if hess > 0.0:
                x_new = x - ((x - z) / step + alpha * q * x ** (q - 1.0)) / hess
                if x_new > 0.0:
                    x = x_new
            cands[0] = x
            return _best_of(code, cands, 1, z, alpha, param, step)
        # h'(x) = (x - z)/step + alpha q x^(q-1) is concave-decreasing then
        # convex-increasing; the inflection point is x_inf.
        x_inf = (alpha * q * (1.0 - q) * step) ** (1.0 / (2.0 - q))
        if z <= x_inf:
            return 0.0
        if (x_inf - z) / step + alpha * q * x_inf ** (q - 1.0) >= 0.0:
            return 0.0  # h increasing on (0, inf): 0 is the minimiser
        # Newton from the right on the convex increasing part of h' converges
        # monotonically to the largest stationary point.
        x = z
        for _ in range(100):
            grad = (x - z) / step + alpha * q * x ** (q - 1.0)
            hess = 1.0 / step + alpha * q * (q - 1.0) * x ** (q - 2.0)
            x_new = x - grad / hess
            if x_new <= x_inf:
                x_new = 0.5 * (x + x_inf)
            if abs(x_new - x) <= 1e-15 * x:
                x = x_new
                break
            x = x_new
        cands[0] = x
        return _best_of(code, cands, 1, z, alpha, param, step)
    if code == CODE_LOG:
        eps = param
        # Stationary points solve x^2 + (eps - z) x + step*alpha - z*eps = 0.
        disc = (z + eps) * (z + eps) - 4.0 * step * alpha
        if disc < 0.0:
            return 0.0
        cands[0] = 0.5 * ((z - eps) + math.sqrt(disc))
        return _best_of(code, cands, 1, z, alpha, param, step)
    return 0.0


# --------------------------------------------------------------------------
# Block functions (flattened block = 1-D array of n_orient * n_times values).
# --------------------------------------------------------------------------
@njit(cache=True)
def _norm(vec):
    s = 0.0
    for i in range(vec.shape[0]):
        s += vec[i] * vec[i]
    return math.sqrt(s)


@njit(cache=True)
def block_value(code, block, alpha, param):
    """Penalty value of one flattened block."""
    if code == CODE_L1:
        s = 0.0
        for i in range(block.shape[0]):
            s += abs(block[i])
        if s == 0.0:
            return 0.0
        return alpha * s if math.isfinite(alpha) else _INF
    return scalar_value(code, _norm(block), alpha, param)


@njit(cache=True)
def block_prox(code, block, alpha, param, step, out):
    """Write ``prox_{step * p}(block)`` into ``out`` (may alias ``block``).

    Returns True when the result is non-zero.
    """
    if code == CODE_L1:
        thresh = step * alpha
        nonzero = False
        for i in range(block.shape[0]):
            v = block[i]
            a = abs(v) - thresh
            if a > 0.0:
                out[i] = a if v > 0.0 else -a
                nonzero = True
            else:
                out[i] = 0.0
        return nonzero
    nrm = _norm(block)
    new = scalar_prox(code, nrm, alpha, param, step)
    if new <= 0.0:  # also covers nrm == 0: never divide by a zero norm
        for i in range(block.shape[0]):
            out[i] = 0.0
        return False
    scale = new / nrm
    for i in range(block.shape[0]):
        out[i] = block[i] * scale
    return True


@njit(cache=True)
def block_subdiff_distance(code, block, grad, alpha, param):
    """Distance of ``-grad`` to the (Clarke) subdifferential of p at ``block``."""
    if code == CODE_L1:
        s = 0.0
        for i in range(block.shape[0]):
            if block[i] == 0.0:
                d = max(abs(grad[i]) - alpha, 0.0)
            elif block[i] > 0.0:
                d = grad[i] + alpha
            else:
                d = grad[i] - alpha
            s += d * d
        return math.sqrt(s)
    nrm = _norm(block)
    if nrm == 0.0:
        return max(_norm(grad) - radius_at_zero(code, alpha, param), 0.0)
    deriv = scalar_derivative(code, nrm, alpha, param) / nrm
    s = 0.0
    for i in range(block.shape[0]):
        d = grad[i] + deriv * block[i]
        s += d * d
    return math.sqrt(s)


@njit(cache=True)
def block_fixed_point_score(code, block, grad, alpha, param, lipschitz):
    """``L_k · ‖B_k − prox_{p/L_k}(B_k − ∇_k / L_k)‖`` (gradient units)."""
    if lipschitz <= 0.0:
        return 0.0
    step = 1.0 / lipschitz
    tmp = np.empty(block.shape[0])
    for i in range(block.shape[0]):
        tmp[i] = block[i] - step * grad[i]
    block_prox(code, tmp, alpha, param, step, tmp)
    s = 0.0
    for i in range(block.shape[0]):
        d = block[i] - tmp[i]
        s += d * d
    return lipschitz * math.sqrt(s)


@njit(cache=True)
def block_dual_ratio(code, grad, alpha):
    """Dual norm of a block gradient divided by its regularisation.

    L2,1: ‖g_k‖_F / α_k; L1: ‖g_k‖_∞ / α_k.  Infinite α_k (excluded block) → 0;
    α_k = 0 (an unpenalised block, or a weight times α that underflowed) → ∞
    unless the gradient is zero (no dual point but 0 fits it).
    """
    if not math.isfinite(alpha):
        return 0.0
    if code == CODE_L1:
        m = 0.0
        for i in range(grad.shape[0]):
            m = max(m, abs(grad[i]))
    else:
        m = _norm(grad)
    if alpha <= 0.0:
        return math.inf if m > 0.0 else 0.0
    return m / alpha


@njit(cache=True)
def has_metric_prox(code):
    """Whether :func:`block_prox_metric` minimises a block exactly for ``code``.

    Only L2,1 (plain or weighted): its block problem in the metric of the
    block's Gram matrix is a one-dimensional secular equation.  For the
    other penalties the solver keeps the proximal gradient step: tried with
    the non-convex radial penalties (roots of the stationarity equation in μ),
    block minimisation in the metric reached other stationary points that are
    not fixed points of the isotropic proximal gradient map, which the
    stopping criterion and SURE's implicit differentiation are built on (an
    MCP solve ran into the epoch cap, the L0.5 SURE choice moved away from the
    grid minimum).  For a convex penalty both sets are the minimisers.
    """
    return code == CODE_L21


@njit(cache=True)
def block_prox_metric(code, c_rot, evals, alpha, n_times, out_rot):
    """Exact block minimiser ``argmin_b ½ bᵀ(A ⊗ I_T)b − cᵀb + α‖b‖_F`` (L2,1).

    Works in the eigenbasis of the block's Gram matrix ``A = V diag(e) Vᵀ``
    (``n_orient × n_orient``), where ``‖b‖_F`` is unchanged: with ``c' = Vᵀc``
    the minimiser is ``b'_i = c'_i / (e_i + μ)``, ``μ = α / ‖b‖_F``, and μ
    is the root of ``μ ‖b(μ)‖ = α`` (bracketed by the isotropic solutions
    for the smallest and largest eigenvalue, safeguarded Newton).

    Parameters
    ----------
    code : int
        Penalty code (only ``CODE_L21`` is handled; see :func:`has_metric_prox`).
    c_rot : array, shape (n_orient * n_times,)
        ``Vᵀ(A b_old − ∇_k)`` row by row (rotated orientation × time).
    evals : array, shape (n_orient,)
        Eigenvalues of the block Gram matrix (≥ 0).
    alpha : float
    n_times : int
    out_rot : array, shape (n_orient * n_times,)
        The minimiser in the rotated basis (written).

    Returns
    -------
    nonzero : bool
    """
    n_orient = evals.shape[0]
    e_max = evals.max()
    sq = np.zeros(n_orient)
    total = 0.0
    for i in range(n_orient):
        if not evals[i] > 1e-12 * e_max:
            # A direction the gain does not see (rank-deficient block): c has
            # only rounding there and the minimiser nothing (the penalty grows).
            for t in range(n_times):
                c_rot[i * n_times + t] = 0.0
            continue
        s = 0.0
        for t in range(n_times):
            v = c_rot[i * n_times + t]
            s += v * v
        sq[i] = s
        total += s
    c_norm = math.sqrt(total)
    if not c_norm > alpha:  # also α = inf (excluded block)
        for j in range(out_rot.shape[0]):
            out_rot[j] = 0.0
        return False
    e_min = evals.min()
    lo = max(alpha * e_min / (c_norm - alpha), 0.0)
    hi = alpha * e_max / (c_norm - alpha)
    mu = hi
    if alpha > 0.0:
        for _ in range(60):
            # h(μ) = μ‖b(μ)‖ − α, increasing; h' from S(μ) = Σ n_i μ²/(e_i+μ)².
            s_val = 0.0
            s_der = 0.0
            for i in range(n_orient):
                den = evals[i] + mu
                if den <= 0.0:
                    continue
                r = mu / den
                s_val += sq[i] * r * r
                # as ratios ≤ 1 over one den > 0: den³ underflows for tiny α
                s_der += 2.0 * sq[i] * r * (evals[i] / den) / den
            root = math.sqrt(s_val)
            h = root - alpha
            if abs(h) <= 1e-14 * alpha:
                break
            if h > 0.0:
                hi = mu
            else:
                lo = mu
            slope = s_der / (2.0 * root) if root > 0.0 else 0.0
            nxt = mu - h / slope if slope > 0.0 else -1.0
            if not lo < nxt < hi:
                nxt = 0.5 * (lo + hi)
            if nxt == mu or hi - lo <= 1e-15 * hi:
                mu = nxt
                break
            mu = nxt
    for i in range(n_orient):
        den = evals[i] + mu
        inv = 1.0 / den if den > 0.0 else 0.0
        for t in range(n_times):
            out_rot[i * n_times + t] = c_rot[i * n_times + t] * inv
    return True


# --------------------------------------------------------------------------
# Vectorised helpers over all blocks (block layout, one row per block).
# --------------------------------------------------------------------------
@njit(cache=True)
def penalty_value(code, coef_blocks, alphas, param):
    """Sum of the block penalties."""
    s = 0.0
    for k in range(coef_blocks.shape[0]):
        s += block_value(code, coef_blocks[k], alphas[k], param)
    return s


@njit(cache=True)
def optimality_scores(code, coef_blocks, grad_blocks, alphas, param, lipschitz,
                      fixed_point):
    """Per-block violation: subdifferential distance or fixed-point score."""
    n_blocks = coef_blocks.shape[0]
    out = np.zeros(n_blocks)
    for k in range(n_blocks):
        if fixed_point:
            out[k] = block_fixed_point_score(code, coef_blocks[k], grad_blocks[k],
                                             alphas[k], param, lipschitz[k])
        else:
            if lipschitz[k] <= 0.0 and _norm(coef_blocks[k]) == 0.0:
                continue  # a zero column can never enter the model
            out[k] = block_subdiff_distance(code, coef_blocks[k], grad_blocks[k],
                                            alphas[k], param)
    return out


@njit(cache=True)
def dual_ratios(code, grad_blocks, alphas):
    """Per-block ratio dual-norm(∇_k) / α_k (convex penalties)."""
    n_blocks = grad_blocks.shape[0]
    out = np.zeros(n_blocks)
    for k in range(n_blocks):
        out[k] = block_dual_ratio(code, grad_blocks[k], alphas[k])
    return out


@njit(cache=True)
def correlation_scores(code, param, corr_t, coef_blocks, support, alphas, lipschitz,
                       fixed_point, n_orient):
    """Everything the outer loop needs from the full correlation, in one pass.

    The datafit gradient of block ``k`` is ``−(RᵀG)[:, block k]ᵀ``; reading it
    straight from ``corr_t = RᵀG`` saves the transposed copy, and blocks off
    the support are scored at zero without reading their (zero) coefficients.

    Parameters
    ----------
    code, param : int, float
    corr_t : array, shape (n_times, n_blocks * n_orient)
        ``RᵀG``.
    coef_blocks : array, shape (n_blocks, n_orient * n_times)
        Only the rows of ``support`` are read.
    support : array of bool, shape (n_blocks,)
        Blocks that may be non-zero.
    alphas, lipschitz : arrays, shape (n_blocks,)
    fixed_point : bool
        Fixed-point scores (else subdifferential distances), as
        :func:`optimality_scores`.
    n_orient : int

    Returns
    -------
    scores : array, shape (n_blocks,)
        As :func:`optimality_scores`.
    ratios : array, shape (n_blocks,)
        As :func:`dual_ratios`.
    grad_ratios : array, shape (n_blocks,)
        ``‖∇_k‖/α_k`` (0 where not finite, −1 for all-zero gain columns), to
        rank blocks.
    value : float
        Penalty value of the coefficients.
    """
    n_times = corr_t.shape[0]
    n_blocks = corr_t.shape[1] // n_orient
    size = n_orient * n_times
    grad = np.empty(size)
    zero = np.zeros(size)
    scores = np.zeros(n_blocks)
    ratios = np.zeros(n_blocks)
    grad_ratios = np.zeros(n_blocks)
    value = 0.0
    for k in range(n_blocks):
        sq = 0.0
        for a in range(n_orient):
            col = k * n_orient + a
            for t in range(n_times):
                g = -corr_t[t, col]
                grad[a * n_times + t] = g
                sq += g * g  # ‖∇_k‖², in _norm's order
        if not support[k] and not fixed_point and code != CODE_L1:
            # Zero block of a radial penalty (most blocks): the three scores
            # from the one norm (the calls below would compute it three times).
            nrm = math.sqrt(sq)
            alpha = alphas[k]
            if lipschitz[k] > 0.0:
                scores[k] = max(nrm - radius_at_zero(code, alpha, param), 0.0)
            if not math.isfinite(alpha):
                ratios[k] = 0.0
            elif alpha <= 0.0:
                ratios[k] = math.inf if nrm > 0.0 else 0.0
            else:
                ratios[k] = nrm / alpha
            if lipschitz[k] <= 0.0:
                grad_ratios[k] = -1.0
            elif alpha > 0.0 and math.isfinite(alpha):
                grad_ratios[k] = nrm / alpha
            continue
        coef_k = coef_blocks[k] if support[k] else zero
        if support[k]:
            value += block_value(code, coef_k, alphas[k], param)
        if fixed_point:
            scores[k] = block_fixed_point_score(code, coef_k, grad, alphas[k], param,
                                                lipschitz[k])
        elif lipschitz[k] > 0.0 or support[k]:
            scores[k] = block_subdiff_distance(code, coef_k, grad, alphas[k], param)
        ratios[k] = block_dual_ratio(code, grad, alphas[k])
        if lipschitz[k] <= 0.0:
            grad_ratios[k] = -1.0
        elif alphas[k] > 0.0 and math.isfinite(alphas[k]):
            grad_ratios[k] = _norm(grad) / alphas[k]
    return scores, ratios, grad_ratios, value


@njit(cache=True)
def block_norms(coef_blocks):
    """Frobenius norm of every block."""
    out = np.empty(coef_blocks.shape[0])
    for k in range(coef_blocks.shape[0]):
        out[k] = _norm(coef_blocks[k])
    return out


# --------------------------------------------------------------------------
# Python-level penalty objects.
# --------------------------------------------------------------------------
class BlockPenalty:
    """Base class: a penalty is parameters plus an integer code.

    Parameters
    ----------
    alpha : float
        Regularisation strength, > 0.
    weights : array, shape (n_blocks,) | None
        Optional positive per-block weights; the regularisation of block ``k``
        is ``alpha * weights[k]``.  ``np.inf`` excludes a block (forced to 0).
    """

    name = None
    code = None
    is_convex = False
    #: True when the stopping/ranking criterion is the fixed-point score
    #: (subdifferential distance at 0 is useless or the problem is non-convex).
    uses_fixed_point = True
    #: True for the weakly convex non-convex penalties (bounded negative
    #: curvature, ``|φ''| ≤ 1/γ``: MCP, SCAD): once BCD has settled on a support,
    #: the solver may finish with Newton steps on it (see
    #: ``solvers.working_set._epochs``).  Not for Lq and log-sum, whose
    #: curvature is unbounded near zero: there Newton steps met saddles and
    #: other basins (log-sum on the sample average: objective +20 at 0.3 λ_max).
    newton_on_support = False
    param = 0.0

    def __init__(self, alpha, weights=None):
        alpha = float(alpha)
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        self.alpha = alpha
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.ndim != 1:
                raise ValueError("weights must be a 1-D array of per-block weights")
            if np.isnan(weights).any() or (weights <= 0).any():
                raise ValueError("weights must be > 0 (use np.inf to exclude a block)")
        self.weights = weights

    # -- parameters consumed by the numba kernels ---------------------------
    def block_alphas(self, n_blocks):
        """Per-block regularisation ``alpha * weights`` as a float64 array."""
        if self.weights is None:
            return np.full(n_blocks, self.alpha)
        if self.weights.shape[0] != n_blocks:
            raise ValueError(
                f"penalty has {self.weights.shape[0]} weights but the problem has "
                f"{n_blocks} blocks (sources)")
        return self.alpha * self.weights

    def with_alpha(self, alpha):
        """Copy of the penalty with another ``alpha`` (same weights/params)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        alpha = float(alpha)
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        new.alpha = alpha
        return new

    def _alpha_k(self, block_index):
        if self.weights is None:
            return self.alpha
        return self.alpha * self.weights[block_index]

    # -- user-facing helpers ------------------------------------------------
    def value(self, coef, n_orient=1):
        """Penalty value.

        Parameters
        ----------
        coef : array, shape (n_sources * n_orient, n_times) | (n_sources,)
            Coefficients, or (1-D, not for L1) the block norms.
        n_orient : int
            Rows per block (ignored for block norms).
        """
        coef = np.asarray(coef, dtype=np.float64)
        if coef.ndim == 1:
            if self.code == CODE_L1:
                raise ValueError("the L1 penalty needs the coefficients, not block norms")
            blocks = np.ascontiguousarray(coef[:, None])
        else:
            blocks = _as_blocks(coef, n_orient)
        return penalty_value(self.code, blocks, self.block_alphas(blocks.shape[0]),
                             self.param)

    def prox(self, block, step, block_index=0):
        """Proximal operator of ``step * p`` applied to one block (any shape)."""
        block = np.asarray(block, dtype=np.float64)
        flat = np.ascontiguousarray(block).ravel()
        out = np.empty_like(flat)
        block_prox(self.code, flat, self._alpha_k(block_index), self.param,
                   float(step), out)
        return out.reshape(block.shape)

    def subdiff_distance(self, block, grad, block_index=0):
        """Distance of ``-grad`` to the subdifferential at ``block``."""
        return block_subdiff_distance(
            self.code, np.ascontiguousarray(block, dtype=np.float64).ravel(),
            np.ascontiguousarray(grad, dtype=np.float64).ravel(),
            self._alpha_k(block_index), self.param)

    def fixed_point_score(self, block, grad, lipschitz, block_index=0):
        """``L·‖B − prox_{p/L}(B − grad/L)‖`` for one block."""
        return block_fixed_point_score(
            self.code, np.ascontiguousarray(block, dtype=np.float64).ravel(),
            np.ascontiguousarray(grad, dtype=np.float64).ravel(),
            self._alpha_k(block_index), self.param, float(lipschitz))

    def support(self, coef, n_orient=1):
        """Boolean mask over rows: True where the row's block is non-zero."""
        blocks = _as_blocks(np.asarray(coef, dtype=np.float64), n_orient)
        nz = np.any(blocks != 0, axis=1)
        return np.repeat(nz, n_orient)

    def __repr__(self):
        extra = "" if self.weights is None else ", weighted"
        par = "" if self.code in (CODE_L21, CODE_L1) else f", {self._param_name}={self.param:g}"
        return f"{type(self).__name__}(alpha={self.alpha:g}{par}{extra})"

    _param_name = "param"


def _as_blocks(coef, n_orient):
    """(n_blocks*n_orient, n_times) → C-contiguous (n_blocks, n_orient*n_times)."""
    if coef.ndim != 2 or coef.shape[0] % n_orient:
        raise ValueError(
            f"coef must have shape (n_sources * n_orient, n_times), got {coef.shape} "
            f"with n_orient={n_orient}")
    coef = np.ascontiguousarray(coef)
    return coef.reshape(coef.shape[0] // n_orient, -1)


class L21(BlockPenalty):
    """Group Lasso / MxNE penalty ``alpha * Σ_k w_k ‖B_k‖_F`` (convex)."""

    name = "l21"
    code = CODE_L21
    is_convex = True
    uses_fixed_point = False


class WeightedL21(L21):
    """L2,1 with per-block weights (``weights`` required)."""

    name = "weighted_l21"

    def __init__(self, alpha, weights=None):
        if weights is None:
            raise ValueError("weighted_l21 needs weights=array of shape (n_sources,)")
        super().__init__(alpha, weights)


class L1(BlockPenalty):
    """Elementwise Lasso ``alpha * Σ_k w_k Σ |B_k|`` (convex)."""

    name = "l1"
    code = CODE_L1
    is_convex = True
    uses_fixed_point = False


class BlockMCP(BlockPenalty):
    """Block minimax concave penalty on ``‖B_k‖_F`` (``gamma > 0``)."""

    name = "mcp"
    code = CODE_MCP
    newton_on_support = True
    _param_name = "gamma"

    def __init__(self, alpha, gamma=3.0, weights=None):
        super().__init__(alpha, weights)
        check_shape_parameter("mcp", gamma)
        self.param = float(gamma)


class BlockSCAD(BlockPenalty):
    """Block SCAD penalty on ``‖B_k‖_F`` (``gamma > 2``)."""

    name = "scad"
    code = CODE_SCAD
    newton_on_support = True
    _param_name = "gamma"

    def __init__(self, alpha, gamma=3.7, weights=None):
        super().__init__(alpha, weights)
        check_shape_parameter("scad", gamma)
        self.param = float(gamma)


class BlockLq(BlockPenalty):
    """Block Lq quasi-norm ``alpha * Σ_k ‖B_k‖_F^q`` with ``0 < q < 1``."""

    name = "lq"
    code = CODE_LQ
    _param_name = "q"

    def __init__(self, alpha, q=0.5, weights=None):
        super().__init__(alpha, weights)
        if not 0 < q < 1:
            raise ValueError(f"Lq needs 0 < q < 1, got {q!r}")
        self.param = float(q)


class BlockL05(BlockLq):
    """Block L0.5 quasi-norm (the penalty irMxNE approximates)."""

    name = "l05"

    def __init__(self, alpha, weights=None):
        super().__init__(alpha, q=0.5, weights=weights)


class BlockL23(BlockLq):
    """Block L2/3 quasi-norm."""

    name = "l23"

    def __init__(self, alpha, weights=None):
        super().__init__(alpha, q=2.0 / 3.0, weights=weights)


class BlockLog(BlockPenalty):
    """Block log-sum penalty ``alpha * Σ_k log(1 + ‖B_k‖_F / eps)``."""

    name = "log"
    code = CODE_LOG
    _param_name = "eps"

    def __init__(self, alpha, eps=1.0, weights=None):
        super().__init__(alpha, weights)
        check_shape_parameter("log", eps)
        self.param = float(eps)


class IterativeReweightedL21:
    """irMxNE strategy: a sequence of weighted L2,1 problems (MM for L0.5).

    Not a penalty the BCD engine runs directly: :func:`meeg_inverse.solvers.solve`
    dispatches it to :func:`meeg_inverse.solvers.irmxne`.  The surrogate is
    the block L0.5 quasi-norm ``alpha * Σ_k ‖B_k‖_F^0.5``, majorised at the
    previous iterate by ``alpha * Σ_k ‖B_k‖ / (2 sqrt(‖B_k^{prev}‖))``.
    """

    name = "irmxne"
    is_convex = False
    is_strategy = True

    def __init__(self, alpha, n_iter=10, weights=None):
        alpha = float(alpha)
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        if int(n_iter) < 1:
            raise ValueError("n_iter must be >= 1")
        self.alpha = alpha
        self.n_iter = int(n_iter)
        self.weights = None if weights is None else np.asarray(weights, float)

    def with_alpha(self, alpha):
        return IterativeReweightedL21(alpha, self.n_iter, self.weights)

    def objective_penalty(self):
        """The L0.5 penalty the strategy minimises (for values and KKT)."""
        return BlockL05(self.alpha)

    def __repr__(self):
        return f"IterativeReweightedL21(alpha={self.alpha:g}, n_iter={self.n_iter})"


PENALTIES = {
    "l21": L21,
    "weighted_l21": WeightedL21,
    "l1": L1,
    "mcp": BlockMCP,
    "scad": BlockSCAD,
    "l05": BlockL05,
    "l23": BlockL23,
    "log": BlockLog,
    "irmxne": IterativeReweightedL21,
}


def make_penalty(name, alpha, **params):
    """Build a penalty by name.

    Parameters
    ----------
    name : str
        One of ``PENALTIES``: "l21", "weighted_l21", "l1", "mcp", "scad",
        "l05", "l23", "log", "irmxne".
    alpha : float
        Regularisation strength (> 0).
    **params
        Penalty parameters: ``gamma`` (mcp, scad), ``eps`` (log), ``weights``
        (all but irmxne-specific), ``n_iter`` (irmxne).

    Returns
    -------
    penalty : BlockPenalty | IterativeReweightedL21
    """
    if not isinstance(name, str) or name.lower() not in PENALTIES:
        raise ValueError(
            f"unknown penalty {name!r}; valid names are: {', '.join(PENALTIES)}")
    cls = PENALTIES[name.lower()]
    try:
        return cls(alpha, **params)
    except TypeError as err:
        raise ValueError(f"bad parameters for penalty {name!r}: {err}") from None
