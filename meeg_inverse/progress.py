"""Progress lines on standard error: what the pipeline does and how long each step took.

A module of its own (standard library only): the light launcher of
``meeg-inverse localize`` (:mod:`meeg_inverse._stages`) prints with it too.
"""

import os
import sys
import time

#: Set by ``meeg-inverse localize`` for its stage processes, whose standard error
#: is a pipe to it: "1" when its own is a terminal (progress bars redraw there).
TERMINAL_ENV = "MEEG_INVERSE_STDERR_IS_TERMINAL"


class Progress:
    """Prints what the pipeline is doing and how long each step took.

    Parameters
    ----------
    enabled : bool
        False makes it silent.
    stream : file-like | None
        Where to print (default: standard error).
    warnings : bool
        Print :meth:`warn` messages even when not ``enabled``.
    """

    def __init__(self, enabled=True, stream=None, warnings=False):
        self.enabled = enabled
        self.warnings = warnings
        self.stream = stream if stream is not None else sys.stderr
        self._t0 = None

    def step(self, message):
        """Start a step; the previous one is reported done."""
        self.done()
        self._t0 = time.perf_counter()
        if self.enabled:
            print(f"[meeg-inverse] {message} ...", end="", file=self.stream, flush=True)

    def done(self):
        if self._t0 is not None and self.enabled:
            print(f" {time.perf_counter() - self._t0:.1f} s", file=self.stream, flush=True)
        self._t0 = None

    @property
    def interactive(self):
        """Whether the lines go to a terminal (a progress bar redraws in place there;
        in a log file each redraw would be a line of its own)."""
        inherited = os.environ.get(TERMINAL_ENV)
        if inherited is not None:
            return inherited == "1"
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def info(self, message):
        self.done()
        if self.enabled:
            print(f"[meeg-inverse] {message}", file=self.stream, flush=True)

    def warn(self, message):
        """A change of what was asked (channels left out, ...): shown even when quiet."""
        self.done()
        if self.enabled or self.warnings:
            print(f"meeg-inverse: warning: {message}", file=self.stream, flush=True)
