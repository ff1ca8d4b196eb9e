"""Self-contained interactive HTML viewer (one file, no network at view time)."""

from __future__ import annotations

import base64
import html
import json
import webbrowser
from pathlib import Path

import numpy as np

from . import _geometry as geo
from ._utils import NAM, active_rows, atomic_write_text, map_time, signed_time_courses, \
    source_amplitudes
from ._viewer_assets import TEMPLATE
from .brain import curvature_grey
from .timecourses import source_labels


def _b64(arr, dtype):
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def _prepare_mesh(rr, tris, max_faces):
    """Subdivide very coarse meshes (smoother look) and decimate large ones."""
    rr = np.asarray(rr, float)
    tris = np.asarray(tris, np.int64)
    try:
        import pyvista as pv

        faces = np.hstack([np.full((len(tris), 1), 3), tris]).ravel()
        mesh = pv.PolyData(rr, faces)
        if len(tris) * 4 <= max_faces and len(rr) < 5000:
            mesh = mesh.subdivide(1, "loop")
        elif len(tris) > max_faces:
            mesh = mesh.triangulate().decimate(1 - max_faces / len(tris))
        mesh = mesh.triangulate().clean()
        rr = np.asarray(mesh.points, float)
        tris = np.asarray(mesh.faces).reshape(-1, 4)[:, 1:]
    except Exception:  # noqa: BLE001 - VTK filters unavailable: keep the mesh as is
        pass
    return rr, tris


def _fmt(a, digits=4):
    return [float(f"{v:.{digits}g}") for v in np.asarray(a, float).ravel()]


def viewer_payload(stc, src, subject=None, subjects_dir=None, trans=None, surface="auto",
                   title=None, max_sources=200, max_faces=60000, time=None, labels=None,
                   faded=None, reported=None):
    """The data (JSON-serialisable dict) embedded in the viewer page.

    The page opens at ``time`` (s; default :func:`~meeg_inverse.viz._utils.map_time`:
    the peak of the strongest of ``reported``, a summary's ``reported_sources``, else
    the time of the largest amplitude), which its subtitle names.

    ``labels``: one name per row of ``stc`` (anatomical region and confidence);
    default the source-space vertex numbers. ``faded``: a boolean per row, sources drawn
    washed out (low confidence).
    """
    geom = geo.source_geometry(stc, src, subject, subjects_dir, trans, surface)
    amp = source_amplitudes(stc) * NAM
    tc = signed_time_courses(stc) * NAM
    labels = labels or source_labels(stc, src)
    rows_all = active_rows(amp)
    rows = rows_all[:max_sources]
    when = map_time(stc, reported, time)
    meshes = []
    row_mesh = {}
    if geom.kind == "volume":
        rr, tris = _prepare_mesh(*geom.envelope, max_faces)
        meshes.append(dict(name="brain", label="inner skull", rr=rr, tris=tris))
        opacity = 0.22
    else:
        for h in geom.hemis:
            rr, tris = _prepare_mesh(h.rr, h.tris, max_faces)
            meshes.append(dict(name=h.hemi, label=f"{h.hemi}" + (" (fsaverage)" if
                                                                 geom.frame == "mni" else ""),
                               rr=rr, tris=tris))
            for r in h.rows:
                row_mesh[int(r)] = h.hemi
        opacity = 1.0
    pos_mm = geom.pos * 1e3
    sources = []
    for r in rows:
        sources.append(dict(label=labels[r], mesh=row_mesh.get(int(r), "brain"),
                            pos=_fmt(pos_mm[r], 6), tc=_fmt(tc[r]), amp=_fmt(amp[r]),
                            faded=bool(faded is not None and faded[r])))
    strongest = sources[0]["mesh"] if sources else "lh"
    frame = {"mri": "MRI (surface RAS)", "head": "head", "mni": "fsaverage / MNI"}.get(
        geom.frame, geom.frame)
    vmax = float(amp[rows].max()) if len(rows) else 1.0
    payload = dict(
        title=title or "Sparse source estimate",
        subtitle=f"{len(rows_all)} active source{'s' if len(rows_all) != 1 else ''} · "
                 f"{frame} coordinates · opens at {when.label}",
        times=_fmt(1e3 * np.asarray(stc.times), 6), t0=when.index, units="nA·m",
        ylabel="amplitude (nA·m)" if stc.data.ndim == 2 else "dipole norm (nA·m)",
        vmax=vmax, rmin=1.8, rmax=5.5, opacity=opacity,
        view=[0, 10] if strongest == "rh" else [180, 10],
        n_hidden=int(len(rows_all) - len(rows)), sources=sources,
        meshes=[dict(name=m["name"], label=m["label"],
                     positions=_b64(1e3 * m["rr"], "<f4"), indices=_b64(m["tris"], "<u4"),
                     grey=_b64(np.round(255 * curvature_grey(m["rr"], m["tris"])), "u1"))
                for m in meshes],
    )
    return payload


def write_viewer_html(stc, src, fname, subject=None, subjects_dir=None, title=None, trans=None,
                      surface="auto", max_sources=200, max_faces=60000, time=None, labels=None,
                      faded=None, reported=None):
    """Write a single self-contained HTML file with an interactive 3D view of the sources.

    Rotation (drag), pan (shift/right-drag), zoom (wheel), a time slider with play button,
    and picking: clicking a source sphere (or its row in the list) draws its time course.
    Everything (data and a small WebGL renderer) is inlined; the page makes no network
    request (a Content-Security-Policy forbids it). Open ``fname?autotest=1`` to run the
    built-in self-test, which writes its results as JSON into ``#autotest-result``.
    ``time`` and ``reported``: the time it opens at (:func:`viewer_payload`).
    Returns the path written.
    """
    payload = viewer_payload(stc, src, subject, subjects_dir, trans, surface, title,
                             max_sources, max_faces, time, labels=labels, faded=faded,
                             reported=reported)
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    data = data.replace("</", "<\\/")  # never close the <script> element early
    page = TEMPLATE.replace("__TITLE__", html.escape(payload["title"])).replace("__DATA__", data)
    return atomic_write_text(fname, page)


def open_viewer(path):
    """Open a viewer HTML file (or the ``viewer.html`` / ``index.html`` inside a result
    folder) in the default web browser.

    Returns
    -------
    uri : str | None
        The file URI opened, or None when no browser could be opened (headless).
    """
    path = Path(path)
    if path.is_dir():
        for name in ("viewer.html", "index.html"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise FileNotFoundError(f"no viewer.html or index.html in {path}")
    if not path.exists():
        raise FileNotFoundError(path)
    uri = path.resolve().as_uri()
    return uri if webbrowser.open(uri) else None
