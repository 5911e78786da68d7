"""Train several configurations of one network as a single batched model (``torch.func``).

A figure of the paper trains the same network at several β or η values and, here, over several
seeds.  On a CPU each of these small models spends most of its time in per-operation overhead, so
:class:`BatchedTrainer` stacks their weights (:func:`torch.func.stack_module_state`), runs one
``vmap``-ed :func:`torch.func.functional_call` per step over all of them, and updates the stack
with one Adam.  Every configuration sees exactly what :class:`~linvae.nn.Trainer` would give it on
its own: the same initialization, the same shuffled batches and the same reparameterization noise
(both seeded from its own seed), the gradient-norm clipping applied per configuration, and Adam
(elementwise, so per configuration).  The test suite checks that the two agree.
"""
import copy
import hashlib
import json
import logging
import math
import os
import time

import numpy as np
import torch

from .._deps import import_optional
from .._validation import check_int, check_nonneg, check_positive
from ..exceptions import TrainingDivergedError
from .stacked import StackedModel, hyperparameters, supports_stacking
from .trainer import (Trainer, _atomic_save, _nn_source_digest, data_fingerprint, epoch_seeds, initialize,
                      model_config, torch_load)

logger = logging.getLogger(__name__)

__all__ = ["BatchedTrainer"]


