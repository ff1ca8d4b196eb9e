"""The self-contained HTML viewer, driven by headless Chromium.

Chromium loads ``viewer.html?autotest=1``: the page renders with WebGL (SwiftShader in
headless mode), simulates a click at the projected screen position of the strongest source
and writes the outcome (non-blank canvas fraction, picked source, drawn time course,
captured console errors) as JSON into ``#autotest-result``, read here with ``--dump-dom``.
Skipped with the reason when Chromium is not installed (scripts/install_system_deps.sh).
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

mne = pytest.importorskip("mne")

from meeg_inverse import viz  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--enable-logging=stderr",
    "--v=0", "--window-size=1280,900", "--hide-scrollbars",
]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium not installed: run scripts/install_system_deps.sh "
                "(apt-get install -y chromium)")


def _run(args, tmp_path, timeout=90):
    exe = _chromium()
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium timed out: {' '.join(cmd)}")


@pytest.fixture(scope="module")
def stc_src(sample_forward):
    src = sample_forward["src"]
    times = np.arange(-0.05, 0.25, 0.005)
    lv, rv = src[0]["vertno"], src[1]["vertno"]
    g = lambda lat, w, a: a * np.exp(-0.5 * ((times - lat) / w) ** 2)  # noqa: E731
    data = np.array([g(0.09, 0.015, 30e-9), g(0.15, 0.02, -12e-9), g(0.10, 0.015, 20e-9)])
    lat = int(np.argmin(src[0]["rr"][lv, 0]))  # most lateral lh source: seen in the start view
    other = 100 if lat != 100 else 101
    vert = [lv[[lat, other]], rv[[50]]]
    if lat > other:  # vertices must be sorted: keep the strong source on its row
        vert[0], data[[0, 1]] = vert[0][::-1], data[[1, 0]]
    return mne.SourceEstimate(data, vert, times[0], 0.005, subject="sample"), src


@pytest.fixture(scope="module")
def viewer_file(stc_src, sample_paths, tmp_path_factory):
    stc, src = stc_src
    path = tmp_path_factory.mktemp("viewer") / "viewer.html"
    viz.write_viewer_html(stc, src, path, subject="sample",
                          subjects_dir=sample_paths["subjects_dir"],
                          trans=sample_paths["trans"], title="Test viewer")
    return path


def test_viewer_is_self_contained(viewer_file):
    text = viewer_file.read_text()
    assert text.count("<html") == 1
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
    assert "Content-Security-Policy" in text  # the page cannot load anything remote
    assert viewer_file.stat().st_size < 3_000_000


def test_viewer_empty_stc(stc_src, tmp_path):
    stc, src = stc_src
    empty = stc.copy()
    empty.data[:] = 0
    path = viz.write_viewer_html(empty, src, tmp_path / "empty.html")
    assert '"sources":[]' in path.read_text()


def test_viewer_in_headless_chromium(viewer_file, stc_src, tmp_path):
    url = viewer_file.resolve().as_uri() + "?autotest=1"
    res = _run(["--dump-dom", url], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'<pre id="autotest-result"[^>]*>(.*?)</pre>', res.stdout, re.S)
    assert m and m.group(1).strip(), "autotest did not run:\n" + res.stderr[-2000:]
    out = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<")
                     .replace("&gt;", ">").replace("&quot;", '"'))
    assert out["errors"] == [], out["errors"]
    assert "Uncaught" not in res.stderr, res.stderr[-2000:]
    assert out["webgl"], "WebGL unavailable in headless chromium"
    assert out["nonblank"] > 0.02, out  # the brain covers part of the canvas
    assert out["n_sources"] == 3
    assert out["start_view"] == "view: Left", out  # the start view is named on the page
    stc = stc_src[0]
    strongest = "lh %d" % stc.vertices[0][int(np.argmax(np.abs(stc.data[:2]).max(1)))]
    assert out["expected"] == strongest
    assert out["picked"] == out["expected"], out  # clicking the sphere selected it
    assert out["drawn"] == out["expected"], out  # ... and drew its time course
    assert out["tc_label"].startswith(out["expected"])
    # the time slider moves the time shown; a drag rotates the brain, the wheel zooms
    assert out["time"]["moved"] and out["time"]["after"] != out["time"]["before"], out
    assert out["time"]["after"].startswith("t = ") and out["time"]["after"].endswith(" ms")
    assert out["rotated"] and out["zoomed"], out
    assert out["drag_kept_selection"], out  # a drag is not a click: no new pick
    # the right-hemisphere source is hidden behind the left hemisphere in the start view
    # (left lateral): picking must not select sources through the opaque brain
    assert "rh %d" % stc.vertices[1][0] in out["occluded"], out


def test_viewer_screenshot_not_blank(viewer_file, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    res = _run([f"--screenshot={shot}", viewer_file.resolve().as_uri() + "?autotest=1"],
               tmp_path)
    assert shot.exists(), res.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert img.std() > 10
    # the 3D view (top-left region) contains the grey brain, not just the white background
    view = img[60:600, 50:900]
    assert np.mean(view.max(-1) < 235) > 0.02
