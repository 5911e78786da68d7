"""Watch posterior collapse while training any VAE: :class:`CollapseMonitor`.

The monitor needs only an encoder callable returning the Gaussian posterior's mean and spread
and a data loader; it works in a plain PyTorch loop (call :meth:`CollapseMonitor.step` after
each optimizer step), with NumPy encoders, and as a PyTorch Lightning callback
(:func:`lightning_callback`, ``pip install lightning``).

Example
-------
::

    monitor = CollapseMonitor(lambda x: model.encode(x), val_loader, every=200, output="logvar")
    for step, (x, _) in enumerate(train_loader):
        loss = model(x).loss; opt.zero_grad(); loss.backward(); opt.step()
        monitor.step()
    monitor.to_frame()      # one row per record × latent dim
    monitor.plot()
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from . import metrics
from ._deps import import_optional
from ._validation import check_choice

__all__ = ["CollapseMonitor", "lightning_callback", "record_metrics"]

log = logging.getLogger(__name__)

OUTPUTS = {"std", "logvar", "var"}


def _first(batch):
    """The model input of a batch: the batch itself, or its first element for (x, y) pairs."""
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, dict):
        for key in ("x", "input", "inputs", "image", "images"):
            if key in batch:
                return batch[key]
        raise KeyError(f"cannot find the input in a batch with keys {sorted(batch)}; pass input_fn=")
    return batch


def _to_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


class CollapseMonitor:
    """Record per-dim KL, (ε, δ)-collapse counts and active units of a VAE during training.

    Parameters
    ----------
    encoder : callable
        ``encoder(x)`` for a batch ``x`` returns ``(mu, spread)`` (tensors or arrays of shape
        (batch, latent_dim); ``spread`` may also be a (latent_dim,) vector), or a mapping with
        ``"mu"`` and ``"std"`` / ``"logvar"`` keys (the output of ``linvae.nn`` models).
    loader : iterable
        Batches to evaluate on (a ``torch.utils.data.DataLoader``, a list of arrays, ...); each
        batch, or its first element for ``(x, y)`` pairs, is passed to ``encoder``.
    every : int, default 100
        :meth:`step` records every this many calls.
    eps : sequence of float, default (1e-3, 1e-2, 1e-1)
        ε values of the (ε, δ)-collapse counts.
    delta : float, default 0.05
        δ of the (ε, δ)-collapse counts (the paper's Figs 2–3).
    prior_std : float, default 1.0
        η_enc, the prior standard deviation.
    output : {"std", "logvar", "var"}, default "std"
        What the encoder's second output is: σ, log σ² or σ².
    au_threshold : float, default 0.01
        Threshold of both active-unit definitions.
    max_batches : int, optional
        Evaluate at most this many batches per record.
    input_fn : callable, optional
        Maps a batch to the encoder's input (default: the batch, or its first element).
    progress : bool, default False
        Show a tqdm progress bar over the batches of each record (off by default: the monitor runs
        inside someone else's training loop, which has its own bar).

    Attributes
    ----------
    records : list of dict
        One entry per record: ``step``, ``kl`` (data-mean KL per dim, nats), ``collapsed``
        (the per-dim (ε, δ) masks, one row per ε), ``au_variance`` (Burda et al.'s count),
        ``au_kl`` (the authors' scripts' KL fraction) and ``n_samples``.

    See Also
    --------
    linvae.metrics.kl_per_dim, linvae.metrics.collapse_curve : The metrics it records.
    linvae.metrics.active_units_variance, linvae.metrics.active_units_kl : The two AU definitions.

    Notes
    -----
    A dim is (ε, δ)-collapsed when ``P_x[KL_i(x) < ε] ≥ 1 − δ`` (Lucas et al. 2019), the
    criterion of the paper's collapse plots (Figs 2–3, δ = 0.05).
    """

    def __init__(self, encoder: Callable[[Any], Any], loader: Iterable, *, every: int = 100,
                 eps: Sequence[float] = (1e-3, 1e-2, 1e-1), delta: float = 0.05, prior_std: float = 1.0,
                 output: str = "std", au_threshold: float = 0.01, max_batches: Optional[int] = None,
                 input_fn: Optional[Callable[[Any], Any]] = None, progress: bool = False):
        if not callable(encoder):
            raise TypeError(f"encoder must be callable (a batch -> (mu, std)), got {type(encoder).__name__}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        eps = np.atleast_1d(np.asarray(eps, dtype=float))
        if eps.ndim != 1 or eps.size == 0 or np.any(~np.isfinite(eps)) or np.any(eps <= 0):
            raise ValueError(f"eps must be a non-empty sequence of finite values > 0, got {eps!r}")
        check_choice(output, "output", OUTPUTS)
        if not 0.0 <= float(delta) < 1.0:
            raise ValueError(f"delta must be in [0, 1), got {delta!r}")
        if not float(prior_std) > 0:
            raise ValueError(f"prior_std must be > 0, got {prior_std!r}")
        self.encoder = encoder
        self.loader = loader
        self.every = int(every)
        self.eps = eps
        self.delta = float(delta)
        self.prior_std = float(prior_std)
        self.output = output
        self.au_threshold = float(au_threshold)
        self.max_batches = max_batches
        self.input_fn = input_fn or _first
        self.progress = progress
        self.records: list = []
        self._calls = 0

    # ------------------------------------------------------------------ collection
    def _encode_all(self):
        """Encoder means and per-example KL over the loader, without gradients."""
        torch = None
        try:
            import torch
        except ImportError:  # NumPy encoders need no torch
            pass
        modules = [m for m in (getattr(self.encoder, "__self__", None), self.encoder)
                   if torch is not None and isinstance(m, torch.nn.Module)]
        was_training = [m.training for m in modules]
        for m in modules:
            m.eval()
        mus, kls = [], []
        batches = self.loader
        if self.progress:
            tqdm = import_optional("tqdm.auto").tqdm
            total = len(self.loader) if hasattr(self.loader, "__len__") else None
            if total is not None and self.max_batches is not None:
                total = min(total, self.max_batches)
            batches = tqdm(batches, total=total, desc="collapse monitor", leave=False)
        try:
            ctx = torch.no_grad() if torch is not None else _null()
            with ctx:
                for b, batch in enumerate(batches):
                    if self.max_batches is not None and b >= self.max_batches:
                        break
                    mu, spread = self._split(self.encoder(self.input_fn(batch)))
                    mu = _to_numpy(mu)
                    spread = _to_numpy(spread)
                    if self.output == "std":
                        kl = metrics.kl_per_dim(mu, std=np.broadcast_to(spread, mu.shape), prior_std=self.prior_std)
                    else:
                        logvar = spread if self.output == "logvar" else np.log(spread)
                        kl = metrics.kl_per_dim(mu, np.broadcast_to(logvar, mu.shape), prior_std=self.prior_std)
                    mus.append(mu)
                    kls.append(kl)
        finally:
            if self.progress and hasattr(batches, "close"):
                batches.close()
            for m, t in zip(modules, was_training):
                m.train(t)
        if not mus:
            raise ValueError("the loader yielded no batches; the monitor needs data to evaluate")
        return np.concatenate(mus), np.concatenate(kls)

    @staticmethod
    def _split(out):
        if isinstance(out, dict) or hasattr(out, "keys"):
            mu = out["mu"]
            for key in ("std", "logvar", "var"):
                if key in out:
                    return mu, out[key]
            raise KeyError("the encoder's mapping must hold 'mu' and one of 'std', 'logvar', 'var'")
        if not isinstance(out, (tuple, list)) or len(out) < 2:
            raise TypeError(f"the encoder must return (mu, std_or_logvar) or a mapping, got {type(out).__name__}")
        return out[0], out[1]

    def record(self, step: Optional[int] = None) -> dict:
        """Evaluate the encoder on the loader now and append a record.

        Parameters
        ----------
        step : int, optional
            The training step to file the record under (default: the number of :meth:`step` calls).

        Returns
        -------
        dict
            The new record (see :attr:`records`).
        """
        mu, kl = self._encode_all()
        if not np.all(np.isfinite(kl)):
            raise FloatingPointError("the encoder produced non-finite means or spreads "
                                     f"(step {self._calls if step is None else step}); training diverged")
        rec = {
            "step": int(self._calls if step is None else step),
            "kl": kl.mean(axis=0),
            "collapsed": metrics.collapse_curve(kl, self.eps, self.delta, per_dim=True),
            "au_variance": metrics.active_units_variance(mu, self.au_threshold) if len(mu) > 1 else 0,
            "au_kl": metrics.active_units_kl(kl, self.au_threshold),
            "n_samples": int(len(mu)),
        }
        self.records.append(rec)
        log.debug("collapse monitor at step %d: %s", rec["step"], rec["kl"])
        return rec

    def step(self, step: Optional[int] = None) -> Optional[dict]:
        """Count one training step; record when the count is a multiple of ``every``.

        Parameters
        ----------
        step : int, optional
            The current global step, when the caller tracks it (then it decides when to record).

        Returns
        -------
        dict or None
            The new record, if one was taken.
        """
        self._calls = self._calls + 1 if step is None else int(step)
        if self.records and self.records[-1]["step"] == self._calls:
            return None          # the same step reported twice (e.g. gradient accumulation)
        if self._calls % self.every == 0:
            return self.record()
        return None

    # ------------------------------------------------------------------ views
    def to_frame(self, form: str = "long") -> "pandas.DataFrame":  # noqa: F821
        """The records as a pandas DataFrame.

        Parameters
        ----------
        form : {"long", "wide"}, default "long"
            ``"long"``: one row per record × latent dim with ``step``, ``dim``, ``kl`` and one
            boolean ``collapsed@eps`` column per ε. ``"wide"``: one row per record with
            ``n_collapsed@eps`` per ε, ``au_variance``, ``au_kl``, ``n_samples`` and ``kl_i`` per dim.

        Returns
        -------
        pandas.DataFrame
            The table.
        """
        pd = import_optional("pandas")
        check_choice(form, "form", {"long", "wide"})
        names = [f"{e:g}" for e in self.eps]
        rows = []
        for r in self.records:
            d = len(r["kl"])
            if form == "long":
                for i in range(d):
                    row = {"step": r["step"], "dim": i, "kl": r["kl"][i]}
                    row.update({f"collapsed@{n}": bool(r["collapsed"][k, i]) for k, n in enumerate(names)})
                    rows.append(row)
            else:
                row = {"step": r["step"]}
                row.update({f"n_collapsed@{n}": int(r["collapsed"][k].sum()) for k, n in enumerate(names)})
                row.update(au_variance=r["au_variance"], au_kl=r["au_kl"], n_samples=r["n_samples"])
                row.update({f"kl_{i}": r["kl"][i] for i in range(d)})
                rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, ax=None) -> "matplotlib.figure.Figure":  # noqa: F821
        """Per-dim KL (log scale) and the collapse counts against the training step.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, optional
            Where to draw (default: a new figure with two panels).

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        plt = import_optional("matplotlib.pyplot")
        if not self.records:
            raise ValueError("nothing recorded yet: call step() or record() first")
        if ax is None:
            fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        fig = ax[0].figure
        steps = [r["step"] for r in self.records]
        kl = np.array([r["kl"] for r in self.records])
        for i in range(kl.shape[1]):
            ax[0].plot(steps, np.maximum(kl[:, i], 1e-12), label=f"z{i}")
        ax[0].set_yscale("log")
        ax[0].set_xlabel("step")
        ax[0].set_ylabel("KL per dim (nats)")
        for k, e in enumerate(self.eps):
            ax[1].plot(steps, [r["collapsed"][k].sum() for r in self.records], label=f"(ε={e:g}, δ={self.delta:g})")
        ax[1].plot(steps, [r["au_variance"] for r in self.records], "k--", label="AU (variance)")
        ax[1].set_xlabel("step")
        ax[1].set_ylabel("latent dims")
        ax[1].legend(fontsize="small")
        return fig


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def lightning_callback(monitor: CollapseMonitor) -> Any:
    """A PyTorch Lightning callback that drives a monitor and logs its records.

    It calls ``monitor.step(global_step)`` after each batch and logs each record, at its step, to
    every logger of the Trainer (CSVLogger, TensorBoard, ...) and into ``trainer.callback_metrics``,
    under the names of :func:`record_metrics`.

    Parameters
    ----------
    monitor : CollapseMonitor
        The monitor to drive.

    Returns
    -------
    lightning.pytorch.Callback
        Pass it to ``Trainer(callbacks=[...])``. Needs ``pip install lightning`` (or the older
        ``pytorch-lightning``).
    """
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError as exc:
            from ._deps import MissingDependencyError

            raise MissingDependencyError(
                "PyTorch Lightning is required for lightning_callback but could not be imported "
                f"({exc}). Install it with: pip install lightning") from exc

    class CollapseMonitorCallback(Callback):
        """Records collapse statistics every ``monitor.every`` training steps and logs them."""

        def __init__(self):
            super().__init__()
            self.monitor = monitor

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            record = self.monitor.step(trainer.global_step)
            if record is None:
                return
            values = record_metrics(record, self.monitor.eps)
            # straight to the loggers, once per record (pl_module.log would repeat the value on the
            # steps between records), and into callback_metrics for checkpoint/early-stopping callbacks
            for logger in trainer.loggers:
                logger.log_metrics(values, step=record["step"])
            import torch

            trainer.callback_metrics.update({name: torch.tensor(v) for name, v in values.items()})

    return CollapseMonitorCallback()


def record_metrics(record: dict, eps: Sequence[float]) -> dict:
    """The scalar metrics of one :class:`CollapseMonitor` record, as the Lightning callback logs them.

    Names: ``collapse/kl_total`` (data-mean KL summed over dims, nats), ``collapse/au_kl`` (the
    authors' KL-fraction active units), ``collapse/au_variance`` (Burda et al.'s count) and
    ``collapse/n_collapsed_eps=<ε>`` for each ε of the monitor (the (ε, δ)-collapsed count).
    """
    out = {"collapse/kl_total": float(np.sum(record["kl"])), "collapse/au_kl": float(record["au_kl"]),
           "collapse/au_variance": float(record["au_variance"])}
    for e, mask in zip(eps, record["collapsed"]):
        out[f"collapse/n_collapsed_eps={e:g}"] = float(np.sum(mask))
    return out
