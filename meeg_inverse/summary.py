"""A plain description of a localization: one record per active source.

The JSON written from it is what a user reads first: where each source is (head,
MRI and MNI coordinates in mm, hemisphere), when it peaks and how strong it is
(nA·m), and how much of the data it explains.
"""

import json
import os
from pathlib import Path

import mne
import numpy as np

from .forward import TEMPLATE_SUBJECT


def mni_transform(subject, subjects_dir):
    """MRI (surface RAS, m) → MNI (m) transform of a subject, or None.

    fsaverage's surface RAS is MNI305 space, so the template needs none.
    """
    if subject == TEMPLATE_SUBJECT:
        return np.eye(4)
    if subject is None or subjects_dir is None:
        return None
    try:
        return mne.read_talxfm(subject, subjects_dir)["trans"]
    except Exception:  # missing talairach.xfm: MNI is then unknown
        return None


def source_frames(problem, indices, *, subject=None, subjects_dir=None):
    """Positions of sources in the head, MRI and MNI frames.

    Parameters
    ----------
    problem : InverseProblem
    indices : array of int
        Forward source indices.
    subject, subjects_dir
        For MNI coordinates (talairach.xfm of the subject).

    Returns
    -------
    frames : dict
        ``{'head': ndarray (n, 3), 'mri': ..., 'mni': ndarray | None}`` in m.
    hemis : list of str | None
    """
    rr_mri, hemis = problem.source_positions(np.asarray(indices, int))
    rr_head = mne.transforms.apply_trans(problem.forward["mri_head_t"], rr_mri)
    to_mni = mni_transform(subject, subjects_dir)
    rr_mni = None if to_mni is None else mne.transforms.apply_trans(to_mni, rr_mri)
    return {"head": rr_head, "mri": rr_mri, "mni": rr_mni}, hemis


def source_label_at(problem, index, position_mni_mm, *, subject=None, subjects_dir=None):
    """Hemisphere and anatomical label of a position near grid source ``index``.

    The subject's parcellation names the grid source's vertex when it has one; otherwise
    the MNI atlas names ``position_mni_mm`` (mm, or None). Returns ``(hemisphere, label)``
    with ``label`` as in :func:`meeg_inverse.anatomy.source_labels`.
    """
    from .anatomy import source_labels

    _, hemis = problem.source_positions(np.array([int(index)]))
    vertnos = np.concatenate([s["vertno"] for s in problem.forward["src"]])
    [label] = source_labels(None if position_mni_mm is None else np.array([position_mni_mm]),
                            hemispheres=hemis, vertices=[int(vertnos[index])], subject=subject,
                            subjects_dir=subjects_dir)
    return hemis[0], label


def source_records(problem, coef_full, *, subject=None, subjects_dir=None):
    """Describe every active source of a full solution.

    Parameters
    ----------
    problem : InverseProblem
        The problem solved.
    coef_full : ndarray, shape (n_rows, n_times)
        Full solution of the whitened problem (rows of the unmasked space).
    subject, subjects_dir
        For MNI coordinates (talairach.xfm of the subject).

    Returns
    -------
    records : list of dict
        Sorted by decreasing peak amplitude.
    """
    n_orient, n_times = problem.n_orient, coef_full.shape[1]
    # The active sources' rows only: one boolean pass over the solution, no
    # physical-unit copy of all of it (15 MB on the 5 mm volume).
    active = np.flatnonzero(coef_full.reshape(-1, n_orient * n_times).any(axis=1))
    if len(active) == 0:
        return []
    active_rows = (active[:, None] * n_orient + np.arange(n_orient)).ravel()
    physical = problem.to_physical(coef_full[active_rows], active_rows)
    amplitude = np.linalg.norm(physical.reshape(-1, n_orient, n_times), axis=1)
    frames, hemis = source_frames(problem, active, subject=subject, subjects_dir=subjects_dir)
    rr_head, rr_mri, rr_mni = frames["head"], frames["mri"], frames["mni"]
    vertnos = np.concatenate([s["vertno"] for s in problem.forward["src"]])
    data_energy = float(np.sum(problem.data ** 2))
    gain_full = problem.gain
    records = []
    for j, k in enumerate(active):
        rows = slice(k * n_orient, (k + 1) * n_orient)
        if problem.source_mask is not None:
            masked_rows = np.flatnonzero(problem.source_mask[rows])
            masked_index = np.cumsum(problem.source_mask) - 1
            cols = masked_index[rows][masked_rows]
            contribution = gain_full[:, cols] @ coef_full[rows][masked_rows]
        else:
            contribution = gain_full[:, rows] @ coef_full[rows]
        residual = problem.data - contribution
        peak = int(np.argmax(amplitude[j]))
        records.append({
            "source_index": int(k),
            "vertex": int(vertnos[k]),
            "hemisphere": hemis[j],
            "position_head_mm": np.round(rr_head[j] * 1e3, 2).tolist(),
            "position_mri_mm": np.round(rr_mri[j] * 1e3, 2).tolist(),
            "position_mni_mm": None if rr_mni is None else np.round(rr_mni[j] * 1e3, 2).tolist(),
            "peak_time_s": round(float(problem.times[peak]), 5),
            "peak_amplitude_nAm": float(amplitude[j, peak] * 1e9),
            "explained_variance": 1.0 - float(np.sum(residual ** 2)) / data_energy,
        })
    records.sort(key=lambda r: -r["peak_amplitude_nAm"])
    return records


def write_json(obj, fname):
    """Write JSON atomically: a temporary file renamed into place."""
    fname = Path(fname)
    tmp = fname.with_name(f".{fname.name}.tmp{os.getpid()}")
    try:
        # JSON has no NaN/Infinity (``json.dumps`` would write them bare, which strict
        # readers, e.g. a browser's JSON.parse, refuse): they are written as null.
        tmp.write_text(json.dumps(_finite(obj), indent=2, default=_json_default,
                                  allow_nan=False) + "\n")
        tmp.replace(fname)
    finally:
        if tmp.exists():
            tmp.unlink()
    return fname


def _finite(value):
    """``value`` with every non-finite float (nan, ±inf) of it, nested, replaced by None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def many_sources_note(n_active, n_orient, n_channels, penalty, *, cli=False):
    """A note for estimates with many active sources, or None.

    The threshold is that of the assessment's ``many_sources`` warning
    (:data:`meeg_inverse.assessment.MANY_SOURCES`); the note names the options
    that give a sparser answer, as Python arguments (or CLI options).

    Parameters
    ----------
    n_active : int
        Active source positions.
    n_orient : int
        Rows (orientations) per source.
    n_channels : int
        Whitened channels (the rank of the noise covariance).
    penalty : str
    cli : bool
        Name the command-line options instead of the Python arguments.

    Returns
    -------
    note : str | None
    """
    from .assessment import MANY_SOURCES

    if n_active <= MANY_SOURCES:
        return None
    alpha = "a larger --alpha (e.g. 0.5)" if cli else "a larger alpha (e.g. alpha=50)"
    other = ("--penalty l05" if cli else "penalty='l05'") if penalty in ("l21", "l1",
                                                                       "weighted_l21") else None
    fix = alpha + (f", or the non-convex {other}, which keeps fewer, stronger sources"
                   if other else "")
    return (f"{n_active} sources are active ({n_active * n_orient} source components for "
            f"{n_channels} independent measurements): more than the few a focal response "
            f"has, and the weak ones are not to be trusted. For a sparser answer use {fix}.")
