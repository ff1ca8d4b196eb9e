"""Shared fixtures: the real MNE 'sample' data and EEGLAB's sample EEG.

Where the data come from, in this order (CONTRIBUTING.md says how to get them):

1. ``MEEG_INVERSE_SHARED_DATA`` (default ``../shared/data``): the project's
   shared folder (``sample/MEG/test-ave.fif.gz``, ... ; its README lists them);
2. what ``meeg-inverse fetch sample`` and ``meeg-inverse fetch eeglab`` wrote
   (under ``MEEG_INVERSE_DATA``, MNE's ``MNE_DATA`` or ``~/mne_data``): the
   same subject, other file names (:data:`FETCHED_SAMPLE`), and a small
   source space derived once from the subject's surfaces.

Tests that need data absent from both are skipped, with the reason.
"""

import contextlib
import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("MEEG_INVERSE_SHARED_DATA", ROOT.parent / "shared" / "data")
).resolve()
SAMPLE = SHARED_DATA / "sample"
EEGLAB = SHARED_DATA / "eeglab"
CACHE = ROOT / ".cache" / "tests"



def sigint_as_at_a_terminal():
    """``preexec_fn`` of a child the tests send SIGINT: its default action restored.

    A shell starts background commands (``cmd &``, as CI scripts may) with SIGINT
    ignored, children inherit that, and Python then leaves it ignored: the child
    would never see the Ctrl-C a test sends, whatever the code does.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Role -> file, relative to the shared sample/ folder.
SHARED_SAMPLE = dict(
    evoked="MEG/test-ave.fif.gz", cov="MEG/test-cov.fif", erm_cov="MEG/test_erm-cov.fif",
    src="MEG/sample-small-src.fif.gz", trans="MEG/sample_audvis_trunc-trans.fif",
    raw="MEG/sample_audvis_trunc_raw_sss.fif", events="MEG/sample_audvis_trunc_raw-eve.fif",
    subjects_dir="subjects", bem="subjects/sample/bem/sample-320-320-320-bem-sol.fif",
    bem_meg="subjects/sample/bem/sample-1280-bem-sol.fif",
)
# Role -> file, relative to MNE-sample-data/ as `meeg-inverse fetch sample` writes it
# (src: derived into the test cache, see _fetched_src).
FETCHED_SAMPLE = dict(
    evoked="MEG/sample/sample_audvis-ave.fif", cov="MEG/sample/sample_audvis-cov.fif",
    erm_cov="MEG/sample/ernoise-cov.fif", src=None,
    trans="MEG/sample/sample_audvis_raw-trans.fif",
    raw="MEG/sample/sample_audvis_filt-0-40_raw.fif",
    events="MEG/sample/sample_audvis_filt-0-40_raw-eve.fif", subjects_dir="subjects",
    bem="subjects/sample/bem/sample-5120-5120-5120-bem-sol.fif",
    bem_meg="subjects/sample/bem/sample-5120-bem-sol.fif",
)


def _fetched_folder(name):
    """Folder of a data set `meeg-inverse fetch` wrote, or None (no download here)."""
    try:
        from data_fetchers import dataset_path
    except ImportError:
        return None
    folder = dataset_path(name)
    return folder if folder.is_dir() else None


def sample_source():
    """('shared' | 'fetched', folder) of the sample data, or (None, the places tried)."""
    if SAMPLE.is_dir():
        return "shared", SAMPLE
    fetched = _fetched_folder("sample")
    if fetched is not None and (fetched / FETCHED_SAMPLE["evoked"]).exists():
        return "fetched", fetched
    return None, f"{SAMPLE} or the folder of `meeg-inverse fetch sample`"


def eeglab_source():
    if EEGLAB.is_dir():
        return EEGLAB
    return _fetched_folder("eeglab")


def sample_layout(kind, folder):
    """Role -> path of the sample files in a 'shared' or 'fetched' folder."""
    table = SHARED_SAMPLE if kind == "shared" else FETCHED_SAMPLE
    return {role: (folder / rel if rel is not None else None) for role, rel in table.items()}


def _require(path, what="shared real data"):
    if path is None or not Path(path).exists():
        pytest.skip(f"{what} not found{f' at {path}' if path else ''} (set "
                    "MEEG_INVERSE_SHARED_DATA, or run "
                    "`meeg-inverse fetch sample` / `meeg-inverse fetch eeglab`; see "
                    "CONTRIBUTING.md)")
    return path


@pytest.fixture(scope="session")
def sample_dir():
    """Folder of the MNE 'sample' subject files."""
    kind, folder = sample_source()
    if kind is None:
        _require(None, f"the MNE sample data ({folder})")
    return folder


@pytest.fixture(scope="session")
def eeglab_dir():
    """Folder of EEGLAB's sample EEG recording."""
    return _require(eeglab_source(), "EEGLAB's sample EEG")


