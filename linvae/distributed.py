"""Run sweep chunks and experiments on Dask (``pip install "linvae[distributed]"``).

The unit of work is a *chunk* of consecutive configurations (one batched kernel call), so each
task still uses the batched kernels. Schedulers:

``None``
    In this process (no Dask).
``"threads"`` / ``"processes"``
    Dask's local thread / process pool (``dask.compute``), no cluster.
``"local"``
    A ``distributed.LocalCluster`` sized to the machine, started for this call and closed after.
``"tcp://host:port"`` or a ``distributed.Client``
    An existing cluster.

With a ``distributed`` scheduler, finished chunks come back as they complete and are
checkpointed by the calling process, a task lost with a killed worker is recomputed by Dask, and a
chunk that fails deterministically is reported in a :class:`SweepChunkError` after the rest of the
sweep has completed (and been checkpointed).
"""
import contextlib
import logging
import os

from ._deps import import_optional
from .exceptions import SweepChunkError
from .stats import moments_from_dask  # noqa: F401  (the Dask source of Moments; re-exported here)

__all__ = ["map_chunks", "map_tasks", "client_for", "moments_from_dask", "SweepChunkError", "LOCAL_SCHEDULERS"]

logger = logging.getLogger(__name__)

LOCAL_SCHEDULERS = ("threads", "processes")


def _check_scheduler(scheduler):
    if isinstance(scheduler, str):
        if scheduler in LOCAL_SCHEDULERS or scheduler == "local" or "://" in scheduler:
            return scheduler
        raise ValueError(f"scheduler must be None, 'threads', 'processes', 'local', an address like "
                         f"'tcp://host:8786' or a distributed.Client, got {scheduler!r}")
    if type(scheduler).__name__ == "Client" and hasattr(scheduler, "submit"):
        return scheduler
    raise TypeError(f"scheduler must be None, a string or a distributed.Client, got {type(scheduler).__name__}")


@contextlib.contextmanager
def client_for(scheduler):
    """A ``distributed.Client`` for ``"local"``, an address or a Client (closed after if we made it)."""
    distributed = import_optional("distributed")
    if not isinstance(scheduler, str):
        yield scheduler
        return
    if scheduler == "local":
        cluster = distributed.LocalCluster(n_workers=max(1, min(os.cpu_count() or 1, 8)), threads_per_worker=1,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    client = distributed.Client(scheduler)
    try:
        yield client
    finally:
        client.close()


def _task(spec, cols):
    return spec.run_chunk(cols)


def map_chunks(scheduler, spec, work, finish):
    """Run ``work`` (``[(index, cols), ...]``) on ``scheduler``; call ``finish(index, results)`` per chunk.

    ``spec`` is a :class:`linvae._sweep.SweepSpec` (any picklable object with a
    ``run_chunk(cols)`` method).

    Raises
    ------
    SweepChunkError
        After every other chunk finished, when some chunks raised.
    """
    failures = map_tasks(scheduler, _task, [(i, (spec, cols)) for i, cols in work], finish, shared=spec)
    if failures:
        first = min(failures)
        raise SweepChunkError(f"{len(failures)} of {len(work)} chunks failed (first: chunk {first}: "
                              f"{failures[first]!r}); the other chunks finished", failures)


def map_tasks(scheduler, fn, tasks, finish, shared=None):
    """Run ``fn(*args)`` for every ``(key, args)`` of ``tasks``; ``finish(key, result)`` as each ends.

    Parameters
    ----------
    scheduler : "threads", "processes", "local", address or distributed.Client
        ``"threads"``/``"processes"``: Dask's local schedulers (``dask.compute``); otherwise a
        ``distributed`` cluster (see :func:`client_for`), whose results arrive as they finish.
    shared : object, optional
        An argument equal to ``args[0]`` of every task, scattered to the cluster's workers once.

    Returns
    -------
    dict
        ``key -> exception`` of the tasks that raised (the others were all finished).
    """
    scheduler = _check_scheduler(scheduler)
    failures = {}
    if not tasks:
        return failures
    if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
        dask = import_optional("dask")
        delayed = [dask.delayed(_guarded)(fn, *args) for _, args in tasks]
        for (key, _), (ok, value) in zip(tasks, dask.compute(*delayed, scheduler=scheduler)):
            if ok:
                finish(key, value)
            else:
                failures[key] = value
        return failures
    distributed = import_optional("distributed")
    with client_for(scheduler) as client:
        if shared is not None:
            handle = client.scatter(shared, broadcast=True)
            tasks = [(key, (handle,) + tuple(args[1:])) for key, args in tasks]
        futures = {client.submit(fn, *args, pure=False): key for key, args in tasks}
        for fut in distributed.as_completed(futures):
            key = futures[fut]
            if fut.status == "error":
                failures[key] = fut.exception()
                logger.error("task %s failed: %r", key, failures[key])
                continue
            finish(key, fut.result())
    return failures


def _guarded(fn, *args):
    try:
        return True, fn(*args)
    except Exception as exc:   # noqa: BLE001 — reported to the caller with the task's key
        return False, exc
