"""Chunked, checkpointed execution of a sweep's configurations.

A sweep's flat configuration table is cut into chunks of ``chunk_size`` consecutive
configurations; each chunk is one call of the batched kernels (or of the closed forms). With an
output directory every finished chunk is pickled atomically as ``chunk-NNNNN.pkl`` next to a
``sweep.json`` manifest that fingerprints the data and the settings, so an interrupted sweep
(Ctrl-C, SIGTERM, a killed machine) resumes with the missing chunks only, and a directory holding
a different sweep is refused. The directory is locked while a run writes into it.
"""
import dataclasses
import hashlib
import json
import logging
import os
import pickle

import numpy as np

from ._store import DirectoryLock, atomic_pickle, atomic_write_bytes, atomic_write_json
from .exceptions import SweepMismatchError

__all__ = ["SweepSpec", "run_chunks", "plan_chunks", "load_checkpoints"]

logger = logging.getLogger(__name__)

MANIFEST = "sweep.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class SweepSpec:
    """Everything a chunk needs besides its configurations (picklable, so it can travel to workers)."""

    moments: object
    model: str
    dims: object
    sigma: object
    sigma1: object
    sigma2: object
    options: object          # TrainOptions, or None for the closed forms
    rtol: object
    raw: object = None

    def run_chunk(self, cols):
        """:func:`run_chunk` of this spec (what :func:`linvae.distributed.map_chunks` calls on a worker)."""
        return run_chunk(self, cols)

    def fingerprint(self, cols, chunk_size):
        """SHA-256 of the data's moments, the settings and the configuration table."""
        h = hashlib.sha256()
        m = self.moments
        for a in (m.xx, m.xy, m.yy, m.mean_x, m.mean_y):
            h.update(b"-" if a is None else np.ascontiguousarray(a, dtype=np.float64).tobytes())
        opts = None
        if self.options is not None:
            opts = {k: v for k, v in dataclasses.asdict(self.options).items() if k not in ("progress", "seed")}
        settings = {"n": int(m.n), "centered": bool(m.centered), "model": self.model, "dims": _plain(self.dims),
                    "sigma": _plain(self.sigma), "sigma1": _plain(self.sigma1), "sigma2": _plain(self.sigma2),
                    "options": _plain(opts), "rtol": _plain(self.rtol), "chunk_size": int(chunk_size),
                    "raw": None if self.raw is None else [_digest(a) for a in self.raw]}
        h.update(json.dumps(settings, sort_keys=True).encode())
        for k in sorted(cols):
            h.update(k.encode())
            h.update(np.ascontiguousarray(cols[k], dtype=np.float64).tobytes())
        return h.hexdigest()


def _digest(a):
    return None if a is None else hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in np.asarray(value, dtype=object).ravel().tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def plan_chunks(n_configs, chunk_size):
    """``[(start, stop), ...]`` covering ``range(n_configs)`` in chunks of ``chunk_size``."""
    return [(s, min(s + chunk_size, n_configs)) for s in range(0, n_configs, chunk_size)]


def take(cols, start, stop):
    """Rows ``start:stop`` of a dict of flat columns."""
    return {k: np.asarray(v)[start:stop] for k, v in cols.items()}


#: The fitting functions a chunk calls: ``fit`` (the public :func:`linvae.fit`, for the closed
#: forms) and ``train_grid`` (batched gradient training of validated configurations). They are
#: installed by :mod:`linvae.api` when it is imported, which ``import linvae`` (and so the import
#: of this module, in a worker process too) always does first. A hook instead of an import keeps
#: the layers acyclic (``api`` → ``_sweep`` → ``distributed``; ``tests/test_imports.py``).
_FITTERS = {}


def install_fitters(fit, train_grid):
    """Install the functions :func:`run_chunk` calls (done once, by :mod:`linvae.api`)."""
    _FITTERS.update(fit=fit, train_grid=train_grid)


def run_chunk(spec, cols):
    """Fit the configurations ``cols`` (a dict of flat columns); returns a list of fit results."""
    fit, _train_grid = _FITTERS["fit"], _FITTERS["train_grid"]
    if spec.options is None:
        mh = spec.model == "mhvae"
        return [fit(spec.moments, model=spec.model, latent_dim=None if mh else spec.dims,
                    latent_dims=spec.dims if mh else None, sigma=spec.sigma, sigma1=spec.sigma1,
                    sigma2=spec.sigma2, rtol=spec.rtol, **{k: float(v[i]) for k, v in cols.items()})
                for i in range(len(next(iter(cols.values()))))]
    return _train_grid(spec.moments, spec.model, spec.dims, cols, spec.sigma, spec.sigma1, spec.sigma2,
                       dataclasses.replace(spec.options), spec.rtol, spec.raw)


