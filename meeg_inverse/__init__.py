"""meeg-inverse: sparse M/EEG source localization."""

__version__ = "0.1.0"
