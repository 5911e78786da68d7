"""scikit-learn compatibility of the estimators (issue #18)."""
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


@parametrize_with_checks([LinearVAE(), LinearCVAE(), LinearMHVAE()],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


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
    v = LinearVAE(beta=0.7, latent_dim=3, eta_enc=1.3, eta_dec=0.8).fit(X)
    cov = 1.3**2 * v.U_ @ v.U_.T + 0.8**2 * np.eye(6)
    np.testing.assert_allclose(v.score_samples(X), _gauss_loglik(X, cov), rtol=1e-10)
    assert v.score(X) == pytest.approx(_gauss_loglik(X, cov).mean(), rel=1e-10)

    h = LinearMHVAE(latent_dims=(3, 2), beta1=0.8, beta2=1.2, eta_enc=1.1, eta_dec=0.7, sigma1=0.3).fit(X)
    cov1 = 1.1**2 * h.U2_ @ h.U2_.T + 0.7**2 * np.eye(3)
    cov = h.U1_ @ cov1 @ h.U1_.T + 0.7**2 * np.eye(6)
    np.testing.assert_allclose(h.score_samples(X), _gauss_loglik(X, cov), rtol=1e-10)

    rng = np.random.default_rng(2)
    Xc = rng.normal(size=(300, 3))
    y = Xc @ [1.0, -2.0, 0.5] + 0.7 * rng.normal(size=300)
    c = LinearCVAE(beta=0.5, eta_dec=0.6).fit(Xc, y)
    var = (c.U1_ @ c.U1_.T)[0, 0] + 0.6**2
    ref = -0.5 * ((y - Xc @ c.U2_[0]) ** 2 / var + np.log(2 * np.pi * var))
    np.testing.assert_allclose(c.log_likelihood(Xc, y), ref, rtol=1e-10)
    assert c.score(Xc, y) == pytest.approx(ref.mean(), rel=1e-10)


def test_cvae_accepts_1d_y_and_predicts_conditional_mean():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=400)
    for beta in (0.1, 1.0, 5.0):
        c = LinearCVAE(beta=beta).fit(X, y)
        pred = c.predict(X)
        assert pred.shape == (400,)
        # E[y|x] = U₂x, the least-squares regression of y on x (no intercept: the paper's model)
        np.testing.assert_allclose(pred, X @ np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-8, atol=1e-10)
    Y = np.c_[y, 2 * X[:, 0] + rng.normal(size=400)]
    c2 = LinearCVAE().fit(X, Y)
    assert c2.predict(X).shape == (400, 2)
    np.testing.assert_allclose(c2.predict(X), X @ np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-8, atol=1e-10)
    # transform without y encodes the predicted target; with y, the given one
    np.testing.assert_allclose(c2.transform(X), X @ c2.W1_.T + c2.predict(X) @ c2.W2_.T, atol=1e-12)
    np.testing.assert_allclose(c2.transform(X, Y), X @ c2.W1_.T + Y @ c2.W2_.T, atol=1e-12)
    scores = cross_val_score(LinearCVAE(), X, y, cv=3)
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
