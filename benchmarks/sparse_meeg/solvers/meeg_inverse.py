from benchopt import BaseSolver, safe_import_context

with safe_import_context() as import_ctx:
    import numpy as np

    from meeg_inverse.solvers import solve, warmup


class Solver(BaseSolver):
    """meeg-inverse working-set BCD (numba, Gram on the working set, Anderson)."""

    name = "meeg-inverse"
    sampling_strategy = "tolerance"
    requirements = ["numba"]

    def set_objective(self, G, M, n_orient, lmbd):
        self.G, self.M, self.n_orient, self.lmbd = G, M, n_orient, lmbd
        warmup()  # numba compile/cache load is not part of the timing

    def run(self, tol):
        res = solve(self.G, self.M, "l21", alpha=self.lmbd, n_orient=self.n_orient,
                    tol=max(tol, 1e-14))
        self.coef = res.coef

    def get_result(self):
        return dict(coef=self.coef)
