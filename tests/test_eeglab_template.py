"""Real EEG without MRI: raw EEGLAB file → epochs → evoked → sources on the template head."""

import json
from pathlib import Path

import mne
import numpy as np
import pytest

from meeg_inverse.cli import main
from meeg_inverse.errors import InputError
from meeg_inverse.pipeline import load_data


def test_eeglab_raw_to_epochs_to_evoked(eeglab_dir):
    loaded = load_data(eeglab_dir / "test_raw.set", condition="square",
                       montage=str(eeglab_dir / "test_chans.locs"), montage_match="order")
    assert loaded.raw is not None and loaded.epochs is not None
    assert len(loaded.epochs) > 10
    assert loaded.evoked.nave == len(loaded.epochs["square"])
    assert loaded.evoked.comment == "square"
    # Positions came from the montage file, matched by order.
    assert "FPz" in loaded.evoked.ch_names
    locs = np.array([ch["loc"][:3] for ch in loaded.evoked.info["chs"]])
    assert np.isfinite(locs).all() and (np.abs(locs).sum(axis=1) > 0).all()


def test_eeglab_without_positions_asks_for_a_montage(eeglab_dir, tmp_path, capsys):
    status = main(["localize", str(eeglab_dir / "test_raw.set"), "--out", str(tmp_path / "o"),
                   "-q", "--no-figures"])
    assert status == 2
    err = capsys.readouterr().err
    assert "--montage" in err and "order" in err


def test_eeglab_localize_on_template(eeglab_dir, tmp_path):
    out = tmp_path / "eeg"
    status = main(["localize", str(eeglab_dir / "test_raw.set"), "--condition", "square",
                   "--montage", str(eeglab_dir / "test_chans.locs"), "--montage-match", "order",
                   "--tmin", "0.05", "--tmax", "0.3", "--alpha", "0.3", "--out", str(out),
                   "-q", "--no-figures"])
    assert status == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["subject"] == "fsaverage"
    assert summary["n_active_sources"] >= 1
    assert summary["n_channels"] == 30  # EOG1, EOG2 are eye electrodes, not scalp EEG
    assert summary["channels"]["used"] == {"eeg": 30}
    # 30 channels: a low confidence (quarter-out resamples) is said to be weak evidence.
    warnings = {w["code"]: w for w in summary["warnings"]}
    assert "with 30 channels the confidence" in warnings["low_confidence"]["message"]
    stc = mne.read_source_estimate(out / "sources-stc.h5")  # .stc files keep no subject
    assert stc.subject == "fsaverage"
    assert stc.data.shape[0] == summary["n_active_sources"]
    for record in summary["sources"]:
        x, y, z = record["position_mni_mm"]
        # On fsaverage, MNI coordinates of cortical sources are inside the brain.
        assert -80 < x < 80 and -115 < y < 80 and -60 < z < 90
        assert (x < 0) == (record["hemisphere"] == "lh") or abs(x) < 5


