"""SPEC §6 predicates P1–P6 as property tests over random spectra and hyperparameters."""
import numpy as np
import pytest
import scipy.optimize
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import linvae
from linvae import Moments

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pos = st.floats(0.05, 5.0)
eta = st.floats(0.2, 3.0)
spectrum = st.lists(st.floats(0.01, 6.0), min_size=1, max_size=7)


def _rotated(values, seed):
    """PSD matrix with the given eigenvalues and a random orthonormal basis."""
    d = len(values)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return (Q * np.asarray(values)) @ Q.T


def _far(a, b):
    """Keep examples away from exact threshold ties (measure-zero boundaries)."""
    return abs(a - b) > 1e-6 * max(1.0, abs(a), abs(b))


@SETTINGS
@given(theta=spectrum, beta=pos, eta_enc=eta, eta_dec=eta, extra=st.integers(0, 3), seed=st.integers(0, 99))
def test_p1_vae_learnable(theta, beta, eta_enc, eta_dec, extra, seed):
    theta = np.sort(np.array(theta))[::-1]
    thr = np.sqrt(beta) * eta_dec
    assume(all(_far(t, thr) for t in theta))
    d1 = len(theta) + extra                      # latent larger than the rank when extra > 0
    res = linvae.fit(Moments.from_matrices(_rotated(theta**2, seed)), latent_dim=d1, beta=beta,
                     eta_enc=eta_enc, eta_dec=eta_dec)
    expected = int(np.sum(theta < thr)) + extra
    assert res.n_collapsed == expected
    np.testing.assert_allclose(res.sigma[res.collapsed], eta_enc, rtol=1e-12)
    np.testing.assert_array_equal(res.kl_per_dim[res.collapsed], 0.0)
    active = theta[theta > thr]
    np.testing.assert_allclose(np.sort(res.kl_per_dim[~res.collapsed]),
                               np.sort(np.log(active / thr)), rtol=1e-9, atol=1e-12)


@SETTINGS
@given(theta=spectrum, data=st.data(), beta=pos, eta_enc=eta, eta_dec=eta, seed=st.integers(0, 99))
def test_p2_vae_fixed(theta, data, beta, eta_enc, eta_dec, seed):
    theta = np.sort(np.array(theta))[::-1]
    d1 = data.draw(st.integers(1, len(theta) + 2))
    sigma = np.array(data.draw(st.lists(st.floats(0.05, 4.0), min_size=d1, max_size=d1)))
    k = np.sqrt(beta) * eta_dec / eta_enc
    th = np.zeros(d1)
    th[:min(d1, len(theta))] = theta[:d1]
    paired_sigma = np.sort(sigma)                 # ascending σ with descending θ
    assume(all(_far(t, k * s) for t, s in zip(th, paired_sigma)))
    res = linvae.fit(Moments.from_matrices(_rotated(theta**2, seed)), latent_dim=d1, beta=beta,
                     eta_enc=eta_enc, eta_dec=eta_dec, sigma=sigma)
    expected_rank = int(np.sum(th > k * paired_sigma))
    assert np.linalg.matrix_rank(res.W, tol=1e-9 * max(1.0, np.abs(res.W).max())) == expected_rank
    assert int(np.sum(~res.dead)) == expected_rank
    s = sigma[res.dead] ** 2 / eta_enc**2
    np.testing.assert_allclose(res.kl_per_dim[res.dead], 0.5 * (s - 1 - np.log(s)), rtol=1e-9, atol=1e-15)
    assert not np.any(np.isnan(res.W)) and np.isfinite(res.loss)


def _cvae_moments(seed, dx, dy, scale):
    rng = np.random.default_rng(seed)
    n = 4 * (dx + dy)
    X = rng.normal(size=(n, dx))
    Y = X @ rng.normal(size=(dx, dy)) * 0.5 + rng.normal(size=(n, dy)) * scale
    return X, Y


@SETTINGS
@given(seed=st.integers(0, 10_000), dx=st.integers(1, 4), dy=st.integers(1, 5),
       betas=st.lists(pos, min_size=2, max_size=4), eta_decs=st.lists(eta, min_size=2, max_size=3),
       eta_enc=eta, dz=st.integers(1, 7))
def test_p3_cvae_count_and_monotonicity(seed, dx, dy, betas, eta_decs, eta_enc, dz):
    X, Y = _cvae_moments(seed, dx, dy, np.linspace(1.5, 0.3, dy))
    # E computed here independently with a dense solve
    Sxx, Sxy, Syy = X.T @ X / len(X), X.T @ Y / len(X), Y.T @ Y / len(X)
    theta = np.linalg.eigvalsh(Syy - Sxy.T @ np.linalg.solve(Sxx, Sxy))
    betas, eta_decs = np.sort(betas), np.sort(eta_decs)
    assume(all(_far(t, b * e**2) for t in theta for b in betas for e in eta_decs))
    table = linvae.predict_collapse(X, Y, beta=betas, eta_dec=eta_decs, eta_enc=eta_enc, latent_dim=dz)
    counts = table["n_collapsed"].reshape(len(betas), len(eta_decs))
    for i, b in enumerate(betas):
        for j, e in enumerate(eta_decs):
            assert counts[i, j] == dz - min(dz, int(np.sum(theta > b * e**2)))
    assert np.all(np.diff(counts, axis=0) >= 0) and np.all(np.diff(counts, axis=1) >= 0)
    other = linvae.predict_collapse(X, Y, beta=betas, eta_dec=eta_decs, eta_enc=eta_enc * 2.7, latent_dim=dz)
    np.testing.assert_array_equal(other["n_collapsed"], table["n_collapsed"])


