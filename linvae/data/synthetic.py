"""Synthetic correlated (x, y) pairs (the paper's correlation table)."""
import hashlib

import numpy as np

__all__ = ["correlated_pairs", "CORRELATIONS"]

#: The settings of the paper's table: name -> ρ (None: x independent of y).
CORRELATIONS = {"identical": 1.0, "rho=1/2": 0.5, "rho=1/4": 0.25, "rho=1/8": 0.125, "random": None}


def correlated_pairs(kind, n=1000, dim=128, seed=0):
    """Pairs with ``y ~ N(0, I)`` and ``x = ρy + √(1−ρ²)·noise``.

    Parameters
    ----------
    kind : {"identical", "rho=1/2", "rho=1/4", "rho=1/8", "random"} or float
        ``identical`` is x = y (ρ = 1); ``random`` draws x independently (ρ = 0); a float is ρ.
    n, dim : int
        N = 1000 and dx = dy = 128 in the paper.
    seed : int

    Returns
    -------
    x, y : ndarray (n, dim)
    meta : dict
    """
    if isinstance(kind, str):
        if kind not in CORRELATIONS:
            raise ValueError(f"kind must be one of {list(CORRELATIONS)} or a number in [0, 1], got {kind!r}")
        rho = CORRELATIONS[kind]
        rho = 0.0 if rho is None else rho
    else:
        rho = float(kind)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {rho!r}")
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((n, dim))
    x = rho * y + np.sqrt(1.0 - rho**2) * rng.standard_normal((n, dim))
    h = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()[:16]
    meta = {"source": f"synthetic correlated pairs ({kind}, rho={rho})", "N": n, "shape": [dim],
            "checksum": h, "rho": rho}
    return x, y, meta
