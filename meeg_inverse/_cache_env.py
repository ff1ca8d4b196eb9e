"""Writable cache folders in read-only installs and homes (containers, HPC, shared installs).

numba caches compiled kernels next to the source (``__pycache__``) or in
``~/.cache/numba``; when neither can be written, ``@njit(cache=True)`` fails at
import ("no locator available"). The template head is cached under
``~/.cache/meeg-inverse``. Both fall back to a per-user temporary folder, and
:data:`NOTES` says where, for the command line to print.
"""

import os
import tempfile
from pathlib import Path

NOTES = []


def _can_write(folder):
    """Whether files can be created in ``folder`` (made if missing); tried, not guessed."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def temporary_cache(name):
    """A per-user folder under the system's temporary folder."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    folder = Path(tempfile.gettempdir()) / f"{name}-{uid}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def ensure_numba_cache():
    """Point numba at a temporary cache when neither of its usual places is writable."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    package = Path(__file__).resolve().parent
    if all(_can_write(package / sub / "__pycache__") for sub in (".", "solvers")):
        return
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    if _can_write(home_cache):
        return
    folder = temporary_cache("meeg-inverse-numba")
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    import sys

    if "numba" in sys.modules:  # read when a kernel is defined, so this still applies
        sys.modules["numba"].config.CACHE_DIR = str(folder)
    NOTES.append(f"the install folder and ~/.cache cannot be written: compiled kernels are "
                 f"cached in {folder}")


def writable_cache_dir(preferred, name):
    """``preferred`` when it can be written, else a temporary folder (noted)."""
    if _can_write(preferred):
        return Path(preferred)
    folder = temporary_cache(name)
    NOTES.append(f"{preferred} cannot be written: using {folder} instead")
    return folder
