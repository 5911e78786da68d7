"""Gradient-descent training of the linear models on their moment matrices.

The driver sets up the whitened problem (SPEC §2), initializes every configuration of a batch
(seeded, the paper's N(0, 0.1²) on the data-coordinate matrices by default), calls the
batched kernels of :mod:`linvae.kernels` in chunks, records history, shows an optional
progress bar, stops on convergence, and raises :class:`~linvae.exceptions.TrainingDivergedError`
when a run diverges (see :func:`check_diverged`).

Divergence rule: a configuration has diverged when its loss or gradient becomes non-finite, when
its loss explodes, rising above ``L₀ + _config.DIVERGENCE_FACTOR·max(|L₀|, 1)`` with ``L₀`` the
exact loss at the initialization (checked after every chunk of ``history_every`` steps for
``"gd"``/``"adam"`` and after every epoch for ``"minibatch"``), or when the trained parameters
give a non-finite loss, σ or KL in float64.
"""
import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from . import _config, objectives
from ._backend import BACKENDS, resolve, to_host
from ._deps import import_optional
from ._warn import warn as _warn
from .exceptions import ConvergenceWarning, TrainingDivergedError
from .kernels import entry
from .kernels.contract import (DIVERGED, HYPER, RUNNING, KernelOptions, KernelProblem, TrainState, block_shapes, pack,
                               size, unpack)
from .stats import Moments, cvae_residual, vae_spectrum
from .theory._common import gaussian_kl, pad
from .theory.cvae import CVAEFit
from .theory.mhvae import MHVAEFit
from .theory.vae import VAEFit

logger = logging.getLogger(__name__)

__all__ = ["TrainOptions", "train_vae_grid", "train_mhvae_grid", "train_batch", "train_minibatch", "hyper_rows", "BACKENDS"]


@dataclass
class TrainOptions:
    """Optimizer settings (built and validated by :func:`linvae._spec.build`; defaults from ``_config``).

    Attributes
    ----------
    solver : {"gd", "adam"}
    lr : float or None
        Learning rate; None picks a default from the data scale (see :func:`_default_lr`).
    max_iter : int
    tol : float
        Relative loss change per step below which a config may stop.
    gtol : float
        Gradient norm (relative to ``max(1, |L|)``) below which a config may stop.
    clip : float
        Clip gradients to this global norm (0: off), like the paper's scripts.
    lr_decay : float
        ``lr_t = lr / (1 + lr_decay·t)``.
    adapt : float
        GD only: halve the step after a loss increase, else grow it by ``1 + adapt``.
    momentum : float
        GD only: heavy-ball momentum (0: plain GD); the velocity restarts after a loss increase.
    init_scale : float
        Standard deviation of the random initialization of the data-coordinate matrices.
    seed : int or sequence
    history_every : int
        Record loss and per-dim KL every this many steps (and update the progress bar).
    progress : bool
        Show a ``tqdm.auto`` progress bar (needs tqdm: ``pip install "linvae[plot]"``).
    backend : {"numba", "numpy", "cupy"}
    dtype : {"float64", "float32"}
        Precision of the kernels' arrays (moment-space solvers).
    """

    solver: str = "adam"
    lr: float = None
    max_iter: int = 20000
    tol: float = 1e-12
    gtol: float = 1e-7
    clip: float = 0.0
    lr_decay: float = 0.0
    adapt: float = _config.GD_ADAPT
    momentum: float = _config.GD_MOMENTUM
    init_scale: float = 0.1
    seed: object = 0
    history_every: int = 100
    progress: bool = False
    backend: str = "numba"
    b1: float = _config.ADAM_B1
    b2: float = _config.ADAM_B2
    eps: float = _config.ADAM_EPS
    epochs: int = 100
    batch_size: int = 128
    dtype: str = "float64"


# ---------------------------------------------------------------------------------------------
# Problems: whitening, initialization, and mapping back to data coordinates
# ---------------------------------------------------------------------------------------------

def _half(P, phi, power):
    """``P diag(φ^power)``."""
    return P * phi**power


