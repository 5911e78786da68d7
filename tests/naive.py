"""Independent naive oracle for the linear VAE / CVAE / MHVAE losses (SPEC §1-§3).

This module deliberately does **not** import ``linvae``. It provides

* loop-based losses computed sample by sample from raw data (slow, obviously correct),
* vectorised moment-based losses that accept arbitrary leading batch shapes and complex
  parameter arrays (for complex-step differentiation),
* a generic multi-restart L-BFGS-B minimiser with exact complex-step gradients,
* invariants (singular values, sorted standard deviations) for comparing minimisers that are
  unique only up to signed permutations / rotations of the latent coordinates,
* a synthetic data generator with a prescribed uncentered second-moment spectrum.

All losses are ``eta_dec**2 * 2 * (-beta-ELBO)`` without constants, ``c = eta_dec / eta_enc``,
``Sigma = diag(sigma**2)`` with ``sigma`` standard deviations, expectations are sample means.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

__all__ = [
    "vae_loss_loop",
    "cvae_loss_loop",
    "mhvae_loss_loop",
    "vae_loss_moments",
    "cvae_loss_moments",
    "mhvae_loss_moments",
    "random_init",
    "make_objective",
    "minimize",
    "minimize_vae",
    "minimize_cvae",
    "minimize_mhvae",
    "invariants",
    "make_data",
]

DEFAULT_LOG_PARAMS = ("sigma", "sigma1", "sigma2")


# ---------------------------------------------------------------------------
# 1. Loop-based losses (data coordinates, explicit loops over samples)
# ---------------------------------------------------------------------------


def _sq(v):
    """Squared Euclidean norm of a real 1-D vector, by an explicit sum."""
    return float(np.sum(np.asarray(v, dtype=float) ** 2))


def _std_vec(sigma, d):
    """Broadcast a scalar or length-``d`` standard deviation to a float vector of length ``d``."""
    s = np.asarray(sigma, dtype=float)
    return np.broadcast_to(s, (d,)).astype(float)


def vae_loss_loop(X, W, U, sigma, beta, eta_enc, eta_dec):
    """Linear VAE loss from raw samples with an explicit loop.

    Parameters
    ----------
    X : ndarray, shape (N, d0)
        Data, one sample per row.
    W : ndarray, shape (d1, d0)
        Encoder mean matrix.
    U : ndarray, shape (d0, d1)
        Decoder matrix.
    sigma : ndarray, shape (d1,) or scalar
        Encoder standard deviations.
    beta, eta_enc, eta_dec : float
        KL weight, prior std, decoder std.

    Returns
    -------
    float
        ``mean ||UWx-x||^2 + tr(U S U^T) + beta c^2 (mean ||Wx||^2 + tr S) - beta eta_dec^2 log|S|``.
    """
    X = np.asarray(X, dtype=float)
    W = np.asarray(W, dtype=float)
    U = np.asarray(U, dtype=float)
    d1 = W.shape[0]
    s2 = _std_vec(sigma, d1) ** 2
    c = eta_dec / eta_enc
    N = X.shape[0]
    rec = 0.0
    enc = 0.0
    for n in range(N):
        x = X[n]
        z = W @ x
        rec += _sq(U @ z - x)
        enc += _sq(z)
    rec /= N
    enc /= N
    tr_USU = 0.0
    for j in range(d1):
        tr_USU += s2[j] * _sq(U[:, j])
    tr_S = float(np.sum(s2))
    logdet = float(np.sum(np.log(s2)))
    return rec + tr_USU + beta * c**2 * (enc + tr_S) - beta * eta_dec**2 * logdet


def cvae_loss_loop(X, Y, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec):
    """Linear CVAE loss from raw samples with an explicit loop.

    Parameters
    ----------
    X : ndarray, shape (N, dx)
        Conditions.
    Y : ndarray, shape (N, dy)
        Targets.
    W1 : ndarray, shape (dz, dx)
    W2 : ndarray, shape (dz, dy)
        Encoder mean ``W1 x + W2 y``.
    U1 : ndarray, shape (dy, dz)
    U2 : ndarray, shape (dy, dx)
        Decoder mean ``U1 z + U2 x``.
    sigma : ndarray, shape (dz,) or scalar
        Encoder standard deviations.
    beta, eta_enc, eta_dec : float

    Returns
    -------
    float
        The CVAE loss of SPEC §2.
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    W1, W2, U1, U2 = (np.asarray(a, dtype=float) for a in (W1, W2, U1, U2))
    dz = W1.shape[0]
    s2 = _std_vec(sigma, dz) ** 2
    c = eta_dec / eta_enc
    N = X.shape[0]
    rec = 0.0
    enc = 0.0
    for n in range(N):
        x = X[n]
        y = Y[n]
        m = W1 @ x + W2 @ y
        rec += _sq(U1 @ m + U2 @ x - y)
        enc += _sq(m)
    rec /= N
    enc /= N
    tr_USU = 0.0
    for j in range(dz):
        tr_USU += s2[j] * _sq(U1[:, j])
    tr_S = float(np.sum(s2))
    logdet = float(np.sum(np.log(s2)))
    return rec + tr_USU + beta * c**2 * (enc + tr_S) - beta * eta_dec**2 * logdet


