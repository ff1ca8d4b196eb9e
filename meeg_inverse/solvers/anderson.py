"""Anderson extrapolation of the BCD iterates (Bertrand & Massias, 2021)."""

import numpy as np


class AndersonAcceleration:
    """Offline Anderson extrapolation over the last ``K + 1`` iterates.

    Iterates are pushed after each BCD epoch; every ``K + 1`` pushes an
    extrapolated point is proposed.  The caller keeps it only if it lowers the
    objective (extrapolation is not monotone).

    An auxiliary quantity that is an affine function of the iterate (the
    residual ``Y − GB`` or ``QB``) can be pushed along with it: it is combined
    with the same weights (they sum to one), which saves recomputing it at the
    extrapolated point.

    Parameters
    ----------
    K : int
        Number of differences used (5 is MNE's and skglm's choice).
    """

    def __init__(self, K=5):
        self.K = K
        self._iterates = []
        self._aux = []

    def reset(self):
        """Forget stored iterates (e.g. after the working set changed)."""
        self._iterates = []
        self._aux = []

    def push(self, coef, aux=None):
        """Store a copy of the current iterate (any shape), and of ``aux``.

        Returns
        -------
        extrapolated : array | None
            Extrapolated point with the shape of ``coef`` once ``K + 1``
            iterates are stored, else None.  When ``aux`` is given, a pair
            ``(extrapolated, aux_extrapolated)`` (``(None, None)`` when there
            is no point to propose).
        """
        self._iterates.append(np.array(coef, dtype=np.float64, copy=True).ravel())
        if aux is not None:
            self._aux.append(np.array(aux, dtype=np.float64, copy=True).ravel())
        weights = self._weights() if len(self._iterates) >= self.K + 1 else None
        iterates, auxes = self._iterates, self._aux
        if len(iterates) >= self.K + 1:
            self.reset()
        if weights is None:
            return (None, None) if aux is not None else None
        extrap = (weights @ np.asarray(iterates[1:])).reshape(np.shape(coef))
        if aux is None:
            return extrap
        return extrap, (weights @ np.asarray(auxes[1:])).reshape(np.shape(aux))

    def _weights(self):
        """Affine weights (summing to one) of the last ``K`` iterates, or None."""
        iterates = np.asarray(self._iterates)
        diffs = np.diff(iterates, axis=0)  # (K, n)
        gram = diffs @ diffs.T
        scale = np.trace(gram)
        if not np.isfinite(scale) or scale == 0:
            return None
        # Tikhonov-regularised solve: the K differences are nearly colinear
        # near convergence and the plain system is singular.
        try:
            z = np.linalg.solve(gram + 1e-10 * scale * np.eye(self.K), np.ones(self.K))
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(z)) or z.sum() == 0:
            return None
        return z / z.sum()
