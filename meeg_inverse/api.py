"""The Python API: MNE objects in, MNE objects out.

:func:`sparse_inverse` is a drop-in for :func:`mne.inverse_sparse.mixed_norm`:
the arguments they share have the same names and meanings (``alpha`` is a
percentage of lambda_max, ``loose``, ``depth``, ``weights``, ``weights_min``,
``time_pca``, ``debias``, ``n_mxne_iter``, ``pick_ori``, ``return_residual``,
``return_as_dipoles``, ``rank``, ``rng``/``random_state``, lists of evokeds), and
it returns the same types. It adds non-convex penalties, automatic lambda by
SURE hypergradients, and an optional result object with lambda, SURE and
convergence figures. :class:`SparseInverse` wraps it as a scikit-learn style
estimator.
"""

import warnings
from dataclasses import dataclass, field

import mne
import numpy as np

from .errors import InputError
from .problem import InverseProblem, _check_model_types, _warn_if_not_baseline_corrected
from .confidence import DEFAULT_REDRAWS
from .solve import DEFAULT_MAX_TIME, resolve_penalty


@dataclass
class SparseInverseResult:
    """Everything about one sparse inverse fit.

    Attributes
    ----------
    estimates : list
        One source estimate (or list of dipoles) per evoked.
    alpha : float
        The lambda used, absolute (whitened units).
    alpha_percent : float
        The same as a percentage of lambda_max (MNE's convention).
    alpha_max : float
    penalty : str
    sure : float | None
        SURE value at the chosen lambda, when lambda was chosen by SURE.
    selection : object | None
        The lambda selection record (path of the outer loop, curve).
    solver_info : dict
        Objective, duality gap, KKT violation, iterations, convergence.
    active_set : ndarray of bool
        Active rows of the whitened problem.
    explained_variance : float
    field_cancellation : float
        How much the active sources' whitened fields cancel on the sensors
        (:meth:`InverseProblem.field_cancellation`; ≈ 1 when they add up, ≫ 1
        for opposing neighbours with implausible amplitudes; nan if empty).
    residuals : list of mne.Evoked | None
    problem : InverseProblem
    timings : dict
        Seconds spent selecting λ, solving and debiasing.
    confidence : dict | None
        ``{source_index: confidence}`` of every active source (that of its
        cluster), with the support rules.
    sources : list of meeg_inverse.clusters.SourceCluster
        The reported sources: clusters of neighbouring active grid sources,
        strongest first, with their energy-weighted centroid (MRI coordinates,
        m), amplitude (A·m) and confidence (:mod:`meeg_inverse.clusters`).
    minor_sources : list of meeg_inverse.clusters.SourceCluster
        Clusters the support rules dropped (weaker than
        :data:`~meeg_inverse.clusters.MINOR_FRACTION` × the strongest).
    noise : NoiseEstimate
    warnings : list of dict
    """

    estimates: list
    alpha: float
    alpha_percent: float
    alpha_max: float
    penalty: str
    sure: float | None
    selection: object
    solver_info: dict
    active_set: np.ndarray
    explained_variance: float
    field_cancellation: float = float("nan")
    residuals: list | None = None
    problem: InverseProblem | None = field(default=None, repr=False)
    timings: dict = field(default_factory=dict)
    confidence: dict | None = None
    noise: object = None
    warnings: list = field(default_factory=list)
    sources: list = field(default_factory=list)
    minor_sources: list = field(default_factory=list)

    @property
    def n_active_sources(self):
        return int(self.active_set.sum()) // self.problem.n_orient


def _as_evoked_list(evoked):
    """The evokeds as a list, and whether to return lists (as MNE: for 2 or more)."""
    if isinstance(evoked, mne.Evoked):
        return [evoked], False
    if isinstance(evoked, (list, tuple)) and evoked and all(isinstance(e, mne.Evoked) for e in evoked):
        names = evoked[0].ch_names
        if any(e.ch_names != names for e in evoked[1:]):
            raise InputError("All the evoked responses must have the same channels.",
                             "pick the same channels in each (evoked.pick(ch_names)).")
        # mixed_norm returns a single estimate for a list of one evoked.
        return list(evoked), len(evoked) > 1
    if isinstance(evoked, mne.io.BaseRaw):
        raise InputError("sparse_inverse localizes evoked responses, and got a raw recording.",
                         "localize a time window of it with meeg_inverse.localize_raw(raw, "
                         "forward, noise_cov, start, stop), or cut epochs and average them.")
    if isinstance(evoked, mne.BaseEpochs):
        raise InputError("sparse_inverse localizes evoked responses, and got epochs.",
                         "use meeg_inverse.localize_epochs(epochs, forward, noise_cov), or "
                         "pass epochs.average().")
    raise InputError(f"evoked must be an mne.Evoked or a list of them, got {type(evoked).__name__}.",
                     "average epochs first (epochs.average()).")


