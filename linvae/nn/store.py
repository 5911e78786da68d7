"""A store of trained models, keyed by what determines a training.

Two experiments that train the same network, with the same hyperparameters, data, seed,
optimizer settings and number of epochs, under the same training code, train the same model.
:class:`ModelStore` keeps each trained model once, under the SHA-256 of that description
(:func:`training_identity`), so the second experiment loads it instead of training it again.

Each model is two files in the store directory: ``<key>.pt`` (the ``state_dict``, written with
:func:`torch.save`) and ``<key>.json`` (the identity, the SHA-256 of the ``.pt`` bytes and the
training seconds).  Both are written atomically (:func:`linvae._store.atomic_write_bytes`); the
weights are read with ``torch.load(weights_only=True)``, so a crafted file runs no code, and
only after their SHA-256 matches the record.  A record whose identity differs from the one asked
for is refused (ValueError naming the file), never silently used.
"""
import hashlib
import io
import json
import logging
import os

import torch

from .._store import atomic_write_bytes, atomic_write_json
from .trainer import _nn_source_digest, model_config

logger = logging.getLogger(__name__)

__all__ = ["ModelStore", "training_identity", "identity_key"]

FORMAT = "linvae-model-1"


def training_identity(model, *, seed, lr, epochs, batch_size, clip, data):
    """Everything that determines one trained model, as JSON data.

    Parameters
    ----------
    model : torch.nn.Module
        A linvae model, before training (its class, constructor arguments with defaults applied,
        and its scalar hyperparameters β, η, KL scale).
    seed : int
        The seed of its initialization, shuffling and noise.
    lr, epochs, batch_size, clip
        The optimizer settings (Adam with torch's default betas and eps, gradient-norm clip).
    data : list of dict
        :func:`linvae.nn.trainer.data_fingerprint` of each training array.

    Returns
    -------
    dict
        Also holds the default dtype, the torch version and the SHA-256 of :mod:`linvae.nn`'s
        source (the training code).
    """
    from .trainer import _hyperparameters

    return json.loads(json.dumps({
        "model": model_config(model), "hyperparameters": _hyperparameters(model), "seed": int(seed),
        "optimizer": {"name": "Adam", "lr": float(lr), "betas": [0.9, 0.999], "eps": 1e-8,
                      "clip": None if clip is None else float(clip)},
        "epochs": int(epochs), "batch_size": int(batch_size), "data": data,
        "dtype": str(torch.get_default_dtype()), "code": _nn_source_digest(), "torch": torch.__version__,
    }, sort_keys=True, default=repr))


def identity_key(identity):
    """The store key of an identity: SHA-256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class ModelStore:
    """Trained models on disk, one per :func:`training_identity`.

    Parameters
    ----------
    root : str or path-like
        The store directory (created on the first save).

    Examples
    --------
    >>> store = ModelStore(tmp)                                      # doctest: +SKIP
    >>> if not store.load(model, identity):                          # doctest: +SKIP
    ...     Trainer(model, ...).fit(X); store.save(model, identity)
    """

    def __init__(self, root):
        self.root = os.fspath(root)

    def _paths(self, key):
        return os.path.join(self.root, key + ".pt"), os.path.join(self.root, key + ".json")

    def record(self, identity):
        """The stored record (identity, sha256, train_seconds) of ``identity``, or None."""
        _, meta = self._paths(identity_key(identity))
        if not os.path.exists(meta):
            return None
        try:
            with open(meta, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{meta} is not a readable linvae model record: {exc}") from exc
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{meta} is not a linvae model record (format {FORMAT!r}); move it away")
        if record.get("identity") != identity:
            raise ValueError(f"{meta} holds the record of another training than its key says; delete it (and its "
                             ".pt) to train the model again")
        return record

    def load(self, model, identity, device="cpu"):
        """Load the stored weights of ``identity`` into ``model``; returns the stored record (see
        :meth:`record`), or None when none are stored.

        Raises
        ------
        ValueError
            When the record's identity or the weights' SHA-256 does not match, or the file is not
            a plain ``state_dict`` (it is read with ``weights_only=True``).
        """
        record = self.record(identity)
        if record is None:
            return None
        weights, _ = self._paths(identity_key(identity))
        with open(weights, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            raise ValueError(f"{weights} does not match the SHA-256 its record holds (changed or truncated); "
                             "delete it and its .json to train the model again")
        try:
            state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        except Exception as exc:                 # noqa: BLE001 - torch raises many kinds here
            raise ValueError(f"{weights} is not a loadable state_dict (read with weights_only=True): {exc}") from exc
        model.load_state_dict(state)
        model.to(device)
        logger.info("loaded a trained %s from %s", type(model).__name__, weights)
        return record


    def save(self, model, identity, train_seconds=0.0, trained_by=None):
        """Store ``model``'s weights under ``identity`` (atomic writes; the weights first);
        ``trained_by`` names who trained it (an experiment id), kept in the record."""
        os.makedirs(self.root, exist_ok=True)
        weights, meta = self._paths(identity_key(identity))
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        data = buffer.getvalue()
        atomic_write_bytes(weights, data)
        atomic_write_json(meta, {"format": FORMAT, "identity": identity, "sha256": hashlib.sha256(data).hexdigest(),
                                 "train_seconds": round(float(train_seconds), 3), "trained_by": trained_by})
