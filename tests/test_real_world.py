"""Situations from users' recordings (issue 18), each with the right behaviour.

Rebuilt on the shared sample data: EEG re-referenced to linked mastoids, Maxwell-
filtered MEG with the covariance of unprocessed data, amplifier channel names and
EOG leads typed as EEG, epochs that start at the stimulus, many-source estimates,
and the Python entry points' options.
"""

import json
import warnings

import mne
import numpy as np
import pytest

from meeg_inverse import SparseInverse, localize_epochs, localize_raw, sparse_inverse
from meeg_inverse.cli import main
from meeg_inverse.errors import InputError

MASTOIDS = ["EEG 017", "EEG 024"]  # the sample cap's electrodes nearest the mastoids


@pytest.fixture(scope="module")
def fixed_forward(sample_forward):
    return mne.convert_forward_solution(sample_forward, surf_ori=True, force_fixed=True,
                                        use_cps=True, verbose=False)


@pytest.fixture(scope="module")
def simulated_eeg(sample_evoked, sample_cov, fixed_forward):
    """60-channel EEG epochs of one cortical source (30 nA·m at 100 ms) in real noise."""
    info = sample_evoked.copy().pick("eeg").info.copy()
    with info._unlock():
        info["projs"] = []  # as recorded: no reference projector
    picks = [fixed_forward["sol"]["row_names"].index(c) for c in info["ch_names"]]
    gain = fixed_forward["sol"]["data"][picks]
    source = 100
    times = np.arange(-0.1, 0.3, 1.0 / info["sfreq"])
    amplitude = 30e-9 * np.exp(-(((times - 0.1) / 0.03) ** 2))
    cov = mne.pick_channels_cov(sample_cov, info["ch_names"], ordered=True, verbose=False)
    eigval, eigvec = np.linalg.eigh(cov.data)
    colour = eigvec * np.sqrt(np.maximum(eigval, 0))
    rng = np.random.default_rng(0)
    trials = np.array([gain[:, [source]] * amplitude
                       + colour @ rng.standard_normal((len(picks), len(times)))
                       for _ in range(50)])
    epochs = mne.EpochsArray(trials, info, tmin=times[0], baseline=(None, 0), verbose=False)
    return epochs, fixed_forward["source_rr"][source]


def _peak_error_mm(stc, forward, true_rr):
    src = forward["src"]
    offsets = np.cumsum([0] + [len(s["vertno"]) for s in src])
    rows = np.concatenate([offsets[h] + np.searchsorted(s["vertno"], v)
                           for h, (s, v) in enumerate(zip(src, stc.vertices))])
    strongest = rows[np.argmax(np.abs(stc.data).max(axis=1))]
    return 1e3 * np.linalg.norm(forward["source_rr"][strongest] - true_rr)


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


# ------------------------------------------------------------ 2. EEG reference
def test_linked_mastoid_reference_gives_the_average_reference_result_everywhere(
        simulated_eeg, sample_forward):
    epochs, true_rr = simulated_eeg
    mastoid = epochs.copy().set_eeg_reference(MASTOIDS, verbose=False)
    average = epochs.copy().set_eeg_reference("average", projection=True, verbose=False)
    assert mastoid.info["custom_ref_applied"]
    # Covariances estimated as users do, from each version's own baseline (empirical:
    # shrinkage toward the identity is not the same in two references).
    cov_mastoid = mne.compute_covariance(mastoid, tmax=0, verbose=False)
    cov_average = mne.compute_covariance(average, tmax=0, verbose=False)
    kwargs = dict(alpha=50, loose="auto", tol=1e-8)

    reference = _quiet(sparse_inverse, average.average().crop(0.05, 0.15), sample_forward,
                       cov_average, **kwargs)
    assert _peak_error_mm(reference, sample_forward, true_rr) <= 10

    def same(stc):
        for a, b in zip(stc.vertices, reference.vertices):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(stc.data, reference.data, atol=1e-4 * reference.data.max())

    evoked_mastoid = mastoid.average().crop(0.05, 0.15)
    same(_quiet(sparse_inverse, evoked_mastoid, sample_forward, cov_mastoid, **kwargs))
    est = _quiet(SparseInverse(**kwargs).fit, evoked_mastoid, sample_forward, cov_mastoid)
    same(est.stc_)
    same(_quiet(localize_epochs, mastoid, sample_forward, cov_mastoid, tmin=0.05, tmax=0.15,
                **kwargs))
    # The user's objects are left as they were.
    assert mastoid.info["custom_ref_applied"] and not mastoid.info["projs"]


