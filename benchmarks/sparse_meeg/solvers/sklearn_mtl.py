from benchopt import BaseSolver, safe_import_context

with safe_import_context() as import_ctx:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import MultiTaskLasso


class Solver(BaseSolver):
    """scikit-learn MultiTaskLasso (Cython CD); rows are single columns only."""

    name = "sklearn-mtl"
    sampling_strategy = "tolerance"
    requirements = ["scikit-learn"]

    def skip(self, G, M, n_orient, lmbd):
        if n_orient != 1:
            return True, "MultiTaskLasso has no blocks of several rows"
        return False, None

    def set_objective(self, G, M, n_orient, lmbd):
        self.G, self.M = G, M
        # sklearn scales the datafit by 1/n_samples
        self.est = MultiTaskLasso(alpha=lmbd / G.shape[0], fit_intercept=False,
                                  max_iter=200000)

    def run(self, tol):
        self.est.tol = max(tol, 1e-14)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.est.fit(self.G, self.M)

    def get_result(self):
        return dict(coef=self.est.coef_.T.copy())
