"""Gaussian KL of encoders and of linear fits, per dim and per example (re-exported by :mod:`linvae.metrics`).

It sits below the closed forms (``linvae.theory``), whose results' ``kl_per_example`` method
calls it, and above :func:`linvae.objectives.gaussian_kl`, the formula itself.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .objectives import gaussian_kl

__all__ = ["kl_per_dim", "kl_per_example", "gaussian_kl_terms"]


def _np(a, name):
    """A float64 NumPy array from an array or tensor."""
    if a is None:
        return None
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    else:
        from ._backend import to_host

        a = to_host(a)
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _host_fit(result):
    """A linear fit with NumPy arrays (fits computed from CuPy input live on the GPU)."""
    return result.to_numpy() if hasattr(result, "to_numpy") else result


def _check_2d(a, name):
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, latent_dim), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    return a


def _check_finite(a, name):
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at row {bad[0]}, dim {bad[1]}: {a[tuple(bad)]}); "
                         "encoder means must be finite")
    return a


def kl_per_dim(mu: Any, logvar: Optional[Any] = None, *, std: Optional[Any] = None,
               prior_std: Union[float, Any] = 1.0) -> np.ndarray:
    """KL of ``N(μ, σ²)`` to the prior ``N(0, η²)`` for every example and latent dim (nats).

    Parameters
    ----------
    mu : array_like (n_samples, latent_dim)
        Encoder means.
    logvar : array_like, optional
        Encoder log-variances ``log σ²`` (broadcast against ``mu``). Give this or ``std``.
    std : array_like, optional
        Encoder standard deviations σ (broadcast against ``mu``, e.g. a (latent_dim,) vector).
    prior_std : float or array_like
        η_enc, the prior standard deviation.

    Returns
    -------
    ndarray (n_samples, latent_dim)
        Never summed over dims.

    Notes
    -----
    ``½[(μ² + σ²)/η² − 1 − log(σ²/η²)]``, evaluated as
    ``½[μ²/η² + expm1(ℓ) − ℓ]`` with ``ℓ = log σ² − log η²`` so that dims close to the prior
    (ℓ ≈ 0, the collapsed ones) keep full relative precision and σ from 1e-150 to 1e150 stay
    finite.
    """
    mu = _check_finite(_check_2d(_np(mu, "mu"), "mu"), "mu")
    if (logvar is None) == (std is None):
        raise ValueError("give exactly one of logvar and std")
    prior_std = _np(prior_std, "prior_std")
    if np.any(~np.isfinite(prior_std)) or np.any(prior_std <= 0):
        raise ValueError(f"prior_std must be finite and > 0, got {prior_std!r}")
    if std is not None:
        std = _np(std, "std")
        if np.any(~(std > 0)) or np.any(~np.isfinite(std)):
            raise ValueError("std must contain only finite values > 0 (σ is a standard deviation)")
        logvar = 2.0 * np.log(std)
    else:
        logvar = _np(logvar, "logvar")
        if np.any(~np.isfinite(logvar)):
            raise ValueError("logvar contains NaN or inf")
    try:
        np.broadcast_shapes(np.shape(logvar), mu.shape)
    except ValueError:
        raise ValueError(f"the variances (shape {np.shape(logvar)}) do not broadcast against mu "
                         f"(shape {mu.shape})") from None
    with np.errstate(over="ignore"):
        return gaussian_kl_terms(mu, logvar, 2.0 * np.log(prior_std), np)


def gaussian_kl_terms(mu, logvar, log_prior_var, xp=np):
    """``½[μ²/η² + expm1(ℓ) − ℓ]``, ``ℓ = log σ² − log η²``: the KL formula shared by the NumPy
    metrics and the torch models (``xp`` is ``numpy`` or ``torch``); see :func:`linvae.objectives.gaussian_kl`."""
    return gaussian_kl(mu * mu / xp.exp(log_prior_var), logvar - log_prior_var, xp)


def _check_xy(result, X, Y):
    """``(X, Y)`` validated for a linear fit (each result type knows its inputs)."""
    if not all(callable(getattr(result, m, None)) for m in ("check_inputs", "_kl_terms", "to_numpy")):
        raise TypeError(f"expected a linear fit result (VAEFit, CVAEFit, MHVAEFit), got {type(result).__name__}")
    return result.check_inputs(X, Y)


def kl_per_example(result: Any, X: Any, Y: Optional[Any] = None) -> np.ndarray:
    """Closed-form per-example, per-dim KL of a linear fit (no sampling).

    VAE: ``KL(q(z|x) ‖ p(z))``; CVAE: ``KL(q(z|x, y) ‖ p(z))``; MHVAE: the top latent,
    ``E_{q(z₁|x)} KL(q(z₂|z₁) ‖ p(z₂))``.

    Parameters
    ----------
    result : VAEFit, CVAEFit or MHVAEFit
        A linear fit.
    X : array_like (n_samples, n_features)
        Data (the condition for the CVAE).
    Y : array_like (n_samples, n_targets), optional
        Target of the CVAE.

    Returns
    -------
    ndarray (n_samples, latent_dim)
        KL of each example and latent dim, nats.
    """
    result = _host_fit(result)
    X, Y = _check_xy(result, X, Y)
    return result._kl_terms(X, Y)
