"""What a continuous run tells the researcher: window counts, warnings, figure titles.

Cases found by a new user on the shared recordings (newuser-21):

- the sample's 1-s Maxwell-filtered recording with ``--noise-segment 0,1``: 18 windows
  above the threshold, BIC pruning kept no source in any — the console said
  "18 with sources", the summary had no warning and the figures were left out silently
  (now that the noise segment is measured as the windows are, no window of the segment
  itself is above its noise-only threshold: ``--alpha 0.5`` solves them all);
- EEGLAB's recording (no high-pass, 0 Hz): without ``--l-freq`` the channels' offsets
  stay in every window (the chunks' noise level 5x the segment's), 1 source in 25 s
  against 6 with ``--l-freq 1 --h-freq 40`` — no warning said so;
- the peak map (each source's largest amplitude over the recording) was titled
  "... — t = 0.0 ms".
"""

import csv
import json
import warnings

import mne
import numpy as np
import pytest
from _continuous_data import noise_only_eeg

from meeg_inverse.cli import main
from meeg_inverse.continuous import localize_continuous, read_continuous
from meeg_inverse.continuous_messages import no_source_warning, unfiltered_warning


def test_sss_recording_solved_windows_without_sources_are_not_said_to_have_sources(
        sample_paths, sample_fwd_file, tmp_path, capsys):
    out = tmp_path / "res"
    status = main(["localize", str(sample_paths["raw"]), "--continuous", "--noise-segment",
                   "0,1", "--alpha", "0.5", "--forward", str(sample_fwd_file), "--out",
                   str(out)])
    assert status == 0
    captured = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    # The recording's numbers: 20 windows, all above half their λ_max, none kept a source.
    assert (summary["n_windows"], summary["n_windows_solved"]) == (20, 20)
    assert summary["n_windows_with_sources"] == 0
    assert summary["sources"] == [] and summary["reported_sources"] == []
    assert "20 above the threshold (0 with a source after BIC pruning)" in captured.out
    assert "with sources" not in captured.out
    # One warning, printed and in summary.json, that says why there are no figures.
    codes = [w["code"] for w in summary["warnings"]]
    assert codes == ["no_source"]  # the recording is high-passed at 0.1 Hz: no drift warning
    assert "BIC pruning kept no source" in captured.err
    assert "no timeline, map or viewer was drawn" in captured.err
    assert not (out / "timeline.png").exists()


def test_no_source_warning_says_which_case():
    below = no_source_warning({"n_windows": 20, "n_windows_solved": 0}, figures=False)
    assert "none of the 20 windows was above the noise-only threshold." in below["message"]
    pruned = no_source_warning({"n_windows": 20, "n_windows_solved": 18}, figures=True)
    assert "18 of 20 windows were above the threshold" in pruned["message"]
    # a lower threshold would not help there (alpha=0.5 on that recording: 20 of 20
    # solved, none kept a source): the noise reference is what to check
    assert "--alpha" not in pruned["fix"] and "--noise-segment without the activity" in \
        pruned["fix"]
    assert "--alpha 0.5" in below["fix"]


def test_unfiltered_recording_is_warned_about(eeglab_dir):
    raw = mne.io.read_raw_eeglab(eeglab_dir / "test_raw.set", verbose=False)
    assert raw.info["highpass"] == 0
    warning = unfiltered_warning(raw, l_freq=None)
    assert warning["code"] == "no_high_pass" and "--l-freq 1" in warning["fix"]
    assert unfiltered_warning(raw, l_freq=1.0) is None
    with raw.info._unlock():
        raw.info["highpass"] = 0.1  # filtered when recorded
    assert unfiltered_warning(raw, l_freq=None) is None


@pytest.mark.parametrize("show_time,expected", [(True, "Peaks — t = "), (False, "Peaks")])
def test_peak_map_title_has_no_time(sample_evoked, sample_forward, tmp_path, monkeypatch,
                                    show_time, expected):
    import matplotlib.figure

    from meeg_inverse.viz import plot_source_map

    titles = []
    original = matplotlib.figure.Figure.text

    def record(self, x, y, s, *args, **kw):
        titles.append(s)
        return original(self, x, y, s, *args, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "text", record)
    src = sample_forward["src"]
    vertices = [src[0]["vertno"][:1], src[1]["vertno"][:0]]
    stc = mne.SourceEstimate(np.array([[20e-9]]), vertices, tmin=0.0, tstep=1.0)
    plot_source_map(stc, src, tmp_path / "map.png", trans=sample_forward["mri_head_t"],
                    title="Peaks", show_time=show_time, backend="matplotlib")
    heading = [t for t in titles if t.startswith("Peaks")]
    assert len(heading) == 1 and heading[0].startswith(expected)
    assert show_time or heading[0] == expected


