"""What a continuous run tells the researcher: window counts, warnings, figure titles.

Cases found by a new user on the shared recordings (newuser-21):

- the sample's 1-s Maxwell-filtered recording with ``--noise-segment 0,1``: 18 windows
  above the threshold, BIC pruning kept no source in any — the console said
  "18 with sources", the summary had no warning and the figures were left out silently;
- EEGLAB's recording (no high-pass, 0 Hz): without ``--l-freq`` the channels' offsets
  stay in every window (the chunks' noise level 5x the segment's), 1 source in 25 s
  against 6 with ``--l-freq 1 --h-freq 40`` — no warning said so;
- the peak map (each source's largest amplitude over the recording) was titled
  "... — t = 0.0 ms".
"""

import json

import mne
import numpy as np
import pytest

from meeg_inverse.cli import main
from meeg_inverse.continuous_file import no_source_warning, unfiltered_warning


def test_sss_recording_solved_windows_without_sources_are_not_said_to_have_sources(
        sample_paths, sample_fwd_file, tmp_path, capsys):
    out = tmp_path / "res"
    status = main(["localize", str(sample_paths["raw"]), "--continuous", "--noise-segment",
                   "0,1", "--forward", str(sample_fwd_file), "--out", str(out)])
    assert status == 0
    captured = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    # The recording's numbers: 20 windows, 18 above the threshold, none kept a source.
    assert (summary["n_windows"], summary["n_windows_solved"]) == (20, 18)
    assert summary["n_windows_with_sources"] == 0
    assert summary["sources"] == [] and summary["reported_sources"] == []
    assert "18 above the threshold (0 with a source after BIC pruning)" in captured.out
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
