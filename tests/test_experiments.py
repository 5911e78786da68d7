"""Every experiment in its tiny mode: artifacts exist and parse; theory curves equal the closed
forms computed independently here; results are never overwritten silently; ``all`` resumes."""
import csv
import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

# tiny runs stop the linear trainings after a few dozen steps by design: their ConvergenceWarnings
# are expected (the artifacts, not the convergence, are what these tests check)
pytestmark = pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")

from linvae import experiments  # noqa: E402
from linvae.cli import main  # noqa: E402
from linvae.data import load_mnist_subset, quadrant_split  # noqa: E402

VERDICTS = {"confirmed", "contradicted", "inconclusive", "not run", "basis-dependent", "measured"}
CATEGORIES = {"paper", "check", "theory", "beyond"}


def _read_csv(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return str(tmp_path_factory.mktemp("results"))


@pytest.mark.slow
@pytest.mark.parametrize("exp_id", list(experiments.REGISTRY))
def test_experiment_tiny_run_writes_parseable_artifacts(exp_id, out, monkeypatch):
    outside = []
    if exp_id in experiments.SHAREABLE:
        # jobs > 1 shares trainings only through their records: every training of such an
        # experiment must run inside a finished_all task, or helper processes would repeat it
        from linvae.experiments import _nonlinear_common
        from linvae.nn import BatchedTrainer, Trainer

        inside, run_task = [False], _nonlinear_common._run_task

        def in_task(*args, **kwargs):
            inside[0] = True
            try:
                return run_task(*args, **kwargs)
            finally:
                inside[0] = False
        monkeypatch.setattr(_nonlinear_common, "_run_task", in_task)
        for cls in (BatchedTrainer, Trainer):
            def fit(self, *args, _fit=cls.fit, **kwargs):
                outside.append(not inside[0])
                return _fit(self, *args, **kwargs)
            monkeypatch.setattr(cls, "fit", fit)
    directory = experiments.run_experiment(exp_id, out, quick="tiny", seed=0)
    if exp_id in experiments.SHAREABLE:
        assert outside and not any(outside)
    with open(os.path.join(directory, "figure.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(os.path.join(directory, "figure.png")) > 5000
    with open(os.path.join(directory, "meta.json")) as f:
        meta = json.load(f)
    assert meta["id"] == exp_id and meta["quick"] is True
    assert meta["wall_time_s"] >= 0 and "numpy" in meta["versions"]
    for claim in meta["claims"]:
        assert claim["verdict"] in VERDICTS and claim["claim"] and claim["measured"]
        assert claim["category"] in CATEGORIES
        assert (claim["verdict"] == "measured") == (claim["category"] == "beyond")
    if experiments.REGISTRY[exp_id][3] == "torch":
        # the training budget and its provenance travel with every nonlinear result
        for key in ("n_train", "epochs", "steps", "paper_steps", "step_ratio", "seeds", "architecture", "wall_time_s"):
            assert key in meta, key
        assert len(meta["seeds"]) >= 2 and meta["steps"] >= meta["epochs"]
        if meta["paper_steps"] is None:          # fig5: the paper gives no length; the note says what ran
            assert meta["step_ratio"] is None and all("no training length" in c["note"] for c in meta["claims"])
        else:
            assert abs(meta["step_ratio"] - meta["steps"] / meta["paper_steps"]) < 1e-3
        for claim in meta["claims"]:
            assert "quick" in claim["note"].lower()          # a quick run says so on every row
    for name in os.listdir(directory):
        if name.endswith(".csv"):
            header, rows = _read_csv(os.path.join(directory, name))
            assert header and rows and all(len(r) == len(header) for r in rows)
    if exp_id == "fig5":                          # to convergence: every arm and seed at ≥ 3 lengths
        header, rows = _read_csv(os.path.join(directory, "convergence.csv"))
        assert header[:4] == ["epochs", "steps", "arm", "seed"] and "kl_dim_15" in header
        lengths = {}
        for r in rows:
            lengths.setdefault((r[2], r[3]), []).append(int(r[0]))
        assert len(lengths) == 2 * len(meta["seeds"]) and all(len(v) >= 3 and v == sorted(v) for v in lengths.values())
        last = {k: max(v) for k, v in lengths.items()}
        _, fig5_rows = _read_csv(os.path.join(directory, "fig5.csv"))
        assert meta["epochs"] == max(last.values()) and len(fig5_rows) == len(last)


def test_fig5_convergence_rule():
    from linvae.experiments.nonlinear import FIG5_ELBO_TOL, _fig5_converged

    assert not _fig5_converged([-800.0, -790.0])                        # never before the third length
    assert _fig5_converged([-800.0, -790.0, -790.0 + FIG5_ELBO_TOL / 2])
    assert not _fig5_converged([-800.0, -790.0, -790.0 + 2 * FIG5_ELBO_TOL])
    assert _fig5_converged([-800.0, -790.0, -791.0])                    # a worse ELBO has stopped improving


@pytest.mark.slow
def test_fig2a_theory_curve_is_the_closed_form(out):
    directory = os.path.join(out, "fig2a")
    if not os.path.exists(directory):
        experiments.run_experiment("fig2a", out, quick="tiny")
    header, rows = _read_csv(os.path.join(directory, "collapse_curves.csv"))
    col = header.index("theory: learnable Σ (β=4, η_enc=η_dec=1)")
    eps = np.array([float(r[0]) for r in rows])
    theory = np.array([int(r[col]) for r in rows])
    X, _, _ = load_mnist_subset()
    theta = np.linalg.svd(X / np.sqrt(len(X)), compute_uv=False)[:5]
    # Thm 4 with β = 4, η_dec = 1: dims with θ < 2 collapse (KL ≡ 0, below every ε); the active
    # ones have data-mean KL log(θ/2) and are counted once ε passes their KL (δ-fraction aside)
    assert np.all(theory[eps < 1e-5] == np.sum(theta < 2.0))
    assert theory[-1] == 5


@pytest.mark.slow
def test_linear_cvae_theory_column_is_thm2(out):
    directory = os.path.join(out, "app_cvae_beta")
    if not os.path.exists(directory):
        experiments.run_experiment("app_cvae_beta", out, quick="tiny")
    header, rows = _read_csv(os.path.join(directory, "active_vs_beta.csv"))
    betas = np.array([float(r[0]) for r in rows])
    active = np.array([int(r[header.index("theory_active")]) for r in rows])
    X, _, _ = load_mnist_subset()
    x, y = quadrant_split(X)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ coef
    theta = np.linalg.eigvalsh(r.T @ r / len(r))
    np.testing.assert_array_equal(active, [min(64, int(np.sum(theta > b))) for b in betas])


@pytest.mark.slow
def test_results_are_not_overwritten_and_all_resumes(tmp_path):
    out = str(tmp_path)
    experiments.run_experiment("table1", out, quick="tiny")
    before = os.path.getmtime(os.path.join(out, "table1", "meta.json"))
    with pytest.raises(FileExistsError, match="overwrite"):
        experiments.run_experiment("table1", out, quick="tiny")
    ran = experiments.run_all(out, quick="tiny", ids=["table1", "fig1"])
    assert ran == ["fig1"]                                   # table1 was already there
    assert os.path.getmtime(os.path.join(out, "table1", "meta.json")) == before
    assert experiments.run_all(out, quick="tiny", ids=["table1", "fig1"]) == []
    experiments.run_experiment("table1", out, quick="tiny", overwrite=True)
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-") or n.startswith(".old-")]
    with open(experiments.write_report(out)) as f:
        report = f.read()
    assert "table1/figure.png" in report and "not run" in report
    assert "theory only" in report and "(theory)" in report          # Table 1 rows are labelled, not counted
    assert "Run mode:** quick" in report


@pytest.mark.slow
def test_cli_reproduce(tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(exp_id in listed for exp_id in experiments.REGISTRY)
    assert main(["reproduce", "table1", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "[confirmed]" in printed and "figure:" in printed and "report:" in printed
    with pytest.raises(SystemExit, match="overwrite"):
        main(["reproduce", "table1", "--quick", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["reproduce", "fig99", "--out", str(tmp_path)])


def test_cli_all_only_runs_the_selected_kind(tmp_path, capsys, monkeypatch):
    ran = {}

    def fake_run_all(out, ids=None, **kw):
        ran["ids"] = ids
        return []

    monkeypatch.setattr(experiments, "run_all", fake_run_all)
    assert main(["reproduce", "all", "--only", "linear", "--out", str(tmp_path)]) == 0
    assert ran["ids"] and all(experiments.REGISTRY[i][3] == "linear" for i in ran["ids"])
    assert "fig2a" in ran["ids"] and "fig2b" not in ran["ids"]


def test_style_file_ships_with_the_package():
    """The figures' style is package data (a wheel without it breaks every figure)."""
    from linvae.plotting import STYLE

    assert os.path.isfile(STYLE)
    import tomllib

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert "plotting/*.mplstyle" in cfg["tool"]["setuptools"]["package-data"]["linvae"]


@pytest.mark.parametrize("values, increasing, expected", [
    ([1, 2, 2, 5], True, "confirmed"),
    ([5, 3, 3, 0], False, "confirmed"),
    ([0, 0, 0], False, "inconclusive"),          # a flat result shows no trend: not a confirmation
    ([0, 0, 0], True, "inconclusive"),
    ([1, 5, 2], True, "contradicted"),           # the middle step falls by 3 on every seed
    ([5, 3, 0], True, "contradicted"),
])
def test_trend_verdict_has_three_outcomes(values, increasing, expected):
    from linvae.experiments._verdict import trend
    seeds = np.array([values, np.add(values, 0.1), np.add(values, -0.1)])      # three seeds, little spread
    assert trend(seeds, increasing=increasing)[0] == expected


def test_run_size_is_one_clear_type():
    from linvae.experiments._common import RunSize, size

    assert RunSize.of(False) is RunSize.FULL and RunSize.of("full") is RunSize.FULL
    assert RunSize.of(True) is RunSize.QUICK and RunSize.of("quick") is RunSize.QUICK
    assert RunSize.of("tiny") is RunSize.TINY and RunSize.of(RunSize.TINY) is RunSize.TINY
    assert not RunSize.FULL and RunSize.QUICK and RunSize.TINY          # "is this a reduced run?"
    assert [size(q, 100, 10, 1) for q in (False, True, "tiny")] == [100, 10, 1]
    assert size("tiny", 100, 10) == 10                                  # tiny defaults to the quick value
    for bad in ("Tiny", "yes", 1, None, 0.5):
        with pytest.raises(ValueError, match="quick must be"):
            RunSize.of(bad)
    with pytest.raises(ValueError, match="quick must be"):
        experiments.Experiment("fig1").compute(quick="fast")


@pytest.mark.slow
def test_a_stopped_experiment_continues_from_its_checkpoints(tmp_path, monkeypatch):
    from linvae.experiments import _nonlinear_common
    from linvae.nn import BatchedTrainer

    whole = experiments.run_experiment("fig3a", str(tmp_path / "whole"), quick="tiny")
    monkeypatch.setattr(_nonlinear_common, "CHECKPOINT_EVERY", 0.0)
    out = str(tmp_path / "stopped")
    original, calls, stop = BatchedTrainer._epoch, [], [True]

    class Stopped(Exception):
        """Stands for the session ending (pytest handles a real KeyboardInterrupt itself)."""

    def stop_in_fifth_training(self, epoch, *args):      # 9 trainings × 3 epochs; stop in the 5th's 2nd epoch
        calls.append(epoch)
        if len(calls) == 14 and stop:
            stop.clear()
            raise Stopped
        return original(self, epoch, *args)

    monkeypatch.setattr(BatchedTrainer, "_epoch", stop_in_fifth_training)
    with pytest.raises(Stopped):
        experiments.run_experiment("fig3a", out, quick="tiny")
    work = os.path.join(out, experiments.WORK_DIR, "fig3a")
    # the 4 finished trainings' 8 models (2 seeds each) are in the model store (weights + record each), the
    # 5th's checkpoint in the work directory
    store = os.path.join(out, _nonlinear_common.STORE_DIR)
    assert len(os.listdir(work)) == 1 and len(os.listdir(store)) == 2 * 4 * 2
    assert not os.path.exists(os.path.join(out, "fig3a"))
    calls.clear()
    final = experiments.run_experiment("fig3a", out, quick="tiny")
    assert len(calls) == 2 + 4 * 3                        # the 5th training's last 2 epochs, then 4 more trainings
    assert _read_csv(os.path.join(final, "per_digit.csv")) == _read_csv(os.path.join(whole, "per_digit.csv"))
    with open(os.path.join(final, "meta.json")) as f:
        meta = json.load(f)
    assert meta["training"]["trainings"] == 9 and meta["training"]["resumed"] == 5
    assert [r["resumed_from"] for r in meta["training"]["per_training"][:5]] == ["store"] * 4 + [1]
    # trained by this experiment in the stopped session: counted as its own trainings, none loaded
    assert meta["training"]["models_trained"] == 18 and meta["training"]["models_loaded"] == 0
    assert "resumed from checkpoints" in meta["wall_time_note"]
    assert not os.path.exists(os.path.join(out, experiments.WORK_DIR))       # removed once the results are in


@pytest.mark.slow
def test_finished_trainings_are_measured_once_and_their_small_records_carry_over(tmp_path, monkeypatch):
    """fig2c trains one batched model per seed and keeps each one's measurements as a small JSON file:
    only those files, carried to a fresh output directory (another machine, a later session), spare
    the finished trainings; a file written for another training or evaluation is not used."""
    import glob
    import shutil

    from linvae.experiments import _nonlinear_common
    from linvae.nn import BatchedTrainer

    whole = experiments.run_experiment("fig2c", str(tmp_path / "whole"), quick="tiny")
    monkeypatch.setattr(_nonlinear_common, "CHECKPOINT_EVERY", 0.0)
    original, fits = BatchedTrainer.fit, []

    class Stopped(Exception):
        """Stands for the session ending."""

    def stop_in_second(self, *args):
        fits.append(len(self.models))
        if len(fits) == 2:
            raise Stopped
        return original(self, *args)

    monkeypatch.setattr(BatchedTrainer, "fit", stop_in_second)
    first = str(tmp_path / "first")
    with pytest.raises(Stopped):
        experiments.run_experiment("fig2c", first, quick="tiny")
    work = os.path.join(first, experiments.WORK_DIR, "fig2c")
    kept = glob.glob(os.path.join(work, "*" + _nonlinear_common.RESULT_SUFFIX))
    assert len(kept) == 1 and not glob.glob(os.path.join(work, "*.pt"))     # measured, then its weights dropped
    assert os.path.getsize(kept[0]) < 200_000
    later = tmp_path / "later"
    os.makedirs(later / experiments.WORK_DIR / "fig2c")
    shutil.copy(kept[0], later / experiments.WORK_DIR / "fig2c")
    monkeypatch.setattr(BatchedTrainer, "fit", original)
    trained = []
    monkeypatch.setattr(BatchedTrainer, "fit", lambda self, *a: trained.append(1) or original(self, *a))
    final = experiments.run_experiment("fig2c", str(later), quick="tiny")
    assert len(trained) == 1                                  # only the unfinished seed trains
    assert _read_csv(os.path.join(final, "table5.csv")) == _read_csv(os.path.join(whole, "table5.csv"))
    with open(os.path.join(final, "meta.json")) as f:
        meta = json.load(f)
    assert meta["training"]["trainings"] == 2 and meta["training"]["reused_measurements"] == 1
    assert meta["training"]["resumed"] == 0                  # a record read is not also a resumed training
    assert "1 read from the finished-training records" in meta["wall_time_note"]
    # a record of another evaluation (here: edited) is not trusted: that training runs again
    stale = tmp_path / "stale"
    os.makedirs(stale / experiments.WORK_DIR / "fig2c")
    with open(kept[0]) as f:
        record = json.load(f)
    record["identity"]["evaluation"]["S"] += 1
    with open(stale / experiments.WORK_DIR / "fig2c" / os.path.basename(kept[0]), "w") as f:
        json.dump(record, f)
    trained.clear()
    experiments.run_experiment("fig2c", str(stale), quick="tiny")
    assert len(trained) == 2


@pytest.mark.slow
def test_jobs_share_the_trainings_and_give_the_one_process_results(tmp_path):
    """fig2c with two processes (the helper trains what the main process has not claimed, which
    reads the helper's records): every CSV equals the one-process run's at the same torch thread
    count (each process of jobs=2 uses cpu_count // 2; other counts round torch's sums otherwise)."""
    from linvae.experiments._nonlinear_common import torch_threads

    with torch_threads(max(1, (os.cpu_count() or 1) // 2)):
        one = experiments.run_experiment("fig2c", str(tmp_path / "one"), quick="tiny")
    two = experiments.run_experiment("fig2c", str(tmp_path / "two"), quick="tiny", jobs=2)
    for name in sorted(os.listdir(one)):
        if name.endswith(".csv"):
            assert _read_csv(os.path.join(two, name)) == _read_csv(os.path.join(one, name)), name
    with open(os.path.join(two, "meta.json")) as f:
        meta = json.load(f)
    assert meta["jobs"] == 2 and meta["training"]["trainings"] == 2
    assert not os.path.exists(os.path.join(tmp_path, "two", experiments.WORK_DIR))


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2", True])
def test_jobs_must_be_a_positive_integer(jobs, tmp_path):
    with pytest.raises(ValueError, match=r"jobs must be an integer >= 1"):
        experiments.run_experiment("fig2c", str(tmp_path), quick="tiny", jobs=jobs)


def test_jobs_above_one_is_refused_where_trainings_cannot_be_shared(tmp_path):
    with pytest.raises(ValueError, match=r"jobs=2 needs an experiment .*'fig2b' is not one"):
        experiments.run_experiment("fig2b", str(tmp_path), quick="tiny", jobs=2)
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_theory_vs_nonlinear_predictions_are_the_centred_closed_forms_at_the_runs_eps(out):
    """The predicted counts are Thm 2 / Thm 3 on the same (centred) training data at the effective
    β: the exact count is predict_collapse's, the (ε, δ) count is at least the exact one (a dim
    with KL ≡ 0 is collapsed at every ε), and each claim's mean |error| is the CSV's."""
    from linvae import predict_collapse
    from linvae.experiments._nonlinear_common import AUTHORS, split

    directory = os.path.join(out, "theory_vs_nonlinear")
    if not os.path.exists(directory):
        experiments.run_experiment("theory_vs_nonlinear", out, quick="tiny")
    header, rows = _read_csv(os.path.join(directory, "agreement.csv"))
    table = [dict(zip(header, r)) for r in rows]
    images, _, _ = load_mnist_subset()
    train, _ = split(images, experiments.RunSize.TINY, 0)
    xtr, ytr = quadrant_split(train)
    ks = AUTHORS["cvae"]["kl_scale"]
    cvae = [r for r in table if r["family"] == "CVAE β"]
    betas = [float(r["config"].split("=")[1]) for r in cvae]
    expected = predict_collapse(xtr, ytr, beta=[b * ks for b in betas], latent_dim=16, center=True)["n_collapsed"]
    assert [int(r["predicted_exact"]) for r in cvae] == [int(v) for v in expected]
    assert all(int(r["predicted"]) >= int(r["predicted_exact"]) for r in table)
    with open(os.path.join(directory, "meta.json")) as f:
        claims = json.load(f)["claims"]
    for claim, family in zip(claims, ["CVAE β", "CVAE η_dec", "MHVAE β₂"]):
        part = [r for r in table if r["family"] == family]
        mae = np.mean([abs(int(r["predicted"]) - float(r["measured_mean"])) for r in part])
        assert f"mean |error| {mae:.2f} dims" in claim["measured"]


def test_the_linear_theory_beside_a_network_with_biases_ignores_the_data_mean():
    """fig2b, fig2c and table4 print Thm 2 / Thm 3 counts beside networks with biases, which
    absorb the data mean: shifting the data leaves the counts unchanged (uncentred moments would
    count the mean as signal and collapse fewer dims)."""
    from linvae import predict_collapse
    from linvae.experiments.nonlinear import _linear_counts

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) * np.linspace(0.2, 2, 6)
    y = x[:, :3] @ rng.normal(size=(3, 4)) + 0.1 * rng.normal(size=(400, 4))
    betas = [0.01, 0.05, 0.1, 0.25, 0.5]
    counts = _linear_counts(x, y, beta=betas, latent_dim=4)
    np.testing.assert_array_equal(_linear_counts(x + 3, y - 2, beta=betas, latent_dim=4), counts)
    assert np.any(predict_collapse(x + 3, y - 2, beta=betas, latent_dim=4)["n_collapsed"] != counts)
    xm = rng.normal(size=(400, 10)) * np.linspace(0.2, 2, 10)
    kw = dict(model="mhvae", latent_dims=(3, 3), beta2=[0.5, 1, 2, 4], sigma1=0.5, eta_enc=0.5, eta_dec=0.5)
    np.testing.assert_array_equal(_linear_counts(xm + 3, **kw), _linear_counts(xm, **kw))
    assert np.any(predict_collapse(xm + 3, **kw)["n_collapsed"] != _linear_counts(xm, **kw))


@pytest.mark.slow
def test_fig3a_orders_the_digits_by_the_trace_of_the_centred_residual(out):
    """fig3a's trace_E column is Σθ of each digit's *centred* training quadrants (the networks have
    biases, and the Thm 2 count beside it is centred too), not of the uncentred ones, and each claim
    lists the digits by it, ascending.  (cvae_residual itself is checked against dense NumPy in
    the stats tests; at the tiny size, n < d, only the wiring is tested here.)"""
    from linvae.experiments._nonlinear_common import split
    from linvae.stats import Moments

    directory = os.path.join(out, "fig3a")
    if not os.path.exists(directory):
        experiments.run_experiment("fig3a", out, quick="tiny")
    header, rows = _read_csv(os.path.join(directory, "per_digit.csv"))
    table = {int(float(r[header.index("digit")])): float(r[header.index("trace_E")]) for r in rows}
    for digit, got in table.items():
        images, _, _ = load_mnist_subset(digits=digit)
        train, _ = split(images, experiments.RunSize.TINY, 0, quick_sizes=(400, 100), tiny_sizes=(80, 30))
        x, y = quadrant_split(train)
        centred, uncentred = (float(np.sum(Moments.from_arrays(x, y, center=c).residual()[2])) for c in (True, False))
        assert abs(centred - uncentred) > 1e-3 * centred
        np.testing.assert_allclose(got, centred, rtol=1e-9)
    order = sorted(table, key=table.get)
    with open(os.path.join(directory, "meta.json")) as f:
        for claim in json.load(f)["claims"]:
            assert "trace θ(E) ascending: " + ", ".join(f"{d}: {table[d]:.2f}" for d in order) in claim["claim"]


def test_table2_au_anatomy_on_made_up_kl():
    """Σ = I with ReLU means: KL exactly 0 where the ReLU is off; a learned σ_j ≠ 1: every example
    of dim j above the AU threshold, so the AU counts whole dims."""
    from linvae.experiments.app_linear import _au_anatomy

    relu = np.array([[0.0, 0.5, 0.0, 0.2], [0.3, 0.0, 0.0, 0.2], [0.0, 0.0, 0.0, 0.2]])
    d = _au_anatomy(relu)
    assert d["zero_kl_fraction"] == pytest.approx(7 / 12)
    assert d["dims_all_or_none"] == pytest.approx(2 / 4)      # dim 2 on none, dim 3 on all
    sigma = np.array([[0.05, 0.002, 0.3], [0.04, 0.001, 0.2]])
    assert _au_anatomy(sigma) == {"zero_kl_fraction": 0.0, "dims_all_or_none": 1.0}


@pytest.mark.parametrize("sigma", ["global", 0.7, 1.0, 0.5])
def test_table2_kl_parts_add_up_to_the_models_kl(sigma):
    """The AU anatomy's mean and σ parts, from the encoder's (μ, σ), sum to the KL the trainer
    reports for the same examples; the σ band is where the σ part alone is 0.01 nats."""
    torch = pytest.importorskip("torch")
    from linvae.experiments.app_linear import _encoder_anatomy, _kl_parts, _sigma_band
    from linvae.nn import VAE, Trainer

    rng = np.random.default_rng(3)
    X = rng.random((40, 12))
    torch.manual_seed(0)
    model = VAE(12, 3, arch="mlp", hidden=8, sigma=sigma, eta_enc=0.7, mean_activation="relu")
    if sigma == "global":
        with torch.no_grad():
            for p in model.head.parameters():
                p.add_(0.3)                                  # move σ off η_enc so the σ part is non-zero
    kl = Trainer(model, epochs=1, device="cpu").evaluate_kl(X)
    with torch.no_grad():
        mu, sd = model.encode(torch.as_tensor(X, dtype=torch.get_default_dtype()))
    mean_part, sigma_part = _kl_parts(mu.double().numpy(), torch.broadcast_to(sd, mu.shape).double().numpy(), 0.7)
    np.testing.assert_allclose(mean_part + sigma_part, kl, rtol=1e-5, atol=1e-6)
    d = _encoder_anatomy(model, X)
    assert d["AU_mu_part"] == pytest.approx(np.mean(mean_part >= 0.01))
    assert d["dead_mean_fraction"] == pytest.approx(np.mean(mu.numpy() == 0))
    if sigma != "global":                                    # σ = η_enc: the σ part is 0 on every example
        assert d["AU_sigma_part"] == (0.0 if sigma == 0.7 else 1.0)
    for s in _sigma_band():
        assert 0.5 * (s * s - 1 - np.log(s * s)) == pytest.approx(0.01)


@pytest.mark.slow
def test_reduced_grid_trains_one_row_and_one_column_and_says_so(tmp_path):
    import warnings

    from linvae.experiments import nonlinear
    from linvae.experiments._report import build_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = nonlinear._grid_experiment("tiny", 0, "auto", None, "mlp", [1, 2, 4], [1, 4], "grid", reduced=1)
    rows = out.tables["z2_collapse"]
    cells = set(rows["config"])
    assert cells == {"β₁=1, β₂=1", "β₁=1, β₂=4", "β₁=4, β₂=1"}            # the (4, 4) cell is not trained
    assert len(rows["config"]) == 3 * len(out.meta["seeds"])
    assert out.meta["reduced"]["row_beta1"] == 1 and sorted(out.meta["reduced"]["cells"]) == sorted(cells)
    for claim in out.claims:
        assert "Reduced run" in claim.note and ("at β₁ = 1" in claim.claim or "at β₂ = 1" in claim.claim)
        assert "of 1" in claim.measured                                     # one line per claim
    os.makedirs(tmp_path / "grid")
    with open(tmp_path / "grid" / "meta.json", "w") as f:
        json.dump(dict(out.meta, claims=[c.__dict__ for c in out.claims]), f)
    assert "**reduced run** (3 cells" in build_report(str(tmp_path), {"grid": (None, None, "grid")})


def test_calibrate_loo_holds_each_configuration_out():
    from linvae.experiments.nonlinear import calibrate_loo

    factors = [0.5, 1.0, 2.0]
    predicted = np.array([[0, 2, 9], [1, 5, 10], [3, 8, 12]], float)    # rows: factors; columns: configs
    measured = np.array([1.0, 5.0, 12.0])
    out = calibrate_loo(predicted, measured, factors)
    for j in range(3):                                   # brute force: the factor best on the other two
        others = [i for i in range(3) if i != j]
        cost = [sum(abs(predicted[f, i] - measured[i]) for i in others) for f in range(3)]
        best = min(range(3), key=lambda f: (cost[f], abs(np.log(factors[f]))))
        assert out["loo_factor"][j] == factors[best]
        assert out["loo_predicted"][j] == predicted[best, j]
    np.testing.assert_allclose(out["loo_error"], np.abs(out["loo_predicted"] - measured))
    assert out["factor"] == 1.0                          # on all three: row 1 has cost 2, rows 0 and 2 cost 6 and 4
    tie = calibrate_loo(np.zeros((3, 2)), np.zeros(2), factors)
    assert tie["factor"] == 1.0                          # ties go to the uncalibrated theory


@pytest.mark.slow
def test_fig5_resumes_after_its_last_measured_length(tmp_path, monkeypatch):
    """Stopped in its third length, fig5 continues from the checkpoint and the measured lengths,
    training no epoch twice, and writes what an uninterrupted run writes."""
    import warnings

    from linvae.nn import Trainer

    warnings.simplefilter("ignore")
    whole = experiments.run_experiment("fig5", str(tmp_path / "whole"), quick="tiny")
    original, epochs, stop = Trainer._epoch, [], [True]

    class Stopped(Exception):
        pass

    def stop_in_third_length(self, epoch, *args):        # tiny lengths 1, 2, 3 epochs: the 3rd epoch of run 1
        epochs.append(epoch)
        if len(epochs) == 3 and stop:
            stop.clear()
            raise Stopped
        return original(self, epoch, *args)

    monkeypatch.setattr(Trainer, "_epoch", stop_in_third_length)
    out = str(tmp_path / "stopped")
    with pytest.raises(Stopped):
        experiments.run_experiment("fig5", out, quick="tiny")
    epochs.clear()
    final = experiments.run_experiment("fig5", out, quick="tiny")
    runs = 2 * 2                                          # 2 arms × 2 seeds, 3 epochs each, the first resumed at 2
    assert len(epochs) == 3 * runs - 2
    a, b = (_read_csv(os.path.join(d, "convergence.csv")) for d in (whole, final))
    assert a[0] == b[0] and len(a[1]) == len(b[1]) == 3 * runs
    for ra, rb in zip(a[1], b[1]):
        assert ra[:4] == rb[:4]
        np.testing.assert_allclose([float(x) for x in ra[4:]], [float(x) for x in rb[4:]], rtol=1e-5, atol=1e-7)


def test_evaluations_outside_train_grid_are_counted_in_the_cost(tmp_path):
    import time as _time

    from linvae.experiments._nonlinear_common import timed_evaluation, training_record, work_directory

    with work_directory(str(tmp_path)) as ledger:
        ledger.append({"models": 2, "trained": 2, "loaded": 0, "train_seconds": 5.0, "resumed_from": None,
                       "eval_seconds": 1.0})
        with timed_evaluation():
            _time.sleep(0.25)
    record = training_record(ledger)
    assert record["trainings"] == 1 and record["models"] == 2 and record["train_seconds_all_sessions"] == 5.0
    assert 1.2 <= record["eval_seconds_all_sessions"] < 2.0
    with timed_evaluation():                        # outside an experiment: nothing to record
        pass