class _VAEProblem:
    """The VAE (q = 0) in the whitened coordinates of the kernels (family ``"vae"``).

    :class:`_CVAEProblem` is its CVAE twin; each knows its whitening, its initialization in
    whitened coordinates, the map back to data coordinates and its result, so the training code
    never asks which model it has.
    """

    family = "vae"          # the kernel family (contract.LAYOUTS) of both models
    always_learns_sigma = False   # σ is learned when no fixed σ is given
    model = "vae"
    single_scale = True     # x is the target: one data scale (sx = t)

    def __init__(self, moments, latent, rtol=None):
        self.moments = moments
        self.k = latent
        self._whiten(moments, rtol)
        self.theta_modes = pad(self.data_theta, latent)
        self.r = self.Z.shape[1]
        self.dims = np.array([self.d, self.k, self.r, self.q], dtype=np.int64)
        self.P_size = size(self.family, self.dims)

    def _whiten(self, moments, rtol):
        theta, P = vae_spectrum(moments, rtol)
        self.phi, self.P = theta**2, P
        self.Z = _half(P, theta**2, 0.5)
        self.d, self.q = moments.dx, 0
        self.data_theta = theta

    def init(self, rng, scale, log_sigma):
        """Random data-coordinate matrices N(0, scale²), mapped to whitened coordinates."""
        k, m = self.k, self.moments
        W = rng.normal(scale=scale, size=(k, m.dx))
        U = rng.normal(scale=scale, size=(m.dx, k))
        return pack([U, W @ _half(self.P, self.phi, 0.5), np.zeros((k, 0)), np.zeros((self.d, 0)), log_sigma])

    def kl_per_dim(self, params, eta_enc, xp=np):
        """Data-mean KL per latent dim (B, k) for a batch of packed parameters of module ``xp``
        (only the (B, k) encoder powers and variances leave the device)."""
        _, V, A, _, s = unpack(self.family, params, self.dims)
        power, var = (to_host(a) for a in (xp.sum(V * V, axis=2) + xp.sum(A * A, axis=2), xp.exp(2 * s)))
        return gaussian_kl(power, var, eta_enc[:, None] ** 2)

    def matrices(self, packed):
        """Data-coordinate matrices and σ of one packed parameter vector."""
        U, V, A, C, s = (b[0] for b in unpack(self.family, packed[None], self.dims))
        return self._data_matrices(U, V, A, C), np.exp(s)

    def _data_matrices(self, U, V, A, C):
        return dict(W=(V / np.sqrt(self.phi)) @ self.P.T, U=U)

    def rescaled(self, mats, sx, t):
        """``mats`` of the problem trained on ``x/sx, y/t`` mapped back to the original data."""
        return dict(W=mats["W"] / sx, U=mats["U"] * sx)

    decoder = "U"           # the decoder matrix of the latent (its column norms are ω)

    def curvature_bound(self, hyper, params=None):
        """GD's ``L`` per config: ``2(θ₁²/η_enc² + η_enc² + βc²) + 8βη_dec²``, plus the squared
        spectral norms of the packed blocks at ``params`` when given."""
        theta1_sq = self.phi[0] if self.phi.size else 1.0
        beta, c2, ed2 = hyper[:, 0], hyper[:, 1], hyper[:, 2]
        eta_enc2 = ed2 / c2
        L = 2 * (theta1_sq / eta_enc2 + eta_enc2 + beta * c2) + 8 * beta * ed2
        if params is not None:
            # the initial point can be far steeper than the optimum (the CVAE's x-path block A
            # starts at (W₁ + W₂U₂*)P_xΦ_x^{1/2}, scaled by the data): bound by its spectral norms
            for b, blocks in enumerate(zip(*unpack(self.family, params, self.dims)[:3])):
                L[b] += 2 * sum(np.linalg.norm(m, 2) ** 2 for m in blocks if m.size)
        return L

    @staticmethod
    def power_and_loss(m, mats, sigma, cfg):
        """Encoder-mean power E[m_i²] per dim and the exact SPEC §2 loss of data-coordinate ``mats``."""
        W = mats["W"]
        loss = objectives.vae_loss(m.xx, W, mats["U"], sigma, cfg["beta"], cfg["eta_enc"], cfg["eta_dec"])
        return np.einsum("ij,jk,ik->i", W, m.xx, W), float(loss)

    @staticmethod
    def fit_result(m, mats, cfg, lam, common):
        return VAEFit(theorem="trained",           # the theorem: _models.Variant.label_trained
                      sigma_learnable=cfg["learn"], dead=lam**2 < _config.COLLAPSE_KL_TOL * cfg["eta_enc"]**2,
                      mean=m.mean_x if m.centered else np.zeros(m.dx), **mats, **common)

    @staticmethod
    def minibatch_arrays(X, Y, dtype):
        """``(condition, target)`` of the data-space minibatch kernel (the VAE has no condition)."""
        return np.zeros((X.shape[0], 0), dtype), np.ascontiguousarray(X, dtype)

    @staticmethod
    def minibatch_matrices(W1, W2, U1, U2):
        """The data-coordinate matrices of the minibatch layout's blocks."""
        return dict(W=W2, U=U1)

    @staticmethod
    def spectrum(moments, rtol):
        """The data spectrum a result reports (``data_theta``), without building the problem."""
        return vae_spectrum(moments, rtol)[0]

    def result(self, packed, cfg, n_iter, history, solver, mats=None):
        """The fit result of ``packed`` (or of given ``mats = (matrices, σ)`` in data coordinates)."""
        mats, sigma = self.matrices(packed) if mats is None else mats
        return linear_result(self.model, self.moments, mats, sigma, cfg, solver, n_iter, history,
                             self.theta_modes, self.data_theta)


