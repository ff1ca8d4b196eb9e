"""A small BIDS dataset for the cohort tests, written with mne-bids from the shared data.

- ``eeg01``, ``eeg02``: EEGLAB's sample recording (real EEG, no MRI: template head),
  2 runs each (the same recording written twice, as two runs);
- ``sim01``, ``sim02``: MEG simulated on the real sample forward (free orientation,
  small source space) with two known sources each plus noise drawn from the real
  noise covariance; a forward file per subject and the sample FreeSurfer folder (for
  MNI coordinates) in the derivatives;
- ``bad01``: a copy of an EEG run with its data file cut short (a failing task).

Every subject has task ``cohort``; the events are in each run's events.tsv.
"""

import shutil
from pathlib import Path

import mne
import numpy as np

TASK = "cohort"
FORWARD_PATTERN = "derivatives/forward/sub-{subject}/sub-{subject}_task-cohort_fwd.fif"
#: Known sources of each simulated subject: (hemisphere index, index into vertno, nA·m).
SIM_SOURCES = {"sim01": [(0, 40, 60.0), (1, 200, 50.0)],
               "sim02": [(0, 120, 55.0), (1, 90, 60.0)]}
SIM_SFREQ = 150.0
N_TRIALS = 30


def simulate_raw(forward, noise_cov, info, sources, seed):
    """A short MEG raw recording: the known sources at each event, plus real-covariance noise.

    Returns
    -------
    raw : mne.io.RawArray
    events : ndarray, shape (N_TRIALS, 3)
    """
    rng = np.random.default_rng(seed)
    fwd = mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True,
                                       use_cps=True, verbose=False)
    fwd = mne.pick_channels_forward(fwd, info.ch_names, ordered=True, verbose=False)
    gain = fwd["sol"]["data"]
    n_lh = len(fwd["src"][0]["vertno"])
    sfreq = info["sfreq"]
    t = np.arange(int(0.5 * sfreq)) / sfreq  # one evoked response, 0..0.5 s
    n_times = int((N_TRIALS + 2) * 1.0 * sfreq)
    data = np.zeros((len(info.ch_names), n_times))
    onsets = (np.arange(N_TRIALS) + 1) * int(sfreq)
    for k, (hemi, idx, nam) in enumerate(sources):
        col = idx + hemi * n_lh
        wave = nam * 1e-9 * np.exp(-0.5 * ((t - 0.08 - 0.03 * k) / 0.02) ** 2)
        field = np.outer(gain[:, col], wave)
        for on in onsets:
            data[:, on:on + len(t)] += field
    cov = mne.pick_channels_cov(noise_cov, info.ch_names, ordered=True, verbose=False)
    chol = np.linalg.cholesky(cov.data + 1e-30 * np.eye(len(cov.data)))
    data += chol @ rng.standard_normal((len(info.ch_names), n_times))
    raw = mne.io.RawArray(data, info, verbose=False)
    events = np.column_stack([onsets, np.zeros_like(onsets), np.ones_like(onsets)])
    return raw, events


def known_mni_mm(forward, subjects_dir, sources):
    """MNI positions (mm) of the simulated sources (sample's talairach.xfm)."""
    to_mni = mne.read_talxfm("sample", subjects_dir)["trans"]
    head_mri_t = mne.transforms.invert_transform(forward["mri_head_t"])
    out = []
    for hemi, idx, _ in sources:
        s = forward["src"][hemi]
        rr = s["rr"][s["vertno"][idx]]
        if s["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD:  # a forward's are
            rr = mne.transforms.apply_trans(head_mri_t, rr)
        out.append(mne.transforms.apply_trans(to_mni, rr) * 1e3)
    return np.array(out)


def write_dataset(root, *, eeglab_dir, sample_paths, forward_file, evoked, noise_cov,
                  sim_sources=None):
    """Write the dataset into ``root`` (returns the known MNI positions of each sim subject).

    ``sim_sources``: simulated subjects and their sources (default :data:`SIM_SOURCES`).
    """
    import mne_bids

    root = Path(root)
    raw = mne.io.read_raw_eeglab(eeglab_dir / "test_raw.set", verbose=False)
    for sub in ("eeg01", "eeg02"):
        for run in (1, 2):
            bp = mne_bids.BIDSPath(subject=sub, task=TASK, run=run, datatype="eeg", root=root)
            mne_bids.write_raw_bids(raw, bp, overwrite=True, verbose=False)
    # a broken copy: the data file cut short
    bad = mne_bids.BIDSPath(subject="bad01", task=TASK, run=1, datatype="eeg", root=root)
    mne_bids.write_raw_bids(raw, bad, overwrite=True, verbose=False)
    fdt = next((root / "sub-bad01" / "eeg").glob("*.fdt"))
    fdt.write_bytes(fdt.read_bytes()[:5000])

    forward = mne.read_forward_solution(forward_file, verbose=False)
    info = mne.pick_info(evoked.info, mne.pick_types(evoked.info, meg=True, eeg=False))
    with info._unlock():
        info["sfreq"] = SIM_SFREQ
        info["lowpass"] = 40.0
    info["bads"] = []
    known = {}
    subjects_dir = Path(sample_paths["subjects_dir"])
    for k, (sub, sources) in enumerate((sim_sources or SIM_SOURCES).items()):
        sim, events = simulate_raw(forward, noise_cov, info, sources, seed=k)
        bp = mne_bids.BIDSPath(subject=sub, task=TASK, run=1, datatype="meg", root=root)
        mne_bids.write_raw_bids(sim, bp, events=events, event_id={"tone": 1},
                                allow_preload=True, format="FIF", overwrite=True,
                                verbose=False)
        fwd_file = root / FORWARD_PATTERN.format(subject=sub)
        fwd_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(forward_file, fwd_file)
        fs = root / "derivatives" / "freesurfer" / f"sub-{sub}"
        fs.parent.mkdir(parents=True, exist_ok=True)
        fs.symlink_to((subjects_dir / "sample").resolve(), target_is_directory=True)
        known[sub] = known_mni_mm(forward, subjects_dir, sources)
    return known
