"""Tidy tables: to_frame round trips, JSON-safe dicts, row indexing (issue #18)."""
import json

import numpy as np
import pytest

import linvae

pd = pytest.importorskip("pandas")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 4)) * [2.0, 1.0, 0.5, 0.25]
Y = X[:, :2] @ RNG.normal(size=(2, 3)) + RNG.normal(size=(400, 3))


def _tables():
    return {
        "vae": linvae.predict_collapse(X, beta=[0.1, 1.0, 10.0], eta_dec=[0.5, 1.0]),
        "vae_fixed": linvae.predict_collapse(X, beta=[0.5, 2.0], sigma=[0.3, 0.5, 0.8, 1.0]),
        "cvae": linvae.predict_collapse(X, Y, beta=[0.5, 2.0]),
        "mhvae": linvae.predict_collapse(X, model="mhvae", beta1=[0.5, 1.0], beta2=[1.0, 3.0], sigma1=0.5),
        "sweep": linvae.sweep(X, beta=[0.2, 1.0, 5.0], solver="closed_form").table(),
    }


@pytest.mark.parametrize("name", list(_tables()))
def test_long_frame_is_tidy_and_round_trips(name, tmp_path):
    t = _tables()[name]
    df = t.to_frame()
    n, d = t.collapsed.shape
    assert len(df) == n * d
    assert {"config", "dim", "kl", "sigma", "collapsed"} <= set(df.columns)
    # every (config, dim) once, and each value where it belongs
    assert not df.duplicated(["config", "dim"]).any()
    for _, row in df.sample(min(len(df), 7), random_state=0).iterrows():
        i, j = int(row["config"]), int(row["dim"])
        assert row["kl"] == t.kl_per_dim[i, j]
        assert row["collapsed"] == t.collapsed[i, j]
        assert row["sigma"] == t.sigma[i, j]
        for k, col in t.columns.items():
            assert row[k] == col[i]
    # the per-config collapse count is the sum of the per-dim flags
    np.testing.assert_array_equal(df.groupby("config")["collapsed"].sum().to_numpy(), t["n_collapsed"])
    back = linvae.CollapseTable.from_frame(df)
    _assert_same_table(back, t)
    # through CSV too (attrs are lost there: model/theorem are not part of the data)
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    csv = linvae.CollapseTable.from_frame(pd.read_csv(path))
    np.testing.assert_allclose(csv.kl_per_dim, t.kl_per_dim, rtol=1e-15)
    np.testing.assert_array_equal(csv.collapsed, t.collapsed)


def _assert_same_table(a, b):
    assert a.model == b.model and a.theorem == b.theorem
    assert list(a.columns) == list(b.columns)
    for k in b.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k])
    np.testing.assert_array_equal(a.collapsed, b.collapsed)
    np.testing.assert_array_equal(a.kl_per_dim, b.kl_per_dim)
    np.testing.assert_array_equal(a.sigma, b.sigma)


def test_wide_frame_one_row_per_config():
    t = _tables()["vae"]
    w = t.to_frame("wide")
    n, d = t.collapsed.shape
    assert len(w) == n
    for i in range(d):
        np.testing.assert_array_equal(w[f"kl_{i}"], t.kl_per_dim[:, i])
        np.testing.assert_array_equal(w[f"collapsed_{i}"], t.collapsed[:, i])
    np.testing.assert_array_equal(w["beta"], t["beta"])
    # the wide view is the long one pivoted
    piv = t.to_frame().pivot(index="config", columns="dim", values="kl")
    np.testing.assert_array_equal(piv.to_numpy(), w[[f"kl_{i}" for i in range(d)]].to_numpy())
    with pytest.raises(ValueError, match="form"):
        t.to_frame("tall")


def test_sigma_matches_the_fits():
    betas = [0.2, 1.0, 5.0]
    t = linvae.predict_collapse(X, beta=betas)
    for i, b in enumerate(betas):
        np.testing.assert_allclose(t.sigma[i], linvae.fit(X, beta=b).sigma, rtol=1e-12)
    s = linvae.sweep(X, beta=betas, solver="closed_form")
    np.testing.assert_allclose(s.table().sigma, t.sigma, rtol=1e-12)
    np.testing.assert_array_equal(s.to_frame()["kl"], t.to_frame()["kl"])


def test_to_dict_json_safe_and_row_indexing():
    for t in _tables().values():
        d = json.loads(json.dumps(t.to_dict(json_safe=True)))
        np.testing.assert_array_equal(np.array(d["collapsed"]), t.collapsed)
        np.testing.assert_allclose(np.array(d["kl_per_dim"], dtype=float), t.kl_per_dim, rtol=1e-15)
        assert d["model"] == t.model
        row = t[1]
        assert row["n_collapsed"] == t["n_collapsed"][1]
        np.testing.assert_array_equal(row["collapsed"], t.collapsed[1])
        assert t[-1]["n_collapsed"] == t["n_collapsed"][-1]
        with pytest.raises(IndexError, match="out of range"):
            t[len(t)]
    s = linvae.sweep(X, beta=[0.5, 2.0], solver="closed_form")
    d = json.loads(json.dumps(s.to_dict(json_safe=True)))
    assert d["n_collapsed"] == s.table()["n_collapsed"].tolist() and d["model"] == "vae"
    r = linvae.fit(X, beta=1.0)
    rd = json.loads(json.dumps(r.to_dict(json_safe=True)))
    np.testing.assert_allclose(np.array(rd["W"]), r.W, rtol=1e-15)
    assert rd["n_iter"] is None and rd["theorem"] == r.theorem
    # the default is JSON-safe for every result type; json_safe=False gives NumPy arrays
    for obj in (r, s, s.table()):
        json.dumps(obj.to_dict())
    assert isinstance(r.to_dict(json_safe=False)["W"], np.ndarray)
    assert isinstance(s.table().to_dict(json_safe=False)["collapsed"], np.ndarray)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({k: v for k, v in s.table().to_dict().items() if k in s.table().columns})
    np.testing.assert_array_equal(frame["n_collapsed"].to_numpy(), s.table()["n_collapsed"])



def test_sweep_default_solver_is_the_closed_form_like_fit():
    import inspect

    assert inspect.signature(linvae.sweep).parameters["solver"].default == \
        inspect.signature(linvae.fit).parameters["solver"].default == "closed_form"
    s = linvae.sweep(X, beta=[0.3, 3.0])
    for r, b in zip(s, [0.3, 3.0]):
        assert r.solver == "closed_form" and r.n_iter is None
        np.testing.assert_allclose(r.W, linvae.fit(X, beta=b).W, rtol=0, atol=0)
