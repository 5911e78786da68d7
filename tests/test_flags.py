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
