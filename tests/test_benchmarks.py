"""The benchmark scripts run in their smallest size and write a well-formed results file;
the asv suites import and their setups accept their parameters."""
import importlib
import os
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_compare_smoke_writes_results(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        compare = importlib.import_module("compare")
    finally:
        sys.path.pop(0)
    out = tmp_path / "RESULTS.md"
    out.write_text("old table\n<!-- end of compare.py output -->\n\n## Hand-written section\nkept\n")
    assert compare.main(["--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    for heading in ("## 1. One Adam step", "## 2. Reaching the optimum", "## 3. Hardware bound",
                    "## 4. Closed form", "## 5. One minibatch epoch", "## 6. First use", "## Targets"):
        assert heading in text
    assert "old table" not in text and text.endswith("## Hand-written section\nkept\n")   # rest kept
    targets = text[text.index("## Targets"):text.index("<!-- end")]
    assert targets.count("| yes |") + targets.count("| no |") >= 4      # (the B = 50 row needs d = 64)
    assert "Command: `python benchmarks/compare.py --smoke" in text
    rows = [line for line in text.splitlines() if line.startswith("| 16 |")]
    assert rows and all(float(r.split("|")[6]) > 0 for r in rows)      # torch / Numba ratio present


@pytest.mark.slow
def test_asv_suites_import_and_set_up():
    sys.path.insert(0, ROOT)
    try:
        lin = importlib.import_module("benchmarks.bench_linear")
        met = importlib.import_module("benchmarks.bench_metrics")
        ker = importlib.import_module("benchmarks.bench_kernels")
        importlib.import_module("benchmarks.bench_gpu")
    finally:
        sys.path.pop(0)
    bench = lin.ClosedForm()
    bench.setup("thm3", 64)
    bench.time_fit_cached_moments("thm3", 64)
    step = ker.Step()
    step.setup(1, 16, "mhvae")
    prec = ker.StepPrecision()
    prec.setup(1, 64, "float32")
    m = met.LogLikelihoodIS()
    m.setup(100)
    assert m.track_is_error_nats(100) < 1.0


@pytest.mark.slow
def test_first_use_suites_use_private_cache_dirs(tmp_path, monkeypatch):
    """The cold-compile suite never touches the package's or the user's caches; loading the data writes none."""
    sys.path.insert(0, ROOT)
    try:
        ker = importlib.import_module("benchmarks.bench_kernels")
        dat = importlib.import_module("benchmarks.bench_data")
    finally:
        sys.path.pop(0)
    monkeypatch.setenv("LINVAE_CACHE_DIR", str(tmp_path / "user"))
    comp = ker.Compile()
    comp.setup("vae_gd")
    assert "solver='gd'" in comp.code and os.listdir(comp.tmp) == []
    assert comp.env["NUMBA_CACHE_DIR"].startswith(comp.tmp)
    comp.teardown("vae_gd")
    assert not os.path.exists(comp.tmp)
    bench = dat.LoadMNISTSubset()
    bench.setup()
    bench.time_load()
    assert not (tmp_path / "user").exists()                 # loading the shipped subset writes nothing


def test_roofline_suite_reads_one_measurement_per_experiment(monkeypatch):
    """The asv roofline suite: skipped without torch; its tracks are the script's measurement."""
    pytest.importorskip("torch")
    sys.path.insert(0, ROOT)
    try:
        roof = importlib.import_module("benchmarks.bench_roofline")
    finally:
        sys.path.pop(0)
    with pytest.raises(NotImplementedError, match="torch"):
        roof.Roofline().setup(None, "fig2b")
    import torch

    script = roof._roofline()
    r = script.measure(torch, "app_recon", 1, 1e11, np.random.default_rng(0))
    assert set(script._cases()) - set(script.OPTIONAL) == set(roof.Roofline.params)
    np.testing.assert_allclose(r["ratio"], r["seconds_per_model_step"] / (r["flop"] / 1e11))
    np.testing.assert_allclose(r["gflops"], r["flop"] / r["seconds_per_model_step"] / 1e9)
    cache = {"peak": 1e11, "app_recon": r}
    suite = roof.Roofline()
    assert suite.track_ratio_to_bound(cache, "app_recon") == r["ratio"]
    assert suite.track_mflop_per_step(cache, "app_recon") == r["flop"] / 1e6
    assert suite.track_gemm_peak(cache, "app_recon") == 100.0


def test_roofline_results_compare_each_experiments_cost_with_its_own_trainings(tmp_path, monkeypatch):
    """``roofline.py --results``: the bound counts only the models an experiment trained (each
    record's models × steps × FLOP per step of its network ÷ peak; steps from the meta.json's plan for
    records older than their own ``steps``), with each
    of fig3a's arms on the network the experiment builds for it; quick runs are skipped, and a
    meta.json whose records cannot be attributed to networks is refused."""
    import json

    import torch

    from linvae.experiments.nonlinear import FIG3A_ARMS
    from linvae.nn import TwoBranchCVAE

    sys.path.insert(0, ROOT)
    try:
        script = importlib.import_module("benchmarks.scripts.roofline")
    finally:
        sys.path.pop(0)

    def size(model):                                       # a stand-in FLOP count: one per parameter
        return float(sum(p.numel() for p in model.parameters()))
    monkeypatch.setattr(script, "step_flop", lambda torch, model, batch: size(model))

    def write(exp, records, quick=False, cost=100.0):
        (tmp_path / exp).mkdir()
        meta = {"quick": quick, "steps": 64, "epochs": 2, "cost": {"seconds_all_sessions": cost},
                "training": {"models_trained": sum(r["trained"] for r in records),
                             "models_loaded": sum(r["loaded"] for r in records),
                             "per_training": records + [{"evaluation_only": True, "eval_seconds": 5.0}]}}
        (tmp_path / exp / "meta.json").write_text(json.dumps(meta))

    write("fig2b", [{"models": 4, "trained": 3, "loaded": 1, "epochs": 2}])
    # fig3a: per digit, one record per arm, each with its own steps (the digits' data differ in size)
    write("fig3a", [{"models": 3, "trained": 3, "loaded": 0, "epochs": 2, "steps": st} for st in (10, 20, 30)
                    for _ in FIG3A_ARMS], cost=50.0)
    write("table2", [{"models": 3, "trained": 3, "loaded": 0, "epochs": 2}], quick=True)
    rows = {r[0]: r for r in script.regenerated(torch, str(tmp_path), 1e9, np.random.default_rng(0))}
    assert set(rows) == {"fig2b", "fig3a"}                          # the quick table2 is not counted
    steps = 2 * 32                                                  # epochs × steps per epoch
    cvae16 = size(TwoBranchCVAE(arch="relu", hidden=16))
    assert rows["fig2b"] == ("fig2b", 100.0, pytest.approx(3 * steps * cvae16 / 1e9), 3, 1)
    arms = sum(size(TwoBranchCVAE(arch=arch, hidden=h)) for arch, h, _ in FIG3A_ARMS.values())
    assert rows["fig3a"][2] == pytest.approx(3 * (10 + 20 + 30) * arms / 1e9)
    write("theory_vs_nonlinear", [{"models": 10, "trained": 2, "loaded": 8, "epochs": 2}])
    with pytest.raises(ValueError, match="1 training records, the roofline knows 9"):
        script.regenerated(torch, str(tmp_path), 1e9, np.random.default_rng(0))
