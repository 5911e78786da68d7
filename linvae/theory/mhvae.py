"""Exact global minimizers of the linear two-latent MHVAE (Thm 3 and Thm 5)."""
from dataclasses import dataclass, field

import numpy as np

from .. import objectives
from ..stats import vae_spectrum
from .._kl import kl_per_dim
from ._common import FitResultMixin, as_float, gaussian_kl, log_normal, normal, pad, safe_div, sqrt_pos
from .vae import dim_kl, prior_collapse

__all__ = ["thm3_spectra", "thm5_spectra", "thm3_sigma2", "z2_statistics", "mhvae_sigma2_learnable",
           "mhvae_fixed", "mhvae_spectra", "mhvae_fits", "MHVAEFit"]


def _unpaired_lambda(theta, beta1, sigma1):
    """λ of a z₁ mode with no z₂ path (ω = 0): ``√max(0, (σ₁/√β₁)(θ − √β₁σ₁))``."""
    return sqrt_pos(sigma1 / np.sqrt(beta1) * (theta - np.sqrt(beta1) * sigma1))


def thm3_spectra(theta, paired, beta1, beta2, sigma1, eta_enc, eta_dec):
    """Per-mode optimum of the MHVAE with fixed Σ₁ = σ₁²I and learnable Σ₂ (vectorized).

    Parameters
    ----------
    theta : array_like
        Std-like θ of the z₁ modes.
    paired : array_like of bool
        Whether the mode has a z₂ dim (mode index < d₂).
    beta1, beta2, sigma1, eta_enc, eta_dec : array_like

    Returns
    -------
    lambda_, omega, sigma2 : ndarray
    collapsed : ndarray of bool
        ω_i = 0: the z₂ dim equals the prior (σ₂ = η_enc).

    Notes
    -----
    Thm 3. Case A (``σ₁² ≥ (β₂/β₁)η_dec²``): no z₂ dim collapses. Case B: the z₂ dim of mode i
    collapses ⇔ ``θ_i < τ = β₂η_dec²/(√β₁σ₁)``. Always ``σ₂,i² = β₂η_dec²/(β₁ω_i² + β₂c²)``.
    """
    theta, paired, beta1, beta2, sigma1, eta_enc, eta_dec = np.broadcast_arrays(
        *map(np.asarray, (theta, paired, beta1, beta2, sigma1, eta_enc, eta_dec)))
    case_a = sigma1**2 >= (beta2 / beta1) * eta_dec**2
    tau = beta2 * eta_dec**2 / (np.sqrt(beta1) * sigma1)
    live = paired & (case_a | (theta >= tau))
    lam_live = sigma1 * sqrt_pos(theta**2 - beta2 * eta_dec**2) / (np.sqrt(beta2) * eta_dec)
    om_live = sqrt_pos(sigma1**2 * np.maximum(1.0, theta**2 / (beta2 * eta_dec**2))
                       - (beta2 / beta1) * eta_dec**2) / eta_enc
    lam = np.where(live, lam_live, _unpaired_lambda(theta, beta1, sigma1))
    omega = np.where(live, om_live, 0.0)
    return lam, omega, thm3_sigma2(omega, beta1, beta2, eta_enc, eta_dec), omega == 0


