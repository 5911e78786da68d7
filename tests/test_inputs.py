"""Validation audit: every input class against every public entry point (issue: reliability).

Rejected classes must raise the documented exception naming the argument; legitimate ones must
give the same answer as the equivalent float64 C-contiguous array, without NaN.
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linvae
from linvae import metrics

RNG = np.random.default_rng(0)
BASE = RNG.normal(size=(120, 4)) * [3.0, 2.0, 1.0, 0.5]
YB = BASE[:, :2] @ RNG.normal(size=(2, 3)) + RNG.normal(size=(120, 3))


def _readonly(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


ENTRY = {
    "fit_vae": lambda X: linvae.fit(X, beta=1.0),
    "fit_vae_fixed": lambda X: linvae.fit(X, beta=1.0, sigma=0.7),
    "fit_cvae_X": lambda X: linvae.fit(X, YB, beta=1.0),
    "fit_cvae_Y": lambda Y: linvae.fit(BASE, Y, beta=1.0),
    "fit_mhvae": lambda X: linvae.fit(X, model="mhvae", beta1=1.0, beta2=1.0, sigma1=0.5),
    "predict": lambda X: linvae.predict_collapse(X, beta=[0.5, 1.0, 2.0]),
    "sweep": lambda X: linvae.sweep(X, beta=[0.5, 2.0], solver="closed_form"),
    "estimator": lambda X: linvae.LinearVAE(latent_dim=2).fit(X).transform(X),
    "moments": lambda X: linvae.Moments.from_arrays(X),
    "kl_per_dim": lambda X: metrics.kl_per_dim(X, std=np.full(np.shape(X), 0.5)),
    "active_units": lambda X: metrics.active_units_variance(X),
}
ARG = {"fit_cvae_Y": "Y", "kl_per_dim": "mu", "active_units": "mu"}

REJECT = {   # input class -> (make, exception, pattern that must appear after the argument name)
    "nan": (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 5, np.nan, a), ValueError, r"NaN"),
    "inf": (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, -np.inf, a), ValueError, r"inf"),
    "empty_rows": (lambda a: a[:0], ValueError, r"empty|0 samples"),
    "empty_cols": (lambda a: a[:, :0], ValueError, r"empty"),
    "complex": (lambda a: a + 1j, TypeError, r"complex"),
    "object": (lambda a: a.astype(object), TypeError, r"object|numeric"),
    "string": (lambda a: a.astype(str), TypeError, r"dtype|numeric"),
    "1d": (lambda a: a[:, 0], ValueError, r"2-D"),
    "3d": (lambda a: a[None], ValueError, r"2-D"),
}


@pytest.mark.parametrize("cls", list(REJECT))
@pytest.mark.parametrize("entry", list(ENTRY))
def test_rejected_input_classes_name_the_argument(entry, cls):
    make, exc, pattern = REJECT[cls]
    data = YB if ARG.get(entry) == "Y" else BASE
    if entry == "estimator" and cls in ("complex", "object"):
        # the estimators follow scikit-learn's convention (check_estimator): object arrays of
        # numbers are converted, complex data raise ValueError("Complex data not supported")
        if cls == "object":
            np.testing.assert_allclose(ENTRY[entry](make(data)), ENTRY[entry](data))
            return
        exc, pattern = ValueError, r"Complex data not supported"
    with pytest.raises(exc) as info:
        ENTRY[entry](make(data))
    msg = str(info.value)
    name = ARG.get(entry, "X")
    assert re.search(rf"\b{name}\b", msg), msg
    assert re.search(pattern, msg, re.I), msg


def test_mismatched_lengths_name_both_arrays():
    with pytest.raises(ValueError, match=r"X.*120.*Y.*119"):
        linvae.fit(BASE, YB[:119])
    with pytest.raises(ValueError, match=r"same number of samples"):
        linvae.predict_collapse(BASE[:50], YB)


EQUIVALENT = {   # legitimate input class -> (make, the float64 array it must behave like)
    "int": (lambda a: np.round(a * 10).astype(np.int32), lambda a: np.round(a * 10)),
    "uint8": (lambda a: np.clip(np.round(a * 10 + 40), 0, 255).astype(np.uint8),
              lambda a: np.clip(np.round(a * 10 + 40), 0, 255)),
    "bool": (lambda a: a > 0, lambda a: (a > 0).astype(float)),
    "float32": (lambda a: a.astype(np.float32), lambda a: a.astype(np.float32).astype(float)),
    "strided": (lambda a: np.repeat(a, 2, axis=1)[:, ::2], lambda a: a),
    "fortran": (np.asfortranarray, lambda a: a),
    "readonly": (_readonly, lambda a: a),
    "list": (lambda a: a.tolist(), lambda a: a),
}


def _assert_same(a, b):
    if isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    elif isinstance(a, linvae.Moments):
        np.testing.assert_allclose(a.xx, b.xx, rtol=1e-12)
    elif hasattr(a, "to_dict"):
        da, db = a.to_dict(json_safe=False), b.to_dict(json_safe=False)
        for k, v in da.items():
            if isinstance(v, np.ndarray) and v.dtype.kind in "fb":
                assert not np.any(np.isnan(v)), k
                np.testing.assert_allclose(v, db[k], rtol=1e-10, atol=1e-10, err_msg=k)
    elif isinstance(a, (int, np.integer)):
        assert a == b
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12)
    else:
        for ra, rb in zip(a, b):
            _assert_same(ra, rb)


@pytest.mark.parametrize("cls", list(EQUIVALENT))
@pytest.mark.parametrize("entry", list(ENTRY))
def test_legitimate_input_classes_match_float64(entry, cls):
    make, ref = EQUIVALENT[cls]
    data = YB if ARG.get(entry) == "Y" else BASE
    raw = make(data)
    before = np.array(raw, copy=True)
    _assert_same(ENTRY[entry](raw), ENTRY[entry](np.ascontiguousarray(ref(data), dtype=np.float64)))
    np.testing.assert_array_equal(np.asarray(raw), before)          # the caller's array is untouched


@pytest.mark.parametrize("case", ["N=1", "d=1", "constant_column", "zero_data", "N<d", "latent>rank"])
def test_degenerate_but_legitimate_data_is_handled(case):
    X = {"N=1": BASE[:1], "d=1": BASE[:, :1], "constant_column": np.c_[BASE[:, :3], np.full(120, 2.5)],
         "zero_data": np.zeros((10, 3)), "N<d": RNG.normal(size=(3, 8)), "latent>rank": BASE[:, :2] @ np.ones((2, 5))}[case]
    kw = {"latent_dim": 6} if case == "latent>rank" else {}
    res = linvae.fit(X, beta=1.0, **kw)
    for k, v in res.to_dict(json_safe=False).items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            assert np.all(np.isfinite(v)), k
    rank = np.linalg.matrix_rank(X)
    assert res.n_active <= rank                                    # never more active dims than data directions
    table = linvae.predict_collapse(X, beta=[1.0], **kw)
    assert int(table["n_collapsed"][0]) == res.n_collapsed


@pytest.mark.parametrize("scale", [1e-150, 1e-6, 1e6, 1e150])
@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_extreme_scales_are_equivariant_closed_form_and_trained(scale, model):
    """x → s·x with η_dec → s·η_dec leaves σ, the KL per dim and the collapse pattern unchanged."""
    Y0 = None if model == "vae" else YB
    Ys = None if model == "vae" else YB * scale
    ref = linvae.fit(BASE, Y0, beta=1.0, eta_dec=0.8)
    got = linvae.fit(BASE * scale, None if Ys is None else Ys, beta=1.0, eta_dec=0.8 * scale)
    np.testing.assert_array_equal(got.collapsed, ref.collapsed)
    np.testing.assert_allclose(got.kl_per_dim, ref.kl_per_dim, atol=1e-9)
    np.testing.assert_allclose(got.sigma, ref.sigma, rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.ConvergenceWarning)
        trained = linvae.fit(BASE * scale, Ys, beta=1.0, eta_dec=0.8 * scale, solver="adam", max_iter=20000)
    np.testing.assert_allclose(np.sort(trained.kl_per_dim), np.sort(ref.kl_per_dim), atol=1e-4)
    assert trained.n_collapsed == ref.n_collapsed


def _conditioned(cond, d=5, n=400, seed=0):
    """Data whose E[xxᵀ] has exactly known eigenvalues spread over ``cond``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, d)))
    R, _ = np.linalg.qr(rng.normal(size=(d, d)))
    phi = np.logspace(0, -np.log10(cond), d)                     # eigenvalues of E[xxᵀ]
    X = np.sqrt(n) * Q * np.sqrt(phi) @ R
    return X, np.sqrt(phi)


