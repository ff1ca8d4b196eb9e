"""The confidence's channel-subsample schemes (docs/studies/eeg_confidence_preregistration.md)."""

import pytest

from meeg_inverse.clusters import subsample_rows
from meeg_inverse.subgrid import _placeable


def test_half_is_today():
    for n in (29, 30, 59, 364, 366):
        assert subsample_rows(n, 3) == n // 2


def test_quarter_leaves_a_quarter_out():
    assert subsample_rows(29, 1, "quarter") == 22
    assert subsample_rows(366, 5, "quarter") == 366 - 91


@pytest.mark.parametrize("n", [12, 20, 29, 59, 366])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_placeable_keeps_every_source_placeable(n, k):
    keep = subsample_rows(n, k, "placeable")
    assert 1 <= n - keep <= max(1, n // 2)
    if _placeable(n - 1, k):  # possible at all: the subsample places every source
        assert _placeable(keep, k)
    if _placeable(n // 2, k):  # as many left out as the half scheme where that places them
        assert keep == n - n // 2


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        subsample_rows(29, 1, "third")


def test_default_scheme_by_channel_count():
    """Pre-registered rule passed by 'quarter' (docs/studies/eeg_confidence_results.md):
    the default below 64 channels; from 64 (MEG, the 64-electrode demo) today's half."""
    from meeg_inverse.clusters import QUARTER_BELOW_CHANNELS, default_confidence_scheme

    assert QUARTER_BELOW_CHANNELS == 64
    assert default_confidence_scheme(30) == default_confidence_scheme(63) == "quarter"
    assert default_confidence_scheme(64) == default_confidence_scheme(366) == "half"


@pytest.mark.parametrize("n_channels, expected", [(30, "quarter"), (None, "half")])
def test_solve_uses_the_channel_counts_scheme(problem, monkeypatch, n_channels, expected):
    """solve_inverse's confidence: the scheme of its channel count unless one is given
    (the sample problem, its channel list cut to 30 for the low-channel case: only the
    count decides)."""
    import dataclasses

    import meeg_inverse.clusters as clusters
    from meeg_inverse.solve import solve_inverse

    seen = []
    original = clusters.cluster_confidence

    def spy(*args, scheme="half", **kwargs):
        seen.append(scheme)
        return original(*args, scheme=scheme, **kwargs)

    monkeypatch.setattr(clusters, "cluster_confidence", spy)
    if n_channels is not None:
        problem = dataclasses.replace(problem, ch_names=problem.ch_names[:n_channels])
    kw = dict(alpha=0.5, penalty="l21", confidence=2, head_model=None, time_pca=True)
    sol = solve_inverse(problem, **kw)
    assert sol.clusters and seen == [expected] and sol.confidence_scheme == expected
    solve_inverse(problem, confidence_scheme="placeable", **kw)
    assert seen[-1] == "placeable"