def mhvae_loss_loop(
    X,
    W1,
    W2,
    U1,
    U2,
    sigma1,
    sigma2,
    beta1,
    beta2,
    eta_enc,
    eta_dec,
    sigma1_learned=False,
):
    """Linear two-latent MHVAE loss from raw samples with an explicit loop.

    Parameters
    ----------
    X : ndarray, shape (N, d0)
    W1 : ndarray, shape (d1, d0)
    W2 : ndarray, shape (d2, d1)
    U1 : ndarray, shape (d0, d1)
    U2 : ndarray, shape (d1, d2)
    sigma1 : ndarray, shape (d1,) or scalar
        Standard deviations of ``q(z1|x)``.
    sigma2 : ndarray, shape (d2,) or scalar
        Standard deviations of ``q(z2|z1)``.
    beta1, beta2, eta_enc, eta_dec : float
    sigma1_learned : bool, default False
        Include ``- beta1 eta_dec^2 log|Sigma1|``.

    Returns
    -------
    float
        The MHVAE loss of SPEC §2 with ``M = U2 W2 - I``.
    """
    X = np.asarray(X, dtype=float)
    W1, W2, U1, U2 = (np.asarray(a, dtype=float) for a in (W1, W2, U1, U2))
    d1 = W1.shape[0]
    d2 = W2.shape[0]
    s1 = _std_vec(sigma1, d1) ** 2
    s2 = _std_vec(sigma2, d2) ** 2
    c = eta_dec / eta_enc
    M = U2 @ W2 - np.eye(d1)
    N = X.shape[0]
    rec = 0.0
    mid = 0.0
    top = 0.0
    for n in range(N):
        x = X[n]
        z1 = W1 @ x
        rec += _sq(U1 @ z1 - x)
        mid += _sq(M @ z1)
        top += _sq(W2 @ z1)
    rec /= N
    mid /= N
    top /= N
    tr_U1S1U1 = sum(s1[j] * _sq(U1[:, j]) for j in range(d1))
    tr_U2S2U2 = sum(s2[j] * _sq(U2[:, j]) for j in range(d2))
    tr_MS1M = sum(s1[j] * _sq(M[:, j]) for j in range(d1))
    tr_W2S1W2 = sum(s1[j] * _sq(W2[:, j]) for j in range(d1))
    loss = (
        rec
        + tr_U1S1U1
        + beta1 * (mid + tr_U2S2U2 + tr_MS1M)
        + beta2 * c**2 * (top + tr_W2S1W2 + float(np.sum(s2)))
        - beta2 * eta_dec**2 * float(np.sum(np.log(s2)))
    )
    if sigma1_learned:
        loss -= beta1 * eta_dec**2 * float(np.sum(np.log(s1)))
    return float(loss)


