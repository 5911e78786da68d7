"""Torch backend: shapes and gradients of every architecture, the linear bridge to the closed
form, importance sampling, checkpoint/resume, divergence and missing-dependency errors."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import linvae  # noqa: E402
from linvae import metrics, objectives  # noqa: E402
from linvae import nn as lnn  # noqa: E402
from linvae.exceptions import TrainingDivergedError  # noqa: E402


#: every test runs in float64 (the ``float64`` fixture of conftest.py)
pytestmark = pytest.mark.usefixtures("float64")


def _grads_finite(model, out):
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.all(torch.isfinite(g)) for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("arch", ["mlp", "cnn", pytest.param("resnet18", marks=pytest.mark.slow), "linear"])
@pytest.mark.parametrize("sigma", ["learnable", "global", 0.7])
def test_vae_shapes_and_gradients(arch, sigma):
    torch.manual_seed(0)
    model = lnn.VAE(784, 5, arch=arch, hidden=16, sigma=sigma, beta=2.0, eta_enc=0.8, eta_dec=0.5)
    x = torch.rand(3, 784)
    out = model(x)
    assert out["kl_per_dim"].shape == (3, 5) and out["mu"].shape == (3, 5) and out["std"].shape == (3, 5)
    assert out["recon"].shape == (3,) and out["loss"].shape == ()
    # the KL of the forward pass is the metrics module's KL of its (μ, σ)
    np.testing.assert_allclose(out["kl_per_dim"].detach().numpy(),
                               metrics.kl_per_dim(out["mu"], std=out["std"], prior_std=0.8), rtol=1e-10)
    if sigma == 0.7:
        assert torch.allclose(out["std"], torch.full((3, 5), 0.7))
    np.testing.assert_allclose(out["loss"].item(), (out["recon"] + 2.0 * out["kl"]).mean().item(), rtol=1e-12)
    _grads_finite(model, out)


def test_resnet18_layouts_flops_and_shapes():
    """The default ResNet-18 has the standard (torchvision) layout: 7×7/2 stem, 3×3/2 max-pool and
    stages at 7, 4, 2, 1 px, so tens of MFLOP per 28×28 image; the CIFAR layout keeps full resolution."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    x = torch.rand(2, 784)
    flops = {}
    for arch in ("resnet18", "resnet18_cifar"):
        model = lnn.VAE(784, 3, arch=arch).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as enc:
            h = model.encoder(x)
        with torch.no_grad(), FlopCounterMode(display=False) as dec:
            out = model.decoder(torch.zeros(2, 3))
        assert out.shape == (2, 784)
        assert h.shape[0] == 2
        flops[arch] = (enc.get_total_flops() / 2, dec.get_total_flops() / 2)
    # independent count of the standard layout's stages: 3×3 convs at 7/4/2/1 px (2·k²·cin·cout·px² each)
    conv = lambda px, cin, cout, k=3: 2 * k * k * cin * cout * px * px  # noqa: E731
    stages = (4 * conv(7, 64, 64) + conv(4, 64, 128) + 3 * conv(4, 128, 128) + conv(2, 128, 256)
              + 3 * conv(2, 256, 256) + conv(1, 256, 512) + 3 * conv(1, 512, 512))
    stem = conv(14, 1, 64, k=7)
    assert stages + stem <= flops["resnet18"][0] <= 1.1 * (stages + stem) + 2e6
    assert flops["resnet18"][0] < 1e8 and flops["resnet18"][1] < 1e8
    assert flops["resnet18_cifar"][0] > 10 * flops["resnet18"][0]
    with pytest.raises(ValueError, match="28×28"):
        lnn.VAE(100, 3, arch="resnet18")


