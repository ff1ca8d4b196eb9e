"""Datafit terms.

Only the multi-task quadratic datafit ``½‖Y − G B‖²_F`` is needed for M/EEG
(whitened data).  It is kept separate from penalties and solvers so that the
solver code only asks it for values, gradients and block Lipschitz constants.
"""

import numpy as np


class QuadraticMultiTask:
    """Quadratic datafit ``F(B) = ½‖Y − G B‖²_F``.

    All methods take the gain ``G`` (n_channels, n_sources * n_orient) and work
    with residuals ``R = Y − G B`` so that nothing of the gain's size is
    allocated.
    """

    name = "quadratic"

    @staticmethod
    def value(residual):
        """``½‖R‖²_F``."""
        return 0.5 * float(np.vdot(residual, residual))

    @staticmethod
    def gradient(gain, residual):
        """Full gradient ``∇F(B) = −Gᵀ R`` (one BLAS gemm)."""
        return -(gain.T @ residual)

    @staticmethod
    def block_lipschitz(gain, n_orient):
        """Per-block Lipschitz constants ``L_k = ‖G_kᵀ G_k‖₂``.

        Parameters
        ----------
        gain : array, shape (n_channels, n_sources * n_orient)
        n_orient : int

        Returns
        -------
        lipschitz : array, shape (n_sources,)
        """
        if n_orient == 1:
            return np.einsum("ij,ij->j", gain, gain)
        return np.linalg.eigvalsh(_block_grams(gain, n_orient))[:, -1].clip(min=0.0)

    @staticmethod
    def block_eigh(gain, n_orient):
        """Eigen-decomposition of every block Hessian ``G_kᵀ G_k`` (n_orient × n_orient).

        For block steps in the metric of the block (exact L2,1 block
        minimisation); the largest eigenvalue is the block Lipschitz constant.

        Returns
        -------
        evals : array, shape (n_sources, n_orient)
            Ascending, clipped at 0.
        evecs : array, shape (n_sources, n_orient, n_orient)
            Eigenvectors in columns.
        """
        evals, evecs = np.linalg.eigh(_block_grams(gain, n_orient))
        return np.ascontiguousarray(evals.clip(min=0.0)), np.ascontiguousarray(evecs)


def _block_grams(gain, n_orient):
    """Gram blocks ``G_kᵀG_k`` without a copy of the gain (a reshape is a view of a
    C or F array only along contiguous axes, einsum works on strides)."""
    n_channels, n_cols = gain.shape
    g3 = gain.reshape(n_channels, n_cols // n_orient, n_orient)
    return np.einsum("cbi,cbj->bij", g3, g3)
