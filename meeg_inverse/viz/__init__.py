"""Figures and the interactive 3D viewer for sparse M/EEG source estimates.

Public API::

    from meeg_inverse.viz import (plot_source_map, plot_time_courses, plot_fit_residual,
                                  write_viewer_html, render_all, open_viewer, show_live)

Static images are rendered with pyvista/VTK off-screen (EGL or OSMesa, no X server needed);
when VTK cannot render, a matplotlib 3D fallback is used with a warning. Amplitudes are
expected in A·m and shown in nA·m.
"""

from .brain import plot_source_map, render_surface_panels, render_volume_panels, show_live
from .report import render_all
from .timecourses import plot_fit_residual, plot_time_courses
from .viewer import open_viewer, write_viewer_html
from ._render import get_backend

__all__ = [
    "plot_source_map",
    "plot_time_courses",
    "plot_fit_residual",
    "write_viewer_html",
    "render_all",
    "open_viewer",
    "show_live",
    "render_surface_panels",
    "render_volume_panels",
    "get_backend",
]
