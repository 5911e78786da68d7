"""Fast self-checks of the independent oracle in tests/naive.py."""


import numpy as np
import pytest

import naive  # tests/ is on sys.path (conftest.py)


def _close(a, b, tol=1e-10):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _rand_sigma(rng, d):
    return np.exp(rng.normal(0.0, 0.5, size=d))


@pytest.mark.parametrize("N", [7, 40])
def test_vae_loop_equals_moments(N):
    rng = np.random.default_rng(1)
    d0, d1 = 5, 3
    X = rng.normal(size=(N, d0))
    W, U = rng.normal(size=(d1, d0)), rng.normal(size=(d0, d1))
    sigma = _rand_sigma(rng, d1)
    args = (0.7, 1.3, 0.6)
    a = naive.vae_loss_loop(X, W, U, sigma, *args)
    b = naive.vae_loss_moments(X.T @ X / N, W, U, sigma, *args)
    assert _close(a, float(b))


def test_cvae_loop_equals_moments():
    rng = np.random.default_rng(2)
    N, dx, dy, dz = 30, 4, 3, 5
    X, Y = rng.normal(size=(N, dx)), rng.normal(size=(N, dy))
    W1, W2 = rng.normal(size=(dz, dx)), rng.normal(size=(dz, dy))
    U1, U2 = rng.normal(size=(dy, dz)), rng.normal(size=(dy, dx))
    sigma = _rand_sigma(rng, dz)
    args = (1.7, 0.8, 1.4)
    a = naive.cvae_loss_loop(X, Y, W1, W2, U1, U2, sigma, *args)
    b = naive.cvae_loss_moments(
        X.T @ X / N, X.T @ Y / N, Y.T @ Y / N, W1, W2, U1, U2, sigma, *args
    )
    assert _close(a, float(b))


@pytest.mark.parametrize("learned", [False, True])
def test_mhvae_loop_equals_moments(learned):
    rng = np.random.default_rng(3)
    N, d0, d1, d2 = 25, 6, 4, 3
    X = rng.normal(size=(N, d0))
    W1, W2 = rng.normal(size=(d1, d0)), rng.normal(size=(d2, d1))
    U1, U2 = rng.normal(size=(d0, d1)), rng.normal(size=(d1, d2))
    s1, s2 = _rand_sigma(rng, d1), _rand_sigma(rng, d2)
    args = (0.6, 2.5, 1.1, 0.7)
    a = naive.mhvae_loss_loop(X, W1, W2, U1, U2, s1, s2, *args, sigma1_learned=learned)
    b = naive.mhvae_loss_moments(
        X.T @ X / N, W1, W2, U1, U2, s1, s2, *args, sigma1_learned=learned
    )
    assert _close(a, float(b))
    # scalar sigma1 broadcasts like a constant vector
    c = naive.mhvae_loss_moments(X.T @ X / N, W1, W2, U1, U2, 0.4, s2, *args)
    d = naive.mhvae_loss_loop(X, W1, W2, U1, U2, np.full(d1, 0.4), s2, *args)
    assert _close(float(c), d)


def test_moments_batched_matches_unbatched():
    rng = np.random.default_rng(4)
    d0, d1, d2, batch = 4, 3, 2, (2, 3)
    A = (lambda X: X.T @ X / 10)(rng.normal(size=(10, d0)))
    W1 = rng.normal(size=batch + (d1, d0))
    W2 = rng.normal(size=batch + (d2, d1))
    U1 = rng.normal(size=batch + (d0, d1))
    U2 = rng.normal(size=batch + (d1, d2))
    s2 = _rand_sigma(rng, batch[0] * batch[1] * d2).reshape(batch + (d2,))
    args = (0.5, 1.5, 1.0, 0.9)
    out = naive.mhvae_loss_moments(A, W1, W2, U1, U2, 0.5, s2, *args)
    assert out.shape == batch
    for i in range(batch[0]):
        for j in range(batch[1]):
            ref = naive.mhvae_loss_moments(
                A, W1[i, j], W2[i, j], U1[i, j], U2[i, j], 0.5, s2[i, j], *args
            )
            assert _close(float(out[i, j]), float(ref))
    vae = naive.vae_loss_moments(A, U1.swapaxes(-1, -2), U1, s2[..., :1] * np.ones(d1), 1.0, 1.0, 1.0)
    assert vae.shape == batch


