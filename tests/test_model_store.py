"""The store of trained models: one training per identity, across experiments; SHA-256, weights_only,
refusal of a record or file that does not match."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linvae import experiments  # noqa: E402
from linvae.experiments._nonlinear_common import budget, train_grid, work_directory  # noqa: E402
from linvae.nn import TwoBranchCVAE  # noqa: E402
from linvae.nn.store import ModelStore, identity_key, training_identity  # noqa: E402
from linvae.nn.trainer import data_fingerprint  # noqa: E402


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 196)).astype(np.float32), rng.random((n, 588)).astype(np.float32)


def _identity(model, x, y, seed=0, epochs=1):
    return training_identity(model, seed=seed, lr=1e-3, epochs=epochs, batch_size=16, clip=0.01,
                             data=[data_fingerprint(x), data_fingerprint(y)])


def test_identity_is_what_determines_a_training():
    x, y = _data()
    base = _identity(TwoBranchCVAE(hidden=4), x, y)
    # the same network built with a default spelled out is the same training
    assert identity_key(_identity(TwoBranchCVAE(hidden=4, beta=1.0, eta_dec=1.0), x, y)) == identity_key(base)
    others = [_identity(TwoBranchCVAE(hidden=4, beta=2.0), x, y), _identity(TwoBranchCVAE(hidden=5), x, y),
              _identity(TwoBranchCVAE(hidden=4), x, y, seed=1), _identity(TwoBranchCVAE(hidden=4), x, y, epochs=2),
              _identity(TwoBranchCVAE(hidden=4), x, y[::-1].copy())]
    keys = {identity_key(i) for i in others}
    assert len(keys) == len(others) and identity_key(base) not in keys


def test_store_round_trip_and_refusals(tmp_path):
    x, y = _data()
    store = ModelStore(tmp_path)
    trained = TwoBranchCVAE(hidden=4)
    ident = _identity(trained, x, y)
    fresh = TwoBranchCVAE(hidden=4)
    assert not store.load(fresh, ident)
    store.save(trained, ident, train_seconds=1.5)
    assert store.load(fresh, ident)
    for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert store.record(ident)["train_seconds"] == 1.5
    key = identity_key(ident)
    weights, record = tmp_path / f"{key}.pt", tmp_path / f"{key}.json"
    # a changed weights file is refused by its SHA-256
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        store.load(fresh, ident)
    # a record of another training under this key is refused
    stored = json.loads(record.read_text())
    stored["identity"] = dict(stored["identity"], seed=7)
    record.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="another training"):
        store.load(fresh, ident)


def test_a_crafted_weights_file_runs_no_code(tmp_path):
    import hashlib
    import pickle

    x, y = _data()
    store = ModelStore(tmp_path)
    model = TwoBranchCVAE(hidden=4)
    ident = _identity(model, x, y)
    store.save(model, ident)
    key = identity_key(ident)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Evil())
    (tmp_path / f"{key}.pt").write_bytes(payload)
    record = json.loads((tmp_path / f"{key}.json").read_text())
    record["sha256"] = hashlib.sha256(payload).hexdigest()           # even with a matching hash
    (tmp_path / f"{key}.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="weights_only"):
        store.load(TwoBranchCVAE(hidden=4), ident)
    assert not marker.exists()


def test_a_model_another_experiment_trained_is_loaded_not_trained(tmp_path, float64):
    x, y = _data()
    plan = budget("tiny", len(x), 16, tiny_steps=6)
    settings = {"lr": 1e-3, "clip": 0.01}
    make = lambda **c: TwoBranchCVAE(hidden=4, **c)  # noqa: E731
    store = tmp_path / "store"
    with work_directory(tmp_path / "a", store) as first:
        a = train_grid(make, {"β=1": {}, "β=2": dict(beta=2.0)}, [0, 1], (x, y), plan, settings)
    # another experiment: other names, one configuration shared (β = 1 spelled as η_dec = 1), one new
    with work_directory(tmp_path / "b", store) as second:
        b = train_grid(make, {"η_dec=1": dict(eta_dec=1.0), "β=3": dict(beta=3.0)}, [0, 1], (x, y), plan, settings)
    assert sum(r["trained"] for r in first) == 4 and sum(r["loaded"] for r in first) == 0
    assert sum(r["trained"] for r in second) == 2 and sum(r["loaded"] for r in second) == 2
    for s in (0, 1):
        for p, q in zip(a[("β=1", s)].state_dict().values(), b[("η_dec=1", s)].state_dict().values()):
            assert torch.equal(p, q)
    # the model trained on its own (a stack of one) equals the one trained in a stack of four (float64:
    # in float32 the two agree to rounding, which Adam's normalised steps amplify)
    with work_directory(tmp_path / "c") as alone:                    # no store: trains again
        c = train_grid(make, {"β=2": dict(beta=2.0)}, [1], (x, y), plan, settings)
    assert sum(r["trained"] for r in alone) == 1
    for p, q in zip(a[("β=2", 1)].state_dict().values(), c[("β=2", 1)].state_dict().values()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-9, atol=1e-12)


def test_an_int_hyperparameter_is_the_same_training_as_its_float(tmp_path):
    """β = 2 in one experiment and β = 2.0 in another are one model (theory_vs_nonlinear's and
    fig3b's grids are written with ints, fig2b's and fig2c's with floats): trained once, loaded once."""
    store = tmp_path / "store"

    def grid(directory, configs):
        x, y = _data()
        make = lambda **c: TwoBranchCVAE(hidden=4, **c)  # noqa: E731
        with work_directory(tmp_path / directory, store) as ledger:
            train_grid(make, configs, [0], (x, y), budget("tiny", len(x), 16, tiny_steps=4), {"lr": 1e-3, "clip": 0.01})
        return ledger

    first = grid("a", {"β=2": dict(beta=2.0)})
    second = grid("b", {"β=2": dict(beta=2), "η_dec=3": dict(eta_dec=np.int64(3))})
    assert sum(r["trained"] for r in first) == 1
    assert sum(r["loaded"] for r in second) == 1 and sum(r["trained"] for r in second) == 1


def test_experiments_sharing_models_train_each_once(tmp_path):
    out = str(tmp_path)
    first = experiments.run_experiment("fig2b", out, quick="tiny")
    second = experiments.run_experiment("app_recon", out, quick="tiny")
    with open(os.path.join(first, "meta.json")) as f:
        a = json.load(f)["training"]
    with open(os.path.join(second, "meta.json")) as f:
        b = json.load(f)
    assert a["models_trained"] == a["models"] > 0 and a["models_loaded"] == 0
    # app_recon's CVAEs are fig2b's shared β = 1, η_dec = 1 point: loaded, not trained
    assert b["training"]["models_trained"] == 0
    assert b["training"]["models_loaded"] == b["training"]["models"] == len(b["seeds"])
    assert b["training"]["train_seconds_all_sessions"] == 0
    assert b["training"]["optimizer"][0]["name"] == "Adam"
    assert set(b["provenance"]) >= {"commit", "clean"}


def test_a_model_trained_twice_in_one_experiment_is_counted_once(tmp_path):
    # theory_vs_nonlinear's β = 1 and η_dec = 1 entries are one model: the second family loads it
    x, y = _data()
    plan = budget("tiny", len(x), 16, tiny_steps=6)
    settings = {"lr": 1e-3, "clip": 0.01}
    make = lambda **c: TwoBranchCVAE(hidden=4, **c)  # noqa: E731
    with work_directory(tmp_path / "work" / "exp", tmp_path / "store") as ledger:
        train_grid(make, {"β=1": dict(beta=1.0), "β=2": dict(beta=2.0)}, [0], (x, y), plan, settings)
        train_grid(make, {"η_dec=1": dict(eta_dec=1.0), "η_dec=2": dict(eta_dec=2.0)}, [0], (x, y), plan, settings)
    assert [(r["trained"], r["loaded"]) for r in ledger] == [(2, 0), (1, 1)]
    assert ledger[1]["resumed_from"] is None


def test_the_cost_counts_training_and_the_evaluations_train_grid_ran(tmp_path):
    """fig2c evaluates inside train_grid: each record carries its evaluation seconds, which
    the measurements file keeps, and cost.seconds_all_sessions is training + evaluation."""
    final = experiments.run_experiment("fig2c", str(tmp_path), quick="tiny")
    with open(os.path.join(final, "meta.json")) as f:
        meta = json.load(f)
    t = meta["training"]
    assert t["per_training"] and all(r["eval_seconds"] >= 0 for r in t["per_training"])
    assert t["eval_seconds_all_sessions"] == pytest.approx(sum(r["eval_seconds"] for r in t["per_training"]), abs=0.051)
    assert meta["cost"]["seconds_all_sessions"] == pytest.approx(
        t["train_seconds_all_sessions"] + t["eval_seconds_all_sessions"], abs=0.051)
    assert meta["cost"]["seconds_all_sessions"] <= meta["wall_time_s"]       # one session: inside its wall time
