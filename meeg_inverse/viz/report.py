"""Write every figure plus the viewer and an index page."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ._utils import NAM, atomic_write_text, format_time, pick_time_index, source_amplitudes
from .brain import plot_source_map
from .timecourses import plot_fit_residual, plot_time_courses
from .viewer import write_viewer_html


def render_all(stc, src, out_dir, data=None, fit=None, residual=None, times=None,
               subject=None, subjects_dir=None, trans=None, surface="auto", time=None,
               title=None, views=None, info=None, viewer=True, source_map_times=None,
               summary=None):
    """Write the source map(s), time courses, data/fit/residual panel, the HTML viewer and an
    ``index.html`` linking them into ``out_dir``.

    ``data``/``fit``/``residual``: whitened (n_channels, n_times) arrays (``times`` defaults
    to ``stc.times``); the fit panel is skipped when they are not given.
    ``source_map_times``: extra time points (s) for additional source maps (the peak time
    is always drawn). ``info`` (dict of text, e.g. solver settings) and ``summary`` (a
    result summary dict; its scalar entries, nested ones as ``a.b``) are listed on the
    index page. Returns ``{name: path}`` (``'index'`` included). Every file is written
    atomically, so an interrupted run leaves no half-written file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "Sparse source estimate"
    paths = {}
    t_peak = float(stc.times[pick_time_index(stc, time)])
    paths["source_map"] = plot_source_map(stc, src, out / "source_map.png", subject=subject,
                                          subjects_dir=subjects_dir, time=t_peak, trans=trans,
                                          surface=surface, views=views, title=title)
    for k, t in enumerate(source_map_times or ()):
        paths[f"source_map_{k + 1}"] = plot_source_map(
            stc, src, out / f"source_map_{1e3 * t:+.0f}ms.png", subject=subject,
            subjects_dir=subjects_dir, time=t, trans=trans, surface=surface, views=views,
            title=title)
    paths["time_courses"] = plot_time_courses(stc, out / "time_courses.png", time=t_peak,
                                              src=src)
    if data is not None and fit is not None:
        tt = stc.times if times is None else times
        paths["fit_residual"] = plot_fit_residual(tt, data, fit, out / "fit_residual.png",
                                                  residual=residual)
    if viewer:
        paths["viewer"] = write_viewer_html(stc, src, out / "viewer.html", subject=subject,
                                            subjects_dir=subjects_dir, title=title,
                                            trans=trans, surface=surface)
    extra = dict(info or {})
    extra.update(_flatten(summary or {}))
    paths["index"] = _write_index(out, paths, stc, title, extra)
    return {k: Path(v) for k, v in paths.items()}


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


def _write_index(out, paths, stc, title, info):
    amp = source_amplitudes(stc)
    n_active = int(np.sum(amp.max(1) > 0)) if amp.size else 0
    t_idx = pick_time_index(stc)
    rows = [("Active sources", str(n_active)),
            ("Peak amplitude", f"{amp.max() * NAM:.3g} nA·m" if amp.size else "-"),
            ("Peak time", format_time(stc.times[t_idx])),
            ("Time range", f"{1e3 * stc.times[0]:.1f} to {1e3 * stc.times[-1]:.1f} ms")]
    rows += [(str(k), str(v)) for k, v in info.items()]
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                      for k, v in rows)
    captions = {"source_map": "Source map at the peak time",
                "time_courses": "Time courses of the active sources",
                "fit_residual": "Whitened data, fit and residual"}
    figs = []
    for key, p in paths.items():
        if Path(p).suffix != ".png":
            continue
        cap = captions.get(key, f"Source map ({Path(p).stem})")
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
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{table}</table>
{viewer}
{''.join(figs)}
</body></html>
"""
    return atomic_write_text(out / "index.html", page)
