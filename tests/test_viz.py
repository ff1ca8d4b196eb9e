"""Figures: off-screen rendering, time courses, fit/residual panel, render_all."""

import json
from pathlib import Path

import numpy as np
import pytest

mne = pytest.importorskip("mne")
pytest.importorskip("pyvista")

from meeg_inverse import viz  # noqa: E402
from meeg_inverse.viz import _render  # noqa: E402


def _gauss(times, lat, width, amp):
    return amp * np.exp(-0.5 * ((times - lat) / width) ** 2)


@pytest.fixture(scope="module")
def src(sample_forward):
    return sample_forward["src"]


@pytest.fixture(scope="module")
def lh_stc(src):
    """One active source in the LEFT hemisphere (most lateral used vertex)."""
    times = np.arange(-0.05, 0.25, 0.005)
    vno = src[0]["vertno"]
    v = int(vno[np.argmin(src[0]["rr"][vno, 0])])
    data = _gauss(times, 0.09, 0.015, 30e-9)[None]
    return mne.SourceEstimate(data, [np.array([v]), np.array([], int)], times[0], 0.005,
                              subject="sample")


@pytest.fixture(scope="module")
def two_stc(src):
    times = np.arange(-0.05, 0.25, 0.005)
    lv, rv = src[0]["vertno"], src[1]["vertno"]
    data = np.array([_gauss(times, 0.09, 0.015, 30e-9), _gauss(times, 0.15, 0.02, -12e-9),
                     _gauss(times, 0.10, 0.015, 20e-9)])
    vert = [np.sort(lv[[5, 100]]), rv[[50]]]
    return mne.SourceEstimate(data, vert, times[0], 0.005, subject="sample")


def _coloured(img, thr=60):
    """Count saturated (non-grey, non-white) pixels."""
    img = np.asarray(img, float)[..., :3]
    if img.max() <= 1.0:
        img = img * 255
    return int(np.sum(img.max(-1) - img.min(-1) > thr))


