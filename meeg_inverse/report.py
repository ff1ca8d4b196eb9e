"""Result pages as ``mne.Report``: the format MNE and MNE-BIDS-Pipeline users already read.

:func:`write_result_report` turns a result folder (the figures, the viewer,
``summary.json``) into ``index.html`` — an ``mne.Report`` holding the sources
table, the viewer (embedded), the figures, the λ curve and, for provenance,
the inputs (evoked, noise covariance, forward) — and saves the same report as
``report.h5``, the form :func:`mne.open_report` reads back (it reads HDF5
only). :func:`write_group_report` does the same for a cohort's group page.
"""

from __future__ import annotations

import html
from pathlib import Path

#: Files of a result folder a report is made of.
REPORT_HTML = "index.html"
REPORT_H5 = "report.h5"


def _embed(page_html, height=640):
    """An iframe holding a whole self-contained page (the viewer) inside the report."""
    return (f'<iframe title="3D viewer" style="width:100%;height:{height}px;border:0" '
            f'srcdoc="{html.escape(page_html, quote=True)}"></iframe>')


def _table(rows):
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f'<table class="table table-sm">{body}</table>'


def _save(report, folder):
    folder = Path(folder)
    report.save(folder / REPORT_H5, open_browser=False, overwrite=True, verbose=False)
    report.save(folder / REPORT_HTML, open_browser=False, overwrite=True, verbose=False)
    return {"report": REPORT_HTML, "report_h5": REPORT_H5}


def write_result_report(folder, summary, figures, *, title=None, inputs=None, captions=None):
    """Write ``index.html`` and ``report.h5`` (an ``mne.Report``) into a result folder.

    Parameters
    ----------
    folder : path-like
        The (staging) result folder holding the figures and ``viewer.html``.
    summary : dict
        The result summary (:meth:`meeg_inverse.pipeline.Localization.summary`).
    figures : dict
        Name → file name (relative to ``folder``) of the figures drawn.
    title : str | None
    inputs : dict | None
        ``evoked`` (mne.Evoked), ``noise_cov`` and ``forward`` (objects or
        files) shown for provenance; missing ones are left out. ``rows``
        (:func:`input_rows`) may stand for ``evoked`` and ``noise_cov``.
    captions : dict | None
        Name → caption of figures whose caption only the drawing knows (the
        source map's time: :attr:`meeg_inverse.viz._utils.MapTime.caption`).

    Returns
    -------
    files : dict
        ``report`` (the HTML page) and ``report_h5`` (for :func:`mne.open_report`).
    """
    import mne

    with mne.utils.use_log_level("error"):  # MNE's notes while it draws the inputs
        return _result_report(folder, summary, figures, title, inputs, captions or {})


def _result_report(folder, summary, figures, title, inputs, captions):
    import mne

    from .viz.report import (_flatten, _reported_table, _sources_table, _warnings_box,
                             figure_caption)

    folder = Path(folder)
    cohort = summary.get("cohort") or {}
    title = title or ("Sparse source estimate" + (
        f" — sub-{cohort['subject']} {cohort.get('condition')!r}" if cohort else ""))
    report = mne.Report(title=title, verbose=False)
    report.add_html(_warnings_box(summary.get("warnings") or []) +
                    _reported_table(summary.get("reported_sources") or []) +
                    _sources_table(summary.get("sources") or []), "Sources", section="Result")
    viewer = folder / "viewer.html"
    if viewer.is_file():
        report.add_html(_embed(viewer.read_text(encoding="utf-8")), "Interactive 3D viewer",
                        section="Result")
    for name, rel in figures.items():
        path = folder / str(rel)
        if path.suffix == ".png" and path.is_file():
            report.add_image(path, figure_caption(name, path, summary, captions),
                             section="Figures")
    flat = _flatten(summary, max_items=60)
    report.add_html(_table(flat.items()), "Settings and fit", section="Result")
    inputs = inputs or {}
    # The inputs as tables: MNE's add_evokeds / add_covariance draw joint plots
    # and topomaps per channel type (24 of the job's 52 s under cProfile, issue 15);
    # the data and the fit are already drawn in the figures above.
    rows = inputs.get("rows")
    if rows is None:
        rows = input_rows(inputs.get("evoked"), inputs.get("noise_cov"))
    if rows:
        report.add_html(_table(rows), "Inputs: evoked and noise covariance", section="Inputs")
    fwd = inputs.get("forward")
    if fwd is not None:
        report.add_forward(fwd, title="Input: forward solution", section="Inputs")
    provenance = [("recording", summary.get("recording")),
                  ("noise covariance", cohort.get("noise_cov")),
                  ("anatomy", cohort.get("anatomy")),
                  ("content key", cohort.get("key")),
                  ("meeg-inverse version", cohort.get("version"))]
    report.add_html(_table([(k, v) for k, v in provenance if v is not None]), "Provenance",
                    section="Inputs")
    return _save(report, folder)


def input_rows(evoked, cov):
    """The evoked and the noise covariance as (name, value) rows of the report's table.

    ``cov``: an ``mne.Covariance``, its file, or None; ``evoked`` an ``mne.Evoked``
    or None.
    """
    import mne

    if isinstance(cov, (str, Path)) and Path(cov).is_file():  # a cohort's: its file
        cov = mne.read_cov(cov, verbose=False)
    rows = []
    if evoked is not None:
        types = evoked.get_channel_types()
        rows += [("evoked", repr(evoked.comment)), ("averaged epochs (nave)", evoked.nave),
                 ("channels", ", ".join(f"{types.count(t)} {t}" for t in sorted(set(types)))),
                 ("sampling frequency (Hz)", f"{evoked.info['sfreq']:g}"),
                 ("time (s)", f"{evoked.times[0]:.3f} to {evoked.times[-1]:.3f}"),
                 ("baseline", evoked.baseline), ("bad channels", evoked.info["bads"] or "none")]
    if cov is not None and hasattr(cov, "ch_names"):
        rows += [("noise covariance channels", len(cov.ch_names)),
                 ("noise covariance samples (nfree)", cov["nfree"]),
                 ("noise covariance", "diagonal" if cov["diag"] else "full"),
                 ("covariance projectors", len(cov["projs"]))]
    elif cov is not None:
        rows.append(("noise covariance", str(cov)))
    return rows


def write_group_report(folder, *, title, table_html, figure=None, links=(), failures=()):
    """The group page of a cohort (``index.html`` and ``report.h5`` in ``folder``).

    Parameters
    ----------
    links : list of (str, str)
        Text and relative URL of each task's report.
    failures : list of (str, str)
        Task name and message of each failed task.
    """
    import mne

    folder = Path(folder)
    report = mne.Report(title=title, verbose=False)
    items = "".join(f'<li><a href="{html.escape(url)}">{html.escape(text)}</a></li>'
                    for text, url in links)
    report.add_html(f"<ul>{items}</ul>" if items else "<p>No result.</p>",
                    "Reports of each localization", section="Group")
    if failures:
        report.add_html(_table(failures), f"Failed ({len(failures)})", section="Group")
    if figure is not None:
        report.add_image(figure, "Every subject's sources on fsaverage (MNI), clustered",
                         section="Group")
    report.add_html(table_html, "Sources of every subject", section="Group")
    return _save(report, folder)
