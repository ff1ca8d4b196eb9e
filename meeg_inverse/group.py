"""The group summary of a cohort: one table of every subject's sources, a figure, a page.

Written into ``derivatives/meeg-inverse/group/``:

- ``task-T_sources.tsv``: one row per reported source of every localization (the
  sources its console line, summary.json's ``reported_sources`` and report name: a
  part of the brain at its fitted position, not the grid sources it groups) —
  subject, session, run, condition, MNI x/y/z (mm), hemisphere, atlas label, peak
  amplitude (nA·m), peak time, confidence, and the cluster it falls in;
- ``task-T_tasks.tsv``: one row per localization: status (done, skipped as up
  to date, failed) and the failure's message;
- ``task-T_sources.png``: every subject's sources on the fsaverage cortex
  (MNI), coloured by cluster;
- ``index.html`` / ``report.h5``: the group page (``mne.Report``) linking each
  localization's report.

The summary is rewritten only when a localization or its status changed: a
rerun with nothing to do writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
from pathlib import Path

import numpy as np

#: Sources closer than this (mm, average linkage) form one cluster of the group figure.
CLUSTER_MM = 20.0
#: Part of the group summary's key: a table written by another rule is rewritten.
#: 2: rows are the reported sources (1: the grid sources).
TABLE_FORMAT = 2

SOURCE_COLUMNS = ("subject", "session", "run", "condition", "x_mni_mm", "y_mni_mm", "z_mni_mm",
                  "hemisphere", "label", "amplitude_nAm", "peak_time_s", "confidence",
                  "cluster", "task")
TASK_COLUMNS = ("subject", "session", "run", "condition", "status", "seconds", "message", "task")


def _read_summary(folder):
    try:
        return json.loads((Path(folder) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def source_rows(tasks):
    """One dict per reported source of every finished localization (MNI coordinates in mm).

    The reported sources (``summary.json``'s ``reported_sources``: neighbouring grid
    sources as one, at the fitted position, with the fitted moment's peak amplitude
    and time) are what the localization's console line and report name; a summary
    without them (written before they existed) gives its grid sources.
    """
    rows = []
    for t in tasks:
        if t["status"] not in ("done", "skipped") or not t.get("folder"):
            continue
        summary = _read_summary(t["folder"])
        if summary is None:
            continue
        reported = summary.get("reported_sources")
        for s in (reported if reported is not None else summary.get("sources")) or []:
            mni = s.get("position_mni_mm") or [None] * 3
            rows.append(dict(subject=t["subject"], session=t.get("session") or "n/a",
                             run=t.get("run") or "n/a", condition=t.get("condition"),
                             x_mni_mm=mni[0], y_mni_mm=mni[1], z_mni_mm=mni[2],
                             hemisphere=s.get("hemisphere"), label=s.get("label") or "n/a",
                             amplitude_nAm=round(float(s["peak_amplitude_nAm"]), 3),
                             peak_time_s=s.get("peak_time_s"),
                             confidence=("n/a" if s.get("confidence") is None
                                         else round(float(s["confidence"]), 3)),
                             task=t["task"]))
    return rows


def cluster_sources(rows, distance_mm=CLUSTER_MM):
    """Group the sources of all subjects by position (hierarchical, average linkage).

    Sets ``cluster`` (1, 2, ... by decreasing size; 'n/a' without MNI) on each row.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    have = [r for r in rows if r["x_mni_mm"] is not None]
    for r in rows:
        r["cluster"] = "n/a"
    if len(have) == 1:
        have[0]["cluster"] = 1
    elif have:
        xyz = np.array([[r["x_mni_mm"], r["y_mni_mm"], r["z_mni_mm"]] for r in have], float)
        labels = fcluster(linkage(xyz, "average"), distance_mm, criterion="distance")
        order = {lab: k + 1 for k, lab in enumerate(
            sorted(set(labels), key=lambda lab: (-np.sum(labels == lab), lab)))}
        for r, lab in zip(have, labels):
            r["cluster"] = order[lab]
    return rows


def _write_tsv(path, rows, columns):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, delimiter="\t", extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("n/a" if r.get(k) is None else r.get(k)) for k in columns})
    os.replace(tmp, path)
    return path


