"""What each dataset is: files, upstream URLs, hashes, where they go, how to tell it is there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from . import _fsaverage_manifest
from ._errors import IntegrityError

__all__ = ["FileSpec", "DatasetSpec", "REGISTRY", "register_dataset", "validate_eeglab"]

#: Tag of mne-testing-data that MNE-Python 1.13 pins (``mne.datasets.config.RELEASES``).
MNE_TESTING_RELEASE = "0.176"


@dataclass(frozen=True)
class FileSpec:
    """One downloaded file.

    Parameters
    ----------
    fname : str
        Name under which it is saved in the cache folder while it is downloaded (and where a
        manually downloaded copy must be put); with ``base_url`` the file is fetched from
        ``<base_url>/<fname>``.
    url : str
        Upstream URL.
    known_hash : str | None
        ``'md5:…'``/``'sha256:…'`` as in pooch; None when upstream publishes none (then the
        dataset's ``validate`` checks the format instead).
    unpack : {'tar', 'zip', None}
        Archive type; None installs the file as is.
    dest : str
        Folder, relative to the cache root, that receives the archive's content (or the file).
    check : tuple of str
        Paths relative to ``dest`` that must all exist for this piece to count as installed.
        Empty: for a plain file the file itself, for an archive the dataset folder.
    """

    fname: str
    url: str
    known_hash: str | None
    unpack: str | None = None
    dest: str = "."
    check: tuple[str, ...] = ()

    def __post_init__(self):
        if self.unpack not in (None, "tar", "zip"):
            raise ValueError(f"unpack must be 'tar', 'zip' or None, not {self.unpack!r}")
        if Path(self.fname).name != self.fname or self.fname in ("", ".", ".."):
            raise ValueError(f"fname must be a bare file name, not {self.fname!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: one or more :class:`FileSpec` installed under ``<root>/<folder>``."""

    name: str
    description: str
    folder: str
    files: tuple[FileSpec, ...]
    size: str = "unknown"
    license: str = ""
    citation: str = ""
    homepage: str = ""
    notes: str = ""
    #: Called with {fname: downloaded path} before anything is installed; raises
    #: :class:`IntegrityError` when a file is not what it should be.
    validate: Callable[[Mapping[str, Path]], None] | None = field(default=None, repr=False)

    def info(self):
        """The public description returned by :func:`list_datasets`."""
        return dict(
            description=self.description,
            size=self.size,
            url=self.files[0].url,
            license=self.license,
            citation=self.citation,
            homepage=self.homepage,
            folder=self.folder,
            notes=self.notes,
            files=[dict(fname=f.fname, url=f.url, hash=f.known_hash, unpack=f.unpack)
                   for f in self.files],
        )


# --------------------------------------------------------------------------------------------
# EEGLAB: no upstream hash exists, so check the format.


def validate_eeglab(files):
    """Check EEGLAB ``.set``/``.fdt``/``.locs`` files for format and internal consistency.

    A ``.set`` must be a MATLAB 5 MAT-file (EEGLAB's format) holding an ``EEG`` structure (or
    its fields at top level); when its data live in a separate ``.fdt`` file, that file must
    hold exactly ``nbchan × pnts × trials`` float32 values. A ``.locs`` file must be text with
    one ``number theta radius label`` row per channel.
    """
    import numpy as np
    import scipy.io

    files = {name: Path(p) for name, p in files.items()}
    for name, path in files.items():
        if name.endswith(".set"):
            with open(path, "rb") as fid:
                head = fid.read(128)
            if not head.startswith(b"MATLAB 5.0 MAT-file"):
                raise IntegrityError(
                    f"{name} is not an EEGLAB .set file (no MATLAB 5.0 MAT-file header; got "
                    f"{head[:20]!r}). The download was probably an error page.",
                    fname=name, expected="MATLAB 5.0 MAT-file", actual=repr(head[:20]))
            try:
                mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
            except Exception as exc:  # scipy raises several kinds on truncated files
                raise IntegrityError(f"{name} could not be read as a MAT-file: {exc}",
                                     fname=name, expected="readable MAT-file",
                                     actual=str(exc)) from None
            eeg = mat.get("EEG")
            get = (lambda k: getattr(eeg, k)) if eeg is not None else (lambda k: mat[k])
            try:
                nbchan, pnts, trials = int(get("nbchan")), int(get("pnts")), int(get("trials"))
                data = get("data")
            except (KeyError, AttributeError, TypeError, ValueError):
                raise IntegrityError(f"{name} holds no EEGLAB EEG structure (nbchan, pnts, "
                                     "trials, data)", fname=name,
                                     expected="EEG structure", actual="missing fields") from None
            if isinstance(data, str):
                fdt = data
                if fdt not in files:
                    continue  # data file not part of this dataset: nothing to compare
                expected = nbchan * pnts * trials * np.dtype("<f4").itemsize
                actual = files[fdt].stat().st_size
                if actual != expected:
                    raise IntegrityError(
                        f"{fdt} has {actual} bytes but {name} describes {nbchan} channels × "
                        f"{pnts} samples × {trials} trials of float32 = {expected} bytes.",
                        fname=fdt, expected=f"{expected} bytes", actual=f"{actual} bytes")
        elif name.endswith(".locs"):
            try:
                lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
                ok = bool(lines) and all(len(ln) >= 4 and float(ln[1]) == float(ln[1])
                                         and float(ln[2]) >= 0 for ln in lines)
            except (UnicodeDecodeError, ValueError):
                ok = False
            if not ok:
                raise IntegrityError(f"{name} is not an EEGLAB channel-location (.locs) file "
                                     "(expected rows of: number theta radius label)",
                                     fname=name, expected=".locs text", actual="unreadable")


# --------------------------------------------------------------------------------------------
# The registry. URLs and hashes are MNE-Python 1.13's (``mne/datasets/config.py`` and
# ``mne/datasets/_fsaverage/base.py``); tests/test_data_fetchers.py checks them against the
# installed MNE.

_MNE_CITATION = ("Gramfort A. et al. (2013) MEG and EEG data analysis with MNE-Python. "
                 "Front. Neurosci. 7:267, doi:10.3389/fnins.2013.00267")

_TESTING_RAW = ("https://raw.githubusercontent.com/mne-tools/mne-testing-data/"
                f"{MNE_TESTING_RELEASE}/EEGLAB/")

_EEGLAB_FOLDER = "MEEG-inverse-eeglab-sample"

REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec, *, overwrite=False):
    """Add a :class:`DatasetSpec` to the registry (``overwrite=True`` to replace one)."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"expected a DatasetSpec, got {type(spec).__name__}")
    if spec.name in REGISTRY and not overwrite:
        raise ValueError(f"dataset {spec.name!r} is already registered "
                         "(pass overwrite=True to replace it)")
    REGISTRY[spec.name] = spec
    return spec


register_dataset(DatasetSpec(
    name="sample",
    description=("MNE 'sample' subject: Neuromag Vectorview MEG (306 ch) + 60-channel EEG, "
                 "auditory/visual stimulation, with the FreeSurfer reconstruction, BEM and "
                 "forward models of subject 'sample' (MNE-Python's processed archive)."),
    folder="MNE-sample-data",
    files=(FileSpec(
        fname="MNE-sample-data-processed.tar.gz",
        url="https://osf.io/download/86qa2?version=6",
        known_hash="md5:e8f30c4516abdc12a0c08e6bae57409c",
        unpack="tar",
        dest=".",
        check=("MNE-sample-data/MEG/sample/sample_audvis_raw.fif",
               "MNE-sample-data/MEG/sample/sample_audvis-ave.fif",
               "MNE-sample-data/subjects/sample/mri/T1.mgz"),
    ),),
    size="about 1.5 GB download (approximate)",
    license=("No open licence is attached; MNE's documentation states the data are provided "
             "solely to get familiar with the MNE software and must not be used to evaluate "
             "the MEG or MRI system."),
    citation=_MNE_CITATION,
    homepage="https://mne.tools/stable/documentation/datasets.html#sample",
))

register_dataset(DatasetSpec(
    name="somato",
    description=("MNE 'somato' data set (BIDS): Neuromag MEG of electrical median-nerve "
                 "stimulation of one subject, with the subject's FreeSurfer reconstruction."),
    folder="MNE-somato-data",
    files=(FileSpec(
        fname="MNE-somato-data.tar.gz",
        url="https://osf.io/download/tp4sg?version=8",
        known_hash="md5:9a191907b326b9402341ee7a0d1240d8",
        unpack="tar",
        dest=".",
        check=("MNE-somato-data/sub-01/meg/sub-01_task-somato_meg.fif",),
    ),),
    size="about 0.6 GB download (approximate)",
    license="Distributed by the MNE-Python project for its examples; see the MNE documentation.",
    citation=_MNE_CITATION,
    homepage="https://mne.tools/stable/documentation/datasets.html#somatosensory",
))

register_dataset(DatasetSpec(
    name="fsaverage",
    description=("FreeSurfer 'fsaverage' template subject as mne.datasets.fetch_fsaverage "
                 "installs it: FreeSurfer 6 surfaces and labels, MNE parcellations, scalp "
                 "surfaces, fiducials, head<->MRI trans, 1- and 3-layer BEMs, ico-5 and "
                 "volume source spaces. The returned path is <subjects_dir>/fsaverage."),
    folder="MNE-fsaverage-data/fsaverage",
    files=(
        FileSpec(fname="MNE-fsaverage-root.zip",
                 url="https://osf.io/download/3bxqt?version=2",
                 known_hash="md5:5133fe92b7b8f03ae19219d5f46e4177",
                 unpack="zip", dest="MNE-fsaverage-data",
                 check=_fsaverage_manifest.ROOT),
        FileSpec(fname="MNE-fsaverage-bem.zip",
                 url="https://osf.io/download/7ve8g?version=4",
                 known_hash="md5:b31509cdcf7908af6a83dc5ee8f49fb1",
                 unpack="zip", dest="MNE-fsaverage-data/fsaverage",
                 check=_fsaverage_manifest.BEM),
    ),
    size="about 0.2 GB download in two zip files (approximate)",
    license=("FreeSurfer Software License (fsaverage is part of FreeSurfer); MNE's additions "
             "(BEM, source spaces, parcellations) BSD-3-Clause."),
    citation=("Fischl B., Sereno M.I., Tootell R.B.H., Dale A.M. (1999) High-resolution "
              "intersubject averaging and a coordinate system for the cortical surface. "
              "Hum. Brain Mapp. 8:272-284; and " + _MNE_CITATION),
    homepage="https://mne.tools/stable/generated/mne.datasets.fetch_fsaverage.html",
))

register_dataset(DatasetSpec(
    name="eeglab",
    description=("EEGLAB's sample EEG recording (32 channels, 128 Hz, 238 s, events 'square' "
                 "and 'rt') with its channel locations, as MNE-Python's test suite reads it "
                 "(mne-testing-data, EEGLAB/test_raw.set + .fdt, test_chans.locs)."),
    folder=_EEGLAB_FOLDER,
    files=(
        FileSpec(fname="test_raw.set", url=_TESTING_RAW + "test_raw.set", known_hash=None,
                 dest=_EEGLAB_FOLDER),
        FileSpec(fname="test_raw.fdt", url=_TESTING_RAW + "test_raw.fdt", known_hash=None,
                 dest=_EEGLAB_FOLDER),
        FileSpec(fname="test_chans.locs", url=_TESTING_RAW + "test_chans.locs",
                 known_hash=None, dest=_EEGLAB_FOLDER),
    ),
    size="about 4.3 MB (4 255 027 bytes)",
    license=("Sample data distributed with EEGLAB (BSD licence, Swartz Center for "
             "Computational Neuroscience, UCSD); redistributed in mne-testing-data."),
    citation=("Delorme A., Makeig S. (2004) EEGLAB: an open source toolbox for analysis of "
              "single-trial EEG dynamics including independent component analysis. "
              "J. Neurosci. Methods 134:9-21"),
    homepage="https://github.com/mne-tools/mne-testing-data/tree/master/EEGLAB",
    notes=("Neither EEGLAB nor mne-testing-data publishes per-file checksums, so these files "
           "are verified by format instead: MAT-file header, readable EEG structure, and "
           ".fdt size = nbchan x pnts x trials x 4 bytes. The SHA256 of what was downloaded "
           "is recorded in the dataset folder's .meeg-inverse.json. The URLs are pinned to "
           f"mne-testing-data tag {MNE_TESTING_RELEASE} (the one MNE-Python 1.13 uses)."),
    validate=validate_eeglab,
))
