"""Newton algebra on the support of a block-sparse solution.

On a fixed support ``S`` a stationary point of ``½‖Y − G B‖² + Σ_k φ(‖B_k‖)``
solves the smooth equations::

    G_Sᵀ (G_S B_S − Y) + ∇Φ(B_S) = 0,    ∇Φ(B_k) = φ'(r_k) B_k / r_k,  r_k = ‖B_k‖_F

whose Jacobian is ``G_SᵀG_S ⊗ I_T + ∇²Φ(B_S)``.  The block Hessian of a radial
penalty is ``a_k (I − u_k u_kᵀ) + φ''(r_k) u_k u_kᵀ`` with ``a_k = φ'(r_k)/r_k``
and ``u_k = B_k / r_k``: a row-wise matrix ``M = G_SᵀG_S + diag(a)`` (size
``|S|·n_orient``) plus a rank-``|S|`` correction, solved exactly with the
Woodbury identity — never a system on the full source space.

Two users: the solver (:func:`newton_candidate`, Newton steps once BCD has
settled on a support, where its convergence is linear and slow for the
non-convex penalties) and SURE (implicit differentiation and polishing, see
:mod:`meeg_inverse.sure`).
"""

import numpy as np
from scipy import linalg

from ..penalties import CODE_L1, CODE_L21, CODE_LOG, CODE_LQ, CODE_MCP, CODE_SCAD, block_norms

__all__ = ["SupportSystem", "newton_candidate", "radial_terms"]


def radial_terms(code, r, alpha_k, param):
    """φ'(r), φ''(r) and ∂φ'(r)/∂α_k for block norms ``r > 0`` (arrays)."""
    r = np.asarray(r, float)
    alpha_k = np.broadcast_to(np.asarray(alpha_k, float), r.shape)
    zero = np.zeros_like(r)
    if code == CODE_L21 or code == CODE_L1:
        return alpha_k.copy(), zero, np.ones_like(r)
    if code == CODE_MCP:
        inside = r < param * alpha_k
        d1 = np.where(inside, alpha_k - r / param, 0.0)
        d2 = np.where(inside, -1.0 / param, 0.0)
        da = np.where(inside, 1.0, 0.0)
        return d1, d2, da
    if code == CODE_SCAD:
        g = param
        reg1 = r <= alpha_k
        reg2 = (r > alpha_k) & (r <= g * alpha_k)
        d1 = np.where(reg1, alpha_k, np.where(reg2, (g * alpha_k - r) / (g - 1.0), 0.0))
        d2 = np.where(reg2, -1.0 / (g - 1.0), 0.0)
        da = np.where(reg1, 1.0, np.where(reg2, g / (g - 1.0), 0.0))
        return d1, d2, da
    if code == CODE_LQ:
        q = param
        return (alpha_k * q * r ** (q - 1.0), alpha_k * q * (q - 1.0) * r ** (q - 2.0),
                q * r ** (q - 1.0))
    if code == CODE_LOG:
        e = param
        return alpha_k / (e + r), -alpha_k / (e + r) ** 2, 1.0 / (e + r)
    raise ValueError(f"no radial derivatives for penalty code {code}")


class SupportSystem:
    """Jacobian of the support's stationarity equations, solved by Woodbury.

    Parameters
    ----------
    gram : array, shape (|S|·n_orient, |S|·n_orient)
        ``G_SᵀG_S`` (rows of each block consecutive).
    blocks : array, shape (|S|, n_orient, n_times)
        The point (every block non-zero).
    alphas : array, shape (|S|,)
        The blocks' regularisation (weights included).
    code, param : int, float
        Penalty code and parameter (``BlockPenalty.code`` / ``.param``).
    """

    def __init__(self, gram, blocks, alphas, code, param):
        s, o, t = blocks.shape
        self.n_orient, self.n_times = o, t
        self.pen_code, self.pen_param = code, param
        self.alphas = alphas
        r = np.sqrt((blocks ** 2).sum(axis=(1, 2)))
        self.u = blocks / r[:, None, None]  # (s, o, T)
        d1, d2, da = radial_terms(code, r, alphas, param)
        self.d1, self.da = d1, da
        a = d1 / r
        self.c = d2 - a  # radial correction (rank one per block)
        m = np.array(gram, dtype=np.float64, copy=True)
        m[np.diag_indices_from(m)] += np.repeat(a, o)
        try:
            factor = linalg.cho_factor(m, check_finite=False)
            self.minv = linalg.cho_solve(factor, np.eye(len(m)), check_finite=False)
            self.m_positive_definite = True
        except linalg.LinAlgError:
            self.m_positive_definite = False
            try:
                self.minv = linalg.inv(m, check_finite=False)
            except linalg.LinAlgError:
                self.minv = linalg.pinv(m)
        # S_jk = U_jᵀ M⁻¹ U_k (U_k: u_k embedded in block k) = Σ_{o,o'} M⁻¹_{jo,ko'}
        # (Σ_t u_j[o,t] u_k[o',t]): from (|S|·o)² matrices. The W_k = M⁻¹ U_k
        # themselves, an (|S|, |S|·o, T) array, are never formed (243 MB for 155
        # free-orientation sources and 421 samples).
        uf = self.u.reshape(s * o, t)
        self.s_mat = (self.minv * (uf @ uf.T)).reshape(s, o, s, o).sum(axis=(1, 3))
        self.small = np.eye(s) + self.c[:, None] * self.s_mat

    def is_positive_definite(self):
        """Whether the Jacobian is positive definite: a strict local minimum on the support.

        ``H = M ⊗ I_T + Σ_k c_k ũ_k ũ_kᵀ`` with ``c_k = φ''(r_k) − φ'(r_k)/r_k ≤ 0``
        for every penalty here, so (``M`` positive definite) ``H`` is positive
        definite iff ``I − D S D`` is, ``D = diag(√−c)``, ``S_jk = ũ_jᵀ M⁻¹ ũ_k``
        (an |S|×|S| matrix).  Newton's method on the stationarity equations is
        attracted by saddle points too; BCD is not.
        """
        if not self.m_positive_definite:
            return False
        d = np.sqrt(np.maximum(-self.c, 0.0))
        reduced = np.eye(d.size) - d[:, None] * self.s_mat * d[None, :]
        return bool(np.linalg.eigvalsh(0.5 * (reduced + reduced.T))[0] > 0)

    def solve(self, rhs):
        """Solve the support system for ``rhs`` of shape (|S|·o, T)."""
        s, o, t = self.u.shape
        x0 = self.minv @ rhs
        tt = np.einsum("jot,jot->j", self.u, x0.reshape(s, o, t))
        z = linalg.solve(self.small, self.c * tt, check_finite=False)
        # Σ_k z_k W_k = M⁻¹ Σ_k z_k U_k
        return x0 - self.minv @ (np.repeat(z, o)[:, None] * self.u.reshape(s * o, t))

    def penalty_grad(self, coef_rows=None):
        """∇Φ on the support, at the system's point or at ``coef_rows`` (same support)."""
        u, d1, _ = self._radial(coef_rows)
        return (d1[:, None, None] * u).reshape(-1, self.n_times)

    def dgrad_dlogalpha(self, coef_rows=None):
        """λ ∂_λ ∇Φ on the support, shape (|S|·o, T) (at ``coef_rows`` if given)."""
        u, _, da = self._radial(coef_rows)
        return ((self.alphas * da)[:, None, None] * u).reshape(-1, self.n_times)

    def _radial(self, coef_rows):
        if coef_rows is None:
            return self.u, self.d1, self.da
        s = self.u.shape[0]
        blocks = coef_rows.reshape(s, self.n_orient, self.n_times)
        r = np.sqrt((blocks ** 2).sum(axis=(1, 2)))
        d1, _, da = radial_terms(self.pen_code, r, self.alphas, self.pen_param)
        return blocks / r[:, None, None], d1, da