# ---------------------------------------------------------------------------
# 2. Moment-based, batched, complex-step-safe losses
# ---------------------------------------------------------------------------
# Only +, -, *, @, swapaxes, sum, log and exp are used (all analytic / holomorphic), so the
# functions can be evaluated on complex arrays for complex-step differentiation.


def _T(M):
    """Transpose the last two axes (no conjugation)."""
    return np.swapaxes(M, -1, -2)


def _tr(M):
    """Trace over the last two axes (no conjugation)."""
    return np.trace(M, axis1=-2, axis2=-1)


def _quad(P, S):
    """``tr(P S P^T)`` over the last two axes, batched: ``sum((P @ S) * P)``."""
    return np.sum((P @ S) * P, axis=(-2, -1))


def _diag_quad(P, s2):
    """``tr(P diag(s2) P^T)`` batched: ``sum(P * P * s2[..., None, :])``."""
    return np.sum(P * P * s2[..., None, :], axis=(-2, -1))


def _var_vec(sigma, d):
    """``sigma**2`` broadcast to trailing length ``d`` (scalars allowed)."""
    sigma = np.asarray(sigma)
    if sigma.ndim == 0:
        sigma = np.broadcast_to(sigma, (d,))
    return sigma**2


def vae_loss_moments(A, W, U, sigma, beta, eta_enc, eta_dec):
    """Linear VAE loss from the second moment ``A = E[x x^T]``.

    Parameters
    ----------
    A : ndarray, shape (d0, d0)
        Uncentered second moment of the data.
    W : ndarray, shape (..., d1, d0)
    U : ndarray, shape (..., d0, d1)
    sigma : ndarray, shape (..., d1) or scalar
    beta, eta_enc, eta_dec : float

    Returns
    -------
    ndarray or scalar, shape (...)
        Loss for every element of the (broadcast) batch; complex if any input is complex.
    """
    d1 = W.shape[-2]
    s2 = _var_vec(sigma, d1)
    c = eta_dec / eta_enc
    B = U @ W
    rec = _quad(B, A) - 2.0 * _tr(B @ A) + _tr(A)
    tr_USU = _diag_quad(U, s2)
    enc = _quad(W, A)
    return (
        rec
        + tr_USU
        + beta * c**2 * (enc + np.sum(s2, axis=-1))
        - beta * eta_dec**2 * np.sum(np.log(s2), axis=-1)
    )


def cvae_loss_moments(Sxx, Sxy, Syy, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec):
    """Linear CVAE loss from the second moments.

    Parameters
    ----------
    Sxx : ndarray, shape (dx, dx)
        ``E[x x^T]``.
    Sxy : ndarray, shape (dx, dy)
        ``E[x y^T]``.
    Syy : ndarray, shape (dy, dy)
        ``E[y y^T]``.
    W1 : ndarray, shape (..., dz, dx)
    W2 : ndarray, shape (..., dz, dy)
    U1 : ndarray, shape (..., dy, dz)
    U2 : ndarray, shape (..., dy, dx)
    sigma : ndarray, shape (..., dz) or scalar
    beta, eta_enc, eta_dec : float

    Returns
    -------
    ndarray or scalar, shape (...)
    """
    dz = W1.shape[-2]
    dy = W2.shape[-1]
    s2 = _var_vec(sigma, dz)
    c = eta_dec / eta_enc
    # residual U1(W1 x + W2 y) + U2 x - y = G x + H y
    G = U1 @ W1 + U2
    H = U1 @ W2 - np.eye(dy)
    rec = _quad(G, Sxx) + 2.0 * np.sum((G @ Sxy) * H, axis=(-2, -1)) + _quad(H, Syy)
    enc = _quad(W1, Sxx) + 2.0 * np.sum((W1 @ Sxy) * W2, axis=(-2, -1)) + _quad(W2, Syy)
    tr_USU = _diag_quad(U1, s2)
    return (
        rec
        + tr_USU
        + beta * c**2 * (enc + np.sum(s2, axis=-1))
        - beta * eta_dec**2 * np.sum(np.log(s2), axis=-1)
    )


