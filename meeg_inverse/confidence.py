"""A confidence for every reported source: how often the data support it again.

The reported sources are clusters of neighbouring grid sources
(:mod:`meeg_inverse.clusters`). Each one's confidence is its *selection
frequency* in stability selection (Meinshausen & Bühlmann 2010, JRSS-B 72(4)):
half of the whitened channels — the observations of the linear model — are
drawn without replacement, the same penalty is solved at the same fraction of
λ_max, and the question a user asks of a reported source is asked again: is
there a source within :data:`~meeg_inverse.clusters.MATCH_MM` of it, and does
it stand above what noise alone produces (the L2,1 fit at the quantile
universal threshold λ_QUT, :func:`meeg_inverse.rules.quantile_universal_threshold`)?
and, where the position is a sub-grid fit (:mod:`meeg_inverse.subgrid`), does
the same fit on those channels land within
:data:`~meeg_inverse.subgrid.STABLE_MM` of it?
When the single trials are given they are resampled with replacement as well
(the nonparametric bootstrap). The computation is
:func:`meeg_inverse.clusters.cluster_confidence`.

Why channels and not noise redraws alone: a source made by forward-model
mismatch — the companions of a strong source that does not sit on the grid —
is in the signal, so fresh noise around the fit finds it again every time
(the earlier redraw confidence rated 65 % of such false sources ≥ 0.9 on the
off-grid simulations, docs/validation.md); a different half of the sensors
sees a different mismatch, and such companions come and go.
"""

__all__ = ["CONFIDENT", "DEFAULT_REDRAWS"]

#: Resamples by default: a frequency to ±0.11 (binomial s.d. at 0.5).
DEFAULT_REDRAWS = 20
#: Below this confidence a source is drawn faded and flagged as uncertain.
CONFIDENT = 0.5
