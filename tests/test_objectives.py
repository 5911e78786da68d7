"""linvae.objectives against an independent dense reference built from the β-ELBO itself.

The reference below never uses second moments or the closed-form loss expressions of SPEC §2:
it evaluates, sample by sample and in closed form (no Monte Carlo), the negative β-ELBO of each
model from generic Gaussian identities (``E‖a − Bz‖²`` under ``z ~ N(m, S)``, the KL between two
multivariate normals through ``slogdet``/``solve``, a joint Gaussian for the MHVAE's two
latents), including every constant. ``objectives`` returns ``η_dec² · 2 · (−β-ELBO)`` without
the constants, so the two must differ by a constant that does not depend on the parameters (and,
for the VAE and CVAE, equals the constant written out below). The analytic gradients are
checked by finite differences in ``tests/test_train.py``; here the whitened losses are checked
against the data-coordinate ones for the CVAE and the MHVAE, and the one Gaussian-KL formula of
the package against a dense KL and against high-precision arithmetic.
"""
from decimal import Decimal, getcontext

import numpy as np
import pytest

from linvae import objectives

LOG2PI = np.log(2 * np.pi)


# ------------------------------------------------------------------ independent dense reference

def expected_sq(a, B, m, S):
    """``E‖a − Bz‖²`` for ``z ~ N(m, S)``."""
    r = a - B @ m
    return float(r @ r + np.trace(B @ S @ B.T))


def mvn_kl(m, S, mp, Sp):
    """``KL(N(m, S) ‖ N(mp, Sp))`` for full covariance matrices."""
    k = len(m)
    diff = mp - m
    return 0.5 * float(np.trace(np.linalg.solve(Sp, S)) + diff @ np.linalg.solve(Sp, diff) - k
                       + np.linalg.slogdet(Sp)[1] - np.linalg.slogdet(S)[1])


def neg_log_gauss(sq, d, var):
    """``−E log N(target; mean, var·I)`` given ``sq = E‖target − mean‖²``."""
    return 0.5 * sq / var + 0.5 * d * (LOG2PI + np.log(var))


def vae_neg_elbo(X, W, U, sigma, beta, eta_enc, eta_dec):
    S = np.diag(sigma**2)
    k, d = W.shape
    total = 0.0
    for x in X:
        m = W @ x
        total += neg_log_gauss(expected_sq(x, U, m, S), d, eta_dec**2) \
            + beta * mvn_kl(m, S, np.zeros(k), eta_enc**2 * np.eye(k))
    return total / len(X)


def cvae_neg_elbo(X, Y, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec):
    S = np.diag(sigma**2)
    k, dy = W1.shape[0], Y.shape[1]
    total = 0.0
    for x, y in zip(X, Y):
        m = W1 @ x + W2 @ y                       # q(z | x, y) = N(m, S); p(y | x, z) = N(U1 z + U2 x, η²I)
        total += neg_log_gauss(expected_sq(y - U2 @ x, U1, m, S), dy, eta_dec**2) \
            + beta * mvn_kl(m, S, np.zeros(k), eta_enc**2 * np.eye(k))
    return total / len(X)


def mhvae_neg_elbo(X, W1, W2, U1, U2, sigma1, sigma2, beta1, beta2, eta_enc, eta_dec):
    """q(z₁|x) = N(W₁x, Σ₁), q(z₂|z₁) = N(W₂z₁, Σ₂); p(z₂) = N(0, η_enc²I), p(z₁|z₂) = N(U₂z₂, η_dec²I),
    p(x|z₁) = N(U₁z₁, η_dec²I); −ELBO = −E log p(x|z₁) + β₁E[log q(z₁|x) − log p(z₁|z₂)]
    + β₂E_{q(z₁|x)} KL(q(z₂|z₁) ‖ p(z₂))."""
    S1, S2 = np.diag(sigma1**2), np.diag(sigma2**2)
    k1, k2, d = W1.shape[0], W2.shape[0], X.shape[1]
    # joint covariance of (z₁, z₂) under q given x, and the map (z₁, z₂) -> z₁ − U₂z₂
    C = np.block([[S1, S1 @ W2.T], [W2 @ S1, W2 @ S1 @ W2.T + S2]])
    A = np.hstack([np.eye(k1), -U2])
    entropy1 = 0.5 * (k1 * (1 + LOG2PI) + np.linalg.slogdet(S1)[1])
    prior2 = eta_enc**2 * np.eye(k2)
    total = 0.0
    for x in X:
        m1 = W1 @ x
        mu = np.concatenate([m1, W2 @ m1])
        recon = neg_log_gauss(expected_sq(x, U1, m1, S1), d, eta_dec**2)
        level1 = neg_log_gauss(expected_sq(np.zeros(k1), -A, mu, C), k1, eta_dec**2) - entropy1
        # E_{z₁} KL(N(W₂z₁, Σ₂) ‖ p(z₂)) = KL at the mean + ½ tr(P⁻¹ W₂Σ₁W₂ᵀ)
        level2 = mvn_kl(W2 @ m1, S2, np.zeros(k2), prior2) + 0.5 * np.trace(W2 @ S1 @ W2.T) / eta_enc**2
        total += recon + beta1 * level1 + beta2 * level2
    return total / len(X)


