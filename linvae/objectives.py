"""The losses of SPEC §2, evaluated from second moments.

These functions take full parameter matrices in **data coordinates** and the
:class:`~linvae.stats.Moments` of the data, and return the loss
``η_dec² · 2 · (−β-ELBO)`` without constants, exactly as SPEC §2 writes it.  They are the
reference used to report the loss of closed-form and trained fits.

All functions are written against an array namespace ``xp`` (NumPy by default, CuPy later)
and accept a leading batch shape on the parameters.
"""
import numpy as np

__all__ = ["vae_loss", "cvae_loss", "mhvae_loss", "gaussian_kl"]


def gaussian_kl(mean_sq_ratio, log_var_ratio, xp=np):
    """KL of ``N(m, σ²)`` to ``N(0, η²)`` per dimension (nats), in the precise ``expm1`` form.

    ``½[m²/η² + expm1(ℓ) − ℓ]`` with ``ℓ = log(σ²/η²)``, which equals
    ``½[(m² + σ²)/η² − 1 − log(σ²/η²)]`` but keeps full relative precision for dims near the
    prior (ℓ ≈ 0, the collapsed ones), where ``σ²/η² − 1 − ℓ`` cancels to round-off. This is the
    one place the formula is written: the closed forms, the training results, the metrics, the
    scikit-learn estimators and the torch models all call it.

    Parameters
    ----------
    mean_sq_ratio : array_like
        ``m²/η²`` (or the data mean ``E[m²]/η²``).
    log_var_ratio : array_like
        ``ℓ = log σ² − log η²``.
    xp : module
        ``numpy``, ``cupy`` or ``torch`` (any namespace with ``expm1``).

    Notes
    -----
    SPEC §1 (the KL term of the β-ELBO, paper Eq. (1)); evaluated per dim, never summed.
    """
    return 0.5 * (mean_sq_ratio + xp.expm1(log_var_ratio) - log_var_ratio)


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


# ---------------------------------------------------------------------------------------------
# Whitened losses and analytic gradients (the reference the training kernels must match)
# ---------------------------------------------------------------------------------------------
#
# Parameters are stacked over a leading config axis B; hyperparameters are arrays of shape (B,).
# Learnable standard deviations are parameterized by s = log σ.
#
# VAE / CVAE (one family).  With Z = P Φ^{1/2} (VAE: factor of E[xxᵀ]; CVAE: factor of the
# residual moment E) the whitened parameters are
#     U (B, d, k)   decoder (VAE: U; CVAE: U₁)
#     V (B, k, r)   whitened encoder on Z's modes (VAE: W P Φ^{1/2}; CVAE: W₂ Q Θ^{1/2})
#     A (B, k, q)   CVAE only: encoder on whitened x, (W₁ + W₂U₂*) P_x Φ_x^{1/2}
#     C (B, d, q)   CVAE only: decoder x-path offset, (U₂ − U₂*) P_x Φ_x^{1/2}
#     s (B, k)      log σ
# and the loss (exactly the data-coordinate loss of SPEC §2, because the whitened x and the
# whitened residual are uncorrelated) is
#     L = ‖UV − Z‖² + ‖UA + C‖² + Σ_j σ_j²‖U_j‖² + βc²(‖A‖² + ‖V‖² + Σσ²) − βη_dec² Σ log σ².
# The VAE is the case q = 0.


def vae_family_whitened_loss_grad(Z, U, V, A, C, s, beta, c2, eta_dec2, learn_sigma=True, xp=np):
    """Whitened loss of the "vae" kernel family (the VAE, and the CVAE when q > 0) and its
    analytic gradient, batched over configs.

    Parameters
    ----------
    Z : ndarray (d, r)
    U : (B, d, k), V : (B, k, r), A : (B, k, q), C : (B, d, q), s : (B, k)
        See the module comment; ``q = 0`` for the VAE.
    beta, c2, eta_dec2 : ndarray (B,)
        β, c² = (η_dec/η_enc)², η_dec².
    learn_sigma : bool
        If False, σ = exp(s) is fixed and its gradient is zero (Thm 1 setting).

    Returns
    -------
    loss : ndarray (B,)
    grads : tuple of ndarrays
        ``(gU, gV, gA, gC, gs)``, same shapes as the parameters.

    Notes
    -----
    SPEC §2 (VAE with Z, V; CVAE reduced to its residual) with
    ``∂L/∂U = 2(UV − Z)Vᵀ + 2(UA + C)Aᵀ + 2UΣ``, ``∂L/∂V = 2Uᵀ(UV − Z) + 2βc²V``,
    ``∂L/∂A = 2Uᵀ(UA + C) + 2βc²A``, ``∂L/∂C = 2(UA + C)``,
    ``∂L/∂s_j = 2σ_j²(‖U_j‖² + βc²) − 2βη_dec²``.
    """
    bc = (beta * c2)[:, None, None]
    var = xp.exp(2 * s)
    R = U @ V - Z
    Q = U @ A + C
    col = xp.sum(U * U, axis=1)
    Ut = xp.swapaxes(U, 1, 2)
    loss = (
        xp.sum(R * R, axis=(1, 2)) + xp.sum(Q * Q, axis=(1, 2)) + xp.sum(var * col, axis=1)
        + beta * c2 * (xp.sum(A * A, axis=(1, 2)) + xp.sum(V * V, axis=(1, 2)) + xp.sum(var, axis=1))
        - beta * eta_dec2 * 2 * xp.sum(s, axis=1)
    )
    gU = 2 * (R @ xp.swapaxes(V, 1, 2) + Q @ xp.swapaxes(A, 1, 2) + U * var[:, None, :])
    gV = 2 * (Ut @ R + bc * V)
    gA = 2 * (Ut @ Q + bc * A)
    gC = 2 * Q
    gs = 2 * var * (col + (beta * c2)[:, None]) - 2 * (beta * eta_dec2)[:, None]
    if not learn_sigma:
        gs = gs * 0
    return loss, (gU, gV, gA, gC, gs)


