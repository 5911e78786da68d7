"""Exact global minimizers of the linear VAE (Thm 4: learnable Σ; Thm 1: fixed Σ)."""
from dataclasses import dataclass, field

import numpy as np

from .. import _config, objectives
from .._kl import kl_per_dim
from ..stats import vae_spectrum
from ._common import FitResultMixin, as_float, gaussian_kl, normal, pad, safe_div, sqrt_pos

__all__ = ["thm4_spectra", "thm1_spectra", "thm1_pairing", "prior_collapse", "dim_kl", "vae_learnable",
           "vae_fixed", "vae_basis", "vae_spectra", "vae_fits", "VAEFit"]


def thm4_spectra(theta, beta, eta_enc, eta_dec):
    """Per-mode optimum of the linear VAE with learnable Σ (vectorized, broadcasting).

    Parameters
    ----------
    theta : array_like
        Std-like spectrum θ (singular values of Z), any shape; broadcasts with the rest.
    beta, eta_enc, eta_dec : array_like

    Returns
    -------
    omega, lambda_, sigma : ndarray
        Decoder and whitened-encoder singular values and encoder standard deviations.
    collapsed : ndarray of bool
        ``θ_i² ≤ β η_dec²`` (the posterior equals the prior; at equality too).

    Notes
    -----
    Thm 4 (appendix): ``ω_i = √max(0, θ_i² − βη_dec²)/η_enc``,
    ``λ_i = (η_enc/θ_i)√max(0, θ_i² − βη_dec²)``,
    ``σ_i = √β η_enc η_dec/θ_i`` if ``θ_i ≥ √β η_dec`` else ``η_enc``.
    """
    theta, beta, eta_enc, eta_dec = np.broadcast_arrays(*map(np.asarray, (theta, beta, eta_enc, eta_dec)))
    gap = theta**2 - beta * eta_dec**2
    collapsed = gap <= 0
    omega = sqrt_pos(gap) / eta_enc
    lam = eta_enc * safe_div(sqrt_pos(gap), theta)
    sigma = np.where(collapsed, eta_enc, np.sqrt(beta) * eta_enc * eta_dec * safe_div(1.0, theta))
    return omega, lam, sigma, collapsed


def thm1_spectra(theta, sigma, beta, eta_enc, eta_dec):
    """Per-mode optimum of the linear VAE with fixed Σ, for already paired (θ_i, σ_(i)).

    Returns
    -------
    omega, lambda_ : ndarray
    dead : ndarray of bool
        Encoder row is zero: ``θ_i ≤ √β c σ_(i)``.

    Notes
    -----
    Thm 1 with ``k = √β c``: ``ω_i = √max(0, k(θ_i − kσ_(i))/σ_(i))``,
    ``λ_i = √max(0, σ_(i)(θ_i − kσ_(i))/k)``; the σ's must be paired ascending with θ
    descending (done by :func:`vae_fixed`).
    """
    k = np.sqrt(beta) * eta_dec / eta_enc
    gap = theta - k * sigma
    dead = gap <= 0
    return sqrt_pos(k * gap / sigma), sqrt_pos(sigma * gap / k), dead


