"""The whitened inverse problem shared by every solver.

:class:`InverseProblem` owns the maths that turns MNE objects into the matrix
problem ``min_B 1/2 ||Y - G B||_F^2 + lambda * Omega(B)`` and maps a solution
back: channel selection common to data, forward and covariance, SSP
projections, rank-aware whitening, depth weighting, fixed / loose / free
orientation (a source is a group of 1 or 3 gain columns), lambda_max, and the
source estimate in physical units (A·m).

The preparation follows :func:`mne.inverse_sparse.mixed_norm` step by step, so
that the whitened gain equals MNE's before its last rescaling: MNE then
divides the gain by ``0.01 * lambda_max`` to express alpha as a percentage,
while here the gain is left as is and ``alpha`` is absolute
(``alpha = fraction * lambda_max``). The two problems have the same
solutions and objective values.
"""

import warnings
from dataclasses import dataclass, field

import mne
import numpy as np

from ._choices import FIELD_CANCELLATION_WARNING  # there: the CLI launcher reads it
from .errors import InputError, check_finite


def _triage_loose(src, loose):
    """Resolve ``loose`` as MNE does: 'auto' (0.2 on surfaces, else 1), a number, or a dict.

    A dict maps each source-space type of the forward ('surface', 'volume',
    'discrete') to its value, as in :func:`mne.inverse_sparse.mixed_norm`.
    Returns one number when every type has the same value, else the dict.
    """
    kinds = {s["type"] for s in src}
    if isinstance(loose, dict):
        from mne.forward.forward import _triage_loose as mne_triage_loose

        try:
            values = mne_triage_loose(src, loose)
        except (TypeError, ValueError) as exc:
            raise InputError(f"Bad loose {loose!r}: {exc}",
                             "give one value in [0, 1] per source-space type, e.g. "
                             "{'surface': 0.2, 'volume': 1.0}.") from None
        if len(set(values.values())) == 1:
            return float(next(iter(values.values())))
        if 0.0 in values.values():
            raise InputError(f"loose={loose!r} mixes fixed (0) and free orientations.",
                             "use one orientation model (loose=0 everywhere, or > 0 everywhere).")
        return {key: float(value) for key, value in values.items()}
    if isinstance(loose, str):
        if loose != "auto":
            raise InputError(f"loose must be 'auto' or a number in [0, 1], got {loose!r}.",
                             "use loose='auto', 0 (fixed), 0.2 (loose) or 1 (free).")
        return 0.2 if src.kind == "surface" else 1.0
    try:
        loose = float(loose)
    except (TypeError, ValueError):
        raise InputError(f"loose must be 'auto' or a number in [0, 1], got {loose!r}.",
                         "use loose='auto', 0 (fixed), 0.2 (loose) or 1 (free).") from None
    if not 0.0 <= loose <= 1.0:
        raise InputError(f"loose must lie in [0, 1], got {loose}.",
                         "use 0 (fixed), 0.2 (loose) or 1 (free orientation).")
    if loose < 1.0 and kinds - {"surf", "discrete"}:
        raise InputError(
            f"loose={loose} needs cortical surface orientations, but the source space is "
            f"{src.kind}.", "use loose=1 (free orientation) with volume source spaces.")
    return loose


def _depth_options(depth):
    """MNE's depth argument (None, a number or a dict of compute_depth_prior options).

    Returns the keyword arguments of :func:`mne.forward.compute_depth_prior`
    (``exp`` None: no depth weighting), with mixed_norm's defaults.
    """
    from mne.utils import _check_depth

    if isinstance(depth, dict):
        unknown = set(depth) - {"exp", "limit", "limit_depth_chs", "combine_xyz",
                                "allow_fixed_depth"}
        if unknown:
            raise InputError(f"Unknown depth option(s) {sorted(unknown)}.",
                             "use keys of mne.forward.compute_depth_prior: exp, limit, "
                             "limit_depth_chs, combine_xyz.")
    elif depth is not None:
        try:
            depth = float(depth)
        except (TypeError, ValueError):
            raise InputError(f"depth must be None, a number or a dict, got {depth!r}.",
                             "use 0.8 (MNE's default) or None.") from None
    options = _check_depth(depth, "depth_sparse")
    options.pop("allow_fixed_depth")  # sparse solvers allow it (MNE's depth_sparse)
    if options["exp"] is not None:
        options["exp"] = float(options["exp"])
        if options["exp"] < 0:
            raise InputError(f"depth must be ≥ 0, got {options['exp']}.",
                             "use 0.8 (MNE's default) or None.")
        if options["exp"] > 1:
            # MNE documents exp in [0, 1] but computes any value: accepted, as mixed_norm.
            warnings.warn(f"depth={options['exp']:g} is above 1: MNE documents the depth "
                          "weighting exponent in [0, 1] (1 already fully compensates the "
                          "weaker fields of deep sources; above it deep sources are favoured "
                          "over the superficial ones that produced the same fields). Use 0.8 "
                          "(MNE's default) or a value in [0, 1].", RuntimeWarning, stacklevel=4)
        if options["exp"] == 0:
            options["exp"] = None
    return options