def _check_mne_options(solver, dgap_freq, sure_alpha_grid, alpha, active_set_size, time_pca):
    """Validate the arguments MNE's mixed_norm validates, with the same accepted forms."""
    if solver not in ("auto", "cd", "bcd"):
        raise InputError(f"solver must be 'auto', 'cd' or 'bcd', got {solver!r}.",
                         "use solver='auto' (every solver gives the same solution here).")
    try:
        positive = float(dgap_freq) > 0
    except (TypeError, ValueError):
        positive = False
    if not positive:
        raise InputError(f"dgap_freq must be a positive integer or np.inf, got {dgap_freq!r}.",
                         "use the default, dgap_freq=10.")
    if isinstance(sure_alpha_grid, str):
        if sure_alpha_grid != "auto":
            raise InputError(f"sure_alpha_grid must be 'auto' or an array, got "
                             f"{sure_alpha_grid!r}.", "use 'auto' or e.g. np.geomspace(100, 10, 15).")
        grid = None
    else:
        try:
            grid = np.asarray(sure_alpha_grid, dtype=float).ravel()
        except (TypeError, ValueError):
            grid = np.array([np.nan])
        if alpha != "sure":
            grid = None  # as MNE's docstring says: ignored unless alpha is 'sure'
        elif grid.size == 0 or not np.all((grid > 0) & (grid < 100)):
            raise InputError(f"sure_alpha_grid must hold percentages of alpha_max in (0, 100), "
                             f"got {sure_alpha_grid!r}.", "use e.g. np.geomspace(100, 10, 15).")
    if active_set_size is not None and (isinstance(active_set_size, bool)
                                        or not isinstance(active_set_size, (int, np.integer))
                                        or active_set_size < 1):
        raise InputError(f"active_set_size must be a positive integer or None, got "
                         f"{active_set_size!r}.", "use the default, 10.")
    if not isinstance(time_pca, (bool, int, np.integer)) or time_pca < 0:
        raise InputError(f"time_pca must be True, False or a positive integer, got {time_pca!r}.",
                         "use time_pca=True.")
    return grid


def _concatenate(evokeds):
    """One evoked holding the evokeds side by side in time (as MNE's mixed_norm)."""
    if len(evokeds) == 1:
        return evokeds[0]
    data = np.concatenate([e.data for e in evokeds], axis=1)
    # The noisiest evoked (fewest trials) sets the noise level SURE assumes.
    return mne.EvokedArray(data, evokeds[0].info, tmin=evokeds[0].times[0],
                           nave=min(e.nave for e in evokeds), comment=evokeds[0].comment,
                           verbose=False)


def _resolve_alpha(alpha, alpha_fraction):
    if alpha_fraction is not None:
        return "fraction", alpha_fraction
    if isinstance(alpha, (bool, np.bool_)):  # float(True) would be 1 %
        raise InputError(f"alpha must be 'auto' or a number in (0, 100), got {alpha!r}.",
                         "use alpha='auto' or a percentage of lambda_max, e.g. 30.")
    if isinstance(alpha, str):
        from .solve import AUTOMATIC_ALPHA

        if alpha not in AUTOMATIC_ALPHA:
            raise InputError(f"alpha must be one of {', '.join(map(repr, AUTOMATIC_ALPHA))} "
                             f"or a number in (0, 100), got {alpha!r}.",
                             "use alpha='auto' or a percentage of lambda_max, e.g. 30.")
        return alpha, None
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"alpha must be 'auto' or a number in (0, 100), got {alpha!r}.",
                         "use alpha='auto' or a percentage of lambda_max, e.g. 30.") from None
    if alpha == 0.0:
        # MNE's alpha=0 ("no regularization") has infinitely many solutions (more
        # unknowns than sensors): what its solver returns depends on maxit.
        raise InputError(
            "alpha=0 means no regularization: with more source components than sensors the "
            "fit has infinitely many exact solutions, none of them sparse.",
            "use a small positive percentage (e.g. alpha=5), or a minimum-norm estimate "
            "(mne.minimum_norm.apply_inverse) for an unregularized-looking fit.")
    if not 0.0 < alpha < 100.0:
        raise InputError(
            f"alpha={alpha} is outside (0, 100): it is a percentage of lambda_max, and at "
            "100 % or more no source is active.",
            "use a percentage strictly between 0 and 100 (e.g. 30), or alpha='auto'.")
    return "fraction", alpha / 100.0