def _read_png(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_backend_is_vtk_offscreen():
    backend = _render.get_backend()
    if backend != "pyvista":
        pytest.skip("VTK cannot render off-screen here (run scripts/install_system_deps.sh) "
                    "or MEEG_INVERSE_VIZ_BACKEND forces matplotlib")
    assert backend == "pyvista"


@pytest.mark.parametrize("backend", ["pyvista", "matplotlib"])
def test_lh_source_colours_only_lh_panels(lh_stc, src, backend, sample_paths):
    if backend == "pyvista" and _render.get_backend() != "pyvista":
        pytest.skip("VTK off-screen rendering unavailable")
    panels, info = viz.render_surface_panels(
        lh_stc, src, subjects_dir=sample_paths["subjects_dir"], trans=sample_paths["trans"],
        views=("lateral", "medial"), size=(320, 240), backend=backend)
    assert set(panels) == {("lh", "lateral"), ("lh", "medial"), ("rh", "lateral"),
                           ("rh", "medial")}
    for img in panels.values():  # not blank: a shaded brain on a white background
        assert img.shape == (240, 320, 3)
        assert img.std() > 20
    lh = _coloured(panels[("lh", "lateral")])
    rh = _coloured(panels[("rh", "lateral")]) + _coloured(panels[("rh", "medial")])
    assert lh > 50, lh
    assert rh == 0, rh
    assert info["vmax"] == pytest.approx(30e-9)


def test_plot_source_map_png_left_half_only(lh_stc, src, sample_paths, tmp_path):
    out = viz.plot_source_map(lh_stc, src, tmp_path / "map.png", subject="sample",
                              subjects_dir=sample_paths["subjects_dir"],
                              trans=sample_paths["trans"], panel_size=(360, 270))
    assert Path(out).exists() and Path(out).stat().st_size < 300_000
    img = _read_png(out)
    assert img.std() > 20
    h, w = img.shape[:2]
    body = img[int(0.08 * h):int(0.85 * h)]  # panels only: no title, no colour bar
    left, right = body[:, : w // 2], body[:, w // 2:]
    assert _coloured(left) > 50
    assert _coloured(right) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_vector_and_fsaverage(src, lh_stc, sample_paths, tmp_path):
    data = np.zeros((1, 3, len(lh_stc.times)))
    data[0, 2] = lh_stc.data[0]
    vstc = mne.VectorSourceEstimate(data, lh_stc.vertices, lh_stc.tmin, lh_stc.tstep,
                                    subject="sample")
    panels, _ = viz.render_surface_panels(
        vstc, src, subject="sample", subjects_dir=sample_paths["subjects_dir"],
        trans=sample_paths["trans"], surface="fsaverage", views=("lateral",),
        size=(320, 240))
    assert _coloured(panels[("lh", "lateral")]) > 20
    assert _coloured(panels[("rh", "lateral")]) == 0


def test_volume_source_map(sample_paths, tmp_path):
    sd = sample_paths["subjects_dir"]
    vsrc = mne.setup_volume_source_space("sample", pos=15.0, sphere=(0, 0, 0.04, 0.08),
                                         subjects_dir=sd, add_interpolator=False,
                                         verbose=False)
    vno = vsrc[0]["vertno"]
    times = np.arange(0, 0.2, 0.01)
    stc = mne.VolSourceEstimate(_gauss(times, 0.1, 0.02, 20e-9)[None], [vno[[len(vno) // 2]]],
                                0.0, 0.01, subject="sample")
    out = viz.plot_source_map(stc, vsrc, tmp_path / "vol.png", subjects_dir=sd,
                              panel_size=(320, 240))
    img = _read_png(out)
    assert img.std() > 20 and _coloured(img) > 50
    # the T1 slices row is drawn (a volume figure with MRI is taller than 1 row of panels)
    assert img.shape[0] > 2 * 240


def test_time_courses_and_fit_residual(two_stc, tmp_path):
    p = viz.plot_time_courses(two_stc, tmp_path / "tc.png", time=0.09)
    img = _read_png(p)
    assert img.std() > 10 and _coloured(img) > 200
    rng = np.random.default_rng(0)
    times = two_stc.times
    fit = np.outer(rng.standard_normal(20), _gauss(times, 0.1, 0.02, 5.0))
    data = fit + rng.standard_normal(fit.shape)
    p = viz.plot_fit_residual(times, data, fit, tmp_path / "fit.png")
    assert _read_png(p).std() > 10
    with pytest.raises(ValueError, match="shape mismatch"):
        viz.plot_fit_residual(times, data, fit[:, :-1], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_render_all_and_atomicity(two_stc, src, sample_paths, tmp_path, monkeypatch):
    from meeg_inverse.viz import brain

    figures = _capture_figures(monkeypatch, brain)
    rng = np.random.default_rng(1)
    fit = rng.standard_normal((10, len(two_stc.times)))
    data = fit + 0.3 * rng.standard_normal(fit.shape)
    out = tmp_path / "res"
    # The strongest reported source peaks at 150 ms; the grid's largest amplitude is at 90.
    reported = [{"source": 1, "label": "superiortemporal-rh", "hemisphere": "rh",
                 "peak_time_s": 0.15}]
    paths = viz.render_all(two_stc, src, out, data=data, fit=fit, subject="sample",
                           subjects_dir=sample_paths["subjects_dir"],
                           trans=mne.read_trans(sample_paths["trans"]),
                           info={"solver": "test"},
                           summary={"alpha": 0.25, "penalty": {"name": "l21"}, "ev": [1, 2],
                                    "reported_sources": reported})
    assert set(paths) >= {"source_map", "time_courses", "fit_residual", "viewer", "index"}
    index = paths["index"].read_text()
    # One time everywhere: the map's title, the index's caption, the viewer's first time.
    said = "t = 150.0 ms, peak of source 1 (superiortemporal-rh)"
    assert said in " | ".join(figures[0]._audit_texts)
    assert f"Source map at {said}" in index
    page = paths["viewer"].read_text()
    start = page.index('type="application/json">') + len('type="application/json">')
    payload = json.loads(page[start:page.index("</script>", start)].replace("<\\/", "</"))
    assert payload["times"][payload["t0"]] == pytest.approx(150.0)
    assert said in payload["subtitle"]
    assert "penalty.name" in index and "l21" in index and "0.25" in index
    for key in ("source_map", "time_courses", "fit_residual", "viewer"):
        assert paths[key].exists()
        assert paths[key].name in index
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    # a crash while writing leaves the previous files intact and no temporary file behind
    before = paths["time_courses"].read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        viz.plot_time_courses(two_stc, out / "time_courses.png")
    assert paths["time_courses"].read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_index_page_and_report_caption_each_figure_alike(tmp_path):
    """One caption per figure (viz.report.figure_caption): the index page's and the result
    report's are the same, the λ curve's naming the criterion of the rule that chose λ."""
    import html
    import re

    import matplotlib.pyplot as plt

    from meeg_inverse.report import write_result_report
    from meeg_inverse.viz.report import _write_index

    expected = {"source_map.png": "Source map at the peak time",
                "time_courses.png": "Time courses of the active sources",
                "fit_residual.png": "Whitened data, fit and residual",
                "lambda_curve.png":
                    "The λ curve: BIC of the refit along λ (the chosen λ marked)",
                "source_map_+100ms.png": "Source map (source_map_+100ms)"}
    figures = dict(zip(["source_map", "time_courses", "fit_residual", "lambda_curve",
                        "source_map_1"], expected))
    for name in expected:
        fig = plt.figure(figsize=(1, 1))
        fig.savefig(tmp_path / name)
        plt.close(fig)
    stc = mne.SourceEstimate(np.ones((1, 3)) * 1e-9, [np.array([0]), np.array([], int)], 0.0,
                             0.01, subject="sample")
    summary = {"sources": [], "alpha_selection": {"method": "bic"}}
    _write_index(tmp_path, {k: tmp_path / f for k, f in figures.items()}, stc, "t", {}, summary)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    index = {f: html.unescape(c) for f, c in re.findall(
        r'<img src="([^"]+)" alt="[^"]*"></a><figcaption>([^<]*)</figcaption>', page)}
    assert index == expected
    write_result_report(tmp_path, summary, figures)  # its index.html replaces the page
    sections, _, htmls = mne.open_report(tmp_path / "report.h5").get_contents()
    shown = re.findall(r'<img [^>]*alt="([^"]*)"', htmls[sections.index("Figures")])
    assert [html.unescape(c) for c in shown] == [index[f] for f in figures.values()]


def test_matplotlib_fallback_warns(monkeypatch):
    monkeypatch.setattr(_render, "_BACKEND", None)
    monkeypatch.delenv(_render.BACKEND_ENV, raising=False)
    monkeypatch.setattr(_render, "_PROBE", "import sys; sys.exit(7)")
    with pytest.warns(RuntimeWarning, match="falling back"):
        assert _render.get_backend() == "matplotlib"
    monkeypatch.setattr(_render, "_BACKEND", None)  # restored by monkeypatch afterwards


def test_open_viewer(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or True)
    (tmp_path / "viewer.html").write_text("<html></html>")
    uri = viz.open_viewer(tmp_path)
    assert opened == [uri] and uri.startswith("file://") and uri.endswith("viewer.html")
    with pytest.raises(FileNotFoundError):
        viz.open_viewer(tmp_path / "missing.html")


def test_show_live_needs_display(lh_stc, src, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="no display"):
        viz.show_live(lh_stc, src)


def _capture_figures(monkeypatch, module):
    """Keep the matplotlib figure each plot function saves, to read its texts."""
    from meeg_inverse.viz import _utils

    figures = []

    def save(fig, fname, dpi=100, **kwargs):
        figures.append(fig)
        fig.canvas.draw()
        texts = [t.get_text() for t in fig.findobj(match=lambda a: hasattr(a, "get_text"))]
        fig._audit_texts = texts  # read before save_figure closes it
        return _utils.save_figure(fig, fname, dpi=dpi, **kwargs)

    monkeypatch.setattr(module, "save_figure", save)
    return figures


def test_source_map_shows_time_point_and_colour_bar_units(lh_stc, src, sample_paths, tmp_path,
                                                          monkeypatch):
    from meeg_inverse.viz import brain

    figures = _capture_figures(monkeypatch, brain)
    viz.plot_source_map(lh_stc, src, tmp_path / "map.png", subjects_dir=sample_paths["subjects_dir"],
                        trans=sample_paths["trans"], time=0.09, panel_size=(200, 150))
    texts = " | ".join(figures[0]._audit_texts)
    assert "t = 90.0 ms" in texts, texts  # the time point shown
    for name in ("Left hemisphere", "Right hemisphere", "Lateral", "Medial"):
        assert name in texts, (name, texts)  # both hemispheres, lateral and medial views
    colorbars = [ax for ax in figures[0].axes if "nA·m" in ax.get_xlabel()]
    assert len(colorbars) == 1, texts  # the colour bar carries its unit
    ticks = [t.get_position()[0] for t in colorbars[0].get_xticklabels()]
    assert max(ticks) == pytest.approx(30.0, rel=0.35)  # in nA·m: the 30 nA·m source


def test_time_courses_mark_each_peak(two_stc, tmp_path, monkeypatch):
    from meeg_inverse.viz import timecourses

    figures = _capture_figures(monkeypatch, timecourses)
    viz.plot_time_courses(two_stc, tmp_path / "tc.png")
    ax = figures[0].axes[0]
    assert "nA·m" in ax.get_ylabel() and "ms" in ax.get_xlabel()
    markers = [line for line in ax.get_lines() if line.get_marker() in ("v", "^")]
    assert len(markers) == 3  # one peak marker per active source
    expected = {(round(1e3 * two_stc.times[np.argmax(np.abs(row))]),
                 round(1e9 * row[np.argmax(np.abs(row))], 3)) for row in two_stc.data}
    got = {(round(float(m.get_xdata()[0])), round(float(m.get_ydata()[0]), 3)) for m in markers}
    assert got == expected


def test_surface_choice_subject_then_source_then_template(lh_stc, src, sample_paths, tmp_path):
    """'auto': the subject's white surface, else the source space mesh, else fsaverage5."""
    import copy

    from meeg_inverse.viz import _geometry as geo

    trans = sample_paths["trans"]
    mri_src = mne.read_source_spaces(sample_paths["src"], verbose=False)  # MRI coordinates
    # 1. The source space's own triangulation (the shared 'sample' has no surf/ folder).
    geom = geo.source_geometry(lh_stc, src, "sample", sample_paths["subjects_dir"], trans)
    assert geom.frame == "mri" and [h.label for h in geom.hemis] != ["fsaverage5"] * 2
    np.testing.assert_allclose(geom.hemis[0].rr, mri_src[0]["rr"], atol=1e-6)

    # 2. A subjects folder with surf/?h.white of the same vertices: that surface is drawn.
    subjects_dir = tmp_path / "subjects"
    (subjects_dir / "sample" / "surf").mkdir(parents=True)
    (subjects_dir / "sample" / "mri").symlink_to(sample_paths["subjects_dir"] / "sample" / "mri")
    for s, hemi in zip(mri_src, ("lh", "rh")):
        mne.write_surface(subjects_dir / "sample" / "surf" / f"{hemi}.white",
                          (s["rr"] + [0.0, 0.0, 0.001]) * 1e3, s["tris"], overwrite=True)
    geom = geo.source_geometry(lh_stc, src, "sample", subjects_dir, trans)
    np.testing.assert_allclose(geom.hemis[0].rr, mri_src[0]["rr"] + [0.0, 0.0, 0.001],
                               atol=1e-5)

    # 3. No surface anywhere: fsaverage5 through MNI coordinates, source still on the left.
    bare = copy.deepcopy(src)
    for s in bare:
        s["tris"] = s["use_tris"] = None
    geom = geo.source_geometry(lh_stc, bare, "sample", sample_paths["subjects_dir"], trans)
    assert geom.frame == "mni" and [h.label for h in geom.hemis] == ["fsaverage5"] * 2
    assert len(geom.hemis[0].rows) == 1 and len(geom.hemis[1].rows) == 0
    assert geom.hemis[0].pos[0, 0] < 0  # MNI x < 0: left hemisphere
    panels, _ = viz.render_surface_panels(lh_stc, bare, subject="sample",
                                          subjects_dir=sample_paths["subjects_dir"], trans=trans,
                                          views=("lateral",), size=(240, 180))
    assert _coloured(panels[("lh", "lateral")]) > 20 and _coloured(panels[("rh", "lateral")]) == 0


def test_each_view_of_one_scene_is_its_own_image():
    """One pyvista scene per hemisphere: every view must be rendered anew (a missing
    render made the 'medial' panels copies of the 'lateral' ones)."""
    from meeg_inverse.viz._render import get_backend, render_panels

    if get_backend() != "pyvista":
        pytest.skip("needs the off-screen pyvista backend")
    import pyvista as pv

    shape = pv.Sphere().scale([1.0, 2.0, 0.5])
    rr = np.asarray(shape.points) * 0.05
    tris = shape.faces.reshape(-1, 4)[:, 1:]
    rgb = np.tile([0.6, 0.6, 0.6], (len(rr), 1))
    rgb[rr[:, 1] > 0] = [1.0, 0.0, 0.0]
    lateral, medial = render_panels([dict(type="mesh", rr=rr, tris=tris, rgb=rgb)],
                                    ["lateral", "medial"], "lh", size=(200, 150))
    assert np.abs(lateral.astype(int) - medial.astype(int)).mean() > 1.0


def test_source_tables_name_the_coordinates_they_show():
    """Without the subject's MRI (no MNI), the index page's tables show head coordinates
    under a 'head' header, never under 'MNI' (they were headed 'Position MNI (mm)')."""
    from meeg_inverse.viz.report import _reported_table, _sources_table

    head = {"source": 1, "hemisphere": "rh", "label": None, "position_head_mm": [31.6, -7.2, 59.6],
            "position_mni_mm": None, "peak_amplitude_nAm": 111.4, "peak_time_s": 0.075,
            "confidence": 0.0, "members": [330]}
    page = _reported_table([head])
    assert "Position head (mm)" in page and "MNI" not in page and "(32, -7, 60)" in page
    grid = dict(head, explained_variance=0.03)
    page = _sources_table([grid])
    assert "Head (mm)" in page and "MNI" not in page and "(32, -7, 60)" in page
    mni = dict(head, position_mni_mm=[40.0, -20.0, 10.0])
    page = _reported_table([mni])
    assert "Position MNI (mm)" in page and "(40, -20, 10)" in page
    page = _sources_table([dict(mni, explained_variance=0.03)])
    assert "MNI (mm)" in page and "(40, -20, 10)" in page


def test_summary_json_has_no_bare_nan(tmp_path):
    """summary.json is strict JSON: a nan (the BIC of a λ the discrepancy floor raised
    past the path, alpha_selection.criterion) is written as null, not as NaN."""
    import json

    import numpy as np

    from meeg_inverse.summary import write_json

    fname = write_json({"criterion": float("nan"), "path": [np.float64(np.inf), 1.5],
                        "nested": {"x": np.nan, "n": np.int64(3)}}, tmp_path / "s.json")
    text = fname.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def strict(constant):
        raise ValueError(constant)

    assert json.loads(text, parse_constant=strict) == {
        "criterion": None, "path": [None, 1.5], "nested": {"x": None, "n": 3}}
