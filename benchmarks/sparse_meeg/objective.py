"""Sparse M/EEG source localisation: ½‖M − GX‖²_F + λ Σ_k ‖X_k‖_F (MxNE)."""

from benchopt import BaseObjective, safe_import_context

with safe_import_context() as import_ctx:
    import numpy as np


class Objective(BaseObjective):
    """MxNE objective; λ is a fraction ``reg`` of λ_max = max_k ‖G_kᵀM‖_F."""

    name = "Sparse M/EEG (L2,1 / MxNE)"
    min_benchopt_version = "1.5"
    parameters = {"reg": [0.5, 0.3]}
    requirements = ["numpy"]

    def set_data(self, G, M, n_orient):
        self.G, self.M, self.n_orient = G, M, n_orient
        corr = (G.T @ M).reshape(G.shape[1] // n_orient, -1)
        self.lmbd = self.reg * np.sqrt((corr ** 2).sum(1).max())

    def evaluate_result(self, coef):
        norms = np.linalg.norm(coef.reshape(coef.shape[0] // self.n_orient, -1), axis=1)
        value = 0.5 * np.sum((self.M - self.G @ coef) ** 2) + self.lmbd * norms.sum()
        return dict(value=value, n_sources=int((norms > 0).sum()))

    def get_one_result(self):
        return dict(coef=np.zeros((self.G.shape[1], self.M.shape[1])))

    def get_objective(self):
        return dict(G=self.G, M=self.M, n_orient=self.n_orient, lmbd=self.lmbd)
