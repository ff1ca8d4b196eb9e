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