def sparse_inverse(evoked, forward, noise_cov, alpha="auto", loose="auto", depth=0.8,
                   maxit=3000, tol=1e-4, active_set_size=10, debias=True, time_pca=True,
                   weights=None, weights_min=0.0, solver="auto", n_mxne_iter=1,
                   return_residual=False, return_as_dipoles=False, dgap_freq=10, rank=None,
                   pick_ori=None, sure_alpha_grid="auto", verbose=None, *, rng=None,
                   random_state=None, penalty=None, penalty_params=None, alpha_fraction=None,
                   return_result=False, max_time=DEFAULT_MAX_TIME, bem="auto", trans=None,
                   allow_missing_types=False, tmin=None, tmax=None):
    """Sparse source estimate with group penalties; a drop-in for ``mixed_norm``.

    Parameters
    ----------
    evoked : mne.Evoked | list of mne.Evoked
        The data; several evokeds are fitted jointly (concatenated in time).
    forward : mne.Forward
        Forward solution.
    noise_cov : mne.Covariance
        Noise covariance.
    alpha : 'auto' | 'bic' | 'qut' | 'sure' | float
        Regularization. ``'auto'`` (default) chooses it for the question "which
        few sources": the BIC of the least-squares refit along the penalty's path
        (L0.5 unless ``penalty`` is given) with a discrepancy floor
        (:mod:`meeg_inverse.rules`; chosen by the study in ``docs/studies/``).
        ``'qut'``: the quantile universal threshold. ``'sure'``: MNE's meaning,
        Stein's unbiased risk estimate (by hypergradients here), which targets
        prediction and keeps many weak sources on real averages. A number is a
        percentage of lambda_max in (0, 100), as in MNE.
    loose, depth, rank, weights, weights_min, pick_ori
        As in :func:`mne.inverse_sparse.mixed_norm`: ``loose`` 'auto', a
        number or a dict per source-space type; ``depth`` a number, None or a
        dict of :func:`mne.forward.compute_depth_prior` options; ``weights`` an
        array or a source estimate on the forward's sources, ``weights_min`` in
        the weights' units.
    maxit : int
        Maximum number of outer iterations of the solver.
    tol : float
        Relative tolerance: the duality gap (convex penalties) or the
        fixed-point criterion (non-convex ones) must fall below
        ``tol * ||M||_F^2``, as in MNE.
    active_set_size : int | None
        Initial working-set size, in sources (None: all sources at once).
    debias : bool
        Rescale the active sources to undo the amplitude shrinkage.
    time_pca : bool | int
        Reduce the time dimension by SVD before solving (True: the data's rank;
        int: that many components).
    solver, dgap_freq
        Checked as MNE checks them ('auto' | 'cd' | 'bcd'; > 0 or np.inf); the
        solver is always the working-set Anderson-accelerated block coordinate
        descent, which gives the same solution.
    sure_alpha_grid : 'auto' | array
        With ``alpha='sure'``, an array of percentages of lambda_max makes SURE
        choose among them, as MNE; 'auto' minimizes SURE continuously.
        Ignored for other ``alpha``.
    n_mxne_iter : int
        > 1 runs iteratively reweighted L2,1 (irMxNE) with that many iterations,
        as MNE does.
    return_residual : bool
        Also return the residual as an :class:`mne.Evoked` (sensor space).
    return_as_dipoles : bool
        Return a list of :class:`mne.Dipole` instead of a source estimate.
    verbose : bool | str | None
        MNE's verbosity.
    rng, random_state : None | int | Generator
        Seed of the random direction of the SURE Monte-Carlo step.
    penalty : str | None
        ``'l21'`` (MxNE), ``'mcp'``, ``'scad'``, ``'l05'``, ``'l23'``, ``'log'``,
        ``'l1'``, ``'weighted_l21'``, ``'irmxne'``. None: ``'l05'`` with
        ``alpha='auto'`` (the study's winner: BIC along the L0.5 path), ``'l21'``
        (MNE's MxNE) otherwise.
    penalty_params : dict | None
        Penalty parameters (``gamma`` for MCP/SCAD, ``eps`` for log-sum).
    alpha_fraction : float | None
        Regularization as a fraction of lambda_max in (0, 1); overrides ``alpha``.
    return_result : bool
        Return a :class:`SparseInverseResult` instead of MNE's return values.
    max_time : float | None
        Time budget (s) of the solve and of each solve of the λ search: past
        it the estimate is returned with ``solver_info['converged'] = False``
        (and a warning). λ below 1e-4 · λ_max is refused, below 1 % warned
        about (:data:`meeg_inverse.solve.ALPHA_FRACTION_FLOOR`).
    bem : 'auto' | path-like | mne.bem.ConductorModel | None
        Head model of the reported positions (automatic ``alpha`` on a cortical
        source space): each reported source is placed by a scanning dipole fit
        whose fields the forward model computes at every lattice point
        (:class:`meeg_inverse.subgrid.ForwardLatticeScanner`; position method
        'dipole fit (BEM)'). 'auto' (default): the BEM solution file the
        forward was computed with, when the forward names one that exists
        (:func:`mne.make_forward_solution` records it) and it models every
        channel; otherwise, and with None, the fields are interpolated
        between the grid's ('sub-grid fit'). The source estimate is the same
        either way.
    trans : path-like | mne.transforms.Transform | None
        Head↔MRI transform of ``bem`` (None: the forward's); it must agree
        with the forward's.
    allow_missing_types : bool
        Localize even when ``forward`` or ``noise_cov`` lacks every channel of a
        channel type of the recording (all its EEG, say): those channels are left
        out, as MNE's ``mixed_norm`` does. False (default): an
        :class:`~meeg_inverse.errors.InputError` names the lost types.
    tmin, tmax : float | None
        Time window to localize (s), of one evoked (not with a list). The noise
        level of the automatic λ is measured on the evoked's pre-stimulus
        baseline first, as ``meeg-inverse localize --tmin --tmax`` does; an evoked
        cropped beforehand has none, and the level the covariance predicts
        (``1 / nave``) is then assumed, with a warning.

    Returns
    -------
    stc : SourceEstimate | VectorSourceEstimate | VolSourceEstimate | list
        As :func:`mne.inverse_sparse.mixed_norm`: one per evoked (a list for a
        list of two or more), or lists of :class:`mne.Dipole` with
        ``return_as_dipoles``; with ``return_residual`` a tuple
        ``(stc, residual)``. With ``return_result`` a
        :class:`SparseInverseResult`.
    """
    evokeds, is_list = _as_evoked_list(evoked)
    _resolve_alpha(alpha, alpha_fraction)  # bad alpha fails before the preparation
    _check_mne_options(solver, dgap_freq, sure_alpha_grid, alpha, active_set_size, time_pca)
    from .io import with_average_reference
    from .operator import make_sparse_inverse_operator

    # The same reference handling as every other entry point (copies, when needed).
    evokeds = [with_average_reference(e) for e in evokeds]

    with mne.utils.use_log_level(verbose if verbose is not None else "WARNING"):
        joint = _concatenate(evokeds)
        # Before the baseline check reads the covariance (an array: an IndexError there).
        _check_model_types(forward, noise_cov)
        _warn_if_not_baseline_corrected(joint, noise_cov)
        operator = make_sparse_inverse_operator(joint.info, forward, noise_cov, loose=loose,
                                                depth=depth, rank=rank, weights=weights,
                                                weights_min=weights_min,
                                                allow_missing_types=allow_missing_types)
    if bem is None or (isinstance(bem, str) and bem == "auto"):
        if trans is not None:
            raise InputError("trans= is used only with a bem= file (the dipole fits of the "
                             "reported sources).", "give bem= too, or omit trans.")
        head_model = bem
    else:
        from .dipole_positions import checked_head_model

        head_model = checked_head_model(bem, trans, forward, operator.info)
    return apply_sparse_inverse(
        operator, evokeds if is_list else evokeds[0], alpha=alpha, maxit=maxit, tol=tol,
        active_set_size=active_set_size, debias=debias, time_pca=time_pca,
        n_mxne_iter=n_mxne_iter, return_residual=return_residual,
        return_as_dipoles=return_as_dipoles, pick_ori=pick_ori, rng=rng,
        random_state=random_state, penalty=penalty, penalty_params=penalty_params,
        alpha_fraction=alpha_fraction, return_result=return_result, max_time=max_time,
        sure_alpha_grid=sure_alpha_grid, head_model=head_model, _check_baseline=False,
        tmin=tmin, tmax=tmax)


