"""Real EEG without MRI: raw EEGLAB file → epochs → evoked → sources on the template head."""

import json

import mne
import numpy as np
import pytest

from meeg_inverse.cli import main
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
    assert summary["n_channels"] == 32
    stc = mne.read_source_estimate(out / "sources-stc.h5")  # .stc files keep no subject
    assert stc.subject == "fsaverage"
    assert stc.data.shape[0] == summary["n_active_sources"]
    for record in summary["sources"]:
        x, y, z = record["position_mni_mm"]
        # On fsaverage, MNI coordinates of cortical sources are inside the brain.
        assert -80 < x < 80 and -115 < y < 80 and -60 < z < 90
        assert (x < 0) == (record["hemisphere"] == "lh") or abs(x) < 5
