"""Chunked, checkpointed execution of a sweep's configurations.

A sweep's flat configuration table is cut into chunks of ``chunk_size`` consecutive
configurations; each chunk is one call of the batched kernels (or of the closed forms). With an
output directory every finished chunk is written atomically as ``chunk-NNNNN.npz`` next to a
``sweep.json`` manifest that fingerprints the data and the settings, so an interrupted sweep
(Ctrl-C, SIGTERM, a killed machine) resumes with the missing chunks only, and a directory holding
a different sweep is refused. The directory is locked while a run writes into it.

Checkpoints are data, not code: a chunk is an ``.npz`` of plain numeric arrays (the fit results,
see :mod:`linvae._resultio`) plus a JSON header holding the sweep's fingerprint, the chunk's index
and configuration span, its configuration count and a SHA-256 checksum of the payload; it is read
with ``numpy.load(allow_pickle=False)``, so no file in the directory can run code. A chunk that
fails any check (truncated, garbled, another sweep's, another position's) is named in a
:class:`~linvae.exceptions.CheckpointWarning` and recomputed. Chunks without a manifest are
refused (they cannot be tied to a sweep), and ``overwrite=True`` removes only files carrying
linvae's header or listed by its manifest.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re

import numpy as np

from ._store import DirectoryLock, atomic_write_bytes, atomic_write_json, atomic_write_npz
from ._warn import warn as _warn
from .exceptions import CheckpointWarning, CorruptCheckpointError, SweepMismatchError

__all__ = ["SweepSpec", "run_chunks", "plan_chunks", "load_checkpoints"]

logger = logging.getLogger(__name__)

MANIFEST = "sweep.json"
FORMAT_VERSION = 2


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
    fit_spec: object = None  # the validated linvae._spec.FitSpec the chunks run (not fingerprinted)

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


def run_chunk(spec, cols):
    """Fit the configurations ``cols`` (a dict of flat columns); returns a list of fit results."""
    from ._models import fit_configurations
    from ._spec import for_chunk

    return fit_configurations(for_chunk(spec, cols), cols)


CHUNK_KIND = "linvae-sweep-chunk"
MANIFEST_KIND = "linvae-sweep"
HEADER = "__linvae_chunk__"          # the chunk's JSON header, stored as a uint8 array in the .npz
_CHUNK_NAME = re.compile(r"chunk-(\d{5})\.(npz|pkl)")
TABLE = "table.csv"


def chunk_path(out, index):
    return os.path.join(out, f"chunk-{index:05d}.npz")


class _BadChunk(Exception):
    """A chunk file that cannot be used (the reason is the message)."""


def _payload_digest(arrays, header):
    """SHA-256 of the header (without its checksum) and every array's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "checksum"},
                                  sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _columns_digest(columns):
    return hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()


def write_chunk(path, results, *, key, index, span):
    """Write one chunk: ``results`` as arrays + a JSON header (fingerprint, index, count, checksum)."""
    from ._resultio import to_arrays

    arrays, metas = {}, []
    for j, r in enumerate(results):
        a, meta = to_arrays(r, prefix=f"r{j}/")
        arrays.update(a)
        metas.append(meta)
    header = {"kind": CHUNK_KIND, "format": FORMAT_VERSION, "fingerprint": key, "index": int(index),
              "start": int(span[0]), "stop": int(span[1]), "n_configs": len(results), "results": metas}
    header["checksum"] = _payload_digest(arrays, header)
    arrays[HEADER] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    atomic_write_npz(path, arrays)


