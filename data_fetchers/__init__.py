"""Fetch the example data sets used with meeg-inverse: MNE 'sample', 'somato', 'fsaverage'
and EEGLAB's sample recording.

Downloads go through pooch (``pooch.retrieve`` with the upstream hashes MNE-Python uses, and
pooch's Untar/Unzip processors), with a downloader that resumes interrupted transfers. Nothing
half-written ever sits in a dataset folder: files are verified, archives extracted into a
temporary folder, and only then renamed into place.

>>> from data_fetchers import fetch_dataset, list_datasets
>>> folder = fetch_dataset("sample")                  # ~/mne_data/MNE-sample-data
>>> fs_dir = fetch_dataset("fsaverage", "/data")      # /data/MNE-fsaverage-data/fsaverage

See docs/datasets.md.
"""

from ._download import ResumableDownloader, file_hash
from ._errors import (
    ChecksumError,
    DatasetError,
    DownloadError,
    IntegrityError,
    UnknownDatasetError,
)
from ._fetch import ENV_VAR, data_root, dataset_path, fetch_dataset, has_dataset, list_datasets
from ._registry import REGISTRY, DatasetSpec, FileSpec, register_dataset

DATASETS = ("sample", "somato", "fsaverage", "eeglab")

__all__ = [
    "fetch_dataset",
    "dataset_path",
    "has_dataset",
    "list_datasets",
    "data_root",
    "register_dataset",
    "DatasetSpec",
    "FileSpec",
    "REGISTRY",
    "DATASETS",
    "ENV_VAR",
    "ResumableDownloader",
    "file_hash",
    "DatasetError",
    "UnknownDatasetError",
    "DownloadError",
    "IntegrityError",
    "ChecksumError",
]
