"""Anderson extrapolation of the BCD iterates (Bertrand & Massias, 2021)."""

import numpy as np


class AndersonAcceleration:
    """Offline Anderson extrapolation over the last ``K + 1`` iterates.

    Iterates are pushed after each BCD epoch; every ``K + 1`` pushes an
    extrapolated point is proposed.  The caller keeps it only if it lowers the
    objective (extrapolation is not monotone).

    Parameters
    ----------
    K : int
        Number of differences used (5 is MNE's and skglm's choice).
    """

    def __init__(self, K=5):
        self.K = K
        self._iterates = []

    def reset(self):
        """Forget stored iterates (e.g. after the working set changed)."""
        self._iterates = []

    def push(self, coef):
        """Store a copy of the current iterate (any shape).

        Returns
        -------
        extrapolated : array | None
            Extrapolated point with the shape of ``coef`` once ``K + 1``
            iterates are stored, else None.
        """
        self._iterates.append(np.array(coef, dtype=np.float64, copy=True).ravel())
        if len(self._iterates) < self.K + 1:
            return None
        iterates = np.asarray(self._iterates)
        self._iterates = []
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
        c = z / z.sum()
        return (c @ iterates[1:]).reshape(np.shape(coef))
