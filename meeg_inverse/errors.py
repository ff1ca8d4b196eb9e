"""Errors raised for bad input, each naming the problem and the fix."""


class InputError(ValueError):
    """Bad input from the user: a message that names the problem and the fix.

    The command line prints the message alone (no traceback) and exits with
    status 2. It subclasses :class:`ValueError` so that Python callers can catch
    it the usual way.

    Parameters
    ----------
    problem : str
        What is wrong, in the user's terms.
    fix : str | None
        What to do about it.
    """

    def __init__(self, problem, fix=None):
        self.problem = problem
        self.fix = fix
        message = problem if fix is None else f"{problem}\n  Fix: {fix}"
        super().__init__(message)


_DATA_FIX = ("interpolate or mark the affected channels as bad (info['bads']) and "
             "drop or repair the affected samples before localizing.")


def check_finite(array, what, fix=_DATA_FIX):
    """Raise :class:`InputError` when ``array`` holds NaN or Inf values (``fix`` says what to do)."""
    import numpy as np

    array = np.asarray(array)
    if array.size == 0:
        raise InputError(f"{what} is empty.", "check the time window and channel selection.")
    finite = np.isfinite(array)
    if not finite.all():
        n_bad = int(array.size - finite.sum())
        raise InputError(
            f"{what} contains {n_bad} NaN or Inf value(s).", fix)
