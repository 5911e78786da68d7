"""scikit-learn estimators around the closed forms (``pip install "linvae[sklearn]"``).

:class:`LinearVAE`, :class:`LinearCVAE` and :class:`LinearMHVAE` are real scikit-learn
transformers: they pass every check of ``sklearn.utils.estimator_checks`` and work in pipelines,
``GridSearchCV``, ``cross_val_score``, ``clone`` and ``set_output``. They read like
``sklearn.decomposition.PCA``: ``n_components``, centring by default, and ``components_``,
``mean_``, ``explained_variance_``, ``noise_variance_``, ``n_components_``, ``get_covariance()``
and ``get_precision()`` with their meaning in each model. With ``eta_dec="learnable"`` and β = 1
the linear VAE is probabilistic PCA (its covariance, noise variance, subspace and ``score`` are
``PCA``'s maximum-likelihood ones).

``score`` / ``score_samples`` are the exact marginal log-likelihood (``log p(x)``, or
``log p(y|x)`` for the CVAE), which does not depend on β, so a model selection over β and the
latent size picks by likelihood (the convention of ``sklearn.decomposition.PCA`` and
``FactorAnalysis``). The β-ELBO, the objective each fit minimises, is :meth:`LinearVAE.elbo`
(per example) and :meth:`LinearVAE.elbo_score` (mean).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np

from ._deps import import_optional

_sklearn_base = import_optional("sklearn.base")
_sk_exceptions = import_optional("sklearn.exceptions")
_sk_validation = import_optional("sklearn.utils.validation")

from ._validation import check_data  # noqa: E402
from .objectives import gaussian_kl  # noqa: E402

__all__ = ["LinearVAE", "LinearCVAE", "LinearMHVAE", "NotFittedError"]

_LOG_2PI = np.log(2 * np.pi)

ArrayLike = Any


class NotFittedError(_sk_exceptions.NotFittedError):
    """The estimator is used before ``fit`` (a ``sklearn.exceptions.NotFittedError``).

    Like scikit-learn's, it is both a ``ValueError`` and an ``AttributeError``.
    """


def expected_failed_checks(estimator=None) -> dict:
    """The scikit-learn estimator checks that linvae's estimators do not pass: none.

    Kept for ``parametrize_with_checks(..., expected_failed_checks=...)`` callers of earlier
    versions (object arrays of numbers are now converted and complex data raise scikit-learn's
    ``ValueError``, the two checks once declared here).

    Parameters
    ----------
    estimator : estimator, optional
        Ignored.

    Returns
    -------
    dict
        Empty.
    """
    return {}


def _closed_form(X, Y, model, params):
    """The exact minimizer for hyperparameters named as in :func:`linvae.fit` (``eta_dec`` may be
    ``"learnable"``)."""
    from .api import fit

    return fit(X, Y, model=model, **params)


def _expected_log_lik(resid_sq, U, var, eta_dec):
    """``E_q[log N(target | mean, η_dec² I)]`` given the squared residual of the mean."""
    d = U.shape[0]
    return -0.5 * (resid_sq + np.sum(U * U * var)) / eta_dec**2 - 0.5 * d * (_LOG_2PI + 2 * np.log(eta_dec))


def _kl_rows(mu, var, prior_var):
    """Per-example KL of ``N(mu, diag var)`` to ``N(0, prior_var I)`` (summed over dims)."""
    return np.sum(gaussian_kl(mu * mu / prior_var, np.log(var / prior_var)), axis=1)


class _Base(_sklearn_base.ClassNamePrefixFeaturesOutMixin, _sklearn_base.TransformerMixin,
            _sklearn_base.BaseEstimator):
    """What the three estimators share: parameters, validation, fitting, fitted attributes
    (the PCA-style ones among them), covariance and tags. A subclass names its model, its
    fitted matrices, the alias of ``n_components`` and its covariance factor."""

    #: the model of :func:`linvae.fit`
    _model = "vae"
    #: result fields copied to ``<name>_`` attributes
    _matrices = ("W", "U")
    #: the older name of ``n_components`` (kept working as an alias)
    _size_alias = "latent_dim"

    def _check_is_fitted(self):
        if not hasattr(self, "result_"):
            raise NotFittedError(
                f"this {type(self).__name__} instance is not fitted yet; call fit() first"
            )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "result_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ parameters and fitting
    def _fit_params(self):
        """``get_params`` as :func:`linvae.fit` names them (``n_components`` or its alias)."""
        params = self.get_params(deep=False)
        size, alias = params.pop("n_components"), params.pop(self._size_alias)
        if size is not None and alias is not None and not np.array_equal(np.asarray(size), np.asarray(alias)):
            raise ValueError(f"n_components={size!r} and {self._size_alias}={alias!r} disagree; {self._size_alias} "
                             "is the older name of n_components: give one of them")
        size = alias if size is None else size
        if self._model == "mhvae" and size is not None and np.ndim(size) == 1:
            params["latent_dims"] = tuple(size)
        else:
            params["latent_dim"] = size
        return params

    def fit(self, X: ArrayLike, y: Optional[ArrayLike] = None) -> "_Base":
        """Fit the exact global minimizer.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.
        y : None
            Ignored (scikit-learn convention).

        Returns
        -------
        estimator
            The fitted estimator.
        """
        X = self._validate_X(X, reset=True)
        return self._store(_closed_form(X, None, self._model, self._fit_params()))

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Encoder means (``Wx``; the MHVAE's ``W₁x``, the means of ``q(z₁|x)``).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Means of the (first) encoder.
        """
        self._check_is_fitted()
        return self.result_.encode(self._validate_X(X, reset=False))[0]

    def _validate_X(self, X, reset):
        """linvae's validation (its messages), then scikit-learn's feature bookkeeping. As
        scikit-learn does, object arrays of numbers are converted and complex data refused with
        ``ValueError("Complex data not supported")``."""
        import scipy.sparse as sp

        if sp.issparse(X):     # scikit-learn's message: "Sparse data was passed ... dense data is required"
            _sk_validation.validate_data(self, X, reset=reset, accept_sparse=False)
        if isinstance(X, np.ndarray) and X.dtype == object:
            X = X.astype(np.float64)            # a non-number raises float()'s TypeError, as in scikit-learn
        dtype = getattr(X, "dtype", None)
        if dtype is not None and getattr(dtype, "kind", "") == "c" or (
                dtype is None and np.iscomplexobj(np.asarray(X))):
            raise ValueError(f"Complex data not supported: X has complex dtype "
                             f"{getattr(X, 'dtype', np.asarray(X).dtype)}; only real data is allowed")
        shape = getattr(X, "shape", None)
        shape = np.asarray(X).shape if shape is None else tuple(shape)
        if len(shape) == 1:
            raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got a 1-D array of shape "
                             f"{shape}. Reshape your data using X.reshape(-1, 1) for one feature or "
                             "X.reshape(1, -1) for one sample")
        if len(shape) == 2 and 0 in shape:
            what = "sample(s)" if shape[0] == 0 else "feature(s)"
            raise ValueError(f"X is empty: found array with 0 {what} (shape={shape}) while a minimum of 1 "
                             "is required.")
        arr = check_data(X, "X")
        _sk_validation.validate_data(self, X, reset=reset, skip_check_array=True)
        return arr

    # ------------------------------------------------------------------ fitted attributes
    def _covariance_factor(self, result):
        """``L`` with the model's (conditional) covariance ``L Lᵀ + η_dec² I``."""
        return result.eta_enc * result.U

    def _mean(self, result):
        return result.mean

    def _store(self, result):
        self.result_ = result
        for name in self._matrices:
            setattr(self, name + "_", getattr(result, name))
        for name in ("theta", "omega", "lambda_", "sigma", "collapsed", "kl_per_dim", "loss"):
            setattr(self, name.rstrip("_") + "_", getattr(result, name))
        self.n_collapsed_ = result.n_collapsed
        factor = self._covariance_factor(result)
        axes, singular, _ = np.linalg.svd(factor, full_matrices=False)
        self.n_components_ = int((result.U1 if hasattr(result, "U1") else result.U).shape[1])
        rows = min(self.n_components_, axes.shape[1])
        self.noise_variance_ = float(result.eta_dec ** 2)
        self.components_ = axes[:, :rows].T
        self.explained_variance_ = singular[:rows] ** 2 + self.noise_variance_
        self.mean_ = self._mean(result)
        self.eta_dec_ = float(result.eta_dec)
        self._covariance = factor @ factor.T + self.noise_variance_ * np.eye(factor.shape[0])
        return self

    def get_covariance(self) -> np.ndarray:
        """The model's covariance of the data, ``η_enc²UUᵀ + η_dec²I`` (VAE; see each class).

        Equals ``components_.T @ diag(explained_variance_ − noise_variance_) @ components_ +
        noise_variance_ · I``, as for ``sklearn.decomposition.PCA``.

        Returns
        -------
        ndarray of shape (n_features, n_features)
            The covariance (the CVAE's of y given x, shape (n_targets, n_targets)).
        """
        self._check_is_fitted()
        return self._covariance.copy()

    def get_precision(self) -> np.ndarray:
        """The inverse of :meth:`get_covariance`.

        Returns
        -------
        ndarray of shape (n_features, n_features)
            The precision matrix, the inverse of the covariance.
        """
        self._check_is_fitted()
        return np.linalg.inv(self._covariance)

    @staticmethod
    def _check_width(A, expected, name):
        A = check_data(A, name)
        if A.shape[1] != expected:
            raise ValueError(f"{name} has {A.shape[1]} features, but this estimator expects {expected}")
        return A

    def elbo_score(self, X: ArrayLike, y: Optional[ArrayLike] = None) -> float:
        """Mean β-ELBO per example, nats (the objective that the fit maximises).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.
        y : None
            Ignored (scikit-learn convention).

        Returns
        -------
        float
            Mean of :meth:`elbo`. It decreases as β grows, so it is not a model-selection
            criterion across β; use :meth:`score`.
        """
        return float(np.mean(self.elbo(X)))

    @property
    def _n_features_out(self):
        return self.result_.W.shape[0] if hasattr(self.result_, "W") else self.result_.W1.shape[0]


