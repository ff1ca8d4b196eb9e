from benchopt import BaseSolver, safe_import_context

with safe_import_context() as import_ctx:
    import numpy as np
    from skglm import MultiTaskLasso


class Solver(BaseSolver):
    """skglm MultiTaskLasso (numba, working sets, Anderson); single-row blocks."""

    name = "skglm-mtl"
    sampling_strategy = "tolerance"
    requirements = ["pip:skglm"]

    def skip(self, G, M, n_orient, lmbd):
        if n_orient != 1:
            return True, "skglm's multitask estimator has no blocks of several rows"
        return False, None

    def set_objective(self, G, M, n_orient, lmbd):
        self.G, self.M = G, M
        self.est = MultiTaskLasso(alpha=lmbd / G.shape[0], fit_intercept=False,
                                  max_epochs=200000)
        self.est.tol = 1e-2
        self.est.fit(G[:, :10], M)  # numba compilation outside the timing

    def run(self, tol):
        self.est.tol = max(tol, 1e-14)
        self.est.fit(self.G, self.M)

    def get_result(self):
        coef = np.asarray(self.est.coef_)
        return dict(coef=coef if coef.shape[0] == self.G.shape[1] else coef.T)
