"""Static source maps: sparse sources on the cortical surface or in a transparent brain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _geometry as geo
from ._render import get_backend, render_panels
from ._utils import NAM, map_time, pick_time_index, save_figure, source_amplitudes

SURFACE_VIEWS = ("lateral", "medial")
VOLUME_VIEWS = ("sagittal", "coronal", "axial")
HEMI_NAMES = {"lh": "Left hemisphere", "rh": "Right hemisphere"}
_VIEW_TITLES = {"sagittal": "Sagittal (from left)", "coronal": "Coronal (from behind)",
                "axial": "Axial (from above)"}


def source_cmap():
    """Dark red → orange → yellow: reads well on a grey brain and on white paper."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "meeg_sources", ["#7a0012", "#c8102e", "#f06b1e", "#ffb21c", "#fff35c"])


def _resolve_cmap(cmap):
    import matplotlib

    if cmap is None:
        return source_cmap()
    return matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap


def curvature_grey(rr, tris, light=0.80, dark=0.56):
    """Per-vertex grey levels: gyri light, sulci dark (sign of discrete mean curvature)."""
    from scipy import sparse

    n = len(rr)
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    adj = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(float)
    deg = np.maximum(np.asarray(adj.sum(1)).ravel(), 1)
    lap = adj @ rr / deg[:, None] - rr  # umbrella operator
    fn = np.cross(rr[tris[:, 1]] - rr[tris[:, 0]], rr[tris[:, 2]] - rr[tris[:, 0]])
    vn = np.zeros_like(rr)
    for k in range(3):
        np.add.at(vn, tris[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True) + 1e-20
    # outward normals: orient so that they point away from the centroid on average
    if np.sum((rr - rr.mean(0)) * vn) < 0:
        vn = -vn
    curv = np.sum(lap * vn, axis=1)  # > 0: concave (sulcus)
    for _ in range(2):
        curv = 0.5 * curv + 0.5 * (adj @ curv) / deg
    scale = np.percentile(np.abs(curv), 80) + 1e-20
    t = 0.5 * (1 - np.tanh(2.0 * curv / scale))  # 1 on gyri, 0 in sulci
    return dark + (light - dark) * t


#: How much of its colour a faded (low-confidence) source keeps; the rest is light grey.
FADED_KEEP = 0.35


def _sphere_layer(pos, amp_t, vmax, cmap, rmin=0.0018, rmax=0.0055, floor=0.02, faded=None):
    """Spheres sized and coloured by amplitude; silent sources small and dark grey;
    ``faded`` ones (low confidence) washed out towards light grey."""
    if len(pos) == 0:
        return None
    frac = np.clip(amp_t / vmax, 0, 1) if vmax > 0 else np.zeros(len(pos))
    live = frac > floor
    radii = np.where(live, rmin + (rmax - rmin) * np.sqrt(frac), 0.0012)
    rgb = np.where(live[:, None], cmap(frac)[:, :3], 0.25)
    if faded is not None and np.any(faded):
        rgb = np.where(np.asarray(faded)[:, None], FADED_KEEP * rgb + (1 - FADED_KEEP) * 0.85,
                       rgb)
    return dict(type="spheres", centers=pos, radii=radii, rgb=rgb)


def _surface_layers(h, amp, t_idx, vmax, cmap, mode, sigma, threshold, faded=None):
    grey = curvature_grey(h.rr, h.tris)
    rgb = np.repeat(grey[:, None], 3, axis=1)
    amp_rows = amp[h.rows] if len(h.rows) else np.zeros((0, amp.shape[1]))
    active = np.flatnonzero(amp_rows.max(1) > 0) if len(amp_rows) else np.zeros(0, int)
    amp_t = amp_rows[:, t_idx] if len(amp_rows) else np.zeros(0)
    row_faded = (np.zeros(len(h.rows), bool) if faded is None
                 else np.asarray(faded, bool)[h.rows])
    if mode in ("blobs", "both") and len(active) and vmax > 0:
        w, _ = geo.geodesic_blob_weights(h.rr, h.tris, h.mesh_idx[active], sigma=sigma)
        shown = amp_t[active] * np.where(row_faded[active], FADED_KEEP, 1.0)
        val = (w * shown[:, None]).max(0) / vmax
        alpha = np.clip((val - threshold) / max(threshold, 0.05), 0, 1)[:, None]
        rgb = (1 - alpha) * rgb + alpha * cmap(np.clip(val, 0, 1))[:, :3]
    layers = [dict(type="mesh", rr=h.rr, tris=h.tris, rgb=rgb)]
    if mode in ("spheres", "both") and len(active):
        sp = _sphere_layer(h.pos[active], amp_t[active], vmax, cmap,
                           faded=row_faded[active])
        if sp is not None:
            layers.append(sp)
    return layers


def render_surface_panels(stc, src, subject=None, subjects_dir=None, time=None,
                          views=SURFACE_VIEWS, hemis=("lh", "rh"), trans=None, surface="auto",
                          mode="both", smoothing_mm=None, vmax=None, cmap=None,
                          threshold=0.1, size=(560, 420), backend=None, geometry=None,
                          faded=None):
    """Render each (hemi, view) panel; returns ``(panels, info)``.

    ``faded``: a boolean per row of ``stc``; those sources are washed out (low confidence).

    ``panels`` maps ``(hemi, view)`` to an (h, w, 3) uint8 image; ``info`` holds the time
    index, ``vmax`` (A·m) and the colour map used.
    """
    geom = geometry or geo.source_geometry(stc, src, subject, subjects_dir, trans, surface)
    amp = source_amplitudes(stc)
    t_idx = pick_time_index(stc, time)
    vmax = float(amp.max()) if vmax is None and amp.size else float(vmax or 0.0)
    cmap = _resolve_cmap(cmap)
    sigma = None if smoothing_mm is None else smoothing_mm / 1e3
    panels = {}
    for h in geom.hemis:
        if h.hemi not in hemis:
            continue
        layers = _surface_layers(h, amp, t_idx, vmax, cmap, mode, sigma, threshold, faded)
        # One scene per hemisphere, screenshot from each view.
        images = render_panels(layers, views, h.hemi, size=size, backend=backend)
        panels.update({(h.hemi, view): img for view, img in zip(views, images)})
    return panels, dict(t_idx=t_idx, vmax=vmax, cmap=cmap, geometry=geom)


def render_volume_panels(stc, src, subject=None, subjects_dir=None, time=None,
                         views=VOLUME_VIEWS, trans=None, vmax=None, cmap=None,
                         size=(560, 420), backend=None, geometry=None, opacity=0.14):
    geom = geometry or geo.source_geometry(stc, src, subject, subjects_dir, trans)
    amp = source_amplitudes(stc)
    t_idx = pick_time_index(stc, time)
    vmax = float(amp.max()) if vmax is None and amp.size else float(vmax or 0.0)
    cmap = _resolve_cmap(cmap)
    env_rr, env_tris = geom.envelope
    active = np.flatnonzero(amp.max(1) > 0) if amp.size else np.zeros(0, int)
    layers = []
    sp = _sphere_layer(geom.pos[active], amp[active, t_idx], vmax, cmap)
    if sp is not None:
        layers.append(sp)
    layers.append(dict(type="mesh", rr=env_rr, tris=env_tris, opacity=opacity,
                       rgb=np.full((len(env_rr), 3), 0.72)))
    images = render_panels(layers, views, "lh", size=size, backend=backend)
    panels = {("vol", v): img for v, img in zip(views, images)}
    return panels, dict(t_idx=t_idx, vmax=vmax, cmap=cmap, geometry=geom)


def _colorbar(fig, rect, cmap, vmax, label="Source amplitude (nA·m)"):
    import matplotlib as mpl

    cax = fig.add_axes(rect)
    norm = mpl.colors.Normalize(0, vmax * NAM if vmax > 0 else 1.0)
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax,
                      orientation="horizontal")
    cb.set_label(label, fontsize=11)
    cb.ax.tick_params(labelsize=10)
    return cb