class _UnconditionalScoreMixin:
    """``score_samples`` / ``score``: the exact ``log p(x)`` of the VAE and MHVAE."""

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Exact per-example marginal log-likelihood ``log p(x)`` of the fitted model, nats.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``log p(x)``; independent of β given the fitted matrices.

        See Also
        --------
        linvae.metrics.exact_log_likelihood : The function computing it.
        elbo : The β-ELBO per example.
        """
        from .metrics import exact_log_likelihood

        self._check_is_fitted()
        X = self._validate_X(X, reset=False)
        return exact_log_likelihood(self.result_, X)

    def score(self, X: ArrayLike, y: Optional[ArrayLike] = None) -> float:
        """Mean exact log-likelihood per example (higher is better).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.
        y : None
            Ignored (scikit-learn convention).

        Returns
        -------
        float
            ``mean log p(x)`` in nats, the model-selection criterion of ``GridSearchCV``.

        See Also
        --------
        elbo_score : The mean β-ELBO, which falls as β grows.
        """
        return float(np.mean(self.score_samples(X)))


class LinearVAE(_UnconditionalScoreMixin, _Base):
    """Linear VAE with closed-form fit (Thm 4 learnable Σ, Thm 1 fixed Σ).

    Parameters
    ----------
    n_components : int, optional
        d₁, the latent size (default: number of features).
    latent_dim : int, optional
        The older name of ``n_components`` (give one of them).
    beta : float, default 1.0
        β, weight of the KL term.
    eta_enc : float, default 1.0
        η_enc, standard deviation of the prior.
    eta_dec : float or "learnable", default 1.0
        η_dec, standard deviation of the Gaussian decoder; ``"learnable"`` picks the η_dec that
        maximises the mean β-ELBO (at β = 1: probabilistic PCA).
    sigma : "learnable", float or array_like, default "learnable"
        Encoder standard deviations σ: learned (Thm 4) or fixed (Thm 1).
    center : bool, default True
        Centre the data first, as ``PCA`` does (False: the paper's bias-free model on raw data).

    Attributes
    ----------
    components_ : ndarray of shape (min(n_components, n_features), n_features)
        Orthonormal principal axes of the decoder: the left singular vectors of U, ordered by ω
        (a collapsed dim, ω = 0, spans no direction of the data; its row is any orthonormal
        completion).
    explained_variance_ : ndarray
        The model's variance along each component, ``η_enc²ω_i² + η_dec²`` (``η_dec²`` for a
        collapsed dim).
    noise_variance_ : float
        η_dec², the variance the decoder adds in every direction.
    mean_ : ndarray of shape (n_features,)
        The mean subtracted (zeros with ``center=False``).
    n_components_ : int
        The latent size.
    eta_dec_ : float
        η_dec of the fit (learned with ``eta_dec="learnable"``).
    W_, U_ : ndarray
        Encoder and decoder matrices.
    sigma_, theta_, omega_, lambda_ : ndarray
        Encoder standard deviations and the spectra θ, ω, λ (see :class:`~linvae.theory.VAEFit`).
    collapsed_ : ndarray of bool
        Per-dim collapse mask.
    n_collapsed_ : int
        Number of collapsed latent dims.
    kl_per_dim_ : ndarray
        Data-mean KL per latent dim, nats.
    loss_ : float
        Optimal loss.
    result_ : VAEFit
        The full result.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit`` (only for inputs with string column names).

    See Also
    --------
    linvae.fit : The function behind ``fit``.

    Notes
    -----
    Thm 4 (learnable Σ) and Thm 1 (fixed Σ) of Dang et al. (ICLR 2024). ``score`` is the exact
    ``log p(x)`` under ``x ~ N(mean_, get_covariance())``, ``get_covariance() = η_enc²UUᵀ + η_dec²I``.
    With ``eta_dec="learnable"`` and β = 1 this is probabilistic PCA (Tipping & Bishop 1999):
    ``noise_variance_`` is the mean of the n_features − n_components smallest eigenvalues of the
    (1/N) covariance, i.e. ``PCA(n_components).noise_variance_ · (N − 1)/N`` (scikit-learn's PCA
    divides by N − 1).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 4)) * [3, 1, 0.5, 0.1]
    >>> est = LinearVAE(n_components=2).fit(X)
    >>> est.transform(X).shape
    (300, 2)
    """

    def __init__(self, n_components: Optional[int] = None, *, latent_dim: Optional[int] = None, beta: float = 1.0,
                 eta_enc: float = 1.0, eta_dec: Union[float, str] = 1.0,
                 sigma: Union[str, float, ArrayLike] = "learnable", center: bool = True):
        self.n_components = n_components
        self.latent_dim = latent_dim
        self.beta = beta
        self.eta_enc = eta_enc
        self.eta_dec = eta_dec
        self.sigma = sigma
        self.center = center

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Decoder means ``Uz``.

        Parameters
        ----------
        X : array_like of shape (n_samples, latent_dim)
            Latent codes z.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            Means of ``p(x|z)``.
        """
        self._check_is_fitted()
        return self.result_.decode(self._check_width(X, self.U_.shape[1], "Z"))

    def elbo(self, X: ArrayLike) -> np.ndarray:
        """Per-example β-ELBO ``E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z))`` in nats.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        ndarray of shape (n_samples,)
            The β-ELBO of each example.
        """
        self._check_is_fitted()
        X = self._validate_X(X, reset=False)
        r = self.result_
        mu = r.encode(X)[0]
        resid = np.sum((r.decode(mu) - X) ** 2, axis=1)
        var = r.sigma**2
        return _expected_log_lik(resid, r.U, var, r.eta_dec) - r.beta * _kl_rows(mu, var, r.eta_enc**2)