@SETTINGS
@given(seed=st.integers(0, 10_000), d=st.integers(1, 6), beta=pos, eta_dec=eta,
       variances=st.lists(st.floats(0.05, 8.0), min_size=6, max_size=6),
       rhos=st.lists(st.floats(0.0, 0.999), min_size=2, max_size=5))
def test_p4_correlation(seed, d, beta, eta_dec, variances, rhos):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3 * d + 2, d))
    assert linvae.fit(X, X.copy(), beta=beta, eta_dec=eta_dec).n_collapsed == d   # x = y
    # population moments of x = ρy + √(1−ρ²)n, y ~ N(0, Σy), n ~ N(0, I)
    Sy = _rotated(variances[:d], seed)
    counts = []
    for rho in sorted(rhos, reverse=True):                # weaker dependence as we go
        Sxx = rho**2 * Sy + (1 - rho**2) * np.eye(d)
        m = Moments.from_matrices(Sxx, rho * Sy, Sy)
        counts.append(linvae.fit(m, beta=beta, eta_dec=eta_dec).n_collapsed)
    assert all(a >= b for a, b in zip(counts, counts[1:]))


@SETTINGS
@given(theta=spectrum, beta1=pos, beta2=pos, sigma1=st.floats(0.1, 3.0), eta_enc=eta, eta_dec=eta,
       d1=st.integers(1, 8), d2=st.integers(1, 8), seed=st.integers(0, 99))
def test_p5_mhvae_thm3(theta, beta1, beta2, sigma1, eta_enc, eta_dec, d1, d2, seed):
    theta = np.sort(np.array(theta))[::-1]
    th = np.zeros(d1)
    th[:min(d1, len(theta))] = theta[:d1]
    case_a = sigma1**2 >= beta2 / beta1 * eta_dec**2
    tau = beta2 * eta_dec**2 / (np.sqrt(beta1) * sigma1)
    assume(_far(sigma1**2, beta2 / beta1 * eta_dec**2) and all(_far(t, tau) for t in th))
    res = linvae.fit(Moments.from_matrices(_rotated(theta**2, seed)), model="mhvae", latent_dims=(d1, d2),
                     beta1=beta1, beta2=beta2, sigma1=sigma1, eta_enc=eta_enc, eta_dec=eta_dec)
    npair = min(d1, d2)
    expected = (0 if case_a else int(np.sum(th[:npair] < tau))) + (d2 - npair)
    assert res.n_collapsed == expected
    np.testing.assert_allclose(res.sigma2[res.collapsed], eta_enc, rtol=1e-12)
    np.testing.assert_array_equal(res.kl_per_dim[res.collapsed], 0.0)
    assert np.all(res.kl_per_dim[~res.collapsed] > 0)


def _mode_loss(v, theta, b1, b2, s1, s2, c):
    """Per-mode MHVAE loss (paired mode, Σ₁, Σ₂ fixed) in (u, λ, ω, w), from SPEC §2."""
    u, lam, om, w = v
    g = om * w - 1
    return ((u * lam - theta) ** 2 + u**2 * s1**2
            + b1 * (g**2 * lam**2 + om**2 * s2**2 + g**2 * s1**2)
            + b2 * c**2 * (w**2 * lam**2 + w**2 * s1**2))


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(theta=st.floats(0.05, 5.0), beta1=st.floats(0.1, 4.0), beta2=st.floats(0.1, 4.0),
       sigma1=st.floats(0.1, 2.0), sigma2=st.floats(0.1, 2.0), eta_enc=eta, eta_dec=eta)
def test_p6_mhvae_thm5_per_mode_brute_force(theta, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec):
    c = eta_dec / eta_enc
    lam, om = linvae.theory.thm5_spectra(theta, True, beta1, beta2, sigma1, sigma2, eta_enc, eta_dec)
    assert np.isfinite(lam) and np.isfinite(om) and lam >= 0 and om >= 0
    u = theta * lam / (lam**2 + sigma1**2)
    w = beta1 * om / (beta1 * om**2 + beta2 * c**2)
    closed = _mode_loss((u, lam, om, w), theta, beta1, beta2, sigma1, sigma2, c)
    rng = np.random.default_rng(0)
    best = np.inf
    for start in rng.normal(scale=1.0, size=(12, 4)):
        r = scipy.optimize.minimize(_mode_loss, start, args=(theta, beta1, beta2, sigma1, sigma2, c),
                                    method="BFGS", options={"gtol": 1e-12})
        best = min(best, r.fun)
    assert closed <= best + 1e-8 * max(1.0, abs(best))
    assert closed >= best - 1e-5 * max(1.0, abs(best))     # the brute force reaches it too
    # no spurious zeros: strictly inside case 1 both maps are non-zero
    K = np.sqrt(beta1 * beta2) * c
    if theta > 1.01 * max(np.sqrt(K * sigma1 * sigma2), beta2 * c**2 * sigma2**2 / (np.sqrt(beta1) * sigma1)):
        assert lam > 0 and om > 0
