"""Loading through MNE on the real 'sample' raw recording: events, epochs, evoked, covariance.

The shared raw file is 1 s long and its stim channel carries no event, so six short pulses
are written into its stim channel (the MEG/EEG data stay the real ones).
"""

import mne
import numpy as np
import pytest

from meeg_inverse.errors import InputError
from meeg_inverse.pipeline import load_data, load_noise_cov

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 1 s: few baseline samples


@pytest.fixture(scope="module")
def raw_with_pulses(sample_paths):
    raw = mne.io.read_raw_fif(sample_paths["raw"], verbose=False).load_data()
    stim = raw.ch_names.index("STI 014")
    raw._data[mne.pick_types(raw.info, stim=True)] = 0.0
    for k, start in enumerate(range(60, 280, 40)):  # codes 1, 2, 1, 2, 1, 2
        raw._data[stim, start:start + 3] = 1 + k % 2
    return raw


def _load(recording, **kwargs):
    return load_data(recording, **{"epoch_tmin": -0.05, "epoch_tmax": 0.1, **kwargs})


def test_raw_fif_events_from_the_stim_channel(raw_with_pulses):
    loaded = _load(raw_with_pulses, condition="2")
    assert loaded.raw is raw_with_pulses
    assert set(loaded.epochs.event_id) == {"2"} and len(loaded.epochs) == 3
    assert loaded.evoked.comment == "2" and loaded.evoked.nave == 3
    assert loaded.evoked.times[0] == pytest.approx(-0.05, abs=1 / raw_with_pulses.info["sfreq"])
    # Baseline-corrected epochs: the pre-stimulus mean of every MEG channel is zero.
    meg = mne.pick_types(loaded.evoked.info, meg=True)
    base = loaded.evoked.data[meg][:, loaded.evoked.times <= 0].mean(axis=1)
    assert np.abs(base).max() < 1e-3 * np.abs(loaded.evoked.data[meg]).max()
    both = _load(raw_with_pulses)
    assert set(both.conditions) == {"1", "2"} and len(both.epochs) == 6


def test_epochs_and_evoked_files_are_read_directly(raw_with_pulses, tmp_path):
    from_raw = _load(raw_with_pulses)
    epo = tmp_path / "pulses-epo.fif"
    from_raw.epochs.save(epo, verbose=False)
    from_file = load_data(epo, condition="2")
    assert from_file.raw is None and len(from_file.epochs) == 6
    assert from_file.evoked.nave == 3
    expected = _load(raw_with_pulses, condition="2").evoked.data
    scale = np.abs(expected).max(axis=1, keepdims=True) + 1e-30  # epochs files are float32
    np.testing.assert_allclose(from_file.evoked.data / scale, expected / scale, atol=1e-4)
    ave = tmp_path / "pulses-ave.fif"
    mne.write_evokeds(ave, [from_raw.epochs[c].average() for c in ("1", "2")], verbose=False)
    evoked = load_data(ave, condition="1").evoked
    assert evoked.comment == "1" and evoked.nave == 3
    with pytest.raises(InputError, match="Condition"):
        load_data(ave, condition="7")


def test_peak_to_peak_rejection(raw_with_pulses):
    assert len(_load(raw_with_pulses, reject=dict(grad=1.0, mag=1.0)).epochs) == 6
    with pytest.raises(InputError, match="rejected") as exc:
        _load(raw_with_pulses, reject=dict(grad=1e-15))
    assert "--reject" in str(exc.value)


def test_noise_cov_from_file_baseline_or_empty_room(raw_with_pulses, sample_paths, tmp_path):
    loaded = _load(raw_with_pulses)
    from_file = load_noise_cov(sample_paths["cov"], loaded)
    assert isinstance(from_file, mne.Covariance) and len(from_file.ch_names) == 366
    # EEG only below, to keep the test short.
    eeg = raw_with_pulses.copy().pick(["eeg", "stim"])
    loaded = _load(eeg)
    baseline = load_noise_cov(None, loaded)
    assert isinstance(baseline, mne.Covariance)
    assert baseline.ch_names == mne.pick_info(
        loaded.evoked.info, mne.pick_types(loaded.evoked.info, eeg=True)).ch_names
    # The baseline covariance comes from the pre-stimulus samples of the 6 epochs only.
    n_pre = int(np.sum(loaded.epochs.times <= 0))
    assert baseline["nfree"] == pytest.approx(6 * n_pre - 1, abs=6)
    # An empty room records MEG sensors only (magnetometers here, to keep it short);
    # for EEG-only data it is refused (tests/test_bad_input_table.py).
    mag = raw_with_pulses.copy().pick(["mag", "stim"])
    loaded = _load(mag)
    baseline = load_noise_cov(None, loaded)
    empty_room_file = tmp_path / "empty_room_raw.fif"
    mag.save(empty_room_file, verbose=False)
    empty_room = load_noise_cov(None, loaded, empty_room=empty_room_file)
    assert isinstance(empty_room, mne.Covariance)
    assert empty_room.ch_names == baseline.ch_names
    assert empty_room["nfree"] > baseline["nfree"]  # the whole 1 s recording
    with pytest.raises(InputError, match="not a raw recording"):
        load_noise_cov(None, loaded, empty_room=sample_paths["evoked"])
    with pytest.raises(InputError, match="no MEG channel"):
        load_noise_cov(None, _load(eeg), empty_room=empty_room_file)


@pytest.mark.parametrize("spec", [dict(subject="s"), dict(subject="s", trans="t-trans.fif"),
                                  dict(subject="s", subjects_dir="d")])
def test_subject_forward_needs_the_subjects_folder_and_the_transform(spec):
    """load_forward (the API's, and a cohort's) refuses as the command line does
    (_choices.check_subject_forward), before building anything."""
    from meeg_inverse._choices import check_forward_spec
    from meeg_inverse.pipeline import ForwardSpec, load_forward

    info = mne.create_info(["EEG 001"], 100.0, "eeg")
    for check in (lambda s: load_forward(s, info), check_forward_spec):
        with pytest.raises(InputError) as exc:
            check(ForwardSpec(**spec))
        assert str(exc.value).startswith("Building a forward model for subject 's' needs the "
                                         "subjects folder and the head↔MRI transform.")
        assert "give --subjects-dir and --trans" in str(exc.value)
