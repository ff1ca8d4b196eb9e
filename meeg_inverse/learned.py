"""An amortized solver learned on a fixed gain: unrolled ISTA with learned step sizes.

A continuous recording solves the same problem ``min_B ½‖Y − G B‖² + λ Σ_k ‖B_k‖``
(block L2,1) for thousands of windows with one gain. Ablin, Moreau, Massias &
Gramfort (2019, "Learning step sizes for unfolded sparse coding", NeurIPS)
unroll ``n_layers`` proximal gradient (ISTA) iterations and learn one step size
per layer, trained without labels by minimizing the objective reached after the
last layer on example data: on sparse solutions steps larger than ``1/L``
(``L = ‖G‖²``) are safe, since only the support's columns matter.

Here the steps are learned with :func:`scipy.optimize.minimize` (L-BFGS-B) on
the gradient obtained by back-propagation through the layers (derived below,
numpy only), on windows of the recording itself. The output is used only as a
**warm start** of the exact solver, which certifies it (duality gap); see
``docs/continuous.md`` for whether it pays off.
"""

import numpy as np

__all__ = ["LearnedSolver"]


class LearnedSolver:
    """Unrolled block-ISTA with learned per-layer step sizes.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources * n_orient)
        Whitened gain.
    n_orient : int
    n_layers : int
        Unrolled iterations.

    Attributes
    ----------
    steps : ndarray, shape (n_layers,)
        Step sizes (start: ``1 / L``, ISTA's).
    lipschitz : float
        ``‖G‖₂²``.
    history : list of float
        Training objective (mean of ``F(B_L) / F(0)``) after each L-BFGS iteration.
    """

    def __init__(self, gain, n_orient, n_layers=8):
        self.gain = gain
        self.n_orient = int(n_orient)
        self.n_layers = int(n_layers)
        self.lipschitz = float(np.linalg.norm(gain, 2) ** 2)
        self.steps = np.full(self.n_layers, 1.0 / self.lipschitz)
        self.history = []

    # ------------------------------------------------------------- layers
    def _blocks(self, x):
        return x.reshape(x.shape[0] // self.n_orient, -1)

    def _forward(self, y, lam, steps, keep=False):
        g = self.gain
        x = np.zeros((g.shape[1], y.shape[1]))
        tape = []
        for s in steps:
            grad = g.T @ (g @ x - y)
            z = x - s * grad
            zb = self._blocks(z)
            nrm = np.sqrt(np.einsum("ij,ij->i", zb, zb))
            shrink = np.where(nrm > lam * s, 1.0 - lam * s / np.maximum(nrm, 1e-300), 0.0)
            if keep:
                tape.append((grad, zb, nrm, shrink))
            x = (zb * shrink[:, None]).reshape(x.shape)
        return x, tape

    def objective(self, x, y, lam):
        """``½‖Y − G B‖² + λ Σ_k ‖B_k‖``."""
        xb = self._blocks(x)
        return 0.5 * float(np.sum((self.gain @ x - y) ** 2)) + lam * float(
            np.sqrt(np.einsum("ij,ij->i", xb, xb)).sum())

    def _value_and_grad(self, steps, y, lam):
        """F(B_L) and dF/d steps by back-propagation through the layers."""
        g = self.gain
        x, tape = self._forward(y, lam, steps, keep=True)
        value = self.objective(x, y, lam)
        xb = self._blocks(x)
        xn = np.sqrt(np.einsum("ij,ij->i", xb, xb))
        gx = g.T @ (g @ x - y)
        gxb = self._blocks(gx) + lam * np.divide(xb, xn[:, None], out=np.zeros_like(xb),
                                                 where=xn[:, None] > 0)
        dsteps = np.zeros_like(steps)
        for layer in range(len(steps) - 1, -1, -1):
            s = steps[layer]
            grad, zb, nrm, shrink = tape[layer]
            on = shrink > 0
            safe = np.where(on, nrm, 1.0)
            # x⁺ = z (1 − λ s / ‖z‖) on active blocks: ∂x⁺/∂s = −λ z / ‖z‖,
            # ∂x⁺/∂z = (1 − λs/‖z‖) I + λ s z zᵀ / ‖z‖³.
            dsteps[layer] -= lam * float(np.sum((gxb * zb)[on] / safe[on, None]))
            dot = np.einsum("ij,ij->i", zb, gxb)
            gz = np.where(on[:, None], shrink[:, None] * gxb
                          + (lam * s * dot / safe ** 3)[:, None] * zb, 0.0)
            gz = gz.reshape(grad.shape)
            # z = x − s ∇f(x): ∂z/∂s = −∇f(x), ∂z/∂x = I − s GᵀG.
            dsteps[layer] -= float(np.sum(gz * grad))
            gxb = self._blocks(gz - s * (g.T @ (g @ gz)))
        return value, dsteps

    # ------------------------------------------------------------- public
    def fit(self, windows, maxiter=15):
        """Learn the step sizes on ``windows``: a list of ``(data, lam)``.

        Minimizes the mean of ``F(B_L) / F(0)`` (objective after the last layer,
        relative to the empty solution), steps bounded in ``(0, 20 / L]``.
        """
        from scipy.optimize import minimize

        scale = 1.0 / self.lipschitz
        norms = [0.5 * float(np.sum(y ** 2)) for y, _ in windows]

        last = {}

        def fun(u):
            total, grad = 0.0, np.zeros_like(u)
            for (y, lam), f0 in zip(windows, norms):
                v, d = self._value_and_grad(u * scale, y, lam)
                total += v / f0
                grad += d * scale / f0
            last["value"] = total / len(windows)
            return last["value"], grad / len(windows)

        res = minimize(fun, self.steps / scale, jac=True, method="L-BFGS-B",
                       bounds=[(1e-3, 20.0)] * self.n_layers,
                       options=dict(maxiter=maxiter),
                       callback=lambda u: self.history.append(last["value"]))
        self.steps = res.x * scale
        return self

    def predict(self, data, lam, corr=None):
        """The unrolled estimate of one window (a warm start for the exact solver)."""
        x, _ = self._forward(np.asarray(data, float), float(lam), self.steps)
        return x
