"""Exceptions raised by :mod:`data_fetchers`.

Every error the fetchers raise on purpose is a :class:`DatasetError`, a subclass of
:class:`RuntimeError`: a failed download, a corrupted file or a cache folder that cannot be
written are problems of the environment at run time, not of the value of an argument. The one
exception to that rule is an unknown dataset name, which is a bad argument value: its class,
:class:`UnknownDatasetError`, derives from both :class:`DatasetError` and :class:`ValueError`.

A command-line front end only needs ``except DatasetError as err: print(err); return 1``: every
message says what failed, on which URL or file, and what to do about it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DatasetError",
    "UnknownDatasetError",
    "DownloadError",
    "IntegrityError",
    "ChecksumError",
]


class DatasetError(RuntimeError):
    """Base class of all errors raised by :mod:`data_fetchers`."""


class UnknownDatasetError(DatasetError, ValueError):
    """The dataset name is not in the registry."""


class DownloadError(DatasetError):
    """A file could not be downloaded (no network, HTTP error, interrupted transfer).

    Attributes
    ----------
    url : str
        The URL that failed.
    reason : str
        What went wrong, in words.
    part_file : Path | None
        Partial download kept for a later resume, if any.
    """

    def __init__(self, message, *, url, reason="", part_file=None):
        super().__init__(message)
        self.url = url
        self.reason = reason
        self.part_file = None if part_file is None else Path(part_file)


class IntegrityError(DatasetError):
    """A downloaded file failed verification (checksum or format); it has been deleted.

    Attributes
    ----------
    fname : str
        The file's name.
    expected, actual : str
        What was expected and what was found (hashes for :class:`ChecksumError`).
    """

    def __init__(self, message, *, fname, expected="", actual=""):
        super().__init__(message)
        self.fname = fname
        self.expected = expected
        self.actual = actual


class ChecksumError(IntegrityError):
    """A downloaded file's hash differs from the registry's; the file has been deleted."""