@pytest.mark.parametrize("cond", [1e2, 1e6, 1e9])
def test_ill_conditioned_moments_keep_every_mode_accurately(cond):
    """Condition numbers of E[xxᵀ] below 1/RANK_RTOL = 1e10: every θ to 1e-6, exact collapse counts."""
    X, theta = _conditioned(cond)
    for eta in (1.0, 1e-2, 1e-6):
        beta = 2.0
        res = linvae.fit(X, beta=beta, eta_dec=eta)
        np.testing.assert_allclose(res.data_theta, theta, rtol=1e-6)
        exact = theta > np.sqrt(beta) * eta                          # SPEC Thm 4: collapse iff θ < √β η_dec
        assert res.n_active == int(exact.sum())


def test_condition_number_beyond_rtol_warns_only_when_the_dropped_mode_matters():
    X, theta = _conditioned(1e12)                    # the last mode has φ = 1e-12·max: below RANK_RTOL
    with warnings.catch_warnings():
        warnings.simplefilter("error", linvae.IllConditionedWarning)
        res = linvae.fit(X, beta=1.0, eta_dec=1e-3)           # θ = 1e-6 < √β η_dec: collapsed anyway, exact
    assert res.n_active == int(np.sum(theta > 1e-3))
    with pytest.warns(linvae.IllConditionedWarning, match="would be active"):
        linvae.fit(X, beta=1.0, eta_dec=1e-7)                 # √β η_dec = 1e-7 < θ = 1e-6: it matters
    with pytest.warns(linvae.IllConditionedWarning):
        linvae.predict_collapse(X, beta=[1.0], eta_dec=[1.0, 1e-7])
    kept = linvae.fit(X, beta=1.0, eta_dec=1e-7, rtol=1e-14)     # the documented remedy
    assert kept.n_active == int(np.sum(theta > 1e-7)) == 5


