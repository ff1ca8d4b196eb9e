"""Non-convex penalties started from the convex (L2,1) solution.

Block coordinate descent on a non-convex penalty started from zero admits
blocks greedily: on the strongly correlated gain columns of neighbouring
cortical sources it often keeps a neighbour of the true source and cannot
leave that stationary point. Starting from the L2,1 solution at the same λ
(the basin irMxNE also starts from) keeps the convex support's information
and lets the non-convex penalty prune it and undo its shrinkage; see
``docs/validation.md`` for the effect on localization.
"""

import time

from ..penalties import BlockPenalty, make_penalty
from .working_set import solve


def convex_start(penalty):
    """The L2,1 penalty with the same λ and block weights, or None for convex penalties."""
    if not isinstance(penalty, BlockPenalty) or penalty.is_convex:
        return None
    return make_penalty("l21", penalty.alpha, weights=penalty.weights)


def solve_from_convex(gain, data, penalty, n_orient=1, **solve_kw):
    """Solve with ``penalty``, non-convex ones started from the L2,1 solution.

    Parameters
    ----------
    gain, data, n_orient, **solve_kw
        As in :func:`meeg_inverse.solvers.solve` (``coef_init`` is replaced
        for non-convex penalties).
    penalty : BlockPenalty | IterativeReweightedL21
        Convex penalties and the irMxNE strategy are solved directly.

    Returns
    -------
    result : SolverResult
        The result of the (non-convex) solve.
    """
    start = convex_start(penalty)
    if start is not None:
        t0 = time.perf_counter()
        first = solve(gain, data, start, n_orient=n_orient, **solve_kw)
        solve_kw["coef_init"] = first.coef
        if solve_kw.get("max_time") is not None:  # one budget for both solves
            solve_kw["max_time"] = max(solve_kw["max_time"] - (time.perf_counter() - t0), 0.0)
    return solve(gain, data, penalty, n_orient=n_orient, **solve_kw)
