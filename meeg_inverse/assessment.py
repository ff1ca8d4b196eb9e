"""What a user must be told about a result: anatomical names, confidence, warnings.

Everything here reads a finished result; nothing changes it. The warnings are
written where users look — ``summary.json``, the console, the index page, the
figures' titles and the viewer — not only to stderr.
"""

import numpy as np

# The fields-cancel threshold lives where the CLI launcher reads it without numpy.
from ._choices import FIELD_CANCELLATION_WARNING, LAMBDA_CURVE_FILE, selection_criterion
from .anatomy import source_labels
from .clusters import QUARTER_BELOW_CHANNELS
from .confidence import CONFIDENT

__all__ = ["annotate_records", "result_warnings", "IMPLAUSIBLE_AMPLITUDE_NAM",
           "MANY_SOURCES", "FIELD_CANCELLATION_WARNING", "RESIDUAL_FLOOR"]

#: Peak amplitude (nA·m) beyond what a cortical patch can produce: ~10 cm² of
#: cortex at the physiological maximum of ~0.5 nA·m/mm² (Murakami & Okada 2015,
#: NeuroImage 111:49–58: 0.16–0.77 nA·m/mm² across species).
IMPLAUSIBLE_AMPLITUDE_NAM = 500.0
#: More active sources than this is no longer "a few parts of the brain".
MANY_SOURCES = 10
#: Whitened residual variance over the noise variance below which the fit
#: explains noise (the discrepancy principle's floor).
RESIDUAL_FLOOR = 0.8
#: Below this many channels the confidence leaves a quarter of the channels out instead of
#: half (the scheme's own threshold, :data:`meeg_inverse.clusters.QUARTER_BELOW_CHANNELS`):
#: in the pre-registered simulation on the 30-channel EEGLAB montage
#: (docs/studies/eeg_confidence_results.md) every source at ≥ 0.9 was true (5/5), no
#: noise-only source reached 0.9, but 9 of 26 true sources stayed below 0.5: the warning
#: says that a low value there is weak evidence.
CONFIDENCE_MIN_CHANNELS = QUARTER_BELOW_CHANNELS


def annotate_records(records, *, confidence=None, subject=None, subjects_dir=None):
    """Add ``label`` (anatomical name), ``label_atlas`` and ``confidence`` to source records.

    Parameters
    ----------
    records : list of dict
        From :func:`meeg_inverse.summary.source_records` (changed in place and returned).
    confidence : dict | None
        ``{source_index: confidence}``.
    subject, subjects_dir
        For the subject's own parcellation (``label/?h.aparc.annot``) when present.

    Returns
    -------
    records : list of dict
    """
    if not records:
        return records
    mni = [r.get("position_mni_mm") for r in records]
    labels = source_labels(None if any(m is None for m in mni) else np.array(mni, float),
                           hemispheres=[r.get("hemisphere") for r in records],
                           vertices=[r.get("vertex") for r in records],
                           subject=subject, subjects_dir=subjects_dir)
    for r, lab in zip(records, labels):
        r["label"] = lab["name"]
        r["label_atlas"] = lab["atlas"]
        if confidence is not None:
            c = confidence.get(r["source_index"])
            r["confidence"] = None if c is None else round(float(c), 3)
    return records


def selection_facts(selection):
    """What :func:`result_warnings` says of how λ was chosen, from the automatic rule's
    :class:`~meeg_inverse.sure.AlphaSelection` (None: λ given by the user)."""
    return dict(at_bound=bool(getattr(selection, "at_bound", False)),
                search_bound=getattr(selection, "search_bound", None),
                automatic=selection is not None,
                selection_method=getattr(selection, "method", None))


