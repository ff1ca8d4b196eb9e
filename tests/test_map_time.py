"""The one rule for the time a source map is drawn at (``viz._utils.map_time``)."""

import numpy as np
import pytest

mne = pytest.importorskip("mne")

from meeg_inverse.viz._utils import GRID_PEAK_NOTE, map_time, pick_time_index  # noqa: E402


@pytest.fixture
def stc():
    """Grid peak (40 nA·m) at the window's last sample; a weaker source peaks at 90 ms."""
    times = np.arange(0.05, 0.1501, 0.005)
    data = np.zeros((2, times.size))
    data[0, -1] = 40e-9
    data[1] = 30e-9 * np.exp(-0.5 * ((times - 0.09) / 0.01) ** 2)
    return mne.SourceEstimate(data, [np.array([1]), np.array([2])], times[0], 0.005)


REPORTED = [{"source": 1, "label": "superiortemporal-rh", "hemisphere": "rh",
             "peak_time_s": 0.09},
            {"source": 2, "label": "bankssts-lh", "hemisphere": "lh", "peak_time_s": 0.15}]


def test_strongest_reported_source_sets_the_time(stc):
    when = map_time(stc, REPORTED)
    assert when.time == pytest.approx(0.09)
    assert stc.times[when.index] == pytest.approx(0.09)
    assert when.label == "t = 90.0 ms, peak of source 1 (superiortemporal-rh)"
    assert when.caption == "Source map at t = 90.0 ms, peak of source 1 (superiortemporal-rh)"
    assert pick_time_index(stc, reported=REPORTED) == when.index


def test_without_reported_sources_the_largest_grid_amplitude(stc):
    for reported in (None, [], [{"source": 1, "hemisphere": "lh"}]):  # continuous: no time
        when = map_time(stc, reported)
        assert when.time == pytest.approx(0.15) and when.index == stc.times.size - 1
        assert when.note == GRID_PEAK_NOTE
    assert pick_time_index(stc) == stc.times.size - 1  # as before, without a summary


def test_a_time_asked_for_wins_and_is_not_explained(stc):
    when = map_time(stc, REPORTED, time=0.121)
    assert when.time == pytest.approx(0.12) and when.label == "t = 120.0 ms"


def test_unnamed_source_named_by_its_hemisphere(stc):
    when = map_time(stc, [{"source": 1, "label": None, "hemisphere": "lh",
                           "peak_time_s": 0.1}])
    assert when.label == "t = 100.0 ms, peak of source 1 (lh)"
