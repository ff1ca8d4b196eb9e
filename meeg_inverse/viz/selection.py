"""The λ search's figure: the selection criterion along λ, the chosen λ marked.

Whatever rule chose λ (BIC, the quantile universal threshold, SURE, held-out
error), the figure names its criterion on the axis and the rule in the title; a
result folder holds it as :data:`meeg_inverse._choices.LAMBDA_CURVE_FILE`.
"""

import os

import numpy as np

from .._choices import selection_criterion
from ._utils import atomic_path


def plot_sure_curve(selection, fname):
    """Plot the criterion curve and the outer iterations; atomic write to ``fname``.

    ``selection``: as :func:`lambda_curve_figure` takes it.
    """
    fig = lambda_curve_figure(selection)
    fname = os.fspath(fname)
    ext = os.path.splitext(fname)[1] or ".png"
    with atomic_path(fname) as tmp:  # no half-written figure, the usual file mode
        fig.savefig(tmp, format=ext[1:])
    return fname


def lambda_curve_figure(selection):
    """The λ curve of an automatic rule: its criterion along λ, the chosen λ marked.

    ``selection``: an :class:`meeg_inverse.sure.AlphaSelection`, or anything with its
    ``alpha_max``, ``curve``, ``history`` (``alphas``, ``sure``), ``method``,
    ``alpha_fraction`` and ``empty``. The y axis names the criterion of
    ``method`` (:data:`meeg_inverse._choices.SELECTION_CRITERIA`), the title the rule.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)  # Agg canvas, no pyplot state touched
    ax = fig.add_subplot(111)
    a_max = selection.alpha_max
    if selection.curve is not None:
        ca, cs = selection.curve
        ax.plot(np.asarray(ca) / a_max, cs, "-o", ms=3, color="0.5",
                label="the penalty's path" if selection.method == "bic" else "grid")
    h = selection.history
    criterion, rule = selection_criterion(selection.method)
    if h["alphas"] and selection.method == "sure-hypergradient":
        ax.plot(np.asarray(h["alphas"]) / a_max, h["sure"], "x-", color="C1",
                label="outer iterations")
    elif h["alphas"] and selection.method == "qut" and selection.curve is None:
        # λ raised from the threshold until the fit stops explaining noise.
        ax.plot(np.asarray(h["alphas"]) / a_max, h["sure"], "x-", color="C1",
                label="λ tried (discrepancy floor)")
    ax.axvline(selection.alpha_fraction, color="C3", ls="--",
               label=f"selected {selection.alpha_fraction:.3f} λmax"
               + (" (EMPTY)" if selection.empty else ""))
    ax.set_xscale("log")
    ax.set_xlabel("λ / λmax")
    ax.set_ylabel(criterion)
    ax.set_title(f"λ chosen by {rule}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
