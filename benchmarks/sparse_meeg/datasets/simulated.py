"""Random Gaussian gain with a few active blocks (fast, no data needed)."""

from benchopt import BaseDataset, safe_import_context

with safe_import_context() as import_ctx:
    import numpy as np


class Dataset(BaseDataset):
    name = "simulated"
    parameters = {"n_orient": [1, 3]}

    def get_data(self):
        rng = np.random.default_rng(0)
        n_channels, n_sources, n_times = 100, 500, 20
        G = np.asfortranarray(rng.standard_normal((n_channels, n_sources * self.n_orient)))
        X = np.zeros((n_sources * self.n_orient, n_times))
        X[: 5 * self.n_orient] = rng.standard_normal((5 * self.n_orient, n_times))
        M = G @ X + 0.1 * rng.standard_normal((n_channels, n_times))
        return dict(G=G, M=M, n_orient=self.n_orient)
