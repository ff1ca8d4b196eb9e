"""The prepared sparse inverse operator: prepare once, apply to many data sets.

:func:`make_sparse_inverse_operator` does, once, everything that depends only
on the sensors, the forward solution and the noise covariance — the shape of
MNE's ``make_inverse_operator`` / ``apply_inverse``:

- the channels common to the recording, forward and covariance;
- the whitener, from **one** eigendecomposition of the noise covariance
  (MNE's ``mixed_norm`` prepares the covariance three times: once for the
  depth prior, once for the gain, once inside ``compute_whitener``);
- the depth and orientation weights, vectorized, from the whitened gain the
  operator keeps anyway (MNE whitens the gain twice);
- the whitened, weighted gain: **one** array, computed straight from the
  forward's rows (no deep copy of the forward, no channel-picked copy of its
  gain), Fortran-ordered for the solvers.

:meth:`SparseInverseOperator.apply` then whitens an evoked response (a
matrix product) and solves; :meth:`SparseInverseOperator.problem` gives the
:class:`~meeg_inverse.problem.InverseProblem` of one data set (sharing the
gain, not copying it). The preparation equals MNE's ``_prepare_gain`` to
machine precision (``tests/test_problem.py``).

The operator can be saved to and read from HDF5 (:meth:`~SparseInverseOperator.save`,
:func:`read_sparse_inverse_operator`), through ``h5io``.
"""

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ._blas import load_aware
from .errors import InputError, check_finite

_H5_TITLE = "meeg_inverse_operator"
_FORMAT_VERSION = 1