class _CVAEProblem(_VAEProblem):
    """The CVAE (q = rank of E[xxᵀ]) in the kernels' whitened coordinates (family ``"vae"``)."""

    model = "cvae"
    single_scale = False    # x and y have their own scales
    always_learns_sigma = True    # Thm 2 has no fixed-σ variant

    def _whiten(self, moments, rtol):
        from .stats import cvae_x_range

        _, self.U2star, ev, Q = cvae_residual(moments, rtol)
        self.phi, self.P = ev, Q
        self.Z = _half(Q, ev, 0.5)
        self.phix, self.Px = cvae_x_range(moments, rtol)
        self.d, self.q = moments.dy, self.Px.shape[1]
        self.data_theta = ev

    def init(self, rng, scale, log_sigma):
        k, m = self.k, self.moments
        W1 = rng.normal(scale=scale, size=(k, m.dx))
        W2 = rng.normal(scale=scale, size=(k, m.dy))
        U = rng.normal(scale=scale, size=(m.dy, k))
        U2 = rng.normal(scale=scale, size=(m.dy, m.dx))
        xh = _half(self.Px, self.phix, 0.5)
        V = W2 @ _half(self.P, self.phi, 0.5)
        A = (W1 + W2 @ self.U2star) @ xh
        C = (U2 - self.U2star) @ xh
        return pack([U, V, A, C, log_sigma])

    def _data_matrices(self, U, V, A, C):
        xinv = self.Px / np.sqrt(self.phix)
        W2 = (V / np.sqrt(self.phi)) @ self.P.T
        return dict(W1=A @ xinv.T - W2 @ self.U2star, W2=W2, U1=U, U2=self.U2star + C @ xinv.T)

    def rescaled(self, mats, sx, t):
        return dict(W1=mats["W1"] / sx, W2=mats["W2"] / t, U1=mats["U1"] * t, U2=mats["U2"] * (t / sx))

    decoder = "U1"

    @staticmethod
    def power_and_loss(m, mats, sigma, cfg):
        W1, W2 = mats["W1"], mats["W2"]
        power = (np.einsum("ij,jk,ik->i", W1, m.xx, W1) + 2 * np.einsum("ij,jk,ik->i", W1, m.xy, W2)
                 + np.einsum("ij,jk,ik->i", W2, m.yy, W2))
        loss = objectives.cvae_loss(m.xx, m.xy, m.yy, W1, W2, mats["U1"], mats["U2"], sigma, cfg["beta"],
                                    cfg["eta_enc"], cfg["eta_dec"])
        return power, float(loss)

    @staticmethod
    def fit_result(m, mats, cfg, lam, common):
        return CVAEFit(theorem="trained", mean_x=m.mean_x if m.centered else np.zeros(m.dx),
                       mean_y=m.mean_y if m.centered else np.zeros(m.dy), **mats, **common)

    @staticmethod
    def minibatch_arrays(X, Y, dtype):
        return np.ascontiguousarray(X, dtype), np.ascontiguousarray(Y, dtype)

    @staticmethod
    def minibatch_matrices(W1, W2, U1, U2):
        return dict(W1=W1, W2=W2, U1=U1, U2=U2)

    @staticmethod
    def spectrum(moments, rtol):
        return cvae_residual(moments, rtol)[2]




def _power_of_two(mean_square):
    """Training scale of data with this mean square: 1 inside ``_config.TRAIN_SCALE_WINDOW``,
    else ``2^round(log2 √mean_square)`` (an exact floating-point rescale)."""
    if not mean_square > 0:
        return 1.0
    rms = np.sqrt(mean_square)
    window = _config.TRAIN_SCALE_WINDOW
    if 1.0 / window <= rms <= window:
        return 1.0
    return float(2.0 ** np.round(np.log2(rms)))


def _gd_scale(phi, eta_enc):
    """Power-of-two target scale ``t`` for plain GD: ``θ₁/t ≈ η_enc²``.

    In whitened coordinates, at the optimum of an active mode i (Thm 4), the loss curvature is
    about ``2η_enc²`` along the decoder column and ``2θ_i²/η_enc²`` along the encoder row, and
    rescaling the target by 1/t (η_dec with it) divides the latter by t² and leaves the former
    alone; the slowest directions (rotations between latent dims, whose curvature scales like
    1/t²) converge fastest when the two largest curvatures are balanced. ``θ₁`` is the largest
    singular value of the whitened target ``Z`` (``φ = θ²``) and ``η_enc²`` the geometric mean
    over the configurations. ``t`` is a power of two, so the rescaling is exact.
    """
    if not phi.size or not phi[0] > 0:
        return 1.0
    log_e2 = float(np.mean(np.log2(np.asarray(eta_enc, dtype=float) ** 2)))
    return float(2.0 ** np.round(0.5 * np.log2(phi[0]) - log_e2))


