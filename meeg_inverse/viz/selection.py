"""The λ search's figure: the selection criterion along λ, the chosen λ marked."""

import os

import numpy as np

from ._utils import atomic_path


def plot_sure_curve(selection, fname):
    """Plot the criterion curve and the outer iterations; atomic write to ``fname``.

    ``selection``: an :class:`meeg_inverse.sure.AlphaSelection`, or anything with its
    ``alpha_max``, ``curve``, ``history`` (``alphas``, ``sure``), ``method``,
    ``alpha_fraction`` and ``empty``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)  # Agg canvas, no pyplot state touched
    ax = fig.add_subplot(111)
    a_max = selection.alpha_max
    if selection.curve is not None:
        ca, cs = selection.curve
        ax.plot(np.asarray(ca) / a_max, cs, "-o", ms=3, color="0.5", label="grid")
    h = selection.history
    if h["alphas"] and selection.method == "sure-hypergradient":
        ax.plot(np.asarray(h["alphas"]) / a_max, h["sure"], "x-", color="C1",
                label="outer iterations")
    ax.axvline(selection.alpha_fraction, color="C3", ls="--",
               label=f"selected {selection.alpha_fraction:.3f} λmax"
               + (" (EMPTY)" if selection.empty else ""))
    ax.set_xscale("log")
    ax.set_xlabel("λ / λmax")
    ax.set_ylabel("held-out MSE" if selection.method == "heldout" else "SURE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fname = os.fspath(fname)
    ext = os.path.splitext(fname)[1] or ".png"
    with atomic_path(fname) as tmp:  # no half-written figure, the usual file mode
        fig.savefig(tmp, format=ext[1:])
    return fname