def mhvae_whitened_loss_grad(Z, U1, V1, U2, W2, s1, s2, beta1, beta2, c2, eta_dec2,
                             learn_sigma1=False, learn_sigma2=True, xp=np):
    """Whitened two-latent MHVAE loss and its analytic gradient, batched over configs.

    Parameters
    ----------
    Z : (d, r)
    U1 : (B, d, k1), V1 : (B, k1, r) (= W₁PΦ^{1/2}), U2 : (B, k1, k2), W2 : (B, k2, k1)
    s1 : (B, k1), s2 : (B, k2)
        log σ₁, log σ₂.
    beta1, beta2, c2, eta_dec2 : ndarray (B,)
    learn_sigma1, learn_sigma2 : bool
        Which variances are learned (Thm 3: False/True; Thm 5: False/False; both True has no
        closed form). A learned Σ₁ adds ``−β₁η_dec² log|Σ₁|``.

    Returns
    -------
    loss : ndarray (B,)
    grads : tuple ``(gU1, gV1, gU2, gW2, gs1, gs2)``

    Notes
    -----
    SPEC §2 with ``M = U₂W₂ − I`` and ``G = V₁V₁ᵀ + Σ₁`` (second moment of z₁):
    ``L = ‖U₁V₁ − Z‖² + tr(U₁Σ₁U₁ᵀ) + β₁[tr(MGMᵀ) + tr(U₂Σ₂U₂ᵀ)] + β₂c²[tr(W₂GW₂ᵀ) + tr Σ₂]
    − β₂η_dec² log|Σ₂| (− β₁η_dec² log|Σ₁|)``.
    """
    b1 = beta1[:, None, None]
    b2c = (beta2 * c2)[:, None, None]
    v1, v2 = xp.exp(2 * s1), xp.exp(2 * s2)
    k1 = U1.shape[2]
    R = U1 @ V1 - Z
    M = U2 @ W2 - xp.eye(k1)
    V1t = xp.swapaxes(V1, 1, 2)
    G = V1 @ V1t + v1[:, :, None] * xp.eye(k1)
    MG = M @ G
    W2G = W2 @ G
    col1 = xp.sum(U1 * U1, axis=1)
    col2 = xp.sum(U2 * U2, axis=1)
    loss = (
        xp.sum(R * R, axis=(1, 2)) + xp.sum(v1 * col1, axis=1)
        + beta1 * (xp.sum(MG * M, axis=(1, 2)) + xp.sum(v2 * col2, axis=1))
        + beta2 * c2 * (xp.sum(W2G * W2, axis=(1, 2)) + xp.sum(v2, axis=1))
        - beta2 * eta_dec2 * 2 * xp.sum(s2, axis=1)
    )
    if learn_sigma1:
        loss = loss - beta1 * eta_dec2 * 2 * xp.sum(s1, axis=1)
    Mt, W2t = xp.swapaxes(M, 1, 2), xp.swapaxes(W2, 1, 2)
    gU1 = 2 * (R @ V1t + U1 * v1[:, None, :])
    gV1 = 2 * (xp.swapaxes(U1, 1, 2) @ R + (b1 * (Mt @ M) + b2c * (W2t @ W2)) @ V1)
    gU2 = 2 * (b1 * (MG @ W2t) + b1 * U2 * v2[:, None, :])
    gW2 = 2 * (b1 * (xp.swapaxes(U2, 1, 2) @ MG) + b2c * W2G)
    gs2 = 2 * v2 * (beta1[:, None] * col2 + (beta2 * c2)[:, None]) - 2 * (beta2 * eta_dec2)[:, None]
    gs1 = 2 * v1 * (col1 + beta1[:, None] * xp.sum(M * M, axis=1) + (beta2 * c2)[:, None]
                    * xp.sum(W2 * W2, axis=1)) - 2 * (beta1 * eta_dec2)[:, None]
    if not learn_sigma1:
        gs1 = gs1 * 0
    if not learn_sigma2:
        gs2 = gs2 * 0
    return loss, (gU1, gV1, gU2, gW2, gs1, gs2)
