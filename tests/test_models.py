"""The model registry (linvae._models) and the validated specification (linvae._spec)."""
import os
import warnings
import sys

import numpy as np
import pytest

import linvae
from linvae import _models, _spec
from linvae.kernels import contract, cpu, gpu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import naive  # noqa: E402

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 4)) * [2.0, 1.2, 0.6, 0.3]
Y = X[:, :2] @ RNG.normal(size=(2, 3)) + 0.4 * RNG.normal(size=(300, 3))
A = X.T @ X / len(X)


def test_registry_entries_resolve_their_problem_layout_kernels_and_result_types():
    assert len(_models.REGISTRY) == 6
    for key, v in _models.REGISTRY.items():
        assert key == f"{v.model}/{v.mode}"
        assert v.problem.model == v.model and v.family == v.problem.family
        assert v.layout is contract.LAYOUTS[v.family]
        assert v.kernel("numba") is getattr(cpu, f"train_{v.family}")
        assert v.kernel("cupy") is getattr(gpu, f"train_{v.family}")
        assert v.hyper == _models.HYPER[v.model]
        # the model's facts are the same in every mode
        assert (v.conditional, v.two_latents, v.minibatch, v.default_dim) == (
            (f := _models.facts(v.model)).conditional, f.two_latents, f.minibatch, f.default_dim)
    assert [m for m in _models.MODELS if _models.is_conditional(m)] == ["cvae"]
    # the raw-data minibatch solver trains the VAE and the CVAE (SPEC: the paper's scripts), not the MHVAE
    assert {v.model for v in _models.REGISTRY.values() if v.minibatch} == {"vae", "cvae"}


def test_a_trained_fit_runs_the_problem_the_registry_names(monkeypatch):
    seen = []
    for key, data, kw in [("vae/learnable", (X,), {}), ("cvae/learnable", (X[:, 2:], Y), {}),
                          ("mhvae/sigma2-learnable", (X,), dict(model="mhvae"))]:
        cls = _models.REGISTRY[key].problem
        original = cls.__init__
        monkeypatch.setattr(cls, "__init__", lambda self, *a, _o=original, **k: seen.append(type(self)) or _o(self, *a, **k))
        with pytest.warns(linvae.ConvergenceWarning):          # 5 steps: stopped, as meant
            linvae.fit(*data, solver="adam", max_iter=5, **kw)
        assert seen[-1] is cls, (key, seen)


CASES = [
    ((X,), dict(), "vae/learnable", "Thm 4"),
    ((X,), dict(sigma=[0.3, 1.0, 0.6, 2.0]), "vae/fixed", "Thm 1"),
    ((X[:, 2:], Y), dict(), "cvae/learnable", "Thm 2"),
    ((X,), dict(model="mhvae", latent_dims=(3, 2)), "mhvae/sigma2-learnable", "Thm 3"),
    ((X,), dict(model="mhvae", sigma2=0.7), "mhvae/fixed", "Thm 5"),
]


@pytest.mark.parametrize("data,kw,key,theorem", CASES, ids=[c[2] for c in CASES])
def test_fit_dispatches_to_the_registry_entry_of_its_variance_mode(data, kw, key, theorem):
    spec = _spec.build(*data, entry="fit", **kw)
    assert spec.variant is _models.REGISTRY[key]
    res = linvae.fit(*data, **kw)
    assert type(res) is spec.variant.result_type
    assert res.theorem == theorem == spec.variant.theorem


def test_mhvae_with_learnable_sigma1_trains_only():
    spec = _spec.build(X, entry="fit", model="mhvae", sigma1="learnable", solver="adam")
    assert spec.variant is _models.REGISTRY["mhvae/sigma1-learnable"] and not spec.variant.has_closed_form
    with pytest.raises(ValueError, match="sigma1"):
        _spec.build(X, entry="fit", model="mhvae", sigma1="learnable")


def test_spec_is_frozen():
    spec = _spec.build(X, entry="fit")
    with pytest.raises(Exception):
        spec.solver = "adam"


