"""A per-dataset lock file that is gone again once the fetch is over."""

from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["dataset_lock"]

logger = logging.getLogger("data_fetchers")


@contextlib.contextmanager
def dataset_lock(path, description):
    """Hold an exclusive advisory lock on ``path`` (created) and remove it on exit.

    One fetch of a dataset at a time per cache folder: a second process waits (one log
    warning naming ``description``). The file is removed while still locked, so it never
    outlives the fetch, even a failed one. POSIX only (``fcntl.flock``); elsewhere nothing
    is locked and no file is created.

    Parameters
    ----------
    path : Path
        The lock file.
    description : str
        What is being fetched, for the warning of a waiting process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if not waited:
                logger.warning("Another process is fetching %s; waiting for it", description)
                waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        # The holder we waited for removed the file on its way out: the lock we got is on
        # that orphan, which a third process no longer sees. Lock the file now at `path`.
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # before unlocking: a waiter then finds it gone and starts anew
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _same_file(fd, path):
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)
