"""What every nonlinear experiment shares: the authors' settings, the step budget, seeds, batched
training over (configuration × seed), per-seed measurements and figures with seed bands.

The authors' scripts (SPEC §5.1) train on full MNIST (60,000 images, batch 128: 469 optimizer
steps per epoch) for 100 epochs, ≈ 46,900 steps.  A run here matches the paper's **step count**
on whatever data it is given (the embedded 4,000 training images need ≈ 1,466 epochs for it),
not its epoch count; ``meta.json`` records N, epochs, steps and the ratio to the paper's steps.
"""
import contextlib
import contextvars
import hashlib
import inspect
import json
import logging
import math
import numbers
import os
import time

import numpy as np

from .. import metrics
from .._deps import import_optional
from .._store import atomic_write_json, claim
from ..data import train_test_split
from ._common import size

logger = logging.getLogger(__name__)

__all__ = ["AUTHORS", "PAPER_STEPS", "EPS", "EPS_REPORT", "DELTA", "budget", "seeds_for", "train_grid",
           "measure", "curve_band", "effective", "split", "work_directory", "training_record",
           "finished_all", "torch_threads", "digest", "RESULT_SUFFIX", "model_store", "STORE_DIR",
           "timed_evaluation"]

#: 100 epochs of the authors' scripts on full MNIST at batch 128 (469 steps per epoch)
PAPER_STEPS = 100 * 469
EPS = np.logspace(-4, 1, 51)
EPS_REPORT = 1e-2
DELTA = 0.05

#: the authors' optimizer settings per model family (SPEC §5.1); kl_scale 0.5: the scripts halve the
#: KL term only, so their effective β is half the nominal one
AUTHORS = {
    "cvae": {"lr": 1e-3, "clip": 0.01, "batch_size": 128, "kl_scale": 0.5},
    "cvae_deep": {"lr": 1e-3, "clip": 0.1, "batch_size": 128, "kl_scale": 0.5},   # Fig 3a ReLU/CNN arms
    "mhvae": {"lr": 1e-3, "clip": 0.1, "batch_size": 128, "kl_scale": 0.5},
    "synthetic": {"lr": 1e-3, "clip": 0.01, "batch_size": 16, "kl_scale": 0.5},
    "vae": {"lr": 1e-4, "clip": None, "batch_size": 128, "kl_scale": 0.5},
}


def effective(beta, kl_scale):
    """``"β = 1 (effective 0.5)"``: the nominal β of the scripts and the β the loss really uses."""
    return f"β = {beta:g} (effective {beta * kl_scale:g})"


def split(images, quick, seed, quick_sizes=(1000, 400), tiny_sizes=(160, 60)):
    """Train/test split (80/20); quick runs keep a slice."""
    train, test = train_test_split(images, test_fraction=0.2, seed=seed)
    if quick:
        n_train, n_test = size(quick, None, quick_sizes, tiny_sizes)
        train, test = train[:n_train], test[:n_test]
    return train, test


def budget(quick, n_train, batch_size, paper_steps=PAPER_STEPS, quick_steps=300, tiny_steps=3):
    """Epochs that give the paper's number of optimizer steps on ``n_train`` examples.

    Returns
    -------
    dict
        ``epochs``, ``steps`` (what will run), ``steps_per_epoch``, ``paper_steps``,
        ``step_ratio`` (steps / paper_steps), ``batch_size``.
    """
    target = size(quick, paper_steps, quick_steps, tiny_steps)
    per_epoch = math.ceil(n_train / batch_size)
    epochs = max(1, math.ceil(target / per_epoch))
    return {"epochs": epochs, "steps": epochs * per_epoch, "steps_per_epoch": per_epoch,
            "paper_steps": paper_steps, "step_ratio": round(epochs * per_epoch / paper_steps, 4),
            "batch_size": batch_size}


def seeds_for(quick, seed):
    """Three seeds (two in the test suite's tiny runs)."""
    return [seed + i for i in range(size(quick, 3, 3, 2))]


#: seconds between a training's checkpoint writes inside :func:`work_directory`
CHECKPOINT_EVERY = 60.0

#: (directory, ledger) of the experiment being run: where its training checkpoints go, and one
#: record per batched training (see :func:`work_directory`)
_WORK = contextvars.ContextVar("linvae_experiment_work", default=None)

#: the model store directory of the experiment being run (see :func:`work_directory`)
_STORE = contextvars.ContextVar("linvae_model_store", default=None)

