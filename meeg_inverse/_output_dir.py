"""A result folder written as a whole: checked and locked before any computation,
staged, then swapped in.

Why each step:

- every location that will be written is checked (and the staging folder made)
  *before* the computation, so a bad ``--out`` fails in a second, not after
  minutes of work;
- a lock (``flock``, released by the kernel when a process dies) keeps two runs
  from writing into the same folder;
- a previous result is replaced as a whole (with ``overwrite``), never mixed
  with the new one; a folder holding anything else is never emptied;
- the staging folder has a short fixed name, so any legal folder name works,
  and it is made inside an existing ``--out`` (which may sit in a read-only
  parent) or in the nearest existing ancestor;
- staging folders and locks left by dead processes (SIGKILL, power loss) are
  removed.
"""

import hashlib
import os
import re
import shutil
import signal
import uuid
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

PREFIX = ".meeg-inverse-"
_STAGING = re.compile(r"^\.meeg-inverse-partial-(\d+)(-[0-9a-f]+)?$")
_LOCK = re.compile(r"^\.meeg-inverse-[0-9a-f]{12}\.lock$")


def _kind(path):
    """What a non-folder path is, in words."""
    import stat

    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a file"


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _result_files(folder):
    """Names in ``folder`` that its result wrote (its summary.json lists them)."""
    import json

    try:
        files = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        files = None
    if not isinstance(files, dict):  # not a summary of ours: nothing is known to be its
        return {"summary.json"}
    names = {"summary.json"}
    for value in files.values():
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, str) and path:
                names.add(Path(path).parts[0])
    return names


def resolve_output_dir(out_dir):
    """The output folder as an absolute path, refusing names that can't be one."""
    if out_dir is None or not str(out_dir).strip():
        raise InputError("The output folder name is empty (it would write into the current "
                         "folder).", "give a folder name, e.g. --out results/.")
    return Path(str(out_dir)).expanduser().resolve()


