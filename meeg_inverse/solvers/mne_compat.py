"""Build exactly MNE's ``mixed_norm`` problem (for tests and benchmarks).

This reproduces the preparation done in ``mne.inverse_sparse.mixed_norm``
(``_prepare_gain``, whitening, optional time PCA, gain divided by
``0.01·alpha_max`` so that α is a percentage of α_max) so that our solver and
``mne.inverse_sparse.mxne_optim.mixed_norm_solver`` see the same ``M, G, α``.
"""

import numpy as np


def mne_mixed_norm_problem(forward, evoked, noise_cov, loose=1.0, depth=0.8,
                           time_pca=True, rank=None):
    """Whitened, scaled gain and data as in ``mne.inverse_sparse.mixed_norm``.

    Parameters
    ----------
    forward : mne.Forward
    evoked : mne.Evoked
    noise_cov : mne.Covariance
    loose : float
        1.0 free orientation, 0 fixed (forward must then be fixed already).
    depth : float | None
    time_pca : bool
        Replace the data ``M`` by ``U·s`` of its SVD (MNE's default).
    rank : None | dict
        Passed to MNE's whitener.

    Returns
    -------
    gain : array, shape (n_channels, n_sources * n_orient), Fortran order
        Divided by ``0.01·alpha_max``, so α = 100 gives the empty solution.
    data : array, shape (n_channels, n_times or rank)
    n_orient : int
    """
    import mne
    from mne.inverse_sparse.mxne_inverse import _prepare_gain

    _, gain, gain_info, whitener, _, _ = _prepare_gain(
        forward, evoked.info, noise_cov, pca=True, depth=depth, loose=loose,
        rank=rank, weights=None, weights_min=0.0)
    sel = [evoked.ch_names.index(name) for name in gain_info["ch_names"]]
    data = whitener @ evoked.data[sel]
    if time_pca:
        u, s, _ = np.linalg.svd(data, full_matrices=False)
        data = u * s
    n_orient = 1 if mne.forward.is_fixed_orient(forward) else 3
    corr = gain.T @ data
    a_max = np.sqrt((corr.reshape(-1, n_orient * data.shape[1]) ** 2).sum(1).max())
    gain /= 0.01 * a_max
    return np.asfortranarray(gain), np.ascontiguousarray(data), n_orient
