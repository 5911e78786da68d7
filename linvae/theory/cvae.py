"""Exact global minimizer of the linear CVAE with learnable Σ (Thm 2)."""
from dataclasses import dataclass, field

import numpy as np

from .. import objectives
from .._kl import kl_per_dim
from ..stats import cvae_residual
from ._common import FitResultMixin, as_float, gaussian_kl, normal, pad
from .vae import thm4_spectra

__all__ = ["thm2_spectra", "cvae_learnable", "cvae_basis", "cvae_spectra", "cvae_fits", "CVAEFit"]


def thm2_spectra(theta, beta, eta_enc, eta_dec):
    """Per-mode optimum of the linear CVAE (vectorized, broadcasting).

    Parameters
    ----------
    theta : array_like
        Variance-like θ: eigenvalues of ``E`` (clipped at 0).

    Returns
    -------
    omega, lambda_, sigma, collapsed : ndarray

    Notes
    -----
    Thm 2: ``ω_i = √max(0, θ_i − βη_dec²)/η_enc``; ``σ_i = √β η_enc η_dec/√θ_i`` if
    ``θ_i ≥ βη_dec²`` else ``η_enc`` (the threshold is on the variance θ, SPEC §7.1). It is
    Thm 4 applied to the residual ``y − U₂*x`` with ``θ^VAE = √θ``.
    """
    return thm4_spectra(np.sqrt(np.maximum(np.asarray(theta, dtype=float), 0.0)), beta, eta_enc, eta_dec)


@dataclass(frozen=True, repr=False)
class CVAEFit(FitResultMixin):
    """Fitted linear CVAE.

    Attributes
    ----------
    theta : ndarray (latent_dim,)
        Eigenvalues of E (variance-like) assigned to each latent dim.
    omega, lambda_, sigma, collapsed, kl_per_dim : ndarray (latent_dim,)
    W1 : (dz, dx), W2 : (dz, dy), U1 : (dy, dz), U2 : (dy, dx)
        Encoder mean ``W₁x + W₂y``; decoder mean ``U₁z + U₂x``.
    """

    model: str
    theorem: str
    beta: float
    eta_enc: float
    eta_dec: float
    theta: np.ndarray
    omega: np.ndarray
    lambda_: np.ndarray
    sigma: np.ndarray
    collapsed: np.ndarray
    kl_per_dim: np.ndarray
    loss: float
    W1: np.ndarray
    W2: np.ndarray
    U1: np.ndarray
    U2: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    data_theta: np.ndarray
    solver: str = "closed_form"
    n_iter: int = None
    history: dict = field(default=None)
    #: True when η_dec was learned (``eta_dec="learnable"``, a profile over the closed forms)
    eta_dec_learned: bool = False

    def encode(self, X, Y):
        """Encoder mean ``W₁x + W₂y`` (rows) and standard deviations σ."""
        X = as_float(self.xp, X) - self.mean_x
        Y = as_float(self.xp, Y) - self.mean_y
        return X @ self.W1.T + Y @ self.W2.T, self.sigma.copy()

    def decode(self, Z, X):
        """Decoder mean ``U₁z + U₂x`` of y."""
        X = as_float(self.xp, X) - self.mean_x
        return as_float(self.xp, Z) @ self.U1.T + X @ self.U2.T + self.mean_y

    def check_inputs(self, X, Y=None):
        """``(X, Y)`` validated for this fit (the CVAE needs the target ``Y``)."""
        from .._validation import check_pair

        if Y is None:
            raise ValueError("a CVAE fit needs Y (the target) as well as X")
        X, Y = check_pair(X, Y)
        expect = (self.W1.shape[1], self.W2.shape[1])
        if (X.shape[1], Y.shape[1]) != expect:
            raise ValueError(f"X and Y must have {expect} features, got {X.shape[1]} and {Y.shape[1]}")
        return X, Y

    def _kl_terms(self, X, Y):
        """Per-example, per-dim ``KL(q(z|x, y) ‖ p(z))`` of validated data."""
        mu, std = self.encode(X, Y)
        return kl_per_dim(mu, std=std, prior_std=self.eta_enc)

    def _log_weights(self, X, Y, rng, n_samples):
        """Log importance weights (n_samples, n) of ``log p(y|x)``, ``q(z|x, y)`` as proposal."""
        n = X.shape[0]
        mu, std = self.encode(X, Y)
        z = mu[None] + std * rng.standard_normal((n_samples, n, mu.shape[1]))
        mean = self.decode(z.reshape(-1, z.shape[-1]), np.tile(X, (n_samples, 1))).reshape(n_samples, n, -1)
        return self._encoder_log_weights(Y, mean, z, mu, std)

    def marginal_mean(self, X):
        """Mean of ``p(y|x)`` for each row of ``X``: ``U₂x`` (plus the target mean when centred)."""
        return self.decode(self.xp.zeros((len(X), self.U1.shape[1])), X)

    def marginal_cov(self):
        """Covariance of ``p(y|x) = N(U₂x, η_enc²U₁U₁ᵀ + η_dec²I)`` (the same for every x)."""
        xp = self.xp
        return self.eta_enc**2 * self.U1 @ self.U1.T + self.eta_dec**2 * xp.eye(self.U1.shape[0])

    def sample(self, X, seed=None, noise=True):
        """Sample y given each row of ``X`` (``z ~ N(0, η_enc² I)``)."""
        X = as_float(self.xp, X)
        rng = np.random.default_rng(seed)
        z = normal(self.xp, rng, self.eta_enc, (X.shape[0], self.U1.shape[1]))
        y = self.decode(z, X)
        if noise:
            y = y + normal(self.xp, rng, self.eta_dec, y.shape)
        return y


