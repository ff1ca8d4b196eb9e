"""Small shared helpers: atomic writes, units, source amplitudes."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
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


def pick_time_index(stc, time=None):
    """Index of ``time`` (s) in ``stc.times``; default: the time of the largest amplitude."""
    amp = source_amplitudes(stc)
    if time is None:
        if amp.size == 0 or not np.any(amp):
            return 0
        return int(np.unravel_index(np.argmax(amp), amp.shape)[1])
    return int(np.argmin(np.abs(np.asarray(stc.times) - float(time))))


def format_time(t):
    return f"t = {1e3 * t:.1f} ms"
