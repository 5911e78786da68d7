"""Training loop for the torch models: Adam, clipping, seeded, checkpointed, resumable."""
import functools
import hashlib
import io
import json
import logging
import math
import os

import numpy as np
import torch

from .._deps import import_optional
from .._store import DirectoryLock, atomic_write_bytes
from .._validation import check_int, check_nonneg, check_positive
from ..exceptions import TrainingDivergedError
from ..metrics import active_units_kl

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "data_fingerprint", "model_config"]

CHECKPOINT = "checkpoint.pt"


def _device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA device")
    return torch.device(device)


def _atomic_save(obj, path):
    """``torch.save`` through :func:`linvae._store.atomic_write_bytes` (temporary file + rename)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def initialize(model, seed):
    """Re-initialize every submodule's parameters from ``seed`` (deterministic initialization)."""
    torch.manual_seed(seed)
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def epoch_seeds(seed, epoch):
    """``(shuffle seed, noise seed)`` of one epoch: every epoch reseeds from ``(seed, epoch)``."""
    return seed * 1_000_003 + epoch, seed * 1_000_033 + epoch


def torch_load(path, device):
    """``torch.load(path, weights_only=True)`` (a crafted file runs no code), any failure but a
    missing file raised as a ValueError naming the file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:                     # noqa: BLE001 - torch raises many kinds here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a loadable linvae checkpoint (read with weights_only=True, which "
                         f"refuses anything but tensors and plain data): {first}") from exc


def _load_state(path, device):
    """The checkpoint dict at ``path``, read with ``weights_only=True`` (a crafted file runs no code).

    Raises
    ------
    ValueError
        Naming the file, when it is not a readable linvae Trainer checkpoint.
    """
    state = torch_load(path, device)
    if not isinstance(state, dict) or not {"model", "optimizer", "history", "epoch"} <= set(state):
        raise ValueError(f"{path} is not a linvae Trainer checkpoint (it lacks model, optimizer, history "
                         "or epoch)")
    return state


def data_fingerprint(validated, original=None):
    """``{"shape", "dtype", "sha256"}`` of a training array (the hash of its float64 bytes)."""
    dtype = getattr(original, "dtype", None) if original is not None else None
    return {"shape": list(validated.shape), "dtype": str(dtype if dtype is not None else validated.dtype),
            "sha256": hashlib.sha256(np.ascontiguousarray(validated).tobytes()).hexdigest()}


def model_config(model):
    """``{"class", "module", "arguments"}`` of a linvae model (``arguments`` None when unknown)."""
    cls = type(model)
    return {"class": cls.__name__, "module": cls.__module__, "arguments": getattr(model, "init_arguments", None)}


def _hyperparameters(model):
    out = {}
    for name in getattr(type(model), "HYPERPARAMETERS", ()):
        value = getattr(model, name, None)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        out[name] = value if isinstance(value, (int, float, str, type(None))) else repr(value)
    return out


def _model_class(name, path):
    """The linvae model class called ``name`` (only :mod:`linvae.nn`'s own classes qualify)."""
    from . import authors, models

    classes = {}
    for module in (models, authors):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, models._Base) and value is not models._Base:
                classes[value.__name__] = value
    if name not in classes:
        raise ValueError(f"{path} names model class {name!r}, which is not one of linvae's ({sorted(classes)})")
    return classes[name]


def _show(value):
    if isinstance(value, dict) and set(value) == {"shape", "dtype", "sha256"}:
        return f"shape {tuple(value['shape'])} {value['dtype']} sha256 {str(value['sha256'])[:12]}"
    return repr(value)


def _differences(saved, now, prefix=""):
    """``["name old -> new", ...]`` for every setting that differs (nested dicts key by key)."""
    out = []
    for k, v in now.items():
        name = f"{prefix}{k}"
        if k not in saved:
            out.append(f"{name} not recorded in the checkpoint -> {_show(v)}")
        elif isinstance(v, dict) and isinstance(saved[k], dict) and set(v) != {"shape", "dtype", "sha256"}:
            out.extend(_differences(saved[k], v, prefix=f"{name}."))
        elif saved[k] != v:
            out.append(f"{name} {_show(saved[k])} -> {_show(v)}")
    return out