def plot_source_map(stc, src, fname, subject=None, subjects_dir=None, time=None,
                    views=None, hemis=("lh", "rh"), trans=None, surface="auto", mode="both",
                    smoothing_mm=None, vmax=None, cmap=None, title=None, mri=True,
                    panel_size=(560, 420), dpi=100, backend=None, faded=None, show_time=True,
                    reported=None):
    """Draw a sparse source estimate at one time point and save it as a PNG.

    Surface source spaces: one panel per hemisphere (columns) and view (rows; default
    lateral and medial). Active sources are drawn as spheres sized and coloured by amplitude
    and spread over the surface as geodesic Gaussian blobs (``mode='spheres'|'blobs'|'both'``,
    ``smoothing_mm`` the blob width, default from the mesh resolution). Volume source
    spaces: sources in the transparent inner skull (or the source space hull), seen from
    three sides, plus T1 slices through the strongest source when
    ``subjects_dir/subject/mri/T1.mgz`` exists and ``mri`` is true.

    ``time`` in seconds (default: :func:`~meeg_inverse.viz._utils.map_time`, the peak of
    the strongest of ``reported``, a summary's ``reported_sources``, else the time of the
    largest amplitude; the title says which); ``vmax`` in A·m (default:
    the largest amplitude over all times, so maps at different times share a scale).
    ``surface``: ``'auto'``, ``'source'``, ``'fsaverage'`` (template via MNI) or a FreeSurfer
    surface name. ``faded``: a boolean per row of ``stc``, sources drawn washed out (low
    confidence; surface source spaces). ``show_time=False`` leaves the time out of the
    title (a map over no single time: each source's peak over a recording). Returns the
    path written.
    """
    import matplotlib.pyplot as plt

    backend = backend or get_backend()
    geom = geo.source_geometry(stc, src, subject, subjects_dir, trans, surface)
    amp = source_amplitudes(stc)
    n_active = int(np.sum(amp.max(1) > 0)) if amp.size else 0
    when = map_time(stc, reported, time)
    time = when.time
    if geom.kind == "volume":
        views = tuple(views) if views is not None and set(views) - set(SURFACE_VIEWS) \
            else VOLUME_VIEWS
        panels, info = render_volume_panels(stc, src, subject, subjects_dir, time, views,
                                            trans, vmax, cmap, panel_size, backend, geom)
        grid = [[("vol", v) for v in views]]
        col_titles = [_VIEW_TITLES.get(v, v.capitalize()) for v in views]
        row_titles = None
    else:
        views = tuple(views) if views is not None else SURFACE_VIEWS
        panels, info = render_surface_panels(stc, src, subject, subjects_dir, time, views,
                                             hemis, trans, surface, mode, smoothing_mm, vmax,
                                             cmap, size=panel_size, backend=backend,
                                             geometry=geom, faded=faded)
        hemis = [h for h in hemis if any(k[0] == h for k in panels)]
        grid = [[(h, v) for h in hemis] for v in views]
        col_titles = [HEMI_NAMES[h] + (" (fsaverage)" if geom.frame == "mni" else "")
                      for h in hemis]
        row_titles = [v.capitalize() for v in views]
    t_idx, vmax_used, cmap_used = info["t_idx"], info["vmax"], info["cmap"]
    slices = None
    if geom.kind == "volume" and mri:
        slices = _mri_slices(geom, amp, t_idx, vmax_used, cmap_used, subject, subjects_dir, src)

    n_rows, n_cols = len(grid), len(grid[0])
    pw, ph = panel_size[0] / dpi, panel_size[1] / dpi
    extra_rows = 1 if slices is not None else 0
    top, bottom = 0.75, 1.0
    fig_w = n_cols * pw + (0.5 if row_titles else 0.1)
    fig_h = (n_rows + extra_rows) * (ph + 0.3) + top + bottom
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    left0 = (0.5 if row_titles else 0.05) / fig_w
    for r, row in enumerate(grid):
        for c, key in enumerate(row):
            y = 1 - (top + (r + 1) * (ph + 0.3) - 0.05) / fig_h
            ax = fig.add_axes([left0 + c * pw / fig_w, y, pw / fig_w, ph / fig_h])
            ax.imshow(panels[key], interpolation="lanczos")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(col_titles[c], fontsize=13, pad=4)
            if row_titles and c == 0:
                fig.text(left0 - 0.1 / fig_w, y + 0.5 * ph / fig_h, row_titles[r],
                         rotation=90, ha="right", va="center", fontsize=13)
    if slices is not None:
        y = 1 - (top + (n_rows + 1) * (ph + 0.3) - 0.05) / fig_h
        for c, (img, extent, pts, sizes, cols, name) in enumerate(slices[:n_cols]):
            ax = fig.add_axes([left0 + c * pw / fig_w + 0.02, y, pw / fig_w - 0.04, ph / fig_h])
            ax.imshow(img, cmap="gray", origin="lower", extent=extent, interpolation="bilinear")
            if len(pts):
                ax.scatter(pts[:, 0], pts[:, 1], s=sizes, c=cols, edgecolors="k",
                           linewidths=0.6, zorder=3)
            ax.set_title(name, fontsize=11, pad=3)
            ax.set_axis_off()
    if title is None:
        title = "Sparse source estimate"
    # Grid sources (a reported source may group several): the console's and the
    # summary's reported sources are named as such.
    sub = (f"{n_active} active grid source{'s' if n_active != 1 else ''}"
           f"   ·   strongest {vmax_used * NAM:.3g} nA·m")
    heading = f"{title} — {when.label}" if show_time else title
    fig.text(0.5, 1 - 0.28 / fig_h, heading, ha="center", va="center",
             fontsize=15, weight="bold")
    fig.text(0.5, 1 - 0.58 / fig_h, sub, ha="center", va="center", fontsize=11, color="0.3")
    if backend == "matplotlib":
        fig.text(0.99, 0.01, "matplotlib fallback rendering (VTK off-screen unavailable)",
                 ha="right", va="bottom", fontsize=8, color="0.45")
    cb_w = min(0.5, 4.5 / fig_w)
    _colorbar(fig, [0.5 - cb_w / 2, 0.45 / fig_h, cb_w, 0.16 / fig_h], cmap_used, vmax_used)
    return save_figure(fig, Path(fname), dpi=dpi)


