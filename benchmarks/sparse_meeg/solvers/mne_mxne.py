from benchopt import BaseSolver, safe_import_context

with safe_import_context() as import_ctx:
    import numpy as np
    from mne.inverse_sparse.mxne_optim import mixed_norm_solver


class Solver(BaseSolver):
    """MNE's ``mixed_norm_solver`` (BCD + Anderson + active set)."""

    name = "mne-mxne"
    sampling_strategy = "tolerance"
    requirements = ["mne"]

    def set_objective(self, G, M, n_orient, lmbd):
        self.G, self.M, self.n_orient, self.lmbd = G, M, n_orient, lmbd

    def run(self, tol):
        x, active, _ = mixed_norm_solver(
            self.M, self.G, self.lmbd, n_orient=self.n_orient,
            tol=max(tol, 1e-14) * np.sum(self.M ** 2), maxit=100000, debias=False,
            active_set_size=10, verbose=False)
        self.coef = np.zeros((self.G.shape[1], self.M.shape[1]))
        self.coef[active] = x

    def get_result(self):
        return dict(coef=self.coef)