def chunk_path(out, index):
    return os.path.join(out, f"chunk-{index:05d}.pkl")


def load_checkpoints(out):
    """Manifest and the finished chunks found in ``out`` (``{index: results}``)."""
    with open(os.path.join(out, MANIFEST)) as f:
        manifest = json.load(f)
    done = {}
    for i in range(len(manifest["chunks"])):
        path = chunk_path(out, i)
        if os.path.exists(path):
            with open(path, "rb") as f:
                done[i] = pickle.load(f)
    return manifest, done


def run_chunks(spec, cols, *, chunk_size, out=None, overwrite=False, scheduler=None, progress=False):
    """Run every chunk (resuming from ``out`` when given) and return the results in config order.

    Parameters
    ----------
    spec : SweepSpec
    cols : dict of str -> ndarray
        Flat configuration table.
    chunk_size : int
    out : str or None
        Checkpoint directory.
    overwrite : bool
        Discard checkpoints of a different sweep found in ``out`` instead of refusing.
    scheduler : None or str or distributed.Client
        See :func:`linvae.sweep`.
    progress : bool
        A ``tqdm.auto`` bar over chunks.
    """
    n = len(next(iter(cols.values())))
    chunks = plan_chunks(n, chunk_size)
    if out is None:
        return _execute(spec, cols, chunks, {}, None, scheduler, progress)
    with DirectoryLock(out, purpose=f"linvae.sweep of {n} configs"):
        key = spec.fingerprint(cols, chunk_size)
        done = _open(out, key, chunks, cols, spec, overwrite)
        if done:
            logger.info("resuming sweep in %s: %d of %d chunks already done", out, len(done), len(chunks))
        results = _execute(spec, cols, chunks, done, out, scheduler, progress)
        _write_table(out, cols, results)
        return results


def _open(out, key, chunks, cols, spec, overwrite):
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("key") == key and old.get("format") == FORMAT_VERSION:
            return load_checkpoints(out)[1]
        if not overwrite:
            raise SweepMismatchError(
                f"{out} holds checkpoints of a different sweep (other data, grid or settings); pass "
                f"overwrite=True (--overwrite) to discard them, or choose another directory")
        for name in os.listdir(out):
            if name.startswith("chunk-") or name in (MANIFEST, "table.csv"):
                os.unlink(os.path.join(out, name))
    atomic_write_json(path, {"format": FORMAT_VERSION, "key": key, "model": spec.model,
                             "solver": "closed_form" if spec.options is None else spec.options.solver,
                             "n_configs": len(next(iter(cols.values()))), "chunks": chunks,
                             "columns": {k: np.asarray(v).tolist() for k, v in cols.items()}})
    return {}


def _execute(spec, cols, chunks, done, out, scheduler, progress):
    todo = [i for i in range(len(chunks)) if i not in done]
    bar = None
    if progress and len(chunks) > 1:
        from ._deps import import_optional

        bar = import_optional("tqdm.auto").tqdm(total=len(chunks), initial=len(done), desc="sweep", unit="chunk")

    def finish(i, res):
        done[i] = res
        if out is not None:
            atomic_pickle(chunk_path(out, i), res)
        if bar is not None:
            bar.update(1)
        logger.info("chunk %d/%d done (configs %d-%d)", i + 1, len(chunks), *chunks[i])

    try:
        if scheduler is None:
            for i in todo:
                finish(i, run_chunk(spec, take(cols, *chunks[i])))
        else:
            from .distributed import map_chunks

            map_chunks(scheduler, spec, [(i, take(cols, *chunks[i])) for i in todo], finish)
    finally:
        if bar is not None:
            bar.close()
    return [r for i in range(len(chunks)) for r in done[i]]


def _write_table(out, cols, results):
    names = list(cols)
    lines = [",".join(names + ["n_collapsed", "loss"])]
    for i, r in enumerate(results):
        lines.append(",".join([repr(float(cols[k][i])) for k in names] + [str(r.n_collapsed), repr(float(r.loss))]))
    atomic_write_bytes(os.path.join(out, "table.csv"), ("\n".join(lines) + "\n").encode())