def newton_candidate(gram, xty, coef_blocks, aux, alphas, code, param, n_orient,
                     max_steps=3, max_halvings=6):
    """Damped Newton steps on the support of ``coef_blocks`` (Gram layout).

    Parameters
    ----------
    gram : array, shape (n_blocks·o, n_blocks·o)
        Gram matrix of the (sub-)problem.
    xty : array, shape (n_blocks, o·T)
        ``GᵀY`` in block layout.
    coef_blocks, aux : arrays, shape (n_blocks, o·T)
        The point and its state ``QB`` (block layout).
    alphas : array, shape (n_blocks,)
    code, param : penalty code and parameter.
    n_orient : int
    max_steps : int
        Newton steps (each with the Jacobian of its own point, which must be
        positive definite at the start and at the end: see
        :meth:`SupportSystem.is_positive_definite`).
    max_halvings : int
        Backtracking on the gradient norm: a step ``t·d`` (t = 1, ½, ¼, …) is
        kept if it lowers ``‖∇‖`` on the support and leaves every block
        non-zero.  Full steps overshoot where a small block of a concave
        penalty sits near zero radial curvature, or crosses a kink of the
        penalty (MCP at ``γα``, SCAD at ``α`` and ``γα``).

    Returns
    -------
    support : array of int
        The non-zero blocks (local indices).
    delta : array, shape (|support|, o·T) | None
        Move of those blocks; None when no step lowered the gradient norm.
    """
    support = np.flatnonzero(block_norms(coef_blocks) > 0)
    if support.size == 0:
        return support, None
    o = n_orient
    t = coef_blocks.shape[1] // o
    rows = (support[:, None] * o + np.arange(o)).ravel()
    gram_s = gram[np.ix_(rows, rows)]
    start = coef_blocks[support].reshape(-1, t)  # (|S|·o, T)
    xty_s = xty[support].reshape(-1, t)
    alphas_s = alphas[support]

    point, moved = start, False
    system = SupportSystem(gram_s, start.reshape(-1, o, t), alphas_s, code, param)
    # aux = QB and B is zero off the support: aux_S = Q_SS B_S.
    grad = aux[support].reshape(-1, t) - xty_s + system.penalty_grad()
    gnorm = np.linalg.norm(grad)
    for it in range(max_steps + 1):
        if not system.is_positive_definite():
            # Near a saddle of the support's objective (concave penalties):
            # leave it to BCD, which moves away from saddles.
            return support, None
        if it == max_steps:
            break
        direction = system.solve(grad)
        if not np.all(np.isfinite(direction)):
            break
        step = 1.0
        for _ in range(max_halvings + 1):
            new = point - step * direction
            if np.all(block_norms(new.reshape(support.size, -1)) > 0):
                g_new = gram_s @ new - xty_s + system.penalty_grad(new)
                g_new_norm = np.linalg.norm(g_new)
                if g_new_norm < (1.0 - 1e-4 * step) * gnorm:
                    break
            step *= 0.5
        else:
            break
        point, grad, gnorm, moved = new, g_new, g_new_norm, True
        system = SupportSystem(gram_s, point.reshape(-1, o, t), alphas_s, code, param)
    if not moved:
        return support, None
    return support, (point - start).reshape(support.size, -1)
