"""Panel renderers: pyvista off-screen (EGL/OSMesa) with a matplotlib 3D fallback.

A *scene* is a list of layers, each a dict:
``{'type': 'mesh', 'rr', 'tris', 'rgb' (n_vertices, 3) in 0..1, 'opacity'}`` or
``{'type': 'spheres', 'centers' (n, 3), 'radii' (n,), 'rgb' (n, 3)}``.
``render_panel`` returns an (h, w, 3) uint8 image seen from a named view.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np

_BACKEND = None
BACKEND_ENV = "MEEG_INVERSE_VIZ_BACKEND"

# View direction = from the focal point towards the camera.
_VIEW_DIRS = {
    "lateral": {"lh": (-1, 0, 0), "rh": (1, 0, 0)},
    "medial": {"lh": (1, 0, 0), "rh": (-1, 0, 0)},
    "left": (-1, 0, 0), "right": (1, 0, 0),
    "dorsal": (0, 0, 1), "ventral": (0, 0, -1),
    "rostral": (0, 1, 0), "frontal": (0, 1, 0), "caudal": (0, -1, 0),
    "axial": (0, 0, 1), "sagittal": (-1, 0, 0), "coronal": (0, -1, 0),
}
_VIEW_UP = {"dorsal": (0, 1, 0), "ventral": (0, 1, 0), "axial": (0, 1, 0)}
VIEWS = tuple(_VIEW_DIRS)


def view_vectors(view, hemi="lh"):
    if view not in _VIEW_DIRS:
        raise ValueError(f"unknown view {view!r}; use one of {VIEWS}")
    d = _VIEW_DIRS[view]
    if isinstance(d, dict):
        d = d.get(hemi, d["lh"])
    return np.asarray(d, float), np.asarray(_VIEW_UP.get(view, (0, 0, 1)), float)


def _configure_vtk_env():
    """Prefer VTK's EGL window when there is no X display (avoids X connection warnings)."""
    if not os.environ.get("DISPLAY") and "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ:
        os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"


_PROBE = r"""
import os, sys
import pyvista as pv
pv.OFF_SCREEN = True
p = pv.Plotter(off_screen=True, window_size=(48, 48))
p.add_mesh(pv.Sphere(), color="red")
img = p.screenshot(return_img=True)
p.close()
sys.exit(0 if img.std() > 0 else 3)
"""


_PROBE_RUN = None


