"""One solve of a prepared problem: at a given λ, or by the automatic rule.

:func:`solve_inverse` is the single place where the API
(:func:`meeg_inverse.sparse_inverse`, :class:`meeg_inverse.SparseInverse`,
:meth:`meeg_inverse.operator.SparseInverseOperator.apply`) and the pipeline
(``meeg-inverse localize``) solve: optional time PCA, the λ rule
(:func:`meeg_inverse.sure.select_alpha`) or the given λ, the solver with its
budget, and the debiasing.
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._blas import load_aware
# In _choices so that the light command-line launcher reads them without numpy.
from ._choices import DEFAULT_RULE_PENALTY, resolve_penalty  # noqa: F401
# ALPHA_FRACTION_FLOOR: below it a solve is refused (the launcher checks a given --alpha).
from ._choices import ALPHA_FRACTION_FLOOR
from .errors import InputError

#: The automatic λ rules ``alpha`` may name: 'auto' is the default rule
#: (:data:`DEFAULT_RULE`), 'bic' and 'qut' those of :mod:`meeg_inverse.rules`,
#: 'sure' MNE's criterion by SURE hypergradients (:mod:`meeg_inverse.sure`).
AUTOMATIC_ALPHA = ("auto", "bic", "qut", "sure")
#: What ``alpha='auto'`` means: chosen by the study of docs/studies/ (rules
#: written before it was run) among SURE, refit Cp/BIC/discrepancy and QUT.
DEFAULT_RULE = "bic"


#: Below this fraction of λ_max a warning tells the cost (supports of
#: hundreds of sources; minutes instead of seconds, bounded by ``max_time``).
ALPHA_FRACTION_WARN = 1e-2
#: Longest data (time samples) for which the per-source confidence is computed:
#: its noise draws and resamples cost O(samples) each (windows of continuous
#: recordings are shorter).
MAX_CONFIDENCE_SAMPLES = 2000
#: Default time budget (s) of one solve, or of the whole λ search.
DEFAULT_MAX_TIME = 300.0


@dataclass
class InverseSolution:
    """What :func:`solve_inverse` returns.

    Attributes
    ----------
    coef_active : ndarray, shape (n_active_rows, n_times)
        The active rows of the solution (in the problem's time samples, after
        undoing the time PCA; debiased when asked).
    active_set : ndarray of bool, shape (n_rows,)
    alpha : float
        λ (absolute, whitened units).
    alpha_fraction : float
        ``alpha / alpha_max``.
    solver_info : dict
        objective, dual_gap, kkt_violation, n_iter, converged, tol,
        stop_criterion (reached, relative to ``||Y||²``), time_s, max_time_s.
    selection : AlphaSelection | None
        The λ search record when λ was chosen automatically.
    timings : dict
        Seconds spent in each step ('select', 'solve', 'debias', 'candidates',
        'subgrid', 'confidence').
    confidence : dict | None
        ``{source_index: selection frequency}`` of every active source: that of
        its cluster (:func:`meeg_inverse.clusters.cluster_confidence`), when asked.
    clusters : list of SourceCluster
        The reported sources (:func:`meeg_inverse.clusters.cluster_sources`),
        strongest first, with their confidence when asked.
    minor_clusters : list of SourceCluster
        Clusters dropped from the estimate by the support rules (weaker than
        :data:`meeg_inverse.clusters.MINOR_FRACTION` × the strongest).
    confidence_scheme : str | None
        The confidence's channel subsamples ('half', 'quarter', 'placeable';
        :func:`meeg_inverse.clusters.subsample_rows`).
    position_model : str | None
        How the reported positions were fitted: the head model's description
        (dipole fits with the BEM), 'fields interpolated between the grid's
        vertices', or None (no fit: centroids).
    """

    coef_active: np.ndarray
    active_set: np.ndarray
    alpha: float
    alpha_fraction: float
    solver_info: dict
    selection: object = None
    timings: dict = field(default_factory=dict)
    confidence: dict | None = None
    clusters: list = field(default_factory=list)
    minor_clusters: list = field(default_factory=list)
    position_model: str | None = None
    confidence_scheme: str | None = None

    def full_coef(self):
        """The solution with all rows, shape (n_rows, n_times)."""
        coef = np.zeros((self.active_set.size, self.coef_active.shape[1]))
        coef[self.active_set] = self.coef_active
        return coef


def check_alpha_fraction(fraction, max_time):
    """Refuse λ below :data:`ALPHA_FRACTION_FLOOR` · λ_max, warn below 1 %."""
    if fraction < ALPHA_FRACTION_FLOOR:
        raise InputError(
            f"alpha = {fraction:.3g} x lambda_max is below the floor of "
            f"{ALPHA_FRACTION_FLOOR:g} x lambda_max: the estimate would be an almost "
            "unregularized fit with hundreds of active sources, and its solve unbounded.",
            "use alpha between 0.01 and 0.9 x lambda_max (e.g. 0.3; MNE's percentages "
            "divide by 100), or the automatic choice (alpha='auto').")
    if fraction < ALPHA_FRACTION_WARN:
        budget = "no time budget" if max_time is None else f"a time budget of {max_time:.0f} s"
        warnings.warn(
            f"alpha = {fraction:.3g} x lambda_max is small: expect hundreds of active "
            f"sources and a solve of minutes instead of seconds ({budget}; past it the "
            "result is returned with converged = false).", RuntimeWarning, stacklevel=3)


@load_aware
def solve_inverse(problem, *, alpha, penalty=None, penalty_params=None, tol=1e-6,
                  max_iter=None, p0=None, time_pca=False, debias=True, random_state=0,
                  sure_curve=False, max_time=DEFAULT_MAX_TIME, callback=None,
                  solver_callback=None, verbose=False, confidence=0, epochs=None,
                  head_model="auto", confidence_scheme="auto", **select_kw):
    """Solve a whitened problem at ``alpha`` or with the automatic λ rule.

    Parameters
    ----------
    problem : InverseProblem
        The whitened problem (gain, data, n_orient, noise_std, alpha_max).
    alpha : 'auto' | 'bic' | 'qut' | 'sure' | float
        'auto' (:data:`DEFAULT_RULE`), 'bic' or 'qut': chosen for the support
        by :mod:`meeg_inverse.rules`; 'sure': by
        :func:`meeg_inverse.sure.select_alpha`; a number is a fraction of λ_max
        in [:data:`ALPHA_FRACTION_FLOOR`, 1).
    penalty : str
        Penalty name (:data:`meeg_inverse.penalties.PENALTIES`) or 'irmxne'.
    penalty_params : dict | None
        gamma, eps, weights, n_iter.
    tol : float
        Relative tolerance of the solver (the λ search uses ``min(tol, 1e-8)``:
        its finite differences need accurate solves).
    max_iter, p0 : int | None
        Outer iterations and initial working-set size of the solver at a given
        λ (None: its defaults; the λ search keeps its own).
    time_pca : bool | int
        Solve on the data's time SVD components (True: its rank; int: that
        many), then map back.
    debias : bool
        Rescale the active sources (:func:`~meeg_inverse.problem.debias_amplitudes`).
    random_state : int | None
        Seed of the λ rule's Monte-Carlo direction.
    sure_curve : bool
        Also compute the λ rule's grid curve.
    max_time : float | None
        Time budget (s) of the solve (each solve of the λ search gets it
        too); past it the result has ``converged = False``.
    callback : callable | None
        Progress of the λ search, ``callback(n_evaluations, alpha_fraction, value)``.
    solver_callback : callable | None
        Progress of a solve at a given λ, ``callback(it, criterion, tol_abs,
        n_support, elapsed_s)``.
    confidence : int
        Number of resamples for each source's confidence (0: none).
    epochs : ndarray, shape (n_epochs, n_channels, n_times) | None
        The whitened single trials of the average (same channels and times as
        ``problem.data``): the confidence then resamples trials instead of
        redrawing noise.
    head_model : 'auto' | meeg_inverse.dipole_positions.HeadModel | None
        The fields of the reported positions' scans
        (:func:`meeg_inverse.subgrid.refine_positions`): 'auto' the BEM the
        forward names (:func:`meeg_inverse.dipole_positions.head_model_of`),
        None the grid's interpolated fields.
    confidence_scheme : {'auto', 'half', 'quarter', 'placeable'}
        The confidence's channel subsamples
        (:func:`meeg_inverse.clusters.subsample_rows`); 'auto': a quarter of the
        channels left out below
        :data:`~meeg_inverse.clusters.QUARTER_BELOW_CHANNELS` channels, half
        otherwise (:func:`meeg_inverse.clusters.default_confidence_scheme`).
    **select_kw
        Passed to :func:`~meeg_inverse.sure.select_alpha` (e.g. ``method``).

    Returns
    -------
    solution : InverseSolution

    Raises
    ------
    InputError
        Unknown penalty or λ rule, λ outside [floor, λ_max), bad time_pca.
    """
    from .penalties import make_penalty
    from .solvers import solve_from_convex
    from .solvers import time_pca as reduce_time

    params = dict(penalty_params or {})
    penalty = resolve_penalty(penalty, alpha)
    timings = {}
    data = problem.data
    basis = None
    if time_pca:
        n_components = None if time_pca is True else int(time_pca)
        try:
            data, basis = reduce_time(data, n_components)
        except ValueError as exc:
            raise InputError(f"time_pca: {exc}", "use time_pca=True or a smaller integer.") from None

    solve_kw = {}
    if max_iter is not None:
        solve_kw["max_iter"] = int(max_iter)
    if p0 is not None:
        solve_kw["p0"] = int(p0)
    if max_time is not None:
        solve_kw["max_time"] = float(max_time)

    selection = None
    t0 = time.perf_counter()
    rule = DEFAULT_RULE if alpha == "auto" else alpha
    if rule in ("bic", "qut"):
        from . import rules

        # The support rules compare residuals with the noise level of the samples.
        # Recordings longer than their number of channels are solved on their
        # whole-rank time SVD (no component dropped: the same solutions and refit
        # residuals, without sources × time arrays of the full length); the
        # criteria still count the original samples.
        n_times = problem.data.shape[1]
        data, basis = problem.data, None
        if n_times > problem.n_channels:
            data, basis = reduce_time(problem.data, None)
        select = rules.select_bic if rule == "bic" else rules.select_qut
        budget = {} if max_time is None else {"max_time": float(max_time)}
        try:
            selection = select(problem.gain, data, problem.noise_estimate, penalty=penalty,
                               n_orient=problem.n_orient, tol=min(tol, 1e-8),
                               callback=callback, n_times=n_times, solver_kw=budget,
                               **params)
        except ValueError as exc:
            raise InputError(f"Bad penalty: {exc}", "see the documentation of `penalty`.") from None
        result = selection.solver_result
        alpha_abs = float(selection.alpha)
        timings["select"] = time.perf_counter() - t0
    elif isinstance(alpha, str):
        if alpha not in AUTOMATIC_ALPHA:
            raise InputError(f"alpha must be one of {AUTOMATIC_ALPHA} or a fraction of "
                             f"lambda_max, got {alpha!r}.",
                             "use alpha='auto' or a number such as 0.3.")
        from .sure import select_alpha

        if max_time is not None:  # the search's own solver settings, with the budget
            select_kw = {**select_kw, "solver_kw": {**select_kw.get("solver_kw", {}),
                                                    "max_time": float(max_time)}}
        try:
            # The one call of the automatic rule.
            selection = select_alpha(problem.gain, data, penalty=penalty,
                                     n_orient=problem.n_orient, tol=min(tol, 1e-8),
                                     random_state=0 if random_state is None else random_state,
                                     sigma=problem.noise_std, return_curve=sure_curve,
                                     callback=callback, **select_kw, **params)
        except ValueError as exc:
            raise InputError(f"Bad penalty or lambda rule: {exc}",
                             "see the documentation of `penalty` and `alpha`.") from None
        result = selection.solver_result
        alpha_abs = float(selection.alpha)
        timings["select"] = time.perf_counter() - t0
    else:
        try:
            fraction = float(alpha)
        except (TypeError, ValueError):
            raise InputError(f"alpha must be 'sure' or a number in (0, 1), got {alpha!r}.",
                             "give alpha as a fraction of lambda_max, e.g. 0.3.") from None
        alpha_abs = problem.alpha_from_fraction(fraction)
        check_alpha_fraction(fraction, max_time)
        try:
            pen = make_penalty(penalty, alpha_abs, **params)
        except ValueError as exc:
            raise InputError(f"Bad penalty: {exc}", "see the documentation of `penalty`.") from None
        # What the operator and λ_max computed already: the blocks' eigendecompositions
        # and, without time PCA, the first outer iteration's product YᵀG.
        operator = problem.operator
        if (problem.n_orient > 1 and operator is not None
                and getattr(operator, "gain", None) is problem.gain):
            solve_kw["block_eigh"] = operator.block_eigh()
        corr = problem.data_correlation
        if basis is None and corr is not None and corr.shape == (data.shape[1],
                                                                  problem.gain.shape[1]):
            solve_kw["data_correlation"] = corr
        result = solve_from_convex(problem.gain, data, pen, n_orient=problem.n_orient, tol=tol,
                                   verbose=verbose, callback=solver_callback, **solve_kw)
        timings["solve"] = time.perf_counter() - t0

    active_set = np.asarray(result.active_set, bool)
    coef_active = np.asarray(result.coef)[active_set]
    if debias and active_set.any():
        t1 = time.perf_counter()
        from .problem import debias_amplitudes

        coef_active = debias_amplitudes(problem.gain[:, active_set], data, coef_active,
                                        problem.n_orient)
        timings["debias"] = time.perf_counter() - t1
    # Reported sources: clusters of grid sources (meeg_inverse.clusters). The
    # support rules answer "which few sources", so their minor clusters (within
    # the forward-model error of the strongest) leave the estimate.
    from .clusters import minor_clusters

    automatic = rule in ("bic", "qut")
    coef_full = np.asarray(result.coef)
    clusters = _clusters(problem, active_set, coef_active)
    kept, minor = minor_clusters(clusters)
    if minor and automatic:
        active_set, coef_active = _without(problem, coef_full, data, active_set, minor, debias)
        clusters = _clusters(problem, active_set, coef_active)  # refitted amplitudes
    else:
        minor = []
    position_model = None
    if clusters:
        # Reported positions between grid vertices (meeg_inverse.subgrid).
        from .subgrid import inversion_mesh, max_sources, refine_positions

        t3 = time.perf_counter()
        candidates, price = [], 0.0
        has_mesh = inversion_mesh(problem) is not None
        most = max_sources(data.shape[0], problem.n_orient)  # that the channels can place
        if automatic and len(clusters) < most and has_mesh:
            # A candidate stays only if it pays its BIC price, as the path's sources did.
            price = _bic_price(problem, data, active_set, coef_active)
            # γ-MAP's sources join the candidates; the reporting keeps what the
            # data support (meeg_inverse.candidates, amendment 6).
            from .candidates import sbl_candidates

            candidates, sbl_coef = sbl_candidates(
                problem, data, {int(m) for c in clusters for m in c.members},
                n_times=problem.data.shape[1])
            candidates = candidates[:most - len(clusters)]
            if candidates:
                rows = _rows_of_sources(problem, np.concatenate([c.members for c in candidates]))
                coef_full = coef_full.copy()
                coef_full[rows] = sbl_coef[rows]
                active_set = active_set.copy()
                active_set[rows] = True
            timings["candidates"] = time.perf_counter() - t3
            t3 = time.perf_counter()  # 'subgrid' is the scans alone
        before = clusters + candidates
        clusters = list(before)
        # The automatic rules' reporting also drops sources within the others'
        # model error (subgrid.PRUNE_FRACTION); an alpha the user gave keeps them.
        floors = [0.0] * (len(before) - len(candidates)) + [price] * len(candidates)
        if isinstance(head_model, str):  # 'auto': the forward's own BEM, when it names one
            from .dipole_positions import head_model_of

            head_model = head_model_of(problem) if has_mesh else None
        stability = refine_positions(problem, data, clusters, prune=automatic, floors=floors,
                                     head_model=head_model)
        if stability is not None:
            timings["subgrid"] = time.perf_counter() - t3
            position_model = ("fields interpolated between the grid's vertices"
                              if head_model is None else
                              f"dipole fits with {head_model.description}")
        kept_members = {int(m) for c in clusters for m in c.members}
        gone = [i for i, c in enumerate(before)
                if not kept_members.intersection(c.members.tolist())]
        if gone or candidates:  # out of the estimate too, the rest refitted
            active_set, coef_active = _without(problem, coef_full, data, active_set,
                                               [before[i] for i in gone], debias)
            _refit_amplitudes(problem, active_set, coef_active, clusters)
            # γ-MAP's candidates (after the path's in `before`) left out were never
            # reported: only the path's count as minor.
            n_path = len(before) - len(candidates)
            minor = list(minor) + [before[i] for i in gone if i < n_path]
    else:
        stability = None
    conf = None
    if confidence_scheme == "auto":
        from .clusters import default_confidence_scheme

        confidence_scheme = default_confidence_scheme(len(problem.ch_names))
    if confidence and clusters and problem.data.shape[1] <= MAX_CONFIDENCE_SAMPLES:
        t2 = time.perf_counter()
        conf = _cluster_confidence(problem, data, clusters, penalty,
                                   alpha_abs / problem.alpha_max, int(confidence), epochs,
                                   random_state, params,
                                   stability, max_time, scheme=confidence_scheme)
        timings["confidence"] = time.perf_counter() - t2
    if basis is not None:
        coef_active = coef_active @ basis
        for cluster in clusters:  # fitted on the time-SVD components too
            if cluster.moment is not None:
                cluster.moment = cluster.moment @ basis
    crit = getattr(result, "stop_criterion", np.nan)
    norm_y2 = float(np.vdot(data, data))
    solver_info = {
        "objective": float(result.objective),
        "dual_gap": None if result.dual_gap is None else float(result.dual_gap),
        "kkt_violation": None if result.kkt_violation is None else float(result.kkt_violation),
        "n_iter": int(result.n_iter),
        "converged": bool(result.converged),
        "tol": tol,
        "stop_criterion": None if not np.isfinite(crit) else float(crit) / norm_y2,
        "time_s": float(getattr(result, "time", np.nan)),
        "max_time_s": max_time,
    }
    if not result.converged and max_time is not None and solver_info["time_s"] >= max_time:
        warnings.warn(
            f"The solver ran out of its time budget ({max_time:g} s) before convergence "
            f"(criterion reached: {solver_info['stop_criterion']} x ||Y||², tolerance "
            f"{tol:g}; {result.n_iter} outer iterations): the estimate is approximate "
            "(converged = false). Raise max_time, or use a larger alpha.",
            RuntimeWarning, stacklevel=2)
    return InverseSolution(coef_active=coef_active, active_set=active_set, alpha=alpha_abs,
                           alpha_fraction=alpha_abs / problem.alpha_max,
                           solver_info=solver_info, selection=selection, timings=timings,
                           confidence=conf, clusters=clusters, minor_clusters=minor,
                           position_model=position_model,
                           confidence_scheme=confidence_scheme)


def _bic_price(problem, data, active_set, coef_active):
    """Energy (whitened) a source must explain for the BIC to take it.

    ``log(n·T) · n_orient · T · σ̂²`` (:func:`meeg_inverse.rules.bic_price`, the
    price per source of :func:`meeg_inverse.rules.select_bic`), σ̂² the variance
    the estimate (``coef_active``, the rows of ``active_set``) leaves in the
    data, never below the noise level of the support rules.
    """
    from .rules import bic_price

    n_channels, n_times = problem.data.shape
    resid = data - problem.gain[:, active_set] @ coef_active if active_set.any() else data
    variance = max(float(problem.noise_estimate.variance),
                   float(np.sum(resid ** 2)) / (n_channels * n_times))
    return bic_price(n_channels, n_times, problem.n_orient) * variance


def _rows_of_sources(problem, sources):
    """Gain columns (rows of the solution) of forward source indices."""
    blocks = np.searchsorted(problem.block_sources(), np.asarray(sources, int))
    n_orient = problem.n_orient
    return (blocks[:, None] * n_orient + np.arange(n_orient)[None]).ravel()


def _clusters(problem, active_set, coef_active):
    """Clusters of the active sources, strongest first (:mod:`meeg_inverse.clusters`)."""
    from .clusters import cluster_sources

    if not active_set.any():
        return []
    sources, amplitudes = _source_amplitudes(problem, active_set, coef_active)
    positions, hemis = problem.source_positions(sources)
    return cluster_sources(sources, positions, amplitudes, hemis)


def _source_amplitudes(problem, active_set, coef_active):
    """Forward source indices of the active sources and their amplitudes (norm over
    time and orientations, the source weighting undone)."""
    n_orient = problem.n_orient
    blocks = np.flatnonzero(active_set.reshape(-1, n_orient).any(axis=1))
    weights = np.asarray(problem.source_weighting).reshape(-1, n_orient)[:, 0]
    norms = np.linalg.norm(coef_active.reshape(blocks.size, -1), axis=1)
    return problem.block_sources()[blocks], norms * weights[blocks]


def _without(problem, coef_full, data, active_set, dropped, debias):
    """The estimate without the dropped clusters' rows: (active_set, coef_active), the
    rest (rows of ``coef_full``, all rows) rescaled to the data when ``debias``."""
    drop = np.zeros(active_set.size, bool)
    for c in dropped:
        drop[_rows_of_sources(problem, c.members)] = True
    active_set = active_set & ~drop
    coef_active = np.asarray(coef_full)[active_set]
    if debias:
        from .problem import debias_amplitudes

        coef_active = debias_amplitudes(problem.gain[:, active_set], data, coef_active,
                                        problem.n_orient)
    return active_set, coef_active


def _refit_amplitudes(problem, active_set, coef_active, clusters):
    """Each cluster's amplitude from a refitted estimate (as :func:`_clusters` defines it)."""
    sources, amplitudes = _source_amplitudes(problem, active_set, coef_active)
    amplitude = dict(zip(sources.tolist(), amplitudes))
    for cluster in clusters:
        cluster.amplitude = float(np.sqrt(sum(amplitude[int(m)] ** 2 for m in cluster.members)))


def _cluster_confidence(problem, data, clusters, penalty, alpha_fraction, n_resamples, epochs,
                        random_state, params, stability=None, max_time=None, scheme="half"):
    """Each cluster's stability-selection frequency, and {source index: it} of its members."""
    from .clusters import cluster_confidence

    positions, hemis = problem.source_positions(problem.block_sources())
    weights = np.asarray(problem.source_weighting).reshape(-1, problem.n_orient)[:, 0]
    penalty_params = {k: v for k, v in params.items() if k in ("gamma", "eps")}
    freq = cluster_confidence(
        problem.gain, data, clusters, penalty=penalty if penalty != "irmxne" else "l21",
        alpha_fraction=alpha_fraction, n_orient=problem.n_orient, positions=positions,
        hemis=hemis, amplitude_scale=weights, noise=problem.noise_estimate, epochs=epochs,
        n_resamples=n_resamples, stability=stability, max_time=max_time, scheme=scheme,
        random_state=0 if random_state is None else random_state, **penalty_params)
    conf = {}
    for c, f in zip(clusters, freq):
        c.confidence = float(f)
        conf.update({int(m): float(f) for m in c.members})
    return conf
