"""Sufficient statistics: Moments from arrays / chunks / merges vs naive products, centring,
input coercion, rank handling, the CVAE residual vs least squares, and from_matrices checks."""
import numpy as np
import pytest

from linvae.stats import MomentAccumulator, Moments, cvae_residual, vae_spectrum


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def _data(seed=0, n=257, dx=6, dy=4, shift=3.0):
    rng = np.random.default_rng(seed)
    # a non-zero mean makes the uncentred / centred distinction and the merge corrections matter
    X = rng.normal(size=(n, dx)) * np.linspace(2.0, 0.3, dx) + shift
    Y = X[:, :dy] @ rng.normal(size=(dy, dy)) + rng.normal(size=(n, dy)) - 1.5
    return X, Y


def _naive(X, Y=None):
    N = X.shape[0]
    out = {"xx": X.T @ X / N}
    if Y is not None:
        out["xy"] = X.T @ Y / N
        out["yy"] = Y.T @ Y / N
    return out


def _assert_moments(m, ref, tol):
    for k, v in ref.items():
        got = getattr(m, k)
        assert got.shape == v.shape, k
        assert _rel(got, v) <= tol, (k, _rel(got, v))


# ----------------------------------------------------------------------------- from_arrays

def test_from_arrays_matches_naive_products():
    X, Y = _data()
    m = Moments.from_arrays(X, Y)
    assert m.n == X.shape[0]
    assert m.centered is False
    _assert_moments(m, _naive(X, Y), 1e-12)
    np.testing.assert_allclose(m.mean_x, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.mean_y, Y.mean(0), rtol=1e-12)
    assert m.dx == X.shape[1] and m.dy == Y.shape[1] and m.has_y


def test_from_arrays_without_y():
    X, _ = _data(1)
    m = Moments.from_arrays(X)
    _assert_moments(m, _naive(X), 1e-12)
    assert m.xy is None and m.yy is None and not m.has_y and m.dy is None


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 256, 257, 1000])
def test_chunked_equals_in_memory(chunk_size):
    X, Y = _data(2)
    ref = _naive(X, Y)
    _assert_moments(Moments.from_arrays(X, Y, chunk_size=chunk_size), ref, 1e-12)
    _assert_moments(Moments.from_arrays(X, chunk_size=chunk_size), {"xx": ref["xx"]}, 1e-12)


def test_chunk_size_below_one_rejected():
    X, _ = _data(2)
    with pytest.raises(ValueError, match="chunk_size"):
        Moments.from_arrays(X, chunk_size=0)


def test_from_chunks_x_only_and_pairs():
    X, Y = _data(3)
    ref = _naive(X, Y)
    splits = [0, 1, 50, 51, 200, X.shape[0]]   # uneven sizes including a 1-row chunk
    xs = (X[a:b] for a, b in zip(splits[:-1], splits[1:]))
    pairs = ((X[a:b], Y[a:b]) for a, b in zip(splits[:-1], splits[1:]))
    mx = Moments.from_chunks(xs)
    mxy = Moments.from_chunks(pairs)
    assert mx.n == mxy.n == X.shape[0]
    _assert_moments(mx, {"xx": ref["xx"]}, 1e-12)
    _assert_moments(mxy, ref, 1e-12)


def test_from_chunks_centered_and_empty_iterator():
    X, _ = _data(4)
    m = Moments.from_chunks(np.array_split(X, 5), center=True)
    Xc = X - X.mean(0)
    _assert_moments(m, _naive(Xc), 1e-12)
    with pytest.raises(ValueError):
        Moments.from_chunks(iter([]))


def test_accumulator_merge_equals_in_memory():
    X, Y = _data(5)
    parts = [slice(0, 30), slice(30, 31), slice(31, 180), slice(180, None)]
    accs = [MomentAccumulator().add(X[s], Y[s]) for s in parts]
    # tree reduction: (a+b) + (c+d)
    left = accs[0].merge(accs[1])
    right = accs[2].merge(accs[3])
    total = left.merge(right)
    assert total.n == X.shape[0]
    _assert_moments(total.finalize(), _naive(X, Y), 1e-12)
    # merging an empty accumulator is a no-op, in both directions
    e = MomentAccumulator().merge(MomentAccumulator().add(X, Y))
    _assert_moments(e.merge(MomentAccumulator()).finalize(), _naive(X, Y), 1e-12)