class _NormalizedVAEProblem:
    """A VAE/CVAE problem trained on data rescaled to unit size, results mapped back exactly.

    Gradient training starts from the paper's N(0, 0.1²) initialization and takes optimizer
    steps of fixed absolute size, so on raw data of scale 1e-6 or 1e6 it cannot reach the
    optimum. The optimum is equivariant under ``x → x/s, y → y/t, η_dec → η_dec/t`` (SPEC §2: the
    reconstruction term is ‖y − ŷ‖²/η_dec² and the encoder absorbs the scale of x), so the
    kernels train the rescaled problem and the matrices are mapped back with
    ``W₁ s⁻¹, W₂ t⁻¹, U₁ t, U₂ t/s`` (VAE: ``W s⁻¹, U s``). ``s`` and ``t`` are powers of two, so the
    rescaling itself is exact. Data whose RMS lies within ``_config.TRAIN_SCALE_WINDOW`` of 1
    trains as given (s = t = 1): plain GD is not equivariant (the decoder block scales with the
    data, the whitened encoder block does not), and on MNIST-scale data (RMS ≈ 0.3) rescaling
    to 1 slows GD by orders of magnitude. The loss history is that of the rescaled problem.

    Plain GD (``solver="gd"`` with the configurations' ``eta_enc``) instead always picks the
    target scale from the whitened spectrum and η_enc (:func:`_gd_scale`), inside the window
    too, so its convergence speed no longer depends on the data's units.
    """

    def __init__(self, moments, model, latent, rtol=None, solver="adam", eta_enc=None):
        m = moments
        kind = PROBLEMS[model]
        self.sx = _power_of_two(np.trace(m.xx) / m.dx)
        self.t = self.sx if kind.single_scale else _power_of_two(np.trace(m.yy) / m.dy)
        probe = None
        if solver == "gd" and eta_enc is not None:
            probe = kind(moments, latent, rtol)
            self.t = _gd_scale(probe.phi, eta_enc)
            if kind.single_scale:
                self.sx = self.t
        sx, t = self.sx, self.t
        unit = (sx, t) == (1.0, 1.0)
        # unit scale: the moments themselves, so their cached eigendecompositions (the accurate
        # Jacobi one costs ≈ 1 s on MNIST pixels) are not computed again for a copy
        scaled = m if unit else Moments(n=m.n, xx=m.xx / sx**2, xy=None if m.xy is None else m.xy / (sx * t),
                                        yy=None if m.yy is None else m.yy / t**2,
                                        mean_x=None if m.mean_x is None else m.mean_x / sx,
                                        mean_y=None if m.mean_y is None else m.mean_y / t, centered=m.centered)
        self.inner = probe if unit and probe is not None else kind(scaled, latent, rtol)
        self.original = self.inner if unit else probe or kind(moments, latent, rtol)

    def __getattr__(self, name):
        # the kernels see the rescaled problem (Z, dims, init, kl_per_dim, ...)
        return getattr(self.inner, name)

    def scale_hyper(self, hyper):
        """Kernel hyperparameter rows ``[β, c², η_dec²]`` of the rescaled problem."""
        out = np.array(hyper, dtype=float, copy=True)
        out[:, 1:3] /= self.t**2
        return out

    def result(self, packed, cfg, n_iter, history, solver):
        mats, sigma = self.inner.matrices(packed)
        mats = self.inner.rescaled(mats, self.sx, self.t)
        return self.original.result(packed, cfg, n_iter, history, solver, mats=(mats, sigma))


def linear_result(model, moments, mats, sigma, cfg, solver, n_iter, history, theta_modes, data_theta):
    """A VAEFit / CVAEFit from trained data-coordinate matrices.

    Per latent dim: ``λ_i² = E[m_i²]`` (the encoder-mean power), ``ω_i = ‖U[:, i]‖``, the exact
    data-mean KL, ``collapsed`` = KL below ``_config.COLLAPSE_KL_TOL``; the loss is the exact
    SPEC §2 loss of the matrices (:mod:`linvae.objectives`). The model-specific parts are the
    ``power_and_loss`` and ``fit_result`` of its problem class (:data:`PROBLEMS`).
    """
    kind = PROBLEMS[model]
    eta_enc = cfg["eta_enc"]
    power, loss = kind.power_and_loss(moments, mats, sigma, cfg)
    lam = np.sqrt(np.maximum(power, 0.0))
    kl = gaussian_kl(lam**2, sigma**2, eta_enc**2)
    U = mats[kind.decoder]
    common = dict(model=model, beta=cfg["beta"], eta_enc=eta_enc, eta_dec=cfg["eta_dec"], theta=theta_modes.copy(),
                  omega=np.sqrt(np.sum(U * U, axis=0)), lambda_=lam, sigma=sigma, collapsed=kl < _config.COLLAPSE_KL_TOL,
                  kl_per_dim=kl, loss=loss, data_theta=np.array(data_theta), solver=solver,
                  n_iter=int(n_iter), history=history)
    return kind.fit_result(moments, mats, cfg, lam, common)


