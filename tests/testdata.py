"""Small synthetic data sets shared by several test files (plain functions, importable because
conftest.py puts tests/ on sys.path)."""
import numpy as np

import naive


def vae_data(seed=0, n=300, scales=(3.0, 1.5, 0.8, 0.4, 0.1)):
    return naive.make_data(n, len(scales), np.asarray(scales), seed)


def cvae_data(seed=0, n=300, dx=4, dy=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx))
    Y = 0.7 * X @ rng.normal(size=(dx, dy)) + rng.normal(size=(n, dy)) * [1.5, 0.6, 0.2]
    return X, Y
