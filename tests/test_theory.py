"""Closed forms (Thm 1–5) against an independent numerical minimizer (tests/naive.py).

For each theorem, on data with a prescribed spectrum, the closed-form loss must be no larger
than the best loss scipy's L-BFGS finds from many random starts (within 1e-6 relative), the two
must agree (a lower numerical loss would refute the closed form), the loss reported by the fit
must equal the loop-based loss of its own matrices, and the rotation-invariant summaries
(singular values, sorted σ) must agree within 1e-4.
"""
import numpy as np
import pytest

import linvae
import naive

RTOL_LOSS = 1e-6
TOL_INV = 1e-4


def _check_loss(res, numeric, loop_loss):
    scale = max(1.0, abs(numeric["loss"]))
    # The closed form is at least as good as anything the optimizer found ...
    assert res.loss <= numeric["loss"] + RTOL_LOSS * scale
    # ... and the optimizer gets there too (so the comparison is not vacuous).
    assert abs(res.loss - numeric["loss"]) <= RTOL_LOSS * scale
    # The reported loss is the loss of the reported matrices.
    assert res.loss == pytest.approx(loop_loss, rel=1e-10, abs=1e-10)


def _whiten(params, X):
    """Replace the data-side encoder W (or W1) by W·E[xxᵀ]^{1/2}: the encoder is identifiable only
    on the range of the data (directions with no data energy do not enter the loss)."""
    phi, P = np.linalg.eigh(X.T @ X / len(X))
    half = (P * np.sqrt(np.clip(phi, 0, None))) @ P.T
    out = dict(params)
    for key in ("W", "W1"):
        if key in out:
            out[key] = out[key] @ half
    return out


def _check_invariants(ours, theirs, X):
    a, b = naive.invariants(_whiten(ours, X)), naive.invariants(_whiten(theirs, X))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=TOL_INV, rtol=TOL_INV, err_msg=key)


def _data(n, d, theta, seed):
    return naive.make_data(n, d, np.asarray(theta, float), np.random.default_rng(seed))


VAE_CASES = [
    # n, d, theta, latent, beta, eta_enc, eta_dec
    pytest.param(40, 6, [3.0, 2.2, 1.5, 0.9, 0.4], 4, 1.5, 0.7, 1.1, id="n>d"),
    pytest.param(4, 7, [2.5, 1.2, 0.6], 5, 0.6, 1.3, 0.9, id="n<d,latent>rank"),
]


@pytest.mark.slow
@pytest.mark.parametrize("n,d,theta,latent,beta,eta_enc,eta_dec", VAE_CASES)
def test_thm4_vae_learnable(n, d, theta, latent, beta, eta_enc, eta_dec):
    X = _data(n, d, theta, 0)
    res = linvae.fit(X, beta=beta, eta_enc=eta_enc, eta_dec=eta_dec, latent_dim=latent)
    assert res.theorem == "Thm 4"
    numeric = naive.minimize_vae(X, latent, beta, eta_enc, eta_dec, n_restarts=4, seed=1)
    loop = naive.vae_loss_loop(X, res.W, res.U, res.sigma, beta, eta_enc, eta_dec)
    _check_loss(res, numeric, loop)
    _check_invariants({"W": res.W, "U": res.U, "sigma": res.sigma}, numeric, X)
    # the case must exercise both collapsed and active dims
    assert 0 < res.n_collapsed < latent


@pytest.mark.slow
@pytest.mark.parametrize("n,d,theta,latent,beta,eta_enc,eta_dec", VAE_CASES)
def test_thm1_vae_fixed_sigma(n, d, theta, latent, beta, eta_enc, eta_dec):
    X = _data(n, d, theta, 2)
    # unsorted σ, one of them equal to η_enc: the pairing must sort them ascending
    sigma = np.array([1.7, 0.45, eta_enc, 0.8, 2.4][:latent])
    res = linvae.fit(X, beta=beta, eta_enc=eta_enc, eta_dec=eta_dec, latent_dim=latent, sigma=sigma)
    assert res.theorem == "Thm 1"
    np.testing.assert_array_equal(res.sigma, sigma)
    numeric = naive.minimize_vae(X, latent, beta, eta_enc, eta_dec, sigma=sigma, n_restarts=4, seed=3)
    loop = naive.vae_loss_loop(X, res.W, res.U, res.sigma, beta, eta_enc, eta_dec)
    _check_loss(res, numeric, loop)
    _check_invariants({"W": res.W, "U": res.U, "sigma": res.sigma}, numeric, X)
    assert res.dead.any() and not res.dead.all()