def select_channels(info, forward, noise_cov, *, allow_missing_types=False):
    """Channels usable for the inverse: good, in the forward and in the covariance.

    Returns the names in the recording's order, and raises a clear error when
    the recording, forward and covariance share no channel, or when they would
    leave out a whole channel type of the recording, unless ``allow_missing_types``.
    """
    meeg = set(info["ch_names"][k] for k in mne.pick_types(info, meg=True, eeg=True, exclude=[]))
    fwd_names = set(forward["sol"]["row_names"])
    cov_names = set(noise_cov["names"])
    bads = set(info["bads"]) | set(noise_cov["bads"])
    good_data = [c for c in info["ch_names"] if c in meeg and c not in bads]
    if not good_data:
        raise InputError("The recording has no good MEG or EEG channel.",
                         "check info['bads'] and the channel types of the recording.")
    # A whole channel type lost (an EEG-only covariance for M/EEG data): a silent change of
    # what was asked, refused (MNE's mixed_norm leaves those channels out with a log line).
    from .channel_report import channel_report, check_channel_types

    check_channel_types(channel_report(info, forward, noise_cov), allow=allow_missing_types,
                        api=True)
    in_fwd = [c for c in good_data if c in fwd_names]
    if not in_fwd:
        raise InputError(
            f"None of the recording's {len(good_data)} good M/EEG channels "
            f"({', '.join(good_data[:3])}, ...) is in the forward solution "
            f"({', '.join(sorted(fwd_names)[:3])}, ...).",
            "compute the forward solution with this recording's info, or rename the "
            "channels to match.")
    missing_fwd = [c for c in good_data if c not in fwd_names]
    if missing_fwd:
        warnings.warn(
            f"{len(missing_fwd)} good channel(s) of the recording are not in the forward "
            f"solution and are left out: {', '.join(missing_fwd[:10])}", stacklevel=3)
    ch_names = [c for c in in_fwd if c in cov_names]
    if not ch_names:
        raise InputError(
            "The noise covariance covers none of the channels shared by the recording and "
            "the forward solution.", "give the noise covariance of this recording's sensors.")
    missing_cov = [c for c in in_fwd if c not in cov_names]
    if missing_cov:
        warnings.warn(
            f"{len(missing_cov)} channel(s) are not in the noise covariance and are left out: "
            f"{', '.join(missing_cov[:10])}", stacklevel=3)
    return ch_names


def _check_model_types(forward, noise_cov):
    """Refuse a ``forward`` that is not an ``mne.Forward`` or a ``noise_cov`` that is not an
    ``mne.Covariance``, with the fix."""
    if not isinstance(forward, mne.Forward):
        raise InputError(f"forward must be an mne.Forward, got {type(forward).__name__}.",
                         "read one with mne.read_forward_solution.")
    if not isinstance(noise_cov, mne.Covariance):
        raise InputError(f"noise_cov must be an mne.Covariance, got {type(noise_cov).__name__}.",
                         "read one with mne.read_cov or estimate it with mne.compute_covariance.")


def _check_noise_cov(noise_cov, ch_names):
    idx = [noise_cov["names"].index(c) for c in ch_names]
    cov = noise_cov["data"]
    diag = cov[idx] if noise_cov["diag"] else np.diag(cov)[idx]
    if not np.all(np.isfinite(diag)) or (not noise_cov["diag"] and not np.all(np.isfinite(cov))):
        raise InputError("The noise covariance contains NaN or Inf values.",
                         "recompute it from clean baseline or empty-room data.")
    zero = [c for c, d in zip(ch_names, diag) if not d > 0]
    if zero:
        raise InputError(
            f"The noise covariance is singular: zero variance for {len(zero)} channel(s) "
            f"({', '.join(zero[:6])}).",
            "mark those channels as bad or recompute the covariance with data on them "
            "(e.g. method='shrunk').")


