"""Public API: fit dispatch, Moments input, predict_collapse vs per-point fits, and input
validation (the estimators' own tests are in tests/test_estimators.py)."""
import dataclasses
import itertools
import re

import numpy as np
import pytest

import linvae
from linvae import CVAEFit, LinearCVAE, LinearMHVAE, LinearVAE, MHVAEFit, Moments, VAEFit

import naive  # tests/ is on sys.path (conftest.py)
from testdata import cvae_data as _cvae_data
from testdata import vae_data as _vae_data


# ----------------------------------------------------------------------------- dispatch

def test_fit_dispatch_and_theorems():
    X = _vae_data()
    Xc, Yc = _cvae_data()
    r = linvae.fit(Xc, Yc)
    assert isinstance(r, CVAEFit) and r.theorem == "Thm 2" and r.model == "cvae"
    r = linvae.fit(X)
    assert isinstance(r, VAEFit) and r.theorem == "Thm 4" and r.model == "vae"
    r = linvae.fit(X, sigma=0.7)
    assert isinstance(r, VAEFit) and r.theorem == "Thm 1"
    np.testing.assert_array_equal(r.sigma, np.full(5, 0.7))
    r = linvae.fit(X, sigma=[0.5, 1.0, 2.0, 1.0, 0.3])
    assert r.theorem == "Thm 1"
    r = linvae.fit(X, model="mhvae")
    assert isinstance(r, MHVAEFit) and r.theorem == "Thm 3" and r.model == "mhvae"
    r = linvae.fit(X, model="mhvae", sigma2=0.8)
    assert isinstance(r, MHVAEFit) and r.theorem == "Thm 5"
    np.testing.assert_array_equal(r.sigma2, np.full(5, 0.8))
    # explicit model names agree with auto
    assert linvae.fit(X, model="vae").theorem == "Thm 4"
    assert linvae.fit(Xc, Yc, model="cvae").theorem == "Thm 2"


def test_fit_default_latent_sizes():
    X = _vae_data()
    Xc, Yc = _cvae_data()
    assert linvae.fit(X).W.shape == (5, 5)
    assert linvae.fit(X, latent_dim=2).W.shape == (2, 5)
    r = linvae.fit(Xc, Yc)
    assert r.W1.shape == (3, 4) and r.W2.shape == (3, 3) and r.U1.shape == (3, 3) and r.U2.shape == (3, 4)
    r = linvae.fit(X, model="mhvae", latent_dims=(4, 2))
    assert r.W1.shape == (4, 5) and r.W2.shape == (2, 4) and r.U2.shape == (4, 2)
    assert r.collapsed.shape == (2,)


def _fields(res):
    return {f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "history"}


