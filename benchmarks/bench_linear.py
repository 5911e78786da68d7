"""Moments, closed forms, collapse prediction over grids (asv)."""
import numpy as np

import linvae

from ._data import cvae_data, spectrum_data


class Moments:
    params = ([1_000, 20_000], [64, 784])
    param_names = ["n", "d"]

    def setup(self, n, d):
        self.X = spectrum_data(n, d)

    def time_moments(self, n, d):
        linvae.Moments.from_arrays(self.X)

    def time_xtx_alone(self, n, d):
        self.X.T @ self.X

    def peakmem_moments_chunked(self, n, d):
        linvae.Moments.from_arrays(self.X, chunk_size=1000)


class ClosedForm:
    params = (["thm1", "thm2", "thm3", "thm4", "thm5"], [64, 784])
    param_names = ["theorem", "d"]

    def setup(self, theorem, d):
        X = spectrum_data(2 * d, d)
        self.m = linvae.Moments.from_arrays(X)
        x, y = cvae_data(2 * d, d // 4, d - d // 4)
        self.mc = linvae.Moments.from_arrays(x, y)
        self.kw = {
            "thm1": dict(latent_dim=16, sigma=np.linspace(0.2, 2, 16)),
            "thm2": dict(latent_dim=16),
            "thm3": dict(model="mhvae", latent_dims=(16, 16)),
            "thm4": dict(latent_dim=16),
            "thm5": dict(model="mhvae", latent_dims=(16, 16), sigma2=0.7),
        }[theorem]
        self.target = self.mc if theorem == "thm2" else self.m
        linvae.fit(self.target, **self.kw)       # fills the eigendecomposition cache

    def time_fit_cached_moments(self, theorem, d):
        linvae.fit(self.target, **self.kw)


class PredictGrid:
    params = [1, 100, 10_000]
    param_names = ["grid_points"]

    def setup(self, points):
        self.m = linvae.Moments.from_arrays(spectrum_data(2_000, 256))
        side = int(np.sqrt(points)) or 1
        self.beta = np.linspace(0.1, 5, side)
        self.eta = np.linspace(0.2, 2, max(1, points // side))
        linvae.predict_collapse(self.m, beta=1.0)

    def time_predict_collapse(self, points):
        linvae.predict_collapse(self.m, beta=self.beta, eta_dec=self.eta)


class ClosedFormSweep:
    """A closed-form sweep: one decomposition and one vectorised pass over the grid (linvae._models),
    against the former engine, one ``fit`` per grid point."""

    params = [10, 100]
    param_names = ["grid_points"]

    def setup(self, points):
        self.m = linvae.Moments.from_arrays(spectrum_data(2_000, 256))
        self.beta = np.linspace(0.1, 5, points)
        linvae.fit(self.m, latent_dim=64)        # fills the eigendecomposition cache

    def time_sweep(self, points):
        linvae.sweep(self.m, beta=self.beta, latent_dim=64)

    def time_fit_per_point(self, points):
        for b in self.beta:
            linvae.fit(self.m, beta=float(b), latent_dim=64)