@pytest.mark.parametrize("arch", ["mlp", "cnn", "linear"])
def test_cvae_shapes_and_gradients(arch):
    torch.manual_seed(1)
    model = lnn.CVAE(196, 588, 4, arch=arch, hidden=16, beta=0.5, kl_scale=0.5)
    x, y = torch.rand(2, 196), torch.rand(2, 588)
    out = model(x, y)
    assert out["kl_per_dim"].shape == (2, 4)
    np.testing.assert_allclose(out["loss"].item(), (out["recon"] + 0.25 * out["kl"]).mean().item(), rtol=1e-12)
    _grads_finite(model, out)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "linear"])
def test_mhvae_shapes_and_gradients(arch):
    torch.manual_seed(2)
    model = lnn.MHVAE(784, (6, 4), arch=arch, hidden=16, hidden2=8, beta1=2.0, beta2=0.5)
    out = model(torch.rand(3, 784))
    assert out["kl_per_dim"].shape == (3, 4) and out["kl1_per_dim"].shape == (3, 6)
    assert torch.allclose(out["std1"], torch.full((3, 6), 0.5))      # σ₁ fixed at the paper's 0.5
    _grads_finite(model, out)


def test_mlp_gradient_matches_finite_differences():
    torch.manual_seed(3)
    model = lnn.VAE(5, 2, hidden=4, beta=1.3, eta_enc=0.9, eta_dec=0.6)
    x = torch.randn(4, 5)

    def loss():
        torch.manual_seed(42)                  # same reparameterization noise every call
        return model(x)["loss"]

    model.zero_grad()
    loss().backward()
    for p in list(model.parameters())[:2]:
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 5)):
            old = flat[i].item()
            flat[i] = old + 1e-6
            up = loss().item()
            flat[i] = old - 1e-6
            down = loss().item()
            flat[i] = old
            assert (up - down) / 2e-6 == pytest.approx(p.grad.view(-1)[i].item(), rel=1e-5, abs=1e-8)


@pytest.mark.slow
def test_linear_torch_vae_reaches_closed_form():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 6)) * [3, 2, 1, 0.5, 0.3, 0.1]
    kw = dict(beta=1.0, eta_enc=0.7, eta_dec=0.9)
    closed = linvae.fit(X, latent_dim=4, **kw)
    model = lnn.LinearTorchVAE(6, 4, **kw)
    lnn.Trainer(model, lr=3e-2, epochs=300, schedule="cosine", seed=0).fit(X)
    W, U, sigma = model.matrices()
    loss = objectives.vae_loss(X.T @ X / len(X), W, U, sigma, **kw)
    assert loss == pytest.approx(closed.loss, rel=1e-3)
    np.testing.assert_allclose(np.sort(sigma), np.sort(closed.sigma), atol=5e-3)


def test_torch_is_log_likelihood_matches_gaussian_marginal():
    torch.manual_seed(4)
    model = lnn.LinearTorchVAE(4, 2, eta_enc=1.2, eta_dec=0.8)
    X = np.random.default_rng(1).normal(size=(30, 4))
    W, U, sigma = model.matrices()
    cov = 1.2**2 * U @ U.T + 0.64 * np.eye(4)
    from scipy.stats import multivariate_normal

    exact = multivariate_normal(np.zeros(4), cov).logpdf(X)
    est = model.log_likelihood(X, n_samples=2000, seed=0, batch_size=300)
    assert np.abs(est - exact).mean() < 0.05


def _run(tmp_path, name, epochs, resume=False, crash_at=None):
    X = np.random.default_rng(5).random((300, 20))
    torch.manual_seed(123)
    model = lnn.VAE(20, 3, hidden=8)
    if crash_at is not None:
        original = model.forward
        calls = {"n": 0}

        def crashing(x, y=None):
            calls["n"] += 1
            if calls["n"] > crash_at:
                raise KeyboardInterrupt("simulated kill")
            return original(x, y)

        model.forward = crashing
    trainer = lnn.Trainer(model, lr=1e-3, epochs=epochs, batch_size=64, seed=7, run_dir=tmp_path / name,
                          resume=resume)
    trainer.fit(X)
    return model, trainer