def test_accumulator_merge_mismatch_rejected():
    X, Y = _data(6)
    with pytest.raises(ValueError):
        MomentAccumulator().add(X, Y).merge(MomentAccumulator().add(X))
    with pytest.raises(ValueError):
        MomentAccumulator().add(X).merge(MomentAccumulator().add(X[:, :3]))
    with pytest.raises(ValueError):
        MomentAccumulator().finalize()


def test_center_equals_moments_of_centred_data():
    X, Y = _data(7, shift=50.0)   # large mean: a naive E[xx] - mean mean^T would lose digits
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    m = Moments.from_arrays(X, Y, center=True)
    assert m.centered is True
    _assert_moments(m, _naive(Xc, Yc), 1e-12)
    mc = Moments.from_arrays(X, Y, center=True, chunk_size=13)
    _assert_moments(mc, _naive(Xc, Yc), 1e-12)
    # the uncentred moments differ (the test above can tell them apart)
    assert _rel(Moments.from_arrays(X, Y).xx, _naive(Xc)["xx"]) > 0.1


# ----------------------------------------------------------------------------- input coercion

def test_float32_int_list_inputs_accepted():
    rng = np.random.default_rng(8)
    Xi = rng.integers(-5, 6, size=(40, 4))
    Yi = rng.integers(0, 3, size=(40, 2))
    ref = _naive(Xi.astype(np.float64), Yi.astype(np.float64))
    for X, Y in [(Xi, Yi), (Xi.astype(np.float32), Yi.astype(np.float32)), (Xi.tolist(), Yi.tolist()),
                 (Xi.astype(np.int8), Yi.astype(np.uint8))]:
        m = Moments.from_arrays(X, Y)
        assert m.xx.dtype == np.float64
        _assert_moments(m, ref, 1e-12)
    # float32 data: accumulation happens in float64 (exact products of the float32 values)
    X32 = rng.normal(size=(300, 5)).astype(np.float32)
    m32 = Moments.from_arrays(X32)
    X64 = X32.astype(np.float64)
    _assert_moments(m32, _naive(X64), 1e-12)


def test_input_not_modified():
    X, Y = _data(9)
    X0, Y0 = X.copy(), Y.copy()
    Moments.from_arrays(X, Y, center=True)
    Moments.from_arrays(X, Y, center=True, chunk_size=10)
    Moments.from_chunks([(X, Y)], center=True)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


def test_bad_arrays_rejected():
    X, Y = _data(10)
    with pytest.raises(ValueError, match="X"):
        Moments.from_arrays(X[:, 0])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Moments.from_arrays(bad)
    with pytest.raises(ValueError, match="same number of samples"):
        Moments.from_arrays(X, Y[:-1])
    with pytest.raises(ValueError, match="same number of samples"):
        Moments.from_arrays(X, Y[:-1], chunk_size=10)


# ----------------------------------------------------------------------------- rank / spectrum

def _naive_nonzero_eigs(X):
    A = X.T @ X / X.shape[0]
    ev = np.sort(np.linalg.eigvalsh(A))[::-1]
    return ev


def test_rank_deficient_n_less_than_d():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5, 12)) * 2.0
    m = Moments.from_arrays(X)
    theta, P = vae_spectrum(m)
    assert theta.shape == (5,)
    assert P.shape == (12, 5)
    ev = _naive_nonzero_eigs(X)[:5]
    np.testing.assert_allclose(theta, np.sqrt(ev), rtol=1e-10)
    # eigenvectors: orthonormal and A P = P diag(theta^2)
    np.testing.assert_allclose(P.T @ P, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(m.xx @ P, P * theta**2, atol=1e-10 * theta[0] ** 2)
    # spectrum() is the same method
    np.testing.assert_allclose(m.spectrum()[0], theta, rtol=0, atol=0)


def test_rank_deficient_zero_column():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 6)) * [3, 2, 1, 0.5, 0.25, 0.1]
    X[:, 2] = 0.0   # an always-zero pixel
    m = Moments.from_arrays(X)
    theta, P = vae_spectrum(m)
    assert theta.shape == (5,)
    np.testing.assert_allclose(theta, np.sqrt(_naive_nonzero_eigs(X)[:5]), rtol=1e-10)
    np.testing.assert_allclose(P[2], 0.0, atol=1e-12)   # no kept direction touches the zero pixel
    assert np.all(np.diff(theta) <= 0)


