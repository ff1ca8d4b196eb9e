"""The files of a result folder: the source estimate, the figures, the report, summary.json.

Written in two parts, so that the figures can be drawn by another process
(:mod:`meeg_inverse._stages`: the command line's figures stage imports neither
numba nor the solvers, and its peak memory does not add to the solve's):

1. :func:`write_estimate` — the stc/h5 files, in the process that solved;
2. :func:`draw_figures`, :func:`write_report` and :func:`write_summary` — from a
   :class:`FigureInputs` (plain arrays, MNE's stc and source space, the
   summary), which pickles without the solver's modules.

:func:`meeg_inverse.pipeline.write_outputs` runs both parts in one process;
the files are the same either way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ._choices import LAMBDA_CURVE_FILE

#: Keys of a forward solution holding its gain matrices: left out of the copy the
#: report describes (it shows the channels, source space and orientation only).
_GAIN_KEYS = ("sol", "_orig_sol", "sol_grad", "_orig_sol_grad")


@dataclass
class FigureInputs:
    """What the figures and the report of a result are drawn from.

    Attributes
    ----------
    stc : mne.SourceEstimate | mne.VectorSourceEstimate | mne.VolSourceEstimate
        The estimate (active sources), A·m.
    src : mne.SourceSpaces
    data, fit : ndarray, shape (n_channels, n_times)
        Whitened data and fit.
    times : ndarray, shape (n_times,)
    subject, subjects_dir, trans, nave
        As in :func:`meeg_inverse.viz.render_all`.
    selection : SimpleNamespace | None
        The λ search's curve (:func:`meeg_inverse.viz.selection.plot_sure_curve`),
        drawn into :data:`meeg_inverse._choices.LAMBDA_CURVE_FILE` whatever the rule.
    report_inputs : dict
        ``rows`` (the evoked and noise covariance as table rows) and ``forward``
        (without its gain) for :func:`meeg_inverse.report.write_result_report`.
    """

    stc: object
    src: object
    data: object
    fit: object
    times: object
    subject: str | None = None
    subjects_dir: object = None
    trans: object = None
    nave: int = 1
    selection: object = None
    report_inputs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, result, report_inputs=None):
        """The inputs of a :class:`meeg_inverse.pipeline.Localization`'s figures."""
        from .report import input_rows

        problem = result.problem
        inputs = dict(report_inputs or {})
        light = {}
        if inputs.get("evoked") is not None or inputs.get("noise_cov") is not None:
            light["rows"] = input_rows(inputs.get("evoked"), inputs.get("noise_cov"))
        if inputs.get("forward") is not None:
            light["forward"] = _without_gain(inputs["forward"])
        return cls(stc=result.stc, src=problem.forward["src"], data=problem.data,
                   fit=problem.fit(result.coef), times=problem.times, subject=result.subject,
                   subjects_dir=result.subjects_dir, trans=problem.forward["mri_head_t"],
                   nave=problem.nave, selection=_selection_curve(result.selection),
                   report_inputs=light)


def _without_gain(forward):
    """A shallow copy of a forward solution without its gain matrices (a few kB)."""
    if isinstance(forward, (str, Path)):
        return forward
    return type(forward)({k: v for k, v in forward.items() if k not in _GAIN_KEYS})


def _selection_curve(selection):
    """What the λ curve figure needs of an :class:`meeg_inverse.sure.AlphaSelection`."""
    if selection is None:
        return None
    return SimpleNamespace(
        alpha_max=selection.alpha_max, curve=selection.curve, method=selection.method,
        history={"alphas": list(selection.history["alphas"]),
                 "sure": list(selection.history["sure"])},
        alpha_fraction=selection.alpha_fraction, empty=selection.empty)


def write_estimate(result, folder, *, basename="sources", extra_files=None):
    """Write the source estimate (stc and h5) and copy ``extra_files`` into ``folder``.

    Returns
    -------
    written : dict
        Name → file name (relative to ``folder``), or a list of them.
    """
    import mne

    folder = Path(folder)
    written = {}
    stc = result.stc
    stc_base = folder / basename
    if isinstance(stc, mne.SourceEstimate):
        stc.save(stc_base, ftype="stc", overwrite=True, verbose=False)
        written["stc"] = [f"{basename}-lh.stc", f"{basename}-rh.stc"]
    stc.save(str(stc_base) + "-stc.h5", ftype="h5", overwrite=True, verbose=False)
    written["stc_h5"] = f"{basename}-stc.h5"
    for name, source in (extra_files or {}).items():
        source = Path(source)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
        written[name] = name
    return written


def draw_figures(folder, summary, inputs):
    """Draw the λ curve, the figures and the viewer into ``folder``.

    Returns
    -------
    written : dict
        Name → file name relative to ``folder``.
    """
    from .viz import render_all

    folder = Path(folder)
    extra = {}
    if inputs.selection is not None:
        from .viz.selection import plot_sure_curve

        plot_sure_curve(inputs.selection, folder / LAMBDA_CURVE_FILE)
        extra["lambda_curve"] = folder / LAMBDA_CURVE_FILE
    paths = render_all(
        inputs.stc, inputs.src, folder, data=inputs.data, fit=inputs.fit, times=inputs.times,
        subject=inputs.subject, subjects_dir=inputs.subjects_dir, trans=inputs.trans,
        summary=summary, nave=inputs.nave, extra_figures=extra)
    return {name: str(Path(p).relative_to(folder)) for name, p in paths.items()}


def write_report(folder, summary, written, inputs):
    """Write the result's report (``index.html``, ``report.h5``); ``written`` gains them."""
    from .report import write_result_report
    from .viz._utils import map_time

    summary["files"] = written
    # The map's time by the rule draw_figures drew it with (the summary alone lacks
    # the grid's peak, the fallback).
    when = map_time(inputs.stc, summary.get("reported_sources"))
    written.update(write_result_report(folder, summary, dict(written),
                                       inputs=inputs.report_inputs,
                                       captions={"source_map": when.caption}))


def write_summary(folder, summary, written):
    """Write ``summary.json`` (its ``files`` entry: ``written``); ``written`` gains it."""
    from .summary import write_json

    summary["files"] = written
    write_json(summary, Path(folder) / "summary.json")
    written["summary"] = "summary.json"