class SparseInverseOperator:
    """Everything a sparse inverse needs that does not depend on the data.

    Build it with :func:`make_sparse_inverse_operator`; apply it with
    :meth:`apply` (MNE objects in and out) or :meth:`problem` (the whitened
    matrix problem of one data set).

    Attributes
    ----------
    gain : ndarray, shape (rank, n_sources * n_orient), Fortran order
        Whitened, depth- and orientation-weighted gain, scaled so that
        ``||gain||_F^2 == rank`` (as MNE).
    whitener : ndarray, shape (rank, n_channels)
        Noise whitener (PCA form: one row per non-zero eigenvalue).
    ch_names : list of str
        The channels, in the recording's order.
    info : mne.Info
        The recording's measurement info restricted to :attr:`ch_names`.
    n_orient : int
        1 (fixed) or 3 (loose / free) gain columns per source.
    source_weighting : ndarray, shape (n_sources * n_orient,)
        Multiply a row of a solution by it to get A·m.
    loose : float
    depth : float | None
    rank : int
        Rank of the noise covariance (= number of whitened channels).
    src : mne.SourceSpaces
    source_nn : ndarray, shape (n_sources * n_orient, 3)
        Orientation of each gain column (head coordinates).
    mri_head_t : mne.transforms.Transform
    source_mask : ndarray of bool | None
        Sources kept by ``weights_min`` (None: all).
    """

    def __init__(self, *, gain, whitener, ch_names, info, n_orient, source_weighting, loose,
                 depth, rank, src, source_nn, mri_head_t, sensor_gain, sensor_rows=None,
                 source_mask=None):
        self.gain = gain
        self.whitener = whitener
        self.ch_names = list(ch_names)
        self.info = info
        self.n_orient = int(n_orient)
        self.source_weighting = source_weighting
        self.loose = float(loose)
        self.depth = depth
        self.rank = int(rank)
        self.src = src
        self.source_nn = source_nn
        self.mri_head_t = mri_head_t
        # The unwhitened gain, for residuals: either the forward's own array
        # with the rows of ``ch_names`` (no copy), or an already-picked array.
        self._sensor_gain = sensor_gain
        self._sensor_rows = sensor_rows
        self.source_mask = source_mask
        self._block_eigh = None
        #: The BEM solution file the forward was computed with (None: not known).
        self.bem_path = None

    # ------------------------------------------------------------------ sizes
    @property
    def n_sources(self):
        """Number of source positions (after ``weights_min``)."""
        return self.gain.shape[1] // self.n_orient

    @property
    def forward(self):
        """The source-side parts of the forward: ``src``, ``source_nn``, ``mri_head_t``."""
        return {"src": self.src, "source_nn": self.source_nn, "mri_head_t": self.mri_head_t}

    def __repr__(self):
        kind = "fixed" if self.n_orient == 1 else ("free" if self.loose == 1 else f"loose {self.loose}")
        return (f"<SparseInverseOperator | {len(self.ch_names)} channels (rank {self.rank}), "
                f"{self.n_sources} sources, {kind}, depth {self.depth}>")

    # ------------------------------------------------------------ ingredients
    def block_eigh(self):
        """Eigendecomposition of every block ``G_kᵀ G_k`` (cached; see :mod:`datafits`)."""
        if self._block_eigh is None:
            from .datafits import QuadraticMultiTask

            self._block_eigh = QuadraticMultiTask.block_eigh(self.gain, self.n_orient)
        return self._block_eigh

    def sensor_gain(self, columns):
        """Unwhitened gain (T/V per A·m) of ``columns`` on :attr:`ch_names`.

        ``columns`` index the forward's columns (all sources, whatever
        ``source_mask``).
        """
        columns = np.asarray(columns)
        if self._sensor_rows is None:
            return self._sensor_gain[:, columns]
        return self._sensor_gain[np.ix_(self._sensor_rows, columns)]

    def whiten(self, evoked):
        """Whitened data of an evoked response (or an array on :attr:`ch_names`).

        Parameters
        ----------
        evoked : mne.Evoked | ndarray, shape (n_channels, n_times)

        Returns
        -------
        data : ndarray, shape (rank, n_times)
        """
        import mne

        if isinstance(evoked, mne.Evoked):
            missing = [c for c in self.ch_names if c not in evoked.ch_names]
            if missing:
                raise InputError(
                    f"The evoked response lacks {len(missing)} channel(s) of the inverse "
                    f"operator: {', '.join(missing[:6])}.",
                    "apply the operator to data recorded with the same sensors, or make a "
                    "new operator with this recording's info.")
            index = {c: k for k, c in enumerate(evoked.ch_names)}
            data = evoked.data[[index[c] for c in self.ch_names]]
        else:
            data = np.asarray(evoked, dtype=float)
            if data.ndim != 2 or data.shape[0] != len(self.ch_names):
                raise InputError(f"data must have shape ({len(self.ch_names)}, n_times), got "
                                 f"{data.shape}.", "give one row per channel of the operator.")
        check_finite(data, "The evoked data")
        return self.whitener @ data

    def problem(self, evoked, *, check_baseline=True, tmin=None, tmax=None):
        """The whitened problem of one evoked response (shares :attr:`gain`).

        The noise level of the average is measured on its whole pre-stimulus
        baseline (:func:`meeg_inverse.noise.baseline_noise`) before the data
        are cut to ``[tmin, tmax]`` (s).

        Returns
        -------
        problem : meeg_inverse.problem.InverseProblem
        """
        from .problem import InverseProblem, _warn_if_not_baseline_corrected

        import mne

        from .noise import baseline_noise

        if check_baseline:
            _warn_if_not_baseline_corrected(evoked, self._noise_cov_diag_view())
        noise = None
        if isinstance(evoked, mne.Evoked):
            noise = baseline_noise(evoked, self.whitener, self.ch_names)
            if tmin is not None or tmax is not None:
                from .io import time_window

                evoked = evoked.copy().crop(*time_window(evoked.times, tmin, tmax))
            _warn_if_prestimulus(evoked.times)
        data = self.whiten(evoked)
        alpha_max, correlation = self._alpha_max(data)
        if not alpha_max > 0:
            raise InputError("The whitened data are zero: nothing to localize.",
                             "check the time window and the channels.")
        return InverseProblem(
            gain=self.gain, data=data, n_orient=self.n_orient,
            source_weighting=self.source_weighting, whitener=self.whitener,
            forward=self.forward, info=self.info, ch_names=self.ch_names,
            times=evoked.times.copy(), loose=self.loose, depth=self.depth, rank=self.rank,
            alpha_max=alpha_max, source_mask=self.source_mask, evoked=evoked,
            nave=max(int(evoked.nave), 1), operator=self, noise=noise,
            data_correlation=correlation)

    def alpha_max(self, data):
        """λ_max of whitened data: ``max_k ||G_kᵀ Y||_F`` (the L2,1 solution is 0 above it)."""
        return self._alpha_max(data)[0]

    def _alpha_max(self, data):
        """λ_max, and ``Yᵀ G`` (times x columns) when it was computed (else None).

        The solver's first outer iteration from zero needs the same product
        (``solvers.solve(data_correlation=...)``): computed once.
        """
        # ||G_kᵀ Y||_F does not change under an orthonormal change of time basis:
        # the data's SVD factor U·S (channels x channels) gives λ_max without a
        # sources x time array (3.4 GB for a 230-s window on 5124 free sources).
        data = np.asarray(data)
        reduced = data.shape[1] > data.shape[0]
        if reduced:
            left, singular, _ = np.linalg.svd(data, full_matrices=False)
            data = left * singular
        # Yᵀ G (times x columns): BLAS makes it ~3x faster than Gᵀ Y for a tall
        # Fortran-ordered gain (see solvers.working_set.solve).
        corr_t = data.T @ self.gain
        energy = np.einsum("ij,ij->j", corr_t, corr_t)
        alpha_max = float(np.sqrt(energy.reshape(-1, self.n_orient).sum(axis=1).max()))
        return alpha_max, None if reduced else corr_t

    def _noise_cov_diag_view(self):
        # The baseline check needs the channels' noise variances only.
        return {"names": self.ch_names, "data": self._noise_var, "diag": True, "bads": []}

    # ------------------------------------------------------------------ apply
    def apply(self, evoked, alpha="auto", **kwargs):
        """Sparse source estimate of one evoked response (or a list, fitted jointly).

        Same arguments and return values as :func:`meeg_inverse.sparse_inverse`
        without ``forward``, ``noise_cov``, ``loose``, ``depth``, ``rank``,
        ``weights`` and ``weights_min`` (fixed by the operator).
        """
        from .api import apply_sparse_inverse

        return apply_sparse_inverse(self, evoked, alpha=alpha, **kwargs)

    # --------------------------------------------------------------------- io
    def save(self, fname, *, overwrite=False):
        """Write the operator to an HDF5 file (``.h5``), through ``h5io``.

        Parameters
        ----------
        fname : path-like
        overwrite : bool
            Refuse to replace an existing file unless True.
        """
        import h5io
        import mne

        fname = Path(fname)
        if fname.exists() and not overwrite:
            raise InputError(f"{str(fname)!r} exists.", "pass overwrite=True or another name.")
        with tempfile.TemporaryDirectory() as tmp:
            src_f = os.path.join(tmp, "op-src.fif")
            info_f = os.path.join(tmp, "op-info.fif")
            mne.write_source_spaces(src_f, self.src, overwrite=True, verbose=False)
            mne.io.write_info(info_f, self.info)
            src_bytes = np.fromfile(src_f, dtype=np.uint8)
            info_bytes = np.fromfile(info_f, dtype=np.uint8)
        rows = np.arange(len(self.ch_names)) if self._sensor_rows is None else self._sensor_rows
        sensor = self._sensor_gain[rows] if self._sensor_rows is not None else self._sensor_gain
        state = dict(
            format_version=_FORMAT_VERSION, gain=np.asarray(self.gain), whitener=self.whitener,
            ch_names=list(self.ch_names), n_orient=self.n_orient,
            source_weighting=self.source_weighting, loose=self.loose,
            depth=-1.0 if self.depth is None else float(self.depth), rank=self.rank,
            source_nn=self.source_nn, mri_head_t=np.asarray(self.mri_head_t["trans"]),
            mri_head_t_frames=np.array([self.mri_head_t["from"], self.mri_head_t["to"]]),
            sensor_gain=np.ascontiguousarray(sensor),
            source_mask=np.zeros(0, bool) if self.source_mask is None else self.source_mask,
            noise_var=self._noise_var, src_fif=src_bytes, info_fif=info_bytes,
            bem_path="" if self.bem_path is None else str(self.bem_path))
        tmp_name = fname.with_name(f".{fname.name}.partial")
        h5io.write_hdf5(tmp_name, state, title=_H5_TITLE, overwrite=True)
        os.replace(tmp_name, fname)


