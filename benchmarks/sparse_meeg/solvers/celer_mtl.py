from benchopt import BaseSolver, safe_import_context

with safe_import_context() as import_ctx:
    import numpy as np
    from celer.homotopy import mtl_path


class Solver(BaseSolver):
    """celer ``mtl_path`` (dual extrapolation, working sets); single-row blocks."""

    name = "celer-mtl"
    sampling_strategy = "tolerance"
    requirements = ["pip:celer"]

    def skip(self, G, M, n_orient, lmbd):
        if n_orient != 1:
            return True, "celer's multitask Lasso has no blocks of several rows"
        return False, None

    def set_objective(self, G, M, n_orient, lmbd):
        self.G, self.M, self.alpha = G, M, lmbd / G.shape[0]

    def run(self, tol):
        _, coefs, _ = mtl_path(self.G, self.M, alphas=[self.alpha], tol=max(tol, 1e-14),
                               max_epochs=200000)
        coefs = np.asarray(coefs)
        coef = coefs[..., 0] if coefs.ndim == 3 else coefs
        self.coef = coef if coef.shape[0] == self.G.shape[1] else coef.T

    def get_result(self):
        return dict(coef=self.coef)