def _warn_if_not_baseline_corrected(evoked, noise_cov):
    """Warn when the channel offsets of an evoked dwarf its noise.

    An average saved without baseline correction keeps each channel's DC
    offset; whitened, it is often tens of times the noise level, and a sparse
    inverse explains it with strong, wrong sources (the same ones whatever the
    condition). With ≥ 10 pre-stimulus samples the offsets are measured there;
    without them (an evoked cropped after the stimulus) each channel's mean
    over the window is compared with the noise level of the average and with
    its own variation in the window: on the sample data uncorrected EEG gives a
    median mean²/variance of 20-115 and an RMS mean of 8-11 noise standard
    deviations, baseline-corrected responses ≤ 5 and ≤ 2.2.
    """
    if evoked.baseline is not None:
        return
    pre = evoked.times < 0
    bads = set(evoked.info["bads"]) | set(noise_cov["bads"])
    types = evoked.get_channel_types()
    picks = [k for k, (c, kind) in enumerate(zip(evoked.ch_names, types))
             if kind in ("eeg", "mag", "grad") and c in noise_cov["names"] and c not in bads]
    if not picks:
        return
    idx = [noise_cov["names"].index(evoked.ch_names[k]) for k in picks]
    var = noise_cov["data"][idx] if noise_cov["diag"] else np.diag(noise_cov["data"])[idx]
    if not np.all(var > 0):
        return
    fix = ("Apply evoked.apply_baseline((None, 0)) before cropping (or read it with "
           "mne.read_evokeds(..., baseline=(None, 0))).")
    if pre.sum() >= 10:
        base = evoked.data[picks][:, pre] / np.sqrt(var)[:, None]
        offset = np.mean(base.mean(axis=1) ** 2)
        spread = np.mean(base.var(axis=1))
        if offset > 4.0 * max(spread, 1.0 / max(evoked.nave, 1)):
            warnings.warn(
                f"The evoked response is not baseline-corrected: its pre-stimulus offsets are "
                f"{np.sqrt(offset / max(spread, 1e-300)):.0f} times the pre-stimulus "
                f"fluctuations and would be localized as sources. {fix}",
                RuntimeWarning, stacklevel=3)
        return
    if evoked.data.shape[1] < 3:
        return
    # No pre-stimulus samples: per channel type, offsets are large against the noise of
    # the average and against the channel's own variation within the window.
    white = evoked.data[picks] / np.sqrt(var / max(evoked.nave, 1))[:, None]
    mean, spread = white.mean(axis=1), white.var(axis=1)
    kinds = np.array([types[k] for k in picks])
    for kind in np.unique(kinds):
        sel = kinds == kind
        ratio = float(np.median(mean[sel] ** 2 / np.maximum(spread[sel], 1e-300)))
        level = float(np.sqrt(np.mean(mean[sel] ** 2)))
        if ratio > 10.0 and level > 4.0:
            warnings.warn(
                f"The evoked response seems not baseline-corrected: its {kind.upper()} "
                f"channels are offset by {level:.0f} times the noise level of the average, "
                f"nearly constant over the window (mean²/variance {ratio:.0f}), and there is "
                f"no pre-stimulus part to check it against; such offsets would be localized "
                f"as sources. {fix}", RuntimeWarning, stacklevel=3)
            return