def test_digitized_eeg_is_fitted_to_the_template_head(eeglab_dir, tmp_path):
    """A file with its own electrode positions and fiducials: the template is fitted to them."""
    from scipy.spatial import cKDTree

    from meeg_inverse.forward import fit_template_trans, template_subjects_dir
    from meeg_inverse.pipeline import ForwardSpec, load_forward, load_noise_cov, localize

    raw = mne.io.read_raw_eeglab(eeglab_dir / "test_raw_chanloc.set", preload=True,
                                 verbose=False)
    raw.info["bads"] = ["Fp1"]  # flat in this file
    subjects_dir = template_subjects_dir()
    head = mne.read_bem_surfaces(Path(mne.__file__).parent / "data" / "fsaverage"
                                 / "fsaverage-head.fif", verbose=False)[0]["rr"]
    eeg_head = np.array([d["r"] for d in raw.info["dig"]
                         if d["kind"] == mne.io.constants.FIFF.FIFFV_POINT_EEG])

    def scalp_distance_mm(trans):  # electrodes (head frame) to the fsaverage scalp
        to_mri = trans if trans["from"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD \
            else mne.transforms.invert_transform(trans)
        return 1e3 * np.median(cKDTree(head).query(mne.transforms.apply_trans(to_mri,
                                                                              eeg_head))[0])

    fitted = scalp_distance_mm(fit_template_trans(raw.info, subjects_dir))
    default = scalp_distance_mm(mne.read_trans(Path(mne.__file__).parent / "data"
                                               / "fsaverage" / "fsaverage-trans.fif"))
    assert fitted < 10 and fitted <= default, (fitted, default)

    # ... and the whole path: events from annotations, template forward, the recording's
    # noise (an "empty room" is MEG only: this EEG recording given as one is refused).
    loaded = load_data(raw, condition="S 12", epoch_tmin=-0.01, epoch_tmax=2.5, baseline=None)
    fwd, subject, _ = load_forward(ForwardSpec(), loaded.evoked.info)
    assert subject == "fsaverage"
    # Written and read back (a cohort reuses its forward file), the template forward keeps
    # the fitted transform and its sources where they were (they moved up to 24 mm).
    mne.write_forward_solution(tmp_path / "t-fwd.fif", fwd, verbose=False)
    again = mne.read_forward_solution(tmp_path / "t-fwd.fif", verbose=False)
    np.testing.assert_allclose(again["mri_head_t"]["trans"], fwd["mri_head_t"]["trans"],
                               atol=1e-12)
    np.testing.assert_allclose(np.concatenate([s["rr"][s["vertno"]] for s in again["src"]]),
                               np.concatenate([s["rr"][s["vertno"]] for s in fwd["src"]]),
                               atol=1e-8)
    good = [c for c in loaded.evoked.ch_names if c not in raw.info["bads"]]
    assert len(good) == 60 and set(good) <= set(fwd["info"]["ch_names"])
    with pytest.raises(InputError, match="no MEG channel"):
        load_noise_cov(None, loaded, empty_room=eeglab_dir / "test_raw_chanloc.set")
    cov = mne.compute_raw_covariance(raw, verbose=False)
    result = localize(loaded.evoked, fwd, cov, alpha=0.3, tmin=0.1, tmax=1.0, subject=subject)
    assert result.records and isinstance(result.stc, mne.SourceEstimate)
    for record in result.records:
        x, y, z = record["position_mni_mm"]
        assert -80 < x < 80 and -115 < y < 80 and -60 < z < 90


def test_template_fit_is_quiet_at_mne_info_level(eeglab_dir, caplog):
    """MNE at INFO (a cohort's Dask workers): fitting the template head printed "Using low
    resolution head model ..." and "Using fiducials from ..." into the cohort's console
    (newuser-21); with verbose=False it says nothing."""
    from meeg_inverse.forward import fit_template_trans, template_subjects_dir

    raw = mne.io.read_raw_eeglab(eeglab_dir / "test_raw_chanloc.set", verbose=False)
    subjects_dir = template_subjects_dir()
    logger = mne.utils.logger
    logger.addHandler(caplog.handler)
    try:
        with mne.utils.use_log_level("INFO"):
            fit_template_trans(raw.info, subjects_dir)
    finally:
        logger.removeHandler(caplog.handler)
    said = [r.getMessage() for r in caplog.records if r.name == "mne"]
    assert not any("head model" in m or "fiducials from" in m for m in said), said


def test_default_sources_survive_an_operator_round_trip(eeglab_dir):
    """30 electrodes: the reported sources of a fresh operator and of the same saved
    and read back (positions through float32, 4 nm) are the same. They differed
    (5 vs 5 clusters, two merged otherwise) when 10 sources were fitted on 29
    dimensions: every position explained all that was left, rounding chose."""
    from meeg_inverse import io as mio
    from meeg_inverse.operator import make_sparse_inverse_operator, read_sparse_inverse_operator
    from meeg_inverse.pipeline import ForwardSpec, load_forward, load_noise_cov
    from meeg_inverse.solve import solve_inverse

    loaded = load_data(eeglab_dir / "test_raw.set", condition="square",
                       montage=str(eeglab_dir / "test_chans.locs"), montage_match="order")
    cov = load_noise_cov(None, loaded)
    fwd, _, _ = load_forward(ForwardSpec(), loaded.evoked.info)
    evoked = mio.with_average_reference(loaded.evoked)
    op = make_sparse_inverse_operator(evoked.info, fwd, cov)
    path = Path(__import__("tempfile").mkdtemp()) / "eeg-inv.h5"
    op.save(path)
    back = read_sparse_inverse_operator(path)
    members = []
    for operator in (op, back):
        sol = solve_inverse(operator.problem(evoked, tmin=0.0), alpha="auto", penalty="l05",
                            confidence=0, random_state=0)
        members.append([sorted(c.members.tolist()) for c in sol.clusters])
        assert len(sol.clusters) <= 8  # what 29 whitened rows can place
    assert members[0] == members[1]
