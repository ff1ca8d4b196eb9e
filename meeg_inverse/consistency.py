"""Checks that the data and the noise covariance describe the same sensors' space.

A covariance estimated from differently processed data (e.g. unprocessed
empty-room data for Maxwell-filtered recordings) has components the data do not
have; whitening with it blows up the few directions the processing removed
and the inverse explains them with strong, spurious sources — silently, since
the solver converges. MNE's ``rank='info'`` does not help: it keeps the
covariance's leading eigenvectors, which are not the data's subspace.
"""

import mne

from .errors import InputError

#: Covariance ranks above the data's rank by more than this (per channel type,
#: and at least 3) are refused: a covariance of data processed the same way has
#: the data's rank up to estimation noise (SSS: the number of inside
#: components, ~65-80, against 300+ for unprocessed MEG).
RANK_MARGIN = 0.05


def _is_maxwell_filtered(info):
    return any(entry.get("max_info", {}).get("sss_info") for entry in info.get("proc_history") or [])


def check_rank_consistency(info, noise_cov, ch_names, *, cov_rank=None):
    """Refuse a noise covariance whose rank exceeds the data's (per channel type).

    Parameters
    ----------
    info : mne.Info
        The recording's measurement info (SSS processing history, projectors).
    noise_cov : mne.Covariance
    ch_names : list of str
        The channels that enter the inverse.
    cov_rank : dict | None
        The covariance's estimated rank per channel type when already known
        (:func:`mne.cov.prepare_noise_cov` with ``rank=None`` estimates it, with
        the same projectors); None: estimated here.

    Returns
    -------
    ranks : dict
        Per channel type, ``(data_rank, covariance_rank)``.

    Raises
    ------
    InputError
        When for some channel type the covariance's estimated rank exceeds the
        data's rank (from the info: Maxwell filtering, and the projectors of
        both the data and the covariance, which the whitener applies) by more
        than :data:`RANK_MARGIN`.
    """
    info = mne.pick_info(info, [info["ch_names"].index(c) for c in ch_names])
    known = {p["desc"] for p in info["projs"]}
    projs = list(info["projs"]) + [p for p in noise_cov["projs"] if p["desc"] not in known]
    with info._unlock():
        info["projs"] = projs
    cov = mne.pick_channels_cov(noise_cov, ch_names, ordered=True, verbose=False)
    with mne.utils.use_log_level("ERROR"):
        # rank="info" with a covariance reads the rank off the info alone.
        data_rank = mne.compute_rank(cov, rank="info", info=info, verbose=False)
        if cov_rank is None:  # one SVD per channel type
            cov_rank = mne.compute_rank(cov, rank=None, info=info, verbose=False)
    ranks = {kind: (data_rank[kind], cov_rank.get(kind, 0)) for kind in data_rank}
    for kind, (data, cov_r) in ranks.items():
        if cov_r > data + max(3, RANK_MARGIN * data):
            why = ("the data are Maxwell-filtered (SSS)" if _is_maxwell_filtered(info)
                   and kind in ("meg", "mag", "grad") else
                   "of the data's channels and projectors")
            raise InputError(
                f"The noise covariance has rank {cov_r} on the {kind.upper()} channels, but the "
                f"data only {data} ({why}): the covariance was estimated from data processed "
                "differently, and whitening with it turns what the processing removed into "
                "strong, spurious sources.",
                "estimate the noise covariance from data processed the same way (e.g. "
                "Maxwell-filter the empty-room recording with the same settings and apply "
                "the same projectors), or from the recording's own baseline, with "
                "mne.compute_covariance(..., rank='info').")
    return ranks
