"""Solvers for sparse M/EEG inverse problems.

Public API
----------
solve, solve_path, irmxne, alpha_max, time_pca, warmup, SolverResult,
solve_from_convex
"""

from .working_set import (
    SolverResult,
    alpha_max,
    irmxne,
    solve,
    solve_path,
    time_pca,
)
from .convex_start import solve_from_convex  # noqa: E402  (after working_set)

__all__ = ["SolverResult", "alpha_max", "irmxne", "solve", "solve_from_convex", "solve_path",
           "time_pca", "warmup"]


def warmup():
    """Compile (or load from numba's on-disk cache) every kernel once.

    Call it before timing; in a fresh process with a warm cache it costs the
    cache loading only.  Returns the elapsed time in seconds.
    """
    import time

    import numpy as np

    from ..penalties import PENALTIES

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    gain = rng.standard_normal((8, 12))
    data = rng.standard_normal((8, 3))
    amax = alpha_max(gain, data, 3)
    for name in ("l21", "mcp"):  # one convex, one fixed-point code path
        solve(gain, data, name, alpha=0.5 * amax, n_orient=3, tol=1e-4, max_iter=3)
    # The residual-based epoch is only used for large working sets.
    from . import working_set

    saved = working_set.GRAM_MAX_COLUMNS
    working_set.GRAM_MAX_COLUMNS = 0
    try:
        solve(gain, data, "l21", alpha=0.5 * amax, n_orient=3, tol=1e-4, max_iter=3)
    finally:
        working_set.GRAM_MAX_COLUMNS = saved
    for name in PENALTIES:
        if name in ("weighted_l21", "irmxne"):
            continue
        from ..penalties import make_penalty

        make_penalty(name, 1.0).prox(np.ones(3), 0.5)
    return time.perf_counter() - t0