# ----------------------------------------------------------------------------- property-based fuzzing

_arrays = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.integers(min_value=1, max_value=5).flatmap(
        lambda d: st.tuples(st.just(n), st.just(d), st.integers(0, 2**31 - 1), st.floats(-3, 3))))
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _data(n, d, seed, log_scale):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * 10.0 ** log_scale * rng.uniform(0.05, 3, size=d)


@pytest.mark.slow
@FUZZ
@given(_arrays, st.floats(0.05, 20), st.floats(0.05, 5))
def test_fuzz_fit_predict_sweep_are_finite_and_consistent(params, beta, eta):
    n, d, seed, log_scale = params
    X = _data(n, d, seed, log_scale)
    eta_dec = eta * 10.0 ** log_scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.IllConditionedWarning)
        res = linvae.fit(X, beta=beta, eta_dec=eta_dec)
        table = linvae.predict_collapse(X, beta=[beta], eta_dec=[eta_dec])
        sw = linvae.sweep(X, beta=[beta], eta_dec=[eta_dec], solver="closed_form")
    assert np.isfinite(res.loss) and np.all(np.isfinite(res.kl_per_dim)) and np.all(res.kl_per_dim >= -1e-12)
    assert int(table["n_collapsed"][0]) == res.n_collapsed == sw[0].n_collapsed
    perm = np.random.default_rng(seed).permutation(n)                   # sample order is irrelevant
    Q, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(d, d)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.IllConditionedWarning)
        for other in (linvae.fit(X[perm], beta=beta, eta_dec=eta_dec),
                      linvae.fit(X @ Q, beta=beta, eta_dec=eta_dec)):    # nor is a rotation of the data
            assert other.n_collapsed == res.n_collapsed
            np.testing.assert_allclose(np.sort(other.kl_per_dim), np.sort(res.kl_per_dim), rtol=1e-6, atol=1e-8)
            assert other.loss == pytest.approx(res.loss, rel=1e-8, abs=1e-8)


