"""Collapse metrics against naive implementations, known answers and the linear theory."""
import numpy as np
import pytest

import linvae
import naive
from linvae import metrics


def _naive_kl(mu, std, prior):
    out = np.empty(mu.shape)
    for i in range(mu.shape[0]):
        for j in range(mu.shape[1]):
            s2, p2 = std[j] ** 2, prior**2
            out[i, j] = 0.5 * ((mu[i, j] ** 2 + s2) / p2 - 1 - np.log(s2 / p2))
    return out


def test_kl_per_dim_matches_naive_and_logvar_form():
    rng = np.random.default_rng(0)
    mu, std = rng.normal(size=(20, 4)), rng.uniform(0.2, 3.0, size=4)
    ref = _naive_kl(mu, std, 1.7)
    np.testing.assert_allclose(metrics.kl_per_dim(mu, std=std, prior_std=1.7), ref, rtol=1e-12)
    np.testing.assert_allclose(metrics.kl_per_dim(mu, 2 * np.log(std), prior_std=1.7), ref, rtol=1e-12)


@pytest.mark.parametrize("std", [1e-150, 1e-20, 1 - 1e-12, 1.0, 1 + 1e-12, 1e20, 1e150])
def test_kl_per_dim_is_finite_and_precise_at_extremes(std):
    kl = metrics.kl_per_dim(np.zeros((1, 1)), std=np.array([std]))
    assert np.all(np.isfinite(kl)) and kl[0, 0] >= 0
    # exact value with the log-ratio written analytically: ½(s − 1 − log s), s = σ²
    ell = 2 * np.log(std)
    expected = 0.5 * (np.expm1(ell) - ell)
    assert kl[0, 0] == pytest.approx(expected, rel=1e-12, abs=1e-300)
    if std == 1 + 1e-12:
        assert kl[0, 0] == pytest.approx(1e-24, rel=1e-3)   # naive (s − 1 − log s) would lose it


def test_epsilon_delta_known_answer():
    """A dim whose KL is exactly zero for 96 % of examples: collapsed at δ = 0.05, not at δ = 0.01."""
    kl = np.zeros((100, 3))
    kl[:4, 0] = 1.0          # dim 0: zero for 96 %
    kl[:, 1] = 0.5           # dim 1: never below ε
    assert metrics.epsilon_delta_collapse(kl, 1e-3, 0.05).tolist() == [True, False, True]
    assert metrics.epsilon_delta_collapse(kl, 1e-3, 0.01).tolist() == [False, False, True]
    assert metrics.epsilon_delta_collapse(kl, 0.6, 0.0).tolist() == [False, True, True]


def test_collapse_curve_matches_naive_loop():
    rng = np.random.default_rng(1)
    kl = rng.exponential(scale=[1e-4, 1e-2, 1.0, 10.0], size=(300, 4))
    eps = np.logspace(-6, 2, 17)
    for delta in (0.0, 0.05, 0.3):
        naive_counts = [sum(np.mean(kl[:, j] < e) >= 1 - delta for j in range(4)) for e in eps]
        np.testing.assert_array_equal(metrics.collapse_curve(kl, eps, delta), naive_counts)


def test_active_units():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(500, 4)) * [1.0, 0.5, 0.05, 0.0]
    assert metrics.active_units_variance(mu) == 2             # var 1, 0.25 > 0.01; 0.0025, 0 not
    count, var = metrics.active_units_variance(mu, threshold=1e-3, return_variances=True)
    assert count == 3
    np.testing.assert_allclose(var, [np.var(mu[:, j], ddof=1) for j in range(4)])
    kl = np.array([[0.0, 0.02], [0.011, 0.005]])
    assert metrics.active_units_kl(kl) == pytest.approx(0.5)   # 2 of 4 pairs ≥ 0.01


@pytest.mark.parametrize("call,match", [
    (lambda: metrics.collapse_curve(np.ones((3, 2)), [-1e-3]), "eps"),
    (lambda: metrics.collapse_curve(np.ones((3, 2)), [0.0]), "eps"),
    (lambda: metrics.epsilon_delta_collapse(np.ones((3, 2)), 1e-3, 1.0), "delta"),
    (lambda: metrics.epsilon_delta_collapse(np.ones((3, 2)), 1e-3, -0.1), "delta"),
    (lambda: metrics.collapse_curve(np.ones(3), [1e-3]), "2-D"),
    (lambda: metrics.kl_per_dim(np.ones((3, 2)), std=np.ones(3)), "broadcast"),
    (lambda: metrics.kl_per_dim(np.ones((3, 2)), std=np.array([1.0, -1.0])), "std"),
    (lambda: metrics.kl_per_dim(np.ones((3, 2))), "exactly one"),
    (lambda: metrics.active_units_variance(np.ones((1, 2))), "at least 2"),
])
def test_metric_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ----------------------------------------------------------------------------- linear fits