def read_sparse_inverse_operator(fname):
    """Read an operator written by :meth:`SparseInverseOperator.save`.

    Returns
    -------
    operator : SparseInverseOperator
    """
    import h5io
    import mne

    fname = Path(fname)
    if not fname.is_file():
        raise InputError(f"No inverse operator file {str(fname)!r}.", "check the path.")
    try:
        state = h5io.read_hdf5(fname, title=_H5_TITLE)
    except Exception as exc:  # h5py raises various errors for non-HDF5 files
        raise InputError(f"{str(fname)!r} is not a meeg-inverse operator file ({exc}).",
                         "give a file written by SparseInverseOperator.save.") from None
    if state.get("format_version") != _FORMAT_VERSION:
        raise InputError(f"{str(fname)!r} has operator format {state.get('format_version')}, "
                         f"this version reads {_FORMAT_VERSION}.", "make the operator again.")
    with tempfile.TemporaryDirectory() as tmp:
        src_f = os.path.join(tmp, "op-src.fif")
        info_f = os.path.join(tmp, "op-info.fif")
        state["src_fif"].tofile(src_f)
        state["info_fif"].tofile(info_f)
        src = mne.read_source_spaces(src_f, verbose=False)
        info = mne.io.read_info(info_f, verbose=False)
    frames = state["mri_head_t_frames"]
    mask = state["source_mask"]
    op = SparseInverseOperator(
        gain=np.asfortranarray(state["gain"]), whitener=state["whitener"],
        ch_names=list(state["ch_names"]), info=info, n_orient=state["n_orient"],
        source_weighting=state["source_weighting"], loose=state["loose"],
        depth=None if state["depth"] < 0 else float(state["depth"]), rank=state["rank"],
        src=src, source_nn=state["source_nn"],
        mri_head_t=mne.transforms.Transform(int(frames[0]), int(frames[1]), state["mri_head_t"]),
        sensor_gain=state["sensor_gain"], source_mask=mask if mask.size else None)
    op._noise_var = state["noise_var"]
    bem = state.get("bem_path") or ""
    op.bem_path = Path(bem) if bem and Path(bem).is_file() else None
    return op