@FUZZ
@given(_arrays, st.integers(1, 4))
def test_fuzz_moments_chunks_and_merges_equal_in_memory(params, pieces):
    n, d, seed, log_scale = params
    X = _data(n, d, seed, log_scale)
    ref = linvae.Moments.from_arrays(X)
    chunks = np.array_split(X, min(pieces, n))
    got = linvae.Moments.from_chunks(c for c in chunks if len(c))
    np.testing.assert_allclose(got.xx, ref.xx, rtol=1e-10, atol=1e-12 * np.abs(ref.xx).max())
    assert got.n == n


@FUZZ
@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 2**31 - 1), st.floats(-6, 6))
def test_fuzz_metrics_are_finite_and_nonnegative(n, k, seed, log_scale):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n, k)) * 10.0 ** log_scale
    std = np.exp(rng.normal(size=(n, k)) * 3)
    kl = metrics.kl_per_dim(mu, std=std)
    assert kl.shape == (n, k) and np.all(np.isfinite(kl)) and np.all(kl >= 0)
    mask = metrics.epsilon_delta_collapse(kl, 1e-2, 0.05)
    assert mask.shape == (k,) and mask.dtype == bool
    curve = metrics.collapse_curve(kl, np.logspace(-4, 1, 6), 0.05)
    assert np.all(np.diff(curve) >= 0)                           # larger ε never collapses fewer dims
    assert 0 <= metrics.active_units_kl(kl) <= 1


def test_cvae_warns_when_a_dropped_condition_direction_explains_y():
    X, _ = _conditioned(1e12)                            # the last x-mode has φ = 1e-12·max
    rng = np.random.default_rng(3)
    direction = np.linalg.svd(X, full_matrices=False)[2][-1]          # the weakest direction of x
    Y = np.outer(X @ direction, [1e7, -1e7]) + 0.01 * rng.normal(size=(len(X), 2))   # y ≈ 10·(that mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", linvae.IllConditionedWarning)
        linvae.fit(X, rng.normal(size=(len(X), 2)), beta=1.0)             # y unrelated to x: silent
    with pytest.warns(linvae.IllConditionedWarning, match="regression of y on x"):
        dropped = linvae.fit(X, Y, beta=1.0)
    kept = linvae.fit(X, Y, beta=1.0, rtol=1e-14)                       # the remedy: x explains y fully
    assert kept.n_active == 0 < dropped.n_active


def test_mhvae_warns_when_a_dropped_mode_would_carry_z1():
    X, theta = _conditioned(1e12)                    # θ of the dropped mode: 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("error", linvae.IllConditionedWarning)
        res = linvae.fit(X, model="mhvae", beta1=1.0, beta2=1.0, sigma1=0.5)      # θ ≪ √β₁σ₁: unused anyway
    assert res.n_collapsed >= 1
    with pytest.warns(linvae.IllConditionedWarning, match="would be active"):
        linvae.fit(X, model="mhvae", beta1=1.0, beta2=1e-14, sigma1=1e-7, eta_dec=1e-7)
    with pytest.warns(linvae.IllConditionedWarning):
        linvae.predict_collapse(X, model="mhvae", beta1=[1.0], beta2=[1e-14], sigma1=[1e-7], eta_dec=[1e-7])


# ----------------------------------------------------------------------------- numerical inputs (issue 17)
# badly scaled data: the spectra must be right or warned about; the reference θ are exact by
# construction (orthogonal columns: θ are the column RMS values), never computed by linvae.