#: the model store of an output directory: ``<out>/.linvae-store`` (kept between experiments and runs)
STORE_DIR = ".linvae-store"


@contextlib.contextmanager
def work_directory(path, store=None):
    """Checkpoint every training of the experiments run inside to ``path``; yields the ledger.

    A stopped run (session end, Ctrl-C, a killed job) run again with the same ``path`` continues
    each batched training from its last checkpoint (:class:`~linvae.nn.BatchedTrainer`'s
    ``checkpoint``; :class:`~linvae.nn.Trainer`'s ``run_dir`` for fig5) and skips the finished
    ones; the result is the uninterrupted run's.  The ledger lists, per training, the number of
    models, how many were trained and how many loaded from the model store, the epoch it resumed
    from and its training seconds over all sessions.

    ``store`` (a directory, optional) is the :class:`~linvae.nn.store.ModelStore` that
    :func:`train_grid` asks first: a model with the same training identity (network, its
    configuration, hyperparameters, data, seed, optimizer settings, epochs, training code) that any
    experiment stored there is loaded, not trained again; every model trained is stored there.
    """
    os.makedirs(path, exist_ok=True)
    ledger = []
    token = _WORK.set((os.fspath(path), ledger, set()))     # the third: keys of the models trained in this run
    store_token = _STORE.set(None if store is None else os.fspath(store))
    try:
        yield ledger
    finally:
        _STORE.reset(store_token)
        _WORK.reset(token)


@contextlib.contextmanager
def torch_threads(n):
    """Run with ``n`` torch intra-op threads (restored on exit); a no-op without torch."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def timed_evaluation():
    """Count the seconds of an evaluation that runs outside :func:`train_grid` (fig2b's IS
    log-likelihoods, fig3a's, Table 2's and Table 4's KL) in the experiment's ledger, so that
    ``cost.seconds_all_sessions`` is training plus evaluation (a no-op outside :func:`work_directory`)."""
    began = time.perf_counter()
    try:
        yield
    finally:
        work = _WORK.get()
        if work is not None:
            work[1].append({"evaluation_only": True, "models": 0, "trained": 0, "loaded": 0, "train_seconds": 0.0,
                            "resumed_from": None, "eval_seconds": round(time.perf_counter() - began, 1)})


def training_record(ledger):
    """What ``meta.json`` records of an experiment's trainings (None when nothing trained).

    Each training is counted once: ``resumed`` are those this process continued from a
    checkpoint of an earlier session, ``reused_measurements`` those whose finished-training
    record (``*.result.json``) it read instead of training (whatever their own history).
    ``models_trained`` counts the models this experiment trained (in any of its sessions),
    ``models_loaded`` those it loaded from the model store, trained by another experiment or an
    earlier run (a model this experiment stored in an earlier session counts as trained, with its
    seconds): no model is trained twice, and ``train_seconds_all_sessions`` sums the training
    seconds of the models this experiment trained only. ``eval_seconds_all_sessions`` sums the
    seconds of the evaluations :func:`train_grid` ran on them (the measurements in
    ``*.result.json`` carry theirs from the session that ran them; 0 for records written before
    evaluations were timed) and of those timed by :func:`timed_evaluation`.
    """
    if not ledger:
        return None
    evaluation = sum(r.get("eval_seconds", 0.0) for r in ledger)
    ledger = [r for r in ledger if not r.get("evaluation_only")]      # :func:`timed_evaluation`'s entries
    reused = [r.get("reused", False) for r in ledger]
    train = sum(r["train_seconds"] for r in ledger)
    optimizers = []
    for r in ledger:
        if r.get("optimizer") is not None and r["optimizer"] not in optimizers:
            optimizers.append(r["optimizer"])
    return {"trainings": len(ledger),
            "resumed": sum(r["resumed_from"] is not None and not u for r, u in zip(ledger, reused)),
            "reused_measurements": sum(reused),
            "models": sum(r["models"] for r in ledger),
            "models_trained": sum(r.get("trained", r["models"]) for r in ledger),
            "models_loaded": sum(r.get("loaded", 0) for r in ledger),
            "optimizer": optimizers,
            "train_seconds_all_sessions": round(train, 1),
            "eval_seconds_all_sessions": round(evaluation, 1),
            "per_training": ledger}


def model_store():
    """The :class:`~linvae.nn.store.ModelStore` of the experiment being run (None outside one)."""
    root = _STORE.get()
    if root is None:
        return None
    from ..nn.store import ModelStore

    return ModelStore(root)


def checkpoint_path(label):
    """A file for one training's checkpoint in the current work directory (None outside one)."""
    work = _WORK.get()
    return None if work is None else os.path.join(work[0], label)


def record_training(**record):
    work = _WORK.get()
    if work is not None:
        work[1].append(record)


#: file suffix of a finished training's measurements in the work directory.  Unlike the
#: checkpoints (``*.pt``, tens of MB), these are small JSON files: kept (for example committed)
#: between machines, they let a later run of the same experiment skip the trainings they hold
RESULT_SUFFIX = ".result.json"


def digest(*arrays):
    """Shape, dtype and SHA-256 of each array (what an evaluation's data is; the trainers' form)."""
    from ..nn.trainer import data_fingerprint

    return [data_fingerprint(np.asarray(a)) for a in arrays]


def _to_json(value):
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value):
    if isinstance(value, dict):
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value["dtype"])
        return {k: _from_json(v) for k, v in value.items()}
    return value


