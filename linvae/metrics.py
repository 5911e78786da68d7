"""Collapse diagnostics: per-dim KL, (ε, δ)-collapse, active units, log-likelihood.

Every function takes plain arrays (NumPy, or anything ``numpy.asarray`` understands; torch
tensors are detached and moved to the CPU) and returns NumPy, so the same metrics serve the
linear fits of this package and any torch model whose forward pass exposes ``mu`` and ``std``
(or ``logvar``).

References
----------
Lucas, Tucker, Grosse & Norouzi (2019), *Don't Blame the ELBO! A Linear VAE Perspective on
Posterior Collapse* — (ε, δ)-collapse.  Burda, Grosse & Salakhutdinov (2016), *Importance
Weighted Autoencoders* — active units and importance-sampled log-likelihood.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _config
from ._deps import import_optional
from .theory._common import _LOG_2PI
from ._kl import (_check_2d, _check_finite, _check_xy, _host_fit, _np,  # noqa: F401
                  gaussian_kl_terms, kl_per_dim, kl_per_example)

logger = logging.getLogger(__name__)

__all__ = [
    "kl_per_dim",
    "epsilon_delta_collapse",
    "collapse_curve",
    "active_units_variance",
    "active_units_kl",
    "log_likelihood_is",
    "exact_log_likelihood",
    "kl_per_example",
    "logmeanexp",
    "gaussian_kl_terms",
    "plot_collapse_curve",
]



def _check_kl(kl):
    kl = _check_2d(_np(kl, "kl"), "kl")
    if np.any(np.isnan(kl)):
        raise ValueError("kl contains NaN")
    return kl


def _check_delta(delta):
    delta = float(delta)
    if not (0.0 <= delta < 1.0):
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    return delta


def epsilon_delta_collapse(kl: Any, eps: float, delta: float = 0.05) -> np.ndarray:
    """Which latent dims are (ε, δ)-collapsed.

    Parameters
    ----------
    kl : array_like (n_samples, latent_dim)
        Per-example, per-dim KL (e.g. from :func:`kl_per_dim`).
    eps : float
        ε > 0.
    delta : float
        δ in [0, 1).

    Returns
    -------
    ndarray of bool (latent_dim,)
        Dim i is collapsed when ``P_x[KL_i(x) < ε] ≥ 1 − δ``.

    Notes
    -----
    Lucas et al. (2019); the paper uses δ = 0.05 (Figs 2–3) and 0.01 (Fig 5).
    """
    return collapse_curve(kl, [eps], delta, per_dim=True)[0]


def collapse_curve(kl: Any, eps_grid: Union[Sequence[float], Any], delta: float = 0.05,
                   per_dim: bool = False) -> np.ndarray:
    """Number of (ε, δ)-collapsed dims for every ε of a grid (the paper's collapse plots).

    Parameters
    ----------
    kl : array_like (n_samples, latent_dim)
        Per-example, per-dim KL (e.g. from :func:`kl_per_dim`).
    eps_grid : array_like (n_eps,)
        ε values > 0 (a log-spaced grid in the paper).
    delta : float
        δ in [0, 1).
    per_dim : bool
        Return the (n_eps, latent_dim) boolean masks instead of counts.

    Returns
    -------
    ndarray of int (n_eps,) or bool (n_eps, latent_dim)
        Number of (ε, δ)-collapsed dims per ε, or the per-dim masks.
    """
    kl = _check_kl(kl)
    eps_grid = np.atleast_1d(_np(eps_grid, "eps_grid"))
    if eps_grid.ndim != 1 or np.any(~np.isfinite(eps_grid)) or np.any(eps_grid <= 0):
        raise ValueError(f"eps must be finite values > 0, got {eps_grid!r}")
    delta = _check_delta(delta)
    n = kl.shape[0]
    ordered = np.sort(kl, axis=0)
    # number of examples with KL < ε, per dim and ε (vectorized with searchsorted per column)
    below = np.stack([np.searchsorted(ordered[:, j], eps_grid, side="left") for j in range(kl.shape[1])], axis=1)
    masks = below >= (1.0 - delta) * n - _config.ROUNDOFF_RTOL * n
    return masks if per_dim else masks.sum(axis=1)


def active_units_variance(mu: Any, threshold: float = 0.01,
                          return_variances: bool = False) -> Union[int, Tuple[int, np.ndarray]]:
    """Active units of Burda et al. (2016): dims whose encoder mean varies across the data.

    ``A_i = Cov_x(E_q[z_i]) > threshold``, counted in units.

    Parameters
    ----------
    mu : array_like (n_samples, latent_dim)
        Encoder means ``E_q[z | x]`` of a data set.
    threshold : float
        A dim is active when its variance exceeds this (Burda et al.: 0.01).
    return_variances : bool
        Also return the per-dim variances.

    Returns
    -------
    int, or (int, ndarray)
        The number of active units (and the per-dim variances).
    """
    mu = _check_finite(_check_2d(_np(mu, "mu"), "mu"), "mu")
    if mu.shape[0] < 2:
        raise ValueError("mu needs at least 2 samples to estimate a variance")
    var = np.var(mu, axis=0, ddof=1)
    count = int(np.sum(var > float(threshold)))
    return (count, var) if return_variances else count


def active_units_kl(kl: Any, threshold: float = 0.01) -> float:
    """The authors' scripts' "AU": fraction of (example, dim) pairs with ``KL_i(x) ≥ threshold``.

    This is not Burda et al.'s active-unit count (see :func:`active_units_variance`); it is a
    fraction in [0, 1].

    Parameters
    ----------
    kl : array_like (n_samples, latent_dim)
        Per-example, per-dim KL.
    threshold : float
        KL threshold, nats.

    Returns
    -------
    float
        Fraction of (example, dim) pairs whose KL is at least ``threshold``.
    """
    kl = _check_kl(kl)
    return float(np.mean(kl >= float(threshold)))


def logmeanexp(a, axis=None):
    """``log(mean(exp(a)))`` computed stably."""
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else out.item()


# ------------------------------------------------------------------------------- linear fits

def exact_log_likelihood(result: Any, X: Any, Y: Optional[Any] = None) -> np.ndarray:
    """Exact per-example marginal log-likelihood of a linear Gaussian fit (nats).

    ``log p(x)`` for the VAE and MHVAE, ``log p(y|x)`` for the CVAE. The oracle for
    :func:`log_likelihood_is`.

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
    ndarray (n_samples,)
        Log-likelihood of each example, nats.

    Notes
    -----
    Linear VAE: ``x ~ N(0, η_enc²UUᵀ + η_dec²I)``; CVAE: ``y|x ~ N(U₂x, η_enc²U₁U₁ᵀ + η_dec²I)``;
    MHVAE: ``x ~ N(0, U₁(η_enc²U₂U₂ᵀ + η_dec²I)U₁ᵀ + η_dec²I)``.
    """
    result = _host_fit(result)
    X, Y = _check_xy(result, X, Y)
    cov = result.marginal_cov()
    target = (X if Y is None else Y) - result.marginal_mean(X)      # Y is given for the CVAE only
    L = np.linalg.cholesky(cov)
    sol = np.linalg.solve(L, target.T)
    logdet = 2 * np.sum(np.log(np.diag(L)))
    return -0.5 * (np.sum(sol**2, axis=0) + logdet + cov.shape[0] * _LOG_2PI)


def log_likelihood_is(model, X, Y=None, *, n_samples=1000, batch_size=None, seed=0, progress=False,
                      log_weights=None) -> np.ndarray:
    """Importance-sampled marginal log-likelihood per example, the encoder as proposal.

    ``log p(x) ≈ logmeanexp_s [log p(x|z_s) + log p(z_s) − log q(z_s|x)]``, ``z_s ~ q(z|x)``
    (``log p(y|x)`` for conditional models).  Samples are drawn in batches of ``batch_size``
    and combined with a streaming log-sum-exp, so memory is bounded independently of
    ``n_samples``.

    Parameters
    ----------
    model : VAEFit, CVAEFit, MHVAEFit, or a model with a ``log_weights`` adapter
        Linear fits are handled here; for other models pass ``log_weights``.
    X, Y : array_like
        Data (the condition and target for conditional models; ``Y`` None otherwise).
    n_samples : int
        S (the paper: 1,000–10,000).
    batch_size : int, optional
        Samples per batch (default: as many as keep the temporaries near 64 MB).
    seed : int
        Seed of ``numpy.random.default_rng``.
    progress : bool
        Show a progress bar (tqdm).
    log_weights : callable, optional
        ``log_weights(rng, s) -> array (s, n)`` of log importance weights for ``s`` samples;
        overrides the linear-fit computation (the torch backend supplies one).

    Returns
    -------
    ndarray (n,)
        Per-example estimates in nats (average them for the paper's tables).

    Notes
    -----
    For linear fits :func:`exact_log_likelihood` is the exact value.
    """
    from ._validation import check_int

    n_samples = check_int(n_samples, "n_samples")
    rng = np.random.default_rng(seed)
    if log_weights is None:
        model = _host_fit(model)
        X, Y = _check_xy(model, X, Y)
        n = X.shape[0]
        width = X.shape[1] + (0 if Y is None else Y.shape[1])

        def log_weights(rng, s):
            return model._log_weights(X, Y, rng, s)
    else:
        n = len(X)
        width = int(np.prod(np.shape(X)[1:])) if np.ndim(X) > 1 else 1
    if batch_size is None:
        # about 64 MB per batch: each sample needs a few (n, width) float64 temporaries
        batch_size = max(1, min(n_samples, (64 * 1024 * 1024) // (32 * max(1, n) * max(1, width))))
    batch_size = check_int(batch_size, "batch_size")
    bar = None
    if progress:
        bar = import_optional("tqdm.auto").tqdm(total=n_samples, desc="IS log-likelihood", unit="sample")
    running_max = np.full(n, -np.inf)
    running_sum = np.zeros(n)
    done = 0
    try:
        while done < n_samples:
            s = min(batch_size, n_samples - done)
            lw = np.asarray(log_weights(rng, s), dtype=np.float64)
            if lw.shape != (s, n):
                raise ValueError(f"log_weights returned shape {lw.shape}, expected {(s, n)}")
            if np.any(np.isnan(lw)) or np.any(lw == np.inf):
                raise FloatingPointError("non-finite log importance weights (NaN or +inf)")
            m = np.maximum(running_max, lw.max(axis=0))
            safe = np.where(np.isfinite(m), m, 0.0)
            running_sum = running_sum * np.exp(running_max - safe) + np.sum(np.exp(lw - safe), axis=0)
            running_max = m
            done += s
            if bar is not None:
                bar.update(s)
    finally:
        if bar is not None:
            bar.close()
    return np.log(running_sum / n_samples) + running_max


def plot_collapse_curve(eps_grid, counts, ax=None, label=None, theory=None, **kwargs):
    """Plot the number of (ε, δ)-collapsed dims against ε on a log axis (the paper's style).

    Parameters
    ----------
    eps_grid, counts : array_like
        From :func:`collapse_curve`.
    ax : matplotlib Axes, optional
    label : str, optional
    theory : int, optional
        A predicted collapsed count, drawn as a dashed line.

    Returns
    -------
    matplotlib Axes
    """
    plt = import_optional("matplotlib.pyplot")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.step(np.asarray(eps_grid), np.asarray(counts), where="post", label=label, **kwargs)
    if theory is not None:
        ax.axhline(theory, ls="--", color="0.4", lw=1, label="theory")
    ax.set_xscale("log")
    ax.set_xlabel("ε")
    ax.set_ylabel("collapsed latent dims")
    if label is not None or theory is not None:
        ax.legend(frameon=False)
    return ax
