"""The documentation builds with warnings as errors and has its key pages.

Builds the Sphinx site (``docs/``) into a temporary folder with ``-W
--keep-going``, as CI and ``docs/requirements.txt`` describe. Skipped when
Sphinx or the extensions in ``docs/requirements.txt`` are not installed.
"""

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

for _module in ("sphinx", "numpydoc", "myst_parser"):
    pytest.importorskip(
        _module, reason=f"{_module} is not installed: pip install -r docs/requirements.txt "
                        "to build the docs")

KEY_PAGES = [
    "index.html",
    "guide/install.html",
    "guide/localize.html",
    "guide/penalties.html",
    "guide/lambda.html",
    "guide/outputs.html",
    "python_api.html",
    "cli.html",
    "gallery.html",
    "figures.html",
    "api/index.html",
    "api/meeg_inverse.html",
    "api/meeg_inverse.api.html",
    "api/meeg_inverse.pipeline.html",
    "api/meeg_inverse.penalties.html",
    "api/meeg_inverse.solvers.html",
    "api/meeg_inverse.viz.html",
]


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs_html")
    doctrees = tmp_path_factory.mktemp("docs_doctrees")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(doctrees), str(DOCS), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (
        f"sphinx -W failed (exit {res.returncode}):\n{res.stderr[-6000:]}\n{res.stdout[-2000:]}")
    return out


def test_key_pages_exist(html):
    missing = [p for p in KEY_PAGES if not (html / p).is_file()]
    assert not missing, f"pages not built: {missing}"


def test_cli_reference_has_every_subcommand(html):
    from meeg_inverse.cli import build_parser

    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from meeg_docs import subcommands
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    names = list(subcommands(build_parser()))
    assert {"localize", "demo", "view"} <= set(names)
    page = (html / "cli.html").read_text(encoding="utf-8")
    for name in names:
        assert f'id="cli-{name}"' in page, f"no section for `meeg-inverse {name}`"
        assert f"usage: meeg-inverse {name}" in page, f"no --help text for {name}"
    # a few options, to catch an empty rendering
    for option in ("--noise-cov", "--forward", "--penalty", "--alpha", "--montage"):
        assert option in page


def test_api_reference_documents_the_entry_points(html):
    page = (html / "api/meeg_inverse.html").read_text(encoding="utf-8")
    for name in ("sparse_inverse", "SparseInverse", "localize_epochs", "localize_raw",
                 "InputError"):
        assert f'id="meeg_inverse.{name}"' in page, name


def test_gallery_shows_every_figure(html):
    page = (html / "gallery.html").read_text(encoding="utf-8")
    figures = sorted(p.name for p in (DOCS / "figures").glob("*.png"))
    assert figures
    missing = [f for f in figures if f not in page]
    assert not missing, f"figures not in the gallery: {missing}"


def test_optional_markers_resolved(html):
    for page in ("index.html", "guide/lambda.html", "guide/penalties.html"):
        text = (html / page).read_text(encoding="utf-8")
        assert "if-exists" not in text and "endif" not in text, page