@functools.lru_cache(maxsize=None)
def _nn_source_digest():
    """SHA-256 of the source of :mod:`linvae.nn` (models, networks, trainers): a checkpoint written by
    other network code is never continued."""
    digest = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(n for n in os.listdir(here) if n.endswith(".py")):
        with open(os.path.join(here, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


class Trainer:
    """Minibatch Adam for :class:`~linvae.nn.VAE`, :class:`~linvae.nn.CVAE`, :class:`~linvae.nn.MHVAE`.

    Parameters
    ----------
    model : torch.nn.Module
        A linvae torch model (its ``forward`` returns ``loss``, ``kl_per_dim``, ...).
    lr : float
        Adam learning rate (the paper: 1e-3 for the ReLU models, 1e-4 for the linear VAE).
    epochs : int
    batch_size : int
        128 in the paper's scripts.
    clip : float, optional
        Clip the gradient norm to this value.
    schedule : {None, "cosine"}
        Constant learning rate (the paper's scripts) or cosine annealing to 0 over ``epochs``
        (reaches optima more precisely).
    seed : int
        Seeds the weights' initialization (re-initialized here), the shuffling and the
        reparameterization noise; every epoch reseeds from ``(seed, epoch)``, so a resumed run
        reproduces an uninterrupted one exactly on the CPU.
    device : {"auto", "cpu", "cuda"}
    run_dir : str, optional
        Where ``checkpoint.pt`` (every epoch, written atomically) and ``history.json`` go.
    resume : bool or "force"
        Continue from the checkpoint in ``run_dir``. ``True`` refuses (ValueError naming what
        changed, old -> new) when lr, batch size, clip, schedule (and with a schedule, epochs),
        seed, the model class, its constructor arguments, its hyperparameters (β, η_enc, η_dec,
        KL scale) or the training data (shape, dtype and SHA-256 of X and Y) differ from the
        checkpoint's; ``"force"`` continues with the new values. The checkpoint is loaded with
        ``torch.load(weights_only=True)``, so a crafted file cannot run code; it records the
        model's constructor arguments, so :meth:`load_model` rebuilds the model.
    overwrite : bool
        Allow starting a new run in a ``run_dir`` that already holds one.
    progress : bool
        ``tqdm.auto`` bar with loss, KL and active units in the postfix.
    eval_data : tuple, optional
        ``(X,)`` or ``(X, Y)`` held out; per-dim KL (mean over examples) is recorded every epoch.
    """

    def __init__(self, model, *, lr=1e-3, epochs=100, batch_size=128, clip=None, schedule=None, seed=0,
                 device="auto", run_dir=None, resume=False, overwrite=False, progress=False, eval_data=None):
        self.model = model
        self.lr = check_positive(lr, "lr")
        self.epochs = check_int(epochs, "epochs")
        self.batch_size = check_int(batch_size, "batch_size")
        self.clip = None if clip is None else check_nonneg(clip, "clip")
        if schedule not in (None, "cosine"):
            raise ValueError(f"schedule must be None or 'cosine', got {schedule!r}")
        self.schedule = schedule
        self.seed = check_int(seed, "seed", minimum=0)
        self.device = _device(device)
        self.run_dir = None if run_dir is None else os.fspath(run_dir)
        if resume not in (True, False, "force"):
            raise ValueError(f"resume must be True, False or 'force', got {resume!r}")
        self.resume = resume
        self.overwrite = bool(overwrite)
        self.progress = bool(progress)
        self.eval_data = eval_data
        self.history = {"epoch": [], "loss": [], "kl": [], "eval_kl_per_dim": [], "eval_active_units_kl": []}

    def _tensors(self, arrays):
        from .._validation import check_data

        return [torch.as_tensor(check_data(a, name), dtype=torch.get_default_dtype()).to(self.device)
                for a, name in zip(arrays, ("X", "Y"))]

    def _prepare_run_dir(self):
        if self.run_dir is None:
            if self.resume:
                raise ValueError("resume=True needs run_dir")
            return None
        os.makedirs(self.run_dir, exist_ok=True)
        path = os.path.join(self.run_dir, CHECKPOINT)
        if os.path.exists(path) and not (self.resume or self.overwrite):
            raise FileExistsError(
                f"{self.run_dir} already holds a run ({CHECKPOINT}); pass resume=True to continue it or "
                "overwrite=True to start over")
        return path

    def fit(self, X, Y=None):
        """Train on ``X`` (and ``Y`` for the CVAE); returns the history dict.

        Raises
        ------
        OutputLockedError
            When another thread or process trains into the same ``run_dir``.
        """
        if self.run_dir is None:
            return self._fit(X, Y)
        with DirectoryLock(self.run_dir, purpose=f"linvae Trainer of {type(self.model).__name__}"):
            return self._fit(X, Y)

    def _fit(self, X, Y):
        from .._validation import check_data

        arrays = [check_data(a, name, copy=False) for a, name in zip([X] if Y is None else [X, Y], ("X", "Y"))]
        if self.run_dir is not None:              # hashed only for checkpoints (resume compares it)
            self._data_fingerprint = {name: data_fingerprint(a, original)
                                      for a, name, original in zip(arrays, ("X", "Y"), (X, Y))}
        data = [torch.as_tensor(a, dtype=torch.get_default_dtype()).to(self.device) for a in arrays]
        n = len(data[0])
        if any(len(d) != n for d in data):
            raise ValueError(f"X and Y must have the same number of samples, got {[len(d) for d in data]}")
        ckpt_path = self._prepare_run_dir()
        initialize(self.model, self.seed)
        self.model.to(self.device)
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs) if self.schedule else None
        start = 0
        if self.resume and ckpt_path is not None and os.path.exists(ckpt_path):
            state = _load_state(ckpt_path, self.device)
            self._check_settings(state.get("settings"), ckpt_path)
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if (state.get("settings") or {}).get("lr") != self.lr:    # resume="force" with a new lr: it wins
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] = self.lr
            if sched is not None and state.get("scheduler") is not None:
                sched.load_state_dict(state["scheduler"])
            self.history = state["history"]
            start = state["epoch"]
            logger.info("resuming %s from epoch %d", self.run_dir, start)
        bar = None
        if self.progress:
            bar = import_optional("tqdm.auto").tqdm(total=self.epochs, initial=start, desc=type(self.model).__name__,
                                                    unit="epoch")
        try:
            for epoch in range(start, self.epochs):
                self._epoch(epoch, data, n, opt)
                if sched is not None:
                    sched.step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=self.history["loss"][-1], kl=self.history["kl"][-1],
                                    au=(self.history["eval_active_units_kl"] or [None])[-1])
                if ckpt_path is not None:
                    _atomic_save({"model": self.model.state_dict(), "optimizer": opt.state_dict(),
                                  "history": self.history, "epoch": epoch + 1, "seed": self.seed,
                                  "settings": self._settings(),
                                  "scheduler": None if sched is None else sched.state_dict()}, ckpt_path)
                    # a private temporary name per write (two Trainers never share one)
                    atomic_write_bytes(os.path.join(self.run_dir, "history.json"), json.dumps(self.history).encode())
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _settings(self):
        settings = {"lr": self.lr, "batch_size": self.batch_size, "clip": self.clip, "schedule": self.schedule,
                    "seed": self.seed, "model": type(self.model).__name__,
                    "model_config": model_config(self.model), "hyperparameters": _hyperparameters(self.model),
                    "data": getattr(self, "_data_fingerprint", None), "code": _nn_source_digest()}
        if self.schedule is not None:             # the cosine schedule's length is part of it
            settings["epochs"] = self.epochs
        return settings

    def _check_settings(self, saved, path):
        """Refuse to resume with other hyperparameters or data unless ``resume="force"``."""
        now = self._settings()
        if saved is None:
            changed = ["the checkpoint records no settings (written by an older linvae)"]
        else:
            changed = _differences(saved, now)
        if not changed:
            return
        if self.resume == "force":
            logger.warning("resuming %s with changed settings: %s", path, "; ".join(changed))
            return
        raise ValueError(f"cannot resume {path} with other settings ({'; '.join(changed)}); pass "
                         "resume='force' to continue with the new ones, or use another run_dir")

    def _epoch(self, epoch, data, n, opt):
        self.model.train()
        shuffle, noise = epoch_seeds(self.seed, epoch)
        gen = torch.Generator().manual_seed(shuffle)
        torch.manual_seed(noise)                                      # reparameterization noise
        perm = torch.randperm(n, generator=gen).to(self.device)
        total = kl_total = 0.0
        for b, start in enumerate(range(0, n, self.batch_size)):
            idx = perm[start:start + self.batch_size]
            out = self.model(*[d[idx] for d in data])
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch}, batch {b}: loss={loss.item()!r}; lower lr "
                    f"(was {self.lr:g}) or set clip", config={"epoch": epoch, "batch": b}, index=b, step=epoch)
            opt.zero_grad()
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            opt.step()
            total += loss.item() * len(idx)
            kl_total += out["kl"].sum().item()
        self.history["epoch"].append(epoch + 1)
        self.history["loss"].append(total / n)
        self.history["kl"].append(kl_total / n)
        if self.eval_data is not None:
            kl = self.evaluate_kl(*self.eval_data)
            self.history["eval_kl_per_dim"].append(kl.mean(axis=0).tolist())
            self.history["eval_active_units_kl"].append(active_units_kl(kl))
        if not math.isfinite(self.history["loss"][-1]):
            raise TrainingDivergedError(f"training diverged in epoch {epoch}", config={"epoch": epoch}, step=epoch)

    @classmethod
    def load_model(cls, run_dir, device="cpu"):
        """Rebuild the model trained in ``run_dir`` from its checkpoint (configuration + weights).

        Parameters
        ----------
        run_dir : str
            A Trainer's ``run_dir`` (or the path of its ``checkpoint.pt``).
        device : {"cpu", "cuda", "auto"}

        Returns
        -------
        torch.nn.Module
            A new instance of the checkpoint's model class, built from the recorded constructor
            arguments, with the recorded hyperparameters (β, η, KL scale) and the trained weights.

        Raises
        ------
        ValueError
            When the checkpoint records no model configuration or names a class outside
            :mod:`linvae.nn`.

        Notes
        -----
        The checkpoint is read with ``torch.load(weights_only=True)`` and the class is looked up
        among linvae's own model classes only, so loading a crafted file runs no code.
        """
        path = os.fspath(run_dir)
        if os.path.isdir(path):
            path = os.path.join(path, CHECKPOINT)
        dev = _device(device)
        state = _load_state(path, dev)
        config = (state.get("settings") or {}).get("model_config")
        if not config or config.get("arguments") is None:
            raise ValueError(f"{path} records no model configuration (written by an older linvae, or the "
                             "model's constructor arguments are not plain data); build the model yourself and "
                             "load_state_dict(torch.load(path, weights_only=True)['model'])")
        model_cls = _model_class(config.get("class"), path)
        model = model_cls(**config["arguments"])
        for name, value in ((state.get("settings") or {}).get("hyperparameters") or {}).items():
            if name in model_cls.HYPERPARAMETERS:
                setattr(model, name, value)
        model.load_state_dict(state["model"])
        return model.to(dev)

    def evaluate_kl(self, X, Y=None, batch_size=1000):
        """Per-example, per-dim KL (NumPy, (n, latent)) of the model on held-out data (no gradient)."""
        data = self._tensors([X] if Y is None else [X, Y])
        self.model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(data[0]), batch_size):
                out.append(self.model(*[d[start:start + batch_size] for d in data])["kl_per_dim"].double().cpu().numpy())
        self.model.train()
        return np.concatenate(out)
