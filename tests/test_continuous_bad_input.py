"""Bad input to the continuous mode: one InputError naming the problem, before any work."""

import mne
import numpy as np
import pytest

from meeg_inverse import InputError
from meeg_inverse.continuous import localize_continuous


@pytest.fixture(scope="module")
def tiny_raw():
    """2 s of 4-channel EEG at 100 Hz (never solved: every case fails in the checks)."""
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 100.0, "eeg")
    return mne.io.RawArray(np.random.default_rng(0).standard_normal((4, 200)) * 1e-6, info,
                           verbose=False)


@pytest.mark.parametrize("kw, named", [
    (dict(window=True), "window"),          # a bool is not a number of seconds
    (dict(n_jobs=True), "n_jobs"),
    (dict(l_freq="1"), "l_freq"),           # was a numpy TypeError
    (dict(h_freq="40"), "h_freq"),
    (dict(tmin="0"), "tmin"),               # was a UFuncTypeError
    (dict(tmax=[1.0]), "tmax"),
    (dict(level="0.99"), "level"),          # was a TypeError
    (dict(noise_segment="0,1"), "noise_segment"),   # was "too many values to unpack"
    (dict(noise_segment=(0,)), "noise_segment"),
    (dict(noise_segment=("a", "b")), "noise_segment"),
    (dict(fname=3), "fname"),               # was a TypeError from pathlib
    (dict(penalty="nope"), "penalty"),      # was accepted silently (no window solved)
    (dict(penalty="weighted_l21"), "penalty"),  # needs weights the mode has no way to take
    (dict(tol="x"), "tol"),                 # was accepted silently
    (dict(tol=2.0), "tol"),
    (dict(max_time="x"), "max_time"),       # was accepted silently
    (dict(max_time=-1.0), "max_time"),
    (dict(warm_start="no"), "warm_start"),
    (dict(random_state="0"), "random_state"),
])
def test_wrong_types_get_one_clear_error(tiny_raw, kw, named):
    with pytest.raises(InputError, match=named) as info:
        localize_continuous(tiny_raw, None, None, **kw)
    assert info.value.fix  # names the fix, too


def test_recording_entirely_bad_is_one_clear_error(tiny_raw):
    raw = tiny_raw.copy()
    raw.set_annotations(mne.Annotations([0.0], [2.0], ["BAD_all"]))
    # Was "Fewer than 4 clean windows to measure the noise level on" (fix: "noise_segment").
    with pytest.raises(InputError, match="Every sample .* BAD_"):
        localize_continuous(raw, None, None)
    raw.set_annotations(mne.Annotations([0.5], [0.5], ["BAD_part"]))
    with pytest.raises(InputError, match=r"Every sample of \[0.600, 0.900\]"):
        localize_continuous(raw, None, None, tmin=0.6, tmax=0.9)


def test_noise_segment_bounds_use_the_end_of_the_recording(tiny_raw):
    from meeg_inverse.continuous_file import noise_cov_from_segment

    # 200 samples at 100 Hz last 2.00 s (the last sample is at 1.99 s): (0, 2) is inside.
    # It was refused with "[0.0, 2.0] is not ... inside the recording [0.0, 2.0]".
    cov = noise_cov_from_segment(tiny_raw, (0.0, 2.0))
    assert cov.data.shape == (4, 4)
    with pytest.raises(InputError, match=r"\[0.000, 2.000\]") as info:
        noise_cov_from_segment(tiny_raw, (0.0, 2.5))
    assert "0,2.000" in info.value.fix  # an example that fits this recording, not "0,20"
    short = tiny_raw.copy().crop(0, 0.5)
    with pytest.raises(InputError, match="too short") as info:
        noise_cov_from_segment(short, (0.0, 0.5))
    assert "--noise-cov" in info.value.fix


@pytest.mark.parametrize("options, message", [
    (["--window", "0"], "--window must be a positive"),  # said "window=0.1, step=0.05, chunk=10"
    (["--step", "-0.05"], "--step must be a positive"),
    (["--window", "0.1", "--step", "0.2"], "--step 0.2 is longer than --window 0.1"),
    (["--n-jobs", "0"], "--n-jobs must be"),               # said "n_jobs=1 (serial)"
    (["--n-jobs", "-2"], "--n-jobs must be"),
    (["--noise-segment", "0.8,0.2"], "STOP is not after START"),
])
def test_cli_messages_name_the_options(tiny_raw, tmp_path, capsys, options, message):
    from meeg_inverse.cli import main

    fname = tmp_path / "tiny_raw.fif"
    tiny_raw.save(fname, verbose=False)
    status = main(["localize", str(fname), "--continuous", "--out", str(tmp_path / "o"), "-q",
                   "--no-figures"] + options)
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_noise_segment_in_bad_annotations_is_one_clear_error(tiny_raw):
    from meeg_inverse.continuous_file import noise_cov_from_segment

    raw = tiny_raw.copy()
    raw.set_annotations(mne.Annotations([0.0], [1.5], ["BAD_move"]))
    # Was a crash (exit 1): MNE's "No samples found to compute the covariance matrix".
    with pytest.raises(InputError, match=r"Only 0.500 s of the noise segment") as info:
        noise_cov_from_segment(raw, (0.0, 2.0))
    assert "--noise-cov" in info.value.fix
    raw.set_annotations(mne.Annotations([0.0], [0.9], ["BAD_move"]))
    assert noise_cov_from_segment(raw, (0.0, 2.0)).nfree > 0  # 1.1 s clean: enough


def test_missing_empty_room_is_named_as_such(tmp_path):
    from meeg_inverse.io import noise_cov_from_empty_room

    # Said "The recording '...' does not exist", as if the main recording were missing.
    with pytest.raises(InputError, match="empty-room recording .* does not exist"):
        noise_cov_from_empty_room(tmp_path / "nope_raw.fif")


def test_output_file_in_a_missing_folder_fails_before_the_work(tiny_raw, tmp_path):
    # forward=None: the check must come before the operator is even built.
    with pytest.raises(InputError, match="folder of .* does not exist"):
        localize_continuous(tiny_raw, None, None, fname=tmp_path / "no" / "x.h5")


def test_window_fits_a_recording_of_exactly_its_length(tiny_raw):
    # 200 samples at 100 Hz last 2 s: a 2-s window fits (was refused: "longer than the
    # recording (1.990 s)"); 2.01 s does not, and a short tmin..tmax span is named as such.
    with pytest.raises(InputError, match="window") as info:
        localize_continuous(tiny_raw, None, None, window=2.01, step=0.05)
    assert "(2.000 s)" in str(info.value)
    with pytest.raises(InputError, match=r"longer than the span tmin..tmax \(0.060 s\)"):
        localize_continuous(tiny_raw, None, None, tmin=0.5, tmax=0.55)
    with pytest.raises(InputError, match="forward must be an mne.Forward"):  # past the checks
        localize_continuous(tiny_raw, None, None, window=2.0, step=0.05)


def test_very_low_high_pass_is_refused_before_any_work(tiny_raw):
    """A 0.01-Hz high-pass needs a ~330-s filter: every chunk would read that much on each side
    (the memory bound broke); refused before the forward is even looked at."""
    with pytest.raises(InputError, match="high-pass needs a") as info:
        localize_continuous(tiny_raw, None, None, l_freq=0.01)
    assert "0.06 Hz" in info.value.fix