def test_resume_after_kill_reproduces_uninterrupted_run(tmp_path):
    full, _ = _run(tmp_path, "full", 5)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "killed", 5, crash_at=5 * 2 + 3)       # dies in epoch 3 (5 batches/epoch)
    assert os.path.exists(tmp_path / "killed" / "checkpoint.pt")
    resumed, trainer = _run(tmp_path, "killed", 5, resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert trainer.history["epoch"] == [1, 2, 3, 4, 5]


def test_run_dir_is_not_overwritten(tmp_path):
    _run(tmp_path, "run", 1)
    with pytest.raises(FileExistsError, match="resume=True"):
        _run(tmp_path, "run", 1)


def test_eval_hook_records_per_dim_kl():
    X = np.random.default_rng(6).random((200, 10))
    model = lnn.VAE(10, 3, hidden=8)
    trainer = lnn.Trainer(model, epochs=2, eval_data=(X[:50],))
    hist = trainer.fit(X[50:])
    assert len(hist["eval_kl_per_dim"]) == 2 and len(hist["eval_kl_per_dim"][0]) == 3
    kl = trainer.evaluate_kl(X[:50])
    np.testing.assert_allclose(hist["eval_kl_per_dim"][-1], kl.mean(axis=0), rtol=1e-10)


def test_divergence_names_epoch_and_batch():
    torch.set_default_dtype(torch.float32)
    model = lnn.LinearTorchVAE(5, 2)
    X = np.random.default_rng(7).normal(size=(64, 5)) * 1e3
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, batch \d+"):
        lnn.Trainer(model, lr=1e25, epochs=5, batch_size=16).fit(X)


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch"):
        lnn.VAE(784, 4, arch="transformer")
    with pytest.raises(ValueError, match="beta"):
        lnn.VAE(10, 2, beta=0)
    with pytest.raises(ValueError, match="sigma"):
        lnn.VAE(10, 2, sigma=-1.0)
    with pytest.raises(ValueError, match="784"):
        lnn.VAE(10, 2, arch="cnn")
    with pytest.raises(ValueError, match="x_dim=196"):
        lnn.CVAE(10, 20, 2, arch="cnn")
    with pytest.raises(ValueError, match="NaN"):
        lnn.Trainer(lnn.VAE(3, 1, hidden=4), epochs=1).fit(np.full((4, 3), np.nan))


def test_missing_torch_names_the_install_line():
    code = "import sys; sys.modules['torch'] = None; import linvae; import linvae.nn"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(linvae.__file__))})
    assert proc.returncode != 0
    assert 'pip install "linvae[torch]"' in proc.stderr


def test_resume_refuses_changed_settings_unless_forced(tmp_path):
    X = np.random.default_rng(5).random((100, 6))
    model = lnn.VAE(6, 2, hidden=4)
    lnn.Trainer(model, lr=1e-3, epochs=2, batch_size=32, seed=1, run_dir=tmp_path, device="cpu").fit(X)
    for change in (dict(lr=1e-2), dict(seed=2), dict(batch_size=16), dict(schedule="cosine")):
        kw = {**dict(lr=1e-3, epochs=3, batch_size=32, seed=1), **change}
        with pytest.raises(ValueError, match=f"other settings.*{next(iter(change))}"):
            lnn.Trainer(lnn.VAE(6, 2, hidden=4), run_dir=tmp_path, resume=True, device="cpu", **kw).fit(X)
    trainer = lnn.Trainer(lnn.VAE(6, 2, hidden=4), lr=1e-2, epochs=3, batch_size=32, seed=1, run_dir=tmp_path,
                          resume="force", device="cpu", schedule="cosine")
    trainer.fit(X)
    assert trainer.history["epoch"] == [1, 2, 3]


def test_a_crafted_checkpoint_does_not_run_code(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / "checkpoint.pt", "wb") as f:
        pickle.dump({"model": Evil()}, f)
    trainer = lnn.Trainer(lnn.VAE(6, 2, hidden=4), epochs=1, run_dir=tmp_path / "run", resume=True, device="cpu")
    with pytest.raises(Exception):
        trainer.fit(np.random.default_rng(0).random((20, 6)))
    assert not marker.exists()