@dataclass(frozen=True, repr=False)
class VAEFit(FitResultMixin):
    """Fitted linear VAE (closed form or trained).

    Attributes
    ----------
    theta : ndarray (latent_dim,)
        θ of the data mode assigned to each latent dim (0 for surplus dims).
    omega, lambda_, sigma : ndarray (latent_dim,)
        ω (decoder singular values), λ (whitened encoder singular values), σ (encoder std).
    collapsed : ndarray of bool (latent_dim,)
        ``q(z_i|x)`` equals the prior ``N(0, η_enc²)`` for every x.
    dead : ndarray of bool (latent_dim,)
        Encoder row i is zero (for fixed σ ≠ η_enc this is not collapse).
    kl_per_dim : ndarray (latent_dim,)
        Data-mean KL per latent dim, nats.
    loss : float
        SPEC §2 loss at these parameters.
    W : ndarray (latent_dim, d0), U : ndarray (d0, latent_dim)
        Encoder and decoder in data coordinates.
    """

    model: str
    theorem: str
    beta: float
    eta_enc: float
    eta_dec: float
    sigma_learnable: bool
    theta: np.ndarray
    omega: np.ndarray
    lambda_: np.ndarray
    sigma: np.ndarray
    collapsed: np.ndarray
    dead: np.ndarray
    kl_per_dim: np.ndarray
    loss: float
    W: np.ndarray
    U: np.ndarray
    mean: np.ndarray
    data_theta: np.ndarray
    solver: str = "closed_form"
    n_iter: int = None
    history: dict = field(default=None)
    #: True when η_dec was learned (``eta_dec="learnable"``, a profile over the closed forms)
    eta_dec_learned: bool = False

    def encode(self, X):
        """Encoder mean ``Wx`` (rows) and standard deviations σ."""
        X = as_float(self.xp, X)
        return (X - self.mean) @ self.W.T, self.sigma.copy()

    def decode(self, Z):
        """Decoder mean ``Uz`` (plus the data mean when centred)."""
        return as_float(self.xp, Z) @ self.U.T + self.mean

    @property
    def n_features(self):
        return self.U.shape[0]

    def _kl_terms(self, X, Y=None):
        """Per-example, per-dim ``KL(q(z|x) ‖ p(z))`` of validated data."""
        mu, std = self.encode(X)
        return kl_per_dim(mu, std=std, prior_std=self.eta_enc)

    def _log_weights(self, X, Y, rng, n_samples):
        """Log importance weights (n_samples, n) of validated data, ``q(z|x)`` as proposal."""
        mu, std = self.encode(X)
        z = mu[None] + std * rng.standard_normal((n_samples, X.shape[0], mu.shape[1]))
        return self._encoder_log_weights(X, self.decode(z), z, mu, std)

    def marginal_mean(self, X):
        """Mean of the model's Gaussian marginal ``p(x)`` (the data mean; ``X`` is not used)."""
        return self.mean

    def marginal_cov(self):
        """Covariance of the model's marginal: ``p(x) = N(mean, η_enc²UUᵀ + η_dec²I)``."""
        xp = self.xp
        return self.eta_enc**2 * self.U @ self.U.T + self.eta_dec**2 * xp.eye(self.U.shape[0])

    def sample(self, n, seed=None, noise=True):
        """Draw ``n`` samples from the generative model (``z ~ N(0, η_enc² I)``)."""
        rng = np.random.default_rng(seed)
        z = normal(self.xp, rng, self.eta_enc, (n, self.U.shape[1]))
        x = self.decode(z)
        if noise:
            x = x + normal(self.xp, rng, self.eta_dec, x.shape)
        return x


def thm1_pairing(sigma):
    """``rank_of[j]``: the θ mode (in descending order) that Thm 1 pairs with latent dim j.

    The dim with the r-th smallest fixed σ gets the r-th largest θ (ties keep latent order).
    """
    sigma = np.asarray(sigma, dtype=float)
    rank_of = np.empty(sigma.shape[-1], dtype=int)
    rank_of[np.argsort(sigma, kind="stable")] = np.arange(sigma.shape[-1])
    return rank_of


def prior_collapse(dead, sigma, eta_enc):
    """Collapse of a dim: its encoder row is zero *and* its σ equals the prior's η_enc (SPEC P2)."""
    return dead & np.isclose(sigma, eta_enc, rtol=_config.PRIOR_SIGMA_RTOL, atol=0.0)


def dim_kl(power, sigma, eta_enc, collapsed):
    """Data-mean KL per dim (``power`` = E[m²] of the encoder mean), exactly 0 where collapsed.

    Shapes broadcast, so the same function serves one fit and a grid of configurations.
    """
    return np.where(collapsed, 0.0, gaussian_kl(power, sigma**2, eta_enc**2))