def _vae_fixture():
    X = naive.make_data(400, 6, np.array([2.5, 1.8, 1.2, 0.7, 0.4, 0.2]), np.random.default_rng(3))
    return X


def test_collapse_curve_of_closed_form_vae_equals_thm4():
    X = _vae_fixture()
    res = linvae.fit(X, beta=1.0, eta_dec=0.9, latent_dim=5)
    kl = res.kl_per_example(X)
    counts = metrics.collapse_curve(kl, np.logspace(-8, -5, 4), delta=0.05)
    theta = np.linalg.svd(X / np.sqrt(len(X)), compute_uv=False)[:5]
    assert np.all(counts == np.sum(theta < 0.9))         # Thm 4 count at small ε
    np.testing.assert_allclose(kl.mean(axis=0), res.kl_per_dim, rtol=1e-10, atol=1e-14)


def test_collapse_curve_of_fixed_sigma_vae_shows_none_below_constant_kl():
    X = _vae_fixture()
    sigma = np.array([0.3, 0.6, 1.4, 1.6, 2.0])
    res = linvae.fit(X, beta=1.0, eta_dec=0.9, eta_enc=1.0, latent_dim=5, sigma=sigma)
    assert res.dead.any()
    kl = res.kl_per_example(X)
    s = sigma[res.dead] ** 2
    const = 0.5 * (s - 1 - np.log(s))
    np.testing.assert_allclose(kl[:, res.dead], np.broadcast_to(const, (len(X), const.size)), rtol=1e-12)
    assert metrics.collapse_curve(kl, [0.999 * const.min()], delta=0.05)[0] == 0
    assert metrics.collapse_curve(kl, [1.001 * const.max()], delta=0.05)[0] >= res.dead.sum()


@pytest.mark.parametrize("model", ["vae", "cvae", "mhvae"])
def test_exact_log_likelihood_matches_scipy(model):
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 4)) * [2, 1, 0.5, 0.3]
    if model == "cvae":
        Y = X[:, :2] @ rng.normal(size=(2, 3)) + rng.normal(size=(50, 3))
        res = linvae.fit(X, Y, beta=0.5, eta_enc=1.3, eta_dec=0.6)
        mean = X @ res.U2.T
        cov = 1.3**2 * res.U1 @ res.U1.T + 0.36 * np.eye(3)
        ref = np.array([multivariate_normal(mean[i], cov).logpdf(Y[i]) for i in range(50)])
        got = metrics.exact_log_likelihood(res, X, Y)
    elif model == "vae":
        res = linvae.fit(X, beta=0.5, eta_enc=1.3, eta_dec=0.6)
        cov = 1.3**2 * res.U @ res.U.T + 0.36 * np.eye(4)
        ref = multivariate_normal(np.zeros(4), cov).logpdf(X)
        got = metrics.exact_log_likelihood(res, X)
    else:
        res = linvae.fit(X, model="mhvae", beta1=0.7, beta2=0.5, sigma1=0.4, eta_enc=1.3, eta_dec=0.6)
        # sample the generative model and compare the covariance instead of re-deriving it
        samples = res.sample(400_000, seed=0)
        cov = np.cov(samples.T, bias=True) + np.outer(samples.mean(0), samples.mean(0))
        ref = multivariate_normal(np.zeros(4), cov).logpdf(X)
        got = metrics.exact_log_likelihood(res, X)
        np.testing.assert_allclose(got, ref, atol=0.03)
        return
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("model", ["vae", "cvae", "mhvae"])
def test_is_log_likelihood_converges_to_exact(model):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 4)) * [2, 1, 0.5, 0.3]
    args = (X,)
    if model == "cvae":
        args = (X, X[:, :2] @ rng.normal(size=(2, 3)) + rng.normal(size=(40, 3)))
        res = linvae.fit(*args, beta=0.8, eta_dec=0.7)
    elif model == "vae":
        res = linvae.fit(X, beta=0.8, eta_dec=0.7)
    else:
        res = linvae.fit(X, model="mhvae", beta1=1.0, beta2=0.8, sigma1=0.5, eta_dec=0.7)
    exact = metrics.exact_log_likelihood(res, *args)
    err = {}
    for S in (10, 1000):
        est = metrics.log_likelihood_is(res, *args, n_samples=S, seed=1, batch_size=97)
        assert np.all(np.isfinite(est))
        err[S] = np.abs(est - exact).mean()
    assert err[1000] < 0.05
    assert err[1000] <= err[10] + 1e-12
    # IS is a stochastic lower bound in expectation: the mean estimate does not exceed the truth
    assert np.mean(metrics.log_likelihood_is(res, *args, n_samples=1000, seed=2) - exact) < 0.01