def start_backend_probe():
    """Start the off-screen rendering check in the background (see :func:`get_backend`).

    The check costs a subprocess that imports VTK (1-2 s); started early (while the
    inverse is solved) it is done by the time the figures are drawn. Does nothing when
    the backend is already known or forced.
    """
    global _PROBE_RUN
    if _BACKEND is not None or _PROBE_RUN is not None:
        return _PROBE_RUN
    if os.environ.get(BACKEND_ENV, "").strip().lower() in ("pyvista", "matplotlib"):
        return None
    _configure_vtk_env()
    _PROBE_RUN = subprocess.Popen([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=dict(os.environ))
    return _PROBE_RUN


def get_backend():
    """'pyvista' when VTK can render off-screen here, else 'matplotlib' (with a warning).

    The check runs once per process in a subprocess (a broken GL stack may abort the process).
    Force a backend with the environment variable ``MEEG_INVERSE_VIZ_BACKEND``.
    """
    global _BACKEND, _PROBE_RUN
    if _BACKEND is not None:
        return _BACKEND
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced in ("pyvista", "matplotlib"):
        _BACKEND = forced
        if forced == "pyvista":
            _configure_vtk_env()
        return _BACKEND
    _configure_vtk_env()
    reason = None
    probe = None
    try:
        probe = _PROBE_RUN or start_backend_probe()
        out, err = probe.communicate(timeout=120)
        if probe.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            reason = f"exit code {probe.returncode}: {' | '.join(tail)}"
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot render"
        reason = repr(exc)
        if probe is not None:
            probe.kill()
    _PROBE_RUN = None
    if reason is None:
        _BACKEND = "pyvista"
    else:
        warnings.warn(
            "VTK cannot render off-screen on this machine (" + reason + "); falling back to "
            "lower-quality matplotlib 3D rendering. Install the system OpenGL libraries "
            "(scripts/install_system_deps.sh: libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6) "
            f"or set {BACKEND_ENV}=matplotlib to silence this warning.",
            RuntimeWarning, stacklevel=3)
        _BACKEND = "matplotlib"
    return _BACKEND


def _fit_camera(points, direction, up, aspect, margin=1.04):
    """Parallel-projection camera framing ``points`` seen from ``direction``."""
    center = 0.5 * (points.min(0) + points.max(0))
    d = direction / np.linalg.norm(direction)
    u = up - d * (up @ d)
    u /= np.linalg.norm(u)
    r = np.cross(u, d)
    rel = points - center
    h = np.ptp(rel @ u) if len(rel) else 1.0
    w = np.ptp(rel @ r) if len(rel) else 1.0
    scale = 0.5 * max(h, w / aspect) * margin
    dist = 2.0 * np.linalg.norm(np.ptp(points, axis=0)) + 0.1
    return center, center + d * dist, u, scale


def render_panel(layers, view, hemi="lh", size=(640, 480), background="white", backend=None):
    return render_panels(layers, [view], hemi, size, background, backend)[0]


def render_panels(layers, views, hemi="lh", size=(640, 480), background="white", backend=None):
    """Render the same layers from several views; returns one (h, w, 3) image per view.

    With pyvista the scene (meshes subdivided, glyphs built) is made once and only the
    camera moves between screenshots.
    """
    backend = backend or get_backend()
    if backend == "pyvista":
        return _render_pyvista(layers, list(views), hemi, size, background)
    return [_render_matplotlib(layers, view, hemi, size, background) for view in views]


def _frame_points(layers):
    pts = [ly["rr"] for ly in layers if ly["type"] == "mesh" and ly.get("frame", True)]
    if not pts:
        pts = [ly["centers"] for ly in layers if ly["type"] == "spheres"]
    return np.concatenate(pts) if pts else np.zeros((1, 3))


def _render_pyvista(layers, views, hemi, size, background):
    import pyvista as pv

    pv.OFF_SCREEN = True
    _skip_pyvista_display_check()
    pl = pv.Plotter(off_screen=True, window_size=list(size), lighting="light_kit")
    try:
        pl.set_background(background)
        for ly in layers:
            if ly["type"] == "mesh":
                faces = np.hstack([np.full((len(ly["tris"]), 1), 3), ly["tris"]]).ravel()
                mesh = pv.PolyData(np.asarray(ly["rr"], float), faces)
                mesh.point_data["rgb"] = np.clip(ly["rgb"], 0, 1).astype(float)
                if ly.get("subdivide", True) and mesh.n_points < 20000:
                    # coarse source-space meshes: Loop subdivision gives a smooth cortex
                    mesh = mesh.subdivide(2 if mesh.n_points < 5000 else 1, "loop")
                mesh.point_data["rgb"] = (np.clip(mesh.point_data["rgb"], 0, 1)
                                          * 255).astype(np.uint8)
                pl.add_mesh(mesh, scalars="rgb", rgb=True, smooth_shading=True,
                            opacity=ly.get("opacity", 1.0), ambient=0.25, diffuse=0.75,
                            specular=0.08, specular_power=15, show_scalar_bar=False)
            elif ly["type"] == "spheres" and len(ly["centers"]):
                pts = pv.PolyData(np.asarray(ly["centers"], float))
                pts.point_data["radius"] = np.asarray(ly["radii"], float)
                pts.point_data["rgb"] = (np.clip(ly["rgb"], 0, 1) * 255).astype(np.uint8)
                glyphs = pts.glyph(scale="radius", orient=False, factor=1.0,
                                   geom=pv.Sphere(radius=1.0, theta_resolution=24,
                                                  phi_resolution=24))
                pl.add_mesh(glyphs, scalars="rgb", rgb=True, smooth_shading=True,
                            ambient=0.3, diffuse=0.7, specular=0.3, specular_power=30,
                            show_scalar_bar=False)
        points = _frame_points(layers)
        images = []
        for view in views:
            direction, up = view_vectors(view, hemi)
            center, position, u, scale = _fit_camera(points, direction, up, size[0] / size[1])
            pl.camera.SetParallelProjection(True)
            pl.camera_position = [tuple(position), tuple(center), tuple(u)]
            pl.camera.parallel_scale = scale
            pl.reset_camera_clipping_range()
            pl.render()  # off-screen: without it every screenshot shows the first view
            images.append(np.asarray(pl.screenshot(return_img=True))[..., :3].copy())
    finally:
        pl.close()
    return images


def _skip_pyvista_display_check():
    """Tell pyvista that plotting works: :func:`get_backend` found VTK renders off-screen.

    Otherwise its first plotter asks ``xset -q`` (a subprocess forked from this
    process, large by then) whether an X server runs, which off-screen rendering
    does not need.
    """
    try:
        from pyvista.plotting import tools
    except ImportError:  # pragma: no cover - another pyvista layout: it checks itself
        return
    if getattr(tools, "SUPPORTS_PLOTTING", True) is None:
        tools.SUPPORTS_PLOTTING = True


def _render_matplotlib(layers, view, hemi, size, background):
    """Flat-shaded painter's-algorithm rendering with matplotlib (no OpenGL needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    direction, up = view_vectors(view, hemi)
    center, _, u, scale = _fit_camera(_frame_points(layers), direction, up, size[0] / size[1])
    d = direction / np.linalg.norm(direction)
    r = np.cross(u, d)
    light = d + 0.4 * u + 0.3 * r
    light /= np.linalg.norm(light)
    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, facecolor=background)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    ax.set_xlim(-scale * size[0] / size[1], scale * size[0] / size[1])
    ax.set_ylim(-scale, scale)
    ax.set_facecolor(background)
    polys, colors, depth = [], [], []
    sphere_v, sphere_t = _unit_sphere()
    for ly in layers:
        if ly["type"] == "mesh":
            items = [(ly["rr"], ly["tris"], ly["rgb"], ly.get("opacity", 1.0), True)]
        else:
            items = [(c + rad * sphere_v, sphere_t, np.tile(col, (len(sphere_v), 1)), 1.0, False)
                     for c, rad, col in zip(ly["centers"], ly["radii"], ly["rgb"])]
        for rr, tris, rgb, alpha, cull in items:
            tri = rr[tris]
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
            facing = n @ d
            keep = facing > -0.05 if (cull and alpha >= 1) else np.ones(len(tri), bool)
            shade = 0.5 + 0.5 * np.abs(n[keep] @ light)
            col = rgb[tris[keep]].mean(1) * shade[:, None]
            rel = tri[keep] - center
            polys.append(np.stack([rel @ r, rel @ u], axis=-1))
            colors.append(np.c_[np.clip(col, 0, 1), np.full(len(col), alpha)])
            depth.append((rel @ d).mean(1))
    if polys:
        polys, colors, depth = np.concatenate(polys), np.concatenate(colors), np.concatenate(depth)
        order = np.argsort(depth)
        ax.add_collection(PolyCollection(polys[order], facecolors=colors[order],
                                         edgecolors=colors[order], linewidths=0.2))
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


_SPHERE = None


def _unit_sphere():
    global _SPHERE
    if _SPHERE is None:
        from scipy.spatial import ConvexHull

        golden = np.pi * (3 - np.sqrt(5))
        k = np.arange(80) + 0.5
        z = 1 - 2 * k / 80
        rad = np.sqrt(1 - z ** 2)
        v = np.c_[rad * np.cos(golden * k), rad * np.sin(golden * k), z]
        _SPHERE = (v, ConvexHull(v).simplices)
    return _SPHERE
