"""Sphinx configuration of the meeg-inverse documentation.

Build (warnings are errors, no network needed)::

    python -m pip install -r docs/requirements.txt
    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
# Document the checkout this conf.py belongs to, even if another copy is installed.
sys.path.insert(0, str(HERE.parent))
# The CLI reference renders argparse --help: fix the width so the page does not
# depend on the terminal of whoever builds it.
os.environ["COLUMNS"] = "88"
# No window is ever opened while importing the package for autodoc.
os.environ.setdefault("MPLBACKEND", "Agg")

import meeg_inverse  # noqa: E402

project = "meeg-inverse"
author = "the meeg-inverse developers"
copyright = "the meeg-inverse developers, BSD-3-Clause"
version = release = meeg_inverse.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
    "meeg_docs",  # docs/_ext/meeg_docs.py: CLI reference + optional pages
]
# sphinx.ext.intersphinx is deliberately not enabled: the build needs no network.

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt", "Thumbs.db", ".DS_Store"]
templates_path = []

# -- MyST (the Markdown pages) ----------------------------------------------
# No "dollarmath": formulas are written in Unicode so that no page loads MathJax
# from its CDN and the built site works offline.
myst_enable_extensions = ["colon_fence", "deflist"]
# Markdown links to "#some-heading" work for headings down to level 3.
myst_heading_anchors = 3

# -- autodoc / numpydoc -------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Importing the package for autodoc must not compile anything heavy: the numba
# kernels are compiled lazily, the rendering stack (pyvista/vtk) is imported
# lazily by meeg_inverse.viz.
autodoc_mock_imports = []
numpydoc_show_class_members = False   # autodoc :members: lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# -- HTML ---------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"meeg-inverse {release}"
html_static_path = []
html_theme_options = {
    "description": "Sparse M/EEG source localization for MNE-Python users",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False