def _prepare_noise_cov(noise_cov, info, ch_names, rank):
    """:func:`mne.cov.prepare_noise_cov`, its refusals of the input as InputError."""
    import mne

    try:
        return mne.cov.prepare_noise_cov(noise_cov, info, ch_names, rank)
    except ValueError as exc:
        if "exceeds the number of channels" not in str(exc):
            raise
        raise InputError(f"The rank asked for is too large: {exc}.",
                         "give each channel type at most its number of channels (e.g. "
                         "--rank meg=303,eeg=59; rank=dict(meg=303, eeg=59) in Python), or "
                         "leave the rank out (estimated).") from None
    except RuntimeError as exc:
        if "will yield no components" not in str(exc):
            raise
        raise InputError(f"Too few channels are left for their projectors ({exc}): "
                         "nothing of that channel type is left to localize with.",
                         "leave out fewer channels of that type (--exclude), or all of "
                         "them.") from None


def _prepared_rank(cov, info):
    """Rank per channel type of a covariance prepared by ``prepare_noise_cov`` (rank=None).

    The preparation keeps, per channel type ('meg' combined, 'eeg', ...), the
    eigenvalues of its estimated rank and zeroes the others: counting them
    gives the estimate again, as :func:`mne.compute_rank` (rank=None) would
    return it, without a second estimation. None when MNE's channel grouping
    is not available.
    """
    try:
        from mne._fiff.pick import _picks_by_type
    except ImportError:  # another MNE layout: the check estimates the rank itself
        return None
    eig = np.asarray(cov["eig"])
    return {kind: int(np.count_nonzero(eig[picks] > 0))
            for kind, picks in _picks_by_type(info, meg_combined=True, ref_meg=False,
                                              exclude=[]) if len(picks)}