@pytest.mark.slow
def test_thm1_pairing_is_better_than_any_other():
    """Every other assignment of the fixed σ's to the data modes gives a larger loss."""
    import itertools

    X = _data(30, 5, [2.5, 1.8, 1.1, 0.7], 4)
    sigma = np.array([0.9, 0.3, 0.6])
    res = linvae.fit(X, latent_dim=3, sigma=sigma, beta=0.8, eta_enc=1.2, eta_dec=0.6)
    for perm in itertools.permutations(range(3)):
        numeric = naive.minimize_vae(X, 3, 0.8, 1.2, 0.6, sigma=sigma[list(perm)], n_restarts=2, seed=5)
        assert res.loss <= numeric["loss"] * (1 + RTOL_LOSS) + RTOL_LOSS


CVAE_CASES = [
    # n, dx, dy, latent, beta, eta_enc, eta_dec
    pytest.param(50, 4, 5, 4, 0.7, 0.6, 0.9, id="n>d"),
    pytest.param(8, 3, 10, 9, 1.3, 1.4, 0.5, id="n<dy,latent>rank"),
]


@pytest.mark.slow
@pytest.mark.parametrize("n,dx,dy,latent,beta,eta_enc,eta_dec", CVAE_CASES)
def test_thm2_cvae(n, dx, dy, latent, beta, eta_enc, eta_dec):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, dx))
    Y = X @ rng.normal(size=(dx, dy)) * 0.7 + rng.normal(size=(n, dy)) * np.linspace(1.5, 0.2, dy)
    res = linvae.fit(X, Y, beta=beta, eta_enc=eta_enc, eta_dec=eta_dec, latent_dim=latent)
    assert res.theorem == "Thm 2"
    numeric = naive.minimize_cvae(X, Y, latent, beta, eta_enc, eta_dec, n_restarts=4, seed=8)
    loop = naive.cvae_loss_loop(X, Y, res.W1, res.W2, res.U1, res.U2, res.sigma, beta, eta_enc, eta_dec)
    _check_loss(res, numeric, loop)
    # The encoder [W₁ W₂] is identifiable only on the range of the joint data, so compare the
    # spectrum of the encoder-mean covariance E[mmᵀ] (m = W₁x + W₂y) instead of W₁, W₂.
    XY = np.hstack([X, Y])

    def summary(p):
        inv = naive.invariants(p)
        enc = XY @ np.hstack([p["W1"], p["W2"]]).T
        inv["enc_cov"] = np.sort(np.linalg.eigvalsh(enc.T @ enc / n))
        return inv

    ours = {"W1": res.W1, "W2": res.W2, "U1": res.U1, "U2": res.U2, "sigma": res.sigma}
    a, b = summary(ours), summary(numeric)
    for key in ("sigma_sorted", "sv_U1", "sv_U2", "enc_cov"):
        np.testing.assert_allclose(a[key], b[key], atol=TOL_INV, rtol=TOL_INV, err_msg=key)
    assert 0 < res.n_collapsed < latent


def _thm5_case(theta, b1, b2, s1, s2, c):
    """Which case of Thm 5 applies to a mode (computed here from SPEC §3, independently)."""
    K = np.sqrt(b1 * b2) * c
    if theta >= np.sqrt(K * s1 * s2) and theta >= b2 * c**2 * s2**2 / (np.sqrt(b1) * s1):
        return 1
    if np.sqrt(b1) * s1 >= np.sqrt(b2) * c * s2:
        return 2
    return 3 if theta < np.sqrt(b1) * s1 else 4


MH_THETA = [3.0, 2.0, 1.2, 0.7, 0.3]


