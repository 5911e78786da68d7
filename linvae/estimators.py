"""scikit-learn style estimators around the closed forms."""
import inspect

import numpy as np

from ._validation import check_data, check_pair
from .api import fit

__all__ = ["LinearVAE", "LinearCVAE", "LinearMHVAE", "NotFittedError"]

_LOG_2PI = np.log(2 * np.pi)


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class _Base:
    """Parameter handling compatible with ``sklearn.base.clone`` (no scikit-learn needed)."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p for p in sig.parameters if p != "self")

    def get_params(self, deep=True):
        """Constructor parameters as a dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; unknown names raise ``ValueError``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_is_fitted(self):
        if not hasattr(self, "result_"):
            raise NotFittedError(
                f"this {type(self).__name__} instance is not fitted yet; call fit() first"
            )

    def _store(self, result):
        self.result_ = result
        for name in ("theta", "omega", "lambda_", "sigma", "collapsed", "kl_per_dim", "loss"):
            setattr(self, name.rstrip("_") + "_", getattr(result, name))
        self.n_collapsed_ = result.n_collapsed
        return self

    def _check_features(self, X, expected, name="X"):
        X = check_data(X, name)
        if X.shape[1] != expected:
            raise ValueError(f"{name} has {X.shape[1]} features, but this estimator was fitted with {expected}")
        return X


def _expected_log_lik(resid_sq, U, var, eta_dec):
    """``E_q[log N(target | mean, η_dec² I)]`` given the squared residual of the mean."""
    d = U.shape[0]
    return -0.5 * (resid_sq + np.sum(U * U * var)) / eta_dec**2 - 0.5 * d * (_LOG_2PI + 2 * np.log(eta_dec))


def _kl_rows(mu, var, prior_var):
    """Per-example KL of ``N(mu, diag var)`` to ``N(0, prior_var I)`` (summed over dims)."""
    r = var / prior_var
    return 0.5 * np.sum(mu * mu / prior_var + r - 1.0 - np.log(r), axis=1)


class LinearVAE(_Base):
    """Linear VAE with closed-form fit (Thm 4 learnable Σ, Thm 1 fixed Σ).

    Parameters
    ----------
    latent_dim : int, optional
        d₁ (default: number of features).
    beta, eta_enc, eta_dec : float
        β, prior std η_enc, decoder std η_dec.
    sigma : "learnable", float or array_like
        Encoder standard deviations.
    center : bool
        Centre the data first (default False: the paper's bias-free model).

    Attributes
    ----------
    W_, U_, sigma_, theta_, omega_, lambda_, collapsed_, n_collapsed_, kl_per_dim_, loss_
        Fitted quantities (see :class:`~linvae.theory.VAEFit`); ``result_`` is the full result.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 4)) * [3, 1, 0.5, 0.1]
    >>> est = LinearVAE(latent_dim=2).fit(X)
    >>> est.transform(X).shape
    (300, 2)
    """

    def __init__(self, latent_dim=None, *, beta=1.0, eta_enc=1.0, eta_dec=1.0, sigma="learnable",
                 center=False):
        self.latent_dim = latent_dim
        self.beta = beta
        self.eta_enc = eta_enc
        self.eta_dec = eta_dec
        self.sigma = sigma
        self.center = center

    def fit(self, X, y=None):
        """Fit the exact global minimizer; ``y`` is ignored (scikit-learn convention)."""
        X = check_data(X)
        res = fit(X, model="vae", beta=self.beta, eta_enc=self.eta_enc, eta_dec=self.eta_dec,
                  latent_dim=self.latent_dim, sigma=self.sigma, center=self.center)
        self.W_, self.U_ = res.W, res.U
        self.n_features_in_ = X.shape[1]
        return self._store(res)

    def transform(self, X):
        """Encoder means ``Wx``."""
        self._check_is_fitted()
        return self.result_.encode(self._check_features(X, self.n_features_in_))[0]

    def inverse_transform(self, Z):
        """Decoder means ``Uz``."""
        self._check_is_fitted()
        return self.result_.decode(self._check_features(Z, self.U_.shape[1], "Z"))

    def elbo(self, X):
        """Per-example β-ELBO ``E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z))`` in nats."""
        self._check_is_fitted()
        X = self._check_features(X, self.n_features_in_)
        r = self.result_
        mu = r.encode(X)[0]
        resid = np.sum((r.decode(mu) - X) ** 2, axis=1)
        var = r.sigma**2
        return _expected_log_lik(resid, r.U, var, r.eta_dec) - r.beta * _kl_rows(mu, var, r.eta_enc**2)

    def score(self, X, y=None):
        """Mean β-ELBO per example (higher is better)."""
        return float(np.mean(self.elbo(X)))