def _assert_same_result(a, b, rtol=1e-12):
    assert type(a) is type(b)
    fa, fb = _fields(a), _fields(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        va, vb = fa[k], fb[k]
        if isinstance(va, np.ndarray):
            assert va.shape == vb.shape, k
            if va.dtype == bool:
                np.testing.assert_array_equal(va, vb, err_msg=k)
            else:
                np.testing.assert_allclose(va, vb, rtol=rtol, atol=rtol * max(1.0, np.abs(vb).max(initial=0)),
                                           err_msg=k)
        elif isinstance(va, float):
            assert va == pytest.approx(vb, rel=rtol, abs=rtol), k
        else:
            assert va == vb, k


def test_fit_from_moments_equals_fit_from_arrays():
    X = _vae_data(1)
    Xc, Yc = _cvae_data(1)
    m, mc = Moments.from_arrays(X), Moments.from_arrays(Xc, Yc)
    kw = dict(beta=0.6, eta_enc=1.4, eta_dec=0.7)
    _assert_same_result(linvae.fit(m, **kw), linvae.fit(X, **kw))
    _assert_same_result(linvae.fit(m, sigma=[0.5, 1.0, 2.0, 1.4, 0.3], **kw),
                        linvae.fit(X, sigma=[0.5, 1.0, 2.0, 1.4, 0.3], **kw))
    _assert_same_result(linvae.fit(mc, **kw), linvae.fit(Xc, Yc, **kw))
    mh = dict(beta1=1.5, beta2=0.8, eta_enc=1.4, eta_dec=0.7, latent_dims=(4, 3))
    _assert_same_result(linvae.fit(m, model="mhvae", **mh), linvae.fit(X, model="mhvae", **mh))
    _assert_same_result(linvae.fit(m, model="mhvae", sigma2=1.1, **mh),
                        linvae.fit(X, model="mhvae", sigma2=1.1, **mh))
    # centred moments == fit(center=True)
    _assert_same_result(linvae.fit(Moments.from_arrays(X + 2, center=True), **kw),
                        linvae.fit(X + 2, center=True, **kw))
    with pytest.raises(ValueError, match="Y"):
        linvae.fit(mc, Yc)


def test_input_types_give_same_result():
    rng = np.random.default_rng(2)
    Xi = rng.integers(-4, 5, size=(60, 4)) * np.array([3, 2, 1, 1])
    Yi = rng.integers(-2, 3, size=(60, 2)) + Xi[:, :2]
    X64, Y64 = Xi.astype(np.float64), Yi.astype(np.float64)
    kw = dict(beta=0.8, eta_dec=0.9)
    ref_v, ref_c = linvae.fit(X64, **kw), linvae.fit(X64, Y64, **kw)
    ref_m = linvae.fit(X64, model="mhvae", **{"beta2": 0.8, "eta_dec": 0.9})
    for X, Y in [(Xi, Yi), (Xi.astype(np.float32), Yi.astype(np.float32)), (Xi.tolist(), Yi.tolist())]:
        _assert_same_result(linvae.fit(X, **kw), ref_v)
        _assert_same_result(linvae.fit(X, Y, **kw), ref_c)
        _assert_same_result(linvae.fit(X, model="mhvae", beta2=0.8, eta_dec=0.9), ref_m)
    # float32 data that is not integer-valued: equal to the float64 copy of the same values
    X32 = rng.normal(size=(80, 3)).astype(np.float32) * np.float32(2)
    _assert_same_result(linvae.fit(X32, beta=0.5), linvae.fit(X32.astype(np.float64), beta=0.5))
    # estimators too
    np.testing.assert_allclose(LinearVAE(beta=0.8).fit(Xi.tolist()).W_, LinearVAE(beta=0.8).fit(X64).W_,
                               rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- predict_collapse

def _check_table_rows(table, grid_names, fit_one):
    # one row per grid point, each point once
    cols = [tuple(table[n][i] for n in grid_names) for i in range(len(table))]
    assert len(set(cols)) == len(cols)
    assert table.collapsed.shape[0] == len(table) == table.kl_per_dim.shape[0]
    for i in range(len(table)):
        point = {n: float(table[n][i]) for n in grid_names}
        res = fit_one(**point)
        np.testing.assert_array_equal(table.collapsed[i], res.collapsed, err_msg=str(point))
        np.testing.assert_allclose(table.kl_per_dim[i], res.kl_per_dim, rtol=1e-10, atol=1e-13,
                                   err_msg=str(point))
        assert table["n_collapsed"][i] == res.n_collapsed
        assert table["n_active"][i] == res.n_active
        assert table.theorem == res.theorem
    # str(table) shows every column name and the theorem
    text = str(table)
    for name in table.columns:
        assert name in text
    assert table.theorem in text
    assert len(text.splitlines()) >= len(table) + 2


BETAS = [0.05, 0.3, 1.0, 2.5, 12.0]
ETA_DEC = [0.25, 0.6, 1.0, 2.0]
ETA_ENC = [0.5, 1.0, 1.7]


def test_predict_collapse_vae_learnable_matches_fit():
    X = _vae_data(3)
    m = Moments.from_arrays(X)
    t = linvae.predict_collapse(X, beta=BETAS, eta_dec=ETA_DEC, eta_enc=ETA_ENC, latent_dim=6)
    assert len(t) == len(BETAS) * len(ETA_DEC) * len(ETA_ENC)
    grid = set(itertools.product(BETAS, ETA_ENC, ETA_DEC))
    assert {(t["beta"][i], t["eta_enc"][i], t["eta_dec"][i]) for i in range(len(t))} == grid
    # the grid must actually exercise both outcomes
    assert 0 < t["n_collapsed"].min() < 6 and t["n_collapsed"].max() == 6
    _check_table_rows(t, ["beta", "eta_enc", "eta_dec"],
                      lambda **p: linvae.fit(m, latent_dim=6, **p))


@pytest.mark.slow
def test_predict_collapse_vae_fixed_sigma_matches_fit():
    X = _vae_data(4)
    sigma = [1.0, 0.5, 2.0, 1.0, 0.3]
    t = linvae.predict_collapse(X, beta=BETAS, eta_dec=ETA_DEC, eta_enc=ETA_ENC, sigma=sigma)
    assert t.theorem == "Thm 1"
    assert t["n_collapsed"].max() > 0      # σ = η_enc = 1 dims collapse when dead
    assert np.any(t["n_dead"] > t["n_collapsed"])   # dead but not collapsed dims occur
    _check_table_rows(t, ["beta", "eta_enc", "eta_dec"],
                      lambda **p: linvae.fit(X, sigma=sigma, **p))
    for i in range(len(t)):
        assert t["n_dead"][i] == linvae.fit(X, sigma=sigma, beta=t["beta"][i], eta_enc=t["eta_enc"][i],
                                            eta_dec=t["eta_dec"][i]).dead.sum()


def test_predict_collapse_cvae_matches_fit():
    X, Y = _cvae_data(5)
    t = linvae.predict_collapse(X, Y, beta=BETAS, eta_dec=ETA_DEC, eta_enc=ETA_ENC, latent_dim=4)
    assert t.theorem == "Thm 2" and t.collapsed.shape[1] == 4
    assert 1 <= t["n_collapsed"].min() < 4 and t["n_collapsed"].max() == 4
    _check_table_rows(t, ["beta", "eta_enc", "eta_dec"],
                      lambda **p: linvae.fit(X, Y, latent_dim=4, **p))


@pytest.mark.slow
@pytest.mark.parametrize("latent_dims", [(5, 5), (4, 3), (3, 5)])
def test_predict_collapse_mhvae_thm3_matches_fit(latent_dims):
    X = _vae_data(6)
    grid = dict(beta1=[0.2, 1.0, 4.0], beta2=[0.1, 1.0, 6.0], sigma1=[0.25, 0.8], eta_dec=[0.5, 1.0],
                eta_enc=[0.7, 1.0])
    t = linvae.predict_collapse(X, model="mhvae", latent_dims=latent_dims, **grid)
    assert t.theorem == "Thm 3" and len(t) == 3 * 3 * 2 * 2 * 2
    assert t["n_collapsed"].min() < t["n_collapsed"].max()
    _check_table_rows(t, list(grid),
                      lambda **p: linvae.fit(X, model="mhvae", latent_dims=latent_dims, **p))


@pytest.mark.slow
@pytest.mark.parametrize("latent_dims", [(5, 5), (4, 3)])
def test_predict_collapse_mhvae_thm5_matches_fit(latent_dims):
    X = _vae_data(7)
    grid = dict(beta1=[0.3, 1.0, 3.0], beta2=[0.2, 1.0, 5.0], eta_dec=[0.4, 1.0], eta_enc=[1.0, 0.6])
    t = linvae.predict_collapse(X, model="mhvae", latent_dims=latent_dims, sigma1=0.5, sigma2=1.0, **grid)
    assert t.theorem == "Thm 5"
    assert t["n_collapsed"].max() > 0 and np.any(t["n_dead"] > t["n_collapsed"])
    _check_table_rows(t, list(grid),
                      lambda **p: linvae.fit(X, model="mhvae", latent_dims=latent_dims, sigma1=0.5,
                                             sigma2=1.0, **p))


def test_predict_collapse_from_moments_and_scalar():
    X = _vae_data(8)
    a = linvae.predict_collapse(Moments.from_arrays(X), beta=[0.5, 2.0])
    b = linvae.predict_collapse(X, beta=[0.5, 2.0])
    np.testing.assert_array_equal(a.collapsed, b.collapsed)
    np.testing.assert_allclose(a.kl_per_dim, b.kl_per_dim, rtol=1e-12)
    s = linvae.predict_collapse(X, beta=2.0)
    assert len(s) == 1
    np.testing.assert_array_equal(s.collapsed[0], linvae.fit(X, beta=2.0).collapsed)
    d = s.to_dict()
    assert d["n_collapsed"][0] == linvae.fit(X, beta=2.0).n_collapsed


# ----------------------------------------------------------------------------- bad input

_X = naive.make_data(30, 3, [2.0, 1.0, 0.5], 0)
_Y = np.random.default_rng(1).normal(size=(30, 2))


def _with(value, at=(4, 1)):
    X = _X.copy()
    X[at] = value
    return X


BAD = [
    # id, call, exception, regexes that must all appear in the message
    ("1d", lambda: linvae.fit(_X[:, 0]), ValueError, [r"\bX\b", r"1-D", re.escape("(30,)")]),
    ("3d", lambda: linvae.fit(_X[None]), ValueError, [r"\bX\b", r"3-D", re.escape("(1, 30, 3)")]),
    ("empty", lambda: linvae.fit(np.zeros((0, 3))), ValueError, [r"\bX\b", r"empty", re.escape("(0, 3)")]),
    ("empty_features", lambda: linvae.fit(np.zeros((5, 0))), ValueError, [r"\bX\b", re.escape("(5, 0)")]),
    ("nan", lambda: linvae.fit(_with(np.nan)), ValueError, [r"\bX\b", r"(?i)nan", r"row 4", r"column 1"]),
    ("inf", lambda: linvae.fit(_with(np.inf)), ValueError, [r"\bX\b", r"inf"]),
    ("nan_Y", lambda: linvae.fit(_X, np.where(_Y > 1, np.nan, _Y)), ValueError, [r"\bY\b", r"(?i)nan"]),
    ("complex", lambda: linvae.fit(_X + 0j), TypeError, [r"\bX\b", r"complex"]),
    ("object", lambda: linvae.fit(_X.astype(object)), TypeError, [r"\bX\b", r"object"]),
    ("string", lambda: linvae.fit(_X.astype(str)), TypeError, [r"\bX\b", r"dtype"]),
    ("rows", lambda: linvae.fit(_X, _Y[:29]), ValueError, [r"\bX\b", r"\bY\b", r"\b30\b", r"\b29\b"]),
    ("beta0", lambda: linvae.fit(_X, beta=0), ValueError, [r"\bbeta\b", r"got 0"]),
    ("beta_neg", lambda: linvae.fit(_X, beta=-2.5), ValueError, [r"\bbeta\b", r"-2\.5"]),
    ("beta_nan", lambda: linvae.fit(_X, beta=float("nan")), ValueError, [r"\bbeta\b", r"nan"]),
    ("beta_str", lambda: linvae.fit(_X, beta="big"), TypeError, [r"\bbeta\b", r"big"]),
    ("eta_enc0", lambda: linvae.fit(_X, eta_enc=0), ValueError, [r"\beta_enc\b", r"got 0"]),
    ("eta_dec_neg", lambda: linvae.fit(_X, eta_dec=-1), ValueError, [r"\beta_dec\b", r"-1"]),
    ("latent0", lambda: linvae.fit(_X, latent_dim=0), ValueError, [r"\blatent_dim\b", r"got 0"]),
    ("latent_float", lambda: linvae.fit(_X, latent_dim=1.5), TypeError, [r"\blatent_dim\b", r"1\.5"]),
    ("model", lambda: linvae.fit(_X, model="pca"), ValueError, [r"\bmodel\b", r"pca", r"mhvae"]),
    ("solver", lambda: linvae.fit(_X, solver="newton"), ValueError, [r"\bsolver\b", r"newton", r"closed_form"]),
    ("sigma_neg", lambda: linvae.fit(_X, sigma=-0.5), ValueError, [r"\bsigma\b", r"-0\.5"]),
    ("sigma_zero_entry", lambda: linvae.fit(_X, sigma=[1.0, 0.0, 1.0]), ValueError, [r"\bsigma\b", r"0\.0"]),
    ("sigma_len", lambda: linvae.fit(_X, sigma=[1.0, 2.0]), ValueError, [r"\bsigma\b", re.escape("(2,)"),
                                                                         re.escape("(3,)")]),
    ("sigma_word", lambda: linvae.fit(_X, sigma="fixed"), ValueError, [r"\bsigma\b", r"fixed"]),
    ("cvae_no_Y", lambda: linvae.fit(_X, model="cvae"), ValueError, [r"\bmodel\b", r"cvae", r"\bY\b"]),
    ("vae_with_Y", lambda: linvae.fit(_X, _Y, model="vae"), ValueError, [r"\bmodel\b", r"'vae'", r"\bY\b"]),
    ("mhvae_with_Y", lambda: linvae.fit(_X, _Y, model="mhvae"), ValueError, [r"\bmodel\b", r"mhvae", r"\bY\b"]),
    ("mhvae_sigma1_learnable", lambda: linvae.fit(_X, model="mhvae", sigma1="learnable"), ValueError,
     [r"\bsigma1\b", r"learnable"]),
    ("mhvae_sigma1_neg", lambda: linvae.fit(_X, model="mhvae", sigma1=-0.3), ValueError,
     [r"\bsigma1\b", r"-0\.3"]),
    ("mhvae_sigma2_neg", lambda: linvae.fit(_X, model="mhvae", sigma2=-0.4), ValueError,
     [r"\bsigma2\b", r"-0\.4"]),
    ("cvae_fixed_sigma", lambda: linvae.fit(_X, _Y, sigma=0.5), ValueError, [r"\bsigma\b", r"0\.5"]),
    ("latent_dims_vae", lambda: linvae.fit(_X, latent_dims=(2, 2)), ValueError, [r"\blatent_dims\b"]),
    ("pc_beta_neg", lambda: linvae.predict_collapse(_X, beta=[1.0, -3.0]), ValueError, [r"\bbeta\b", r"-3"]),
    ("pc_eta_dec0", lambda: linvae.predict_collapse(_X, eta_dec=[0.5, 0.0]), ValueError,
     [r"\beta_dec\b", r"0\.0"]),
    ("pc_beta2_nan", lambda: linvae.predict_collapse(_X, model="mhvae", beta2=[1.0, float("nan")]), ValueError,
     [r"\bbeta2\b", r"nan"]),
    ("pc_beta_2d", lambda: linvae.predict_collapse(_X, beta=[[1.0, 2.0]]), TypeError, [r"\bbeta\b"]),
    ("pc_beta_empty", lambda: linvae.predict_collapse(_X, beta=[]), ValueError, [r"\bbeta\b", r"empty"]),
    ("pc_cvae_no_Y", lambda: linvae.predict_collapse(_X, model="cvae"), ValueError, [r"\bmodel\b", r"cvae"]),
    ("est_beta", lambda: LinearVAE(beta=-1.0).fit(_X), ValueError, [r"\bbeta\b", r"-1"]),
    ("est_cvae_rows", lambda: LinearCVAE().fit(_X, _Y[:10]), ValueError, [r"\bX\b", r"\bY\b", r"\b10\b"]),
    ("est_latent", lambda: LinearMHVAE(latent_dims=(0, 2)).fit(_X), ValueError, [r"latent_dims\[0\]", r"0"]),
]


@pytest.mark.parametrize("call,exc,patterns", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, patterns):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for pat in patterns:
        assert re.search(pat, msg), f"{pat!r} not in {msg!r}"
