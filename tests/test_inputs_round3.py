"""Sparse, pandas and oversized inputs (issue #35, item 6): accepted where the moments suffice,
refused before any allocation otherwise, with the argument, the value and the way out named."""
import numpy as np
import pytest

import linvae
from linvae import _validation

sparse = pytest.importorskip("scipy.sparse")


@pytest.fixture
def dense():
    rng = np.random.default_rng(11)
    return rng.gamma(2.0, size=(240, 7)) * (rng.random((240, 7)) < 0.25) * [3, 1, 1, 0.5, 2, 1, 0.2]


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "coo_array", "lil_matrix"])
@pytest.mark.parametrize("center", [False, True])
def test_sparse_data_fit_as_their_dense_twins(dense, kind, center):
    S = getattr(sparse, kind)(dense)
    a, b = linvae.fit(dense, beta=0.4, center=center), linvae.fit(S, beta=0.4, center=center)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-12)
    np.testing.assert_allclose(b.U @ b.W, a.U @ a.W, rtol=1e-9, atol=1e-12)
    pa = linvae.predict_collapse(dense, beta=[0.05, 0.5, 5], center=center)
    pb = linvae.predict_collapse(S, beta=[0.05, 0.5, 5], center=center)
    np.testing.assert_array_equal(pb["n_collapsed"], pa["n_collapsed"])


def test_sparse_condition_and_target_and_chunks(dense):
    X, Y = dense[:, :4], dense[:, 4:]
    ref = linvae.fit(X, Y, beta=0.3)
    for Xs, Ys in [(sparse.csr_matrix(X), Y), (X, sparse.csr_matrix(Y)), (sparse.csr_matrix(X), sparse.csc_matrix(Y))]:
        np.testing.assert_allclose(linvae.fit(Xs, Ys, beta=0.3).loss, ref.loss, rtol=1e-12)
    chunked = linvae.Moments.from_arrays(sparse.csr_matrix(dense), chunk_size=37, center=True)
    np.testing.assert_allclose(chunked.xx, np.cov(dense.T, bias=True), rtol=1e-10, atol=1e-14)


def test_bad_sparse_data_are_named(dense):
    bad = dense.copy()
    bad[5, 3], bad[9, 1] = 1.0, np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first at row 9, column 1: inf\)"):
        linvae.fit(sparse.csr_matrix(bad))
    with pytest.raises(TypeError, match="sparse matrix of complex dtype"):
        linvae.fit(sparse.csr_matrix(dense * 1j))
    with pytest.raises(ValueError, match="X and Y must have the same number of samples"):
        linvae.fit(sparse.csr_matrix(dense), dense[:10, :2])
    with pytest.raises(TypeError, match=r"sparse.*toarray\(\)"):     # the raw-data solver needs rows
        linvae.fit(sparse.csr_matrix(dense), solver="minibatch", epochs=1)


pd = pytest.importorskip("pandas")


def test_pandas_missing_values_and_categories_are_named():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"pixels": rng.normal(size=30), "count": pd.array(list(range(29)) + [None], dtype="Int64")})
    with pytest.raises(ValueError, match=r"column 'count' has 1 missing value.*row 29"):
        linvae.fit(frame)
    np.testing.assert_allclose(linvae.fit(frame.fillna(3)).loss,
                               linvae.fit(frame.fillna(3).to_numpy(dtype=float)).loss, rtol=1e-12)
    frame["colour"] = pd.Categorical(rng.choice(["red", "blue"], size=30))
    with pytest.raises(TypeError, match=r"column 'colour' is categorical \(categories \['blue', 'red'\]\).*get_dummies"):
        linvae.fit(frame.fillna(3))
    with pytest.raises(TypeError, match=r"column 'label' has dtype .*values such as 'a'"):
        linvae.fit(pd.DataFrame({"x": rng.normal(size=4), "label": list("abab")}))
    with pytest.raises(ValueError, match=r"Y \(Series 'y'\) has 2 missing"):
        linvae.fit(rng.normal(size=(5, 2)), pd.Series([1.0, None, 2.0, None, 1.0], dtype="Float64", name="y"))


def test_a_huge_latent_size_is_refused_before_allocating(dense):
    for kwargs, shown in [(dict(model="mhvae", latent_dim=4 * 10**6), r"latent_dims=\(4000000, 4000000\)"),
                          (dict(model="mhvae", latent_dims=(3, 2 * 10**9)), r"latent_dims=\(3, 2000000000\)"),
                          (dict(latent_dim=5 * 10**10), "latent_dim=50000000000")]:
        with pytest.raises(MemoryError, match=shown + r" on 7 features.*needs about .* more than the .* available"):
            linvae.fit(dense, **kwargs)
    assert linvae.fit(dense, model="mhvae", latent_dim=12).loss > 0     # a latent size above d still fits


@pytest.mark.parametrize("entry", ["predict", "sweep"])
def test_a_grid_too_large_for_memory_is_refused_with_its_size(dense, entry, monkeypatch):
    grid = dict(beta=np.geomspace(0.01, 10, 20_000), eta_dec=np.geomspace(0.1, 10, 30_000))
    call = linvae.predict_collapse if entry == "predict" else linvae.sweep
    with pytest.raises(MemoryError, match=r"the grid of 600,000,000 configurations \(20000 × 1 × 30000 values of "
                                          r"beta, eta_enc, eta_dec\).*split the grid" + (".*chunk_size" if entry == "sweep" else "")):
        call(dense, **grid)
    # the estimate follows the memory available: with 1 MiB free, a 10,000-configuration grid is refused too
    monkeypatch.setattr(_validation, "_available_memory", lambda: 1 << 20)
    with pytest.raises(MemoryError, match="10,000 configurations"):
        call(dense, beta=np.geomspace(0.01, 10, 100), eta_enc=np.geomspace(0.5, 2, 100))
    assert len(call(dense, beta=[0.1, 1.0], solver="closed_form") if entry == "sweep" else call(dense, beta=[0.1, 1.0])) == 2