def test_resume_refuses_changed_beta_model_or_data_naming_old_and_new(tmp_path):
    # issue #17 class 3: "a different seed, β, batch size or dataset is accepted"
    X = np.random.default_rng(5).random((100, 6))
    lnn.Trainer(lnn.VAE(6, 2, hidden=4), lr=1e-3, epochs=2, batch_size=32, seed=1, run_dir=tmp_path,
                device="cpu").fit(X)
    cases = [
        (dict(model=lnn.VAE(6, 2, hidden=4, beta=2.0)), [r"beta 1\.0 -> 2\.0"]),
        (dict(model=lnn.VAE(6, 2, hidden=5)), [r"model_config\.arguments\.hidden 4 -> 5"]),
        (dict(lr=3e-3), [r"lr 0\.001 -> 0\.003"]),
        (dict(seed=4), [r"seed 1 -> 4"]),
    ]
    for change, patterns in cases:
        kw = {**dict(lr=1e-3, epochs=3, batch_size=32, seed=1), **change}
        model = kw.pop("model", lnn.VAE(6, 2, hidden=4))
        with pytest.raises(ValueError, match="other settings") as info:
            lnn.Trainer(model, run_dir=tmp_path, resume=True, device="cpu", **kw).fit(X)
        for p in patterns:
            assert re.search(p, str(info.value)), (p, str(info.value))
    model = lnn.VAE(6, 2, hidden=4)
    model.beta = 0.5                                        # changed after construction: still seen
    with pytest.raises(ValueError, match=r"hyperparameters\.beta 1\.0 -> 0\.5"):
        lnn.Trainer(model, lr=1e-3, epochs=3, batch_size=32, seed=1, run_dir=tmp_path, resume=True,
                    device="cpu").fit(X)
    for other, what in ((X[:90], r"data\.X shape \(100, 6\) float64 sha256 \w+ -> shape \(90, 6\)"),
                        (X + 1e-9, r"data\.X shape \(100, 6\) float64 sha256 (\w+) -> shape \(100, 6\) float64 "
                                   r"sha256 (?!\1)\w+"),
                        (X.astype(np.float32), r"data\.X .* float64 .* -> .* float32")):
        with pytest.raises(ValueError, match=what):
            lnn.Trainer(lnn.VAE(6, 2, hidden=4), lr=1e-3, epochs=3, batch_size=32, seed=1, run_dir=tmp_path,
                        resume=True, device="cpu").fit(other)
    # the unchanged run resumes; forced, every change is accepted (and logged)
    trainer = lnn.Trainer(lnn.VAE(6, 2, hidden=4, beta=2.0), lr=3e-3, epochs=3, batch_size=32, seed=4,
                          run_dir=tmp_path, resume="force", device="cpu")
    trainer.fit(X[:90])
    assert trainer.history["epoch"] == [1, 2, 3]
    trainer = lnn.Trainer(lnn.VAE(6, 2, hidden=4, beta=2.0), lr=3e-3, epochs=4, batch_size=32, seed=4,
                          run_dir=tmp_path, resume=True, device="cpu")
    trainer.fit(X[:90])                                     # the forced settings are now the recorded ones
    assert trainer.history["epoch"] == [1, 2, 3, 4]


def test_resume_of_a_cvae_checks_y_too(tmp_path):
    rng = np.random.default_rng(8)
    X, Y = rng.random((60, 3)), rng.random((60, 4))
    lnn.Trainer(lnn.CVAE(3, 4, 2, hidden=4), epochs=1, batch_size=16, run_dir=tmp_path, device="cpu").fit(X, Y)
    with pytest.raises(ValueError, match=r"data\.Y .* -> "):
        lnn.Trainer(lnn.CVAE(3, 4, 2, hidden=4), epochs=2, batch_size=16, run_dir=tmp_path, resume=True,
                    device="cpu").fit(X, Y[::-1])