class LinearCVAE(_Base):
    """Linear CVAE with closed-form fit (Thm 2): ``q(z|x, y)``, ``p(y|z, x)``.

    Parameters
    ----------
    latent_dim : int, optional
        d_z (default: number of target features).
    beta, eta_enc, eta_dec : float
    center : bool
    """

    def __init__(self, latent_dim=None, *, beta=1.0, eta_enc=1.0, eta_dec=1.0, center=False):
        self.latent_dim = latent_dim
        self.beta = beta
        self.eta_enc = eta_enc
        self.eta_dec = eta_dec
        self.center = center

    def fit(self, X, Y):
        """Fit on condition ``X`` and target ``Y``."""
        X, Y = check_pair(X, Y)
        res = fit(X, Y, model="cvae", beta=self.beta, eta_enc=self.eta_enc, eta_dec=self.eta_dec,
                  latent_dim=self.latent_dim, center=self.center)
        self.W1_, self.W2_, self.U1_, self.U2_ = res.W1, res.W2, res.U1, res.U2
        self.n_features_in_ = X.shape[1]
        self.n_targets_ = Y.shape[1]
        return self._store(res)

    def _pair(self, X, Y):
        X, Y = check_pair(X, Y)
        self._check_features(X, self.n_features_in_)
        self._check_features(Y, self.n_targets_, "Y")
        return X, Y

    def transform(self, X, Y):
        """Encoder means ``W₁x + W₂y``."""
        self._check_is_fitted()
        return self.result_.encode(*self._pair(X, Y))[0]

    def inverse_transform(self, Z, X):
        """Decoder means of y: ``U₁z + U₂x``."""
        self._check_is_fitted()
        Z = self._check_features(Z, self.U1_.shape[1], "Z")
        return self.result_.decode(Z, self._check_features(X, self.n_features_in_))

    def elbo(self, X, Y):
        """Per-example conditional β-ELBO of ``log p(y|x)`` in nats."""
        self._check_is_fitted()
        X, Y = self._pair(X, Y)
        r = self.result_
        mu = r.encode(X, Y)[0]
        resid = np.sum((r.decode(mu, X) - Y) ** 2, axis=1)
        var = r.sigma**2
        return _expected_log_lik(resid, r.U1, var, r.eta_dec) - r.beta * _kl_rows(mu, var, r.eta_enc**2)

    def score(self, X, Y):
        """Mean conditional β-ELBO per example."""
        return float(np.mean(self.elbo(X, Y)))


class LinearMHVAE(_Base):
    """Linear two-latent hierarchical VAE with closed-form fit (Thm 3 / Thm 5).

    Parameters
    ----------
    latent_dims : (int, int), optional
        (d₁, d₂), default (n_features, n_features).
    beta1, beta2, eta_enc, eta_dec : float
    sigma1 : float
        Fixed σ₁.
    sigma2 : "learnable" or float
    center : bool
    """

    def __init__(self, latent_dims=None, *, beta1=1.0, beta2=1.0, eta_enc=1.0, eta_dec=1.0,
                 sigma1=0.5, sigma2="learnable", center=False):
        self.latent_dims = latent_dims
        self.beta1 = beta1
        self.beta2 = beta2
        self.eta_enc = eta_enc
        self.eta_dec = eta_dec
        self.sigma1 = sigma1
        self.sigma2 = sigma2
        self.center = center

    def fit(self, X, y=None):
        """Fit the exact global minimizer."""
        X = check_data(X)
        res = fit(X, model="mhvae", beta1=self.beta1, beta2=self.beta2, eta_enc=self.eta_enc,
                  eta_dec=self.eta_dec, latent_dims=self.latent_dims, sigma1=self.sigma1,
                  sigma2=self.sigma2, center=self.center)
        self.W1_, self.W2_, self.U1_, self.U2_ = res.W1, res.W2, res.U1, res.U2
        self.sigma1_, self.sigma2_ = res.sigma1, res.sigma2
        self.n_features_in_ = X.shape[1]
        return self._store(res)

    def transform(self, X):
        """Means of ``q(z₁|x)``."""
        self._check_is_fitted()
        return self.result_.encode(self._check_features(X, self.n_features_in_))[0]

    def inverse_transform(self, Z1):
        """Decoder means ``U₁z₁``."""
        self._check_is_fitted()
        return self.result_.decode(self._check_features(Z1, self.U1_.shape[1], "Z1"))

    def elbo(self, X):
        """Per-example β-ELBO with weights β₁ (z₁ term) and β₂ (z₂ KL), in nats.

        ``E_q[log p(x|z₁)] − β₁ E_q[log q(z₁|x) − log p(z₁|z₂)] − β₂ E_q[KL(q(z₂|z₁) ‖ p(z₂))]``.
        """
        self._check_is_fitted()
        X = self._check_features(X, self.n_features_in_)
        r = self.result_
        mu1 = r.encode(X)[0]
        v1, v2 = r.sigma1**2, r.sigma2**2
        ed2 = r.eta_dec**2
        rec = _expected_log_lik(np.sum((r.decode(mu1) - X) ** 2, axis=1), r.U1, v1, r.eta_dec)
        M = r.U2 @ r.W2 - np.eye(r.W2.shape[1])
        # E_q[‖z₁ − U₂z₂‖²] = ‖M μ₁‖² + tr(M Σ₁ Mᵀ) + tr(U₂ Σ₂ U₂ᵀ)
        resid1 = np.sum((mu1 @ M.T) ** 2, axis=1) + np.sum(M * M * v1) + np.sum(r.U2 * r.U2 * v2)
        term1 = 0.5 * (resid1 / ed2 - v1.size - np.sum(np.log(v1 / ed2)))
        # E_{z₁}[KL(q(z₂|z₁)‖p(z₂))]: mean W₂μ₁, plus the spread tr(W₂Σ₁W₂ᵀ) of z₁
        mu2 = mu1 @ r.W2.T
        spread = np.sum(r.W2 * r.W2 * v1) / r.eta_enc**2
        term2 = _kl_rows(mu2, v2, r.eta_enc**2) + 0.5 * spread
        return rec - r.beta1 * term1 - r.beta2 * term2

    def score(self, X, y=None):
        """Mean β-ELBO per example."""
        return float(np.mean(self.elbo(X)))
