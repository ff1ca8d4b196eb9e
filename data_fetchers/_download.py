"""A pooch downloader that resumes interrupted downloads with HTTP Range requests."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
from pathlib import Path

from ._errors import ChecksumError, DownloadError

__all__ = ["ResumableDownloader", "file_hash"]

logger = logging.getLogger("data_fetchers")

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)


def file_hash(fname, alg="sha256", chunk_size=1 << 20):
    """Hex digest of a file (``alg`` is any :mod:`hashlib` algorithm, e.g. ``'md5'``)."""
    h = hashlib.new(alg)
    with open(fname, "rb") as fid:
        for block in iter(lambda: fid.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def split_hash(known_hash):
    """``'md5:abc'`` -> ``('md5', 'abc')``; a bare hash is SHA256, as in pooch."""
    if ":" in known_hash:
        alg, value = known_hash.split(":", 1)
        return alg.lower(), value.lower()
    return "sha256", known_hash.lower()


class _Interrupted(Exception):
    """The server stopped sending before the whole file arrived."""


class _Restart(Exception):
    """The partial file cannot be continued: start again from byte 0."""


class ResumableDownloader:
    """Download over HTTP(S) into a ``.part`` file that survives interruptions.

    Usable wherever pooch takes a downloader (``pooch.retrieve(..., downloader=d)``): pooch calls
    ``d(url, output_file, pooch)``. Bytes go to ``part_file`` (default: a hidden
    ``.<name>.part`` beside ``output_file``). When a part file already exists, the request
    carries ``Range: bytes=<size>-`` and the answer is appended; when the server ignores the
    Range header (status 200 instead of 206) or answers with a different range, the download
    starts again from byte 0. After the transfer the file's hash is checked against
    ``known_hash`` (when given): on a mismatch the part file is deleted and
    :class:`ChecksumError` is raised. Only a complete, verified file is renamed to
    ``output_file``.

    Parameters
    ----------
    part_file : path-like | None
        Where the partial download lives between calls.
    known_hash : str | None
        ``'md5:…'``, ``'sha256:…'`` or a bare SHA256, as in pooch. None skips the check.
    progressbar : bool | tqdm-like
        True draws a :mod:`tqdm` bar on stderr; an object with ``update``/``reset``/``close``
        (like pooch's ``HTTPDownloader(progressbar=...)``) is used as is.
    timeout : float
        Seconds to wait for the connection and for each read.
    retries : int
        How many times to resume automatically within one call after a network failure
        (with a 1, 2, 4… s pause). 0 leaves the part file for the next call.
    chunk_size : int
        Bytes per read.
    name : str | None
        File name used in messages and for the default part file.
    **kwargs
        Passed to :func:`requests.get` (``headers``, ``auth``, ``verify``…).
    """

    def __init__(self, *, part_file=None, known_hash=None, progressbar=False, timeout=30.0,
                 retries=0, chunk_size=1 << 16, name=None, backoff=1.0, **kwargs):
        self.part_file = None if part_file is None else Path(part_file)
        self.known_hash = known_hash
        self.progressbar = progressbar
        self.timeout = timeout
        self.retries = int(retries)
        self.chunk_size = int(chunk_size)
        self.name = name
        self.backoff = float(backoff)
        self.kwargs = kwargs

    # -- pooch's downloader protocol -------------------------------------------------------
    def __call__(self, url, output_file, pooch=None, check_only=False):
        import requests

        if check_only:
            try:
                response = requests.head(url, allow_redirects=True, timeout=self.timeout,
                                         **self.kwargs)
            except requests.RequestException:
                return False
            return response.status_code < 400

        output_file = Path(output_file)
        name = self.name or output_file.name
        part = self.part_file or output_file.parent / f".{name}.part"
        part.parent.mkdir(parents=True, exist_ok=True)

        failures = 0
        while True:
            try:
                self._transfer(url, part, name)
                break
            except _Restart:
                part.unlink(missing_ok=True)
                continue  # not counted: the server told us to start over
            except (_Interrupted, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError, _ServerError) as exc:
                reason = _describe(exc)
                if failures < self.retries:
                    failures += 1
                    wait = self.backoff * 2 ** (failures - 1)
                    logger.warning("Download of %s failed (%s); resuming in %.0f s "
                                   "(attempt %d of %d)", name, reason, wait, failures,
                                   self.retries)
                    time.sleep(wait)
                    continue
                have = part.stat().st_size if part.exists() else 0
                if have:
                    message = (f"Download of {name} from {url} stopped after {have} bytes "
                               f"({reason}). The partial file is kept in {part}; run the same "
                               "command again to resume where it stopped.")
                else:
                    message = f"Could not download {name} from {url}: {reason}."
                raise DownloadError(message, url=url, reason=reason,
                                    part_file=part if have else None) from None
            except requests.HTTPError as exc:
                reason = _describe(exc)
                raise DownloadError(f"Could not download {name} from {url}: {reason}.",
                                    url=url, reason=reason) from None
            except requests.RequestException as exc:  # invalid URL, too many redirects, …
                reason = _describe(exc)
                raise DownloadError(f"Could not download {name} from {url}: {reason}.",
                                    url=url, reason=reason) from None

        if self.known_hash:
            alg, expected = split_hash(self.known_hash)
            actual = file_hash(part, alg)
            if actual != expected:
                part.unlink(missing_ok=True)
                raise ChecksumError(
                    f"Checksum mismatch for {name} downloaded from {url}: expected {alg} "
                    f"{expected}, got {actual}. The corrupted file has been deleted. Run the "
                    "same command again to download it afresh; if the error persists, the "
                    "server or a proxy is serving a different file: delete the dataset's "
                    "cache folder and retry, or download the file manually and check it.",
                    fname=name, expected=f"{alg}:{expected}", actual=f"{alg}:{actual}")
        os.replace(part, output_file)
        return None

    # -- one HTTP request --------------------------------------------------------------------
    def _transfer(self, url, part, name):
        import requests

        offset = part.stat().st_size if part.exists() else 0
        headers = dict(self.kwargs.get("headers") or {})
        # Byte ranges and sizes must refer to the file itself, not to a compressed transfer.
        headers.setdefault("Accept-Encoding", "identity")
        if offset:
            headers["Range"] = f"bytes={offset}-"
        kwargs = {k: v for k, v in self.kwargs.items() if k != "headers"}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout,
                          **kwargs) as response:
            if response.status_code == 416 and offset:
                match = _UNSATISFIED_RANGE.search(response.headers.get("Content-Range", ""))
                if match and int(match.group(1)) == offset:
                    logger.info("%s: already complete in %s", name, part)
                    return
                raise _Restart()
            if response.status_code >= 500:
                raise _ServerError(f"HTTP {response.status_code} {response.reason}")
            response.raise_for_status()

            mode, start = "wb", 0
            total = _content_length(response)
            if offset and response.status_code == 206:
                match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    raise _Restart()
                mode, start = "ab", offset
                if match.group(3) != "*":
                    total = int(match.group(3))
                elif total is not None:
                    total += offset
                logger.info("Resuming %s at byte %d", name, offset)
            elif offset:
                logger.info("Server ignored the Range request for %s; downloading it again "
                            "from the start", name)

            bar = self._bar(name, total, start)
            size = start
            try:
                with open(part, mode) as fid:
                    for chunk in response.iter_content(chunk_size=self.chunk_size):
                        if chunk:
                            fid.write(chunk)
                            size += len(chunk)
                            bar.update(len(chunk))
            finally:
                bar.close()
            if total is not None and size < total:
                raise _Interrupted(f"connection closed after {size} of {total} bytes")

    def _bar(self, name, total, initial):
        if self.progressbar is True:
            from tqdm.auto import tqdm

            return tqdm(total=total, initial=initial, unit="B", unit_scale=True,
                        unit_divisor=1024, desc=name, file=sys.stderr, leave=True)
        if self.progressbar:
            bar = self.progressbar
            if total is not None:
                bar.total = total
            bar.reset() if hasattr(bar, "reset") else None
            if initial:
                bar.update(initial)
            return bar
        return _NoBar()


class _ServerError(Exception):
    """HTTP 5xx: worth retrying."""


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _content_length(response):
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _describe(exc):
    """One readable line for a requests/urllib3 exception (no nested reprs)."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        r = exc.response
        return f"HTTP {r.status_code} {r.reason}"
    if isinstance(exc, requests.Timeout):
        return "the connection timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection was closed before the end of the file"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        for key, words in (("Connection refused", "connection refused"),
                           ("Name or service not known", "host name could not be resolved"),
                           ("nodename nor servname", "host name could not be resolved"),
                           ("Temporary failure in name resolution",
                            "host name could not be resolved (no network?)"),
                           ("Network is unreachable", "network is unreachable"),
                           ("Connection reset", "connection reset by the server")):
            if key in text:
                return words
        return "no connection to the server (no network, or the server is down)"
    text = str(exc) or type(exc).__name__
    return text