def _loss(model, r, cfg, sigma1=None):
    """Loss of result ``r``'s matrices at configuration ``cfg``, from the dense reference."""
    ee, ed = cfg["eta_enc"], cfg["eta_dec"]
    if model == "vae":
        return naive.vae_loss_moments(A, r.W, r.U, r.sigma, cfg["beta"], ee, ed)
    if model == "cvae":
        Xc, Yc = X[:, 2:], Y
        n = len(Xc)
        return naive.cvae_loss_moments(Xc.T @ Xc / n, Xc.T @ Yc / n, Yc.T @ Yc / n, r.W1, r.W2, r.U1, r.U2, r.sigma,
                                       cfg["beta"], ee, ed)
    return naive.mhvae_loss_moments(A, r.W1, r.W2, r.U1, r.U2, r.sigma1, r.sigma2, cfg["beta1"], cfg["beta2"], ee, ed)


SWEEPS = [
    ("vae", (X,), dict(beta=[0.2, 1.0, 4.0], eta_dec=[0.5, 1.0])),
    ("vae", (X,), dict(beta=[0.2, 1.0, 4.0], eta_enc=[0.7, 1.5], sigma=[0.3, 1.0, 0.6, 2.0])),
    ("cvae", (X[:, 2:], Y), dict(beta=[0.1, 1.0, 3.0], eta_dec=[0.6, 1.0])),
    ("mhvae", (X,), dict(model="mhvae", beta1=[0.5, 2.0], beta2=[0.3, 1.0], latent_dims=(3, 2))),
    ("mhvae", (X,), dict(model="mhvae", beta1=[0.5, 2.0], beta2=[0.3, 1.0], sigma2=0.8)),
]


@pytest.mark.parametrize("model,data,kw", SWEEPS, ids=["vae4", "vae1", "cvae2", "mhvae3", "mhvae5"])
def test_closed_form_sweep_row_is_the_minimizer_of_its_own_configuration(model, data, kw):
    """The vectorised grid path assembles every row from its own hyperparameters: each row's loss
    is the dense reference loss at its configuration, and no other row's matrices do better there."""
    res = linvae.sweep(*data, **kw)
    cols = res.columns
    n = len(res)
    assert n == np.prod([len(v) for k, v in kw.items() if k.startswith(("beta", "eta"))])
    for i, r in enumerate(res):
        cfg = {k: float(v[i]) for k, v in cols.items()}
        for k, v in cfg.items():
            assert getattr(r, k) == v
        own = _loss(model, r, cfg)
        assert np.isclose(r.loss, own, rtol=1e-9, atol=1e-12)
        for j in range(n):
            if j != i:
                assert _loss(model, res[j], cfg) >= own - 1e-9 * max(1.0, abs(own))


def test_predict_collapse_and_closed_form_sweep_agree_row_by_row():
    kw = dict(beta=[0.1, 0.5, 2.0, 8.0], eta_dec=[0.5, 1.0], eta_enc=[0.8, 1.3])
    table = linvae.predict_collapse(X, **kw)
    swept = linvae.sweep(X, **kw).table()
    for name in ("beta", "eta_enc", "eta_dec", "n_collapsed"):
        np.testing.assert_array_equal(table[name], swept[name])
    np.testing.assert_allclose(table.kl_per_dim, swept.kl_per_dim, rtol=1e-12, atol=1e-15)


_LABEL_CASES = [((X,), dict(), "vae/learnable"), ((X,), dict(sigma=[0.3, 1.0, 0.6, 2.0]), "vae/fixed"),
                ((X[:, 2:], Y), dict(), "cvae/learnable"),
                ((X,), dict(model="mhvae", latent_dims=(3, 2)), "mhvae/sigma2-learnable"),
                ((X,), dict(model="mhvae", sigma2=0.7), "mhvae/fixed"),
                ((X,), dict(model="mhvae", sigma1="learnable"), "mhvae/sigma1-learnable")]


@pytest.mark.parametrize("data,kw,key,solver", [
    case + (solver,) for case in _LABEL_CASES for solver in ("adam", "minibatch")
    if solver == "adam" or _models.REGISTRY[case[2]].minibatch], ids=lambda v: v if isinstance(v, str) else "")
def test_a_trained_fit_is_labelled_with_its_registry_entrys_theorem(data, kw, key, solver):
    variant = _models.REGISTRY[key]
    extra = dict(epochs=2) if solver == "minibatch" else dict(max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.ConvergenceWarning)
        res = linvae.fit(*data, solver=solver, **extra, **kw)
    assert res.theorem == f"trained ({variant.theorem or 'no closed form'})"
