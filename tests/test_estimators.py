"""The scikit-learn estimators: compatibility (issue #18), shapes and maps, parameters and clone,
the not-fitted error, and ``score``/``elbo`` against a Monte-Carlo β-ELBO computed from the fitted
matrices only (moved here from test_api.py)."""
import dataclasses

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

import linvae  # noqa: E402
from linvae.estimators import LinearCVAE, LinearMHVAE, LinearVAE, NotFittedError, expected_failed_checks  # noqa: E402

import naive  # noqa: E402  (tests/ is on sys.path: conftest.py)
from testdata import cvae_data as _cvae_data  # noqa: E402
from testdata import vae_data as _vae_data  # noqa: E402

LOG2PI = np.log(2 * np.pi)


@parametrize_with_checks([LinearVAE(), LinearCVAE(), LinearMHVAE()])
def test_sklearn_compatible(estimator, check):
    """Every scikit-learn estimator check, with nothing declared expected to fail."""
    check(estimator)
    assert expected_failed_checks() == {}


@pytest.mark.parametrize("k", [1, 2, 4])
def test_learnable_decoder_scale_at_beta_1_is_probabilistic_pca(k):
    """Tipping & Bishop's pPCA: noise variance, covariance, principal subspace and score equal
    scikit-learn's PCA(n_components=k) to 1e-6, up to PCA's N − 1 normalisation (stated)."""
    from scipy.stats import multivariate_normal
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(k)
    N, d = 500, 7
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d) * 4
    est = LinearVAE(n_components=k, eta_dec="learnable").fit(X)
    pca = PCA(n_components=k).fit(X)
    f = (N - 1) / N                                           # PCA divides by N − 1, the MLE by N
    assert est.result_.eta_dec_learned and est.n_components_ == k
    np.testing.assert_allclose(est.noise_variance_, pca.noise_variance_ * f, rtol=1e-6)
    np.testing.assert_allclose(est.get_covariance(), pca.get_covariance() * f, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(est.get_precision(), np.linalg.inv(pca.get_covariance() * f), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(est.mean_, pca.mean_, rtol=1e-12)
    proj = est.components_.T @ est.components_                # the principal subspace, sign- and basis-free
    np.testing.assert_allclose(proj, pca.components_.T @ pca.components_, atol=1e-6)
    np.testing.assert_allclose(est.explained_variance_, pca.explained_variance_ * f, rtol=1e-6)
    reference = multivariate_normal(pca.mean_, pca.get_covariance() * f).logpdf(X).mean()
    np.testing.assert_allclose(est.score(X), reference, rtol=1e-9)
    # and it is the maximum: PCA's own (N − 1) covariance scores lower on the training data
    assert est.score(X) > pca.score(X)


def test_learnable_decoder_scale_maximises_the_elbo_for_any_beta():
    X = _vae_data(3, n=300, scales=(3.0, 1.5, 0.8, 0.3, 0.1))
    for beta in (0.5, 2.0):
        est = LinearVAE(n_components=2, beta=beta, eta_dec="learnable").fit(X)
        best = est.elbo_score(X)
        for factor in (0.97, 1.03):
            other = LinearVAE(n_components=2, beta=beta, eta_dec=est.eta_dec_ * factor).fit(X)
            assert other.elbo_score(X) < best
    with pytest.raises(ValueError, match="learnable.*latent_dim=5 on 5"):
        linvae.fit(X, eta_dec="learnable")
    with pytest.raises(ValueError, match="closed form"):
        linvae.fit(X, eta_dec="learnable", latent_dim=2, solver="adam")
    cv = LinearCVAE(n_components=1, eta_dec="learnable").fit(X[:, :2], X[:, 2:])
    assert cv.result_.eta_dec_learned and cv.get_covariance().shape == (3, 3)


def test_pca_style_attributes_and_n_components_alias():
    X = _vae_data(5, n=300, scales=(3.0, 1.5, 0.8, 0.3))
    a, b = LinearVAE(n_components=3).fit(X), LinearVAE(latent_dim=3).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    with pytest.raises(ValueError, match="n_components=3 and latent_dim=2 disagree"):
        LinearVAE(n_components=3, latent_dim=2).fit(X)
    assert LinearVAE().center is True and np.allclose(a.mean_, X.mean(axis=0))
    np.testing.assert_allclose(a.components_ @ a.components_.T, np.eye(3), atol=1e-12)
    C = a.components_.T @ np.diag(a.explained_variance_ - a.noise_variance_) @ a.components_
    np.testing.assert_allclose(C + a.noise_variance_ * np.eye(4), a.get_covariance(), atol=1e-12)
    r = a.result_
    np.testing.assert_allclose(a.get_covariance(), r.eta_enc**2 * r.U @ r.U.T + r.eta_dec**2 * np.eye(4), atol=1e-12)
    h = LinearMHVAE(n_components=(3, 2)).fit(X)
    assert h.n_components_ == 3 and h.get_covariance().shape == (4, 4)
    np.testing.assert_allclose(h.get_covariance() @ h.get_precision(), np.eye(4), atol=1e-9)
    # the MHVAE's score is log N(x | mean_, get_covariance())
    from scipy.stats import multivariate_normal

    np.testing.assert_allclose(h.score(X), multivariate_normal(h.mean_, h.get_covariance()).logpdf(X).mean(),
                               rtol=1e-10)


def _factor_data(seed=0, n=600):
    """Two strong factors in 6 features plus unit noise: after standardising, two eigenvalues of
    the correlation matrix are well above η_dec² = 1 and four are below."""
    rng = np.random.default_rng(seed)
    L = rng.normal(size=(6, 2)) * 2.0
    return rng.normal(size=(n, 2)) @ L.T + rng.normal(size=(n, 6)) * [1, 1, 1, 1, 1, 1] + [5, -3, 0, 1, 2, 0]


def _gauss_loglik(X, cov):
    """Independent reference: log N(x | 0, cov) with scipy."""
    from scipy.stats import multivariate_normal

    return multivariate_normal(mean=np.zeros(cov.shape[0]), cov=cov).logpdf(X)


def test_grid_search_over_beta_and_latent_picks_by_log_likelihood():
    X = _factor_data()
    pipe = Pipeline([("sc", StandardScaler()), ("vae", LinearVAE())])
    betas, dims = [0.1, 1.0, 4.0], [1, 2, 4]
    gs = GridSearchCV(pipe, {"vae__beta": betas, "vae__latent_dim": dims}, cv=3).fit(X)
    scores = gs.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    # β = 1 is the maximum-likelihood noise model when η_dec = 1 (model variance θ² − (β−1)η_dec²
    # along each active direction), and one latent dim cannot hold two factors
    assert gs.best_params_["vae__beta"] == 1.0
    assert gs.best_params_["vae__latent_dim"] in (2, 4)
    # the best score is the held-out Gaussian log-likelihood, recomputed independently per fold
    from sklearn.model_selection import KFold

    best = gs.best_params_
    ref = []
    for train, test in KFold(3).split(X):
        sc = StandardScaler().fit(X[train])
        est = LinearVAE(beta=best["vae__beta"], latent_dim=best["vae__latent_dim"]).fit(sc.transform(X[train]))
        cov = est.U_ @ est.U_.T + np.eye(6)                    # η_enc = η_dec = 1
        ref.append(_gauss_loglik(sc.transform(X[test]), cov).mean())
    assert gs.best_score_ == pytest.approx(np.mean(ref), rel=1e-10)
    # the β-ELBO would have picked the smallest β (it falls as β grows): the old, wrong criterion
    elbo = [LinearVAE(beta=b, latent_dim=2).fit(StandardScaler().fit_transform(X)) for b in betas]
    Xs = StandardScaler().fit_transform(X)
    assert np.argmax([e.elbo_score(Xs) for e in elbo]) == 0


def test_score_is_exact_log_likelihood_for_all_three():
    X = _factor_data(1, n=200)
    v = LinearVAE(center=False, beta=0.7, latent_dim=3, eta_enc=1.3, eta_dec=0.8).fit(X)
    cov = 1.3**2 * v.U_ @ v.U_.T + 0.8**2 * np.eye(6)
    np.testing.assert_allclose(v.score_samples(X), _gauss_loglik(X, cov), rtol=1e-10)
    assert v.score(X) == pytest.approx(_gauss_loglik(X, cov).mean(), rel=1e-10)

    h = LinearMHVAE(center=False, latent_dims=(3, 2), beta1=0.8, beta2=1.2, eta_enc=1.1, eta_dec=0.7, sigma1=0.3).fit(X)
    cov1 = 1.1**2 * h.U2_ @ h.U2_.T + 0.7**2 * np.eye(3)
    cov = h.U1_ @ cov1 @ h.U1_.T + 0.7**2 * np.eye(6)
    np.testing.assert_allclose(h.score_samples(X), _gauss_loglik(X, cov), rtol=1e-10)

    rng = np.random.default_rng(2)
    Xc = rng.normal(size=(300, 3))
    y = Xc @ [1.0, -2.0, 0.5] + 0.7 * rng.normal(size=300)
    c = LinearCVAE(center=False, beta=0.5, eta_dec=0.6).fit(Xc, y)
    var = (c.U1_ @ c.U1_.T)[0, 0] + 0.6**2
    ref = -0.5 * ((y - Xc @ c.U2_[0]) ** 2 / var + np.log(2 * np.pi * var))
    np.testing.assert_allclose(c.log_likelihood(Xc, y), ref, rtol=1e-10)
    assert c.score(Xc, y) == pytest.approx(ref.mean(), rel=1e-10)


def test_cvae_accepts_1d_y_and_predicts_conditional_mean():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=400)
    for beta in (0.1, 1.0, 5.0):
        c = LinearCVAE(center=False, beta=beta).fit(X, y)
        pred = c.predict(X)
        assert pred.shape == (400,)
        # E[y|x] = U₂x, the least-squares regression of y on x (no intercept: the paper's model)
        np.testing.assert_allclose(pred, X @ np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-8, atol=1e-10)
    Y = np.c_[y, 2 * X[:, 0] + rng.normal(size=400)]
    c2 = LinearCVAE(center=False).fit(X, Y)
    assert c2.predict(X).shape == (400, 2)
    np.testing.assert_allclose(c2.predict(X), X @ np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-8, atol=1e-10)
    # transform without y encodes the predicted target; with y, the given one
    np.testing.assert_allclose(c2.transform(X), X @ c2.W1_.T + c2.predict(X) @ c2.W2_.T, atol=1e-12)
    np.testing.assert_allclose(c2.transform(X, Y), X @ c2.W1_.T + Y @ c2.W2_.T, atol=1e-12)
    scores = cross_val_score(LinearCVAE(center=False), X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_pipeline_set_output_feature_names_and_fitted_state():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_factor_data(4, n=100), columns=[f"f{i}" for i in range(6)])
    pipe = make_pipeline(StandardScaler(), LinearVAE(latent_dim=3)).set_output(transform="pandas")
    Z = pipe.fit_transform(X)
    assert list(Z.columns) == ["linearvae0", "linearvae1", "linearvae2"]
    est = pipe[-1]
    assert list(est.feature_names_in_) == list(X.columns) and est.n_features_in_ == 6
    np.testing.assert_allclose(Z.to_numpy(), StandardScaler().fit_transform(X) @ est.W_.T, atol=1e-12)
    check_is_fitted(est)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(clone(est))
    assert issubclass(NotFittedError, sklearn.exceptions.NotFittedError)
    with pytest.raises(NotFittedError, match="not fitted"):
        LinearMHVAE().transform(X)
    assert np.isfinite(cross_val_score(LinearVAE(latent_dim=2), X.to_numpy(), cv=3)).all()


def test_missing_sklearn_names_the_install_line(monkeypatch):
    import importlib
    import sys

    import linvae._deps as deps

    monkeypatch.setitem(sys.modules, "sklearn.base", None)       # makes ``import sklearn.base`` fail
    monkeypatch.delitem(sys.modules, "linvae.estimators", raising=False)
    with pytest.raises(deps.MissingDependencyError, match=r'pip install "linvae\[sklearn\]"'):
        importlib.import_module("linvae.estimators")


def test_lazy_names_resolve_to_the_estimators_module():
    assert linvae.LinearVAE is linvae.estimators.LinearVAE
    assert {"LinearVAE", "LinearCVAE", "LinearMHVAE", "estimators", "monitor"} <= set(dir(linvae))
    assert linvae.monitor.CollapseMonitor.__module__ == "linvae.monitor"
    with pytest.raises(AttributeError, match="nothere"):
        linvae.nothere


# ----------------------------------------------------------------------------- estimators

def test_estimator_shapes_and_maps():
    X = _vae_data(9, n=120)
    Xc, Yc = _cvae_data(9, n=120)
    v = LinearVAE(center=False, latent_dim=3, beta=0.5).fit(X)
    Z = v.transform(X)
    assert Z.shape == (120, 3)
    np.testing.assert_allclose(Z, X @ v.W_.T, rtol=1e-12, atol=1e-12)
    R = v.inverse_transform(Z)
    assert R.shape == (120, 5)
    np.testing.assert_allclose(R, Z @ v.U_.T, rtol=1e-12, atol=1e-12)
    assert v.n_features_in_ == 5 and v.collapsed_.shape == (3,)
    assert v.n_collapsed_ == linvae.fit(X, beta=0.5, latent_dim=3).n_collapsed

    c = LinearCVAE(center=False, latent_dim=2, beta=0.5).fit(Xc, Yc)
    Zc = c.transform(Xc, Yc)
    assert Zc.shape == (120, 2)
    np.testing.assert_allclose(Zc, Xc @ c.W1_.T + Yc @ c.W2_.T, rtol=1e-12, atol=1e-12)
    Yh = c.inverse_transform(Zc, Xc)
    assert Yh.shape == (120, 3)
    np.testing.assert_allclose(Yh, Zc @ c.U1_.T + Xc @ c.U2_.T, rtol=1e-12, atol=1e-12)

    h = LinearMHVAE(center=False, latent_dims=(4, 2)).fit(X)
    Z1 = h.transform(X)
    assert Z1.shape == (120, 4)
    np.testing.assert_allclose(Z1, X @ h.W1_.T, rtol=1e-12, atol=1e-12)
    assert h.inverse_transform(Z1).shape == (120, 5)
    assert h.sigma2_.shape == (2,) and h.sigma1_.shape == (4,)

    with pytest.raises(ValueError, match="features"):
        v.transform(X[:, :4])
    with pytest.raises(ValueError, match="features"):
        v.inverse_transform(Z[:, :2])
    with pytest.raises(ValueError, match="features"):
        c.transform(Xc[:, :3], Yc)


def test_estimator_center_roundtrip():
    X = _vae_data(10, n=200) + [5.0, -3.0, 1.0, 0.0, 2.0]
    v = LinearVAE(beta=1e-6, center=True).fit(X)
    # almost no regularisation, full latent: the reconstruction is nearly the identity,
    # and it includes the mean (a bias-free map could not reproduce the offset)
    np.testing.assert_allclose(v.inverse_transform(v.transform(X)), X, atol=1e-3)
    np.testing.assert_allclose(v.transform(X).mean(0), 0.0, atol=1e-10)


@pytest.mark.parametrize("cls,params", [
    (LinearVAE, dict(latent_dim=3, beta=2.0, eta_enc=0.5, eta_dec=0.3, sigma=[0.1, 0.2, 0.3], center=True)),
    (LinearCVAE, dict(latent_dim=2, beta=0.5, eta_enc=2.0, eta_dec=0.7, center=True)),
    (LinearMHVAE, dict(latent_dims=(3, 2), beta1=2.0, beta2=0.5, eta_enc=1.5, eta_dec=0.4, sigma1=0.2,
                       sigma2=0.9, center=True)),
])
def test_estimator_params_clone(cls, params):
    sklearn_base = pytest.importorskip("sklearn.base")
    est = cls(**params)
    got = est.get_params()
    assert got == params | {k: v for k, v in got.items() if k not in params}
    for k, v in params.items():
        assert got[k] is v
    default = cls()
    assert default.get_params() != got
    # set_params round trip
    assert default.set_params(**got) is default
    assert default.get_params() == got
    with pytest.raises(ValueError, match="nonexistent"):
        default.set_params(nonexistent=1)
    # clone: same params, unfitted, independent object
    c = sklearn_base.clone(est)
    assert c is not est and type(c) is cls
    assert c.get_params() == got
    assert not hasattr(c, "result_")
    assert repr(c).startswith(cls.__name__)


def test_clone_of_fitted_is_unfitted():
    sklearn_base = pytest.importorskip("sklearn.base")
    X = _vae_data(11, n=50)
    est = LinearVAE(beta=0.5).fit(X)
    c = sklearn_base.clone(est)
    with pytest.raises(NotFittedError):
        c.transform(X)
    np.testing.assert_allclose(c.fit(X).W_, est.W_, rtol=0, atol=0)


@pytest.mark.parametrize("make,call", [
    (LinearVAE, lambda e, X, Y: e.transform(X)),
    (LinearVAE, lambda e, X, Y: e.inverse_transform(X)),
    (LinearVAE, lambda e, X, Y: e.score(X)),
    (LinearCVAE, lambda e, X, Y: e.transform(X, Y)),
    (LinearCVAE, lambda e, X, Y: e.inverse_transform(X, X)),
    (LinearCVAE, lambda e, X, Y: e.score(X, Y)),
    (LinearMHVAE, lambda e, X, Y: e.transform(X)),
    (LinearMHVAE, lambda e, X, Y: e.score(X)),
])
def test_not_fitted_error(make, call):
    X, Y = _cvae_data(12, n=20)
    with pytest.raises(NotFittedError, match="not fitted"):
        call(make(), X, Y)
    # also an AttributeError / ValueError as in scikit-learn
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


# --- β-ELBO by Monte Carlo, computed from the fitted matrices only -----------------------------

def _log_normal(x, mean, var):
    """log N(x | mean, diag var), summed over the last axis (var broadcastable)."""
    var = np.broadcast_to(var, np.broadcast_shapes(np.shape(x), np.shape(mean)))
    return -0.5 * np.sum((x - mean) ** 2 / var + np.log(var) + LOG2PI, axis=-1)


def _mc_check(per_example, elbo, score):
    vals = np.stack(per_example)                  # (N, S)
    S = vals.shape[1]
    mc = vals.mean(1)
    se = vals.std(1) / np.sqrt(S)
    assert np.all(np.abs(elbo - mc) <= 5 * se + 1e-9), (elbo - mc, se)
    se_mean = np.sqrt(np.sum(se**2)) / len(mc)
    assert abs(score - mc.mean()) <= 5 * se_mean + 1e-9
    assert score == pytest.approx(float(np.mean(elbo)), rel=1e-12)
    return se


S_MC = 40000


def test_vae_score_equals_monte_carlo_elbo():
    rng = np.random.default_rng(13)
    X = _vae_data(13, n=6, scales=(2.0, 1.0, 0.2)) + 0.3 * rng.normal(size=(6, 3))
    beta, ee, ed = 0.7, 1.3, 0.6
    est = LinearVAE(center=False, latent_dim=4, beta=beta, eta_enc=ee, eta_dec=ed).fit(X)
    assert 0 < est.n_collapsed_ < 4
    W, U, s = est.W_, est.U_, est.sigma_
    vals = []
    for x in X:
        z = x @ W.T + s * rng.standard_normal((S_MC, 4))
        logp_x = _log_normal(x, z @ U.T, ed**2)
        log_q = _log_normal(z, x @ W.T, s**2)
        log_p = _log_normal(z, 0.0, ee**2)
        vals.append(logp_x - beta * (log_q - log_p))
    _mc_check(vals, est.elbo(X), est.elbo_score(X))


def test_vae_fixed_sigma_score_equals_monte_carlo_elbo():
    rng = np.random.default_rng(14)
    X = _vae_data(14, n=5, scales=(2.0, 1.0, 0.5))
    beta, ee, ed = 1.5, 0.8, 0.5
    sig = np.array([0.3, 0.8, 1.2])
    est = LinearVAE(center=False, beta=beta, eta_enc=ee, eta_dec=ed, sigma=sig).fit(X)
    vals = []
    for x in X:
        z = x @ est.W_.T + sig * rng.standard_normal((S_MC, 3))
        vals.append(_log_normal(x, z @ est.U_.T, ed**2)
                    - beta * (_log_normal(z, x @ est.W_.T, sig**2) - _log_normal(z, 0.0, ee**2)))
    _mc_check(vals, est.elbo(X), est.elbo_score(X))


def test_cvae_score_equals_monte_carlo_elbo():
    rng = np.random.default_rng(15)
    X, Y = _cvae_data(15, n=6, dx=2, dy=3)
    beta, ee, ed = 0.5, 0.7, 0.4
    est = LinearCVAE(center=False, latent_dim=3, beta=beta, eta_enc=ee, eta_dec=ed).fit(X, Y)
    W1, W2, U1, U2, s = est.W1_, est.W2_, est.U1_, est.U2_, est.sigma_
    vals = []
    for x, y in zip(X, Y):
        mu = W1 @ x + W2 @ y
        z = mu + s * rng.standard_normal((S_MC, 3))
        logp_y = _log_normal(y, z @ U1.T + U2 @ x, ed**2)
        vals.append(logp_y - beta * (_log_normal(z, mu, s**2) - _log_normal(z, 0.0, ee**2)))
    _mc_check(vals, est.elbo(X, Y), est.elbo_score(X, Y))


@pytest.mark.parametrize("sigma2", ["learnable", 0.9])
def test_mhvae_score_equals_monte_carlo_elbo(sigma2):
    rng = np.random.default_rng(16)
    X = _vae_data(16, n=5, scales=(2.0, 1.2, 0.3))
    b1, b2, ee, ed, s1 = 1.5, 0.6, 0.9, 0.5, 0.4
    est = LinearMHVAE(center=False, latent_dims=(3, 2), beta1=b1, beta2=b2, eta_enc=ee, eta_dec=ed, sigma1=s1,
                      sigma2=sigma2).fit(X)
    W1, W2, U1, U2, v1, v2 = est.W1_, est.W2_, est.U1_, est.U2_, est.sigma1_**2, est.sigma2_**2
    vals = []
    for x in X:
        mu1 = W1 @ x
        z1 = mu1 + np.sqrt(v1) * rng.standard_normal((S_MC, 3))
        z2 = z1 @ W2.T + np.sqrt(v2) * rng.standard_normal((S_MC, 2))
        rec = _log_normal(x, z1 @ U1.T, ed**2)
        t1 = _log_normal(z1, mu1, v1) - _log_normal(z1, z2 @ U2.T, ed**2)
        t2 = _log_normal(z2, z1 @ W2.T, v2) - _log_normal(z2, 0.0, ee**2)
        vals.append(rec - b1 * t1 - b2 * t2)
    _mc_check(vals, est.elbo(X), est.elbo_score(X))


@pytest.mark.parametrize("sigma2", ["learnable", 0.9])
def test_mhvae_score_is_maximal_at_closed_form(sigma2):
    rng = np.random.default_rng(17)
    X = _vae_data(17, n=200, scales=(2.5, 1.2, 0.6, 0.2))
    b1, b2, ee, ed, s1 = 1.3, 0.7, 1.1, 0.5, 0.4
    est = LinearMHVAE(center=False, latent_dims=(4, 3), beta1=b1, beta2=b2, eta_enc=ee, eta_dec=ed, sigma1=s1,
                      sigma2=sigma2).fit(X)
    res = est.result_
    best = est.elbo_score(X)
    A = X.T @ X / X.shape[0]

    def loss(r):
        return naive.mhvae_loss_moments(A, r.W1, r.W2, r.U1, r.U2, r.sigma1, r.sigma2, b1, b2, ee, ed)

    L0 = loss(res)
    names = ["W1", "W2", "U1", "U2"] + (["sigma2"] if sigma2 == "learnable" else [])
    for name in names:
        for eps in (1e-1, 1e-3):
            G = rng.normal(size=getattr(res, name).shape)
            new = getattr(res, name) * np.exp(eps * G) if name == "sigma2" else getattr(res, name) + eps * G
            pert = dataclasses.replace(res, **{name: new})
            other = LinearMHVAE(**est.get_params()).fit(X)
            other.result_ = pert
            s = other.elbo_score(X)
            assert s <= best + 1e-12, (name, eps, s - best)
            # the score difference is the (independently computed) loss difference / (2 η_dec²)
            expected = -(loss(pert) - L0) / (2 * ed**2)
            assert s - best == pytest.approx(expected, rel=1e-6, abs=1e-12), name


def test_vae_and_cvae_score_differences_match_loss():
    rng = np.random.default_rng(18)
    X = _vae_data(18, n=100, scales=(2.0, 1.0, 0.4))
    beta, ee, ed = 0.8, 1.2, 0.6
    est = LinearVAE(center=False, beta=beta, eta_enc=ee, eta_dec=ed).fit(X)
    r = est.result_
    best = est.elbo_score(X)
    L0 = naive.vae_loss_loop(X, r.W, r.U, r.sigma, beta, ee, ed)
    for name in ("W", "U", "sigma"):
        G = rng.normal(size=getattr(r, name).shape)
        new = getattr(r, name) * np.exp(0.05 * G) if name == "sigma" else getattr(r, name) + 0.05 * G
        p = dataclasses.replace(r, **{name: new})
        est.result_ = p
        s = est.elbo_score(X)
        L = naive.vae_loss_loop(X, p.W, p.U, p.sigma, beta, ee, ed)
        assert s < best
        assert s - best == pytest.approx(-(L - L0) / (2 * ed**2), rel=1e-8)

    Xc, Yc = _cvae_data(18, n=100)
    c = LinearCVAE(center=False, beta=beta, eta_enc=ee, eta_dec=ed).fit(Xc, Yc)
    r = c.result_
    best = c.elbo_score(Xc, Yc)
    L0 = naive.cvae_loss_loop(Xc, Yc, r.W1, r.W2, r.U1, r.U2, r.sigma, beta, ee, ed)
    for name in ("W1", "W2", "U1", "U2", "sigma"):
        G = rng.normal(size=getattr(r, name).shape)
        new = getattr(r, name) * np.exp(0.05 * G) if name == "sigma" else getattr(r, name) + 0.05 * G
        p = dataclasses.replace(r, **{name: new})
        c.result_ = p
        s = c.elbo_score(Xc, Yc)
        L = naive.cvae_loss_loop(Xc, Yc, p.W1, p.W2, p.U1, p.U2, p.sigma, beta, ee, ed)
        assert s < best
        assert s - best == pytest.approx(-(L - L0) / (2 * ed**2), rel=1e-8)


def test_predict_collapse_with_a_learnable_decoder_scale_matches_fit():
    X = _vae_data(8, n=400, scales=(3.0, 1.5, 0.8, 0.3, 0.1))
    betas = [0.3, 1.0, 3.0]
    table = linvae.predict_collapse(X, beta=betas, eta_enc=[1.0, 2.0], eta_dec="learnable", latent_dim=3)
    assert len(table) == 6
    for row, (b, e) in enumerate([(b, e) for b in betas for e in (1.0, 2.0)]):
        fitted = linvae.fit(X, beta=b, eta_enc=e, eta_dec="learnable", latent_dim=3)
        assert table["beta"][row] == b and table["eta_enc"][row] == e
        np.testing.assert_allclose(table["eta_dec"][row], fitted.eta_dec, rtol=1e-12)
        assert table["n_collapsed"][row] == fitted.n_collapsed
    with pytest.raises(ValueError, match="VAE and CVAE"):
        linvae.predict_collapse(X, model="mhvae", eta_dec="learnable")