def apply_sparse_inverse(operator, evoked, alpha="auto", *, maxit=3000, tol=1e-4,
                         active_set_size=10, debias=True, time_pca=True, n_mxne_iter=1,
                         return_residual=False, return_as_dipoles=False, pick_ori=None,
                         rng=None, random_state=None, penalty=None, penalty_params=None,
                         alpha_fraction=None, return_result=False,
                         max_time=DEFAULT_MAX_TIME, sure_alpha_grid="auto",
                         head_model="auto", _check_baseline=True, tmin=None, tmax=None):
    """Apply a prepared operator to evoked data (see :func:`sparse_inverse`).

    Parameters
    ----------
    operator : SparseInverseOperator
        From :func:`meeg_inverse.operator.make_sparse_inverse_operator`.
    evoked : mne.Evoked | list of mne.Evoked
        Recorded with the operator's channels; a list is fitted jointly.
    alpha, maxit, tol, active_set_size, debias, time_pca, n_mxne_iter,
    return_residual, return_as_dipoles, pick_ori, rng, random_state, penalty,
    penalty_params, alpha_fraction, return_result, max_time, sure_alpha_grid, tmin, tmax
        As in :func:`sparse_inverse`.

    Returns
    -------
    As :func:`sparse_inverse`.
    """
    from .noise import MIN_BASELINE_SAMPLES
    from .solve import solve_inverse

    evokeds, is_list = _as_evoked_list(evoked)
    alpha_mode, fraction = _resolve_alpha(alpha, alpha_fraction)
    if max_time is not None and (isinstance(max_time, bool) or not isinstance(
            max_time, (int, float, np.integer, np.floating)) or not max_time > 0):
        raise InputError(f"max_time must be a positive number of seconds or None, got "
                         f"{max_time!r}.", f"use e.g. max_time={DEFAULT_MAX_TIME:g} (the "
                         "default) or None (no budget).")
    sure_grid = _check_mne_options("auto", 10, sure_alpha_grid, alpha, active_set_size,
                                   time_pca)
    from .io import with_average_reference

    evokeds = [with_average_reference(e) for e in evokeds]
    if penalty is None and n_mxne_iter != 1:
        penalty = "l21"  # irMxNE reweights L2,1
    penalty = resolve_penalty(penalty, alpha_mode)
    if n_mxne_iter != 1:
        if int(n_mxne_iter) < 1:
            raise InputError(f"n_mxne_iter must be ≥ 1, got {n_mxne_iter}.", "use 1 (MxNE) or 10.")
        if penalty not in ("l21", "irmxne"):
            raise InputError("n_mxne_iter > 1 reweights the L2,1 penalty (irMxNE).",
                             "use penalty='l21' with n_mxne_iter, or a non-convex penalty alone.")
        penalty = "irmxne"
        penalty_params = {**(penalty_params or {}), "n_iter": int(n_mxne_iter)}
    if int(maxit) < 1:
        raise InputError(f"maxit must be ≥ 1, got {maxit}.", "use e.g. 3000.")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InputError(f"tol must be a number in (0, 1), got {tol!r}.", "use e.g. 1e-4.")
    seed = random_state if random_state is not None else rng

    if (tmin is not None or tmax is not None) and len(evokeds) > 1:
        raise InputError("tmin/tmax apply to one evoked response, not to a list fitted jointly.",
                         "crop each evoked (evoked.copy().crop(tmin, tmax)) before the call.")
    joint = _concatenate(evokeds)
    problem = operator.problem(joint, check_baseline=_check_baseline, tmin=tmin, tmax=tmax)
    if tmin is not None or tmax is not None:
        evokeds = [problem.evoked]  # the window: what the estimates and residuals cover
    if alpha_mode != "fraction" and problem.noise_estimate.source == "nominal":
        warnings.warn(
            "The evoked response has no pre-stimulus baseline (fewer than "
            f"{MIN_BASELINE_SAMPLES} samples before 0 s), so the automatic λ assumes the "
            "noise level the covariance predicts (1/nave) instead of measuring it (on the "
            "sample averages the baseline's was 1.06-1.24 × that). Fix: pass the whole "
            "evoked and the window as tmin/tmax (e.g. tmin=0.05, tmax=0.15) instead of "
            "cropping it first.", RuntimeWarning, stacklevel=3)
    select_kw = {}
    if sure_grid is not None and alpha_mode == "sure":  # MNE's grid, in % of lambda_max
        select_kw = {"method": "sure-grid", "grid": sure_grid / 100.0 * problem.alpha_max}
    if time_pca is not True and time_pca:
        # An int keeps at most that many components (MNE keeps all if it is more),
        # and alpha is then a percentage of the reduced data's lambda_max, as MNE.
        from .solvers import time_pca as reduce_time

        time_pca = min(int(time_pca), *problem.data.shape)
        problem.alpha_max = operator.alpha_max(reduce_time(problem.data, time_pca)[0])
    solution = solve_inverse(
        problem, alpha=fraction if alpha_mode == "fraction" else alpha_mode, penalty=penalty,
        penalty_params=penalty_params, tol=tol, max_iter=int(maxit),
        # active_set_size=None: no working-set strategy (all sources at once), as MNE.
        p0=problem.n_sources if active_set_size is None else int(active_set_size),
        time_pca=time_pca, debias=debias, random_state=seed, max_time=max_time,
        # The confidence belongs to the support rules' answer ("which few sources");
        # MNE's fixed alpha and SURE get none (it costs ~20 solves).
        confidence=DEFAULT_REDRAWS if return_result and alpha_mode in ("auto", "bic", "qut")
        else 0, head_model=head_model, **select_kw)
    active_set = solution.active_set
    # Only the active rows from here on: never a source space x time array
    # (a 230-s raw window on 5124 free sources would be 3.6 GB).
    coef_active = solution.coef_active
    explained = problem.explained_variance(coef_active, active_set) if active_set.any() else 0.0
    cancellation = problem.field_cancellation(coef_active, active_set)
    problem.warn_if_cancelling(cancellation, penalty)
    if not active_set.any():
        warnings.warn("No active source: alpha is too large. Lower alpha.", RuntimeWarning,
                      stacklevel=2)
    from .summary import many_sources_note

    note = many_sources_note(int(active_set.sum()) // problem.n_orient, problem.n_orient,
                             problem.n_channels, penalty)
    if note:
        warnings.warn(note, RuntimeWarning, stacklevel=2)

    estimates, residuals, start = [], [], 0
    for e in evokeds:
        stop = start + len(e.times)
        part = coef_active[:, start:stop]
        if return_as_dipoles:
            estimates.append(_make_dipoles(problem, part, active_set, e.times,
                                           problem.data[:, start:stop]))
        else:
            estimates.append(problem.to_stc(part, active_set, pick_ori=pick_ori, times=e.times))
        if return_residual:
            residuals.append(_residual(problem, e, part, active_set))
        start = stop

    if return_result:
        selection = solution.selection
        return SparseInverseResult(
            estimates=estimates, alpha=solution.alpha,
            alpha_percent=100 * solution.alpha_fraction, alpha_max=problem.alpha_max,
            penalty=penalty, sure=None if selection is None else float(selection.sure),
            selection=selection, solver_info=solution.solver_info, active_set=active_set,
            explained_variance=explained, field_cancellation=cancellation,
            residuals=residuals if return_residual else None, problem=problem,
            timings=solution.timings, confidence=solution.confidence,
            noise=problem.noise_estimate, sources=solution.clusters,
            minor_sources=solution.minor_clusters,
            warnings=_result_warnings(problem, solution, cancellation, penalty))
    out = estimates if is_list else estimates[0]
    if return_residual:
        return out, (residuals if is_list else residuals[0])
    return out