def thm5_spectra(theta, paired, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec):
    """Per-mode optimum of the MHVAE with Σ₁ = σ₁²I and Σ₂ = σ₂²I both fixed (vectorized).

    Returns
    -------
    lambda_, omega : ndarray

    Notes
    -----
    Thm 5 with ``K = √(β₁β₂) c``; the first case that applies:
    (1) ``θ ≥ √(Kσ₁σ₂)`` and ``θ ≥ β₂c²σ₂²/(√β₁σ₁)`` (the corrected boundary, SPEC §7.2):
    ``λ = (σ₁²/(Kσ₂))^{1/3}√(θ^{4/3} − (Kσ₁σ₂)^{2/3})``,
    ``ω = (√β₂cσ₁/(β₁σ₂²))^{1/3}√(θ^{2/3} − (β₂²c⁴σ₂⁴/(β₁σ₁²))^{1/3})``;
    (2) ``√β₁σ₁ ≥ √β₂cσ₂``: ``λ = 0``, ``ω = √(√β₂cσ₁/(√β₁σ₂) − (β₂/β₁)c²)``;
    (3) ``θ < √β₁σ₁``: ``λ = ω = 0``; (4) else ``λ = √(σ₁(θ/√β₁ − σ₁))``, ``ω = 0``.
    """
    theta, paired, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec = np.broadcast_arrays(
        *map(np.asarray, (theta, paired, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec)))
    c = eta_dec / eta_enc
    K = np.sqrt(beta1 * beta2) * c
    case1 = (theta >= np.sqrt(K * sigma1 * sigma2)) & (
        theta >= beta2 * c**2 * sigma2**2 / (np.sqrt(beta1) * sigma1))
    case2 = ~case1 & (np.sqrt(beta1) * sigma1 >= np.sqrt(beta2) * c * sigma2)
    lam1 = np.cbrt(sigma1**2 / (K * sigma2)) * sqrt_pos(np.cbrt(theta**4) - np.cbrt((K * sigma1 * sigma2) ** 2))
    om1 = np.cbrt(np.sqrt(beta2) * c * sigma1 / (beta1 * sigma2**2)) * sqrt_pos(
        np.cbrt(theta**2) - np.cbrt(beta2**2 * c**4 * sigma2**4 / (beta1 * sigma1**2)))
    om2 = sqrt_pos(np.sqrt(beta2) * c * sigma1 / (np.sqrt(beta1) * sigma2) - (beta2 / beta1) * c**2)
    lam_rest = _unpaired_lambda(theta, beta1, sigma1)   # cases 3 and 4
    lam = np.where(paired & case1, lam1, np.where(paired & case2, 0.0, lam_rest))
    omega = np.where(paired & case1, om1, np.where(paired & case2, om2, 0.0))
    return lam, omega


@dataclass(frozen=True, repr=False)
class MHVAEFit(FitResultMixin):
    """Fitted linear two-latent MHVAE.

    Attributes
    ----------
    theta, lambda_ : ndarray (d1,)
        θ of the data mode of each z₁ dim and the whitened encoder singular values λ.
    omega : ndarray (d2,)
        Singular values ω of U₂ per z₂ dim (0 for z₂ dims beyond d₁).
    sigma1 : ndarray (d1,), sigma2 : ndarray (d2,)
        Encoder standard deviations; ``sigma`` is ``sigma2``.
    collapsed : ndarray of bool (d2,)
        z₂ dims with ``q(z₂,i|z₁) = p(z₂,i)``.
    kl_per_dim : ndarray (d2,)
        Data-mean KL of each z₂ dim to the prior, nats.
    kl_z1_per_dim : ndarray (d1,)
        Data-mean ``E_q[log q(z₁|x) − log p(z₁|z₂)]`` per z₁ dim, nats (the β₁ term).
    W1 : (d1, d0), W2 : (d2, d1), U1 : (d0, d1), U2 : (d1, d2)
    """

    model: str
    theorem: str
    beta1: float
    beta2: float
    eta_enc: float
    eta_dec: float
    sigma2_learnable: bool
    theta: np.ndarray
    lambda_: np.ndarray
    omega: np.ndarray
    sigma1: np.ndarray
    sigma2: np.ndarray
    collapsed: np.ndarray
    dead: np.ndarray
    kl_per_dim: np.ndarray
    kl_z1_per_dim: np.ndarray
    loss: float
    W1: np.ndarray
    W2: np.ndarray
    U1: np.ndarray
    U2: np.ndarray
    mean: np.ndarray
    data_theta: np.ndarray
    solver: str = "closed_form"
    n_iter: int = None
    history: dict = field(default=None)

    @property
    def sigma(self):
        """σ₂, the standard deviations of the top latent (the one that collapses)."""
        return self.sigma2

    def encode(self, X):
        """Mean and std of ``q(z₁|x)``."""
        return (as_float(self.xp, X) - self.mean) @ self.W1.T, self.sigma1.copy()

    def encode_z2(self, Z1):
        """Mean and std of ``q(z₂|z₁)``."""
        return as_float(self.xp, Z1) @ self.W2.T, self.sigma2.copy()

    def decode(self, Z1):
        """Mean of ``p(x|z₁)``."""
        return as_float(self.xp, Z1) @ self.U1.T + self.mean

    @property
    def n_features(self):
        return self.U1.shape[0]

    def _kl_terms(self, X, Y=None):
        """Per-example, per-dim ``E_{q(z₁|x)} KL(q(z₂|z₁) ‖ p(z₂))`` (the top latent) of validated data."""
        mu = self.encode(X)[0] @ self.W2.T
        spread = np.sum(self.W2**2 * self.sigma1**2, axis=1)       # (W₂Σ₁W₂ᵀ)_ii
        return kl_per_dim(mu, std=self.sigma2, prior_std=self.eta_enc) + 0.5 * spread / self.eta_enc**2

    def _log_weights(self, X, Y, rng, n_samples):
        """Log importance weights (n_samples, n) of validated data, ``q(z₁|x)q(z₂|z₁)`` as proposal."""
        ee2, ed2 = self.eta_enc**2, self.eta_dec**2
        mu1, s1 = self.encode(X)
        z1 = mu1[None] + s1 * rng.standard_normal((n_samples, X.shape[0], mu1.shape[1]))
        mu2, s2 = self.encode_z2(z1)
        z2 = mu2 + s2 * rng.standard_normal(mu2.shape)
        return (log_normal(X, self.decode(z1), ed2) + log_normal(z1, z2 @ self.U2.T, ed2)
                + log_normal(z2, 0.0, ee2) - log_normal(z1, mu1, s1**2) - log_normal(z2, mu2, s2**2))

    def marginal_mean(self, X):
        """Mean of the model's Gaussian marginal ``p(x)`` (the data mean; ``X`` is not used)."""
        return self.mean

    def marginal_cov(self):
        """Covariance of ``p(x) = N(mean, U₁(η_enc²U₂U₂ᵀ + η_dec²I)U₁ᵀ + η_dec²I)``."""
        xp, ed2 = self.xp, self.eta_dec**2
        cov1 = self.eta_enc**2 * self.U2 @ self.U2.T + ed2 * xp.eye(self.U2.shape[0])
        return self.U1 @ cov1 @ self.U1.T + ed2 * xp.eye(self.U1.shape[0])

    def sample(self, n, seed=None, noise=True):
        """Ancestral samples: ``z₂ ~ N(0, η_enc²I)``, ``z₁ ~ N(U₂z₂, η_dec²I)``, ``x ~ N(U₁z₁, η_dec²I)``."""
        rng = np.random.default_rng(seed)
        z2 = normal(self.xp, rng, self.eta_enc, (n, self.U2.shape[1]))
        z1 = z2 @ self.U2.T + normal(self.xp, rng, self.eta_dec, (n, self.U2.shape[0]))
        x = self.decode(z1)
        if noise:
            x = x + normal(self.xp, rng, self.eta_dec, x.shape)
        return x