@pytest.mark.parametrize("make", [lambda: lnn.VAE(6, 2, hidden=4, beta=0.3, sigma="global"),
                                  lambda: lnn.LinearTorchVAE(6, 2, eta_dec=0.7),
                                  lambda: lnn.CVAE(2, 4, 2, hidden=3, kl_scale=0.5),
                                  lambda: lnn.MHVAE(6, (3, 2), hidden=5, hidden2=4, beta2=0.4)])
def test_a_checkpoint_rebuilds_its_model(tmp_path, make):
    rng = np.random.default_rng(9)
    model = make()
    cvae = isinstance(model, lnn.CVAE)
    X = rng.random((48, 2 if cvae else 6))
    Y = rng.random((48, 4)) if cvae else None
    model.kl_scale = 0.75                                   # a hyperparameter set after construction
    lnn.Trainer(model, epochs=2, batch_size=16, run_dir=tmp_path, device="cpu").fit(X, Y)
    rebuilt = lnn.Trainer.load_model(tmp_path)
    assert type(rebuilt) is type(model) and rebuilt is not model
    assert rebuilt.init_arguments == model.init_arguments and rebuilt.kl_scale == 0.75
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()):
        assert torch.equal(a, b)
    model.eval()
    rebuilt.eval()
    args = [torch.as_tensor(a, dtype=torch.get_default_dtype()) for a in ((X, Y) if cvae else (X,))]
    torch.manual_seed(0)
    want = model(*args)["loss"]
    torch.manual_seed(0)
    assert torch.equal(rebuilt(*args)["loss"], want)        # same model, same forward pass


def test_load_model_refuses_unknown_classes_and_crafted_files(tmp_path):
    import pickle

    X = np.random.default_rng(5).random((40, 6))
    lnn.Trainer(lnn.VAE(6, 2, hidden=4), epochs=1, run_dir=tmp_path / "a", device="cpu").fit(X)
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    state["settings"]["model_config"]["class"] = "Popen"
    torch.save(state, tmp_path / "a" / "checkpoint.pt")
    with pytest.raises(ValueError, match="'Popen', which is not one of linvae's"):
        lnn.Trainer.load_model(tmp_path / "a")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "b").mkdir()
    with open(tmp_path / "b" / "checkpoint.pt", "wb") as f:
        pickle.dump({"settings": Evil()}, f)
    with pytest.raises(ValueError, match=r"checkpoint\.pt is not a loadable linvae checkpoint.*weights_only"):
        lnn.Trainer.load_model(tmp_path / "b")
    assert not marker.exists()
    torch.save({"model": {}}, tmp_path / "b" / "checkpoint.pt")            # loadable, but not ours
    with pytest.raises(ValueError, match="not a linvae Trainer checkpoint"):
        lnn.Trainer(lnn.VAE(6, 2, hidden=4), epochs=1, run_dir=tmp_path / "b", resume=True, device="cpu").fit(X)


def test_resume_refuses_a_checkpoint_of_other_network_code(tmp_path, monkeypatch):
    """A run_dir written before the networks' source changed is not continued as if nothing had."""
    from linvae.nn import trainer as trainer_module

    X = np.random.default_rng(5).random((60, 6))
    lnn.Trainer(lnn.VAE(6, 2, hidden=4), epochs=1, batch_size=32, run_dir=tmp_path, device="cpu").fit(X)
    monkeypatch.setattr(trainer_module, "_nn_source_digest", lambda: "edited network code")
    with pytest.raises(ValueError, match=r"other settings \(code '\w+' -> 'edited network code'"):
        lnn.Trainer(lnn.VAE(6, 2, hidden=4), epochs=2, batch_size=32, run_dir=tmp_path, resume=True,
                    device="cpu").fit(X)


def test_resnet_vae_architecture_names_no_mlp_width():
    pytest.importorskip("torch")
    assert lnn.VAE(784, 16, arch="resnet18").architecture.startswith("VAE resnet18 784→16")
    assert "784–256–16" in lnn.VAE(784, 16, hidden=256).architecture
