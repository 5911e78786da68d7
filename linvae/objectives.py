"""The losses of SPEC §2, evaluated from second moments.

These functions take full parameter matrices in **data coordinates** and the
:class:`~linvae.stats.Moments` of the data, and return the loss
``η_dec² · 2 · (−β-ELBO)`` without constants, exactly as SPEC §2 writes it.  They are the
reference used to report the loss of closed-form and trained fits.

All functions are written against an array namespace ``xp`` (NumPy by default, CuPy later)
and accept a leading batch shape on the parameters.
"""
import numpy as np

__all__ = ["vae_loss", "cvae_loss", "mhvae_loss"]


def _sq_cols(M, var, xp):
    """``tr(M diag(var) Mᵀ) = Σ_j var_j ‖M[:, j]‖²`` with a batch axis."""
    return xp.sum(xp.sum(M * M, axis=-2) * var, axis=-1)


def _quad(G, S, H, xp):
    """``tr(G S Hᵀ)`` batched."""
    return xp.sum((G @ S) * H, axis=(-2, -1))


def vae_loss(xx, W, U, sigma, beta, eta_enc, eta_dec, xp=np):
    """Linear VAE loss.

    Parameters
    ----------
    xx : ndarray of shape (d0, d0)
        ``E[xxᵀ]``.
    W : ndarray of shape (..., d1, d0)
        Encoder mean map.
    U : ndarray of shape (..., d0, d1)
        Decoder map.
    sigma : ndarray of shape (..., d1)
        Encoder standard deviations σ (Σ = diag(σ²)).
    beta, eta_enc, eta_dec : float or ndarray of shape (...)

    Returns
    -------
    float or ndarray of shape (...)

    Notes
    -----
    SPEC §2: ``L = E‖UWx − x‖² + tr(UΣUᵀ) + βc²(E‖Wx‖² + tr Σ) − βη_dec² log|Σ|``,
    ``c = η_dec/η_enc``.
    """
    c2 = (eta_dec / eta_enc) ** 2
    var = sigma * sigma
    R = U @ W - xp.eye(xx.shape[0])
    return (
        _quad(R, xx, R, xp)
        + _sq_cols(U, var, xp)
        + beta * c2 * (_quad(W, xx, W, xp) + xp.sum(var, axis=-1))
        - beta * eta_dec**2 * xp.sum(xp.log(var), axis=-1)
    )


def cvae_loss(xx, xy, yy, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec, xp=np):
    """Linear CVAE loss.

    Parameters
    ----------
    xx, xy, yy : ndarray
        ``E[xxᵀ]`` (dx, dx), ``E[xyᵀ]`` (dx, dy), ``E[yyᵀ]`` (dy, dy).
    W1 : (..., dz, dx)
    W2 : (..., dz, dy)
    U1 : (..., dy, dz)
    U2 : (..., dy, dx)
    sigma : (..., dz)

    Notes
    -----
    SPEC §2: ``L = E‖U₁(W₁x + W₂y) + U₂x − y‖² + tr(U₁ΣU₁ᵀ) + βc²(E‖W₁x + W₂y‖² + tr Σ)
    − βη_dec² log|Σ|``.
    """
    c2 = (eta_dec / eta_enc) ** 2
    var = sigma * sigma
    yx = xp.swapaxes(xy, -1, -2)
    Gx = U1 @ W1 + U2
    Gy = U1 @ W2 - xp.eye(yy.shape[0])
    recon = _quad(Gx, xx, Gx, xp) + 2 * _quad(Gx, xy, Gy, xp) + _quad(Gy, yy, Gy, xp)
    latent = _quad(W1, xx, W1, xp) + 2 * _quad(W2, yx, W1, xp) + _quad(W2, yy, W2, xp)
    return (
        recon
        + _sq_cols(U1, var, xp)
        + beta * c2 * (latent + xp.sum(var, axis=-1))
        - beta * eta_dec**2 * xp.sum(xp.log(var), axis=-1)
    )


def mhvae_loss(xx, W1, W2, U1, U2, sigma1, sigma2, beta1, beta2, eta_enc, eta_dec,
               sigma1_learned=False, xp=np):
    """Linear two-latent MHVAE loss.

    Parameters
    ----------
    xx : (d0, d0)
    W1 : (..., d1, d0)
    W2 : (..., d2, d1)
    U1 : (..., d0, d1)
    U2 : (..., d1, d2)
    sigma1 : (..., d1)
    sigma2 : (..., d2)
    sigma1_learned : bool
        Include ``−β₁η_dec² log|Σ₁|`` (a constant when Σ₁ is fixed, as in Thm 3 and Thm 5).

    Notes
    -----
    SPEC §2, with ``M = U₂W₂ − I``:
    ``L = E‖U₁W₁x − x‖² + tr(U₁Σ₁U₁ᵀ) + β₁[E‖MW₁x‖² + tr(U₂Σ₂U₂ᵀ) + tr(MΣ₁Mᵀ)]
    + β₂c²[E‖W₂W₁x‖² + tr(W₂Σ₁W₂ᵀ) + tr Σ₂] − β₂η_dec² log|Σ₂| (− β₁η_dec² log|Σ₁|)``.
    """
    c2 = (eta_dec / eta_enc) ** 2
    v1, v2 = sigma1 * sigma1, sigma2 * sigma2
    R = U1 @ W1 - xp.eye(xx.shape[0])
    M = U2 @ W2 - xp.eye(W1.shape[-2])
    MW = M @ W1
    WW = W2 @ W1
    loss = (
        _quad(R, xx, R, xp)
        + _sq_cols(U1, v1, xp)
        + beta1 * (_quad(MW, xx, MW, xp) + _sq_cols(U2, v2, xp) + _sq_cols(M, v1, xp))
        + beta2 * c2 * (_quad(WW, xx, WW, xp) + _sq_cols(W2, v1, xp) + xp.sum(v2, axis=-1))
        - beta2 * eta_dec**2 * xp.sum(xp.log(v2), axis=-1)
    )
    if sigma1_learned:
        loss = loss - beta1 * eta_dec**2 * xp.sum(xp.log(v1), axis=-1)
    return loss