def _result_warnings(problem, solution, cancellation, penalty):
    """The assessment's warnings of a fit (see :mod:`meeg_inverse.assessment`)."""
    from .assessment import annotate_records, result_warnings, selection_facts
    from .summary import source_records

    # source_records reads rows of the unmasked source space (weights_min masks some).
    coef_full = problem.full_coef(solution.coef_active, solution.active_set)
    records = annotate_records(source_records(problem, coef_full),
                               confidence=solution.confidence)
    return result_warnings(records, field_cancellation=cancellation,
                           residual_ratio=problem.residual_ratio(solution.coef_active,
                                                                 solution.active_set),
                           alpha_fraction=solution.alpha_fraction, penalty=penalty,
                           n_channels=len(problem.ch_names),
                           **selection_facts(solution.selection))


def _residual(problem, evoked, coef, active_set):
    """Sensor-space residual: data minus the forward projection of the estimate.

    As :func:`mne.inverse_sparse.mixed_norm`: the fit is projected with the
    projectors that are active in the data (the data carry them applied), and
    only the active sources' gain columns are used.
    """
    residual = evoked.copy().pick(problem.ch_names)
    rows, values = problem._active_rows(coef, active_set)
    full_rows = rows if problem.source_mask is None else np.flatnonzero(problem.source_mask)[rows]
    physical = values * problem.source_weighting[rows][:, None]
    # Only the active columns of the unwhitened gain (the operator's forward rows).
    fit = problem.operator.sensor_gain(full_rows) @ physical
    active_projs = [p for p in residual.info["projs"] if p["active"]]
    if active_projs:
        info = residual.info.copy()
        with info._unlock():
            info["projs"] = [mne.Projection(**{**dict(p), "active": False})
                             for p in active_projs]
        projected = mne.EvokedArray(fit, info, tmin=residual.times[0], verbose=False)
        projected.apply_proj(verbose=False)
        fit = projected.data
    residual.data = residual.data - fit
    return residual


