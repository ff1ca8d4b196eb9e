"""meeg-inverse: sparse M/EEG source localization.

The Python API takes and returns MNE objects:

- :func:`sparse_inverse` — a drop-in for :func:`mne.inverse_sparse.mixed_norm`
  with non-convex penalties and automatic lambda;
- :class:`SparseInverse` — the same as a scikit-learn style estimator;
- :func:`make_sparse_inverse_operator` — prepare once (whitener, weights,
  whitened gain), then :meth:`SparseInverseOperator.apply` to many evokeds;
- :func:`localize_epochs`, :func:`localize_raw` — entry points for epochs and
  time windows of raw recordings;
- :class:`InputError` — raised for bad input, with the problem and the fix.

The names are imported on first use (PEP 562), so that ``meeg-inverse --help``
and argument errors answer without importing MNE.
"""

__version__ = "0.1.0"

from ._cache_env import ensure_numba_cache
from .errors import InputError

ensure_numba_cache()  # before any @njit(cache=True) kernel is defined (read-only installs)

_LAZY = {
    "SparseInverse": "api", "SparseInverseResult": "api", "localize_epochs": "api",
    "localize_raw": "api", "sparse_inverse": "api",
    "SparseInverseOperator": "operator", "make_sparse_inverse_operator": "operator",
    "read_sparse_inverse_operator": "operator",
}

__all__ = ["InputError", "SparseInverse", "SparseInverseOperator", "SparseInverseResult",
           "localize_epochs", "localize_raw", "make_sparse_inverse_operator",
           "read_sparse_inverse_operator", "sparse_inverse", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
