"""CollapseMonitor on a small VAE written here, not one of linvae's (issue #18)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from linvae.monitor import CollapseMonitor, lightning_callback  # noqa: E402


class TinyVAE(nn.Module):
    """A user's own MLP VAE: encoder -> (mu, logvar), Gaussian decoder with unit variance."""

    def __init__(self, d=6, latent=4, hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, hidden), nn.Tanh())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, d))
        self.drop = nn.Dropout(0.5)       # makes train/eval mode observable

    def encode(self, x):
        h = self.drop(self.body(x))
        return self.mu(h), self.logvar(h)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = 0.5 * ((self.dec(z) - x) ** 2).sum(1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
        return (rec + kl).mean()


def _data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, 2, generator=g) * 2.0                      # two strong factors
    A = torch.randn(2, 6, generator=g)
    return s @ A + 0.1 * torch.randn(n, 6, generator=g)


def _reference(model, X):
    """Independent statistics straight from the encoder: KL per example and dim, and means."""
    model.eval()
    with torch.no_grad():
        mu, logvar = model.encode(X)
    model.train()
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    return mu.double().numpy(), kl.double().numpy()


@pytest.mark.slow
def test_monitor_in_a_plain_torch_loop():
    torch.manual_seed(0)
    X = _data()
    train = DataLoader(TensorDataset(X), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(X), batch_size=100)             # (x,) tuples, 6 batches
    model = TinyVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = CollapseMonitor(model.encode, val, every=40, output="logvar", eps=[1e-2, 1e-1], progress=True)
    steps = 0
    for _ in range(40):
        for (x,) in train:
            loss = model(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            mon.step()
    assert model.training                                          # the monitor restored train mode
    assert [r["step"] for r in mon.records] == list(range(40, steps + 1, 40))

    last = mon.records[-1]
    mu, kl = _reference(model, X)                                  # same weights as the last record
    np.testing.assert_allclose(last["kl"], kl.mean(0), rtol=1e-5, atol=1e-7)
    for k, eps in enumerate([1e-2, 1e-1]):
        expected = (kl < eps).mean(0) >= 0.95
        np.testing.assert_array_equal(last["collapsed"][k], expected)
    assert last["au_variance"] == int((mu.var(0, ddof=1) > 0.01).sum())
    assert last["au_kl"] == pytest.approx(float((kl >= 0.01).mean()), abs=1e-12)
    # the model learned the two factors and let the other two dims collapse to the prior
    assert last["au_variance"] == 2 and last["collapsed"][1].sum() == 2
    # early on fewer dims had collapsed than at the end (collapse is a training dynamic)
    assert mon.records[0]["collapsed"][1].sum() <= last["collapsed"][1].sum()

    df = mon.to_frame()
    assert len(df) == len(mon.records) * 4
    np.testing.assert_allclose(df[df.step == last["step"]].sort_values("dim")["kl"], last["kl"])
    wide = mon.to_frame("wide")
    assert wide["n_collapsed@0.1"].tolist() == [int(r["collapsed"][1].sum()) for r in mon.records]
    fig = mon.plot()
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_std_and_var_outputs_agree_with_logvar_and_numpy_encoders():
    torch.manual_seed(1)
    X = _data(200, seed=1)
    model = TinyVAE().eval()         # the lambdas below hide the module from the monitor
    batches = [X[i:i + 50] for i in range(0, 200, 50)]            # plain tensors, no DataLoader
    a = CollapseMonitor(model.encode, batches, output="logvar", progress=False).record()
    b = CollapseMonitor(lambda x: (model.encode(x)[0], model.encode(x)[1].mul(0.5).exp()), batches,
                        output="std", progress=False).record()
    c = CollapseMonitor(lambda x: {"mu": model.encode(x)[0], "var": model.encode(x)[1].exp()}, batches,
                        output="var", progress=False).record()
    np.testing.assert_allclose(b["kl"], a["kl"], rtol=1e-5)
    np.testing.assert_allclose(c["kl"], a["kl"], rtol=1e-5)
    # a NumPy encoder: z ~ N(Wx, diag s²), closed-form mean KL against η_enc = 2
    rng = np.random.default_rng(0)
    Xn = rng.normal(size=(300, 3))
    W, s = rng.normal(size=(3, 2)), np.array([0.5, 2.0])
    mon = CollapseMonitor(lambda x: (x @ W, s), [Xn[:150], Xn[150:]], prior_std=2.0, progress=False)
    rec = mon.record(step=7)
    mu = Xn @ W
    ref = 0.5 * (mu**2 / 4 + s**2 / 4 - 1 - np.log(s**2 / 4)).mean(0)
    np.testing.assert_allclose(rec["kl"], ref, rtol=1e-12)
    assert rec["step"] == 7 and rec["n_samples"] == 300


def test_monitor_rejects_bad_arguments_and_divergence():
    with pytest.raises(ValueError, match="every"):
        CollapseMonitor(lambda x: x, [], every=0)
    with pytest.raises(ValueError, match="output"):
        CollapseMonitor(lambda x: x, [], output="sigma")
    with pytest.raises(ValueError, match="no batches"):
        CollapseMonitor(lambda x: (x, x), [], progress=False).record()
    bad = [np.array([[np.nan, 1.0], [0.0, 1.0]])]
    with pytest.raises((FloatingPointError, ValueError), match="NaN|non-finite"):
        CollapseMonitor(lambda x: (x, np.ones(2)), bad, progress=False).record()


def _lightning_vae(L):
    """A LightningModule training :class:`TinyVAE` with Adam."""
    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.vae = TinyVAE()

        def training_step(self, batch, i):
            return self.vae(batch[0])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    return Module()


def test_lightning_callback():
    L = pytest.importorskip("lightning.pytorch")
    torch.manual_seed(0)
    X = _data(256)

    m = _lightning_vae(L)
    mon = CollapseMonitor(m.vae.encode, DataLoader(TensorDataset(X), batch_size=128), every=4,
                          output="logvar", progress=False)
    L.Trainer(max_epochs=2, callbacks=[lightning_callback(mon)], logger=False, enable_checkpointing=False,
              enable_progress_bar=False).fit(m, DataLoader(TensorDataset(X), batch_size=32))
    assert [r["step"] for r in mon.records] == [4, 8, 12, 16]


def test_lightning_callback_logs_collapse_metrics_to_the_csv_logger(tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(1)
    X = _data(256)

    m = _lightning_vae(L)
    mon = CollapseMonitor(m.vae.encode, DataLoader(TensorDataset(X), batch_size=128), every=3, eps=(1e-2, 1e-1),
                          output="logvar")
    assert mon.progress is False                                    # no bar beside Lightning's own
    trainer = L.Trainer(max_epochs=2, callbacks=[lightning_callback(mon)], logger=CSVLogger(tmp_path, name="run"),
                        enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=1)
    trainer.fit(m, DataLoader(TensorDataset(X), batch_size=32))
    names = {"collapse/kl_total", "collapse/au_kl", "collapse/au_variance", "collapse/n_collapsed_eps=0.01",
             "collapse/n_collapsed_eps=0.1"}
    assert names <= set(trainer.callback_metrics)
    import csv

    with open(tmp_path / "run" / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("collapse/kl_total")]
    assert names <= set(rows[0]) and len(rows) == len(mon.records)
    last = mon.records[-1]
    np.testing.assert_allclose(float(rows[-1]["collapse/kl_total"]), last["kl"].sum(), rtol=1e-5)
    assert float(rows[-1]["collapse/n_collapsed_eps=0.1"]) == last["collapsed"][1].sum()
