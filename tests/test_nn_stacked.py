"""The stacked execution of B MLP models (linvae.nn.stacked): the models' own forward on a leading
model axis equals each model's forward alone, and BatchedTrainer's stacked path trains what
sequential training gives."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linvae.nn import CVAE, MHVAE, TanhMHVAE, TwoBranchCVAE, BatchedTrainer, Trainer, VAE, authors_vae  # noqa: E402
from linvae.nn.stacked import StackedModel, supports_stacking  # noqa: E402

FAMILIES = {
    "two-branch relu": (lambda b, e: TwoBranchCVAE(arch="relu", hidden=12, beta=b, eta_dec=e), "xy"),
    "two-branch linear": (lambda b, e: TwoBranchCVAE(arch="linear", hidden=12, beta=b, eta_dec=e), "xy"),
    "tanh mhvae": (lambda b, e: TanhMHVAE(hidden=24, hidden2=20, beta1=b, eta_dec=e), "X"),
    "mhvae linear": (lambda b, e: MHVAE(784, (5, 3), arch="linear", beta2=b, eta_enc=e), "X"),
    "authors vae": (lambda b, e: authors_vae(hidden=24, beta=b, eta_enc=e), "X"),
    "vae fixed σ": (lambda b, e: VAE(784, 6, hidden=20, sigma=[0.5, 1, 2, 0.7, 1.1, 0.9], beta=b, eta_dec=e), "X"),
    "vae learnable": (lambda b, e: VAE(784, 6, hidden=20, beta=b, eta_dec=e), "X"),
    "cvae mlp": (lambda b, e: CVAE(hidden=20, latent_dim=5, beta=b, eta_dec=e), "xy"),
}
CONFIGS = [(0.3, 1.7, 2), (2.5, 0.6, 5), (1.0, 1.0, 11)]          # β-like, η-like and seed all differ


def _data(n=60, seed=3):
    X = np.random.default_rng(seed).random((n, 784))
    return {"X": (X,), "xy": (X[:, :196], X[:, 196:])}


def test_which_networks_run_stacked():
    for make, _ in FAMILIES.values():
        assert supports_stacking(make(1.0, 1.0))
    assert not supports_stacking(TwoBranchCVAE(arch="cnn"))
    assert not supports_stacking(TanhMHVAE(arch="cnn"))
    assert not supports_stacking(VAE(784, 4, arch="resnet18"))
    assert not supports_stacking(CVAE(arch="cnn"))


@pytest.mark.parametrize("family", FAMILIES)
def test_stacked_forward_is_each_models_forward(float64, family):
    make, kind = FAMILIES[family]
    data = [torch.as_tensor(d[:17]) for d in _data()[kind]]
    models = []
    for b, e, s in CONFIGS:
        torch.manual_seed(s)
        models.append(make(b, e))
    stack = StackedModel(models)
    noise = [torch.randn((len(models),) + s, dtype=torch.float64) for s in models[0].noise_shapes(17)]
    hyper = {k: torch.tensor([float(getattr(m, k)) for m in models]) for k in type(models[0]).HYPERPARAMETERS}
    loss, kl = stack(hyper, [d.expand(len(models), *d.shape) for d in data], noise)
    for i, m in enumerate(models):
        out = m(*data, noise=[z[i] for z in noise])
        torch.testing.assert_close(loss[i], out["loss"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(kl[i], out["kl"].sum(), rtol=1e-12, atol=1e-12)
    # the gradients reach every model's own parameters: model i's loss moves only model i's
    loss[1].backward()
    assert len(stack.leaves) == len(stack.params)
    for leaf in stack.leaves:
        grads = leaf.grad.unbind(0)
        assert float(grads[0].abs().max()) == 0.0 and float(grads[2].abs().max()) == 0.0
        assert float(grads[1].abs().max()) > 0.0 or leaf.shape[-1] == 1
    # the stacked parameters are the models' own, in their layout
    for name, value in stack.params.items():
        for i, m in enumerate(models):
            assert torch.equal(value[i], m.get_parameter(name)), name


@pytest.mark.parametrize("family", ["tanh mhvae", "vae fixed σ", "two-branch relu", "authors vae"])
def test_stacked_training_equals_sequential_training(float64, family):
    make, kind = FAMILIES[family]
    data = _data()[kind]
    sequential = []
    for b, e, s in CONFIGS:
        m = make(b, e)
        Trainer(m, epochs=2, batch_size=25, seed=s, clip=0.05, device="cpu").fit(*data)     # 3 batches/epoch
        sequential.append(m)
    batched = [make(b, e) for b, e, _ in CONFIGS]
    trainer = BatchedTrainer(batched, seeds=[s for *_, s in CONFIGS], epochs=2, batch_size=25, clip=0.05,
                             device="cpu")
    histories = trainer.fit(*data)
    assert trainer.path == "stacked" and trainer.steps == 6
    for a, b in zip(sequential, batched):
        diff = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))
        assert diff < 1e-9
    ref = Trainer(make(*CONFIGS[0][:2]), epochs=2, batch_size=25, seed=CONFIGS[0][2], clip=0.05, device="cpu")
    np.testing.assert_allclose(histories[0]["loss"], ref.fit(*data)["loss"], rtol=1e-10)


def test_stacked_checkpoint_resumes_bit_for_bit(float64, tmp_path, monkeypatch):
    _, x, y = _data()["X"] + _data()["xy"]
    make = lambda: [TwoBranchCVAE(arch="relu", hidden=10, beta=b) for b in (0.4, 3.0)]  # noqa: E731
    whole = make()
    BatchedTrainer(whole, seeds=[1, 4], epochs=3, batch_size=25, clip=0.02, device="cpu").fit(x, y)
    path = tmp_path / "stack.pt"
    original = BatchedTrainer._epoch

    def stop_in_second_epoch(self, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(BatchedTrainer, "_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        BatchedTrainer(make(), seeds=[1, 4], epochs=3, batch_size=25, clip=0.02, device="cpu", checkpoint=path,
                       checkpoint_every=0).fit(x, y)
    monkeypatch.setattr(BatchedTrainer, "_epoch", original)
    resumed = make()
    again = BatchedTrainer(resumed, seeds=[1, 4], epochs=3, batch_size=25, clip=0.02, device="cpu", checkpoint=path,
                           checkpoint_every=0)
    again.fit(x, y)
    assert again.resumed_from == 1 and again.path == "stacked"
    for a, b in zip(whole, resumed):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_convolutional_networks_keep_the_vmap_path():
    _, x, y = _data(30)["X"] + _data(30)["xy"]
    trainer = BatchedTrainer([TwoBranchCVAE(arch="cnn", beta=b) for b in (0.5, 2.0)], seeds=[0, 1], epochs=1,
                             batch_size=30, device="cpu")
    trainer.fit(x, y)
    assert trainer.path == "vmap"
