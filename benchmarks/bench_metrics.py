"""Collapse metrics (asv)."""
import numpy as np

import linvae
from linvae import metrics

from ._data import spectrum_data


class LogLikelihoodIS:
    params = [100, 1_000]
    param_names = ["n_samples"]

    def setup(self, S):
        X = spectrum_data(1_000, 64)
        self.res = linvae.fit(X, latent_dim=16, beta=0.5)
        self.X = X[:200]

    def time_is_log_likelihood(self, S):
        metrics.log_likelihood_is(self.res, self.X, n_samples=S)

    def track_is_error_nats(self, S):
        est = metrics.log_likelihood_is(self.res, self.X, n_samples=S)
        return float(np.mean(np.abs(est - metrics.exact_log_likelihood(self.res, self.X))))

    track_is_error_nats.unit = "nats"


class CollapseCurve:
    def setup(self):
        self.kl = np.random.default_rng(0).exponential(size=(10_000, 64))
        self.eps = np.logspace(-6, 1, 200)

    def time_collapse_curve(self):
        metrics.collapse_curve(self.kl, self.eps)