def _vae_result(moments, theorem, theta_full, theta, P_cols, omega, lam, sigma, collapsed, dead,
                beta, eta_enc, eta_dec, learnable):
    latent = theta.shape[0]
    W = np.zeros((latent, moments.dx))
    U = np.zeros((moments.dx, latent))
    live = theta > 0
    W[live] = (lam[live] / theta[live])[:, None] * P_cols[:, live].T
    U[:, live] = P_cols[:, live] * omega[live]
    kl = dim_kl(lam**2, sigma, eta_enc, collapsed)
    loss = float(objectives.vae_loss(moments.xx, W, U, sigma, beta, eta_enc, eta_dec))
    mean = moments.mean_x if moments.centered else np.zeros(moments.dx)
    return VAEFit(
        model="vae", theorem=theorem, beta=beta, eta_enc=eta_enc, eta_dec=eta_dec,
        sigma_learnable=learnable, theta=theta, omega=omega, lambda_=lam, sigma=sigma,
        collapsed=collapsed, dead=dead, kl_per_dim=kl, loss=loss, W=W, U=U, mean=mean,
        data_theta=theta_full,
    )


def _columns(*values):
    """Hyperparameter values (scalars or flat grid columns) as (B, 1) float arrays."""
    return [np.reshape(np.asarray(v, dtype=float), (-1, 1)) for v in values]


def vae_basis(moments, latent_dim, rtol=None):
    """The data's side of the VAE closed forms, computed once for any hyperparameter grid.

    Returns
    -------
    theta_full : ndarray
        θ of every kept mode of ``E[xxᵀ]`` (std-like, descending).
    theta_modes : ndarray (latent_dim,)
        θ of the first ``latent_dim`` modes (0 for surplus dims).
    P_modes : ndarray (dx, latent_dim)
        The matching eigenvectors (0 columns for surplus dims).
    """
    theta_full, P = vae_spectrum(moments, rtol)
    P_modes = np.zeros((moments.dx, latent_dim))
    k = min(latent_dim, P.shape[1])
    P_modes[:, :k] = P[:, :k]
    return theta_full, pad(theta_full, latent_dim), P_modes


def vae_spectra(theta_modes, sigma, beta, eta_enc, eta_dec):
    """Per-dim optimum of the linear VAE for a grid of configurations (one row each).

    Parameters
    ----------
    theta_modes : ndarray (latent_dim,)
        θ of the data modes, descending (:func:`vae_basis`).
    sigma : None or ndarray (latent_dim,)
        None: learnable Σ (Thm 4); else the fixed σ in latent order (Thm 1).
    beta, eta_enc, eta_dec : float or 1-D array_like
        Hyperparameters, one value per configuration (equally long, or scalars).

    Returns
    -------
    dict
        ``order`` (the θ mode of each latent dim, Thm 1's pairing; None for Thm 4) and arrays of
        shape (n_configs, latent_dim): ``theta``, ``omega``, ``lambda_``, ``sigma``, ``collapsed``,
        ``dead``, ``kl_per_dim``.

    Notes
    -----
    Thm 4 (learnable Σ, :func:`thm4_spectra`) and Thm 1 (fixed Σ, :func:`thm1_spectra`; σ
    ascending is paired with θ descending, :func:`thm1_pairing`).
    """
    beta, eta_enc, eta_dec = _columns(beta, eta_enc, eta_dec)
    if sigma is None:
        order = None
        theta = theta_modes[None, :]
        omega, lam, sig, collapsed = thm4_spectra(theta, beta, eta_enc, eta_dec)
        dead = collapsed.copy()
    else:
        order = thm1_pairing(sigma)
        theta = theta_modes[order][None, :]
        omega, lam, dead = thm1_spectra(theta, sigma[None, :], beta, eta_enc, eta_dec)
        sig = np.broadcast_to(sigma, lam.shape)
        collapsed = prior_collapse(dead, sig, eta_enc)
    theta = np.broadcast_to(theta, lam.shape)
    return dict(order=order, theta=theta, omega=omega, lambda_=lam, sigma=sig, collapsed=collapsed, dead=dead,
                kl_per_dim=dim_kl(lam**2, sig, eta_enc, collapsed))