def plot_group_sources(rows, fname):
    """Every source on the fsaverage cortex (three projections), coloured by cluster."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .viz._geometry import fsaverage5_meshes

    have = [r for r in rows if r["x_mni_mm"] is not None]
    meshes = fsaverage5_meshes("pial")
    cortex = np.concatenate([rr for rr, _ in meshes]) * 1e3
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    views = (("axial (from above)", 0, 1), ("left lateral", 1, 2), ("coronal (from behind)", 0, 2))
    names = "xyz"
    cmap = plt.get_cmap("tab10")
    xyz = np.array([[r["x_mni_mm"], r["y_mni_mm"], r["z_mni_mm"]] for r in have], float) \
        if have else np.zeros((0, 3))
    clusters = [r["cluster"] for r in have]
    amp = np.array([r["amplitude_nAm"] for r in have], float)
    size = 30 + 120 * (amp / amp.max()) if len(amp) else amp
    for ax, (name, i, j) in zip(axes, views):
        ax.scatter(cortex[::3, i], cortex[::3, j], s=0.3, c="0.82", rasterized=True)
        for c in sorted(set(clusters)):
            sel = np.array([k == c for k in clusters])
            ax.scatter(xyz[sel, i], xyz[sel, j], s=size[sel], color=cmap((c - 1) % 10),
                       edgecolor="k", linewidth=0.5, alpha=0.85,
                       label=f"cluster {c} ({sel.sum()})")
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.set_xlabel(f"{names[i]} MNI (mm)")
        ax.set_ylabel(f"{names[j]} MNI (mm)")
    if have:
        axes[0].legend(loc="lower left", fontsize=8, frameon=False)
    n_subjects = len({r["subject"] for r in have})
    fig.suptitle(f"{len(have)} sources of {n_subjects} subject(s) on fsaverage, clustered "
                 f"within {CLUSTER_MM:.0f} mm")
    fig.tight_layout()
    tmp = Path(fname).with_name(f".tmp{os.getpid()}-{Path(fname).name}")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, fname)
    return Path(fname)


def _sources_html(rows):
    cols = ("subject", "session", "run", "condition", "x_mni_mm", "y_mni_mm", "z_mni_mm",
            "hemisphere", "label", "amplitude_nAm", "confidence", "cluster")
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c)))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f'<table class="table table-sm"><tr>{head}</tr>{body}</table>'


def write_group_summary(out_root, task, tasks, *, say=print):
    """Write the group table, task list, figure and page (when something changed).

    Parameters
    ----------
    out_root : Path
        The derivatives folder.
    task : str
        The BIDS task.
    tasks : list of dict
        The statuses :func:`meeg_inverse.cohort.run_cohort` collected.

    Returns
    -------
    paths : dict
        Name → path of each file written (empty when it was up to date).
    """
    from .report import write_group_report

    folder = Path(out_root) / "group"
    folder.mkdir(parents=True, exist_ok=True)
    state = [TABLE_FORMAT] + [(t["task"] if "task" in t else None, t.get("key"),
                               t["status"] == "failed", t.get("message")) for t in tasks]
    key = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()
    stamp = folder / f".task-{task}_key"
    if stamp.is_file() and stamp.read_text() == key and (folder / "index.html").is_file():
        say("group summary up to date")
        return {}
    rows = cluster_sources(source_rows(tasks))
    paths = {"sources": _write_tsv(folder / f"task-{task}_sources.tsv", rows, SOURCE_COLUMNS)}
    task_rows = [{**t, "task": t.get("task") or "n/a",
                  "seconds": None if t.get("seconds") is None else round(t["seconds"], 2),
                  "message": (t.get("message") or "").replace("\t", " ").replace("\n", " ")}
                 for t in tasks]
    paths["tasks"] = _write_tsv(folder / f"task-{task}_tasks.tsv", task_rows, TASK_COLUMNS)
    paths["figure"] = plot_group_sources(rows, folder / f"task-{task}_sources.png")
    links = []
    for t in tasks:
        if t["status"] == "failed" or not t.get("folder"):
            continue
        target = Path(t["folder"]) / "index.html"
        if not target.is_file():
            target = Path(t["folder"]) / "summary.json"
        links.append((t["task"], os.path.relpath(target, folder)))
    failures = [(f"sub-{t['subject']} run {t.get('run')} {t.get('condition')!r}",
                 t.get("message", "")) for t in tasks if t["status"] == "failed"]
    paths.update({k: folder / v for k, v in write_group_report(
        folder, title=f"meeg-inverse cohort: task {task}", table_html=_sources_html(rows),
        figure=paths["figure"], links=links, failures=failures).items()})
    stamp.write_text(key)
    say(f"group summary: {paths['sources']} ({len(rows)} sources), {paths['report']}")
    return paths