# ------------------------------------------------------------------ data and parameters

def _data(seed=0, n=40, d=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(2.0, 0.3, d) + 0.4


def _vae_params(rng, k=3, d=5):
    return rng.normal(size=(k, d)), rng.normal(size=(d, k)), np.exp(0.4 * rng.normal(size=k))


HYPER = [(1.0, 1.0, 1.0), (0.4, 0.7, 1.3), (2.5, 1.6, 0.6)]


@pytest.mark.parametrize("beta,eta_enc,eta_dec", HYPER)
def test_vae_loss_is_the_negative_beta_elbo_up_to_its_constant(beta, eta_enc, eta_dec):
    X = _data()
    xx = X.T @ X / len(X)
    rng = np.random.default_rng(1)
    k, d = 3, X.shape[1]
    const = d * eta_dec**2 * np.log(2 * np.pi * eta_dec**2) + beta * eta_dec**2 * k * (np.log(eta_enc**2) - 1)
    for _ in range(3):                       # three random parameter sets: the offset is the constant
        W, U, sigma = _vae_params(rng, k, d)
        ref = 2 * eta_dec**2 * vae_neg_elbo(X, W, U, sigma, beta, eta_enc, eta_dec) - const
        assert objectives.vae_loss(xx, W, U, sigma, beta, eta_enc, eta_dec) == pytest.approx(ref, rel=1e-11)


@pytest.mark.parametrize("beta,eta_enc,eta_dec", HYPER)
def test_cvae_loss_is_the_negative_beta_elbo_up_to_its_constant(beta, eta_enc, eta_dec):
    rng = np.random.default_rng(2)
    n, dx, dy, k = 40, 4, 3, 2
    X = rng.normal(size=(n, dx)) + 0.3
    Y = 0.6 * X @ rng.normal(size=(dx, dy)) + rng.normal(size=(n, dy))
    xx, xy, yy = X.T @ X / n, X.T @ Y / n, Y.T @ Y / n
    const = dy * eta_dec**2 * np.log(2 * np.pi * eta_dec**2) + beta * eta_dec**2 * k * (np.log(eta_enc**2) - 1)
    for _ in range(3):
        W1, W2 = rng.normal(size=(k, dx)), rng.normal(size=(k, dy))
        U1, U2 = rng.normal(size=(dy, k)), rng.normal(size=(dy, dx))
        sigma = np.exp(0.4 * rng.normal(size=k))
        ref = 2 * eta_dec**2 * cvae_neg_elbo(X, Y, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec) - const
        got = objectives.cvae_loss(xx, xy, yy, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec)
        assert got == pytest.approx(ref, rel=1e-11)


def _mhvae_params(rng, d=5, k1=3, k2=2):
    return (rng.normal(size=(k1, d)), rng.normal(size=(k2, k1)), rng.normal(size=(d, k1)),
            rng.normal(size=(k1, k2)), np.exp(0.4 * rng.normal(size=k1)), np.exp(0.4 * rng.normal(size=k2)))


@pytest.mark.parametrize("beta1,beta2,eta_enc,eta_dec", [(1.0, 1.0, 1.0, 1.0), (0.5, 1.8, 0.7, 1.2),
                                                          (2.0, 0.3, 1.5, 0.8)])
def test_mhvae_loss_is_the_negative_beta_elbo_up_to_a_constant(beta1, beta2, eta_enc, eta_dec):
    X = _data(3)
    xx = X.T @ X / len(X)
    rng = np.random.default_rng(4)
    offsets = []
    for _ in range(3):
        W1, W2, U1, U2, s1, s2 = _mhvae_params(rng)
        ref = 2 * eta_dec**2 * mhvae_neg_elbo(X, W1, W2, U1, U2, s1, s2, beta1, beta2, eta_enc, eta_dec)
        learned = objectives.mhvae_loss(xx, W1, W2, U1, U2, s1, s2, beta1, beta2, eta_enc, eta_dec,
                                        sigma1_learned=True)
        fixed = objectives.mhvae_loss(xx, W1, W2, U1, U2, s1, s2, beta1, beta2, eta_enc, eta_dec)
        offsets.append(ref - learned)
        # with Σ₁ fixed its entropy term −β₁η_dec² log|Σ₁| is a constant the loss leaves out
        assert learned - fixed == pytest.approx(-beta1 * eta_dec**2 * np.sum(np.log(s1**2)), rel=1e-12, abs=1e-12)
    assert np.ptp(offsets) < 1e-10 * max(1.0, np.max(np.abs(offsets)))


def test_losses_accept_a_leading_batch_shape():
    X = _data(5)
    xx = X.T @ X / len(X)
    rng = np.random.default_rng(6)
    params = [_vae_params(rng) for _ in range(4)]
    W, U, sigma = (np.stack(p).reshape((2, 2) + p[0].shape) for p in zip(*params))
    beta = np.array([[0.5, 1.0], [1.5, 2.0]])
    got = objectives.vae_loss(xx, W, U, sigma, beta, 0.8, 1.1)
    assert got.shape == (2, 2)
    for i, (w, u, s) in enumerate(params):
        assert got.flat[i] == pytest.approx(objectives.vae_loss(xx, w, u, s, beta.flat[i], 0.8, 1.1), rel=1e-13)


# ------------------------------------------------------------------ whitened losses

def _psd_factor(S, rtol=1e-12):
    phi, P = np.linalg.eigh(S)
    keep = phi > rtol * phi.max()
    return phi[keep], P[:, keep]


def test_whitened_cvae_loss_equals_the_data_coordinate_loss():
    """At V = W₂QΘ^½, A = (W₁ + W₂U₂*)P_xΦ_x^½, C = (U₂ − U₂*)P_xΦ_x^½, Z = QΘ^½ (module comment of
    ``objectives``; E, U₂* and the factors computed here with dense NumPy)."""
    rng = np.random.default_rng(7)
    n, dx, dy, k = 60, 4, 3, 2
    X = rng.normal(size=(n, dx)) + 0.2
    Y = 0.8 * X @ rng.normal(size=(dx, dy)) + rng.normal(size=(n, dy))
    xx, xy, yy = X.T @ X / n, X.T @ Y / n, Y.T @ Y / n
    U2s = xy.T @ np.linalg.inv(xx)
    E = yy - U2s @ xy
    theta, Q = _psd_factor(E)
    phi_x, Px = _psd_factor(xx)
    W1, W2 = rng.normal(size=(k, dx)), rng.normal(size=(k, dy))
    U1, U2 = rng.normal(size=(dy, k)), rng.normal(size=(dy, dx))
    sigma = np.exp(0.3 * rng.normal(size=k))
    beta, eta_enc, eta_dec = 1.3, 0.9, 1.2
    Z = Q * np.sqrt(theta)
    V = W2 @ Z
    A = (W1 + W2 @ U2s) @ Px * np.sqrt(phi_x)
    C = (U2 - U2s) @ Px * np.sqrt(phi_x)
    loss, _ = objectives.vae_family_whitened_loss_grad(
        Z, U1[None], V[None], A[None], C[None], np.log(sigma)[None], np.array([beta]),
        np.array([(eta_dec / eta_enc) ** 2]), np.array([eta_dec**2]))
    ref = objectives.cvae_loss(xx, xy, yy, W1, W2, U1, U2, sigma, beta, eta_enc, eta_dec)
    assert loss[0] == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("learn1", [False, True])
def test_whitened_mhvae_loss_equals_the_data_coordinate_loss(learn1):
    X = _data(8, n=50)
    xx = X.T @ X / len(X)
    phi, P = _psd_factor(xx)
    W1, W2, U1, U2, s1, s2 = _mhvae_params(np.random.default_rng(9))
    b1, b2, eta_enc, eta_dec = 0.7, 1.4, 1.1, 0.9
    Z = P * np.sqrt(phi)
    loss, _ = objectives.mhvae_whitened_loss_grad(
        Z, U1[None], (W1 @ Z)[None], U2[None], W2[None], np.log(s1)[None], np.log(s2)[None],
        np.array([b1]), np.array([b2]), np.array([(eta_dec / eta_enc) ** 2]), np.array([eta_dec**2]),
        learn_sigma1=learn1)
    ref = objectives.mhvae_loss(xx, W1, W2, U1, U2, s1, s2, b1, b2, eta_enc, eta_dec, sigma1_learned=learn1)
    assert loss[0] == pytest.approx(ref, rel=1e-10)


# ------------------------------------------------------------------ the Gaussian KL, written once

def test_gaussian_kl_equals_the_dense_multivariate_kl(rng):
    mu, sigma, eta = rng.normal(size=5), np.exp(rng.normal(size=5)), 0.7
    per_dim = objectives.gaussian_kl(mu**2 / eta**2, np.log(sigma**2) - np.log(eta**2))
    assert per_dim.shape == (5,)
    dense = mvn_kl(mu, np.diag(sigma**2), np.zeros(5), eta**2 * np.eye(5))
    assert np.sum(per_dim) == pytest.approx(dense, rel=1e-12)
    for j in range(5):                      # and per dim (the KL factorises over dims)
        assert per_dim[j] == pytest.approx(mvn_kl(mu[j:j + 1], np.diag(sigma[j:j + 1] ** 2), np.zeros(1),
                                                  eta**2 * np.eye(1)), rel=1e-12)


def _kl_decimal(m2, ell):
    """½[m² + e^ℓ − 1 − ℓ] in 50-digit decimal arithmetic (ℓ, m² exact binary floats)."""
    getcontext().prec = 50
    ell = Decimal(float(ell))
    return float((Decimal(float(m2)) + ell.exp() - 1 - ell) / 2)


@pytest.mark.parametrize("ell", [1e-3, -2e-5, 1e-7, -3e-9, 0.0])
def test_gaussian_kl_keeps_relative_precision_near_the_prior(ell):
    """Near a collapsed dim (σ ≈ η, ℓ ≈ 0) the naive ``ratio − 1 − log ratio`` cancels to
    round-off (relative error ~ε/ℓ²); the expm1 form keeps ~ε/ℓ."""
    got = float(objectives.gaussian_kl(0.0, ell))
    ref = _kl_decimal(0.0, ell)
    if ell == 0.0:
        assert got == 0.0
    else:
        assert abs(got - ref) <= 1e-6 * ref
    assert float(objectives.gaussian_kl(1e-20, ell)) == pytest.approx(_kl_decimal(1e-20, ell), rel=1e-6)


def test_every_kl_of_the_package_uses_the_one_formula(rng):
    """The closed forms, the metrics and the estimators give the dense KL (their arguments differ)."""
    from linvae import metrics
    from linvae.theory._common import gaussian_kl as theory_kl

    mu, sigma, eta = rng.normal(size=(4, 3)), np.exp(0.5 * rng.normal(size=3)), 1.3
    dense = np.array([[mvn_kl(mu[i, j:j + 1], np.diag(sigma[j:j + 1] ** 2), np.zeros(1), eta**2 * np.eye(1))
                       for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(metrics.kl_per_dim(mu, std=sigma, prior_std=eta), dense, rtol=1e-12)
    np.testing.assert_allclose(metrics.gaussian_kl_terms(mu, 2 * np.log(sigma), 2 * np.log(eta)), dense, rtol=1e-12)
    np.testing.assert_allclose(theory_kl(mu**2, sigma**2, eta**2), dense, rtol=1e-12)
    pytest.importorskip("sklearn")
    from linvae.estimators import _kl_rows

    np.testing.assert_allclose(_kl_rows(mu, sigma**2, eta**2), dense.sum(axis=1), rtol=1e-12)