class _MHVAEProblem:
    """Two-latent MHVAE in whitened coordinates."""

    family = "mhvae"
    model = "mhvae"

    def __init__(self, moments, dims, rtol=None):
        theta, P = vae_spectrum(moments, rtol)
        self.moments = moments
        self.phi, self.P = theta**2, P
        self.Z = _half(P, theta**2, 0.5)
        self.d = moments.dx
        self.k1, self.k2 = dims
        self.r = self.Z.shape[1]
        self.theta_modes = pad(theta, self.k1)
        self.dims = np.array([self.d, self.k1, self.r, self.k2], dtype=np.int64)
        self.P_size = size(self.family, self.dims)

    def init(self, rng, scale, log_sigma):
        k1, k2, m = self.k1, self.k2, self.moments
        W1 = rng.normal(scale=scale, size=(k1, m.dx))
        U1 = rng.normal(scale=scale, size=(m.dx, k1))
        U2 = rng.normal(scale=scale, size=(k1, k2))
        W2 = rng.normal(scale=scale, size=(k2, k1))
        V1 = W1 @ _half(self.P, self.phi, 0.5)
        return pack([U1, V1, U2, W2, log_sigma])

    def curvature_bound(self, hyper, params=None):
        """GD's ``L`` per config: the VAE bound with the β₁, β₂-weighted terms of the second latent."""
        theta1_sq = self.phi[0] if self.phi.size else 1.0
        b1, b2, c2, ed2 = hyper.T
        eta_enc2 = ed2 / c2
        wmax = np.maximum(1.0, np.maximum(b1, b2))
        return 2 * wmax * (theta1_sq / eta_enc2 + eta_enc2 + theta1_sq + 2.0 + b2 * c2) + 8 * wmax * ed2

    def _stats(self, params, eta_enc, eta_dec, xp=np):
        """KL per dim of z₂ and z₁ for packed parameters of module ``xp`` (only k-sized blocks
        leave the device)."""
        _, V1, U2, W2, s1, s2 = unpack(self.family, params, self.dims)
        v1, v2 = xp.exp(2 * s1), xp.exp(2 * s2)
        C = V1 @ xp.swapaxes(V1, 1, 2)                  # whitened E[μ₁μ₁ᵀ]; Cov z₁ = C + diag(σ₁²)
        C, U2, W2, v1, v2 = (to_host(a) for a in (C, U2, W2, v1, v2))
        G = C + v1[:, :, None] * np.eye(self.k1)
        z2_power = np.einsum("bij,bjk,bik->bi", W2, G, W2)
        kl2 = gaussian_kl(z2_power, v2, eta_enc[:, None] ** 2)
        # z₁ against p(z₁|z₂) = N(U₂z₂, η_dec²): E(z₁ − U₂z₂)ᵢ² minus σ₁ᵢ², written without that
        # subtraction (A = U₂W₂, M = A − I: [MGMᵀ]ᵢᵢ − σ₁ᵢ² = [MCMᵀ]ᵢᵢ + Σⱼ Aᵢⱼ²σ₁ⱼ² − 2Aᵢᵢσ₁ᵢ²)
        A = U2 @ W2
        M = A - np.eye(self.k1)
        excess = (np.einsum("bij,bjk,bik->bi", M, C, M) + np.einsum("bij,bj->bi", A * A, v1)
                  - 2 * np.diagonal(A, 0, 1, 2) * v1 + np.einsum("bij,bj->bi", U2 * U2, v2))
        kl1 = gaussian_kl(excess, v1, eta_dec[:, None] ** 2)
        return kl2, kl1

    def kl_per_dim(self, params, eta_enc, xp=np, eta_dec=None):
        return self._stats(params, eta_enc, eta_dec if eta_dec is not None else eta_enc, xp)[0]

    def result(self, packed, cfg, n_iter, history, solver):
        U1, V1, U2, W2, s1, s2 = (b[0] for b in unpack(self.family, packed[None], self.dims))
        eta_enc, eta_dec = cfg["eta_enc"], cfg["eta_dec"]
        kl2, kl1 = (x[0] for x in self._stats(packed[None], np.array([eta_enc]), np.array([eta_dec])))
        sigma1, sigma2 = np.exp(s1), np.exp(s2)
        W1 = (V1 / np.sqrt(self.phi)) @ self.P.T
        m = self.moments
        loss = float(objectives.mhvae_loss(m.xx, W1, W2, U1, U2, sigma1, sigma2, cfg["beta1"], cfg["beta2"],
                                           eta_enc, eta_dec, sigma1_learned=cfg["learn1"]))
        # singular values: with an isotropic Σ₂ (Thm 5) z₂ too is identified only up to a rotation
        omega = pad(np.linalg.svd(U2, compute_uv=False), self.k2)
        collapsed = kl2 < _config.COLLAPSE_KL_TOL
        return MHVAEFit(
            model="mhvae", theorem="trained", beta1=cfg["beta1"], beta2=cfg["beta2"],
            eta_enc=eta_enc, eta_dec=eta_dec, sigma2_learnable=cfg["learn2"], theta=self.theta_modes.copy(),
            # Σ₁ is isotropic, so z₁ is identified only up to a rotation: report singular values
            lambda_=np.linalg.svd(V1, compute_uv=False)[:self.k1] if V1.size else np.zeros(self.k1),
            omega=omega, sigma1=sigma1, sigma2=sigma2,
            collapsed=collapsed, dead=omega**2 < _config.COLLAPSE_KL_TOL, kl_per_dim=kl2, kl_z1_per_dim=kl1,
            loss=loss, W1=W1, W2=W2, U1=U1, U2=U2, mean=m.mean_x if m.centered else np.zeros(m.dx),
            data_theta=np.sqrt(self.phi), solver=solver, n_iter=int(n_iter), history=history)


#: the whitened training problem of each model (its ``family`` is the kernel family: the key of
#: ``contract.LAYOUTS`` and ``kernels.entry``); the model registry exposes it as ``Variant.problem``
PROBLEMS = {"vae": _VAEProblem, "cvae": _CVAEProblem, "mhvae": _MHVAEProblem}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def _default_lr(problem, hyper, solver, params=None):
    """Default step sizes per config.

    Adam: ``_config.ADAM_LR`` (used with a 1/t decay, see :func:`linvae.fit`); parameters are
    O(1) in whitened coordinates. GD: ``1/L`` with ``L`` the problem's ``curvature_bound``.
    """
    if solver == "adam":
        return np.full(hyper.shape[0], _config.ADAM_LR)
    return 1.0 / problem.curvature_bound(hyper, params)


def check_kernel_status(status, configs, where, lr, what, detail=lambda b: ""):
    """Raise :class:`TrainingDivergedError` for the first config a kernel marked DIVERGED (its loss
    or gradient stopped being finite); ``where(b) -> (text, step)`` as for :func:`check_diverged`."""
    bad = np.flatnonzero(np.asarray(status) == DIVERGED)
    if bad.size:
        b = int(bad[0])
        text, step = where(b)
        raise TrainingDivergedError(
            f"{what} diverged for config {b} {configs[b]} {text}{detail(b)}; lower lr (was {float(lr[b]):.3g}) or "
            "enable gradient clipping", config=configs[b], index=b, step=step)


