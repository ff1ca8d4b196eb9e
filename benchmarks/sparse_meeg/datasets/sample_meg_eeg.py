"""MNE 'sample' data prepared exactly as ``mne.inverse_sparse.mixed_norm``.

Small surface source space (511 sources, free orientation or fixed via
``n_orient=1``), 'Left Auditory' cropped to 0.05–0.15 s, whitened, time-PCA'd.
Needs ``../shared/data`` (or MEEG_INVERSE_SHARED_DATA) and the cached forward
of the test suite (built on first use, ~1 min).
"""

from benchopt import BaseDataset, safe_import_context

with safe_import_context() as import_ctx:
    import os
    from pathlib import Path

    import mne
    import numpy as np

    from meeg_inverse.solvers.mne_compat import mne_mixed_norm_problem


class Dataset(BaseDataset):
    name = "sample_meg_eeg"
    parameters = {"n_orient": [3, 1]}
    requirements = ["mne"]

    def get_data(self):
        root = Path(__file__).resolve().parents[3]
        shared = Path(os.environ.get("MEEG_INVERSE_SHARED_DATA", root.parent / "shared" / "data"))
        meg = shared / "sample" / "MEG"
        evoked = mne.read_evokeds(meg / "test-ave.fif.gz", condition="Left Auditory",
                                  verbose=False).crop(0.05, 0.15)
        cov = mne.read_cov(meg / "test-cov.fif", verbose=False)
        cached = root / ".cache" / "tests" / "sample-small-meeg-fwd.fif"
        if cached.exists():
            fwd = mne.read_forward_solution(cached, verbose=False)
        else:
            src = mne.read_source_spaces(meg / "sample-small-src.fif.gz", verbose=False)
            bem = shared / "sample" / "subjects" / "sample" / "bem" / "sample-320-320-320-bem-sol.fif"
            fwd = mne.make_forward_solution(evoked.info, meg / "sample_audvis_trunc-trans.fif",
                                            src, bem, meg=True, eeg=True, mindist=0.0,
                                            verbose=False)
        G, M, n_orient = mne_mixed_norm_problem(fwd, evoked, cov, loose=1.0)
        # n_orient=1: every column its own source (what single-row solvers can do)
        return dict(G=np.asfortranarray(G), M=M, n_orient=self.n_orient)
