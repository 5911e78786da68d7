"""Flags accept bool and numpy.bool_ only (issue #35, item 3): a string such as "no" is truthy."""
import numpy as np
import pytest

import linvae


@pytest.fixture
def X():
    return np.random.default_rng(3).normal(size=(40, 5))


@pytest.mark.parametrize("value", ["false", "0", 0, 1, 2.0, None, [True]])
def test_center_refuses_what_is_not_a_bool(X, value):
    with pytest.raises(TypeError, match="center must be True or False"):
        linvae.fit(X, center=value)
    with pytest.raises(TypeError, match="center must be True or False"):
        linvae.predict_collapse(X, beta=[0.5, 2.0], center=value)
    with pytest.raises(TypeError, match="center must be True or False"):
        linvae.LinearVAE(latent_dim=2, center=value).fit(X)


@pytest.mark.parametrize("value", ["off", 1])
def test_progress_and_overwrite_refuse_what_is_not_a_bool(X, value, tmp_path):
    with pytest.raises(TypeError, match="progress must be True or False"):
        linvae.fit(X, solver="adam", max_iter=10, progress=value)
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        linvae.sweep(X, beta=[0.5, 1.0], out=str(tmp_path / "s"), overwrite=value)


def test_numpy_bools_are_bools(X):
    a = linvae.fit(X, center=np.bool_(True))
    b = linvae.fit(X, center=True)
    c = linvae.fit(X, center=np.False_)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.allclose(a.theta, c.theta)                 # centring is really applied, and only then


def test_convergence_warning_prints_plain_numbers(X):
    with pytest.warns(linvae.ConvergenceWarning) as record:
        linvae.sweep(X, beta=np.array([3.0, 5.0]), solver="adam", max_iter=3)
    text = str(record[0].message)
    assert "np.float64" not in text and "beta=3" in text


@pytest.mark.parametrize("kwargs, name", [
    (dict(model="mhvae", sigma1=1e-170), "sigma1"), (dict(sigma=3e-160), "sigma"),
    (dict(model="mhvae", sigma2=1e170), "sigma2"), (dict(sigma=[0.5, 1e-180, 0.5, 0.5, 0.5]), "sigma"),
])
def test_a_sigma_whose_square_underflows_is_refused(X, kwargs, name):
    with pytest.raises(ValueError, match=f"{name} = .* is out of range"):
        linvae.fit(X, **kwargs)
    if kwargs.get("model") == "mhvae" and np.ndim(kwargs.get("sigma1", 0.5)) == 0:
        with pytest.raises(ValueError, match=f"{name} = .* is out of range"):
            linvae.predict_collapse(X, **kwargs)


def test_a_small_sigma_that_stays_representable_gives_a_finite_kl(X):
    res = linvae.fit(X, model="mhvae", sigma1=1e-100)
    assert np.isfinite(res.loss) and np.all(np.isfinite(res.kl_z1_per_dim))


@pytest.mark.parametrize("kwargs, name", [
    (dict(beta1=2.5), "beta1"), (dict(beta2=0.2), "beta2"), (dict(sigma1=0.9), "sigma1"),
    (dict(model="mhvae", beta=4.0), "beta"), (dict(model="mhvae", sigma=0.3), "sigma"),
])
def test_options_the_model_does_not_use_are_refused(X, kwargs, name):
    """#35 item 2: they were silently ignored (same loss as the default)."""
    with pytest.raises(ValueError, match=f"{name}=.* is not used by model="):
        linvae.fit(X, **kwargs)
    grid = {k: ([v, 2 * v] if not isinstance(v, str) and k.startswith("beta") else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=f"{name}=.* is not used by model="):
        linvae.predict_collapse(X, **grid)
    with pytest.raises(ValueError, match=f"{name}=.* is not used by model="):
        linvae.sweep(X, **grid)


def test_options_at_their_defaults_are_accepted_for_any_model(X):
    a = linvae.fit(X, beta1=1.0, beta2=1.0, sigma1=0.5)
    assert a.loss == linvae.fit(X).loss
    b = linvae.fit(X, model="mhvae", beta=1.0, sigma="learnable")
    assert b.loss == linvae.fit(X, model="mhvae").loss