def check_diverged(loss, initial, configs, where, lr=None):
    """Raise :class:`TrainingDivergedError` for the first config whose ``loss`` exploded or is non-finite.

    Parameters
    ----------
    loss, initial : ndarray (B,)
        Current and initial losses (configs whose ``initial`` is NaN are not checked).
    configs : list of dict
    where : callable
        ``where(b) -> (text, step)``: the step or epoch of config ``b`` for the message.
    """
    loss = np.asarray(loss, dtype=float)
    initial = np.asarray(initial, dtype=float)
    limit = initial + _config.DIVERGENCE_FACTOR * np.maximum(np.abs(initial), 1.0)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(loss) | (loss > limit)
    bad &= ~np.isnan(initial) | ~np.isfinite(loss)
    if np.any(bad):
        b = int(np.flatnonzero(bad)[0])
        text, step = where(b)
        hint = f"lower lr (was {float(np.ravel(lr)[b]):.3g})" if lr is not None else "lower lr"
        raise TrainingDivergedError(
            f"training diverged for config {b} {configs[b]} {text}: loss {float(loss[b]):.4g} "
            f"{'is not finite' if not np.isfinite(loss[b]) else f'exploded above {float(limit[b]):.4g} ({_config.DIVERGENCE_FACTOR:g}× the initial loss {float(initial[b]):.4g})'}; "
            f"{hint} or enable gradient clipping", config=configs[b], index=b, step=step)


def _check_result(result, config, index, step):
    """A trained result must be finite in float64 (σ = exp(log σ) can underflow after a blow-up)."""
    arrays = [result.loss, result.sigma, result.kl_per_dim]
    if not all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays):
        raise TrainingDivergedError(
            f"training diverged for config {index} {config}: after {step} steps the parameters give loss "
            f"{result.loss!r} and σ in [{float(np.min(result.sigma)):.3g}, {float(np.max(result.sigma)):.3g}] in "
            "float64; lower lr or enable gradient clipping", config=config, index=index, step=step)
    return result


def _progress(total, enabled, desc):
    if not enabled:
        return None
    tqdm = import_optional("tqdm.auto").tqdm
    return tqdm(total=total, desc=desc, unit="step")


def hyper_rows(model, columns):
    """The kernels' hyperparameter rows of flat, equally long hyperparameter columns.

    Parameters
    ----------
    model : {"vae", "cvae", "mhvae"}
    columns : dict of str -> ndarray (B,)
        ``beta`` (VAE/CVAE) or ``beta1``, ``beta2`` (MHVAE), and ``eta_enc``, ``eta_dec``.

    Returns
    -------
    ndarray (B, 3) ``(β, c², η_dec²)`` or, for the MHVAE, (B, 4) ``(β₁, β₂, c², η_dec²)``, with
    ``c = η_dec/η_enc`` (SPEC §2).
    """
    ee, ed = (np.asarray(columns[k], dtype=float) for k in ("eta_enc", "eta_dec"))
    c2 = (ed / ee) ** 2
    return np.stack([np.asarray(columns[k], dtype=float) for k in HYPER[model]] + [c2, ed**2], axis=1)


def _columns(columns, options):
    cols = {k: np.asarray(v) for k, v in columns.items()}
    return cols, dataclasses.replace(options, seed=cols.pop("seed").astype(np.int64))


def train_vae_grid(moments, model, dims, columns, options, *, sigma=None, rtol=None, raw=None):
    """Train validated VAE or CVAE configurations (the ``"vae"`` kernel family) in one batched run.

    Parameters
    ----------
    moments : Moments
    model : {"vae", "cvae"}
        The problem class of :data:`PROBLEMS`.
    dims : int
        Latent size.
    columns : dict of str -> array_like (B,)
        Flat, equally long columns: ``beta``, ``eta_enc``, ``eta_dec`` and ``seed``.
    options : TrainOptions
    sigma : ndarray (k,) or None
        VAE: the fixed σ, or None when σ is learned (the CVAE always learns it).
    rtol : float, optional
        Rank tolerance of the whitening (and of the minibatch results' θ).
    raw : (X, Y) or None
        The raw data for ``options.solver == "minibatch"``.

    Returns
    -------
    list of VAEFit or CVAEFit, one per configuration.
    """
    cols, options = _columns(columns, options)
    ee, ed = cols["eta_enc"], cols["eta_dec"]
    B = len(ee)
    hyper = hyper_rows(model, cols)
    learned = sigma is None or PROBLEMS[model].always_learns_sigma
    learn = np.array([learned])
    log_s = np.log(ee)[:, None] * np.ones(dims) if learned else np.log(np.tile(sigma, (B, 1)))
    configs = [dict(beta=cols["beta"][b], eta_enc=ee[b], eta_dec=ed[b], learn=learned,
                    seed=int(options.seed[b])) for b in range(B)]
    if options.solver == "minibatch":
        return train_minibatch(raw[0], raw[1], model, moments, dims, configs, hyper, log_s, learn,
                               options, options.epochs, options.batch_size, rtol=rtol)
    problem = _NormalizedVAEProblem(moments, model, dims, rtol, options.solver, ee)
    return train_batch(problem, configs, problem.scale_hyper(hyper), log_s, learn, options)