@pytest.mark.parametrize("model", ["vae", "cvae", "mhvae"])
def test_complex_step_gradient_matches_finite_differences(model):
    rng = np.random.default_rng(5)
    N = 20
    if model == "vae":
        X = rng.normal(size=(N, 4))
        fn = naive.vae_loss_moments
        shapes = {"W": (2, 4), "U": (4, 2), "sigma": (2,)}
        fixed = {"A": X.T @ X / N, "beta": 1.3, "eta_enc": 0.7, "eta_dec": 1.2}
    elif model == "cvae":
        X, Y = rng.normal(size=(N, 3)), rng.normal(size=(N, 2))
        fn = naive.cvae_loss_moments
        shapes = {"W1": (2, 3), "W2": (2, 2), "U1": (2, 2), "U2": (2, 3), "sigma": (2,)}
        fixed = {
            "Sxx": X.T @ X / N, "Sxy": X.T @ Y / N, "Syy": Y.T @ Y / N,
            "beta": 0.8, "eta_enc": 1.1, "eta_dec": 0.6,
        }
    else:
        X = rng.normal(size=(N, 4))
        fn = naive.mhvae_loss_moments
        shapes = {"W1": (3, 4), "W2": (2, 3), "U1": (4, 3), "U2": (3, 2), "sigma2": (2,)}
        fixed = {
            "A": X.T @ X / N, "sigma1": np.full(3, 0.5), "beta1": 0.7, "beta2": 1.6,
            "eta_enc": 0.9, "eta_dec": 1.1,
        }
    fun, _ = naive.make_objective(fn, shapes, fixed)
    vec = rng.normal(0.0, 0.5, size=sum(int(np.prod(s)) for s in shapes.values()))
    f, g = fun(vec)
    eps = 1e-6
    fd = np.empty_like(g)
    for k in range(vec.size):
        e = np.zeros_like(vec)
        e[k] = eps
        fd[k] = (fun(vec + e)[0] - fun(vec - e)[0]) / (2 * eps)
    assert np.isfinite(f)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.max(np.abs(g))))


@pytest.mark.parametrize("n,d,theta", [(50, 6, [3.0, 2.0, 0.5]), (4, 9, [2.0, 1.5, 1.0, 0.1])])
def test_make_data_spectrum(n, d, theta):
    X = naive.make_data(n, d, np.array(theta), np.random.default_rng(6))
    assert X.shape == (n, d)
    eig = np.sort(np.linalg.eigvalsh(X.T @ X / n))[::-1]
    expected = np.zeros(d)
    expected[: len(theta)] = np.sort(np.array(theta) ** 2)[::-1]
    np.testing.assert_allclose(eig, expected, atol=1e-10)


def test_make_data_rejects_too_many_modes():
    with pytest.raises(ValueError):
        naive.make_data(3, 5, np.ones(4), np.random.default_rng(0))


@pytest.mark.slow
def test_minimize_tiny_vae_improves_on_init_and_matches_thm4():
    rng = np.random.default_rng(7)
    theta = np.array([2.0, 1.2, 0.4])
    X = naive.make_data(30, 3, theta, rng)
    beta, eta_enc, eta_dec = 1.0, 0.8, 0.9
    res = naive.minimize_vae(X, 2, beta, eta_enc, eta_dec, n_restarts=3, seed=0)
    # independently recompute the loss at the same random initial points
    A = X.T @ X / X.shape[0]
    shapes = {"W": (2, 3), "U": (3, 2), "sigma": (2,)}
    fixed = {"A": A, "beta": beta, "eta_enc": eta_enc, "eta_dec": eta_dec}
    fun, _ = naive.make_objective(naive.vae_loss_moments, shapes, fixed)
    init_rng = np.random.default_rng(0)
    inits = [fun(naive.random_init(shapes, init_rng))[0] for _ in range(3)]
    np.testing.assert_allclose(inits, res["init_losses"], rtol=1e-12)
    assert res["loss"] <= min(inits)
    assert res["loss"] == min(res["all_losses"])
    # the returned parameters reproduce the returned loss (loop form, raw data)
    assert _close(naive.vae_loss_loop(X, res["W"], res["U"], res["sigma"], beta, eta_enc, eta_dec),
                  res["loss"], 1e-9)
    # Thm 4 (learnable Sigma): theta_1 > sqrt(beta) eta_dec > theta_2 -> one active dim
    inv = naive.invariants(res)
    k = np.sqrt(beta) * eta_dec
    th = theta[:2]
    omega = np.sqrt(np.maximum(0.0, th**2 - beta * eta_dec**2)) / eta_enc
    sig = np.where(th >= k, k * eta_enc / th, eta_enc)
    np.testing.assert_allclose(inv["sv_U"], omega, atol=1e-5)
    np.testing.assert_allclose(inv["sigma_sorted"], np.sort(sig), atol=1e-5)
    assert set(inv) == {"sv_W", "sv_U", "sigma_sorted", "sv_UW"}