def _orthogonal_columns(rms, n=400, seed=0):
    """Data whose columns are exactly orthogonal with the given RMS: θ = sorted(rms), exactly."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, len(rms))))
    return np.sqrt(n) * Q * np.asarray(rms, dtype=float)


def test_issue_reproducer_column_scaled_by_1e7_is_warned_and_remedied():
    """Issue 17 class 1: x[:, 0] *= 1e7 gave 5 collapsed (truth 3) and no warning."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6)) * [3, 2, 1, .6, .3, .1]
    X[:, 0] *= 1e7
    truth = int(np.sum(np.linalg.svd(X / np.sqrt(500), compute_uv=False) <= 1.0))   # raw-data SVD, Thm 4
    assert truth == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = linvae.fit(X)
    warned = any(issubclass(w.category, linvae.IllConditionedWarning) for w in caught)
    assert res.n_collapsed == truth or warned
    with warnings.catch_warnings():
        warnings.simplefilter("error", linvae.IllConditionedWarning)
        assert linvae.fit(X, rtol=1e-30).n_collapsed == truth                       # the remedy it names


@pytest.mark.parametrize("spread", [1e3, 1e7, 1e12])
@pytest.mark.parametrize("overall", [1e-140, 1.0, 1e137])
def test_graded_columns_theta_relative_accuracy(spread, overall):
    """Columns differing in scale by up to 1e12, values from 1e-140 to 1e149: every θ to 1e-10 relative."""
    rms = overall * np.array([spread, 2.0, 1.0, 0.6, 0.3, 0.1])
    X = _orthogonal_columns(rms)
    exact = np.sort(rms)[::-1]
    eta = overall * np.sqrt(0.6 * 1.0)                   # threshold between θ = 1 and 0.6 (in units of overall)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = linvae.fit(X, eta_dec=eta)
    warned = any(issubclass(w.category, linvae.IllConditionedWarning) for w in caught)
    assert res.n_collapsed == 3 or warned                # right, or warned about
    kept = linvae.fit(X, eta_dec=eta, rtol=1e-30)
    np.testing.assert_allclose(kept.data_theta, exact, rtol=1e-10)
    assert kept.n_collapsed == 3
    table = linvae.predict_collapse(X, eta_dec=[eta], rtol=1e-30)
    assert int(table["n_collapsed"][0]) == 3