def train_mhvae_grid(moments, dims, columns, options, *, sigma1=None, sigma2=None, rtol=None):
    """Train validated two-latent MHVAE configurations in one batched run.

    ``columns`` holds ``beta1``, ``beta2``, ``eta_enc``, ``eta_dec`` and ``seed``; ``dims`` is
    ``(k1, k2)``; σ₁ / σ₂ are fixed when given and learned when None.  Returns a list of
    MHVAEFit, one per configuration.
    """
    cols, options = _columns(columns, options)
    ee, ed = cols["eta_enc"], cols["eta_dec"]
    B = len(ee)
    hyper = hyper_rows("mhvae", cols)
    d1, d2 = dims
    learn1, learn2 = sigma1 is None, sigma2 is None
    problem = _MHVAEProblem(moments, dims, rtol)
    learn = np.array([learn1, learn2])
    s1 = np.log(ee) if learn1 else np.full(B, np.log(sigma1))
    s2 = np.log(ee) if learn2 else np.full(B, np.log(sigma2))
    log_s = np.concatenate([s1[:, None] * np.ones(d1), s2[:, None] * np.ones(d2)], axis=1)
    configs = [dict(beta1=cols["beta1"][b], beta2=cols["beta2"][b], eta_enc=ee[b], eta_dec=ed[b],
                    learn1=learn1, learn2=learn2, seed=int(options.seed[b])) for b in range(B)]
    return train_batch(problem, configs, hyper, log_s, learn, options)


def train_batch(problem, configs, hyper, log_sigma0, learn, options):
    """Train a batch of configurations of one problem.

    Parameters
    ----------
    problem : _VAEProblem or _MHVAEProblem
    configs : list of dict
        Hyperparameters per config (for results and error messages).
    hyper : ndarray (B, H)
        Kernel hyperparameter rows (:func:`hyper_rows`).
    log_sigma0 : ndarray (B, n_sigma)
        Initial (or fixed) log σ per config.
    learn : bool ndarray
        Which σ blocks are learned.
    options : TrainOptions

    Returns
    -------
    list of fit results (VAEFit, CVAEFit or MHVAEFit), one per config.

    Notes
    -----
    With ``backend="cupy"`` the kernels' state stays on the GPU: after every ``history_every``
    steps only the (B,) losses, gradient norms, steps, statuses and step sizes and the (B, k)
    KL inputs come to the host, and the packed parameters once, at the end.
    """
    B = hyper.shape[0]
    seeds = np.broadcast_to(np.asarray(options.seed), (B,))
    params = np.empty((B, problem.P_size))
    for b in range(B):
        params[b] = problem.init(np.random.default_rng(int(seeds[b])), options.init_scale, log_sigma0[b])
    lr = (np.asarray(options.lr, dtype=float) * np.ones(B) if options.lr is not None
          else _default_lr(problem, hyper, options.solver, params))
    dtype = np.dtype(options.dtype)
    backend = resolve(options.backend)
    xp = backend.xp
    kproblem = KernelProblem.build(problem.family, problem.Z, hyper, problem.dims, learn, xp=xp, dtype=dtype)
    state = TrainState.start(params.astype(dtype), lr, xp=xp)
    kopts = KernelOptions.from_train_options(options)
    run = entry(backend, problem.family)
    eta_enc = np.array([c["eta_enc"] for c in configs])
    hist = {"step": [], "loss": [], "kl_per_dim": []}
    bar = _progress(options.max_iter, options.progress, f"{problem.model} x{B} ({options.solver})")
    done = 0
    initial = None
    status = np.full(B, RUNNING)
    try:
        while done < options.max_iter and np.any(status == RUNNING):
            chunk = min(options.history_every, options.max_iter - done)
            if initial is None:
                # one step first: the kernel evaluates the loss before its update, so this is L₀
                run(kproblem, state, kopts, 1)
                initial = np.array(to_host(state.loss), dtype=float)
                chunk_rest = chunk - 1
            else:
                chunk_rest = chunk
            if chunk_rest:
                run(kproblem, state, kopts, chunk_rest)
            done += chunk
            step, loss, gnorm, status, lr_h = (to_host(a) for a in (state.step, state.loss, state.grad_norm,
                                                                     state.status, state.lr))
            at_step = lambda b: (f"at step {int(step[b])}", int(step[b]))                   # noqa: E731
            check_kernel_status(status, configs, at_step, lr_h, "training",
                                lambda b: f": loss={float(loss[b])!r}, gradient norm={float(gnorm[b])!r}")
            check_diverged(loss, initial, configs, at_step, lr_h)
            hist["step"].append(step.copy())
            hist["loss"].append(loss.copy())
            hist["kl_per_dim"].append(problem.kl_per_dim(state.params, eta_enc, xp))
            if bar is not None:
                bar.update(chunk)
                bar.set_postfix(active=int(np.sum(status == RUNNING)), loss=float(np.nanmin(loss)))
    finally:
        if bar is not None:
            bar.close()
    params = to_host(state.params)                  # the one copy of the parameters to the host
    step, gnorm, status = (to_host(a) for a in (state.step, state.grad_norm, state.status))
    n_iter = step.astype(np.int64)
    if np.any(status == RUNNING):
        idx = np.flatnonzero(status == RUNNING)
        _warn(
            f"{idx.size} of {B} configs did not meet tol={options.tol:g}/gtol={options.gtol:g} within "
            f"max_iter={options.max_iter} (first: config {idx[0]} {_plain(configs[idx[0]])}, gradient norm "
            f"{gnorm[idx[0]]:.3g}); raise max_iter or adjust lr", ConvergenceWarning)
    results = []
    params = params.astype(np.float64)         # results (loss, KL, matrices) are evaluated in float64
    for b in range(B):
        h = {k: np.array([row[b] for row in vals]) for k, vals in hist.items()}
        results.append(_check_result(problem.result(params[b], configs[b], n_iter[b], h, options.solver),
                                     configs[b], b, int(n_iter[b])))
    if dtype != np.float64:       # float32 round-off leaves collapsed dims ~1e-6 nats above zero
        results = [dataclasses.replace(r, collapsed=r.kl_per_dim < _config.COLLAPSE_KL_TOL_FLOAT32)
                   for r in results]
    logger.info("trained %d configs in %s steps", B, int(step.max()) if B else 0)
    return results