class BatchedTrainer:
    """Minibatch Adam for B models of one architecture, trained together.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        B linvae models of the same class and shapes; they may differ in their scalar
        hyperparameters (``type(model).HYPERPARAMETERS``: β, β₁, β₂, η_enc, η_dec, KL scale).
        Models with batch normalisation (ResNet-18) are not supported (train them with
        :class:`~linvae.nn.Trainer`).
    seeds : int or sequence of int
        One seed per model (or one for all): initialization, shuffling and noise, as in
        :class:`~linvae.nn.Trainer`.
    lr, epochs, batch_size, clip
        As in :class:`~linvae.nn.Trainer`; ``clip`` bounds each model's own gradient norm.
    progress : bool
        A ``tqdm.auto`` bar over epochs.
    device : {"auto", "cpu", "cuda"}
    checkpoint : str or path-like, optional
        A file that holds the whole stack (weights, Adam moments, histories, epoch) written
        atomically at most every ``checkpoint_every`` seconds and after the last epoch.  When it
        exists, :meth:`fit` continues from it, and a finished checkpoint is loaded without any
        training, so a long run survives being stopped.  The file records a fingerprint of the
        models' configurations, seeds, settings, data, torch version and the source of
        :mod:`linvae.nn`; a checkpoint with another fingerprint
        is refused (ValueError naming the file) rather than silently continued.
    checkpoint_every : float
        Seconds between checkpoint writes (0: after every epoch).

    Notes
    -----
    ``trainer.fit(X[, Y])`` trains and writes the trained weights back into ``models``; the
    per-model histories are in ``trainer.histories``.  Equivalence with sequential training is
    tested to 1e-6 (float64) in ``tests/test_nn_batched.py``.  Every epoch reseeds its shuffling
    and noise from ``(seed, epoch)``, so a run resumed from a checkpoint is the uninterrupted run
    (tested to rounding in ``tests/test_nn_authors.py``).  ``trainer.train_seconds`` is the
    training time of every session of the run, the resumed ones included.
    """

    def __init__(self, models, *, seeds=0, lr=1e-3, epochs=100, batch_size=128, clip=None, progress=False,
                 device="auto", checkpoint=None, checkpoint_every=60.0):
        self.models = list(models)
        if not self.models:
            raise ValueError("models must hold at least one model")
        kinds = {type(m) for m in self.models}
        if len(kinds) != 1:
            raise ValueError(f"models must share one class, got {sorted(k.__name__ for k in kinds)}")
        shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in self.models]
        if any(sh != shapes[0] for sh in shapes):
            raise ValueError("models must have the same parameters and buffers (same architecture, latent size "
                             "and σ mode); train differently built models in separate BatchedTrainers")
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.models[0].modules()):
            raise ValueError("BatchedTrainer does not support batch normalisation (e.g. arch='resnet18'); "
                             "use linvae.nn.Trainer")
        B = len(self.models)
        seeds = [seeds] * B if np.ndim(seeds) == 0 else list(seeds)
        if len(seeds) != B:
            raise ValueError(f"seeds must hold one seed per model ({B}), got {len(seeds)}")
        self.seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
        self.lr = check_positive(lr, "lr")
        self.epochs = check_int(epochs, "epochs")
        self.batch_size = check_int(batch_size, "batch_size")
        self.clip = None if clip is None else check_nonneg(clip, "clip")
        self.progress = bool(progress)
        self.device = device
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.checkpoint_every = check_nonneg(checkpoint_every, "checkpoint_every")
        self.histories = [{"epoch": [], "loss": [], "kl": []} for _ in range(B)]
        self.steps = 0
        self.train_seconds = 0.0
        self.resumed_from = None

    def fingerprint(self, X, Y=None):
        """SHA-256 of what determines the trained stack: configurations, seeds, settings, data."""
        data = [data_fingerprint(np.asarray(a)) for a in ([X] if Y is None else [X, Y])]
        record = {"models": [model_config(m) for m in self.models], "seeds": self.seeds, "lr": self.lr,
                  "epochs": self.epochs, "batch_size": self.batch_size, "clip": self.clip, "data": data,
                  "dtype": str(torch.get_default_dtype()), "code": _nn_source_digest(),
                  "torch": torch.__version__}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=repr).encode()).hexdigest()

    def _load_checkpoint(self, fingerprint, device):
        if self.checkpoint is None or not os.path.exists(self.checkpoint):
            return None
        state = torch_load(self.checkpoint, device)
        if not isinstance(state, dict) or state.get("format") != "linvae-batched-1":
            raise ValueError(f"checkpoint {self.checkpoint} is not a BatchedTrainer checkpoint; move it away or "
                             "choose another checkpoint path")
        if state["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint {self.checkpoint} was written for other models, seeds, settings or data "
                             f"(fingerprint {state['fingerprint'][:12]}, now {fingerprint[:12]}); delete it to "
                             "start afresh, or choose another checkpoint path")
        return state

    def _save_checkpoint(self, fingerprint, epoch, params, buffers, opt):
        _atomic_save({"format": "linvae-batched-1", "fingerprint": fingerprint, "epoch": epoch,
                      "params": {k: v.detach() for k, v in params.items()}, "buffers": dict(buffers),
                      "optimizer": opt.state_dict(), "histories": self.histories, "steps": self.steps,
                      "train_seconds": self.train_seconds}, self.checkpoint)

    def fit(self, X, Y=None):
        """Train every model on ``X`` (and ``Y`` for CVAEs); returns the per-model histories."""
        func = import_optional("torch.func")
        helper = Trainer(self.models[0], epochs=1, device=self.device)
        device = helper.device
        data = helper._tensors([X] if Y is None else [X, Y])
        n = len(data[0])
        if any(len(d) != n for d in data):
            raise ValueError(f"X and Y must have the same number of samples, got {[len(d) for d in data]}")
        for model, seed in zip(self.models, self.seeds):
            initialize(model, seed)
            model.to(device)
        names = type(self.models[0]).HYPERPARAMETERS
        hyper = {k: torch.tensor([float(getattr(m, k)) for m in self.models], dtype=torch.get_default_dtype())
                 for k in names}
        hyper = {k: v.to(device) for k, v in hyper.items()}
        self.path = "stacked" if supports_stacking(self.models[0]) else "vmap"
        if self.path == "stacked":
            # the MLP families: the models' own forward on the stack, no vmap (linvae.nn.stacked)
            stack = StackedModel(self.models)
            params, buffers, leaves = stack.params, stack.buffers, stack.leaves

            def step(p, b, h, batch, noise):
                return stack(h, batch, noise)
        else:
            params, buffers, step = self._vmap_step(func)
            leaves = list(params.values())

        # Adam's fused kernel (CPU and CUDA, the only devices here): the whole stack's update in one
        # kernel per step instead of the per-tensor loop torch uses on the CPU by default; the same
        # Adam, elementwise, so per model
        opt = torch.optim.Adam(leaves, lr=self.lr, fused=True)
        fingerprint = self.fingerprint(X, Y) if self.checkpoint is not None else None
        start = 0
        state = self._load_checkpoint(fingerprint, device)
        if state is not None:
            with torch.no_grad():
                for k, v in params.items():
                    v.copy_(state["params"][k])
                for k, v in buffers.items():
                    v.copy_(state["buffers"][k])
            opt.load_state_dict(state["optimizer"])
            self.histories, self.steps = state["histories"], state["steps"]
            self.train_seconds = float(state["train_seconds"])
            start = self.resumed_from = int(state["epoch"])
            logger.info("%s: continuing from epoch %d of %d", self.checkpoint, start, self.epochs)
        bar = None
        if self.progress:
            bar = import_optional("tqdm.auto").tqdm(total=self.epochs, initial=start, unit="epoch",
                                                    desc=f"{type(self.models[0]).__name__} ×{len(self.models)}")
        began = last_save = time.perf_counter()
        done_before = self.train_seconds
        try:
            for epoch in range(start, self.epochs):
                self._epoch(epoch, data, n, step, params, buffers, hyper, opt)
                now = time.perf_counter()
                self.train_seconds = done_before + (now - began)
                if self.checkpoint is not None and (epoch + 1 == self.epochs
                                                    or now - last_save >= self.checkpoint_every):
                    self._save_checkpoint(fingerprint, epoch + 1, params, buffers, opt)
                    last_save = now
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        for i, model in enumerate(self.models):
            state = {k: v[i].detach().clone() for k, v in {**params, **buffers}.items()}
            model.load_state_dict(state)
        return self.histories

    def _vmap_step(self, func):
        """Stacked parameters and a ``vmap``-ed step, for the networks :mod:`linvae.nn.stacked` cannot run
        (convolutions)."""
        params, buffers = func.stack_module_state(self.models)
        base = copy.deepcopy(self.models[0]).to("meta")

        def one(p, b, h, batch, noise):
            with hyperparameters(base, h):
                out = func.functional_call(base, (p, b), tuple(batch), {"noise": noise})
            return out["loss"], out["kl"].sum()

        if len(self.models) == 1:
            # one model: the same call on the stack's only slice, without vmap's per-op batching
            # rules (they made B = 1 slower than Trainer); the gradients still reach the stack
            def step(p, b, h, batch, noise):
                loss, kl = one({k: v[0] for k, v in p.items()}, {k: v[0] for k, v in b.items()},
                               {k: v[0] for k, v in h.items()}, [d[0] for d in batch], [z[0] for z in noise])
                return loss.unsqueeze(0), kl.unsqueeze(0)
        else:
            step = func.vmap(one)
        return params, buffers, step

    def _epoch(self, epoch, data, n, step, params, buffers, hyper, opt):
        perms, noises = [], []
        batches = list(range(0, n, self.batch_size))
        for model, seed in zip(self.models, self.seeds):
            shuffle, noise_seed = epoch_seeds(seed, epoch)
            perms.append(torch.randperm(n, generator=torch.Generator().manual_seed(shuffle)))
            torch.manual_seed(noise_seed)         # the draws a sequential Trainer makes, in its order
            noises.append([[torch.randn(s) for s in model.noise_shapes(len(perms[-1][b:b + self.batch_size]))]
                           for b in batches])
        device = data[0].device
        perm = torch.stack(perms).to(device)
        total = torch.zeros(len(self.models), dtype=torch.float64)
        kl_total = torch.zeros(len(self.models), dtype=torch.float64)
        for k, start in enumerate(batches):
            idx = perm[:, start:start + self.batch_size]
            rows = idx.reshape(-1)
            batch = [d.index_select(0, rows).reshape(idx.shape + d.shape[1:]) for d in data]
            noise = [torch.stack([noises[i][k][j] for i in range(len(self.models))]).to(device)
                     for j in range(len(noises[0][k]))]
            loss, kl = step(params, buffers, hyper, batch, noise)
            bad = ~torch.isfinite(loss)
            if bool(bad.any()):
                i = int(torch.nonzero(bad)[0])
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch}, batch {k} for model {i} (seed {self.seeds[i]}, "
                    + ", ".join(f"{h}={float(v[i]):g}" for h, v in hyper.items())
                    + f"): loss={loss[i].item()!r}; lower lr (was {self.lr:g}) or set clip",
                    config={h: float(v[i]) for h, v in hyper.items()}, index=i, step=epoch)
            opt.zero_grad()
            loss.sum().backward()
            if self.clip:
                self._clip(opt.param_groups[0]["params"])
            opt.step()
            self.steps += 1
            total += loss.detach().double().cpu() * idx.shape[1]
            kl_total += kl.detach().double().cpu()
        for i, h in enumerate(self.histories):
            h["epoch"].append(epoch + 1)
            h["loss"].append(float(total[i]) / n)
            h["kl"].append(float(kl_total[i]) / n)
            if not math.isfinite(h["loss"][-1]):
                raise TrainingDivergedError(f"training diverged in epoch {epoch} for model {i}", index=i, step=epoch)

    def _clip(self, leaves):
        """``clip_grad_norm_`` per model: each model's gradient norm over all its parameters (the
        leaves stack the models along their first axis)."""
        grads = [p.grad for p in leaves if p.grad is not None]
        B = len(self.models)
        # the norm of the per-tensor norms, as clip_grad_norm_ computes it (one pass per tensor)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.reshape(B, -1), dim=1)
                                                     for g in grads]), dim=0)
        coef = torch.clamp(self.clip / (norm + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.reshape((B,) + (1,) * (g.ndim - 1)).to(g.dtype))

    def evaluate_kl(self, X, Y=None, batch_size=1000):
        """Per-example, per-dim KL of every model on held-out data: list of (n, latent) arrays."""
        return [Trainer(m, epochs=1, device=self.device).evaluate_kl(X, Y, batch_size=batch_size) for m in self.models]