@dataclass
class InverseProblem:
    """The whitened, depth-weighted multitask regression problem.

    Build it with :meth:`from_evoked`, or from a prepared operator with
    :meth:`meeg_inverse.operator.SparseInverseOperator.problem` (which shares
    the operator's gain). Solvers use :attr:`gain`, :attr:`data` and
    :attr:`n_orient`; everything else maps solutions back.

    Attributes
    ----------
    gain : ndarray, shape (n_whitened_channels, n_sources * n_orient)
        Whitened, depth- and orientation-weighted gain, scaled so that
        ``||gain||_F^2`` equals the rank of the noise covariance (as MNE).
        Fortran-ordered: solvers read it column by column.
    data : ndarray, shape (n_whitened_channels, n_times)
        Whitened measurements (SSP projections applied).
    n_orient : int
        Gain columns per source: 1 (fixed) or 3 (loose / free).
    source_weighting : ndarray, shape (n_sources * n_orient,)
        Multiply row ``i`` of a solution by ``source_weighting[i]`` to get A·m.
    alpha_max : float
        Smallest lambda for which the L2,1 solution is zero,
        ``max_k ||gain_k^T data||_F``.
    nave : int
        Number of averaged trials: the noise covariance describes one trial, so
        the whitened noise of the data has standard deviation
        :attr:`noise_std` ``= 1 / sqrt(nave)`` (MNE's ``apply_inverse``
        scales the covariance the same way; ``mixed_norm`` does not, and its
        SURE then assumes a noise level ``sqrt(nave)`` times too large).
    forward : dict
        The source-side parts of the forward solution: ``src``,
        ``source_nn``, ``mri_head_t``.
    operator : SparseInverseOperator
        The prepared operator this problem applies to :attr:`data`.
    data_correlation : ndarray, shape (n_times, n_sources * n_orient) | None
        ``dataᵀ gain``, kept from the λ_max computation (None when it was not
        formed, e.g. for data longer than their number of channels): the
        solver's first outer iteration from zero is this product.
    """

    gain: np.ndarray
    data: np.ndarray
    n_orient: int
    source_weighting: np.ndarray
    whitener: np.ndarray
    forward: dict
    info: mne.Info
    ch_names: list
    times: np.ndarray
    loose: float
    depth: float | None
    rank: int
    alpha_max: float
    source_mask: np.ndarray | None = None
    evoked: mne.Evoked | None = field(default=None, repr=False)
    nave: int = 1
    operator: object = field(default=None, repr=False)
    noise: object = None
    data_correlation: np.ndarray | None = field(default=None, repr=False)

    @property
    def noise_estimate(self):
        """The noise of :attr:`data`: measured on the baseline when there was one.

        A :class:`meeg_inverse.noise.NoiseEstimate`; the nominal ``1 / nave``
        level (no temporal correlation) when the evoked had no baseline.
        """
        from .noise import NoiseEstimate

        if self.noise is not None:
            return self.noise
        return NoiseEstimate(1.0 / self.nave, 0.0, 1.0 / self.nave, 0, "nominal")

    @classmethod
    def from_evoked(cls, evoked, forward, noise_cov, *, loose="auto", depth=0.8, rank=None,
                    weights=None, weights_min=0.0, tmin=None, tmax=None,
                    allow_missing_types=False, verbose=False):
        """Build the problem from an evoked response, a forward solution and a noise covariance.

        Parameters
        ----------
        evoked : mne.Evoked
            The data. EEG must carry an average-reference projector
            (:func:`meeg_inverse.io.set_average_reference` adds one).
        forward : mne.Forward
            Forward solution; a free-orientation one allows any ``loose``.
        noise_cov : mne.Covariance
            Noise covariance of the sensors.
        loose : 'auto' | float
            Orientation constraint: 0 fixed normal, 1 free, in between loose
            ('auto': 0.2 on surface source spaces, 1 otherwise).
        depth : float | None
            Depth-weighting exponent (0.8 as MNE's sparse solvers; None: none).
        rank : None | dict | 'info' | 'full'
            Rank of the noise covariance, as in MNE.
        weights : None | ndarray | mne.SourceEstimate
            Per-source prior weights, as ``weights`` of
            :func:`mne.inverse_sparse.mixed_norm`.
        weights_min : float
            Sources with weight ≤ ``weights_min`` are left out.
        tmin, tmax : float | None
            Time window to localize (s).
        allow_missing_types : bool
            As :func:`meeg_inverse.make_sparse_inverse_operator`.

        Returns
        -------
        problem : InverseProblem
        """
        if not isinstance(evoked, mne.Evoked):
            raise InputError(f"evoked must be an mne.Evoked, got {type(evoked).__name__}.",
                             "average epochs first (epochs.average()).")
        _check_model_types(forward, noise_cov)
        _warn_if_not_baseline_corrected(evoked, noise_cov)
        if tmin is not None or tmax is not None:
            from .io import time_window

            tmin, tmax = time_window(evoked.times, tmin, tmax)
        from .operator import make_sparse_inverse_operator

        operator = make_sparse_inverse_operator(
            evoked.info, forward, noise_cov, loose=loose, depth=depth, rank=rank,
            weights=weights, weights_min=weights_min,
            allow_missing_types=allow_missing_types, verbose=verbose)
        return operator.problem(evoked, check_baseline=False, tmin=tmin, tmax=tmax)

    # ------------------------------------------------------------------ sizes
    @property
    def n_sources(self):
        """Number of source positions in the problem."""
        return self.gain.shape[1] // self.n_orient

    @property
    def n_channels(self):
        """Number of whitened channels (the rank of the noise covariance)."""
        return self.gain.shape[0]

    @property
    def sfreq(self):
        return self.info["sfreq"]

    @property
    def noise_std(self):
        """Standard deviation of the whitened noise of :attr:`data`: ``1 / sqrt(nave)``."""
        return 1.0 / np.sqrt(self.nave)

    # ------------------------------------------------------------- penalties
    def alpha_from_fraction(self, fraction):
        """Turn a fraction of lambda_max into the absolute lambda, with range checks."""
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            raise InputError(f"alpha must be a number in (0, 1), got {fraction!r}.",
                             "give alpha as a fraction of lambda_max, e.g. 0.3.") from None
        if not 0.0 < fraction < 1.0:
            raise InputError(
                f"alpha={fraction} is outside (0, 1): at alpha ≥ 1 (lambda ≥ lambda_max) no "
                "source is active, and alpha ≤ 0 is not a regularization.",
                "give alpha as a fraction of lambda_max strictly between 0 and 1, e.g. 0.3 "
                "(MNE's percentages divide by 100).")
        return fraction * self.alpha_max

    # --------------------------------------------------------------- mapping
    def full_coef(self, coef, active_set=None):
        """Expand a solution to all rows of the (unmasked) source space."""
        coef = np.asarray(coef)
        if active_set is not None:
            full = np.zeros((len(active_set), coef.shape[1]))
            full[active_set] = coef
            coef = full
        if self.source_mask is not None:
            full = np.zeros((len(self.source_mask), coef.shape[1]))
            full[self.source_mask] = coef
            coef = full
        return coef

    def fit(self, coef, active_set=None):
        """Whitened measurements predicted by a solution, ``gain @ coef``."""
        if active_set is None:  # only the active columns enter the product
            active_set = np.any(np.asarray(coef) != 0, axis=1)
            coef = np.asarray(coef)[active_set]
        return self.gain[:, active_set] @ np.asarray(coef)

    def explained_variance(self, coef, active_set=None):
        """Fraction of the whitened data's energy that a solution explains."""
        if active_set is None:  # only the active columns enter the product
            active_set = np.any(np.asarray(coef) != 0, axis=1)
            coef = np.asarray(coef)[active_set]
        residual = self.data - self.fit(coef, active_set)
        return 1.0 - float(np.sum(residual ** 2) / np.sum(self.data ** 2))

    def residual_ratio(self, coef, active_set=None):
        """Whitened residual variance over the noise variance of the data.

        Below ~0.8 the sources explain noise (see
        :data:`meeg_inverse.assessment.RESIDUAL_FLOOR`); the noise level is
        :attr:`noise_estimate`.
        """
        residual = self.data - self.fit(coef, active_set)
        return float(np.mean(residual ** 2) / self.noise_estimate.variance)

    def field_cancellation(self, coef, active_set=None):
        """How much the active sources' fields cancel on the sensors.

        ``Σ_j ‖G_j B_j‖²_F / ‖Σ_j G_j B_j‖²_F`` over the active sources ``j``
        (whitened fields): about 1 when the sources add up (0.4-0.65 for L2,1
        on the sample averages), ≫ 1 when the fit is made of neighbouring
        sources with large, opposing fields — a solution whose amplitudes
        (and often positions) are not to be trusted.  Unpenalised large
        amplitudes make this the failure mode of MCP and SCAD on real data
        (40-55 at their SURE λ on the sample 'Right visual' average).

        Parameters
        ----------
        coef : array, shape (n_rows, n_times)
            Full solution (or the active rows, with ``active_set``).
        active_set : array of bool, shape (n_rows,) | None

        Returns
        -------
        ratio : float
            nan when the solution is empty or its fit is zero.
        """
        rows, coef = self._active_rows(coef, active_set)
        o = self.n_orient
        if rows.size == 0:
            return float("nan")
        # Only the active sources' rows: never a source space x time array.
        total = np.zeros((self.gain.shape[0], coef.shape[1]))
        energy = 0.0
        for k in np.unique(rows // o):
            here = np.flatnonzero(rows // o == k)
            field = self.gain[:, rows[here]] @ coef[here]
            total += field
            energy += float(np.sum(field ** 2))
        fit_energy = float(np.sum(total ** 2))
        return energy / fit_energy if fit_energy > 0 else float("nan")

    def _active_rows(self, coef, active_set=None):
        """Indices (in :attr:`gain` columns) and values of the non-zero rows of a solution.

        ``coef`` is either a full solution (``active_set`` None) or only the
        rows of ``active_set``; the result never holds the zero rows.
        """
        coef = np.asarray(coef)
        if active_set is None:
            rows = np.flatnonzero(np.any(coef != 0, axis=1))
            return rows, coef[rows]
        active_set = np.asarray(active_set)
        rows = np.flatnonzero(active_set) if active_set.dtype == bool else active_set
        keep = np.any(coef != 0, axis=1)
        return rows[keep], coef[keep]

    def warn_if_cancelling(self, ratio, penalty, stacklevel=3):
        """Warn (RuntimeWarning) when ``ratio`` exceeds :data:`FIELD_CANCELLATION_WARNING`."""
        if not ratio > FIELD_CANCELLATION_WARNING:
            return False
        name = getattr(penalty, "name", penalty)
        fix = ("penalty='l21' or a larger alpha" if name in ("l05", "l21")
               else "penalty='l05' or 'l21', or a larger alpha")
        warnings.warn(
            f"The active sources' fields cancel on the sensors (field cancellation "
            f"{ratio:.0f}: their summed field energy is {ratio:.0f}x that of the fit): the "
            f"fit is made of neighbouring sources with large, opposing amplitudes, which "
            f"are not to be trusted. This is typical of '{name}' at a small lambda on "
            f"real data; use {fix}.",
            RuntimeWarning, stacklevel=stacklevel)
        return True

    def to_physical(self, coef, rows=None):
        """Rows of a (full, unmasked-space) solution in A·m.

        With ``rows`` (indices in the unmasked space), ``coef`` holds only those rows.
        """
        weights = self.source_weighting
        if self.source_mask is not None:
            weights = np.zeros(len(self.source_mask))
            weights[self.source_mask] = self.source_weighting
        if rows is not None:
            weights = weights[rows]
        return coef * weights[:, None]

    def block_sources(self):
        """Forward source index of each block of :attr:`gain` (the kept sources when masked).

        Returns
        -------
        index : ndarray of int, shape (n_gain_columns // n_orient,)
            Increasing.
        """
        n_blocks = self.gain.shape[1] // self.n_orient
        if self.source_mask is None:
            return np.arange(n_blocks)
        return np.flatnonzero(np.asarray(self.source_mask).reshape(-1, self.n_orient).any(1))

    def active_sources(self, coef):
        """Indices of source positions with a non-zero block in a full solution."""
        blocks = np.abs(coef).reshape(-1, self.n_orient * coef.shape[1]).max(axis=1)
        return np.flatnonzero(blocks > 0)

    def check_pick_ori(self, pick_ori):
        """Refuse a ``pick_ori`` this problem cannot give (checked before solving too)."""
        if pick_ori not in (None, "vector"):
            raise InputError(f"pick_ori must be None or 'vector', got {pick_ori!r}.",
                             "use pick_ori=None or 'vector'.")
        if pick_ori == "vector" and self.n_orient == 1:
            raise InputError("pick_ori='vector' (--pick-ori vector) gives the x, y, z "
                             "components of each source, which needs loose or free "
                             "orientation; here each source has one fixed orientation "
                             "(loose=0, or a fixed-orientation forward solution).",
                             "use loose > 0 (--loose 0.2 or 1) with a free-orientation "
                             "forward, or pick_ori=None (drop --pick-ori).")

    def to_stc(self, coef, active_set=None, *, pick_ori=None, times=None):
        """Map a solution of the whitened problem to an MNE source estimate in A·m.

        Parameters
        ----------
        coef : ndarray, shape (n_rows, n_times) or (n_active_rows, n_times)
            A solution; with ``active_set`` only its active rows.
        active_set : ndarray of bool | None
            Rows of ``coef`` within the full solution.
        pick_ori : None | 'vector'
            None gives the amplitude (norm over orientations) as MNE's
            ``mixed_norm``; 'vector' gives xyz components (free / loose only).
        times : ndarray | None
            Times of the columns of ``coef``; default :attr:`times`.

        Returns
        -------
        stc : mne.SourceEstimate | mne.VectorSourceEstimate | mne.VolSourceEstimate | ...
            Only the active sources, with their vertex numbers.
        """
        self.check_pick_ori(pick_ori)
        rows, values = self._active_rows(coef, active_set)
        times = self.times if times is None else times
        n_times = values.shape[1] if values.ndim == 2 else len(times)
        # Rows of the unmasked source space, in A·m; only the active ones.
        full_rows = rows if self.source_mask is None else np.flatnonzero(self.source_mask)[rows]
        physical = values * self.source_weighting[rows][:, None]
        o = self.n_orient
        active = np.unique(full_rows // o)
        blocks = np.zeros((len(active), o, n_times))
        blocks[np.searchsorted(active, full_rows // o), full_rows % o] = physical
        src = self.forward["src"]
        vertices, offset = [], 0
        for s in src:
            n_used = len(s["vertno"])
            here = active[(active >= offset) & (active < offset + n_used)] - offset
            vertices.append(s["vertno"][here])
            offset += n_used
        vector = pick_ori == "vector"
        if self.n_orient == 1:
            data = blocks[:, 0]
        elif vector:
            # Rows are along the forward's source orientations (surface-oriented
            # when loose < 1); rotate them back to x, y, z.
            nn = self.forward["source_nn"].reshape(-1, 3, 3)[active]
            data = np.einsum("kjt,kji->kit", blocks, nn)
        else:
            data = np.linalg.norm(blocks, axis=1)
        kind = src.kind
        subject = src[0].get("subject_his_id")
        tmin, tstep = float(times[0]), 1.0 / self.sfreq
        if kind == "surface":
            cls = mne.VectorSourceEstimate if vector else mne.SourceEstimate
        elif kind == "mixed":
            cls = mne.MixedVectorSourceEstimate if vector else mne.MixedSourceEstimate
        else:
            cls = mne.VolVectorSourceEstimate if vector else mne.VolSourceEstimate
        return cls(data, vertices, tmin, tstep, subject=subject)

    def source_positions(self, indices):
        """Positions (MRI coordinates, m) and hemisphere labels of source indices."""
        src = self.forward["src"]
        positions = np.concatenate([s["rr"][s["vertno"]] for s in src])
        hemi_names = {mne.io.constants.FIFF.FIFFV_MNE_SURF_LEFT_HEMI: "lh",
                      mne.io.constants.FIFF.FIFFV_MNE_SURF_RIGHT_HEMI: "rh"}
        labels = []
        for s in src:
            name = hemi_names.get(s["id"]) if s["type"] == "surf" else None
            labels += [name] * len(s["vertno"])
        rr = positions[indices]
        if src[0]["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD:
            head_mri_t = mne.transforms.invert_transform(self.forward["mri_head_t"])
            rr = mne.transforms.apply_trans(head_mri_t, rr)
        hemis = [labels[i] if labels[i] is not None else ("lh" if rr[j, 0] < 0 else "rh")
                 for j, i in enumerate(indices)]
        return rr, hemis


def group_norms(matrix, n_orient):
    """Frobenius norm of each block of ``n_orient`` consecutive rows."""
    n_rows, n_cols = matrix.shape
    blocks = matrix.reshape(n_rows // n_orient, n_orient * n_cols)
    return np.sqrt(np.einsum("ij,ij->i", blocks, blocks))  # no squared copy


def _source_weights(forward, weights):
    """One prior weight per source of ``forward`` from an array or a source estimate."""
    if hasattr(weights, "vertices") and hasattr(weights, "data"):
        src_vertices = [s["vertno"] for s in forward["src"]]
        if len(weights.vertices) != len(src_vertices) or any(
                len(a) != len(b) or not np.array_equal(a, b)
                for a, b in zip(weights.vertices, src_vertices)):
            raise InputError(
                "The source estimate given as weights does not cover the forward solution's "
                f"sources ({sum(map(len, weights.vertices))} vertices given, "
                f"{sum(map(len, src_vertices))} in the forward).",
                "compute it with an inverse operator made from the same forward solution "
                "(e.g. dSPM with mne.minimum_norm.make_inverse_operator).")
        data = np.abs(np.asarray(weights.data))
        if data.ndim == 3:  # vector estimate: the amplitude of each source
            data = np.linalg.norm(data, axis=1)
        return np.max(data, axis=1)
    try:
        return np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"weights must be an array or a source estimate, got "
                         f"{type(weights).__name__}.", "give one weight per source.") from None


def _apply_prior_weights(forward, gain, source_weighting, weights, weights_min, n_orient):
    """Apply MNE-style per-source prior weights; drop sources with weight ≤ ``weights_min``.

    As in :func:`mne.inverse_sparse.mixed_norm`: the gain columns are scaled by
    the weights divided by their maximum, and ``weights_min`` is in the units
    of ``weights`` (a dSPM value when the weights are a dSPM estimate).
    """
    weights = _source_weights(forward, weights)
    n_sources = gain.shape[1] // n_orient
    if weights.ndim != 1 or len(weights) != n_sources:
        raise InputError(f"weights must have one value per source ({n_sources}), got shape "
                         f"{weights.shape}.", "give one weight per source position.")
    check_finite(weights, "The source weights")
    weights_max = float(weights.max())
    if weights_max <= 0:
        raise InputError("All source weights are zero or negative.", "give positive weights.")
    weights_min = 0.0 if weights_min is None else float(weights_min)
    if weights_min > weights_max:
        raise InputError(
            f"weights_min={weights_min:g} is above the largest weight ({weights_max:g}): no "
            "source would be left.",
            f"give weights_min in the units of the weights, below {weights_max:g}.")
    row_weights = np.repeat(weights / weights_max, n_orient)
    gain = gain * row_weights[None, :]
    source_weighting = source_weighting * row_weights
    mask = np.repeat(weights > weights_min, n_orient)
    if not mask.any():
        raise InputError(f"No source has a weight above weights_min={weights_min:g}.",
                         "lower weights_min.")
    return gain[:, mask], source_weighting[mask], mask


def debias_amplitudes(gain_active, data, coef_active, n_orient):
    """Rescale each active source by d_k ≥ 1 to undo the penalty's shrinkage.

    Parameters
    ----------
    gain_active : ndarray, shape (n_channels, n_active_rows)
        Whitened gain columns of the active sources.
    data : ndarray, shape (n_channels, n_times)
        Whitened data the solution was fitted to.
    coef_active : ndarray, shape (n_active_rows, n_times)
        Rows of the solution for the active sources.
    n_orient : int
        Rows per source.

    Returns
    -------
    coef_active : ndarray
        The rescaled rows.

    Solves ``min_D ½‖Y − G diag(D) X‖²_F  s.t. D ≥ 1`` with one scale per source,
    the problem MNE's ``compute_bias`` solves by FISTA, here exactly, in its
    own dimension: with ``F_k = G_k X_k`` the objective is
    ``½ dᵀ A d − bᵀ d + const``, ``A_kl = <F_k, F_l>``, ``b_k = <F_k, Y>``,
    and ``A`` and ``b`` come from the ``n_active_rows²`` Gram matrices
    ``(G_aᵀ G_a) ∘ (X Xᵀ)`` summed by blocks (no ``F_k`` of size
    ``n_channels × n_times`` is formed).  The bounded least squares then runs
    on a square root of ``A`` (``n_active × n_active``): milliseconds, where
    the same BVLS on the stacked ``F_k`` (``n_channels·n_times × n_active``)
    took seconds.
    """
    from scipy.optimize import lsq_linear

    from ._blas import one_blas_thread

    n_rows, n_times = coef_active.shape
    n_active = n_rows // n_orient
    if n_active == 0:
        return coef_active.copy()
    with one_blas_thread():  # small matrices: threads only cost (see _blas)
        return _debias_gram(gain_active, data, coef_active, n_orient, n_active, n_times,
                            lsq_linear)


def _debias_gram(gain_active, data, coef_active, n_orient, n_active, n_times, lsq_linear):
    gram_rows = (gain_active.T @ gain_active) * (coef_active @ coef_active.T)
    A = gram_rows.reshape(n_active, n_orient, n_active, n_orient).sum(axis=(1, 3))
    b = (coef_active * (gain_active.T @ data)).reshape(n_active, n_orient * n_times).sum(axis=1)
    # A = V S Vᵀ; ‖S^½ Vᵀ d − S^-½ Vᵀ b‖² = dᵀ A d − 2 bᵀ d + const for b in range(A)
    # (it is: b = Fᵀ y and A = Fᵀ F).
    evals, evecs = np.linalg.eigh(A)
    keep = evals > evals[-1] * n_active * np.finfo(float).eps
    root = np.sqrt(evals[keep])
    matrix = root[:, None] * evecs[:, keep].T
    rhs = (evecs[:, keep].T @ b) / root
    scale = lsq_linear(matrix, rhs, bounds=(1.0, np.inf), method="bvls",
                       tol=1e-14).x
    return coef_active * np.repeat(scale, n_orient)[:, None]
