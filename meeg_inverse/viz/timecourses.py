"""Time courses of the active sources and the whitened data / fit / residual panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._utils import NAM, active_rows, save_figure, signed_time_courses, source_amplitudes

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]


def source_labels(stc, src=None):
    """One label per row of ``stc``: 'lh 1234' / 'rh 88' / 'vol 5012'."""
    import mne

    labels = []
    if isinstance(stc, (mne.VolSourceEstimate, mne.VolVectorSourceEstimate)):
        return [f"vol {v}" for v in np.concatenate(stc.vertices)]
    names = ("lh", "rh") if len(stc.vertices) == 2 else [f"s{i}" for i in
                                                         range(len(stc.vertices))]
    for name, vert in zip(names, stc.vertices):
        labels += [f"{name} {v}" for v in vert]
    return labels


def plot_time_courses(stc, fname, max_sources=10, title=None, time=None, src=None,
                      labels=None, dpi=100, figsize=None, faded=None):
    """Time course of each active source (strongest first) with its peak marked.

    Fixed-orientation estimates are plotted signed, free/vector ones as the dipole norm;
    units nA·m, time in ms. Sources beyond ``max_sources`` are summarised in the legend.
    A dashed line marks ``time`` (s) when given. ``faded``: a boolean per row of ``stc``,
    True for sources drawn faded (low confidence). Returns the path written.
    """
    import matplotlib.pyplot as plt

    tc = signed_time_courses(stc) * NAM
    amp = source_amplitudes(stc)
    rows = active_rows(amp)
    shown = rows[:max_sources]
    labels = labels or source_labels(stc, src)
    times_ms = 1e3 * np.asarray(stc.times)
    fig, ax = plt.subplots(figsize=figsize or (10.0, 4.4), dpi=dpi, layout="constrained")
    for k, r in enumerate(shown):
        c = _COLORS[k % len(_COLORS)]
        p = int(np.argmax(np.abs(tc[r])))
        alpha = 0.3 if faded is not None and faded[r] else 1.0
        ax.plot(times_ms, tc[r], color=c, lw=1.8, alpha=alpha,
                label=f"{labels[r]}  (peak {abs(tc[r, p]):.3g} nA·m at {times_ms[p]:.0f} ms)")
        ax.plot(times_ms[p], tc[r, p], "v" if tc[r, p] >= 0 else "^", color=c, ms=9,
                mec="k", mew=0.7, zorder=4, alpha=alpha)
    if len(rows) > len(shown):
        ax.plot([], [], " ", label=f"+ {len(rows) - len(shown)} weaker sources not shown")
    if not len(rows):
        ax.text(0.5, 0.5, "no active source", transform=ax.transAxes, ha="center",
                va="center", fontsize=13, color="0.4")
    ax.axhline(0, color="0.6", lw=0.8)
    if times_ms[0] < 0 < times_ms[-1]:
        ax.axvline(0, color="0.6", lw=0.8, ls=":")
    if time is not None:
        ax.axvline(1e3 * time, color="k", lw=1, ls="--", alpha=0.6)
    if times_ms[-1] > times_ms[0]:
        ax.set_xlim(times_ms[0], times_ms[-1])
    ax.set_xlabel("Time (ms)", fontsize=12)
    kind = "amplitude (dipole norm)" if (stc.data.ndim == 3) else "amplitude"
    ax.set_ylabel(f"Source {kind} (nA·m)", fontsize=12)
    ax.set_title(title or f"Time courses of the {len(rows)} active source"
                 f"{'s' if len(rows) != 1 else ''}", fontsize=14)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.25)
    if len(rows):
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return save_figure(fig, Path(fname), dpi=dpi)


def plot_fit_residual(times, data, fit, fname, residual=None, title=None, ch_types=None,
                      dpi=100, whitened=True, nave=1):
    """Three stacked butterfly plots: (whitened) data, model fit and residual.

    ``data``, ``fit`` (and optional ``residual``, default ``data - fit``) are
    (n_channels, n_times); ``times`` in seconds. The panels share the y scale; the global
    field power (RMS over channels) of each is drawn in black and the explained variance
    ``1 - ||R||² / ||M||²`` is printed in the title. Whitened by the covariance of
    single trials, an average of ``nave`` trials has noise of standard deviation
    ``1 / sqrt(nave)``: that is the grey band. Returns the path written.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    times_ms = 1e3 * np.asarray(times, float)
    data = np.asarray(data, float)
    fit = np.asarray(fit, float)
    if data.shape != fit.shape:
        raise ValueError(f"shape mismatch: data {data.shape}, fit {fit.shape}")
    residual = data - fit if residual is None else np.asarray(residual, float)
    if data.ndim != 2 or data.shape != residual.shape or data.shape[1] != len(times_ms):
        raise ValueError(f"shape mismatch: data {data.shape}, fit {fit.shape}, residual "
                         f"{residual.shape}, times {times_ms.shape}")
    ev = 1 - np.sum(residual ** 2) / max(np.sum(data ** 2), 1e-300)
    lim = 1.05 * max(np.abs(data).max(), np.abs(fit).max(), 1e-12)
    unit = "whitened (a.u.)" if whitened else "amplitude"
    fig, axes = plt.subplots(3, 1, figsize=(9.0, 7.5), dpi=dpi, sharex=True, sharey=True,
                             layout="constrained")
    for ax, arr, name, col in zip(axes, (data, fit, residual),
                                  ("Data", "Fit (model)", "Residual"),
                                  ("#3b6fb6", "#c8102e", "#6a6a6a")):
        # One LineCollection instead of a Line2D per channel: same picture, a few
        # times faster to draw (hundreds of channels).
        ax.add_collection(LineCollection(np.stack(np.broadcast_arrays(times_ms, arr), -1),
                                         colors=col, linewidths=0.5, alpha=0.35))
        ax.plot(times_ms, np.sqrt(np.mean(arr ** 2, axis=0)), color="k", lw=1.6,
                label="GFP (RMS)")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_ylim(-lim, lim)
        ax.set_ylabel(f"{name}\n{unit}", fontsize=11)
        ax.grid(alpha=0.25)
        ax.spines[["top", "right"]].set_visible(False)
        rms = np.sqrt(np.mean(arr ** 2))
        ax.text(0.99, 0.94, f"RMS {rms:.3g}", transform=ax.transAxes, ha="right", va="top",
                fontsize=10, color="0.25")
    if whitened:
        level = 1.0 / np.sqrt(max(int(nave), 1))
        for ax in axes:
            ax.axhspan(-level, level, color="0.85", alpha=0.5, zorder=0, lw=0)
        what = (f"±1/√N = ±{level:.2g} (noise level of an average of N = {int(nave)} trials)"
                if nave > 1 else "±1 (noise level)")
        axes[2].text(0.01, 0.06, f"grey band: {what}", transform=axes[2].transAxes,
                     fontsize=9, color="0.35")
    axes[0].legend(loc="upper left", fontsize=9, frameon=False)
    axes[-1].set_xlabel("Time (ms)", fontsize=12)
    if times_ms[-1] > times_ms[0]:
        axes[-1].set_xlim(times_ms[0], times_ms[-1])
    fig.suptitle(f"{title or 'Data, fit and residual'}  —  explained variance "
                 f"{100 * ev:.1f} %  ({data.shape[0]} channels)", fontsize=13)
    return save_figure(fig, Path(fname), dpi=dpi)