def test_is_log_likelihood_batches_do_not_change_the_estimate():
    X = _vae_fixture()[:30]
    res = linvae.fit(X, beta=0.5)
    a = metrics.log_likelihood_is(res, X, n_samples=300, seed=7, batch_size=300)
    b = metrics.log_likelihood_is(res, X, n_samples=300, seed=7, batch_size=300)
    np.testing.assert_array_equal(a, b)
    c = metrics.log_likelihood_is(res, X, n_samples=300, seed=7, batch_size=1)
    assert np.abs(c - a).mean() < 0.2        # different draws, same estimator


def test_is_log_likelihood_extreme_inputs_stay_finite():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(20, 3)) * [1e3, 1.0, 1e-3]
    res = linvae.fit(X, beta=2.0, eta_dec=1e-2)
    est = metrics.log_likelihood_is(res, X * 50, n_samples=200)     # far outside the data
    assert np.all(np.isfinite(est))
    assert np.all(np.isfinite(metrics.exact_log_likelihood(res, X * 50)))


def test_is_log_likelihood_custom_log_weights_and_errors():
    X = np.zeros((5, 2))
    # constant weights: the estimate is that constant
    est = metrics.log_likelihood_is(None, X, n_samples=50, log_weights=lambda rng, s: np.full((s, 5), -3.0))
    np.testing.assert_allclose(est, -3.0)
    with pytest.raises(FloatingPointError):
        metrics.log_likelihood_is(None, X, n_samples=5, log_weights=lambda rng, s: np.full((s, 5), np.nan))
    with pytest.raises(ValueError, match="shape"):
        metrics.log_likelihood_is(None, X, n_samples=5, log_weights=lambda rng, s: np.zeros((s, 4)))
    res = linvae.fit(np.random.default_rng(0).normal(size=(10, 2)))
    with pytest.raises(ValueError, match="features"):
        metrics.log_likelihood_is(res, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="n_samples"):
        metrics.log_likelihood_is(res, np.zeros((3, 2)), n_samples=0)


def test_plot_collapse_curve(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    eps = np.logspace(-6, 1, 8)
    ax = metrics.plot_collapse_curve(eps, np.arange(8), label="trained", theory=3)
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 2
    ax.figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


@pytest.mark.parametrize("model", ["vae", "cvae", "mhvae"])
def test_marginal_mean_and_cov_match_ancestral_samples(model):
    """The Gaussian marginal behind exact_log_likelihood against the model's own ancestral sampler
    (independent code: sample() draws z then x, it never forms a covariance)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    if model == "cvae":
        Y = X[:, :2] @ rng.normal(size=(2, 3)) + rng.normal(size=(300, 3))
        fit = linvae.fit(X, Y, eta_dec=0.7, center=True)
        x0 = X[:1]
        draws = fit.sample(np.repeat(x0, 200_000, axis=0), seed=1)
        mean = fit.marginal_mean(x0)[0]
    else:
        fit = linvae.fit(X, model=model, eta_dec=0.7, center=True)
        draws = fit.sample(200_000, seed=1)
        mean = fit.marginal_mean(X)
    cov = fit.marginal_cov()
    scale = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.02 * scale.max())
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.02 * np.outer(scale, scale).max())


def test_linear_fit_metrics_refuse_what_is_not_a_linear_fit():
    import types

    X = np.random.default_rng(0).normal(size=(20, 3))
    fit = linvae.fit(X, latent_dim=2)
    lookalike = types.SimpleNamespace(model="vae", check_inputs=fit.check_inputs)   # a name is not enough
    for bad in (object(), {"model": "vae"}, lookalike):
        with pytest.raises(TypeError, match="expected a linear fit result"):
            metrics.kl_per_example(bad, X)
    assert metrics.kl_per_example(fit, X).shape == (20, 2)