def _make_dipoles(problem, coef, active_set, times, data):
    """One :class:`mne.Dipole` per active source, as ``mixed_norm(return_as_dipoles=True)``.

    ``coef`` holds the rows of ``active_set``. Positions and orientations in head
    coordinates, amplitudes in A·m (signed for fixed orientation), and MNE's
    split goodness of fit (the share of the whitened ``data`` each dipole
    explains, %).
    """
    from mne.inverse_sparse.mxne_inverse import _split_gof

    n_orient = problem.n_orient
    rows = np.flatnonzero(np.asarray(active_set, bool))
    # Whole blocks of the active sources (MNE's active set holds whole sources).
    blocks = np.unique(rows // n_orient)
    block_rows = (blocks[:, None] * n_orient + np.arange(n_orient)).ravel()
    values = np.zeros((len(block_rows), len(times)))
    values[np.searchsorted(block_rows, rows)] = coef
    weighting = problem.source_weighting[block_rows]
    physical = values * weighting[:, None]
    # MNE splits the fit on the whitened gain in physical units (its basis, and
    # so the split, depends on the columns' scaling).
    weighting = np.where(weighting == 0, 1.0, weighting)
    gain = problem.gain[:, block_rows] / weighting
    # Column by column in time (MNE's split is per sample): in chunks, so a long
    # window never needs a (channels x rows x samples) array at once.
    chunk = max(1, int(2e6 // max(1, gain.shape[0] * gain.shape[1])))
    gof = np.concatenate([_split_gof(data[:, t:t + chunk], physical[:, t:t + chunk], gain)
                          for t in range(0, len(times), chunk)], axis=1)
    gof = gof.reshape(len(blocks), n_orient, len(times)).sum(axis=1)
    full_blocks = blocks if problem.source_mask is None else \
        np.flatnonzero(problem.source_mask)[block_rows][::n_orient] // n_orient
    nn = problem.forward["source_nn"]
    # Head coordinates, as the forward's source_rr that MNE uses.
    src_rr = np.concatenate([s["rr"][s["vertno"]] for s in problem.forward["src"]])
    dipoles = []
    for j, k in enumerate(full_blocks):
        block = physical[j * n_orient:(j + 1) * n_orient]
        if n_orient == 1:
            amplitude = block[0]
            ori = np.tile(nn[k], (len(times), 1))
        else:
            moments = nn[k * 3:(k + 1) * 3].T @ block  # (3, n_times) in head coordinates
            amplitude = np.linalg.norm(moments, axis=0)
            ori = np.zeros((len(times), 3))
            ori[amplitude > 0] = (moments[:, amplitude > 0] / amplitude[amplitude > 0]).T
        pos = np.tile(src_rr[k], (len(times), 1))
        dipoles.append(mne.Dipole(times, pos, amplitude, ori, gof[j]))
    return dipoles


def localize_epochs(epochs, forward, noise_cov=None, *, tmin=None, tmax=None, **kwargs):
    """Sparse inverse of the average of epochs (noise from their baseline if not given).

    Parameters
    ----------
    epochs : mne.Epochs
        The trials; their average is localized.
    forward : mne.Forward
    noise_cov : mne.Covariance | None
        None: estimated from the epochs' pre-stimulus part.
    tmin, tmax : float | None
        Time window of the average to localize (s); None: from the start / to
        the end of the epochs. The noise covariance still uses the whole baseline.
    **kwargs
        Keyword arguments of :func:`sparse_inverse`.

    Raises
    ------
    InputError
        When ``epochs`` is not an Epochs or the window is outside the epochs.
    """
    from .io import noise_cov_from_baseline, with_average_reference

    if not isinstance(epochs, mne.BaseEpochs):
        raise InputError(f"epochs must be an mne.Epochs, got {type(epochs).__name__}.",
                         "cut epochs with mne.Epochs(raw, events).")
    if noise_cov is None:
        noise_cov = noise_cov_from_baseline(with_average_reference(epochs))
    evoked = epochs.average()
    if tmin is not None or tmax is not None:
        lo = evoked.times[0] if tmin is None else float(tmin)
        hi = evoked.times[-1] if tmax is None else float(tmax)
        if not (evoked.times[0] <= lo < hi <= evoked.times[-1] + 0.5 / evoked.info["sfreq"]):
            raise InputError(
                f"The window [{lo}, {hi}] s is not inside the epochs "
                f"[{evoked.times[0]:.3f}, {evoked.times[-1]:.3f}] s.",
                "choose tmin < tmax inside the epochs.")
        # The whole average goes in: the noise level is measured on its baseline.
        kwargs.update(tmin=lo, tmax=hi)
    return sparse_inverse(evoked, forward, noise_cov, **kwargs)


def localize_raw(raw, forward, noise_cov, start, stop, **kwargs):
    """Sparse inverse of a time window ``[start, stop]`` (s) of a raw recording.

    Keyword arguments go to :func:`sparse_inverse`.
    """
    if not isinstance(raw, mne.io.BaseRaw):
        raise InputError(f"raw must be an mne.io.Raw, got {type(raw).__name__}.",
                         "read one with mne.io.read_raw.")
    if not raw.times[0] <= start < stop <= raw.times[-1]:
        raise InputError(f"The window [{start}, {stop}] s is not inside the recording "
                         f"[{raw.times[0]:.3f}, {raw.times[-1]:.3f}] s.", "choose start < stop inside it.")
    # Only the window's samples are read or copied, never the whole recording.
    first, last = raw.time_as_index([start, stop], use_rounding=True)
    evoked = mne.EvokedArray(raw.get_data(start=first, stop=last + 1), raw.info,
                             tmin=raw.times[first], nave=1, comment=f"raw {start}-{stop} s",
                             verbose=False)
    with warnings.catch_warnings():
        # A raw window has no stimulus: the covariance's level is the one to assume.
        warnings.filterwarnings("ignore", message="The evoked response has no pre-stimulus")
        return sparse_inverse(evoked, forward, noise_cov, **kwargs)


class SparseInverse:
    """Scikit-learn style estimator around :func:`sparse_inverse`.

    Parameters are those of :func:`sparse_inverse`; ``fit(evoked, forward,
    noise_cov)`` sets ``stc_``, ``alpha_``, ``alpha_percent_``, ``sure_``,
    ``solver_info_`` and ``result_``.

    Examples
    --------
    >>> est = SparseInverse(penalty="mcp", alpha="sure").fit(evoked, fwd, cov)  # doctest: +SKIP
    >>> est.stc_.plot()  # doctest: +SKIP
    """

    _param_names = ("alpha", "penalty", "penalty_params", "loose", "depth", "tol", "maxit",
                    "debias", "time_pca", "weights", "weights_min", "n_mxne_iter", "pick_ori",
                    "rank", "random_state", "allow_missing_types")

    def __init__(self, alpha="auto", penalty=None, penalty_params=None, loose="auto", depth=0.8,
                 tol=1e-4, maxit=3000, debias=True, time_pca=True, weights=None, weights_min=0.0,
                 n_mxne_iter=1, pick_ori=None, rank=None, random_state=0,
                 allow_missing_types=False):
        self.alpha = alpha
        self.penalty = penalty
        self.penalty_params = penalty_params
        self.loose = loose
        self.depth = depth
        self.tol = tol
        self.maxit = maxit
        self.debias = debias
        self.time_pca = time_pca
        self.weights = weights
        self.weights_min = weights_min
        self.n_mxne_iter = n_mxne_iter
        self.pick_ori = pick_ori
        self.rank = rank
        self.random_state = random_state
        self.allow_missing_types = allow_missing_types

    def get_params(self, deep=True):
        """Parameters of the estimator, as scikit-learn expects."""
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params):
        """Set parameters; unknown names raise a clear error."""
        for name, value in params.items():
            if name not in self._param_names:
                raise InputError(f"Unknown parameter {name!r} for SparseInverse.",
                                 f"valid parameters: {', '.join(self._param_names)}.")
            setattr(self, name, value)
        return self

    def fit(self, evoked, forward, noise_cov):
        """Fit the sparse inverse; returns self."""
        result = sparse_inverse(evoked, forward, noise_cov, return_result=True,
                                **self.get_params())
        self.result_ = result
        self.stc_ = result.estimates[0] if len(result.estimates) == 1 else result.estimates
        self.alpha_ = result.alpha
        self.alpha_percent_ = result.alpha_percent
        self.sure_ = result.sure
        self.solver_info_ = result.solver_info
        return self

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"SparseInverse({params})"