def test_linked_mastoid_raw_and_baseline_covariance(simulated_eeg, sample_forward):
    epochs, true_rr = simulated_eeg
    mastoid = epochs.copy().set_eeg_reference(MASTOIDS, verbose=False)
    # localize_epochs with the covariance of its own baseline (no cov given).
    stc = _quiet(localize_epochs, mastoid, sample_forward, tmin=0.05, tmax=0.15, alpha=50)
    assert _peak_error_mm(stc, sample_forward, true_rr) <= 10
    # A raw recording made of the averaged response, re-referenced to the mastoids.
    evoked = epochs.average()
    raw = mne.io.RawArray(np.tile(evoked.data, 3), evoked.info, verbose=False)
    raw.set_eeg_reference(MASTOIDS, verbose=False)
    cov = mne.compute_covariance(epochs.copy().set_eeg_reference("average", projection=True,
                                                                 verbose=False),
                                 tmax=0, method="ledoit_wolf", verbose=False)
    start = raw.times[len(evoked.times)] + 0.15  # 50 ms after the 2nd 'stimulus'
    stc = _quiet(localize_raw, raw, sample_forward, cov, start, start + 0.1, alpha=50)
    assert _peak_error_mm(stc, sample_forward, true_rr) <= 10


def test_cli_linked_mastoid_epochs(simulated_eeg, sample_forward, tmp_path):
    epochs, true_rr = simulated_eeg
    fname = tmp_path / "mastoid-epo.fif"
    epochs.copy().set_eeg_reference(MASTOIDS, verbose=False).save(fname, verbose=False)
    fwd_file = tmp_path / "sample-fwd.fif"
    mne.write_forward_solution(fwd_file, sample_forward, verbose=False)
    out = tmp_path / "out"
    status = main(["localize", str(fname), "--forward", str(fwd_file), "--alpha", "0.5",
                   "--tmin", "0.05", "--tmax", "0.15", "--out", str(out), "-q",
                   "--no-figures"])
    assert status == 0
    summary = json.loads((out / "summary.json").read_text())
    strongest = max(summary["sources"], key=lambda r: r["peak_amplitude_nAm"])
    error = np.linalg.norm(np.array(strongest["position_head_mm"]) - 1e3 * true_rr)
    assert error <= 10


def test_eeg_without_reference_projector_is_refused_at_the_problem_level(simulated_eeg,
                                                                         sample_forward,
                                                                         sample_cov):
    from meeg_inverse.problem import InverseProblem

    mastoid = simulated_eeg[0].copy().set_eeg_reference(MASTOIDS, verbose=False).average()
    with pytest.raises(InputError, match="re-referenced"):
        InverseProblem.from_evoked(mastoid, sample_forward, sample_cov)


# ------------------------------------------------------------- 3. rank mismatch
@pytest.fixture(scope="module")
def sss_raw(sample_paths):
    raw = mne.io.read_raw_fif(sample_paths["raw"], verbose=False).load_data()
    return raw.pick(["meg", "eeg"])


def test_maxwell_filtered_data_with_unprocessed_covariance_is_refused(sss_raw, sample_forward,
                                                                      sample_cov):
    with pytest.raises(InputError, match="Maxwell-filtered") as info:
        localize_raw(sss_raw, sample_forward, sample_cov, 0.2, 0.4, alpha=50)
    assert "rank 303" in info.value.problem and "only 66" in info.value.problem
    assert "processed the same way" in info.value.fix


def test_maxwell_filtered_data_with_its_own_covariance_runs(sss_raw, sample_forward):
    cov = mne.compute_raw_covariance(sss_raw, method="empirical", rank="info", verbose=False)
    stc = _quiet(localize_raw, sss_raw, sample_forward, cov, 0.2, 0.4, alpha=50)
    assert stc.data.shape[0] >= 1