def _read_header(archive):
    if HEADER not in archive.files:
        raise _BadChunk("no linvae chunk header (not a linvae checkpoint)")
    try:
        header = json.loads(np.asarray(archive[HEADER], dtype=np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadChunk(f"garbled header ({exc})") from None
    if not isinstance(header, dict) or header.get("kind") != CHUNK_KIND:
        raise _BadChunk("the header is not a linvae chunk header")
    return header


def _open_archive(path):
    """``numpy.load`` with ``allow_pickle=False``: a file holding pickled data is refused, not run."""
    with open(path, "rb") as f:                  # read whole: a damaged file leaves no open handle behind
        blob = f.read()
    archive = np.load(io.BytesIO(blob), allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _BadChunk("not an .npz archive")
    return archive


def read_chunk(path, *, key, index, span):
    """The results stored in chunk file ``path``, checked against the sweep it must belong to.

    Raises
    ------
    _BadChunk
        Naming why the file cannot be used: unreadable or truncated, not linvae's, another
        sweep's (fingerprint), another position's (index, span), a wrong configuration count, or
        a checksum mismatch (garbled payload).
    """
    from ._resultio import from_arrays

    try:
        with _open_archive(path) as archive:
            header = _read_header(archive)
            if header.get("format") != FORMAT_VERSION:
                raise _BadChunk(f"chunk format {header.get('format')!r}, expected {FORMAT_VERSION}")
            if header.get("fingerprint") != key:
                raise _BadChunk("it belongs to another sweep (fingerprint differs)")
            if header.get("index") != index or [header.get("start"), header.get("stop")] != list(span):
                raise _BadChunk(f"it is chunk {header.get('index')!r} (configs {header.get('start')!r}-"
                                f"{header.get('stop')!r}), not chunk {index} (configs {span[0]}-{span[1]})")
            metas = header.get("results")
            count = span[1] - span[0]
            if header.get("n_configs") != count or not isinstance(metas, list) or len(metas) != count:
                raise _BadChunk(f"it holds {header.get('n_configs')!r} configurations, expected {count}")
            arrays = {name: archive[name] for name in archive.files if name != HEADER}
            if _payload_digest(arrays, header) != header.get("checksum"):
                raise _BadChunk("checksum mismatch (garbled contents)")
            return [from_arrays(arrays, m, prefix=f"r{j}/") for j, m in enumerate(metas)]
    except _BadChunk:
        raise
    except Exception as exc:            # noqa: BLE001 - zip, npy, JSON and decoding errors alike
        raise _BadChunk(f"unreadable or truncated ({type(exc).__name__}: {exc})") from None


def _is_own_chunk(path):
    """Whether ``path`` is a chunk file linvae wrote (it carries linvae's chunk header)."""
    try:
        with _open_archive(path) as archive:
            _read_header(archive)
        return True
    except Exception:                   # noqa: BLE001
        return False


def _is_own_table(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n").endswith(",n_collapsed,loss")
    except (OSError, UnicodeDecodeError):
        return False


def read_manifest(out):
    """The validated ``sweep.json`` of ``out``.

    Raises
    ------
    FileNotFoundError
        When there is none.
    CorruptCheckpointError
        When it is not valid JSON, not linvae's, or inconsistent.
    SweepMismatchError
        When an older linvae wrote it (pickle chunks, which are never loaded).
    """
    path = os.path.join(out, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{out} holds no sweep ({MANIFEST} is missing)") from None
    fix = (f"delete {path} (and the chunk-*.npz files next to it) by hand, or choose another "
           "directory; linvae does not remove a file it cannot identify as its own")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptCheckpointError(f"the sweep manifest {path} is corrupt ({exc}); {fix}", path=path) from None
    if not isinstance(manifest, dict) or "key" not in manifest or "format" not in manifest:
        raise CorruptCheckpointError(f"{path} is not a linvae sweep manifest; {fix}", path=path)
    if manifest["format"] == 1:
        raise SweepMismatchError(
            f"{out} holds a sweep written by an older linvae (pickled chunks, which linvae no longer "
            "loads because unpickling a file can run code); run the sweep again with overwrite=True "
            "(--overwrite) to replace it, or choose another directory")
    try:
        ok = (manifest["format"] == FORMAT_VERSION and manifest.get("kind") == MANIFEST_KIND
              and isinstance(manifest["key"], str)
              and all(isinstance(c, list) and len(c) == 2 and all(isinstance(v, int) for v in c)
                      for c in manifest["chunks"])
              and plan_chunks(manifest["n_configs"], max(1, manifest["chunks"][0][1] - manifest["chunks"][0][0])
                              if manifest["chunks"] else 1) == [tuple(c) for c in manifest["chunks"]]
              and _columns_digest(manifest["columns"]) == manifest["columns_sha256"]
              and all(len(v) == manifest["n_configs"] for v in manifest["columns"].values()))
    except (KeyError, TypeError, AttributeError, IndexError):
        ok = False
    if not ok:
        raise CorruptCheckpointError(f"the sweep manifest {path} is inconsistent (edited or garbled); {fix}",
                                     path=path)
    return manifest


def load_checkpoints(out, key=None):
    """Manifest and the valid finished chunks found in ``out`` (``{index: results}``).

    Nothing is unpickled: chunks are ``.npz`` archives read with ``allow_pickle=False``. A chunk
    that is unreadable, truncated, garbled, of another sweep or at another position is left out
    with a :class:`~linvae.exceptions.CheckpointWarning` naming the file and the reason (a
    resumed sweep recomputes it).

    Parameters
    ----------
    out : str
    key : str, optional
        The fingerprint the chunks must carry (default: the manifest's).
    """
    manifest = read_manifest(out)
    key = manifest["key"] if key is None else key
    done = {}
    for i, span in enumerate(manifest["chunks"]):
        path = chunk_path(out, i)
        if not os.path.exists(path):
            continue
        try:
            done[i] = read_chunk(path, key=key, index=i, span=tuple(span))
        except _BadChunk as exc:
            msg = f"ignoring sweep chunk {path}: {exc}; it will be recomputed"
            logger.warning(msg)
            _warn(msg, CheckpointWarning)
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
        results = _execute(spec, cols, chunks, done, out, scheduler, progress, key)
        _write_table(out, cols, results)
        return results


def _leftovers(out):
    """Names of files in ``out`` that look like sweep chunks (``chunk-NNNNN.npz`` / ``.pkl``)."""
    return sorted(n for n in os.listdir(out) if _CHUNK_NAME.fullmatch(n) and os.path.isfile(os.path.join(out, n)))


def _remove_own(out, manifest):
    """Remove linvae's own sweep files from ``out``: chunks carrying linvae's header, the pickled
    chunks an older manifest lists, its ``table.csv`` and the manifest. Returns what it left."""
    old_pickles = set()
    if manifest is not None and manifest.get("format") == 1:
        old_pickles = {f"chunk-{i:05d}.pkl" for i in range(len(manifest.get("chunks") or []))}
    kept = []
    for name in _leftovers(out):
        path = os.path.join(out, name)
        if name in old_pickles or (name.endswith(".npz") and _is_own_chunk(path)):
            os.unlink(path)
        else:
            kept.append(name)
    if os.path.exists(os.path.join(out, TABLE)) and _is_own_table(os.path.join(out, TABLE)):
        os.unlink(os.path.join(out, TABLE))
    if manifest is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out, MANIFEST))
    return kept


def _open(out, key, chunks, cols, spec, overwrite):
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        try:
            old = read_manifest(out)
        except CorruptCheckpointError:
            raise
        except SweepMismatchError:               # an older linvae's manifest (format 1)
            if not overwrite:
                raise
            with open(path) as f:
                old = json.load(f)
        else:
            if old["key"] == key:
                return load_checkpoints(out, key)[1]
            if not overwrite:
                raise SweepMismatchError(
                    f"{out} holds checkpoints of a different sweep (other data, grid or settings); pass "
                    f"overwrite=True (--overwrite) to discard them, or choose another directory")
        kept = _remove_own(out, old)
        if kept:
            logger.warning("overwrite=True left %s in %s: not identifiable as linvae's files", kept, out)
    else:
        leftovers = _leftovers(out)
        if leftovers and overwrite:
            leftovers = _remove_own(out, None)
        if leftovers:
            shown = ", ".join(leftovers[:3]) + (f" and {len(leftovers) - 3} more" if len(leftovers) > 3 else "")
            raise SweepMismatchError(
                f"{out} holds sweep chunks ({shown}) but no {MANIFEST} manifest, so they cannot be tied to "
                f"this sweep (they may be another sweep's); delete them or choose another directory"
                + ("" if overwrite else "; overwrite=True (--overwrite) removes the ones linvae wrote"))
        table = os.path.join(out, TABLE)
        if os.path.exists(table) and not _is_own_table(table):
            raise SweepMismatchError(f"{table} exists and was not written by linvae; a sweep into {out} would "
                                     "replace it: move it or choose another directory")
    columns = {k: np.asarray(v).tolist() for k, v in cols.items()}
    atomic_write_json(path, {"format": FORMAT_VERSION, "kind": MANIFEST_KIND, "key": key, "model": spec.model,
                             "solver": "closed_form" if spec.options is None else spec.options.solver,
                             "n_configs": len(next(iter(cols.values()))), "chunks": chunks,
                             "columns": columns, "columns_sha256": _columns_digest(columns)})
    return {}


def _execute(spec, cols, chunks, done, out, scheduler, progress, key=None):
    todo = [i for i in range(len(chunks)) if i not in done]
    bar = None
    if progress and len(chunks) > 1:
        from ._deps import import_optional

        bar = import_optional("tqdm.auto").tqdm(total=len(chunks), initial=len(done), desc="sweep", unit="chunk")

    def finish(i, res):
        if len(res) != chunks[i][1] - chunks[i][0]:
            raise RuntimeError(f"chunk {i} returned {len(res)} results for {chunks[i][1] - chunks[i][0]} configurations")
        done[i] = res
        if out is not None:
            write_chunk(chunk_path(out, i), res, key=key, index=i, span=chunks[i])
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
    atomic_write_bytes(os.path.join(out, TABLE), ("\n".join(lines) + "\n").encode())