def result_warnings(records, *, field_cancellation=float("nan"), residual_ratio=None,
                    at_bound=False, empty=False, penalty="l21", automatic=False,
                    search_bound=None, alpha_fraction=None, selection_method=None,
                    n_channels=None, reported=None):
    """Everything implausible or uncertain about a result, as (code, message, fix) dicts.

    Parameters
    ----------
    records : list of dict
        Annotated source records.
    field_cancellation : float
        :meth:`InverseProblem.field_cancellation` of the estimate.
    residual_ratio : float | None
        Whitened residual variance over the noise variance of the average.
    at_bound : bool
        The automatic λ is an end of its search interval.
    empty : bool
        No source is active.
    penalty : str
    automatic : bool
        λ was chosen by an automatic rule (not given by the user).
    search_bound : 'upper' | 'lower' | None
        Which end of the search the automatic λ is (with ``at_bound``).
    alpha_fraction : float | None
        λ / λ_max, for the message.
    selection_method : str | None
        ``AlphaSelection.method`` of the automatic rule: the criterion its λ curve
        (:data:`~meeg_inverse._choices.LAMBDA_CURVE_FILE`) shows, for the message.
    n_channels : int | None
        Channels of the inverse: below :data:`CONFIDENCE_MIN_CHANNELS` the low-confidence
        warning says that a low confidence is weak evidence there (quarter-out resamples).
    reported : list of dict | None
        The reported sources (:func:`reported_sources`), each with its ``confidence``:
        the low-confidence warning counts them, as the console and the index page list
        them (their grid sources share their confidence); None: it counts ``records``.

    Returns
    -------
    warnings : list of dict
        Each with ``code``, ``message`` and ``fix``.
    """
    out = []

    def add(code, message, fix):
        out.append(dict(code=code, message=message, fix=fix))

    if empty or not records:
        add("empty", "No source is active.",
            "lower --alpha, or check that the time window holds a response.")
        return out
    if np.isfinite(field_cancellation) and field_cancellation > FIELD_CANCELLATION_WARNING:
        add("field_cancellation",
            f"The sources' fields cancel on the sensors (ratio {field_cancellation:.0f}): "
            "neighbouring sources with opposite, implausibly large amplitudes.",
            "use --penalty l05 or l21, or a larger --alpha." if penalty in ("mcp", "scad")
            else "use a larger --alpha.")
    big = [r for r in records if r["peak_amplitude_nAm"] > IMPLAUSIBLE_AMPLITUDE_NAM]
    if big:
        add("implausible_amplitude",
            f"{len(big)} source(s) peak above {IMPLAUSIBLE_AMPLITUDE_NAM:.0f} nA·m "
            f"(largest {max(r['peak_amplitude_nAm'] for r in big):.0f} nA·m), beyond what "
            "cortex produces.",
            "check the noise covariance and the forward model; try a larger --alpha.")
    if len(records) > MANY_SOURCES:
        add("many_sources",
            f"{len(records)} active sources: more than the few a focal response has.",
            ("read the reported sources (neighbours merged) and their confidences: the "
             "weak ones are the least reliable; a larger --alpha (a fraction of λ_max, e.g. "
             "0.5) keeps "
             "fewer." if automatic else
             "use the default automatic λ (--alpha auto) or a larger --alpha for a sparser "
             "answer; sources with a low confidence are the least reliable."))
    if residual_ratio is not None and residual_ratio < RESIDUAL_FLOOR:
        add("fits_noise",
            f"The residual is {residual_ratio:.2f} × the noise variance: the sources also "
            "explain noise.",
            "use a larger --alpha.")
    counted = reported if reported else records
    kind = "reported sources" if reported else "sources"
    uncertain = [r for r in counted if r.get("confidence") is not None
                 and r["confidence"] < CONFIDENT]
    if uncertain and n_channels is not None and n_channels < CONFIDENCE_MIN_CHANNELS:
        add("low_confidence",
            f"{len(uncertain)} of {len(counted)} {kind} have a confidence below "
            f"{CONFIDENT:.1f}; with {n_channels} channels the confidence leaves a quarter of "
            "the channels out of each resample (half of them cannot place the sources), and "
            "a low value is weak evidence: on a simulated 30-electrode montage no noise-only "
            "source and only true ones reached 0.9, but a third of the true sources stayed "
            f"below {CONFIDENT:.1f}.",
            "read 0.9 or more as confirmed and a low confidence as unconfirmed rather than "
            "false; judge those sources by their fit and anatomy too (they are drawn faded).")
    elif uncertain:
        add("low_confidence",
            f"{len(uncertain)} of {len(counted)} {kind} have a confidence below "
            f"{CONFIDENT:.1f} (found again in fewer than half of the resamples).",
            "read them as uncertain; they are drawn faded.")
    where = "" if alpha_fraction is None else f" ({alpha_fraction:.3g} × λ_max)"
    if at_bound and search_bound == "upper":
        add("selection_at_bound",
            f"The automatic λ is the top of its search{where}: the data support few "
            "sources, the strongest first.",
            "read the sources with their confidences; an average of more trials "
            "supports more.")
    elif at_bound:
        add("selection_at_bound", f"The automatic λ is an end of its search interval{where}.",
            # The figure exists only where figures were drawn; the path always.
            "check the λ curve ("
            + ("the criterion" if selection_method is None
               else selection_criterion(selection_method)[0])
            + f" along λ: {LAMBDA_CURVE_FILE} where figures are drawn, alpha_selection.path "
            "in summary.json or result.selection) and set alpha (--alpha) if needed.")
    return out