def thm3_sigma2(omega, beta1, beta2, eta_enc, eta_dec):
    """Thm 3's optimal σ₂ per z₂ dim: ``√(β₂η_dec² / (β₁ω² + β₂c²))`` (= η_enc where ω = 0)."""
    c2 = (eta_dec / eta_enc) ** 2
    return np.sqrt(beta2 * eta_dec**2 / (beta1 * omega**2 + beta2 * c2))


def z2_statistics(omega, lam_modes, sigma1, sigma2, beta1, beta2, eta_enc, eta_dec, npair):
    """Per-z₂-dim encoder gain, dead/collapsed masks and data-mean KL of an MHVAE optimum.

    ``w = β₁ω/(β₁ω² + β₂c²)`` is the z₂ encoder's singular value, the mean square of its output
    ``w²(λ² + σ₁²)`` for the ``npair`` dims paired with a z₁ mode (0 beyond), a dim is dead where
    ω = 0 and collapsed where it is dead with σ₂ = η_enc. Arrays broadcast over a leading grid
    axis (last axis: z₂ dims; ``lam_modes`` and ``sigma1`` over z₁ dims).

    Returns
    -------
    w2, dead, collapsed, kl : ndarrays shaped like ``omega``
    """
    c2 = (eta_dec / eta_enc) ** 2
    w2 = beta1 * omega / (beta1 * omega**2 + beta2 * c2)
    power = np.zeros(np.shape(omega))
    lam = np.broadcast_to(lam_modes, np.broadcast_shapes(np.shape(lam_modes), np.shape(sigma1)))
    s1 = np.broadcast_to(sigma1, lam.shape)
    power[..., :npair] = lam[..., :npair] ** 2 + s1[..., :npair] ** 2
    dead = omega == 0
    collapsed = prior_collapse(dead, sigma2, eta_enc)
    return w2, dead, collapsed, dim_kl(w2**2 * power, sigma2, eta_enc, collapsed)


