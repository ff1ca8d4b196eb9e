"""Cache folder, presence checks, download, verification and installation."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import pooch

from ._download import ResumableDownloader, file_hash
from ._errors import (ChecksumError, DatasetError, DownloadError, IntegrityError,
                      UnknownDatasetError)
from ._lock import dataset_lock
from ._registry import REGISTRY, DatasetSpec

__all__ = ["fetch_dataset", "dataset_path", "has_dataset", "list_datasets", "data_root"]

logger = logging.getLogger("data_fetchers")

ENV_VAR = "MEEG_INVERSE_DATA"
RECORD_NAME = ".meeg-inverse.json"


# --------------------------------------------------------------------------------------------
# Where things go


def data_root(path=None, *, create=False):
    """The cache folder that holds every dataset's folder.

    Resolution order: ``path`` if given; else the environment variable ``MEEG_INVERSE_DATA``;
    else MNE-Python's ``MNE_DATA`` setting (environment variable or ``~/.mne/mne-python.json``,
    read with :func:`mne.get_config`); else ``~/mne_data``, MNE's default. Datasets use MNE's
    folder names, so a cache shared with MNE-Python reuses what MNE already downloaded.

    With ``create=True`` the folder is created, or :class:`DatasetError` says why it cannot be.
    """
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        path = os.environ.get("MNE_DATA") or _mne_config("MNE_DATA")
    if path is None:
        path = Path("~") / "mne_data"
    root = Path(path).expanduser().absolute()
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(
                f"Cannot create the data cache folder {root}: {exc.strerror or exc}. Choose a "
                f"writable folder with path=..., the {ENV_VAR} environment variable or MNE's "
                "MNE_DATA setting.") from None
    return root


def _mne_config(key):
    try:
        import mne

        return mne.get_config(key)
    except Exception:  # no MNE, or an unreadable config file: fall back to the default
        return None


def _spec(name):
    if isinstance(name, DatasetSpec):
        return name
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}; available: {', '.join(REGISTRY)}") from None


def dataset_path(name, path=None):
    """Folder where dataset ``name`` lives (or will live) under the cache root; no download.

    For ``'fsaverage'`` this is ``<subjects_dir>/fsaverage``; its parent is the
    ``subjects_dir`` to give MNE.
    """
    spec = _spec(name)
    return data_root(path) / spec.folder


def has_dataset(name, path=None):
    """True when dataset ``name`` is completely installed under the cache root."""
    spec = _spec(name)
    root = data_root(path)
    return not _marker(root, spec).exists() and all(
        _piece_present(spec, f, root) for f in spec.files)


def list_datasets():
    """``{name: dict(description, size, url, license, citation, homepage, folder, notes,
    files)}`` for every registered dataset; ``files`` lists each download's fname, url, hash
    and archive type."""
    return {name: spec.info() for name, spec in REGISTRY.items()}


def _marker(root, spec):
    return root / f".{spec.name}.meeg-inverse-incomplete"


def _piece_present(spec, fspec, root):
    dest = root / fspec.dest
    checks = fspec.check or ((fspec.fname,) if fspec.unpack is None else ())
    if not checks:
        return (root / spec.folder).is_dir()
    return all((dest / rel).exists() for rel in checks)


def _urls(spec, base_url, url):
    if url is not None:
        if len(spec.files) != 1:
            raise ValueError(f"url= only applies to single-file datasets; '{spec.name}' has "
                             f"{len(spec.files)} files: use base_url= (files are then fetched "
                             f"from <base_url>/<fname>: "
                             f"{', '.join(f.fname for f in spec.files)})")
        return {spec.files[0].fname: str(url)}
    if base_url is not None:
        base = str(base_url).rstrip("/")
        return {f.fname: f"{base}/{f.fname}" for f in spec.files}
    return {f.fname: f.url for f in spec.files}


# --------------------------------------------------------------------------------------------
# Fetch


def fetch_dataset(name, path=None, *, base_url=None, url=None, force=False, progress=True,
                  retries=3, timeout=30.0):
    """Download (if needed), verify and install a dataset; return its folder.

    Parameters
    ----------
    name : {'sample', 'somato', 'fsaverage', 'eeglab'} | DatasetSpec
        Dataset name (see :func:`list_datasets`), or a spec not in the registry.
    path : path-like | None
        Cache root; None resolves it as :func:`data_root` does (``MEEG_INVERSE_DATA``, then
        MNE's ``MNE_DATA``, then ``~/mne_data``).
    base_url : str | None
        Mirror to use instead of the upstream URLs: each file is fetched from
        ``<base_url>/<fname>`` (fnames in ``list_datasets()[name]['files']``).
    url : str | None
        Full URL of the file, for single-file datasets ('sample', 'somato').
    force : bool
        Download and install again even when the dataset is present (files of the archive
        overwrite the installed ones; files you added to the folder are kept).
    progress : bool
        Draw a progress bar on stderr for each download.
    retries : int
        Automatic resumes within this call after a network failure (then the partial file is
        kept and the next call resumes it).
    timeout : float
        Seconds to wait for the connection and for each read.

    Returns
    -------
    Path
        The dataset folder (``dataset_path(name, path)``); for 'fsaverage' the ``fsaverage``
        subject folder, whose parent is the ``subjects_dir``.

    Raises
    ------
    DownloadError
        No network, HTTP error or interrupted transfer; the message names the URL, the file
        name and folder to put a manually downloaded copy in, and whether a partial download
        was kept for resuming.
    ChecksumError, IntegrityError
        A downloaded file failed its hash or format check; it has been deleted.
    UnknownDatasetError
        ``name`` is not registered.
    DatasetError
        Any other failure (e.g. the cache folder cannot be created).
    """
    spec = _spec(name)
    urls = _urls(spec, base_url, url)
    root = data_root(path, create=True)
    lock = root / f".{spec.name}.meeg-inverse-lock"
    with dataset_lock(lock, f"'{spec.name}' into {root}"):
        return _fetch_locked(spec, urls, root, base_url=base_url, force=force,
                             progress=progress, retries=retries, timeout=timeout)


def _fetch_locked(spec, urls, root, *, base_url, force, progress, retries, timeout):
    folder = root / spec.folder
    marker = _marker(root, spec)
    interrupted_install = marker.exists()

    if not force and not interrupted_install and all(
            _piece_present(spec, f, root) for f in spec.files):
        logger.info("Dataset '%s' already present in %s", spec.name, folder)
        return folder

    pieces = [f for f in spec.files
              if force or interrupted_install or not _piece_present(spec, f, root)]

    with _quiet_pooch():
        staged = {}
        for fspec in pieces:
            staged[fspec.fname] = _download(spec, fspec, urls, root, folder, force=force,
                                            progress=progress, retries=retries,
                                            timeout=timeout)

        if spec.validate is not None:
            # Validate the new files together with the installed ones they must agree with.
            together = {f.fname: root / f.dest / f.fname for f in spec.files
                        if f.unpack is None and (root / f.dest / f.fname).is_file()}
            together.update(staged)
            try:
                spec.validate(together)
            except IntegrityError as exc:
                for p in staged.values():
                    Path(p).unlink(missing_ok=True)
                raise type(exc)(
                    f"{exc} The downloaded files ({', '.join(staged)}) have been deleted. Run "
                    f"the same command again to retry; if it fails again, check the URL "
                    f"({urls[exc.fname] if exc.fname in urls else base_url or 'upstream'}) "
                    f"or delete the cache folder {folder} and retry.",
                    fname=exc.fname, expected=exc.expected, actual=exc.actual) from None

        record_files = []
        for fspec in pieces:
            entry = dict(fname=fspec.fname, url=urls[fspec.fname], known_hash=fspec.known_hash)
            if fspec.known_hash is None:
                entry["sha256"] = file_hash(staged[fspec.fname])
            record_files.append(entry)

        marker.touch()
        for fspec in pieces:
            _install(fspec, staged[fspec.fname], root, overwrite=force)
        folder.mkdir(parents=True, exist_ok=True)
        _write_record(folder, spec, record_files)
        marker.unlink(missing_ok=True)

    missing = [rel for f in spec.files for rel in (f.check or ())
               if not (root / f.dest / rel).exists()]
    if missing:
        logger.warning("Dataset '%s' installed in %s, but %d expected file(s) are missing, "
                       "e.g. %s", spec.name, folder, len(missing), missing[0])
    logger.info("Dataset '%s' ready in %s", spec.name, folder)
    return folder


def _download(spec, fspec, urls, root, folder, *, force, progress, retries, timeout):
    """Bring one file into ``root/fname``, verified; return that path."""
    url = urls[fspec.fname]
    from ._download import split_hash

    staged = root / fspec.fname
    part = root / f".{fspec.fname}.part"
    note = ""
    if force:
        staged.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    elif staged.exists() and fspec.known_hash:
        # A file left by an earlier run or put there by hand: use it only if it is right.
        alg, expected = split_hash(fspec.known_hash)
        actual = file_hash(staged, alg)
        if actual != expected:
            staged.unlink()
            note = (f"The file already in {staged} had {alg} {actual} instead of {expected}; "
                    "it has been deleted.")
            logger.warning("%s Downloading it again.", note)
    downloader = ResumableDownloader(part_file=part, known_hash=fspec.known_hash,
                                     progressbar=progress, timeout=timeout, retries=retries,
                                     name=fspec.fname)
    try:
        pooch.retrieve(url=url, known_hash=fspec.known_hash, fname=fspec.fname, path=root,
                       downloader=downloader)
    except DownloadError as exc:
        message = _manual_message(spec, fspec, exc, root, folder, staged, urls)
        raise DownloadError(f"{message}\n{note}" if note else message,
                            url=exc.url, reason=exc.reason, part_file=exc.part_file) from None
    except ChecksumError as exc:
        raise ChecksumError(f"{exc} (cache folder: {root})", fname=exc.fname,
                            expected=exc.expected, actual=exc.actual) from None
    except ValueError as exc:  # pooch's own hash check (should not trigger after ours)
        staged.unlink(missing_ok=True)
        raise ChecksumError(f"{fspec.fname}: {exc} The file has been deleted; run again, or "
                            f"delete the cache folder {folder} and retry.",
                            fname=fspec.fname, expected=fspec.known_hash or "",
                            actual="") from None
    return staged


def _manual_message(spec, fspec, exc, root, folder, staged, urls):
    check = (f"checked against {fspec.known_hash}" if fspec.known_hash
             else "checked (format)")
    lines = [
        f"Could not download {fspec.fname} for the '{spec.name}' dataset from {exc.url}: "
        f"{exc.reason}.",
    ]
    if exc.part_file is not None:
        lines.append(f"{exc.part_file.stat().st_size if exc.part_file.exists() else 0} bytes "
                     f"are kept in {exc.part_file}; run the same command again to resume.")
    lines += [
        "To install it by hand: download that URL on a machine with internet access (browser, "
        f"or: curl -L -o '{staged}' '{exc.url}'), save the file as",
        f"    {staged}",
        f"and run the same command again: the file will be {check} and installed into",
        f"    {folder}",
    ]
    others = [f for f in spec.files if f.fname != fspec.fname]
    if others:
        lines.append(f"The '{spec.name}' dataset needs {len(spec.files)} files; put the others "
                     f"in {root} too:")
        lines += [f"    {f.fname}  <-  {urls[f.fname]}" for f in others]
    lines += [
        f"(cache folder {root}; choose another with path=..., the {ENV_VAR} environment "
        "variable or MNE's MNE_DATA setting; a mirror with base_url=...).",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Install


def _install(fspec, staged, root, *, overwrite):
    """Move a verified file, or the content of a verified archive, into place."""
    dest = root / fspec.dest
    dest.mkdir(parents=True, exist_ok=True)
    if fspec.unpack is None:
        os.replace(staged, dest / fspec.fname)
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{fspec.fname}.", suffix=".extracting", dir=root))
    try:
        extract_dir = tmp / "content"
        _extract(fspec, staged, extract_dir)
        _merge(extract_dir, dest, overwrite=overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(staged).unlink(missing_ok=True)


def _extract(fspec, staged, extract_dir):
    processor = (_SafeUntar if fspec.unpack == "tar" else pooch.Unzip)(
        extract_dir=str(extract_dir))
    try:
        processor(str(staged), "download", None)
    except IntegrityError:
        Path(staged).unlink(missing_ok=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        Path(staged).unlink(missing_ok=True)
        raise IntegrityError(
            f"{fspec.fname} could not be extracted ({exc}); it has been deleted. Run the same "
            "command again to download it afresh.",
            fname=fspec.fname, expected=f"{fspec.unpack} archive", actual=str(exc)) from None
    except OSError as exc:  # disk full, permissions: the verified archive is kept
        raise DatasetError(
            f"Could not extract {staged}: {exc}. The verified archive is kept; free some "
            "space (or fix permissions) and run the same command again.") from None


def _merge(src, dst, *, overwrite):
    """Move ``src``'s entries into ``dst``: whole folders by one rename when ``dst`` lacks
    them, file by file otherwise (existing files are kept unless ``overwrite``)."""
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if not target.exists():
                os.replace(entry, target)
            elif target.is_dir():
                _merge(entry, target, overwrite=overwrite)
            elif overwrite:
                target.unlink()
                os.replace(entry, target)
            else:
                logger.warning("Not replacing file %s by a folder from the archive", target)
        elif target.is_dir() and not target.is_symlink():
            logger.warning("Not replacing folder %s by a file from the archive", target)
        elif overwrite or not (target.exists() or target.is_symlink()):
            os.replace(entry, target)


def _write_record(folder, spec, files):
    record = dict(dataset=spec.name,
                  installed=datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  files=files)
    target = folder / RECORD_NAME
    if target.exists():
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(target.read_text())
            known = {f["fname"] for f in files}
            record["files"] = [f for f in old.get("files", []) if f["fname"] not in known] + files
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, target)


class _SafeUntar(pooch.Untar):
    """pooch.Untar that refuses members escaping the extraction folder.

    pooch passes ``filter='data'`` to :meth:`tarfile.TarFile.extractall` only on Python ≥ 3.12;
    here the members are checked on every version, and the filter is used when available.
    """

    def _extract_file(self, fname, extract_dir):
        base = Path(extract_dir).resolve()
        with tarfile.open(fname, "r") as tar:
            members = tar.getmembers()
            for m in members:
                name = PurePosixPath(m.name)
                bad = name.is_absolute() or ".." in name.parts
                if m.issym() or m.islnk():
                    link = PurePosixPath(m.linkname)
                    target = (name.parent / link) if m.issym() else link
                    bad = bad or link.is_absolute() or not _inside(base, target)
                bad = bad or m.isdev()
                if bad:
                    raise IntegrityError(
                        f"{Path(fname).name}: unsafe archive member {m.name!r} (absolute path, "
                        "'..', device or link leaving the folder); nothing was extracted and "
                        "the archive has been deleted.",
                        fname=Path(fname).name, expected="relative member paths",
                        actual=m.name)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(path=extract_dir, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(path=extract_dir, members=members)


def _inside(base, relative):
    return (base / relative).resolve().is_relative_to(base)


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs every step at INFO on stderr; keep only its warnings."""
    log = pooch.get_logger()
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
