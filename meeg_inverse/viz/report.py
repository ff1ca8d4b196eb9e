"""Write every figure plus the viewer and an index page."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .._choices import selection_criterion
from ._utils import NAM, atomic_write_text, map_time, source_amplitudes
from .brain import plot_source_map
from .timecourses import plot_fit_residual, plot_time_courses
from .viewer import write_viewer_html


def render_all(stc, src, out_dir, data=None, fit=None, residual=None, times=None,
               subject=None, subjects_dir=None, trans=None, surface="auto", time=None,
               title=None, views=None, info=None, viewer=True, source_map_times=None,
               summary=None, nave=1, extra_figures=None):
    """Write the source map(s), time courses, data/fit/residual panel, the HTML viewer and an
    ``index.html`` linking them into ``out_dir``.

    ``data``/``fit``/``residual``: whitened (n_channels, n_times) arrays (``times`` defaults
    to ``stc.times``); the fit panel is skipped when they are not given.
    ``time``: the main source map's time (s); default the peak of the strongest of the
    summary's ``reported_sources``, else the time of the largest amplitude (one rule,
    :func:`~meeg_inverse.viz._utils.map_time`, for the map, the time courses' marker, the
    viewer's first time and the index; their titles say which).
    ``source_map_times``: extra time points (s) for additional source maps. ``info``
    (dict of text, e.g. solver settings) and ``summary`` (a result summary dict; its
    scalar entries, nested ones as ``a.b``) are listed on the index page. ``nave``: trials
    averaged in ``data`` (the noise band of the fit panel is ``±1/sqrt(nave)``). ``extra_figures``: ``{name: path}`` of figures already drawn in
    ``out_dir`` (e.g. the λ curve, ``lambda_curve``) to link from the index.
    Returns ``{name: path}`` (``'index'`` included). Every file is written
    atomically, so an interrupted run leaves no half-written file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "Sparse source estimate"
    summary = summary or {}
    labels, faded = _row_labels(stc, src, summary.get("sources") or [])
    flag = _title_flag(summary.get("warnings") or [])
    if flag:
        title = f"{title} — {flag}"
    paths = {}
    reported = summary.get("reported_sources")
    when = map_time(stc, reported, time)
    paths["source_map"] = plot_source_map(stc, src, out / "source_map.png", subject=subject,
                                          subjects_dir=subjects_dir, time=time, trans=trans,
                                          surface=surface, views=views, title=title,
                                          faded=faded, reported=reported)
    for k, t in enumerate(source_map_times or ()):
        paths[f"source_map_{k + 1}"] = plot_source_map(
            stc, src, out / f"source_map_{1e3 * t:+.0f}ms.png", subject=subject,
            subjects_dir=subjects_dir, time=t, trans=trans, surface=surface, views=views,
            title=title)
    paths["time_courses"] = plot_time_courses(
        stc, out / "time_courses.png", time=when.time, src=src, labels=labels, faded=faded,
        title=(f"Time courses of the {len(summary.get('sources') or [])} active sources"
               f"{' — ' + flag if flag else ''}") if summary.get("sources") else None)
    if data is not None and fit is not None:
        tt = stc.times if times is None else times
        paths["fit_residual"] = plot_fit_residual(tt, data, fit, out / "fit_residual.png",
                                                  residual=residual, nave=nave)
    if viewer:
        paths["viewer"] = write_viewer_html(stc, src, out / "viewer.html", subject=subject,
                                            subjects_dir=subjects_dir, title=title,
                                            trans=trans, surface=surface, labels=labels,
                                            faded=faded, time=time, reported=reported)
    paths.update(extra_figures or {})
    extra = dict(info or {})
    extra.update(_flatten(summary))
    paths["index"] = _write_index(out, paths, stc, title, extra, summary, when)
    return {k: Path(v) for k, v in paths.items()}


#: Caption of each figure by its name in :func:`render_all`'s paths: the index
#: page's and the result report's (:mod:`meeg_inverse.report`), through
#: :func:`figure_caption`.
FIGURE_CAPTIONS = {"source_map": "Source map at the peak time",
                   "time_courses": "Time courses of the active sources",
                   "fit_residual": "Whitened data, fit and residual"}