def test_cli_rank_mismatch_exits_2(sss_raw, sample_paths, sample_forward, tmp_path, capsys):
    evoked = mne.EvokedArray(sss_raw.get_data(), sss_raw.info, tmin=0.0, nave=1,
                             comment="sss", verbose=False)
    fname = tmp_path / "sss-ave.fif"
    evoked.save(fname, verbose=False)
    fwd_file = tmp_path / "sample-fwd.fif"
    mne.write_forward_solution(fwd_file, sample_forward, verbose=False)
    out = tmp_path / "out"
    status = main(["localize", str(fname), "--noise-cov", str(sample_paths["cov"]),
                   "--forward", str(fwd_file), "--alpha", "0.5", "--no-baseline",
                   "--out", str(out), "-q", "--no-figures"])
    assert status == 2
    err = capsys.readouterr().err
    assert "rank" in err and "Maxwell" in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------ 4. channel names and types
@pytest.fixture
def amplifier_named_raw(eeglab_dir):
    """EEGLAB's sample EEG named as an EDF amplifier names it ('EEG Fz-Ref'), EOG typed EEG."""
    raw = mne.io.read_raw_eeglab(eeglab_dir / "test_raw.set", preload=True, verbose=False)
    names = mne.channels.read_custom_montage(eeglab_dir / "test_chans.locs").ch_names
    raw.rename_channels(dict(zip(raw.ch_names, [f"EEG {n}-Ref" for n in names])))
    return raw


def test_amplifier_names_match_a_standard_montage_with_a_note(amplifier_named_raw):
    from meeg_inverse.pipeline import load_data

    loaded = load_data(amplifier_named_raw, condition="square", montage="standard_1005")
    info = loaded.evoked.info
    assert "EEG Fz-Ref" in info["ch_names"]  # the recording keeps its names
    montage = mne.channels.make_standard_montage("standard_1005")
    fz = montage.get_positions()["ch_pos"]["Fz"]
    loc = info["chs"][info["ch_names"].index("EEG Fz-Ref")]["loc"][:3]
    head = mne.transforms.apply_trans(
        mne.channels.compute_native_head_t(montage), fz)
    np.testing.assert_allclose(loc, head, atol=1e-6)
    assert any("'EEG Fz-Ref' → 'Fz'" in n and "matched 30" in n for n in loaded.notes)
    # The two EOG leads typed EEG have no position: left out with a note, not an error.
    assert set(info["bads"]) == {"EEG EOG1-Ref", "EEG EOG2-Ref"}
    assert any("--eog" in n and "EEG EOG1-Ref" in n for n in loaded.notes)


def test_eog_and_bads_options(amplifier_named_raw):
    from meeg_inverse.pipeline import load_data

    loaded = load_data(amplifier_named_raw, condition="square", montage="standard_1005",
                       ch_types={"EEG EOG1-Ref": "eog", "EEG EOG2-Ref": "eog"},
                       bads="EEG T7-Ref")
    info = loaded.evoked.info
    assert loaded.epochs.get_channel_types(picks=["EEG EOG1-Ref"]) == ["eog"]
    assert "EEG EOG1-Ref" not in info["ch_names"]  # EOG does not enter the average
    assert info["bads"] == ["EEG T7-Ref"]
    assert not any("no position" in n for n in loaded.notes)
    with pytest.raises(InputError, match="Not channels of the recording: HEOG"):
        load_data(amplifier_named_raw, condition="square", ch_types={"HEOG": "eog"})


def test_cli_channel_options_are_checked(amplifier_named_raw, tmp_path, capsys):
    fname = tmp_path / "amp_raw.fif"
    amplifier_named_raw.save(fname, verbose=False)
    out = tmp_path / "out"
    status = main(["localize", str(fname), "--montage", "standard_1005", "--eog", "HEOG",
                   "--out", str(out), "-q", "--no-figures"])
    assert status == 2
    assert "HEOG" in capsys.readouterr().err
    status = main(["localize", str(fname), "--montage", "standard_1005", "--ch-types",
                   "EEG EOG1-Ref", "--out", str(out), "-q", "--no-figures"])
    assert status == 2
    assert "NAME=TYPE" in capsys.readouterr().err
    assert not out.exists()