def _whitener_blocks(whitener):
    """The diagonal blocks of a block-diagonal whitener, or None.

    MNE's whitener is block-diagonal by channel type (MEG and EEG are
    decomposed separately): each row is non-zero on one contiguous range of
    channels only. Returns ``[(row_slice, col_slice), ...]`` covering every
    row and column, with exact zeros outside the blocks, or None when the
    whitener is one block (or is not block-diagonal in this order).
    """
    nonzero = whitener != 0
    if not nonzero.any(axis=1).all():
        return None
    first = nonzero.argmax(axis=1)
    last = whitener.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)
    blocks, r0, c0, c1 = [], 0, first[0], last[0]
    for r in range(1, whitener.shape[0]):
        if first[r] <= c1:  # overlaps the current block: same block
            if first[r] < c0:
                return None  # rows not in channel order: one product
            c1 = max(c1, last[r])
            continue
        blocks.append((slice(r0, r), slice(c0, c1 + 1)))
        r0, c0, c1 = r, first[r], last[r]
    blocks.append((slice(r0, whitener.shape[0]), slice(c0, c1 + 1)))
    # Columns outside every block (channels that no row uses) are fine: they
    # only multiply zeros. Blocks must not share columns.
    if len(blocks) < 2 or any(b[1].stop > a[1].start for a, b in zip(blocks[1:], blocks[:-1])):
        return None
    return blocks


def _whiten_gain(sol, rows, whitener):
    """``whitener @ sol[rows]``, Fortran-ordered, without the channel-picked copy of ``sol``.

    The whitener gets zero columns for the forward's other rows, and the product
    is computed as ``(solᵀ Wᵀ)ᵀ`` so that the result is Fortran-ordered (solvers
    read columns) without a second copy. Rows not used that hold NaN/Inf
    (0·NaN is NaN) are left out by picking instead. Returns the gain and the
    array and rows the unwhitened gain is to be read from.

    MNE's whitener is block-diagonal by channel type (306 MEG + 60 EEG
    channels: 27 % fewer flops than one product over all of them). Each
    block's product is written by BLAS straight into its columns of the
    result's transpose (a strided, BLAS-compatible view: no copy), so the
    result is the same array as with one product; on the 5 mm volume (31 104
    columns, one BLAS thread) 0.16 s instead of 0.20 s (A/B in one process).
    """
    if len(rows) < sol.shape[0] and not all(np.isfinite(sol[r]).all() for r in
                                            np.setdiff1d(np.arange(sol.shape[0]), rows)):
        sol, rows = sol[rows], np.arange(len(rows))
    blocks = _whitener_blocks(whitener)
    if blocks is None:
        whitener_rows = np.zeros((whitener.shape[0], sol.shape[0]))
        whitener_rows[:, rows] = whitener
        return (sol.T @ whitener_rows.T).T, sol, rows
    gain_t = np.empty((sol.shape[1], whitener.shape[0]))  # C order: its transpose is F
    for row_block, col_block in blocks:
        # The forward rows of these channels, as a contiguous range (zero
        # whitener columns for rows of the range that are not used).
        fwd_rows = rows[col_block]
        lo, hi = fwd_rows.min(), fwd_rows.max() + 1
        block = np.zeros((row_block.stop - row_block.start, hi - lo))
        block[:, fwd_rows - lo] = whitener[row_block, col_block]
        np.matmul(sol[lo:hi].T, block.T, out=gain_t[:, row_block])
    return gain_t.T, sol, rows


def _warn_if_prestimulus(times):
    """Warn when the samples to localize all lie before the stimulus (0 s).

    The pre-stimulus baseline is the noise reference: what is localized there is
    noise (or anticipation, when asked for on purpose). MNE's ``mixed_norm``
    accepts it, so it is a warning here (the command line refuses it unless
    ``--allow-prestimulus``).
    """
    if len(times) and times[0] < 0 and times[-1] <= 0:
        warnings.warn(
            f"The time window to localize ({times[0]:.3f} to {times[-1]:.3f} s) lies entirely "
            "before the stimulus (0 s): the pre-stimulus baseline holds no response to it, so "
            "the sources found there are those of the noise. Localize a window after the "
            "stimulus, e.g. tmin=0.05, tmax=0.15 (evoked.copy().crop(0.05, 0.15)); times "
            "are in seconds.", RuntimeWarning, stacklevel=4)