def train_minibatch(X, Y, model, moments, latent, configs, hyper, log_sigma0, learn, options, epochs,
                    batch_size, rtol=None):
    """Minibatch Adam on raw data (the paper's training loop) for a batch of configurations.

    All configurations see the same shuffled batches and the same reparameterization noise
    (common random numbers, drawn from ``numpy.random.default_rng(seed)``), so differences
    between them come from the hyperparameters alone.

    Parameters
    ----------
    X, Y : ndarray
        VAE: ``X`` is the data and ``Y`` None; CVAE: condition and target.
    epochs, batch_size : int
    rtol : float, optional
        Rank tolerance of the reported data spectrum (``theta``/``data_theta``), as for the
        other solvers.

    Returns
    -------
    list of VAEFit / CVAEFit
        ``history["loss"]`` holds the mean stochastic loss of every epoch.
    """
    from .kernels import cpu

    dtype = np.dtype(options.dtype)
    cond, target = PROBLEMS[model].minibatch_arrays(X, Y, dtype)
    N, dx, dy = target.shape[0], cond.shape[1], target.shape[1]
    k = latent
    dims = np.array([dx, dy, k], np.int64)
    P = size("minibatch", dims)
    B = hyper.shape[0]
    seeds = np.broadcast_to(np.asarray(options.seed), (B,))
    params = np.empty((B, P))
    for b in range(B):
        params[b] = np.random.default_rng(int(seeds[b])).normal(scale=options.init_scale, size=P)
    blocks = dict(zip((name for name, _ in block_shapes("minibatch", dims)), unpack("minibatch", params, dims)))
    blocks["log_sigma"][...] = log_sigma0                # a view: the layout says where log σ sits
    initial = np.array([_minibatch_result(model, moments, params[b].astype(dtype).astype(np.float64), dims,
                                          configs[b], 0, {}, None).loss for b in range(B)])
    kproblem = KernelProblem.build("minibatch", np.zeros((0, 0)), hyper, dims, learn, dtype=dtype)
    state = TrainState.start(params.astype(dtype), _config.MINIBATCH_LR if options.lr is None else float(options.lr))
    kopts = KernelOptions.from_train_options(options)
    rng = np.random.default_rng(int(seeds[0]) + 1)
    losses = []
    bar = _progress(epochs, options.progress, f"{model} x{B} minibatch")
    try:
        for epoch in range(epochs):
            perm = rng.permutation(N).astype(np.int64)
            noise = rng.standard_normal((N, k)).astype(dtype, copy=False)
            cpu.minibatch_epoch(kproblem, state, kopts, cond, target, noise, perm, batch_size)
            t, lr = state.step, state.lr
            in_epoch = lambda b: (f"in epoch {epoch} (step {int(t[b])})", int(t[b]))       # noqa: E731
            check_kernel_status(state.status, configs, in_epoch, lr, "minibatch training")
            check_diverged(state.loss, initial, configs, in_epoch, lr)
            losses.append(state.loss.copy())
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    params = state.params.astype(np.float64)            # results are evaluated in float64
    data_theta = PROBLEMS[model].spectrum(moments, rtol)
    out = []
    for b in range(B):
        hist = {"epoch": np.arange(1, epochs + 1), "loss": np.array([row[b] for row in losses])}
        n_iter = int(state.step[b])
        out.append(_check_result(_minibatch_result(model, moments, params[b], dims, configs[b], n_iter, hist,
                                                   data_theta), configs[b], b, n_iter))
    return out


def _minibatch_result(model, moments, packed, dims, cfg, n_iter, hist, data_theta):
    """The VAEFit / CVAEFit of one packed minibatch parameter vector (``data_theta`` None: not needed)."""
    W1, W2, U1, U2, log_sigma = (b[0] for b in unpack("minibatch", packed[None], dims))
    mats = PROBLEMS[model].minibatch_matrices(W1, W2, U1, U2)
    if data_theta is None:
        data_theta = np.zeros(0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return linear_result(model, moments, mats, np.exp(log_sigma), cfg, "minibatch", n_iter, hist,
                             pad(data_theta, int(dims[2])), data_theta)


def _plain(config):
    """A configuration as ``beta=4, eta_dec=0.5`` (plain numbers, never ``np.float64(4.0)``)."""
    if not isinstance(config, dict):
        return str(config)

    def show(v):
        try:
            return f"{float(v):g}"
        except (TypeError, ValueError):
            return str(v)
    return ", ".join(f"{k}={show(v)}" for k, v in config.items())