@pytest.mark.parametrize("scale", [1e-12, 1e-7, 1e7, 1e12])
@pytest.mark.parametrize("column", [0, 3])
def test_cvae_count_invariant_to_rescaling_x(scale, column):
    """Thm 2's E is invariant to invertible rescaling of x: so must be θ and the collapse count."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 6)) * [3, 2, 1, .6, .3, .1]
    Y = X[:, :3] @ np.ones((3, 4)) + rng.normal(size=(500, 4)) * [1.2, 1.0, 0.8, 0.5]
    ref = linvae.fit(X, Y, beta=1.0, eta_dec=0.95)
    Xs = X.copy()
    Xs[:, column] *= scale
    with warnings.catch_warnings():
        warnings.simplefilter("error", linvae.IllConditionedWarning)
        got = linvae.fit(Xs, Y, beta=1.0, eta_dec=0.95)
    E_ref = _lstsq_residual_moment(X, Y)
    np.testing.assert_allclose(ref.data_theta, np.sort(np.linalg.eigvalsh(E_ref))[::-1], rtol=1e-9)
    np.testing.assert_allclose(got.data_theta, ref.data_theta, rtol=1e-9)
    assert got.n_collapsed == ref.n_collapsed
    assert 0 < ref.n_collapsed < 4                                         # the threshold splits the spectrum
    np.testing.assert_allclose(got.U2[:, column] * scale, ref.U2[:, column], rtol=1e-8)


def _lstsq_residual_moment(X, Y):
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    r = Y - X @ coef
    return r.T @ r / len(X)


OUT_OF_RANGE = {   # data class -> (make, message pattern)
    "all_1e160": (lambda a: a * 1e160, r"too large"),
    "one_entry_1e160": (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, 1e160, a), r"too large"),
    "all_1e-200": (lambda a: a * 1e-200, r"too small"),
    "column_1e-160": (lambda a: a * np.r_[np.ones(a.shape[1] - 1), 1e-160], r"too small"),
}


@pytest.mark.parametrize("cls", list(OUT_OF_RANGE))
@pytest.mark.parametrize("entry", ["fit_vae", "fit_cvae_X", "fit_cvae_Y", "predict", "moments", "fit_mhvae"])
def test_over_and_underflow_raise_naming_the_data_scale(entry, cls):
    make, pattern = OUT_OF_RANGE[cls]
    data = YB if ARG.get(entry) == "Y" else BASE
    with pytest.raises(ValueError, match=pattern) as info:
        ENTRY[entry](make(data))
    msg = str(info.value)
    assert re.search(rf"\b{ARG.get(entry, 'X')}\b", msg) and re.search(r"\d+e[+-]\d+", msg), msg


def test_moments_from_chunks_check_the_range_after_accumulation():
    chunks = [BASE, BASE * 1e155, BASE]                    # each chunk finite, the sum of squares is not
    with pytest.raises(ValueError, match=r"X is too large"):
        linvae.Moments.from_chunks(chunks)


@pytest.mark.parametrize("bad, exc", [(np.nan, ValueError), (-1.0, ValueError), (1.0, ValueError), (np.inf, ValueError),
                                      ("1e-10", TypeError), ([1e-10], TypeError)])
@pytest.mark.parametrize("entry", ["fit", "fit_cvae", "predict", "sweep", "spectrum", "fit_adam"])
def test_rtol_is_validated(entry, bad, exc):
    call = {"fit": lambda r: linvae.fit(BASE, rtol=r), "fit_cvae": lambda r: linvae.fit(BASE, YB, rtol=r),
            "predict": lambda r: linvae.predict_collapse(BASE, rtol=r),
            "sweep": lambda r: linvae.sweep(BASE, solver="closed_form", rtol=r),
            "spectrum": lambda r: linvae.Moments.from_arrays(BASE).spectrum(r),
            "fit_adam": lambda r: linvae.fit(BASE, solver="adam", max_iter=5, rtol=r)}[entry]
    with pytest.raises(exc, match=r"rtol"):
        call(bad)


def test_masked_arrays_are_refused_unless_nothing_is_masked():
    data = np.ma.masked_array(BASE.copy(), mask=np.zeros(BASE.shape, bool))
    data[4, 1] = 1e6
    data[4, 1] = np.ma.masked                           # a masked 1e6 must not be fitted as data
    for call in (lambda: linvae.fit(data), lambda: linvae.fit(BASE, np.ma.masked_array(YB, mask=YB > 2.5)),
                 lambda: linvae.predict_collapse(data), lambda: linvae.Moments.from_arrays(data)):
        with pytest.raises(ValueError, match=r"\b[XY]\b.*masked"):
            call()
    clean = np.ma.masked_array(BASE, mask=np.zeros(BASE.shape, bool))
    _assert_same(linvae.fit(clean), linvae.fit(BASE))


@pytest.mark.parametrize("kw, name", [({"eta_enc": 1e-300}, "eta_enc"), ({"eta_dec": 1e-300}, "eta_dec"),
                                      ({"eta_enc": 1e300}, "eta_enc"), ({"eta_dec": 1e160}, "eta_dec"),
                                      ({"eta_dec": 1e150, "eta_enc": 1e-150}, "eta_dec/eta_enc")])
@pytest.mark.parametrize("entry", ["fit", "fit_cvae", "predict", "sweep"])
def test_eta_whose_square_is_not_representable_is_refused(entry, kw, name):
    call = {"fit": lambda: linvae.fit(BASE, **kw), "fit_cvae": lambda: linvae.fit(BASE, YB, **kw),
            "predict": lambda: linvae.predict_collapse(BASE, **kw),
            "sweep": lambda: linvae.sweep(BASE, solver="closed_form", **kw)}[entry]
    with pytest.raises(ValueError, match=re.escape(name)):
        call()


def test_seed_and_backend_are_validated_for_every_solver():
    with pytest.raises(TypeError, match=r"seed.*single.*sweep"):
        linvae.fit(BASE, solver="adam", seed=[1, 2])          # trained 2 configurations and returned 1
    for solver in ("closed_form", "adam"):
        with pytest.raises(ValueError, match=r"seed.*2\*\*63"):
            linvae.fit(BASE, solver=solver, seed=2**63)
        with pytest.raises(ValueError, match=r"seed"):
            linvae.fit(BASE, solver=solver, seed=-1)
        with pytest.raises(TypeError, match=r"seed"):
            linvae.fit(BASE, solver=solver, seed=1.5)
        with pytest.raises(ValueError, match=r"backend"):
            linvae.fit(BASE, solver=solver, backend="tpu")
    with pytest.raises(ValueError, match=r"seed"):
        linvae.sweep(BASE, solver="closed_form", seed=[0, 2**63])
    big = 2**62 + 1                                             # above 2**53: must not be rounded through float
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.ConvergenceWarning)
        a = linvae.sweep(BASE, solver="adam", seed=[big], max_iter=3)[0]
        b = linvae.fit(BASE, solver="adam", seed=big, max_iter=3)
        c = linvae.fit(BASE, solver="adam", seed=big - 1, max_iter=3)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(b.W, c.W)


_graded = st.tuples(st.integers(2, 6), st.integers(0, 2**31 - 1), st.floats(-140, 137))


@pytest.mark.slow
@FUZZ
@given(_graded, st.lists(st.floats(-6, 6), min_size=6, max_size=6))
def test_fuzz_graded_data_spectra_are_accurate(params, log_scales):
    """Random column scales spread up to 1e12 on data from 1e-140 to 1e143: θ to 1e-10, exact counts."""
    d, seed, log_overall = params
    rms = 10.0 ** (log_overall + np.array(log_scales[:d]))
    X = _orthogonal_columns(rms, n=50, seed=seed)
    exact = np.sort(rms)[::-1]
    gaps = np.log(exact[:-1] / exact[1:])                              # a threshold inside the widest gap
    i = int(np.argmax(gaps)) if d > 1 and gaps.max() > 0.1 else None
    eta = exact[-1] / 2 if i is None else np.sqrt(exact[i] * exact[i + 1])
    res = linvae.fit(X, eta_dec=eta, rtol=1e-30)
    np.testing.assert_allclose(res.data_theta, exact, rtol=1e-10)
    assert res.n_active == int(np.sum(exact > eta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = linvae.fit(X, eta_dec=eta)
    warned = any(issubclass(w.category, linvae.IllConditionedWarning) for w in caught)
    assert default.n_active == int(np.sum(exact > eta)) or warned


@pytest.mark.slow
@FUZZ
@given(st.integers(0, 2**31 - 1), st.lists(st.floats(-6, 6), min_size=4, max_size=4))
def test_fuzz_cvae_invariant_to_column_rescaling_of_x(seed, log_scales):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 4)) * rng.uniform(0.2, 3, size=4)
    Y = X[:, :2] @ rng.normal(size=(2, 3)) + rng.normal(size=(80, 3)) * rng.uniform(0.2, 2, size=3)
    ref = linvae.fit(X, Y, beta=1.0, eta_dec=0.7)
    got = linvae.fit(X * 10.0 ** np.array(log_scales), Y, beta=1.0, eta_dec=0.7)
    np.testing.assert_allclose(got.data_theta, ref.data_theta, rtol=1e-8, atol=1e-12 * ref.data_theta.max())
    if np.all(np.abs(ref.data_theta - 0.49) > 1e-6):         # no θ on the threshold βη_dec²
        assert got.n_collapsed == ref.n_collapsed


def test_cvae_training_on_graded_x_reaches_the_closed_form():
    """The trained CVAE whitens x on the same (equilibrated) range as the closed form."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 6)) * [3, 2, 1, .6, .3, .1]
    Y = X[:, :3] @ np.ones((3, 4)) + rng.normal(size=(500, 4)) * [1.2, 1.0, 0.8, 0.5]
    X[:, 0] *= 1e7
    ref = linvae.fit(X, Y, eta_dec=0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.ConvergenceWarning)
        trained = linvae.fit(X, Y, eta_dec=0.95, solver="adam", max_iter=20000)
    assert trained.loss == pytest.approx(ref.loss, rel=1e-9)
    assert trained.n_collapsed == ref.n_collapsed == 2
