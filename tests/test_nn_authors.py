"""The authors' networks (SPEC §5.1) and batched training: shapes, σ parameterisation, and a
batched run equal to the same configurations trained one by one."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linvae.nn import (CVAE, TanhMHVAE, TwoBranchCVAE, BatchedTrainer, Trainer, VAE,  # noqa: E402
                       authors_vae)
from linvae.nn.models import GaussianHead  # noqa: E402


def _data(n=96, seed=0):
    X = np.random.default_rng(seed).random((n, 784))
    return X, X[:, :196], X[:, 196:]


@pytest.mark.parametrize("arch, hidden", [("linear", 16), ("relu", 100), ("cnn", 16)])
def test_two_branch_cvae_shapes_and_summed_heads(arch, hidden):
    _, x, y = _data(5)
    m = TwoBranchCVAE(arch=arch, hidden=hidden)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    mu, std = m.encode(xt, yt)
    assert mu.shape == std.shape == (5, 16)
    # μ and σ are the sums of the branches' heads; σ may have any sign and std = |σ|
    mx, sx = m.enc_x(xt)
    my, sy = m.enc_y(m._y_image(yt) if arch == "cnn" else yt)
    torch.testing.assert_close(mu, mx + my)
    torch.testing.assert_close(std, (sx + sy).abs(), atol=1e-5, rtol=1e-5)
    assert m.decode(mu, xt).shape == (5, 588)
    out = m(xt, yt)
    assert out["kl_per_dim"].shape == (5, 16) and torch.isfinite(out["loss"])
    assert m.kl_scale == 0.5                                   # the scripts' halved KL by default
    if arch == "linear":                                       # no activations anywhere
        assert not any(isinstance(mod, torch.nn.ReLU) for mod in m.modules())


def test_two_branch_decoder_is_a_sum_of_branches():
    _, x, y = _data(4)
    m = TwoBranchCVAE(arch="relu", hidden=16)
    xt = torch.as_tensor(x, dtype=torch.float32)
    z = torch.randn(4, 16)
    torch.testing.assert_close(m.decode(z, xt), m.dec_x(xt) + m.dec_z(z))
    torch.testing.assert_close(m.decode(z, xt) - m.decode(torch.zeros_like(z), xt), m.dec_z(z) - m.dec_z(0 * z))


def test_signed_sigma_head_uses_sigma_squared_as_variance():
    head = GaussianHead(3, "signed")
    h = torch.tensor([[0.1, -0.2, 0.3, -2.0, 0.5, 0.0]])
    mu, std = head(h)
    torch.testing.assert_close(mu, h[:, :3])
    torch.testing.assert_close(std, torch.tensor([[2.0, 0.5, 1e-6]]), atol=1e-6, rtol=1e-6)
    mu, std = GaussianHead(3, "signed_tanh")(h)
    torch.testing.assert_close(mu, torch.tanh(h[:, :3]))
    torch.testing.assert_close(std, torch.tanh(h[:, 3:]).abs(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_tanh_mhvae_heads_are_bounded(arch):
    X, _, _ = _data(6)
    m = TanhMHVAE(arch=arch)
    xt = torch.as_tensor(X, dtype=torch.float32) * 50            # saturate: tanh keeps everything in (−1, 1)
    mu1, s1 = m.encode(xt)
    mu2, s2 = m.encode_z2(mu1)
    assert mu1.shape == (6, 16) and mu2.shape == s2.shape == (6, 16)
    assert mu1.abs().max() <= 1 and mu2.abs().max() <= 1 and s2.max() <= 1
    torch.testing.assert_close(s1, torch.full_like(s1, 0.5))          # σ₁ fixed
    assert m.decode(mu1).abs().max() <= 1 and m.dec2(mu2).abs().max() <= 1
    assert (m.eta_enc, m.eta_dec) == (0.5, 0.5)
    if arch == "cnn":
        assert sum(isinstance(mod, torch.nn.Conv2d) for mod in m.enc1.modules()) == 2
        assert m.enc2[0].out_features == 64
    out = m(torch.as_tensor(X, dtype=torch.float32))
    assert out["kl_per_dim"].shape == (6, 16) and torch.isfinite(out["loss"])


def test_authors_vae_has_relu_means_and_one_global_sigma():
    X, _, _ = _data(8)
    m = authors_vae()
    mu, std = m.encode(torch.as_tensor(X, dtype=torch.float32))
    assert mu.min() >= 0 and mu.shape == (8, 16)
    assert m.head.mode == "global" and torch.equal(std[0], std[-1])
    assert [l.in_features for l in m.encoder if isinstance(l, torch.nn.Linear)] == [784, 256]


def _max_param_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("make, data_fn, clip", [
    (lambda b, e: TwoBranchCVAE(arch="relu", hidden=16, beta=b, eta_dec=e), lambda X, x, y: (x, y), 0.01),
    (lambda b, e: TwoBranchCVAE(arch="cnn", beta=b, eta_dec=e), lambda X, x, y: (x, y), 0.1),
    (lambda b, e: TanhMHVAE(beta2=b, eta_dec=e), lambda X, x, y: (X,), 0.1),
    (lambda b, e: CVAE(arch="mlp", hidden=32, beta=b, eta_dec=e), lambda X, x, y: (x, y), None),
    (lambda b, e: VAE(784, 8, hidden=32, beta=b, eta_dec=e, sigma="global"), lambda X, x, y: (X,), 1.0),
])
def test_batched_training_equals_sequential_training(float64, make, data_fn, clip):
    X, x, y = _data()
    data = data_fn(X, x, y)
    configs = [(0.5, 1.0, 0), (2.0, 0.5, 1), (1.0, 2.0, 7)]      # β, η_dec and seed all differ
    sequential = []
    for b, e, s in configs:
        m = make(b, e)
        Trainer(m, epochs=2, batch_size=40, seed=s, clip=clip, device="cpu").fit(*data)   # 3 batches/epoch
        sequential.append(m)
    batched = [make(b, e) for b, e, _ in configs]
    trainer = BatchedTrainer(batched, seeds=[s for *_, s in configs], epochs=2, batch_size=40, clip=clip, device="cpu")
    histories = trainer.fit(*data)
    assert trainer.steps == 6
    for a, b, h in zip(sequential, batched, histories):
        assert _max_param_diff(a, b) < 1e-6
    ref = Trainer(make(*configs[1][:2]), epochs=2, batch_size=40, seed=configs[1][2], clip=clip, device="cpu")
    np.testing.assert_allclose(histories[1]["loss"], ref.fit(*data)["loss"], rtol=1e-9)
    # a stack of one (its own code path, without vmap) is the sequential training too
    alone = make(*configs[2][:2])
    one = BatchedTrainer([alone], seeds=[configs[2][2]], epochs=2, batch_size=40, clip=clip, device="cpu")
    np.testing.assert_allclose(one.fit(*data)[0]["loss"], histories[2]["loss"], rtol=1e-9)
    assert _max_param_diff(alone, sequential[2]) < 1e-6


def test_batched_checkpoint_resumes_to_the_uninterrupted_run(float64, tmp_path, monkeypatch):
    X, x, y = _data()
    make = lambda: [TwoBranchCVAE(arch="relu", hidden=16, beta=b) for b in (0.5, 2.0)]  # noqa: E731
    whole = make()
    BatchedTrainer(whole, seeds=[0, 3], epochs=4, batch_size=40, clip=0.01, device="cpu").fit(x, y)

    path = tmp_path / "stack.pt"
    stopped = make()
    trainer = BatchedTrainer(stopped, seeds=[0, 3], epochs=4, batch_size=40, clip=0.01, device="cpu",
                             checkpoint=path, checkpoint_every=0)
    original = BatchedTrainer._epoch

    def stop_in_third_epoch(self, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(BatchedTrainer, "_epoch", stop_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(x, y)
    monkeypatch.setattr(BatchedTrainer, "_epoch", original)
    assert torch.load(path, weights_only=True)["epoch"] == 2

    resumed = make()
    again = BatchedTrainer(resumed, seeds=[0, 3], epochs=4, batch_size=40, clip=0.01, device="cpu",
                           checkpoint=path, checkpoint_every=0)
    histories = again.fit(x, y)
    assert again.resumed_from == 2 and again.steps == 12 and histories[0]["epoch"] == [1, 2, 3, 4]
    for a, b in zip(whole, resumed):
        assert _max_param_diff(a, b) == 0.0          # the same computation, bit for bit
    # a finished checkpoint trains nothing: its weights come back as they are
    done = make()
    loaded = BatchedTrainer(done, seeds=[0, 3], epochs=4, batch_size=40, clip=0.01, device="cpu", checkpoint=path)
    monkeypatch.setattr(BatchedTrainer, "_epoch", lambda *a: pytest.fail("trained from a finished checkpoint"))
    loaded.fit(x, y)
    assert loaded.resumed_from == 4 and all(_max_param_diff(a, b) == 0.0 for a, b in zip(whole, done))


def test_batched_checkpoint_of_other_settings_is_refused(tmp_path):
    _, x, y = _data(40)
    path = tmp_path / "stack.pt"
    BatchedTrainer([TwoBranchCVAE(hidden=4)], epochs=1, batch_size=40, device="cpu", checkpoint=path).fit(x, y)
    with pytest.raises(ValueError, match="other models, seeds, settings or data"):
        BatchedTrainer([TwoBranchCVAE(hidden=4)], lr=1e-2, epochs=1, batch_size=40, device="cpu",
                       checkpoint=path).fit(x, y)
    with pytest.raises(ValueError, match="other models, seeds, settings or data"):
        BatchedTrainer([TwoBranchCVAE(hidden=4)], epochs=1, batch_size=40, device="cpu",
                       checkpoint=path).fit(x + 1e-3, y)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        BatchedTrainer([TwoBranchCVAE(hidden=4)], epochs=1, device="cpu", checkpoint=tmp_path / "junk.pt").fit(x, y)


def test_batched_trainer_rejects_mixed_models_and_batch_norm():
    with pytest.raises(ValueError, match="one class"):
        BatchedTrainer([TwoBranchCVAE(), CVAE()])
    with pytest.raises(ValueError, match="batch normalisation"):
        BatchedTrainer([VAE(784, 4, arch="resnet18")])
    with pytest.raises(ValueError, match="same parameters"):
        BatchedTrainer([VAE(784, 4, sigma="global"), VAE(784, 4, sigma=1.0)])
    with pytest.raises(ValueError, match="one seed per model"):
        BatchedTrainer([TwoBranchCVAE(), TwoBranchCVAE()], seeds=[1, 2, 3])


def test_batched_divergence_names_the_model(float64):
    X, x, y = _data()
    models = [TwoBranchCVAE(beta=1.0), TwoBranchCVAE(beta=1.0, eta_dec=1e-160)]
    from linvae import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match="model 1"):
        BatchedTrainer(models, seeds=[0, 1], epochs=1, batch_size=48, device="cpu").fit(x * 1e150, y * 1e150)


def test_batched_fingerprint_follows_the_network_code(monkeypatch):
    from linvae.nn import batched

    _, x, y = _data(40)
    trainer = BatchedTrainer([TwoBranchCVAE(hidden=4)], epochs=1, batch_size=40, device="cpu")
    before = trainer.fingerprint(x, y)
    assert trainer.fingerprint(x, y) == before
    monkeypatch.setattr(batched, "_nn_source_digest", lambda: "edited network code")
    assert trainer.fingerprint(x, y) != before