def figure_caption(name, path, summary=None, captions=None):
    """The caption of a figure of a result folder.

    Parameters
    ----------
    name : str
        The figure's name in :func:`render_all`'s paths (``lambda_curve`` for
        the λ curve).
    path : path-like
        Its file: names a figure :data:`FIGURE_CAPTIONS` does not list.
    summary : dict | None
        The result summary: the λ curve's caption names the criterion of the
        rule that chose λ (``alpha_selection.method``).
    captions : dict | None
        Captions that replace the standard ones by name (the source map's names
        its time: :class:`~meeg_inverse.viz._utils.MapTime`).

    Returns
    -------
    caption : str
    """
    if name in (captions or {}):
        return captions[name]
    if name == "lambda_curve":
        method = ((summary or {}).get("alpha_selection") or {}).get("method")
        criterion = ("selection criterion" if method is None
                     else selection_criterion(method)[0])
        return f"The λ curve: {criterion} along λ (the chosen λ marked)"
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    stem = Path(path).stem
    return f"Source map ({stem})" if name.startswith("source_map") else stem


#: Warnings severe enough to be written into the figures' titles.
TITLE_FLAGS = {"field_cancellation": "fields cancel", "implausible_amplitude":
               "implausible amplitudes", "many_sources": "many sources",
               "fits_noise": "fits noise", "empty": "no source"}


def _title_flag(warnings):
    found = [TITLE_FLAGS[w["code"]] for w in warnings if w["code"] in TITLE_FLAGS]
    return ("WARNING: " + ", ".join(found)) if found else ""


def _row_labels(stc, src, sources):
    """Per row of ``stc``: 'label (conf 0.93)' from the summary's sources, and faded flags."""
    from ..confidence import CONFIDENT
    from .timecourses import source_labels

    labels = source_labels(stc, src)
    faded = np.zeros(len(labels), bool)
    by_vertex = {(r.get("hemisphere"), r.get("vertex")): r for r in sources}
    names = ("lh", "rh") if len(stc.vertices) == 2 else [None] * len(stc.vertices)
    row = 0
    for name, verts in zip(names, stc.vertices):
        for v in verts:
            rec = by_vertex.get((name, int(v)))
            if rec is None and name is None:
                rec = next((r for r in sources if r.get("vertex") == int(v)), None)
            if rec is not None:
                text = rec.get("label") or labels[row]
                conf = rec.get("confidence")
                if conf is not None:
                    text += f" (conf {conf:.2f})"
                    faded[row] = conf < CONFIDENT
                labels[row] = text
            row += 1
    return labels, faded


