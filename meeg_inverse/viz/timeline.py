"""Timeline of a continuous localization: active sources × time, with amplitudes."""

from __future__ import annotations

import numpy as np

from ._utils import save_figure


def plot_timeline(result, fname, n_bins=2000, max_sources=40, title=None, dpi=100):
    """Draw which sources are active when, and how strongly, over a whole recording.

    Parameters
    ----------
    result : meeg_inverse.continuous.ContinuousResult
    fname : path-like
        PNG file.
    n_bins : int
        Time bins (each shows the largest amplitude inside it).
    max_sources : int
        The sources active longest are shown (the others are counted in the title).
    title : str | None
    dpi : int

    Returns
    -------
    fname : Path
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels, edges, amp = result.timeline(n_bins)
    n_total = len(labels)
    if n_total > max_sources:
        keep = np.sort(np.argsort(-(amp > 0).sum(axis=1), kind="stable")[:max_sources])
        labels, amp = [labels[k] for k in keep], amp[keep]
    height = 1.6 + 0.22 * max(len(labels), 3)
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(11, height + 1.4), sharex=True,
                                   gridspec_kw=dict(height_ratios=[height, 1.2]),
                                   layout="constrained")
    shown = np.where(amp > 0, amp, np.nan)
    vmax = np.nanpercentile(shown, 99) if np.isfinite(shown).any() else 1.0
    image = ax.pcolormesh(edges, np.arange(len(labels) + 1), shown, cmap="viridis",
                          vmin=0, vmax=vmax, shading="flat")
    ax.set_yticks(np.arange(len(labels)) + 0.5)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(len(labels), 0)
    ax.set_ylabel("source")
    cbar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    cbar.set_label("amplitude (nA·m)")
    w = result.windows
    mid = 0.5 * (np.asarray(w["start"]) + np.asarray(w["stop"]))
    ax_n.step(mid, w["n_sources"], where="mid", lw=0.6, color="k")
    bad = np.asarray(w["status"]) == 2
    if bad.any():
        ax_n.plot(mid[bad], np.zeros(bad.sum()), "|", color="r", ms=8, label="BAD_ (skipped)")
        ax_n.legend(loc="upper right", fontsize=7)
    ax_n.set_ylabel("sources\nper window", fontsize=8)
    ax_n.set_xlabel("time (s)")
    more = f" (the {len(labels)} active longest of {n_total})" if n_total > len(labels) else ""
    ax.set_title(title or f"Active sources over the recording{more}")
    return save_figure(fig, fname, dpi=dpi)