def mhvae_loss_moments(
    A,
    W1,
    W2,
    U1,
    U2,
    sigma1,
    sigma2,
    beta1,
    beta2,
    eta_enc,
    eta_dec,
    sigma1_learned=False,
):
    """Linear two-latent MHVAE loss from the second moment ``A = E[x x^T]``.

    Parameters
    ----------
    A : ndarray, shape (d0, d0)
    W1 : ndarray, shape (..., d1, d0)
    W2 : ndarray, shape (..., d2, d1)
    U1 : ndarray, shape (..., d0, d1)
    U2 : ndarray, shape (..., d1, d2)
    sigma1 : ndarray, shape (..., d1) or scalar
    sigma2 : ndarray, shape (..., d2) or scalar
    beta1, beta2, eta_enc, eta_dec : float
    sigma1_learned : bool, default False
        Include ``- beta1 eta_dec^2 log|Sigma1|``.

    Returns
    -------
    ndarray or scalar, shape (...)
    """
    d1 = W1.shape[-2]
    d2 = W2.shape[-2]
    s1 = _var_vec(sigma1, d1)
    s2 = _var_vec(sigma2, d2)
    c = eta_dec / eta_enc
    B = U1 @ W1
    rec = _quad(B, A) - 2.0 * _tr(B @ A) + _tr(A)
    M = U2 @ W2 - np.eye(d1)
    MW1 = M @ W1
    W2W1 = W2 @ W1
    loss = (
        rec
        + _diag_quad(U1, s1)
        + beta1 * (_quad(MW1, A) + _diag_quad(U2, s2) + _diag_quad(M, s1))
        + beta2 * c**2 * (_quad(W2W1, A) + _diag_quad(W2, s1) + np.sum(s2, axis=-1))
        - beta2 * eta_dec**2 * np.sum(np.log(s2), axis=-1)
    )
    if sigma1_learned:
        loss = loss - beta1 * eta_dec**2 * np.sum(np.log(s1), axis=-1)
    return loss


# ---------------------------------------------------------------------------
# 3. Generic minimiser with vectorised complex-step gradients
# ---------------------------------------------------------------------------


def random_init(shapes, rng, init_scale=0.1, log_params=DEFAULT_LOG_PARAMS):
    """Draw one random initial packed parameter vector.

    Parameters
    ----------
    shapes : dict[str, tuple]
        Parameter names and shapes, in packing order.
    rng : numpy.random.Generator
    init_scale : float
        Standard deviation of the N(0, init_scale^2) matrix entries.
    log_params : sequence of str
        Names parameterised as log standard deviations; initialised at 0 (sigma = 1).

    Returns
    -------
    ndarray, shape (P,)
    """
    parts = []
    for name, shape in shapes.items():
        size = int(np.prod(shape, dtype=int))
        if name in log_params:
            parts.append(np.zeros(size))
        else:
            parts.append(rng.normal(0.0, init_scale, size=size))
    return np.concatenate(parts) if parts else np.zeros(0)