def test_spectrum_returns_copies():
    X, _ = _data(13)
    m = Moments.from_arrays(X)
    theta, P = vae_spectrum(m)
    theta[:] = -1.0
    P[:] = 0.0
    theta2, P2 = vae_spectrum(m)
    np.testing.assert_allclose(theta2, np.sqrt(_naive_nonzero_eigs(X)), rtol=1e-10)
    assert np.all(np.abs(P2).sum(0) > 0)


# ----------------------------------------------------------------------------- CVAE residual

def _lstsq_residual(X, Y):
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    r = Y - X @ coef
    return r.T @ r / X.shape[0], coef


@pytest.mark.parametrize("deficient", [False, True])
def test_cvae_residual_matches_least_squares(deficient):
    X, Y = _data(14, n=300, dx=5, dy=3)
    if deficient:
        X = X.copy()
        X[:, 1] = 0.0
    m = Moments.from_arrays(X, Y)
    E, U2, theta, Q = cvae_residual(m)
    E_ref, coef = _lstsq_residual(X, Y)
    assert E.shape == (3, 3) and U2.shape == (3, 5)
    assert np.max(np.abs(E - E_ref)) <= 1e-10 * max(1.0, np.max(np.abs(E_ref)))
    # the minimum-norm regression (lstsq's choice) also when X is rank deficient
    np.testing.assert_allclose(U2, coef.T, atol=1e-10 * max(1.0, np.abs(coef).max()))
    ev = np.sort(np.linalg.eigvalsh(E_ref))[::-1]
    np.testing.assert_allclose(theta, ev, rtol=1e-9)
    np.testing.assert_allclose(E @ Q, Q * theta, atol=1e-10)
    # the method form agrees
    E2, U22, _, _ = m.residual()
    np.testing.assert_allclose(E2, E, rtol=0, atol=0)


def test_cvae_residual_full_rank_u2_is_regression():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(500, 4))
    B = rng.normal(size=(4, 2))
    Y = X @ B + 0.1 * rng.normal(size=(500, 2))
    _, U2, _, _ = cvae_residual(Moments.from_arrays(X, Y))
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    np.testing.assert_allclose(U2, coef.T, rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(U2 - B.T)) < 0.05   # and it does recover the true map


@pytest.mark.parametrize("shape", [(100, 4), (3, 8)])
def test_cvae_x_equals_y_has_no_theta(shape):
    rng = np.random.default_rng(16)
    X = rng.normal(size=shape) * 3 + 1
    E, U2, theta, Q = cvae_residual(Moments.from_arrays(X, X.copy()))
    assert theta.size == 0 and Q.shape == (shape[1], 0)
    assert np.max(np.abs(E)) <= 1e-10 * np.trace(X.T @ X / shape[0])


def test_cvae_residual_needs_y():
    X, _ = _data(17)
    with pytest.raises(ValueError, match="Y"):
        cvae_residual(Moments.from_arrays(X))


# ----------------------------------------------------------------------------- from_matrices

def test_from_matrices_wraps_valid_matrices():
    rng = np.random.default_rng(18)
    G = rng.normal(size=(4, 4))
    xx = G @ G.T
    m = Moments.from_matrices(xx, n=10)
    np.testing.assert_allclose(m.xx, xx, rtol=1e-15)
    assert m.n == 10 and not m.has_y
    theta, _ = vae_spectrum(m)
    np.testing.assert_allclose(theta, np.sqrt(np.sort(np.linalg.eigvalsh(xx))[::-1]), rtol=1e-10)