def _mhvae_result(moments, theorem, latent_dims, theta_full, P, lam_modes, omega_pairs, sigma1,
                  sigma2, beta1, beta2, eta_enc, eta_dec, learnable):
    d1, d2 = latent_dims
    theta = pad(theta_full, d1)
    npair = min(d1, d2)
    # z₂ dims beyond d₁ have no z₁ partner: ω = 0.
    omega = np.zeros(d2)
    omega[:npair] = omega_pairs[:npair]
    w2, dead, collapsed, kl2 = z2_statistics(omega, lam_modes, sigma1, sigma2, beta1, beta2, eta_enc, eta_dec,
                                             npair)
    u1 = safe_div(theta * lam_modes, lam_modes**2 + sigma1**2)
    W1 = np.zeros((d1, moments.dx))
    U1 = np.zeros((moments.dx, d1))
    k = min(d1, P.shape[1])
    W1[:k] = (lam_modes[:k] / theta[:k])[:, None] * P[:, :k].T
    U1[:, :k] = P[:, :k] * u1[:k]
    W2 = np.zeros((d2, d1))
    U2 = np.zeros((d1, d2))
    idx = np.arange(npair)
    W2[idx, idx] = w2[:npair]
    U2[idx, idx] = omega[:npair]
    # β₁ term per z₁ dim: ½[((ωw−1)²(λ²+σ₁²) + ω²σ₂²)/η_dec² − 1 − log(σ₁²/η_dec²)]
    om_m = np.zeros(d1)
    w_m = np.zeros(d1)
    s2_m = np.zeros(d1)
    om_m[:npair], w_m[:npair], s2_m[:npair] = omega[:npair], w2[:npair], sigma2[:npair]
    # written as E(z₁ − ωz₂)² − σ₁² without the subtraction ((a − 1)² − 1 = a(a − 2), a = ωw)
    a = om_m * w_m
    excess = (a - 1.0) ** 2 * lam_modes**2 + a * (a - 2.0) * sigma1**2 + om_m**2 * s2_m**2
    kl1 = gaussian_kl(excess, sigma1**2, eta_dec**2)
    loss = float(objectives.mhvae_loss(moments.xx, W1, W2, U1, U2, sigma1, sigma2, beta1, beta2,
                                       eta_enc, eta_dec))
    return MHVAEFit(
        model="mhvae", theorem=theorem, beta1=beta1, beta2=beta2, eta_enc=eta_enc, eta_dec=eta_dec,
        sigma2_learnable=learnable, theta=theta, lambda_=lam_modes, omega=omega, sigma1=sigma1,
        sigma2=sigma2, collapsed=collapsed, dead=dead, kl_per_dim=kl2, kl_z1_per_dim=kl1, loss=loss,
        W1=W1, W2=W2, U1=U1, U2=U2,
        mean=moments.mean_x if moments.centered else np.zeros(moments.dx), data_theta=theta_full,
    )


def mhvae_spectra(theta_modes, latent_dims, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec):
    """Per-dim optimum of the two-latent MHVAE for a grid of configurations (one row each).

    Parameters
    ----------
    theta_modes : ndarray (d1,)
        θ of the z₁ data modes, descending (0 for surplus dims).
    latent_dims : (int, int)
        (d₁, d₂).
    beta1, beta2, sigma1, eta_enc, eta_dec : float or 1-D array_like
        One value per configuration (equally long, or scalars); σ₁ is isotropic.
    sigma2 : None or float
        None: learnable Σ₂ (Thm 3); else the fixed isotropic σ₂ (Thm 5).

    Returns
    -------
    dict
        ``lambda_`` and ``sigma1`` (n_configs, d₁); ``omega`` and ``sigma2`` (n_configs, d₂), with
        ω = 0 for the z₂ dims beyond d₁; and the z₂ statistics of :func:`z2_statistics`: ``w2``,
        ``dead``, ``collapsed``, ``kl_per_dim`` (n_configs, d₂).

    Notes
    -----
    Thm 3 (:func:`thm3_spectra`, :func:`thm3_sigma2`) and Thm 5 (:func:`thm5_spectra`).
    """
    d1, d2 = latent_dims
    b1, b2, s1, ee, ed = (np.reshape(np.asarray(v, dtype=float), (-1, 1))
                          for v in (beta1, beta2, sigma1, eta_enc, eta_dec))
    theta = theta_modes[None, :]
    paired = (np.arange(d1) < d2)[None, :]
    npair = min(d1, d2)
    if sigma2 is None:
        lam, om_modes, _, _ = thm3_spectra(theta, paired, b1, b2, s1, ee, ed)
    else:
        lam, om_modes = thm5_spectra(theta, paired, b1, b2, s1, sigma2, ee, ed)
    omega = np.zeros((len(lam), d2))
    omega[:, :npair] = om_modes[:, :npair]
    sig2 = thm3_sigma2(omega, b1, b2, ee, ed) if sigma2 is None else np.full(omega.shape, float(sigma2))
    sig1 = np.broadcast_to(s1, lam.shape)
    w2, dead, collapsed, kl = z2_statistics(omega, lam, s1, sig2, b1, b2, ee, ed, npair)
    return dict(lambda_=lam, omega=omega, sigma1=sig1, sigma2=sig2, w2=w2, dead=dead, collapsed=collapsed,
                kl_per_dim=kl)