class OutputFolder:
    """An output folder reserved for one run.

    Parameters
    ----------
    out_dir : path-like
        The result folder.
    overwrite : bool
        Replace a previous result (a folder with ``summary.json``) as a whole.

    Raises
    ------
    InputError
        The name is empty or too long, the path is a file or a pipe, a folder on
        the way is not writable, the folder holds a result (without
        ``overwrite``) or other files, or another run holds it.
    """

    def __init__(self, out_dir, *, overwrite=False):
        self.path = resolve_output_dir(out_dir)
        self.overwrite = overwrite
        self.staging = None
        self._lock_fd = None
        self._lock_path = None
        self._check()

    # ---------------------------------------------------------------- checks
    def _check(self):
        path = self.path
        try:
            limit = os.pathconf(path.anchor or "/", "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        for part in path.parts[1:]:  # before any stat(): too long a name raises there
            if len(os.fsencode(part)) > limit:
                raise InputError(
                    f"The output folder name {part[:40]!r}... is {len(os.fsencode(part))} "
                    f"bytes long; this file system allows {limit}.",
                    "choose a shorter --out.")
        if path.exists() and not path.is_dir():
            raise InputError(f"The output path {str(path)!r} is {_kind(path)}, not a folder.",
                             "give a folder name with --out.")
        if path.is_dir():
            self.base = path
            self.replaces = self._check_contents()
        else:
            ancestor = path.parent
            while not ancestor.exists():
                ancestor = ancestor.parent
            if not ancestor.is_dir():
                raise InputError(f"The output folder {str(path)!r} cannot be made: "
                                 f"{str(ancestor)!r} is {_kind(ancestor)}.",
                                 "choose another folder with --out.")
            self.base = ancestor
            self.replaces = False
        if not os.access(self.base, os.W_OK | os.X_OK):
            raise InputError(f"The output folder {str(path)!r} cannot be written "
                             f"({str(self.base)!r} is not writable).",
                             "choose a writable folder with --out.")

    def _entries(self):
        return sorted(p.name for p in self.path.iterdir() if not p.name.startswith(PREFIX))

    def _check_contents(self):
        entries = self._entries()
        if not entries:
            return False
        if (self.path / "summary.json").is_file():
            if self.overwrite:
                others = [e for e in entries if e not in _result_files(self.path)]
                if others:  # the user's own files beside the result: never deleted
                    shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                    raise InputError(
                        f"The output folder {str(self.path)!r} holds a result and other "
                        f"files ({shown}): --overwrite would delete them too.",
                        "move those files out of the folder, or choose another --out.")
                return True
            raise InputError(
                f"The output folder {str(self.path)!r} already holds a result.",
                "add --overwrite to replace it as a whole, or choose another --out.")
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise InputError(
            f"The output folder {str(self.path)!r} holds other files ({shown}), not a "
            "meeg-inverse result.",
            "choose a new or empty folder with --out (--overwrite only replaces a previous "
            "result).")

    # ------------------------------------------------------------ life cycle
    def acquire(self):
        """Lock the folder, remove stale staging folders, and make the staging folder."""
        self._lock()
        try:
            self._remove_stale()
            if self.path.is_dir():
                self._check_contents()  # may have changed since __init__
            self.staging = self.base / f"{PREFIX}partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                self.staging.mkdir()
            except OSError as exc:
                self.staging = None
                raise InputError(f"The output folder {str(self.path)!r} cannot be written: "
                                 f"{exc.strerror} ({str(self.base)!r}).",
                                 "choose a writable folder with --out.") from None
        except BaseException:
            self.release()
            raise
        return self

    def _lock(self):
        if fcntl is None:  # pragma: no cover
            return
        digest = hashlib.sha1(str(self.path).encode()).hexdigest()[:12]
        self._lock_path = self.base / f"{PREFIX}{digest}.lock"
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self._lock_path = None
            raise InputError(f"The output folder {str(self.path)!r} cannot be written: "
                             f"{exc.strerror} ({str(self.base)!r}).",
                             "choose a writable folder with --out.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            self._lock_path = None
            raise InputError(
                f"Another meeg-inverse run (process {other}) is writing into "
                f"{str(self.path)!r}.",
                "wait for it to finish, or choose another --out.") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _remove_stale(self):
        """Staging folders of dead processes, old-style ones of this folder, free locks."""
        legacy = re.compile(r"^\." + re.escape(self.path.name) + r"\.partial-(\d+)$")
        places = {self.base, self.path.parent} if self.path.parent.is_dir() else {self.base}
        for place in places:
            remove_stale(place, keep=self._lock_path, legacy=legacy)


    def commit(self):
        """Put the staged files in place of the folder, as a whole."""
        with _signals_deferred():
            if self.base == self.path:
                for name in self._entries():
                    target = self.path / name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    else:
                        target.unlink()
                for item in self.staging.iterdir():
                    os.replace(item, self.path / item.name)
                self.staging.rmdir()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self.staging, self.path)
            self.staging = None

    def release(self):
        """Remove the staging folder (if not committed) and unlock."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        if self._lock_fd is not None:
            try:
                if self._lock_path is not None:
                    self._lock_path.unlink()
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def remove_stale(place, *, keep=None, legacy=None):
    """Remove, in folder ``place``, the staging folders of dead processes and free locks.

    What a killed process (a Dask worker closed by Ctrl-C, a SIGKILL) leaves; a live
    process's staging folder and a held lock are kept.
    """
    try:
        entries = list(Path(place).iterdir())
    except OSError:
        return
    for entry in entries:
        match = _STAGING.match(entry.name) or (legacy.match(entry.name) if legacy else None)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
        elif _LOCK.match(entry.name) and entry != keep and fcntl is not None:
            _remove_free_lock(entry)


def _remove_free_lock(entry):
    try:
        fd = os.open(entry, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        entry.unlink()  # nobody holds it: left by a killed run
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM/SIGHUP while files are swapped, so no half state is left."""
    sigs = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - no sigmask
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
