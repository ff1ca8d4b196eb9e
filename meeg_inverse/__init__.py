"""meeg-inverse: sparse M/EEG source localization.

The Python API takes and returns MNE objects:

- :func:`sparse_inverse` — a drop-in for :func:`mne.inverse_sparse.mixed_norm`
  with non-convex penalties and automatic lambda;
- :class:`SparseInverse` — the same as a scikit-learn style estimator;
- :func:`localize_epochs`, :func:`localize_raw` — entry points for epochs and
  time windows of raw recordings;
- :class:`InputError` — raised for bad input, with the problem and the fix.
"""

__version__ = "0.1.0"

from .api import SparseInverse, SparseInverseResult, localize_epochs, localize_raw, sparse_inverse
from .errors import InputError

__all__ = ["InputError", "SparseInverse", "SparseInverseResult", "localize_epochs",
           "localize_raw", "sparse_inverse", "__version__"]
