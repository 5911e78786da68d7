"""Dask sweeps and dask.array moments on an in-process LocalCluster (loopback only)."""
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import linvae  # noqa: E402
from linvae import _sweep  # noqa: E402
from linvae.distributed import SweepChunkError, map_chunks  # noqa: E402

RNG = np.random.default_rng(3)
X = RNG.normal(size=(400, 6)) * [3.0, 2.0, 1.0, 0.6, 0.3, 0.1]
Y = X[:, :3] @ RNG.normal(size=(3, 4)) + RNG.normal(size=(400, 4))
BETAS = np.linspace(0.1, 4.0, 12)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _same(a, b):
    """Bit-identical fit results (every field but the training history)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        da_, db_ = ra.to_dict(json_safe=False), rb.to_dict(json_safe=False)
        for key in da_:
            if key != "history":
                np.testing.assert_array_equal(da_[key], db_[key], err_msg=key)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["closed_form", "adam"])
def test_cluster_sweep_equals_the_local_sweep(client, solver):
    kw = dict(beta=BETAS, eta_dec=[0.5, 1.0], solver=solver)
    if solver == "adam":
        kw["max_iter"] = 2000
    local = linvae.sweep(X, Y, **kw)
    remote = linvae.sweep(X, Y, **kw, scheduler=client, chunk_size=5)
    _same(local, remote)
    np.testing.assert_array_equal(local.table()["n_collapsed"], remote.table()["n_collapsed"])


@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
@pytest.mark.parametrize("scheduler", ["threads", pytest.param("processes", marks=pytest.mark.slow)])
def test_local_dask_schedulers_equal_the_in_process_sweep(scheduler):
    local = linvae.sweep(X, beta=BETAS, solver="gd", max_iter=500)
    _same(local, linvae.sweep(X, beta=BETAS, solver="gd", max_iter=500, scheduler=scheduler, chunk_size=4))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_a_worker_killed_mid_sweep_still_yields_the_complete_result(client, tmp_path):
    Xb = np.random.default_rng(5).normal(size=(500, 40)) * np.linspace(3, 0.1, 40)
    kw = dict(beta=np.linspace(0.2, 3.0, 10), solver="adam", max_iter=6000, tol=0.0, gtol=0.0)
    reference = linvae.sweep(Xb, **kw)
    out = tmp_path / "sweep"
    pids = list(client.run(os.getpid).values())
    killed = []

    def killer():
        end = time.time() + 120
        while time.time() < end and not any(n.startswith("chunk-") for n in os.listdir(out) if os.path.isdir(out)):
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        killed.append(sum(n.startswith("chunk-") for n in os.listdir(out)))

    os.makedirs(out)
    t = threading.Thread(target=killer)
    t.start()
    result = linvae.sweep(Xb, **kw, scheduler=client, chunk_size=1, out=out)
    t.join()
    assert killed and killed[0] < 10                              # a worker really died mid-sweep
    _same(result, reference)
    _same(linvae.SweepResult.load(out), reference)
    client.wait_for_workers(2, timeout=60)                        # the nanny restarted it


@pytest.mark.slow
def test_a_failing_chunk_is_reported_and_the_rest_completes(client):
    moments = linvae.Moments.from_arrays(X)
    spec = _sweep.SweepSpec(moments, "vae", 6, "learnable", 0.5, "learnable", None, None)
    good = {"beta": np.array([0.5, 1.0]), "eta_enc": np.ones(2), "eta_dec": np.ones(2)}
    bad = {"beta": np.array([-1.0]), "eta_enc": np.ones(1), "eta_dec": np.ones(1)}
    finished = {}
    with pytest.raises(SweepChunkError, match="1 of 3 chunks failed") as info:
        map_chunks(client, spec, [(0, good), (1, bad), (2, good)], finished.__setitem__)
    assert set(finished) == {0, 2} and set(info.value.failures) == {1}
    assert "beta" in str(info.value.failures[1])
    assert [r.n_collapsed for r in finished[0]] == [linvae.fit(X, beta=b).n_collapsed for b in (0.5, 1.0)]


@pytest.mark.parametrize("center", [False, True])
def test_moments_of_a_chunked_dask_array_equal_in_memory(center):
    dx = da.from_array(X, chunks=(37, 6))
    dy = da.from_array(Y, chunks=(90, 2))          # different chunks: rechunked to X's rows
    ref = linvae.Moments.from_arrays(X, Y, center=center)
    got = linvae.api.as_moments(dx, dy, center=center)
    assert got.n == ref.n
    for name in ("xx", "xy", "yy", "mean_x", "mean_y"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=0, atol=1e-12)


def test_fit_accepts_dask_arrays_and_validates_their_blocks():
    res = linvae.fit(da.from_array(X, chunks=100), da.from_array(Y, chunks=100), beta=1.0)
    ref = linvae.fit(X, Y, beta=1.0)
    for name in ("W1", "W2", "U1", "U2", "sigma"):
        np.testing.assert_allclose(getattr(res, name), getattr(ref, name), atol=1e-10)
    Xn = X.copy()
    Xn[150, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linvae.fit(da.from_array(Xn, chunks=100))
    with pytest.raises(ValueError, match="same number of samples|as many rows"):
        linvae.fit(da.from_array(X, chunks=100), da.from_array(Y[:300], chunks=100))


def test_bad_scheduler_is_named():
    with pytest.raises(ValueError, match="scheduler"):
        linvae.sweep(X, beta=[1.0, 2.0], scheduler="cluster-please")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match="scheduler"):
            linvae.sweep(X, beta=[1.0, 2.0], scheduler=42)


@pytest.mark.slow
def test_reproduce_all_on_a_cluster_writes_the_same_results_and_resumes(client, tmp_path, monkeypatch):
    from linvae import experiments

    ids = ["fig1", "table1", "app_verify"]
    local, remote = tmp_path / "local", tmp_path / "remote"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiments.run_all(str(local), quick="tiny", ids=ids)
        assert experiments.run_all(str(remote), quick="tiny", ids=ids[:1]) == ids[:1]   # started locally...
        ran = experiments.run_all(str(remote), quick="tiny", ids=ids, scheduler=client)  # ...resumed on Dask
    assert ran == ids[1:]
    for e in ids:
        assert sorted(os.listdir(local / e)) == sorted(os.listdir(remote / e))
        for name in os.listdir(local / e):
            if name.endswith(".csv"):      # equal up to BLAS rounding amplified by 50 training steps (workers run 1-thread BLAS)
                a, b = (_csv_cells(d / e / name) for d in (local, remote))
                assert len(a) == len(b)
                for u, v in zip(a, b):
                    assert u == v or float(u) == pytest.approx(float(v), rel=1e-6, abs=1e-9), (e, name)
    assert not [n for n in os.listdir(remote) if n.startswith(".tmp-")]


def _csv_cells(path):
    import csv

    with open(path, newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


@pytest.mark.slow
def test_cli_reproduce_all_accepts_a_scheduler(tmp_path, monkeypatch, capsys):
    from linvae import experiments
    from linvae.cli import main

    monkeypatch.setattr(experiments, "REGISTRY", {k: experiments.REGISTRY[k] for k in ("fig1", "table1")})
    original = experiments.run_all
    monkeypatch.setattr(experiments, "run_all", lambda *a, **k: original(*a, **dict(k, quick="tiny")))
    assert main(["reproduce", "all", "--out", str(tmp_path), "--scheduler", "threads"]) == 0
    assert "ran 2 experiments" in capsys.readouterr().out
    assert (tmp_path / "table1" / "meta.json").exists()