def _read_finished(path, identity):
    """The stored measurements at ``path`` when they are those of ``identity``, else None."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    if stored.get("identity") != identity:
        logger.warning("%s holds measurements of another training or evaluation; training again", path)
        return None
    return stored


def finished_all(tasks):
    """Measurements of several trainings, each trained once over all processes that share the work.

    Each task is ``(label, identity, run, done)``: ``run()`` trains and measures; it returns
    ``(entries, record)``: a list of ``[name, seed, measurements]`` (measurements a dict of numbers
    and arrays) and the ledger record of the training; ``done()`` (or None) runs once the
    measurements are kept, for example to delete the training's checkpoint.  Inside :func:`work_directory` the entries are written
    to ``<label>.result.json`` together with ``identity`` (a JSON-able description of everything
    that determines them: training fingerprint, evaluation settings and data digest, the source of
    the measurement code); a later call with an equal identity reads them back and trains nothing.
    A file with another identity is ignored and replaced.  Outside a work directory each ``run()``
    is just called.

    Several processes may share one work directory (``run_experiment(..., jobs=N)``): a task is trained under a claim (:func:`linvae._store.claim`,
    ``<label>.claim``), so a process that finds a task claimed goes on to the next one and comes
    back to it at the end, waiting for the other process's record (and training it itself if that
    process died without one).

    Returns
    -------
    dict
        ``(name, seed)`` → measurements.
    """
    work = _WORK.get()
    stored = {}
    deferred = []
    for label, identity, run, done in tasks:
        identity = json.loads(json.dumps(identity, sort_keys=True, default=repr))
        if work is None:
            stored[label] = _run_task(run, identity)
            continue
        path = os.path.join(work[0], label + RESULT_SUFFIX)
        found = _read_finished(path, identity)
        if found is None:
            with claim(path[:-len(RESULT_SUFFIX)] + ".claim", wait=False) as held:
                if held:
                    found = _read_finished(path, identity) or _run_task(run, identity, path)
                else:
                    deferred.append((label, identity, run, done, path))
                    continue
        else:
            logger.info("%s: measurements of a finished training read from %s", label, path)
            found["record"] = dict(found["record"], reused=True)
        stored[label] = found
        if done is not None:
            done()
    for label, identity, run, done, path in deferred:
        logger.info("%s: another process is training it; waiting for its record", label)
        with claim(path[:-len(RESULT_SUFFIX)] + ".claim", wait=True):
            found = _read_finished(path, identity)
            if found is None:                    # that process stopped before finishing: train it here
                found = _run_task(run, identity, path)
            else:
                found["record"] = dict(found["record"], reused=True)
        stored[label] = found
        if done is not None:
            done()
    out = {}
    for label, *_ in tasks:                    # the ledger in task order, whoever trained what
        record_training(**stored[label]["record"])
        out.update({(name, s): _from_json(m) for name, s, m in stored[label]["entries"]})
    return out


def _run_task(run, identity, path=None):
    entries, record = run()
    stored = {"format": "linvae-finished-1", "identity": identity, "record": record,
              "entries": [[name, s, _to_json(m)] for name, s, m in entries]}
    if path is not None:
        atomic_write_json(path, stored)
    return stored


def _measure_source():
    return hashlib.sha256((inspect.getsource(measure) + inspect.getsource(evaluate_kl)).encode()).hexdigest()[:20]


def train_grid(make, configs, seeds, data, plan, settings, *, backend="auto", chunk=None, evaluate=None,
               evaluation=None):
    """Train every (configuration, seed) pair as one batched model (or in chunks of ``chunk``).

    Inside :func:`work_directory` each model of a chunk is first looked up in the model store
    (:func:`model_store`, keyed by :func:`linvae.nn.store.training_identity`): a stored model is
    loaded, and only the missing ones are trained, together, checkpointing to a file named by
    their identities, so an interrupted experiment resumes where it stopped.  Each trained model
    goes into the store, where later experiments find it.

    Parameters
    ----------
    make : callable
        ``make(**config)`` returns a fresh model.
    configs : dict
        name → keyword arguments of ``make``.
    seeds : list of int
    data : tuple
        ``(X,)`` or ``(X, Y)``.
    plan : dict
        From :func:`budget`.
    settings : dict
        ``lr``, ``clip`` (from :data:`AUTHORS`).
    chunk : int or "seed", optional
        Models per batched training, taken in seed-major order (the configurations of seed 0, then
        of seed 1, ...), so a chunk that divides ``len(configs)`` trains configurations of one seed;
        ``"seed"``: one training per seed (all configurations).  Default: one training of all.
    evaluate : callable, optional
        ``evaluate(model)`` → dict of measurements.  Given, each chunk is measured as soon as it
        is trained and :func:`finished_all` keeps its measurements, so that a re-run (on this machine
        or another, with the ``*.result.json`` files of the work directory) skips finished chunks.
    evaluation : dict, optional
        With ``evaluate``: what determines the measurements besides the training (settings, a
        :func:`digest` of the evaluation data); part of the identity :func:`finished_all` compares.

    Returns
    -------
    dict
        ``(name, seed)`` → trained model, or with ``evaluate`` → ``evaluate(model)``.
    """
    from .._malloc import keep_freed_memory
    from ..nn import BatchedTrainer
    from ..nn.store import identity_key, training_identity

    keep_freed_memory()                       # fewer page faults per training step (linvae._malloc)

    # a hyperparameter given as an int (β = 1) is the same training as the float (β = 1.0) another
    # experiment gave: pass floats, so that the store's key (the constructor's arguments) agrees
    configs = {name: {k: float(v) if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) else v
                      for k, v in c.items()} for name, c in configs.items()}
    keys = [(name, s) for s in seeds for name in configs]      # seed-major: a chunk ≤ len(configs) is one seed's
    step = len(configs) if chunk == "seed" else chunk or len(keys)
    device = "cuda" if backend == "cupy" else "cpu"
    fingerprints = digest(*data)
    store = model_store()
    work = _WORK.get()
    experiment = None if work is None else os.path.basename(os.path.normpath(work[0]))
    trained_here = set() if work is None else work[2]
    out, tasks = {}, []
    for start in range(0, len(keys), step):
        part = keys[start:start + step]
        models = [make(**configs[name]) for name, _ in part]
        identities = [training_identity(m, seed=s, lr=settings["lr"], epochs=plan["epochs"],
                                        batch_size=plan["batch_size"], clip=settings["clip"], data=fingerprints)
                      for m, (_, s) in zip(models, part)]
        fingerprint = identity_key(identities)
        label = f"{type(models[0]).__name__}-{fingerprint[:20]}"

        def train(part=part, models=models, identities=identities):
            missing, own, own_seconds = [], 0, 0.0
            for i, (m, ident) in enumerate(zip(models, identities)):
                stored = None if store is None else store.load(m, ident, device)
                if stored is None:
                    missing.append(i)
                    continue
                if stored.get("trained_by") == experiment and identity_key(ident) not in trained_here:
                    # this experiment's, from an earlier session (one it trained in this run is loaded
                    # like another experiment's: counted once, where it was trained)
                    own += 1
                    own_seconds += float(stored.get("train_seconds", 0.0))
            loaded = len(part) - len(missing) - own
            record = dict(models=len(part), trained=len(missing) + own, loaded=loaded, epochs=plan["epochs"],
                          steps=plan["steps"], optimizer=identities[0]["optimizer"], resumed_from="store" if own else None,
                          train_seconds=round(own_seconds, 1))
            if not missing:
                return record
            trainer = BatchedTrainer([models[i] for i in missing], seeds=[part[i][1] for i in missing],
                                     lr=settings["lr"], epochs=plan["epochs"], batch_size=plan["batch_size"],
                                     clip=settings["clip"], device=device, progress=True,
                                     checkpoint_every=CHECKPOINT_EVERY)
            if _WORK.get() is not None:
                trainer.checkpoint = checkpoint_path(
                    f"{label}-{identity_key([identities[i] for i in missing])[:12]}.pt")
            trainer.fit(*data)
            if store is not None:
                for i in missing:
                    store.save(models[i], identities[i], trainer.train_seconds / len(missing), trained_by=experiment)
                    trained_here.add(identity_key(identities[i]))
            if trainer.checkpoint is not None and os.path.exists(trainer.checkpoint):
                os.remove(trainer.checkpoint)          # the weights are in the store (or handed back) now
            record.update(resumed_from=trainer.resumed_from if trainer.resumed_from is not None else record["resumed_from"],
                          train_seconds=round(own_seconds + trainer.train_seconds, 1))
            return record

        if evaluate is None:
            record_training(**train())
            out.update(zip(part, models))
            continue

        def run(train=train, part=part, models=models):
            record = train()
            began = time.perf_counter()
            entries = [[name, s, evaluate(model)] for (name, s), model in zip(part, models)]
            record["eval_seconds"] = round(time.perf_counter() - began, 1)     # kept in *.result.json
            return entries, record

        identity = {"training": fingerprint, "evaluation": evaluation, "measure": _measure_source()}
        tasks.append((label, identity, run, None))
    return finished_all(tasks) if evaluate is not None else out


def evaluate_kl(model, *data):
    """Per-example, per-dim KL of a trained model on held-out data (NumPy)."""
    from ..nn import Trainer

    return Trainer(model, epochs=1, device="cpu").evaluate_kl(*data)


def measure(kl):
    """The per-run measurements of a per-example KL array (n, latent).

    ``score`` (the primary collapse measure of every nonlinear claim: the mean number of
    (ε, δ = 0.05)-collapsed dims over the log-spaced ε grid 1e-4 … 10, the area under the
    paper's curve, so no single ε is picked), the count at ε = 0.01, the mean total KL and the
    authors' KL-fraction AU.
    """
    curve = metrics.collapse_curve(kl, EPS, DELTA)
    return {"score": float(np.mean(curve)), "collapsed_at_eps": int(metrics.collapse_curve(kl, [EPS_REPORT], DELTA)[0]),
            "KL": float(kl.sum(axis=1).mean()), "AU_kl_fraction": float(metrics.active_units_kl(kl)),
            "curve": curve}


def per_seed(results, names, seeds, key):
    """(seeds, configs) array of one measurement."""
    return np.array([[results[(n, s)][key] for n in names] for s in seeds], dtype=float)


def long_rows(results, names, seeds, extra=None):
    """Per-seed CSV columns: one row per (configuration, seed)."""
    keys = ["score", "collapsed_at_eps", "KL", "AU_kl_fraction"] + list(extra or [])
    rows = {"config": [], "seed": [], **{k: [] for k in keys}}
    for n in names:
        for s in seeds:
            rows["config"].append(n)
            rows["seed"].append(s)
            for k in keys:
                rows[k].append(results[(n, s)][k])
    return rows


def curve_columns(results, names, seeds):
    """Collapse-curve CSV: ε, then the seed mean and every seed's curve per configuration."""
    cols = {"eps": EPS}
    for n in names:
        cols[f"{n} mean"] = np.mean([results[(n, s)]["curve"] for s in seeds], axis=0)
        for s in seeds:
            cols[f"{n} seed {s}"] = results[(n, s)]["curve"]
    return cols


def curve_band(ax, results, names, seeds, title, legend_title, delta=DELTA):
    """Seed-mean collapse curves with a min–max band over seeds."""
    for i, n in enumerate(names):
        curves = np.array([results[(n, s)]["curve"] for s in seeds])
        ax.step(EPS, curves.mean(0), where="post", color=f"C{i}", label=n)
        ax.fill_between(EPS, curves.min(0), curves.max(0), step="post", color=f"C{i}", alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("ε")
    ax.set_ylabel(f"collapsed dims (δ = {delta:g})")
    ax.set_title(title, fontsize=9)
    ax.legend(title=legend_title, fontsize=7, title_fontsize=7)


def torch_module():
    return import_optional("torch")