class LinearCVAE(_Base):
    """Linear CVAE with closed-form fit (Thm 2): ``q(z|x, y)``, ``p(y|z, x)``.

    ``X`` is the condition and ``y`` (1-D or 2-D) the target, as for a scikit-learn regressor.

    Parameters
    ----------
    n_components : int, optional
        d_z, the latent size (default: number of target features).
    latent_dim : int, optional
        The older name of ``n_components``.
    beta : float, default 1.0
        β, weight of the KL term.
    eta_enc : float, default 1.0
        η_enc, standard deviation of the prior.
    eta_dec : float or "learnable", default 1.0
        η_dec, standard deviation of the Gaussian decoder (``"learnable"``: the β-ELBO's optimum).
    center : bool, default True
        Centre condition and target first.

    Attributes
    ----------
    components_, explained_variance_, noise_variance_, n_components_, eta_dec_
        The conditional versions of :class:`LinearVAE`'s: principal axes of U₁ and the variances
        of ``y | x`` along them; :meth:`get_covariance` is ``Cov(y | x) = η_enc²U₁U₁ᵀ + η_dec²I``.
    mean_ : ndarray of shape (n_targets,)
        The target mean subtracted (zeros with ``center=False``).
    W1_, W2_, U1_, U2_ : ndarray
        Encoder (``W₁x + W₂y``) and decoder (``U₁z + U₂x``) matrices.
    sigma_, theta_, omega_, lambda_, collapsed_, n_collapsed_, kl_per_dim_, loss_
        As for :class:`LinearVAE`.
    result_ : CVAEFit
        The full result.
    n_features_in_ : int
        Number of condition features.
    n_targets_ : int
        Number of target features.

    See Also
    --------
    linvae.fit : The function behind ``fit``.

    Notes
    -----
    Thm 2 of Dang et al. (ICLR 2024). ``predict(X) = E[y|x] = U₂x`` (plus the target mean when
    centred) and ``score`` is the exact ``log p(y|x)`` under ``y|x ~ N(U₂x, η_enc²U₁U₁ᵀ + η_dec²I)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = X @ [1.0, -2.0, 0.5] + rng.normal(size=300)
    >>> est = LinearCVAE(beta=1.0).fit(X, y)
    >>> est.predict(X).shape
    (300,)
    """

    _model = "cvae"
    _matrices = ("W1", "W2", "U1", "U2")

    def __init__(self, n_components: Optional[int] = None, *, latent_dim: Optional[int] = None, beta: float = 1.0,
                 eta_enc: float = 1.0, eta_dec: Union[float, str] = 1.0, center: bool = True):
        self.n_components = n_components
        self.latent_dim = latent_dim
        self.beta = beta
        self.eta_enc = eta_enc
        self.eta_dec = eta_dec
        self.center = center

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags

    def _validate_y(self, y, n, reset):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None "
                             "(the CVAE models p(y|x))")
        import scipy.sparse as sp

        if sp.issparse(y):
            raise TypeError("y must be dense; sparse targets are not supported")
        arr = np.asarray(y)
        if arr.dtype == object:                 # numbers stored as objects are converted, as for X
            arr = arr.astype(np.float64)
        one_d = arr.ndim == 1
        Y = check_data(arr.reshape(-1, 1) if one_d else arr, "Y")
        if Y.shape[0] != n:
            raise ValueError(f"X and Y (the target y) must have the same number of samples, got X with {n} "
                             f"and Y with {Y.shape[0]} rows")
        if reset:
            self._y_1d = one_d
            self.n_targets_ = Y.shape[1]
        elif Y.shape[1] != self.n_targets_:
            raise ValueError(f"Y (the target y) has {Y.shape[1]} features, but this estimator was fitted "
                             f"with {self.n_targets_}")
        return Y

    def fit(self, X: ArrayLike, y: ArrayLike) -> "LinearCVAE":
        """Fit on condition ``X`` and target ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.
        y : array_like of shape (n_samples,) or (n_samples, n_targets)
            Target y.

        Returns
        -------
        LinearCVAE
            The fitted estimator.
        """
        X = self._validate_X(X, reset=True)
        Y = self._validate_y(y, X.shape[0], reset=True)
        return self._store(_closed_form(X, Y, "cvae", self._fit_params()))

    def _covariance_factor(self, result):
        return result.eta_enc * result.U1               # Cov(y | x) = η_enc²U₁U₁ᵀ + η_dec²I

    def _mean(self, result):
        return result.mean_y

    def _pair(self, X, y):
        self._check_is_fitted()
        X = self._validate_X(X, reset=False)
        return X, self._validate_y(y, X.shape[0], reset=False)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Conditional mean ``E[y|x]`` of the fitted model.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            ``U₂x`` (the prior mean of z is 0), 1-D when the model was fitted on a 1-D y.
        """
        self._check_is_fitted()
        X = self._validate_X(X, reset=False)
        out = self.result_.decode(np.zeros((X.shape[0], self.U1_.shape[1])), X)
        return out[:, 0] if self._y_1d else out

    def transform(self, X: ArrayLike, y: Optional[ArrayLike] = None) -> np.ndarray:
        """Encoder means ``W₁x + W₂y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.
        y : array_like of shape (n_samples,) or (n_samples, n_targets), optional
            Target y. Without it, ``y`` is replaced by :meth:`predict` ``(X)`` = E[y|x], so that a
            pipeline can transform new conditions.

        Returns
        -------
        ndarray of shape (n_samples, latent_dim)
            Means of ``q(z|x, y)``.
        """
        self._check_is_fitted()
        if y is None:
            X = self._validate_X(X, reset=False)
            Y = self.result_.decode(np.zeros((X.shape[0], self.U1_.shape[1])), X)
        else:
            X, Y = self._pair(X, y)
        return self.result_.encode(X, Y)[0]

    def inverse_transform(self, X: ArrayLike, condition: ArrayLike) -> np.ndarray:
        """Decoder means of y: ``U₁z + U₂x``.

        Parameters
        ----------
        X : array_like of shape (n_samples, latent_dim)
            Latent codes z.
        condition : array_like of shape (n_samples, n_features)
            Condition x.

        Returns
        -------
        ndarray of shape (n_samples, n_targets)
            Means of ``p(y|z, x)``.
        """
        self._check_is_fitted()
        Z = self._check_width(X, self.U1_.shape[1], "Z")
        return self.result_.decode(Z, self._check_width(condition, self.n_features_in_, "X"))

    def log_likelihood(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:
        """Exact per-example conditional log-likelihood ``log p(y|x)``, nats.

        The CVAE has no ``score_samples``: it models y given x, not x (scikit-learn's
        ``score_samples(X)`` scores X alone).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.
        y : array_like of shape (n_samples,) or (n_samples, n_targets)
            Target y.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``log p(y|x)``; independent of β given the fitted matrices.
        """
        from .metrics import exact_log_likelihood

        X, Y = self._pair(X, y)
        return exact_log_likelihood(self.result_, X, Y)

    def score(self, X: ArrayLike, y: ArrayLike) -> float:  # type: ignore[override]
        """Mean exact conditional log-likelihood ``log p(y|x)`` per example.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.
        y : array_like of shape (n_samples,) or (n_samples, n_targets)
            Target y.

        Returns
        -------
        float
            Mean ``log p(y|x)`` in nats.

        See Also
        --------
        elbo_score : The mean conditional β-ELBO.
        """
        return float(np.mean(self.log_likelihood(X, y)))

    def elbo(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:  # type: ignore[override]
        """Per-example conditional β-ELBO of ``log p(y|x)`` in nats.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.
        y : array_like of shape (n_samples,) or (n_samples, n_targets)
            Target y.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``E_q[log p(y|z, x)] − β KL(q(z|x, y) ‖ p(z))``.
        """
        X, Y = self._pair(X, y)
        r = self.result_
        mu = r.encode(X, Y)[0]
        resid = np.sum((r.decode(mu, X) - Y) ** 2, axis=1)
        var = r.sigma**2
        return _expected_log_lik(resid, r.U1, var, r.eta_dec) - r.beta * _kl_rows(mu, var, r.eta_enc**2)

    def elbo_score(self, X: ArrayLike, y: ArrayLike) -> float:  # type: ignore[override]
        """Mean conditional β-ELBO per example, nats.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Condition x.
        y : array_like of shape (n_samples,) or (n_samples, n_targets)
            Target y.

        Returns
        -------
        float
            Mean of :meth:`elbo`.
        """
        return float(np.mean(self.elbo(X, y)))


class LinearMHVAE(_UnconditionalScoreMixin, _Base):
    """Linear two-latent hierarchical VAE with closed-form fit (Thm 3 / Thm 5).

    Parameters
    ----------
    n_components : int or (int, int), optional
        (d₁, d₂), or one size for both; default (n_features, n_features).
    latent_dims : (int, int), optional
        The older name of ``n_components``.
    beta1 : float, default 1.0
        β₁, weight of the z₁ term.
    beta2 : float, default 1.0
        β₂, weight of the z₂ KL term.
    eta_enc : float, default 1.0
        η_enc, standard deviation of the prior of z₂.
    eta_dec : float, default 1.0
        η_dec, standard deviation of both Gaussian decoders.
    sigma1 : float, default 0.5
        Fixed σ₁ of ``q(z₁|x)``.
    sigma2 : "learnable" or float, default "learnable"
        σ₂ of ``q(z₂|z₁)``: learned (Thm 3) or fixed (Thm 5).
    center : bool, default True
        Centre the data first.

    Attributes
    ----------
    components_, explained_variance_, noise_variance_, mean_, n_components_
        As for :class:`LinearVAE`, of the marginal covariance
        ``U₁(η_enc²U₂U₂ᵀ + η_dec²I)U₁ᵀ + η_dec²I`` (:meth:`get_covariance`); ``n_components_`` is d₁.
    W1_, W2_, U1_, U2_ : ndarray
        Encoder and decoder matrices of both levels.
    sigma1_, sigma2_ : ndarray
        Encoder standard deviations of both levels.
    theta_, omega_, lambda_, sigma_, collapsed_, n_collapsed_, kl_per_dim_, loss_
        As for :class:`LinearVAE` (collapse refers to z₂).
    result_ : MHVAEFit
        The full result.

    See Also
    --------
    linvae.fit : The function behind ``fit``.

    Notes
    -----
    Thm 3 (learnable Σ₂) and Thm 5 (fixed Σ₂) of Dang et al. (ICLR 2024). ``score`` is the
    exact ``log p(x)`` under ``x ~ N(0, U₁(η_enc²U₂U₂ᵀ + η_dec²I)U₁ᵀ + η_dec²I)``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 4)) * [3, 1, 0.5, 0.1]
    >>> LinearMHVAE(latent_dims=(3, 2)).fit(X).transform(X).shape
    (300, 3)
    """

    _model = "mhvae"
    _matrices = ("W1", "W2", "U1", "U2", "sigma1", "sigma2")
    _size_alias = "latent_dims"

    def __init__(self, n_components: Optional[Union[int, Tuple[int, int]]] = None, *,
                 latent_dims: Optional[Tuple[int, int]] = None, beta1: float = 1.0, beta2: float = 1.0,
                 eta_enc: float = 1.0, eta_dec: float = 1.0, sigma1: float = 0.5,
                 sigma2: Union[str, float] = "learnable", center: bool = True):
        self.n_components = n_components
        self.latent_dims = latent_dims
        self.beta1 = beta1
        self.beta2 = beta2
        self.eta_enc = eta_enc
        self.eta_dec = eta_dec
        self.sigma1 = sigma1
        self.sigma2 = sigma2
        self.center = center

    def _covariance_factor(self, result):
        # Cov(x) = U₁(η_enc²U₂U₂ᵀ + η_dec²I)U₁ᵀ + η_dec²I
        d1 = result.U2.shape[0]
        return result.U1 @ np.hstack([result.eta_enc * result.U2, result.eta_dec * np.eye(d1)])

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Decoder means ``U₁z₁``.

        Parameters
        ----------
        X : array_like of shape (n_samples, d1)
            Codes z₁.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            Means of ``p(x|z₁)``.
        """
        self._check_is_fitted()
        return self.result_.decode(self._check_width(X, self.U1_.shape[1], "Z1"))

    def elbo(self, X: ArrayLike) -> np.ndarray:
        """Per-example β-ELBO with weights β₁ (z₁ term) and β₂ (z₂ KL), in nats.

        ``E_q[log p(x|z₁)] − β₁ E_q[log q(z₁|x) − log p(z₁|z₂)] − β₂ E_q[KL(q(z₂|z₁) ‖ p(z₂))]``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        ndarray of shape (n_samples,)
            The β-ELBO of each example.
        """
        self._check_is_fitted()
        X = self._validate_X(X, reset=False)
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
