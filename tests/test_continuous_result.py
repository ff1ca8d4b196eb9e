"""What a ContinuousResult gives back: the estimate of a run without sources, the window
and step actually used."""

import io

import mne
import numpy as np
import pytest
from _continuous_data import noise_only_eeg

from meeg_inverse.continuous import localize_continuous, read_continuous
from meeg_inverse.progress import Progress


@pytest.fixture(scope="module")
def empty_run(sample_evoked, sample_forward, sample_cov, tmp_path_factory):
    """A noise-only recording in which no window keeps a source, written to a file."""
    raw, cov = noise_only_eeg(sample_evoked, sample_cov, seconds=3.0, offset=0.0,
                              highpass=0.1)
    fname = tmp_path_factory.mktemp("empty") / "r.h5"
    result = localize_continuous(raw, sample_forward, cov, fname=fname)
    return raw, cov, result


def test_stc_without_sources_is_an_empty_estimate_mne_reads(empty_run, sample_forward,
                                                            tmp_path):
    """``stc`` raised an InputError when no window had a source; it is now an estimate
    without sources, as mne.inverse_sparse.mixed_norm returns when no dipole is active."""
    raw, cov, result = empty_run
    assert result.summary()["n_windows_with_sources"] == 0
    for res in (result, read_continuous(result.fname, sample_forward, cov, raw.info)):
        stc = res.stc
        assert isinstance(stc, mne.SourceEstimate)
        assert stc.data.shape == (0, len(raw.times))
        assert [len(v) for v in stc.vertices] == [0, 0]
        assert stc.tmin == raw.times[0] and stc.tstep == pytest.approx(1 / raw.info["sfreq"])
        assert stc.subject == sample_forward["src"][0]["subject_his_id"]
    # The viewer's and the map's estimates, likewise (they raised too).
    assert result.binned_stc(n_bins=10).data.shape == (0, 10)
    assert result.peak_stc().data.shape == (0, 1)
    stc.save(tmp_path / "empty-stc.h5", verbose=False)
    back = mne.read_source_estimate(tmp_path / "empty-stc.h5")
    assert back.data.shape == (0, len(raw.times)) and back.times[-1] == pytest.approx(
        stc.times[-1])


@pytest.mark.parametrize("sfreq, window_n, step_n, note", [
    (128.0, 13, 6, "windows of 13 samples (101.6 ms; 100 ms asked) and steps of 6 samples "
                   "(46.88 ms; 50 ms asked) at 128 Hz"),
    (200.0, 20, 10, None),
])
def test_window_and_step_used_are_reported(sample_evoked, sample_forward, sample_cov, sfreq,
                                           window_n, step_n, note):
    """100-ms windows and 50-ms steps are 13 and 6 samples at 128 Hz: the result, its
    summary and the console say what was used (the summary said only what was asked)."""
    raw, cov = noise_only_eeg(sample_evoked, sample_cov, sfreq=sfreq, seconds=2.0,
                              highpass=0.1)
    console = io.StringIO()
    result = localize_continuous(raw, sample_forward, cov, window=0.1, step=0.05,
                                 progress=Progress(stream=console))
    assert (result.window_used, result.step_used) == (window_n / sfreq, step_n / sfreq)
    summary = result.summary()
    assert (summary["window_used_s"], summary["step_used_s"]) == (window_n / sfreq,
                                                                   step_n / sfreq)
    assert (summary["params"]["window"], summary["params"]["step"]) == (0.1, 0.05)
    starts = np.asarray(result.windows["start"])
    np.testing.assert_allclose(np.diff(starts)[:-1], step_n / sfreq)  # the last is moved in
    np.testing.assert_allclose(np.asarray(result.windows["stop"]) - starts, window_n / sfreq)
    if note is None:
        assert summary["notes"] == [] and "note:" not in console.getvalue()
    else:
        assert len(summary["notes"]) == 1 and summary["notes"][0].startswith(note)
        assert console.getvalue().count(f"[meeg-inverse] note: {note}") == 1