def test_noise_segment_is_below_its_own_threshold_and_few_samples_are_said_once(
        sample_paths, sample_fwd_file, tmp_path, capsys):
    """The sample's whole 1-s recording is its noise segment. Measured as the windows are,
    none of its windows is above its noise-only threshold (18 of 20 were when the segment
    was mean-subtracted and the windows not: their noise_ratio was 2.90). Its covariance
    has 300 samples for 366 channels: MNE's warning reaches the console, once (it was
    silenced)."""
    out = tmp_path / "res"
    status = main(["localize", str(sample_paths["raw"]), "--continuous", "--noise-segment",
                   "0,1", "--forward", str(sample_fwd_file), "--out", str(out), "-q"])
    assert status == 0
    err = capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_windows"], summary["n_windows_solved"]) == (20, 0)
    with open(out / "windows.csv") as f:
        ratios = [float(row["noise_ratio"]) for row in csv.DictReader(f)]
    assert ratios == [1.0] * 20
    assert err.count("Too few samples") == 1
    assert "meeg-inverse: warning: Too few samples (required 1835 but got 300 for 366 " \
           "channels)" in err


def test_unfiltered_recording_cli_warns_once_and_notes_the_rounded_windows(
        eeglab_dir, tmp_path, capsys):
    """EEGLAB's recording (0-Hz high-pass, 128 Hz): the no_high_pass warning now comes from
    localize_continuous (the API's path), printed once and in summary.json; 100/50 ms are
    13/6 samples there: the note says the 101.6/46.88 ms used."""
    out = tmp_path / "eeg"
    status = main(["localize", str(eeglab_dir / "test_raw.set"), "--continuous",
                   "--montage", str(eeglab_dir / "test_chans.locs"), "--montage-match",
                   "order", "--tmax", "4", "--noise-segment", "0,1", "--out", str(out),
                   "--no-figures"])
    assert status == 0
    err = capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert err.count("not high-pass filtered") == 1
    assert [w["code"] for w in summary["warnings"]] == ["no_high_pass"]
    note = ("windows of 13 samples (101.6 ms; 100 ms asked) and steps of 6 samples "
            "(46.88 ms; 50 ms asked) at 128 Hz")
    assert err.count(note) == 1 and any(n.startswith(note) for n in summary["notes"])
    assert (summary["window_used_s"], summary["step_used_s"]) == (13 / 128, 6 / 128)
    assert (summary["params"]["window"], summary["params"]["step"]) == (0.1, 0.05)
    assert err.count("Too few samples (required 155 but got 130 for 30 channels)") == 1


def test_api_warns_when_not_high_passed(sample_evoked, sample_forward, sample_cov, tmp_path):
    """localize_continuous gave no warning where the command line did: one path now."""
    raw, cov = noise_only_eeg(sample_evoked, sample_cov, seconds=3.0)
    expected = unfiltered_warning(raw, l_freq=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = localize_continuous(raw, sample_forward, cov, fname=tmp_path / "r.h5")
    drift = [w for w in caught if "not high-pass filtered" in str(w.message)]
    assert len(drift) == 1 and drift[0].category is RuntimeWarning
    assert str(drift[0].message) == f"{expected['message']} Fix: {expected['fix']}"
    assert drift[0].filename == __file__  # it names the caller's line
    assert result.warnings == [expected] and result.summary()["warnings"] == [expected]
    back = read_continuous(tmp_path / "r.h5", sample_forward, cov, raw.info)
    assert back.warnings == [expected]
    # High-passed when recorded, or by l_freq: no warning.
    for raw_hp, l_freq in ((noise_only_eeg(sample_evoked, sample_cov, seconds=3.0,
                                           highpass=0.1)[0], None), (raw, 1.0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = localize_continuous(raw_hp, sample_forward, cov, l_freq=l_freq)
        assert not [w for w in caught if "high-pass" in str(w.message)]
        assert result.warnings == [] and result.summary()["warnings"] == []