def make_objective(loss_moments_fn, shapes, fixed, log_params=DEFAULT_LOG_PARAMS, chunk=512):
    """Build the packed objective with exact complex-step gradient.

    Parameters
    ----------
    loss_moments_fn : callable
        Called as ``loss_moments_fn(**params, **fixed)``; must accept a leading batch axis and
        complex parameter arrays.
    shapes : dict[str, tuple]
        Learnable parameter names and shapes (packing order).
    fixed : dict
        Other keyword arguments of ``loss_moments_fn``.
    log_params : sequence of str
        Names whose packed entries are ``log sigma`` (``sigma = exp(entry)``).
    chunk : int
        Maximum number of perturbed copies evaluated at once.

    Returns
    -------
    fun : callable
        ``fun(vec) -> (loss: float, grad: ndarray (P,))``.
    unpack : callable
        ``unpack(vec) -> dict`` of named arrays (log params exponentiated); ``vec`` may carry
        leading batch axes.
    """
    names = list(shapes)
    sizes = [int(np.prod(shapes[n], dtype=int)) for n in names]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    P = int(offsets[-1])
    h = 1e-30

    def unpack(vec):
        vec = np.asarray(vec)
        lead = vec.shape[:-1]
        out = {}
        for i, name in enumerate(names):
            piece = vec[..., offsets[i] : offsets[i + 1]].reshape(lead + tuple(shapes[name]))
            out[name] = np.exp(piece) if name in log_params else piece
        return out

    def evaluate(vec):
        return loss_moments_fn(**unpack(vec), **fixed)

    def fun(vec):
        vec = np.asarray(vec, dtype=float)
        f = float(np.real(evaluate(vec)))
        grad = np.empty(P)
        for start in range(0, P, chunk):
            stop = min(P, start + chunk)
            batch = np.broadcast_to(vec.astype(complex), (stop - start, P)).copy()
            batch[np.arange(stop - start), np.arange(start, stop)] += 1j * h
            grad[start:stop] = np.imag(evaluate(batch)) / h
        return f, grad

    return fun, unpack


def minimize(
    loss_moments_fn,
    shapes,
    fixed,
    n_restarts=8,
    seed=0,
    init_scale=0.1,
    log_params=DEFAULT_LOG_PARAMS,
    gtol=1e-12,
    ftol=1e-15,
    maxiter=20000,
):
    """Multi-restart L-BFGS-B minimisation with exact complex-step gradients.

    Parameters
    ----------
    loss_moments_fn : callable
        Moment-based loss, e.g. :func:`vae_loss_moments`.
    shapes : dict[str, tuple]
        Learnable parameter names (keyword names of ``loss_moments_fn``) and shapes.
    fixed : dict
        Remaining keyword arguments (moments, fixed sigmas, beta, eta_enc, eta_dec, ...).
    n_restarts : int
        Number of random restarts.
    seed : int
        Seed of ``np.random.default_rng`` used for all initialisations.
    init_scale : float
        Initial matrices are i.i.d. N(0, init_scale^2); log sigma starts at 0.
    log_params : sequence of str
        Names in ``shapes`` parameterised as log standard deviations.
    gtol, ftol, maxiter : float, float, int
        L-BFGS-B tolerances.

    Returns
    -------
    dict
        Best parameters by name (sigmas exponentiated), ``"loss"`` (float), ``"all_losses"``
        (final loss of every restart, in order) and ``"init_losses"`` (loss at every initial
        point).
    """
    fun, unpack = make_objective(loss_moments_fn, shapes, fixed, log_params)
    rng = np.random.default_rng(seed)
    best = None
    all_losses = []
    init_losses = []
    for _ in range(n_restarts):
        x0 = random_init(shapes, rng, init_scale, log_params)
        init_losses.append(fun(x0)[0])
        res = scipy.optimize.minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            options={"gtol": gtol, "ftol": ftol, "maxiter": maxiter, "maxfun": 5 * maxiter},
        )
        f = fun(res.x)[0]
        all_losses.append(f)
        if best is None or f < best[0]:
            best = (f, res.x)
    out = {k: np.array(v, dtype=float) for k, v in unpack(best[1]).items()}
    out["loss"] = float(best[0])
    out["all_losses"] = [float(v) for v in all_losses]
    out["init_losses"] = [float(v) for v in init_losses]
    return out


