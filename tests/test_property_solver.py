"""Property-based test: random shapes and values never crash the solver entry point.

Whatever hypothesis feeds :func:`meeg_inverse.solvers.solve` (shapes, NaN/Inf,
zero data, huge or tiny values, any penalty and alpha), it either returns a
result whose coefficients are finite and whose active set matches them, or
raises a clear :class:`ValueError`.
"""

import traceback

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meeg_inverse.penalties import PENALTIES
from meeg_inverse.solvers import solve

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
moderate = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)


@st.composite
def problems(draw):
    n_channels = draw(st.integers(0, 12))
    n_orient = draw(st.sampled_from([1, 3, 2, 0, -1]))
    n_cols = draw(st.integers(0, 60))  # > one batch of pending updates (bcd.PENDING_COLUMNS)
    n_times = draw(st.integers(0, 5))
    values = draw(st.sampled_from([moderate, floats]))
    gain = draw(arrays(np.float64, (n_channels, n_cols), elements=values))
    data_rows = draw(st.sampled_from([n_channels, max(n_channels - 1, 0)]))
    data = draw(arrays(np.float64, (data_rows, n_times), elements=values))
    penalty = draw(st.sampled_from(sorted(PENALTIES) + ["nope"]))
    alpha = draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.5)))
    return gain, data, n_orient, penalty, alpha


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_solver_never_crashes_with_anything_but_a_clear_value_error(problem):
    gain, data, n_orient, penalty, alpha = problem
    try:
        res = solve(gain, data, penalty, n_orient=n_orient, alpha=alpha, tol=1e-4, max_iter=20)
    except ValueError as exc:
        # Raised on purpose by meeg_inverse with a message, not deep inside numpy.
        assert str(exc)
        frames = traceback.extract_tb(exc.__traceback__)
        assert "meeg_inverse" in frames[-1].filename, frames[-1]
        return
    assert np.isfinite(res.coef).all()
    rows_nonzero = (np.abs(res.coef).max(axis=1) > 0 if res.coef.size
                    else np.zeros(res.coef.shape[0], bool))
    assert (res.active_set >= rows_nonzero).all()
