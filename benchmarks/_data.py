"""Seeded synthetic data shared by the asv suites."""
import numpy as np


def spectrum_data(n, d, seed=0):
    """(n, d) data whose second moment has a smoothly decaying spectrum."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(3.0, 0.05, d)


def cvae_data(n, dx, dy, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx))
    Y = X @ rng.normal(size=(dx, dy)) * 0.3 + rng.normal(size=(n, dy)) * np.linspace(1.5, 0.1, dy)
    return X, Y