@pytest.mark.slow
@pytest.mark.parametrize("d1,d2", [(4, 3), (3, 4)])
@pytest.mark.parametrize(
    "beta1,beta2,sigma1,eta_enc,eta_dec",
    [
        pytest.param(0.5, 1.3, 0.5, 0.8, 0.7, id="caseB,beta1<1"),
        pytest.param(2.0, 0.6, 0.9, 0.8, 0.7, id="caseA,beta1>1"),
        pytest.param(2.5, 2.0, 0.6, 1.1, 0.5, id="caseB,beta1>1"),
    ],
)
def test_thm3_mhvae_sigma2_learnable(d1, d2, beta1, beta2, sigma1, eta_enc, eta_dec):
    X = _data(30, 6, MH_THETA, 11)
    res = linvae.fit(X, model="mhvae", latent_dims=(d1, d2), beta1=beta1, beta2=beta2, sigma1=sigma1,
                     eta_enc=eta_enc, eta_dec=eta_dec)
    assert res.theorem == "Thm 3"
    numeric = naive.minimize_mhvae(X, d1, d2, beta1, beta2, eta_enc, eta_dec, sigma1, n_restarts=5, seed=12)
    loop = naive.mhvae_loss_loop(X, res.W1, res.W2, res.U1, res.U2, res.sigma1, res.sigma2,
                                 beta1, beta2, eta_enc, eta_dec)
    _check_loss(res, numeric, loop)
    _check_invariants({"W1": res.W1, "W2": res.W2, "U1": res.U1, "U2": res.U2,
                       "sigma1": res.sigma1, "sigma2": res.sigma2}, numeric, X)


@pytest.mark.slow
@pytest.mark.parametrize(
    "beta1,beta2,sigma1,sigma2,eta_enc,eta_dec,cases",
    [
        pytest.param(0.5, 1.3, 0.5, 0.6, 0.8, 0.7, {1, 3, 4}, id="beta1<1"),
        pytest.param(2.0, 0.6, 0.9, 0.6, 0.8, 0.7, {1, 2}, id="beta1>1,case2"),
        pytest.param(1.6, 0.4, 1.3, 1.0, 1.0, 0.5, {1, 2}, id="case2-rank-deficient"),
    ],
)
def test_thm5_mhvae_both_fixed(beta1, beta2, sigma1, sigma2, eta_enc, eta_dec, cases):
    theta_all = [3.0, 2.0, 0.9, 0.3, 0.2]
    X = _data(30, 6, theta_all, 13)
    d1, d2 = 5, 4
    c = eta_dec / eta_enc
    theta = np.array(theta_all[:d2])
    hit = {_thm5_case(t, beta1, beta2, sigma1, sigma2, c) for t in theta}
    assert hit == cases  # the parameters exercise the intended cases
    res = linvae.fit(X, model="mhvae", latent_dims=(d1, d2), beta1=beta1, beta2=beta2, sigma1=sigma1,
                     sigma2=sigma2, eta_enc=eta_enc, eta_dec=eta_dec)
    assert res.theorem == "Thm 5"
    numeric = naive.minimize_mhvae(X, d1, d2, beta1, beta2, eta_enc, eta_dec, sigma1, sigma2=sigma2,
                                   n_restarts=5, seed=14)
    loop = naive.mhvae_loss_loop(X, res.W1, res.W2, res.U1, res.U2, res.sigma1, res.sigma2,
                                 beta1, beta2, eta_enc, eta_dec)
    _check_loss(res, numeric, loop)
    _check_invariants({"W1": res.W1, "W2": res.W2, "U1": res.U1, "U2": res.U2,
                       "sigma1": res.sigma1, "sigma2": res.sigma2}, numeric, X)


def test_thm4_data_coordinates_match_spec():
    """W* = diag(λ/θ) P_kᵀ and U* = P_k diag(ω) with P_k the top eigenvectors of E[xxᵀ]."""
    X = _data(60, 5, [2.0, 1.5, 0.8, 0.3], 21)
    res = linvae.fit(X, latent_dim=3, beta=0.5)
    phi, P = np.linalg.eigh(X.T @ X / len(X))
    P = P[:, ::-1][:, :3]
    theta = np.sqrt(phi[::-1][:3])
    np.testing.assert_allclose(np.abs(res.W), np.abs(np.diag(res.lambda_ / theta) @ P.T), atol=1e-10)
    np.testing.assert_allclose(np.abs(res.U), np.abs(P @ np.diag(res.omega)), atol=1e-10)
    np.testing.assert_allclose(res.theta, theta, rtol=1e-12)
