"""Small shared helpers: atomic writes, units, source amplitudes."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Source amplitudes are stored in A·m; figures show nA·m.
NAM = 1e9


@contextmanager
def atomic_path(fname, suffix=None):
    """Yield a temporary path next to ``fname``; rename it onto ``fname`` on success.

    A crash inside the block leaves no half-written ``fname`` (and removes the temp file).
    """
    fname = Path(fname)
    fname.parent.mkdir(parents=True, exist_ok=True)
    suffix = fname.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{fname.stem}-", suffix=suffix, dir=fname.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, fname)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(fname, text, encoding="utf-8"):
    """Write ``text`` to ``fname`` atomically."""
    with atomic_path(fname) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(fname)


def save_figure(fig, fname, dpi=100, **kwargs):
    """Save a matplotlib figure atomically as PNG (palette-compressed when lossless-ish)."""
    import matplotlib.pyplot as plt

    fname = Path(fname)
    with atomic_path(fname) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fname.suffix.lstrip(".") or "png", **kwargs)
        if fname.suffix.lower() == ".png":
            _shrink_png(tmp)
    plt.close(fig)
    return fname


def _shrink_png(path, max_bytes=290_000):
    """Re-encode a PNG with an adaptive palette when it is larger than ``max_bytes``."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return
    if os.path.getsize(path) <= max_bytes:
        return
    img = Image.open(path).convert("RGB")
    palette = img.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE)
    img.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, format="PNG", optimize=True)


def source_amplitudes(stc):
    """Return (n_sources, n_times) non-negative amplitudes in A·m (vector stcs → norm)."""
    import mne

    if isinstance(stc, (mne.VectorSourceEstimate, mne.VolVectorSourceEstimate)):
        return np.linalg.norm(stc.data, axis=1)
    if getattr(stc, "data", None) is not None and stc.data.ndim == 3:
        return np.linalg.norm(stc.data, axis=1)
    return np.abs(stc.data)


def signed_time_courses(stc):
    """Return (n_sources, n_times) time courses: signed for fixed orientation, norm for vector."""
    import mne

    vector = (mne.VectorSourceEstimate, mne.VolVectorSourceEstimate)
    if isinstance(stc, vector) or stc.data.ndim == 3:
        return np.linalg.norm(stc.data, axis=1)
    return np.asarray(stc.data)


def active_rows(amp, max_sources=None, rtol=0.0):
    """Indices of rows with any non-zero amplitude, strongest first."""
    peak = amp.max(axis=1) if amp.size else np.zeros(len(amp))
    thr = rtol * peak.max() if peak.size and peak.max() > 0 else 0.0
    rows = np.flatnonzero(peak > thr)
    rows = rows[np.argsort(-peak[rows], kind="stable")]
    if max_sources is not None:
        rows = rows[:max_sources]
    return rows


def reported_peak(reported):
    """``(time_s, note)`` of the strongest reported source's peak, or None.

    ``reported``: a summary's ``reported_sources`` (strongest first). None when
    there is none, or the strongest has no ``peak_time_s`` (a continuous run's).
    """
    strongest = (reported or [None])[0]
    if not strongest or strongest.get("peak_time_s") is None:
        return None
    name = strongest.get("label") or strongest.get("hemisphere")
    note = f"peak of source {strongest.get('source', 1)}" + (f" ({name})" if name else "")
    return float(strongest["peak_time_s"]), note


#: Why a map is drawn where no source is reported.
GRID_PEAK_NOTE = "largest grid amplitude"


@dataclass(frozen=True)
class MapTime:
    """The time a source map is drawn at, and why (:func:`map_time`)."""

    index: int  # into stc.times
    time: float  # s
    note: str  # e.g. 'peak of source 1 (superiortemporal-rh)'; '' for a time asked for

    @property
    def label(self):
        """``'t = 92.4 ms, peak of source 1 (superiortemporal-rh)'``."""
        return format_time(self.time) + (f", {self.note}" if self.note else "")

    @property
    def caption(self):
        """The source map's caption on the result pages."""
        return f"Source map at {self.label}"


def map_time(stc, reported=None, time=None):
    """The one rule for the time of a source map, its time courses' marker and the viewer.

    ``time`` (s) when given; else the peak time of the strongest reported source
    (``reported``: a summary's ``reported_sources``) — what the result reports;
    else the time of the largest grid amplitude.
    """
    times = np.asarray(stc.times)
    peak = None if time is not None else reported_peak(reported)
    if time is not None or peak is not None:
        index = int(np.argmin(np.abs(times - float(time if peak is None else peak[0]))))
        return MapTime(index, float(times[index]), "" if peak is None else peak[1])
    amp = source_amplitudes(stc)
    index = 0 if amp.size == 0 or not np.any(amp) else int(
        np.unravel_index(np.argmax(amp), amp.shape)[1])
    return MapTime(index, float(times[index]), GRID_PEAK_NOTE)


def pick_time_index(stc, time=None, reported=None):
    """Index of the map's time in ``stc.times`` (:func:`map_time`)."""
    return map_time(stc, reported, time).index


def format_time(t):
    """``'t = 92.4 ms'`` of a time in seconds."""
    return f"t = {1e3 * t:.1f} ms"