def cvae_basis(moments, latent_dim, rtol=None):
    """The data's side of Thm 2, computed once for any hyperparameter grid.

    Returns
    -------
    U2 : ndarray (dy, dx)
        ``E[yxᵀ]E[xxᵀ]⁻¹``.
    theta_full : ndarray
        Eigenvalues of the residual covariance E (variance-like, descending).
    theta_modes : ndarray (latent_dim,)
        The first ``latent_dim`` of them (0 for surplus dims).
    Q : ndarray (dy, k)
        Eigenvectors of E.
    """
    _, U2, theta_full, Q = cvae_residual(moments, rtol)
    return U2, theta_full, pad(theta_full, latent_dim), Q


def cvae_spectra(theta_modes, beta, eta_enc, eta_dec):
    """Per-dim optimum of the linear CVAE for a grid of configurations (one row each).

    Returns
    -------
    dict
        Arrays of shape (n_configs, latent_dim): ``omega``, ``lambda_``, ``sigma``, ``collapsed``,
        ``kl_per_dim``.

    Notes
    -----
    Thm 2 (:func:`thm2_spectra`).
    """
    beta, eta_enc, eta_dec = (np.reshape(np.asarray(v, dtype=float), (-1, 1)) for v in (beta, eta_enc, eta_dec))
    omega, lam, sigma, collapsed = thm2_spectra(theta_modes[None, :], beta, eta_enc, eta_dec)
    kl = np.where(collapsed, 0.0, gaussian_kl(lam**2, sigma**2, eta_enc**2))
    return dict(omega=omega, lambda_=lam, sigma=sigma, collapsed=collapsed, kl_per_dim=kl)


def cvae_fits(moments, latent_dim, beta, eta_enc, eta_dec, rtol=None):
    """Exact global minimizers of the linear CVAE for a grid of configurations.

    Parameters
    ----------
    moments : Moments
        Must include Y.
    latent_dim : int
    beta, eta_enc, eta_dec : 1-D array_like
        Equally long columns, one value per configuration.
    rtol : float, optional

    Returns
    -------
    list of CVAEFit

    Notes
    -----
    Thm 2 (see :func:`cvae_learnable`); the residual decomposition is computed once.
    """
    U2, theta_full, theta, Q = cvae_basis(moments, latent_dim, rtol)
    s = cvae_spectra(theta, beta, eta_enc, eta_dec)
    n = len(s["omega"])
    beta, eta_enc, eta_dec = (np.broadcast_to(np.ravel(np.asarray(v, dtype=float)), (n,))
                              for v in (beta, eta_enc, eta_dec))
    dy = moments.dy
    k = min(latent_dim, Q.shape[1])
    centered = moments.centered
    out = []
    for b in range(n):
        omega, lam, sigma, collapsed, kl = (s[name][b].copy() for name in
                                            ("omega", "lambda_", "sigma", "collapsed", "kl_per_dim"))
        W2 = np.zeros((latent_dim, dy))
        U1 = np.zeros((dy, latent_dim))
        W2[:k] = (lam[:k] / np.sqrt(theta[:k]))[:, None] * Q[:, :k].T
        U1[:, :k] = Q[:, :k] * omega[:k]
        W1 = -W2 @ U2
        loss = float(objectives.cvae_loss(moments.xx, moments.xy, moments.yy, W1, W2, U1, U2, sigma,
                                          float(beta[b]), float(eta_enc[b]), float(eta_dec[b])))
        out.append(CVAEFit(
            model="cvae", theorem="Thm 2", beta=float(beta[b]), eta_enc=float(eta_enc[b]),
            eta_dec=float(eta_dec[b]), theta=theta.copy(), omega=omega, lambda_=lam, sigma=sigma,
            collapsed=collapsed, kl_per_dim=kl, loss=loss, W1=W1, W2=W2, U1=U1, U2=U2,
            mean_x=moments.mean_x if centered else np.zeros(moments.dx),
            mean_y=moments.mean_y if centered else np.zeros(dy),
            data_theta=theta_full,
        ))
    return out


def cvae_learnable(moments, latent_dim, beta=1.0, eta_enc=1.0, eta_dec=1.0, rtol=None):
    """Exact global minimizer of the linear CVAE with learnable diagonal Σ.

    Parameters
    ----------
    moments : Moments
        Must include Y.
    latent_dim : int
        dz; dims beyond the rank of E are collapsed.

    Returns
    -------
    CVAEFit

    Notes
    -----
    Thm 2: collapse ⇔ ``θ_i(E) < βη_dec²``; ``U₂* = E[yxᵀ]E[xxᵀ]⁻¹``, ``W₂* = diag(λ_i/√θ_i)Q_kᵀ``,
    ``W₁* = −W₂*U₂*``, ``U₁* = Q_k diag(ω_i)``. Active-dim mean KL ``½ log(θ_i/(βη_dec²))``.
    One configuration of :func:`cvae_fits`.
    """
    return cvae_fits(moments, latent_dim, beta, eta_enc, eta_dec, rtol)[0]