@load_aware
def make_sparse_inverse_operator(info, forward, noise_cov, *, loose="auto", depth=0.8,
                                 rank=None, weights=None, weights_min=0.0,
                                 allow_missing_types=False, verbose=False):
    """Prepare the sparse inverse of a recording setup (as MNE's ``mixed_norm`` does).

    Parameters
    ----------
    info : mne.Info
        Measurement info of the recording (channels, bads, SSP projectors).
        EEG must carry an average-reference projector
        (:func:`meeg_inverse.io.set_average_reference` adds one).
    forward : mne.Forward
        Forward solution; a free-orientation one allows any ``loose``. It is
        not copied (nor modified), except when ``loose`` needs MNE's
        conversion to surface or fixed orientation.
    noise_cov : mne.Covariance
        Noise covariance of the sensors (one trial).
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
    allow_missing_types : bool
        Prepare it even when the forward or the covariance lacks every channel of
        a channel type of the recording (those channels are left out); refused
        otherwise (``--allow-missing-types`` of the command line).
    verbose : bool | str
        MNE's verbosity during the preparation.

    Returns
    -------
    operator : SparseInverseOperator

    Raises
    ------
    InputError
        Wrong types, no channel in common, a whole channel type lost (unless
        ``allow_missing_types``), a NaN or singular covariance, an orientation the
        forward cannot give, EEG without average reference.

    Notes
    -----
    The steps are MNE's ``_prepare_forward`` for sparse solvers (depth prior
    with ``limit=None, limit_depth_chs='whiten', combine_xyz='fro'``), with
    the covariance prepared once and the gain whitened once. When the
    machine's load average fills its cores, BLAS runs on one thread
    (:func:`meeg_inverse._blas.blas_threads_for_load`); the result then equals
    MNE's preparation run on one thread.
    """
    import mne

    from .consistency import check_rank_consistency
    from .io import needs_average_reference
    from .problem import (_apply_prior_weights, _check_model_types, _check_noise_cov,
                          _depth_options, _triage_loose, select_channels)

    if not isinstance(info, mne.Info):
        raise InputError(f"info must be an mne.Info, got {type(info).__name__}.",
                         "pass evoked.info (or raw.info / epochs.info).")
    _check_model_types(forward, noise_cov)
    if needs_average_reference(info):
        # Sparse solvers need the average reference as a projector, also when the
        # EEG was re-referenced (custom_ref_applied): the forward model is not.
        raise InputError(
            "The EEG has no average-reference projector"
            + (" (it was re-referenced to other electrodes)" if info["custom_ref_applied"]
               else "") + ".",
            "call evoked.set_eeg_reference('average', projection=True) first "
            "(meeg_inverse.io.set_average_reference does it; sparse_inverse and the "
            "localize functions do it themselves).")
    # depth: a number, None/0, or a dict of compute_depth_prior options, as MNE.
    depth_options = _depth_options(depth)
    depth = depth_options["exp"]
    mne_depth = (depth is not None and (depth_options["limit"] is not None
                                        or depth_options["limit_depth_chs"] != "whiten"
                                        or depth_options["combine_xyz"] != "fro"))
    loose = _triage_loose(forward["src"], loose)  # a dict when source spaces differ
    min_loose = min(loose.values()) if isinstance(loose, dict) else loose

    fixed = loose == 0.0
    with mne.utils.use_log_level(verbose):
        # MNE's conversions copy the forward; only done when the orientation needs it.
        if fixed:
            if {s["type"] for s in forward["src"]} - {"surf", "discrete"}:
                raise InputError("Fixed orientation needs a surface source space.",
                                 "use loose=1 with volume source spaces.")
            if not mne.forward.is_fixed_orient(forward):
                forward = mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True,
                                                       use_cps=True, verbose=False)
        else:
            if mne.forward.is_fixed_orient(forward):
                raise InputError(
                    "The forward solution has fixed orientation, so only loose=0 is possible.",
                    "pass loose=0, or compute a free-orientation forward solution.")
            if min_loose < 1.0 and not forward["surf_ori"]:
                forward = mne.convert_forward_solution(forward, surf_ori=True, use_cps=True,
                                                       verbose=False)

        ch_names = select_channels(info, forward, noise_cov,
                                   allow_missing_types=allow_missing_types)
        _check_noise_cov(noise_cov, ch_names)
        row_of = {c: k for k, c in enumerate(forward["sol"]["row_names"])}
        rows = np.array([row_of[c] for c in ch_names])
        info_picked = mne.pick_info(info, [info["ch_names"].index(c) for c in ch_names])
        sol = forward["sol"]["data"]

        # One preparation (eigendecomposition, rank estimate) of the covariance, one
        # whitener: MNE's depth prior and gain use the same whitener, computed twice
        # there. Its warnings wait until the rank check has passed (a refused
        # covariance gets one message).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cov = _prepare_noise_cov(noise_cov, info, ch_names, rank)
        # With rank=None the preparation has estimated the covariance's rank per
        # channel type (the SVDs that dominate it): the check reuses it.
        check_rank_consistency(info, noise_cov, ch_names,
                               cov_rank=_prepared_rank(cov, info_picked) if rank is None
                               else None)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        whitener, _ = mne.cov.compute_whitener(cov, pca=True, verbose=False)
    rank_value = int((cov["eig"] > 0).sum())
    if rank_value == 0:
        raise InputError("The noise covariance has rank 0.", "recompute it from real noise data.")

    # gain = whitener @ sol[rows], without the channel-picked copy of sol:
    # the whitener gets zero columns for the forward's other rows. Computed as
    # (solᵀ Wᵀ)ᵀ so that the result is Fortran-ordered (solvers read columns)
    # without a second copy.
    gain, sol, sol_rows = _whiten_gain(sol, rows, whitener)

    n_orient = 1 if fixed else 3
    source_weighting = np.ones(gain.shape[1])
    # Column energies (no temporary of the gain's size): the depth prior's, and
    # the finiteness check of the forward (a NaN or Inf makes its column's one).
    column_energy = np.einsum("ij,ij->j", gain, gain)
    energy = column_energy.copy()  # the depth prior changes its copy
    if not np.isfinite(energy).all():
        check_finite(sol[sol_rows], "The forward solution",
                     "recompute the forward solution (NaN gains come from sensors or sources "
                     "outside the BEM surfaces, or a wrong head<->MRI transform).")
    if mne_depth:
        # Other depth options than mixed_norm's defaults: MNE's own depth prior.
        with mne.utils.use_log_level("ERROR"):
            picked = mne.pick_channels_forward(forward, ch_names, ordered=True, verbose=False)
            source_weighting *= mne.forward.compute_depth_prior(
                picked, info_picked, noise_cov=noise_cov, rank=rank, **depth_options)
    elif depth is not None:
        # compute_depth_prior(limit=None, limit_depth_chs='whiten', combine_xyz='fro'),
        # from the whitened gain.
        if n_orient == 3:
            energy = energy.reshape(-1, 3).sum(axis=1)
        energy[energy == 0.0] = np.min(energy[energy != 0.0])
        patch_areas = forward.get("patch_areas")
        if patch_areas is not None:
            energy /= patch_areas ** 2
        source_weighting *= np.repeat((1.0 / energy) ** depth, n_orient)
    if not fixed:
        source_weighting *= mne.forward.compute_orient_prior(forward, loose=loose,
                                                             verbose=False)
    np.sqrt(source_weighting, out=source_weighting)
    # Scale so that trace(G R Gᵀ) equals the number of non-zero noise eigenvalues.
    # ‖G diag(w)‖²_F = Σ_j energy_j w_j²: from the column energies, so the gain
    # is weighted and scaled in one pass (MNE: weight, norm, scale, three passes).
    scale = np.sqrt(rank_value / float(column_energy @ source_weighting ** 2))
    source_weighting *= scale
    gain *= source_weighting

    source_mask = None
    if weights is not None:
        gain, source_weighting, source_mask = _apply_prior_weights(
            forward, gain, source_weighting, weights, weights_min, n_orient)
        gain = np.asfortranarray(gain)

    op = SparseInverseOperator(
        gain=gain, whitener=whitener, ch_names=ch_names, info=info_picked, n_orient=n_orient,
        source_weighting=source_weighting, loose=min_loose, depth=depth, rank=rank_value,
        src=forward["src"], source_nn=forward["source_nn"], mri_head_t=forward["mri_head_t"],
        sensor_gain=sol, sensor_rows=sol_rows, source_mask=source_mask)
    # The forward's own BEM, when it names one: the reported sources' dipole fits.
    from .dipole_positions import forward_bem_path

    op.bem_path = forward_bem_path(forward)
    idx = [noise_cov["names"].index(c) for c in ch_names]
    op._noise_var = (noise_cov["data"][idx] if noise_cov["diag"]
                     else np.diag(noise_cov["data"])[idx]).copy()
    return op