def mhvae_fits(moments, latent_dims, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec, rtol=None):
    """Exact global minimizers of the MHVAE with fixed Σ₁ for a grid of configurations.

    Parameters
    ----------
    moments : Moments
    latent_dims : (int, int)
    beta1, beta2, sigma1, eta_enc, eta_dec : 1-D array_like
        Equally long columns (or scalars), one value per configuration.
    sigma2 : None or float
        None: learnable Σ₂ (Thm 3); else fixed σ₂ (Thm 5).
    rtol : float, optional

    Returns
    -------
    list of MHVAEFit

    Notes
    -----
    Thm 3 / Thm 5 (see :func:`mhvae_sigma2_learnable`, :func:`mhvae_fixed`); the
    eigendecomposition is computed once.
    """
    d1, d2 = latent_dims
    theta_full, P = vae_spectrum(moments, rtol)
    theta = pad(theta_full, d1)
    s = mhvae_spectra(theta, latent_dims, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec)
    n = len(s["lambda_"])
    b1, b2, s1, ee, ed = (np.broadcast_to(np.ravel(np.asarray(v, dtype=float)), (n,))
                          for v in (beta1, beta2, sigma1, eta_enc, eta_dec))
    theorem = "Thm 3" if sigma2 is None else "Thm 5"
    return [_mhvae_result(moments, theorem, latent_dims, theta_full, P, s["lambda_"][b].copy(),
                          s["omega"][b].copy(), np.full(d1, float(s1[b])), s["sigma2"][b].copy(), float(b1[b]),
                          float(b2[b]), float(ee[b]), float(ed[b]), sigma2 is None)
            for b in range(n)]


def mhvae_sigma2_learnable(moments, latent_dims, beta1=1.0, beta2=1.0, sigma1=0.5, eta_enc=1.0,
                           eta_dec=1.0, rtol=None):
    """Exact global minimizer of the MHVAE with fixed Σ₁ = σ₁²I and learnable diagonal Σ₂.

    Parameters
    ----------
    moments : Moments
    latent_dims : tuple of int
        (d₁, d₂); they may differ. z₂ dims beyond d₁ and z₁ modes beyond d₂ have ω = 0.
    beta1, beta2, sigma1, eta_enc, eta_dec : float

    Returns
    -------
    MHVAEFit

    Notes
    -----
    Thm 3 (see :func:`thm3_spectra`); W₂ singular values ``β₁ω/(β₁ω² + β₂c²)``, U₁ singular
    values ``θλ/(λ² + σ₁²)``. One configuration of :func:`mhvae_fits`.
    """
    return mhvae_fits(moments, latent_dims, beta1, beta2, sigma1, None, eta_enc, eta_dec, rtol)[0]


def mhvae_fixed(moments, latent_dims, beta1=1.0, beta2=1.0, sigma1=0.5, sigma2=1.0, eta_enc=1.0,
                eta_dec=1.0, rtol=None):
    """Exact global minimizer of the MHVAE with Σ₁ = σ₁²I and Σ₂ = σ₂²I both fixed.

    Returns
    -------
    MHVAEFit
        A z₂ dim with ω = 0 is ``dead``; it is ``collapsed`` only if σ₂ = η_enc (fixed variances
        otherwise keep a constant KL > 0).

    Notes
    -----
    Thm 5 (see :func:`thm5_spectra`). One configuration of :func:`mhvae_fits`.
    """
    return mhvae_fits(moments, latent_dims, beta1, beta2, sigma1, float(sigma2), eta_enc, eta_dec, rtol)[0]