def minimize_vae(X, latent_dim, beta, eta_enc, eta_dec, sigma=None, **kwargs):
    """Numerically minimise the linear VAE loss (Thm 4 if ``sigma`` is None, else Thm 1).

    Parameters
    ----------
    X : ndarray, shape (N, d0)
    latent_dim : int
    beta, eta_enc, eta_dec : float
    sigma : None, float or ndarray (latent_dim,)
        None: learnable sigma; otherwise fixed standard deviations.
    **kwargs
        Passed to :func:`minimize` (``n_restarts``, ``seed``, ``init_scale``, ...).

    Returns
    -------
    dict
        Keys ``W``, ``U``, ``sigma``, ``loss``, ``all_losses``, ``init_losses``.
    """
    X = np.asarray(X, dtype=float)
    N, d0 = X.shape
    A = X.T @ X / N
    shapes = {"W": (latent_dim, d0), "U": (d0, latent_dim)}
    fixed = {"A": A, "beta": beta, "eta_enc": eta_enc, "eta_dec": eta_dec}
    if sigma is None:
        shapes["sigma"] = (latent_dim,)
    else:
        fixed["sigma"] = _std_vec(sigma, latent_dim)
    out = minimize(vae_loss_moments, shapes, fixed, **kwargs)
    if sigma is not None:
        out["sigma"] = fixed["sigma"].copy()
    return out