@contextlib.contextmanager
def _building(cached):
    """Hold ``cached``'s lock while it is looked up or built.

    ``make test`` runs the suite in parallel processes (pytest-xdist): one builds
    a cached file, the others wait for it instead of building it too (and
    writing over each other's temporary file).
    """
    from filelock import FileLock

    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cached.with_name(cached.name + ".lock"))):
        yield


def _fetched_src(subjects_dir):
    """A ~500-source surface source space of 'sample' (oct-4), built once and cached."""
    import mne

    cached = CACHE / "fetched-sample-oct4-src.fif"
    with _building(cached):
        if not cached.exists():
            src = mne.setup_source_space("sample", spacing="oct4", subjects_dir=subjects_dir,
                                         add_dist=False, verbose=False)
            tmp = cached.with_name("tmp-" + cached.name)
            mne.write_source_spaces(tmp, src, overwrite=True, verbose=False)
            tmp.replace(cached)
    return cached


@pytest.fixture(scope="session")
def sample_paths(sample_dir):
    """Paths of the sample subject's files, by role."""
    kind, _ = sample_source()
    paths = sample_layout(kind, sample_dir)
    if paths["src"] is None:
        paths["src"] = _fetched_src(paths["subjects_dir"])
    paths["kind"] = kind
    return paths


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
    cached = CACHE / ("sample-small-meeg-fwd.fif" if sample_paths["kind"] == "shared"
                      else "fetched-sample-oct4-meeg-fwd.fif")
    with _building(cached):
        if cached.exists():
            return mne.read_forward_solution(cached, verbose=False)
        src = mne.read_source_spaces(sample_paths["src"], verbose=False)
        fwd = mne.make_forward_solution(
            sample_evoked.info, sample_paths["trans"], src, sample_paths["bem"],
            meg=True, eeg=True, mindist=0.0, verbose=False,
        )
        tmp = cached.with_name("tmp-" + cached.name)
        mne.write_forward_solution(tmp, fwd, overwrite=True, verbose=False)
        tmp.replace(cached)
    return fwd


_STAGE_SITECUSTOMIZE = '''\
import os

# Test-only: run the patch of the test in the stage processes of `meeg-inverse localize`.
if os.environ.get("MEEG_INVERSE_STAGE_PARENT") and os.environ.get("MEEG_INVERSE_TEST_STAGE_PATCH"):
    exec(os.environ["MEEG_INVERSE_TEST_STAGE_PATCH"])
'''


@pytest.fixture
def stage_patch(tmp_path_factory, monkeypatch):
    """``stage_patch(code)``: run ``code`` at the start of every stage process.

    ``meeg-inverse localize`` computes and draws in child processes
    (:mod:`meeg_inverse._stages`), which an in-process ``monkeypatch`` does not
    reach: this puts a ``sitecustomize`` on their path that runs ``code`` there.
    """
    folder = tmp_path_factory.mktemp("stage-patch")
    (folder / "sitecustomize.py").write_text(_STAGE_SITECUSTOMIZE)

    def apply(code):
        path = os.pathsep.join(filter(None, [str(folder), str(ROOT),
                                             os.environ.get("PYTHONPATH")]))
        monkeypatch.setenv("PYTHONPATH", path)
        monkeypatch.setenv("MEEG_INVERSE_TEST_STAGE_PATCH", code)

    return apply


@pytest.fixture(scope="session")
def sample_fixed_forward(sample_forward, sample_evoked):
    """(fixed-orientation forward, info) on the sample evoked's good M/EEG channels, for
    simulating cortical sources (one row order for both)."""
    import mne

    fixed = mne.convert_forward_solution(sample_forward, surf_ori=True, force_fixed=True,
                                         use_cps=True, verbose=False)
    info = sample_evoked.copy().pick([c for c in sample_evoked.ch_names
                                      if c in fixed["sol"]["row_names"]
                                      and c not in sample_evoked.info["bads"]]).info
    return mne.pick_channels_forward(fixed, info.ch_names, ordered=True, verbose=False), info


@pytest.fixture(scope="module")
def problem(sample_evoked, sample_forward, sample_cov):
    """The whitened problem of 'Left Auditory' (50-150 ms) on the sample forward (one per
    test module: some tests add to its operator's caches)."""
    from meeg_inverse.problem import InverseProblem

    return InverseProblem.from_evoked(sample_evoked, sample_forward, sample_cov,
                                      tmin=0.05, tmax=0.15)


@pytest.fixture(scope="session")
def sample_fwd_file(sample_forward, tmp_path_factory):
    """The sample forward written to a file (what the command line reads)."""
    import mne

    fname = tmp_path_factory.mktemp("fwd") / "sample-small-fwd.fif"
    mne.write_forward_solution(fname, sample_forward, verbose=False)
    return fname