def vae_fits(moments, latent_dim, sigma, beta, eta_enc, eta_dec, rtol=None):
    """Exact global minimizers of the linear VAE for a grid of configurations.

    The eigendecomposition is computed once; the spectra of all configurations in one
    vectorised pass (:func:`vae_spectra`); then one :class:`VAEFit` per configuration.

    Parameters
    ----------
    moments : Moments
    latent_dim : int
    sigma : None or ndarray (latent_dim,)
        None: learnable Σ (Thm 4); else the fixed σ (Thm 1).
    beta, eta_enc, eta_dec : 1-D array_like
        Equally long columns, one value per configuration.
    rtol : float, optional

    Returns
    -------
    list of VAEFit

    Notes
    -----
    Thm 4 and Thm 1 (see :func:`vae_learnable`, :func:`vae_fixed`).
    """
    theta_full, theta_modes, P_modes = vae_basis(moments, latent_dim, rtol)
    s = vae_spectra(theta_modes, sigma, beta, eta_enc, eta_dec)
    P_cols = P_modes if s["order"] is None else P_modes[:, s["order"]]
    theorem = "Thm 4" if sigma is None else "Thm 1"
    beta, eta_enc, eta_dec = (np.broadcast_to(np.ravel(np.asarray(v, dtype=float)), (len(s["theta"]),))
                              for v in (beta, eta_enc, eta_dec))
    rows = [{k: s[k][b].copy() for k in ("theta", "omega", "lambda_", "sigma", "collapsed", "dead")}
            for b in range(len(s["theta"]))]
    return [_vae_result(moments, theorem, theta_full, r["theta"], P_cols, r["omega"], r["lambda_"], r["sigma"],
                        r["collapsed"], r["dead"], float(beta[b]), float(eta_enc[b]), float(eta_dec[b]),
                        sigma is None)
            for b, r in enumerate(rows)]


def vae_learnable(moments, latent_dim, beta=1.0, eta_enc=1.0, eta_dec=1.0, rtol=None):
    """Exact global minimizer of the linear VAE with learnable diagonal Σ.

    Parameters
    ----------
    moments : Moments
    latent_dim : int
        d1; dims beyond the rank of ``E[xxᵀ]`` are collapsed.
    beta, eta_enc, eta_dec : float
    rtol : float, optional
        Rank tolerance (see ``_config.RANK_RTOL``).

    Returns
    -------
    VAEFit

    Notes
    -----
    Thm 4: collapse ⇔ ``θ_i < √β η_dec``; ``W* = diag(λ_i/θ_i) P_kᵀ``, ``U* = P_k diag(ω_i)``.
    One configuration of :func:`vae_fits`.
    """
    return vae_fits(moments, latent_dim, None, beta, eta_enc, eta_dec, rtol)[0]


def vae_fixed(moments, latent_dim, sigma, beta=1.0, eta_enc=1.0, eta_dec=1.0, rtol=None):
    """Exact global minimizer of the linear VAE with fixed Σ = diag(σ²).

    Parameters
    ----------
    sigma : ndarray of shape (latent_dim,)
        Fixed encoder standard deviations, in latent order.

    Returns
    -------
    VAEFit
        Spectra are reported per latent dim in the user's order; latent dim j with the r-th
        smallest σ is paired with the r-th largest θ.

    Notes
    -----
    Thm 1: pairing σ ascending with θ descending is optimal; the encoder row is zero ⇔
    ``θ_i ≤ √β c σ_(i)``; a zero row is collapse only when ``σ_(i) = η_enc`` (otherwise its KL
    is ``½(s − 1 − log s)``, ``s = σ²/η_enc²``, SPEC P2). One configuration of :func:`vae_fits`.
    """
    return vae_fits(moments, latent_dim, np.asarray(sigma, dtype=float), beta, eta_enc, eta_dec, rtol)[0]