@pytest.mark.parametrize("case", ["nonsym", "nonsquare", "nan", "inf", "1d", "nonsym_yy", "nan_xy",
                                  "xy_shape", "xy_without_yy"])
def test_from_matrices_rejects(case):
    rng = np.random.default_rng(19)
    G = rng.normal(size=(3, 3))
    xx = G @ G.T
    yy = np.eye(2)
    xy = rng.normal(size=(3, 2))
    args = {"xx": xx}
    match = None
    if case == "nonsym":
        bad = xx.copy()
        bad[0, 1] += 1.0
        args, match = {"xx": bad}, "symmetric"
    elif case == "nonsquare":
        args, match = {"xx": rng.normal(size=(3, 2))}, "square"
    elif case == "nan":
        bad = xx.copy()
        bad[1, 1] = np.nan
        args, match = {"xx": bad}, "NaN"
    elif case == "inf":
        bad = xx.copy()
        bad[0, 0] = np.inf
        args, match = {"xx": bad}, "inf"
    elif case == "1d":
        args, match = {"xx": np.ones(3)}, "square"
    elif case == "nonsym_yy":
        bad = np.array([[1.0, 0.5], [0.0, 1.0]])
        args, match = {"xx": xx, "xy": xy, "yy": bad}, "yy"
    elif case == "nan_xy":
        bad = xy.copy()
        bad[0, 0] = np.nan
        args, match = {"xx": xx, "xy": bad, "yy": yy}, "xy"
    elif case == "xy_shape":
        args, match = {"xx": xx, "xy": xy.T, "yy": yy}, "xy"
    elif case == "xy_without_yy":
        args, match = {"xx": xx, "xy": xy}, "together"
    with pytest.raises(ValueError, match=match):
        Moments.from_matrices(**args)


def test_moments_regressions():
    """center=True on precomputed Moments is refused; identity comparison; rtol changes apply;
    non-integer chunk sizes are refused."""
    import linvae
    from linvae import _config

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) + 5
    m = Moments.from_arrays(X)
    with pytest.raises(ValueError, match="center=True"):
        linvae.fit(m, center=True)
    assert m == m and m != Moments.from_arrays(X)          # compared by identity, never elementwise
    X4 = np.c_[X, 1e-7 * X[:, 0] + 1e-9 * rng.normal(size=50)]
    m4 = Moments.from_arrays(X4)
    assert len(m4.spectrum()[0]) == 3
    old = _config.RANK_RTOL
    try:
        _config.RANK_RTOL = 1e-30
        assert len(m4.spectrum()[0]) == 4
    finally:
        _config.RANK_RTOL = old
    with pytest.raises(TypeError, match="chunk_size"):
        Moments.from_arrays(X, chunk_size=2.7)


@pytest.mark.parametrize("case", ["negative_eig", "negative_diag", "joint_not_psd", "n0", "n_negative", "n_float"])
def test_from_matrices_rejects_non_moments(case):
    """Issue 17: non-PSD matrices and n <= 0 were accepted."""
    xx = np.array([[2.0, 0.5], [0.5, 1.0]])
    args, kw, match = (xx,), {}, None
    if case == "negative_eig":
        args, match = (np.array([[1.0, 2.0], [2.0, 1.0]]),), "positive semi-definite"
    elif case == "negative_diag":
        args, match = (np.diag([1.0, -1e-3]),), "positive semi-definite"
    elif case == "joint_not_psd":
        args, match = (xx, np.array([[3.0], [0.0]]), np.eye(1)), "joint.*positive semi-definite"
    else:
        kw, match = {"n": {"n0": 0, "n_negative": -5, "n_float": 2.5}[case]}, r"\bn\b"
    with pytest.raises((ValueError, TypeError), match=match):
        Moments.from_matrices(*args, **kw)


def test_from_matrices_accepts_graded_psd_matrices():
    """Equilibrated PSD check: diag(1e14, 1) with a round-off-level off-diagonal is a valid moment."""
    xx = np.array([[1e14, 1e6 * (1 - 1e-12)], [1e6 * (1 - 1e-12), 1.0 - 1e-12]])
    m = Moments.from_matrices(xx, n=3)
    assert m.n == 3