def _mri_slices(geom, amp, t_idx, vmax, cmap, subject, subjects_dir, src):
    """Three orthogonal T1 slices through the strongest source, sources within ±6 mm marked."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    if subjects_dir is None or geom.frame != "mri":
        return None
    subject = geo._src_subject(src, subject)
    fname = Path(subjects_dir) / str(subject) / "mri" / "T1.mgz"
    if not fname.exists():
        return None
    img = nib.load(str(fname))
    vox2ras = img.header.get_vox2ras_tkr()
    ornt = io_orientation(vox2ras)
    data = apply_orientation(np.asarray(img.dataobj), ornt)
    aff = vox2ras @ inv_ornt_aff(ornt, img.shape)  # canonical voxel -> surface RAS (mm)
    active = np.flatnonzero(amp.max(1) > 0)
    if len(active) == 0:
        return None
    peak = active[np.argmax(amp[active].max(1))]
    p_mm = geom.pos * 1e3
    vox = np.linalg.solve(aff, np.r_[p_mm[peak], 1.0])[:3].round().astype(int)
    vox = np.clip(vox, 0, np.array(data.shape[:3]) - 1)
    sz, ox = np.diag(aff)[:3], aff[:3, 3]
    ext = [(ox[k] - sz[k] / 2, ox[k] + sz[k] * (data.shape[k] - 0.5)) for k in range(3)]
    frac = np.clip(amp[active, t_idx] / vmax, 0, 1) if vmax > 0 else np.zeros(len(active))
    out = []
    for axis, name, (a, b) in ((0, "Sagittal", (1, 2)), (1, "Coronal", (0, 2)),
                               (2, "Axial", (0, 1))):
        sl = np.take(data, vox[axis], axis=axis).T
        near = np.abs(p_mm[active, axis] - p_mm[peak, axis]) <= 6.0
        pts = p_mm[active][near][:, [a, b]]
        f = frac[near]
        out.append((sl, [*ext[a], *ext[b]], pts, 30 + 170 * f, cmap(np.maximum(f, 0.05)),
                    f"{name} slice, {'xyz'[axis]} = {p_mm[peak, axis]:.0f} mm"))
    return out


def show_live(stc, src, subject=None, subjects_dir=None, trans=None, surface="auto",
              time=None, mode="both", cmap=None, reported=None, **show_kwargs):
    """Open an interactive pyvista window (needs a display) with both hemispheres and a
    time slider, first at ``time`` (default as :func:`plot_source_map`, ``reported`` a
    summary's ``reported_sources``). ``show_kwargs`` go to ``pyvista.Plotter.show``.
    Returns the plotter after the window is closed."""
    import os

    import pyvista as pv

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise RuntimeError("no display available for a live window: open the HTML viewer "
                           "instead (meeg_inverse.viz.open_viewer) or run under xvfb-run")
    pv.OFF_SCREEN = False
    geom = geo.source_geometry(stc, src, subject, subjects_dir, trans, surface)
    amp = source_amplitudes(stc)
    vmax = float(amp.max()) if amp.size else 1.0
    cmap = _resolve_cmap(cmap)
    pl = pv.Plotter(title="meeg-inverse sources")
    pl.set_background("white")
    actors = []

    def draw(t_idx):
        for a in actors:
            pl.remove_actor(a)
        actors.clear()
        if geom.kind == "volume":
            layers = [dict(type="mesh", rr=geom.envelope[0], tris=geom.envelope[1],
                           rgb=np.full((len(geom.envelope[0]), 3), 0.7), opacity=0.2)]
            act = np.flatnonzero(amp.max(1) > 0)
            sp = _sphere_layer(geom.pos[act], amp[act, t_idx], vmax, cmap)
            layers += [sp] if sp is not None else []
        else:
            layers = []
            for h in geom.hemis:
                layers += _surface_layers(h, amp, t_idx, vmax, cmap, mode, None, 0.1)
        for ly in layers:
            if ly["type"] == "mesh":
                faces = np.hstack([np.full((len(ly["tris"]), 1), 3), ly["tris"]]).ravel()
                m = pv.PolyData(np.asarray(ly["rr"], float), faces)
                m.point_data["rgb"] = (ly["rgb"] * 255).astype(np.uint8)
                actors.append(pl.add_mesh(m, scalars="rgb", rgb=True, smooth_shading=True,
                                          opacity=ly.get("opacity", 1.0)))
            else:
                pts = pv.PolyData(np.asarray(ly["centers"], float))
                pts.point_data["radius"] = ly["radii"]
                pts.point_data["rgb"] = (ly["rgb"] * 255).astype(np.uint8)
                g = pts.glyph(scale="radius", orient=False, factor=1.0, geom=pv.Sphere(radius=1.0))
                actors.append(pl.add_mesh(g, scalars="rgb", rgb=True, smooth_shading=True))

    times = np.asarray(stc.times)
    t0 = pick_time_index(stc, time, reported)
    draw(t0)
    if len(times) > 1:
        pl.add_slider_widget(lambda v: draw(int(np.argmin(np.abs(times - v / 1e3)))),
                             [1e3 * times[0], 1e3 * times[-1]], value=1e3 * times[t0],
                             title="time (ms)")
    pl.show(**show_kwargs)
    return pl