def reported_sources(records, clusters, frames_of=None, times=None, label_at=None):
    """One entry per reported source (a cluster of grid sources), strongest first.

    Each record gets ``source``: the 1-based number of its reported source.

    Parameters
    ----------
    records : list of dict
        Annotated source records (:func:`annotate_records`).
    clusters : list of meeg_inverse.clusters.SourceCluster
    frames_of : callable | None
        ``frames_of(indices)`` -> ``{'head'|'mri'|'mni': ndarray (n, 3) in m | None}``:
        positions of any grid sources (for the sub-grid positions, whose
        triangle vertices need not be active). None: the centroid is reported.
    label_at : callable | None
        ``label_at(source_index, position_mni_mm)`` -> ``(hemisphere, label dict of
        :func:`meeg_inverse.anatomy.source_labels`)``: names a fitted position by the
        grid source that weighs most in it (the fit may move the source out of its
        strongest member's label). None: the strongest member's name.
    times : ndarray, shape (n_times,) | None
        Times of the columns of the clusters' ``moment`` (s): the peak time of a
        fitted moment. None: the strongest member's peak time.

    Returns
    -------
    sources : list of dict
        ``source``, ``hemisphere``, ``label`` (the strongest member's),
        ``position_{head,mri,mni}_mm`` (the reported position: the sub-grid fit
        of :mod:`meeg_inverse.subgrid`, or the centroid), ``position_method``,
        ``centroid_{head,mri,mni}_mm`` (energy-weighted centroid of the members),
        ``peak_amplitude_nAm`` (the peak of the dipole moment fitted at the
        reported position; for a centroid, the root-sum-square of the members'
        peaks),
        ``peak_time_s`` (the time of that peak: where the fitted moment's norm
        is largest; for a centroid, or without ``times``, the strongest
        member's), ``confidence``, ``members`` (source indices) and ``weights``.
    """
    by_index = {r["source_index"]: r for r in records}
    out = []
    for cluster in clusters:
        members = [by_index[int(m)] for m in cluster.members if int(m) in by_index]
        if not members:
            continue
        weights = np.asarray(cluster.weights, float)[:len(members)]
        weights = weights / weights.sum()
        entry = {"source": None, "hemisphere": members[0]["hemisphere"],
                 "label": members[0].get("label"), "label_atlas": members[0].get("label_atlas")}
        for frame in ("head", "mri", "mni"):
            pos = [m.get(f"position_{frame}_mm") for m in members]
            entry[f"centroid_{frame}_mm"] = (None if any(p is None for p in pos) else
                                             np.round(weights @ np.array(pos), 2).tolist())
        method = getattr(cluster, "position_method", "centroid")
        if frames_of is not None and method != "centroid":
            frames = frames_of(np.asarray(cluster.position_sources, int))
            w = np.asarray(cluster.position_weights, float)
            for frame in ("head", "mri", "mni"):
                entry[f"position_{frame}_mm"] = (
                    None if frames.get(frame) is None
                    else np.round(w @ frames[frame] * 1e3, 2).tolist())
        else:
            method = "centroid"
            for frame in ("head", "mri", "mni"):
                entry[f"position_{frame}_mm"] = entry[f"centroid_{frame}_mm"]
        entry["position_method"] = method
        if label_at is not None and method != "centroid":
            w = np.asarray(cluster.position_weights, float)
            nearest = int(np.asarray(cluster.position_sources, int)[int(np.argmax(w))])
            hemisphere, label = label_at(nearest, entry["position_mni_mm"])
            if label["name"] is not None:  # else: the member's name stands
                entry.update(hemisphere=hemisphere, label=label["name"],
                             label_atlas=label["atlas"])
        moment = getattr(cluster, "moment", None)
        if moment is not None and method != "centroid":  # the dipole's, at its position
            norm = np.linalg.norm(moment, axis=0)
            peak = int(np.argmax(norm))
            entry["peak_amplitude_nAm"] = float(norm[peak] * 1e9)
            # Amplitude and time of one curve: the fitted moment's.
            entry["peak_time_s"] = (members[0]["peak_time_s"] if times is None else
                                    round(float(np.asarray(times)[peak]), 5))
        else:
            entry["peak_amplitude_nAm"] = float(np.sqrt(sum(m["peak_amplitude_nAm"] ** 2
                                                            for m in members)))
            entry["peak_time_s"] = members[0]["peak_time_s"]
        entry["confidence"] = (None if cluster.confidence is None
                               else round(float(cluster.confidence), 3))
        entry["members"] = [m["source_index"] for m in members]
        entry["weights"] = np.round(weights, 4).tolist()
        out.append(entry)
    # Strongest first by the amplitude reported (the fitted moment's, which can order them
    # otherwise than their grid members did), numbered in that order.
    out.sort(key=lambda e: -e["peak_amplitude_nAm"])
    for number, entry in enumerate(out, 1):
        entry["source"] = number
        for index in entry["members"]:
            by_index[index]["source"] = number
    return out
