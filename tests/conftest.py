"""Shared fixtures: the real MNE 'sample' data from ``../shared/data``.

Tests that need the shared data are skipped, with the reason, when it is absent.
Set ``MEEG_INVERSE_SHARED_DATA`` to point elsewhere.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data")
).resolve()
SAMPLE = SHARED_DATA / "sample"
EEGLAB = SHARED_DATA / "eeglab"
CACHE = ROOT / ".cache" / "tests"


def _require(path):
    if not path.exists():
        pytest.skip(f"shared real data not found at {path} (set MEEG_INVERSE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def sample_dir():
    """Folder of the MNE 'sample' subject files."""
    return _require(SAMPLE)


@pytest.fixture(scope="session")
def eeglab_dir():
    """Folder of EEGLAB's sample EEG recording."""
    return _require(EEGLAB)


@pytest.fixture(scope="session")
def sample_paths(sample_dir):
    """Paths of the sample subject's files, by role."""
    meg = sample_dir / "MEG"
    subjects_dir = sample_dir / "subjects"
    return dict(
        evoked=meg / "test-ave.fif.gz",
        cov=meg / "test-cov.fif",
        erm_cov=meg / "test_erm-cov.fif",
        src=meg / "sample-small-src.fif.gz",
        trans=meg / "sample_audvis_trunc-trans.fif",
        raw=meg / "sample_audvis_trunc_raw_sss.fif",
        events=meg / "sample_audvis_trunc_raw-eve.fif",
        subjects_dir=subjects_dir,
        bem=subjects_dir / "sample" / "bem" / "sample-320-320-320-bem-sol.fif",
        bem_meg=subjects_dir / "sample" / "bem" / "sample-1280-bem-sol.fif",
    )


@pytest.fixture(scope="session")
def sample_evoked(sample_paths):
    """The real 'Left Auditory' evoked response (MEG + EEG), baseline-corrected.

    The file's averages were saved without baseline correction (see
    ``test_uncorrected_evoked_is_flagged``).
    """
    import mne

    return mne.read_evokeds(sample_paths["evoked"], condition="Left Auditory",
                            baseline=(None, 0), verbose=False)


@pytest.fixture(scope="session")
def sample_cov(sample_paths):
    """The real noise covariance matching the sample evoked."""
    import mne

    return mne.read_cov(sample_paths["cov"], verbose=False)


@pytest.fixture(scope="session")
def sample_forward(sample_paths, sample_evoked):
    """A real free-orientation forward on the small surface source space (3-layer BEM)."""
    import mne

    # Building it takes ~50 s on 2 cores, so it is cached between runs.
    cached = CACHE / "sample-small-meeg-fwd.fif"
    if cached.exists():
        return mne.read_forward_solution(cached, verbose=False)
    src = mne.read_source_spaces(sample_paths["src"], verbose=False)
    fwd = mne.make_forward_solution(
        sample_evoked.info, sample_paths["trans"], src, sample_paths["bem"],
        meg=True, eeg=True, mindist=0.0, verbose=False,
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name("tmp-" + cached.name)
    mne.write_forward_solution(tmp, fwd, overwrite=True, verbose=False)
    tmp.replace(cached)
    return fwd