def test_montage_match_order_error_points_to_name_matching(amplifier_named_raw):
    from meeg_inverse.forward import ensure_sensor_positions

    with pytest.raises(InputError, match="cannot be matched by order") as info:
        ensure_sensor_positions(amplifier_named_raw.info, "standard_1005", match_by="order")
    assert "--montage-match name" in info.value.fix


# ------------------------------------------- 5. epochs starting at the stimulus
@pytest.mark.parametrize("extra, names, not_named", [
    ([], ["--epoch-tmin", "--no-baseline"], None),
    (["--no-baseline"], ["--epoch-tmin", "--noise-cov"], "--tmin "),
])
def test_epochs_starting_at_the_stimulus_exit_2_naming_the_options(sample_paths, tmp_path,
                                                                   capsys, extra, names,
                                                                   not_named):
    raw = mne.io.read_raw_fif(sample_paths["raw"], verbose=False)
    events = tmp_path / "in-eve.fif"  # two stimuli inside this 1-s recording
    mne.write_events(events, np.array([[raw.first_samp + 60, 0, 1],
                                       [raw.first_samp + 160, 0, 1]]), verbose=False)
    out = tmp_path / "out"
    status = main(["localize", str(sample_paths["raw"]), "--events", str(events),
                   "--epoch-tmin", "0", "--epoch-tmax", "0.3", *extra, "--out", str(out),
                   "-q", "--no-figures"])
    assert status == 2
    err = capsys.readouterr().err
    for name in names:
        assert name in err
    assert "report" not in err and "Traceback" not in err
    if not_named:
        assert not_named not in err
    assert not out.exists()


# ----------------------------------------------------- 7. many active sources
def test_many_sources_are_reported_with_the_sparser_option(sample_evoked, sample_forward,
                                                           sample_cov):
    from meeg_inverse.assessment import MANY_SOURCES

    evoked = sample_evoked.copy().crop(0.05, 0.15)
    with pytest.warns(RuntimeWarning, match="sources are active") as record:
        stc = sparse_inverse(evoked, sample_forward, sample_cov, alpha=10, loose=1.0)
    assert len(stc.vertices[0]) + len(stc.vertices[1]) > MANY_SOURCES
    message = str([r.message for r in record if "sources are active" in str(r.message)][0])
    assert "alpha=50" in message and "penalty='l05'" in message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stc = sparse_inverse(evoked, sample_forward, sample_cov, alpha=70, loose=1.0)
    assert len(stc.vertices[0]) + len(stc.vertices[1]) <= MANY_SOURCES
    assert not any("sources are active" in str(w.message) for w in caught)


# --------------------------------------------------------- entry-point options
def test_localize_epochs_time_window(simulated_eeg, sample_forward, sample_cov):
    epochs, _ = simulated_eeg
    stc = _quiet(localize_epochs, epochs, sample_forward, sample_cov, tmin=0.05, tmax=0.15,
                 alpha=50)
    assert stc.tmin == pytest.approx(0.05, abs=1.0 / epochs.info["sfreq"])
    assert stc.times[-1] == pytest.approx(0.15, abs=1.0 / epochs.info["sfreq"])
    with pytest.raises(InputError, match="not inside the epochs"):
        localize_epochs(epochs, sample_forward, sample_cov, tmin=0.2, tmax=0.9)


def test_raw_or_epochs_given_to_sparse_inverse_point_to_the_right_function(
        sss_raw, simulated_eeg, sample_forward, sample_cov):
    with pytest.raises(InputError, match="raw recording") as info:
        sparse_inverse(sss_raw, sample_forward, sample_cov, alpha=50)
    assert "localize_raw" in info.value.fix
    with pytest.raises(InputError, match="epochs") as info:
        sparse_inverse(simulated_eeg[0], sample_forward, sample_cov, alpha=50)
    assert "localize_epochs" in info.value.fix