def _flatten(d, prefix="", max_items=40):
    """Scalar entries of a (nested) dict as {'a.b': value}; lists/arrays are skipped."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + ".", max_items))
        elif isinstance(v, (str, int, float, bool, np.integer, np.floating)) or v is None:
            out[key] = f"{v:.4g}" if isinstance(v, (float, np.floating)) else v
        if len(out) >= max_items:
            break
    return dict(list(out.items())[:max_items])


def _source_cells(r, position):
    """(row class, cells Region … Confidence) of a source record; ``position`` in mm
    (the frame the table's header names) or None."""
    pos = "—" if position is None else "({:.0f}, {:.0f}, {:.0f})".format(*position)
    conf = r.get("confidence")
    cls = ' class="uncertain"' if conf is not None and conf < 0.5 else ""
    cells = (f"<td>{html.escape(str(r.get('label') or '—'))}</td>"
             f"<td>{html.escape(str(r.get('hemisphere')))}</td><td>{pos}</td>"
             f"<td>{r['peak_amplitude_nAm']:.1f}</td><td>{1e3 * r['peak_time_s']:.0f}</td>"
             f"<td>{'—' if conf is None else f'{conf:.2f}'}</td>")
    return cls, cells


_SOURCE_HEAD = ("<th>Region</th><th>Hemisphere</th><th>{}</th><th>Peak (nA·m)</th>"
                "<th>Peak time (ms)</th><th>Confidence</th>")


def _position_frame(records):
    """(record key, column name) of the positions a table shows: MNI where every record
    has it, else (no subject's MRI) head coordinates, named so."""
    if all(r.get("position_mni_mm") is not None for r in records):
        return "position_mni_mm", "MNI"
    return "position_head_mm", "head"


def _sources_table(sources):
    """An HTML table of the grid sources (strongest first), with their reported source."""
    if not sources:
        return "<p>No active source.</p>"
    grouped = any("source" in r for r in sources)
    frame, name = _position_frame(sources)
    head = ("<tr><th>#</th>" + ("<th>Reported source</th>" if grouped else "")
            + _SOURCE_HEAD.format(f"{name[0].upper()}{name[1:]} (mm)")
            + "<th>Explained variance</th></tr>")
    rows = []
    for k, r in enumerate(sources, 1):
        cls, cells = _source_cells(r, r.get(frame))
        group = f"<td>{r.get('source', '—')}</td>" if grouped else ""
        rows.append(f"<tr{cls}><td>{k}</td>{group}{cells}"
                    f"<td>{100 * r['explained_variance']:.1f} %</td></tr>")
    return f'<table class="sources">{head}{"".join(rows)}</table>'


def _reported_table(reported):
    """An HTML table of the reported sources: clusters of neighbouring grid sources."""
    if not reported:
        return ""
    frame, name = _position_frame(reported)
    head = ("<tr><th>Source</th>" + _SOURCE_HEAD.format(f"Position {name} (mm)")
            + "<th>Grid sources</th></tr>")
    rows = []
    for r in reported:
        cls, cells = _source_cells(r, r.get(frame))
        rows.append(f"<tr{cls}><td>{r['source']}</td>{cells}<td>{len(r['members'])}</td></tr>")
    return (f'<h3>Reported sources</h3><table class="sources">{head}{"".join(rows)}</table>'
            "<h3>Grid sources</h3>")


def _warnings_box(warnings):
    if not warnings:
        return ""
    items = "".join(f"<li><b>{html.escape(w['message'])}</b> Fix: {html.escape(w['fix'])}</li>"
                    for w in warnings)
    return f'<div class="warnings"><h2>Warnings</h2><ul>{items}</ul></div>'


def _write_index(out, paths, stc, title, info, summary=None, when=None):
    """``index.html``: the result's sources and ``info`` as tables, the viewer's link and
    the figures of ``paths`` (captions: :func:`figure_caption`); ``when``: the source
    map's :class:`~meeg_inverse.viz._utils.MapTime` (None: :func:`map_time` of ``stc``)."""
    summary = summary or {}
    # The map's caption names its time where the caller drew it at one (render_all).
    captions = {} if when is None else {"source_map": when.caption}
    when = when or map_time(stc)
    amp = source_amplitudes(stc)
    n_active = int(np.sum(amp.max(1) > 0)) if amp.size else 0
    rows = [("Active sources", str(n_active)),
            ("Peak amplitude", f"{amp.max() * NAM:.3g} nA·m" if amp.size else "-"),
            ("Source map at", when.label),
            ("Time range", f"{1e3 * stc.times[0]:.1f} to {1e3 * stc.times[-1]:.1f} ms")]
    rows += [(str(k), str(v)) for k, v in info.items()]
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                      for k, v in rows)
    figs = []
    for key, p in paths.items():
        if Path(p).suffix != ".png":
            continue
        cap = figure_caption(key, p, summary, captions)
        name = html.escape(Path(p).name)
        figs.append(f'<figure><a href="{name}"><img src="{name}" alt="{html.escape(cap)}">'
                    f"</a><figcaption>{html.escape(cap)}</figcaption></figure>")
    viewer = ('<p class="viewer"><a href="viewer.html">Open the interactive 3D viewer</a> '
              "(single self-contained file, works offline)</p>" if "viewer" in paths else "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 1250px;
       margin: 24px auto; padding: 0 16px; color: #1d232b; }}
table {{ border-collapse: collapse; margin: 8px 0 18px; }}
th, td {{ text-align: left; padding: 3px 14px 3px 0; font-size: 14px; }}
th {{ color: #5b6573; font-weight: normal; }}
figure {{ margin: 0 0 28px; }} img {{ max-width: 100%; border: 1px solid #e3e6ea; }}
figcaption {{ color: #5b6573; font-size: 14px; margin-top: 4px; }}
.viewer a {{ font-size: 17px; font-weight: bold; }}
.warnings {{ border: 2px solid #c8102e; background: #fff4f4; padding: 4px 14px; margin: 10px 0; }}
.sources td, .sources th {{ padding-right: 18px; }} tr.uncertain td {{ color: #9aa3ad; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{_warnings_box(summary.get("warnings") or [])}
<h2>Sources</h2>
{_sources_table(summary.get("sources") or [])}
<table>{table}</table>
{viewer}
{''.join(figs)}
</body></html>
"""
    return atomic_write_text(out / "index.html", page)