def minimize_cvae(X, Y, latent_dim, beta, eta_enc, eta_dec, **kwargs):
    """Numerically minimise the linear CVAE loss with learnable sigma (Thm 2).

    Parameters
    ----------
    X : ndarray, shape (N, dx)
    Y : ndarray, shape (N, dy)
    latent_dim : int
    beta, eta_enc, eta_dec : float
    **kwargs
        Passed to :func:`minimize`.

    Returns
    -------
    dict
        Keys ``W1``, ``W2``, ``U1``, ``U2``, ``sigma``, ``loss``, ``all_losses``, ``init_losses``.
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    N, dx = X.shape
    dy = Y.shape[1]
    dz = latent_dim
    fixed = {
        "Sxx": X.T @ X / N,
        "Sxy": X.T @ Y / N,
        "Syy": Y.T @ Y / N,
        "beta": beta,
        "eta_enc": eta_enc,
        "eta_dec": eta_dec,
    }
    shapes = {
        "W1": (dz, dx),
        "W2": (dz, dy),
        "U1": (dy, dz),
        "U2": (dy, dx),
        "sigma": (dz,),
    }
    return minimize(cvae_loss_moments, shapes, fixed, **kwargs)


def minimize_mhvae(X, d1, d2, beta1, beta2, eta_enc, eta_dec, sigma1, sigma2=None, **kwargs):
    """Numerically minimise the linear MHVAE loss (Thm 3 if ``sigma2`` is None, else Thm 5).

    Parameters
    ----------
    X : ndarray, shape (N, d0)
    d1, d2 : int
        Latent dimensions of z1 and z2.
    beta1, beta2, eta_enc, eta_dec : float
    sigma1 : float or ndarray (d1,)
        Fixed standard deviation(s) of ``q(z1|x)``.
    sigma2 : None, float or ndarray (d2,)
        None: learnable; otherwise fixed standard deviation(s) of ``q(z2|z1)``.
    **kwargs
        Passed to :func:`minimize`.

    Returns
    -------
    dict
        Keys ``W1``, ``W2``, ``U1``, ``U2``, ``sigma1``, ``sigma2``, ``loss``, ``all_losses``,
        ``init_losses``.
    """
    X = np.asarray(X, dtype=float)
    N, d0 = X.shape
    shapes = {"W1": (d1, d0), "W2": (d2, d1), "U1": (d0, d1), "U2": (d1, d2)}
    fixed = {
        "A": X.T @ X / N,
        "sigma1": _std_vec(sigma1, d1),
        "beta1": beta1,
        "beta2": beta2,
        "eta_enc": eta_enc,
        "eta_dec": eta_dec,
        "sigma1_learned": False,
    }
    if sigma2 is None:
        shapes["sigma2"] = (d2,)
    else:
        fixed["sigma2"] = _std_vec(sigma2, d2)
    out = minimize(mhvae_loss_moments, shapes, fixed, **kwargs)
    out["sigma1"] = fixed["sigma1"].copy()
    if sigma2 is not None:
        out["sigma2"] = fixed["sigma2"].copy()
    return out


# ---------------------------------------------------------------------------
# 4. Invariants
# ---------------------------------------------------------------------------

_MATRIX_KEYS = ("W", "U", "W1", "W2", "U1", "U2")
_SIGMA_KEYS = ("sigma", "sigma1", "sigma2")


def _sv(M):
    """Descending singular values."""
    return np.linalg.svd(np.asarray(M, dtype=float), compute_uv=False)


def invariants(params, model=None):
    """Rotation/sign/permutation-invariant summaries of a parameter set.

    Parameters
    ----------
    params : dict
        Named parameters (e.g. the output of :func:`minimize_vae`); unknown keys are ignored.
    model : {None, "vae", "cvae", "mhvae"}
        Which products to form; inferred from the keys when None (``sigma1``/``sigma2`` present
        => MHVAE, ``W1`` with ``sigma`` => CVAE, ``W``/``U`` => VAE).

    Returns
    -------
    dict
        ``sv_<name>`` descending singular values of each matrix present, ``<sigma>_sorted``
        ascending standard deviations, and product singular values ``sv_UW`` (VAE),
        ``sv_U1W2`` (CVAE), ``sv_U1W1`` and ``sv_U2W2`` (MHVAE).
    """
    out = {}
    for k in _MATRIX_KEYS:
        if k in params:
            out["sv_" + k] = _sv(params[k])
    for k in _SIGMA_KEYS:
        if k in params:
            out[k + "_sorted"] = np.sort(np.atleast_1d(np.asarray(params[k], dtype=float)))
    if model is None:
        if "sigma1" in params or "sigma2" in params:
            model = "mhvae"
        elif "W1" in params or "U1" in params:
            model = "cvae"
        else:
            model = "vae"
    if model == "vae" and "U" in params and "W" in params:
        out["sv_UW"] = _sv(params["U"] @ params["W"])
    elif model == "cvae" and "U1" in params and "W2" in params:
        out["sv_U1W2"] = _sv(params["U1"] @ params["W2"])
    elif model == "mhvae":
        if "U1" in params and "W1" in params:
            out["sv_U1W1"] = _sv(params["U1"] @ params["W1"])
        if "U2" in params and "W2" in params:
            out["sv_U2W2"] = _sv(params["U2"] @ params["W2"])
    return out


# ---------------------------------------------------------------------------
# 5. Synthetic data with prescribed spectrum
# ---------------------------------------------------------------------------


def _orthonormal_columns(m, k, rng):
    """Random ``m x k`` matrix with orthonormal columns (QR of a Gaussian)."""
    G = rng.standard_normal((m, k))
    Q, R = np.linalg.qr(G)
    return Q * np.sign(np.diag(R))


def make_data(n, d, theta, rng):
    """Data whose uncentered second moment has eigenvalues exactly ``theta**2``.

    Parameters
    ----------
    n, d : int
        Number of samples and dimension.
    theta : array_like, shape (k,), k <= min(n, d)
        Square roots of the non-zero eigenvalues of ``X.T @ X / n`` (remaining ones are 0).
    rng : numpy.random.Generator or int
        Random generator (or seed) for the eigenvectors.

    Returns
    -------
    X : ndarray, shape (n, d)
        ``sqrt(n) * Q[:, :k] @ diag(theta) @ P[:, :k].T`` with random orthonormal ``Q``, ``P``.
    """
    rng = np.random.default_rng(rng)
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    k = theta.shape[0]
    if k > min(n, d):
        raise ValueError(f"len(theta)={k} exceeds min(n, d)={min(n, d)}")
    Q = _orthonormal_columns(n, k, rng)
    P = _orthonormal_columns(d, k, rng)
    return np.sqrt(n) * (Q * theta) @ P.T
