"""A second detector for the automatic rules' reported sources: γ-MAP candidates.

The support rules (:mod:`meeg_inverse.rules`) pick one support on one penalty's
path; sparse Bayesian learning (γ-MAP, Wipf & Nagarajan 2009, NeuroImage 44)
reaches its support by another route (type-II likelihood, no λ), and on the
off-grid simulations of docs/validation.md each finds true sources the other
misses. The reporting (:func:`meeg_inverse.subgrid.refine_positions`: merge,
prune, twins) is what keeps false ones out, so its candidates can come from
both: :func:`sbl_candidates` gives γ-MAP's clusters that the path's estimate
does not already hold (docs/validation.md, amendment 6).
"""

import numpy as np

from .clusters import SourceCluster, cluster_sources, minor_clusters

__all__ = ["sbl_candidates"]


def sbl_candidates(problem, data, taken, *, n_times=None):
    """γ-MAP's reported-source candidates outside the sources already taken.

    Parameters
    ----------
    problem : InverseProblem
        The whitened problem (gain, source weighting, noise estimate).
    data : ndarray, shape (n_channels, n_samples)
        Whitened data, or the time-SVD components of a longer recording.
    taken : set of int
        Forward source indices already in the estimate (left out of the candidates).
    n_times : int | None
        Time samples ``data`` stands for (None: ``data.shape[1]``).

    Returns
    -------
    clusters : list of SourceCluster
        γ-MAP's clusters (:func:`meeg_inverse.clusters.cluster_sources`, minor
        ones dropped: :func:`~meeg_inverse.clusters.minor_clusters`), strongest
        first, each without the taken members (a cluster whose members are all
        taken is left out); the centroid stays γ-MAP's.
    coef : ndarray, shape (n_rows, n_samples)
        γ-MAP's posterior mean (all rows; zero off its support), for ``data``.

    Notes
    -----
    γ-MAP's noise variance is the noise level measured for the support rules
    (``problem.noise_estimate.variance``, whitened units). Its updates average
    over time samples: time-SVD components are scaled so that their second
    moment is that of the ``n_times`` samples, and the mean mapped back.
    """
    from .solve import _source_amplitudes
    from .solvers.sbl import gamma_map

    n_times = data.shape[1] if n_times is None else int(n_times)
    scale = np.sqrt(data.shape[1] / n_times)
    res = gamma_map(problem.gain, data * scale, noise_var=float(problem.noise_estimate.variance),
                    n_orient=problem.n_orient)
    coef = np.asarray(res.coef) / scale
    active = np.asarray(res.active_set, bool)
    if not active.any():
        return [], coef
    sources, amplitudes = _source_amplitudes(problem, active, coef[active])
    positions, hemis = problem.source_positions(sources)
    kept, _ = minor_clusters(cluster_sources(sources, positions, amplitudes, hemis))
    out = []
    for c in kept:
        free = np.array([int(m) not in taken for m in c.members])
        if not free.any():
            continue
        energy = c.weights[free] * c.amplitude ** 2
        out.append(SourceCluster(members=c.members[free], weights=energy / energy.sum(),
                                 centroid=c.centroid, amplitude=float(np.sqrt(energy.sum())),
                                 hemi=c.hemi))
    return out, coef
