"""Scripted reproduction of the paper's figures and tables (SPEC §5).

Each experiment module has ``run(out_dir, *, quick=False, seed=0, backend="auto", data=None)``
and returns an :class:`~linvae.experiments._common.Output`; :func:`run_experiment` writes
``<out>/<id>/{figure.png, *.csv, meta.json}`` atomically (a temporary directory renamed into
place), never over existing results unless ``overwrite=True``; :func:`run_all` skips the
experiments that already have results, so an interrupted ``all`` resumes; :func:`write_report`
collects every claim into ``REPORT.md``.  While an experiment runs, its trainings checkpoint into
``<out>/.linvae-work/<id>/``; a stopped experiment run again continues from there (the result is
the uninterrupted run's), and the directory goes once the results are written.
"""
import contextlib
import importlib
import logging
import os
import tempfile
import shutil

import numpy as np

from .._store import DirectoryLock, atomic_write_bytes, commit_directory, is_own_temp_dir, own_temp_dir
from ._common import RunSize, save_output, timer, versions

logger = logging.getLogger(__name__)

__all__ = ["REGISTRY", "Experiment", "run_experiment", "run_all", "write_report", "list_experiments"]

#: id -> (module, function, title, kind); kind "linear" runs in seconds, "torch" trains networks.
REGISTRY = {
    "fig1": ("fig1", "compute", "Graphical models of the VAE, CVAE and two-latent MHVAE", "plot"),
    "fig2a": ("fig2a", "compute", "Linear VAE (ε,δ)-collapse: learnable vs fixed Σ (MNIST, d₁ = 5)", "linear"),
    "fig2b": ("nonlinear", "fig2b", "ReLU CVAE (ε,δ)-collapse vs β and η_dec, with Table 3 (LL, KL, AU)", "torch"),
    "fig2c": ("nonlinear", "fig2c", "ReLU MHVAE (ε,δ)-collapse vs β₁, β₂ and η_dec, with Table 5 (LL, KL, AU)",
              "torch"),
    "fig3a": ("nonlinear", "fig3a", "CVAE on single digits {1, 9, 7}: linear, ReLU and CNN", "torch"),
    "fig3b": ("nonlinear", "fig3b", "ReLU MHVAE reconstructions and z₂ collapse over (β₁, β₂) (Figs 3b and 4)",
              "torch"),
    "fig5": ("nonlinear", "fig5", "ResNet-18 VAE (ε,δ)-collapse: learnable vs Σ = I", "torch"),
    "app_cvae_beta": ("app_linear", "cvae_beta", "Linear CVAE: active latent dims vs β (theory and training)", "linear"),
    "app_mhvae_beta2": ("app_linear", "mhvae_beta2", "Linear MHVAE: active z₂ dims vs β₂ (theory and training)",
                        "linear"),
    "app_verify": ("app_linear", "verify", "Thm 2/3/5 verification: trained vs theoretical ω, λ, σ", "linear"),
    "app_cnn_mhvae": ("nonlinear", "cnn_mhvae", "CNN MHVAE reconstructions and z₂ collapse over (β₁, β₂)", "torch"),
    "app_recon": ("nonlinear", "recon", "CVAE reconstructions of the three masked quarters", "torch"),
    "table1": ("app_linear", "table1", "Table 1: the levers against collapse, each backed by a computed example",
               "linear"),
    "table2": ("app_linear", "table2", "Table 2: VAE learnable vs fixed Σ, linear and ReLU arms — LL, KL, AU", "torch"),
    "table4": ("nonlinear", "table4", "Table 4: synthetic x–y correlation — KL, AU", "torch"),
    "theory_vs_nonlinear": ("nonlinear", "theory_vs_nonlinear",
                            "Beyond the paper: does the linear theory predict the nonlinear collapsed count?", "torch"),
}

#: tables of the paper whose models another experiment trains (each claim is counted once, there)
PART_OF = {"table3": "fig2b", "table5": "fig2c"}

#: experiments whose every training keeps its measurements as a record (``finished_all``), so
#: that ``jobs > 1`` processes can share them; a test checks that each one really does
SHAREABLE = ("fig2c", "fig3b", "fig5", "app_cnn_mhvae", "theory_vs_nonlinear")


class Experiment:
    """One figure or table: ``Experiment(id).run(out_dir, quick=..., seed=..., backend=..., data=...)``."""

    def __init__(self, exp_id):
        if exp_id not in REGISTRY:
            raise ValueError(f"unknown experiment {exp_id!r}; choose from {list(REGISTRY)}")
        self.id = exp_id
        self.title = REGISTRY[exp_id][2]
        self.kind = REGISTRY[exp_id][3]

    def compute(self, *, quick=False, seed=0, backend="auto", data=None):
        """Run the experiment and return its :class:`~linvae.experiments._common.Output` (nothing written)."""
        module, func, _, _ = REGISTRY[self.id]
        fn = getattr(importlib.import_module(f".{module}", __name__), func)
        return fn(quick=RunSize.of(quick), seed=seed, backend=backend, data=data)

    def run(self, out_dir="results", *, quick=False, seed=0, backend="auto", data=None, overwrite=False):
        """Run and write ``<out_dir>/<id>/``; see :func:`run_experiment`."""
        return run_experiment(self.id, out_dir, quick=quick, seed=seed, backend=backend, data=data,
                              overwrite=overwrite)

    def __repr__(self):
        return f"Experiment({self.id!r}: {self.title})"


def list_experiments():
    """``[(id, title), ...]`` in run order."""
    return [(k, v[2]) for k, v in REGISTRY.items()]


def run_experiment(exp_id, out="results", *, quick=False, seed=0, backend="auto", data=None, overwrite=False,
                   jobs=1):
    """Run one experiment and write its outputs to ``<out>/<exp_id>``.

    Parameters
    ----------
    jobs : int
        Processes that share the experiment's trainings (only the experiments of
        :data:`SHAREABLE`): ``jobs - 1`` helper processes run beside this one, each training the
        batched models nobody has claimed yet and keeping their measurements in the work directory,
        each on ``cpu_count // jobs`` torch threads.  The results are those of ``jobs=1`` run on
        as many threads (other thread counts change only the rounding of torch's sums).

    Returns
    -------
    str
        The directory written.
    """
    quick = RunSize.of(quick)
    jobs = check_jobs(jobs, exp_id)
    final = os.path.join(out, exp_id)
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(f"{final} exists; pass --overwrite (overwrite=True) to replace it")
    experiment = Experiment(exp_id)
    with DirectoryLock(out, purpose=f"linvae reproduce {exp_id}"):
        return _run_locked(experiment, out, final, quick, seed, backend, data, overwrite, jobs)


def check_jobs(jobs, exp_id=None):
    """``jobs`` as an int ≥ 1, refused above 1 for an experiment outside :data:`SHAREABLE`."""
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if jobs > 1 and exp_id is not None and exp_id not in SHAREABLE:
        raise ValueError(f"jobs={jobs} needs an experiment whose trainings processes can share, one of "
                         f"{list(SHAREABLE)}; {exp_id!r} is not one (run it with jobs=1)")
    return int(jobs)


#: where the trainings of an unfinished experiment keep their checkpoints: ``<out>/.linvae-work/<id>``
WORK_DIR = ".linvae-work"


def _run_locked(experiment, out, final, quick, seed, backend, data, overwrite, jobs=1):
    from ._nonlinear_common import STORE_DIR, training_record, work_directory

    exp_id = experiment.id
    provenance = _provenance(quick, experiment.kind)
    elapsed = timer()
    work = os.path.join(out, WORK_DIR, exp_id)
    store = os.path.join(out, STORE_DIR)
    logger.info("%s: computing (%s run)", exp_id, quick.value)
    try:
        with work_directory(work, store) as ledger, _helpers(exp_id, work, store, quick, seed, backend, data, jobs):
            output = experiment.compute(quick=quick, seed=seed, backend=backend, data=data)
    except BaseException:
        with os.scandir(work) as entries:
            kept = any(entries)
        if kept:
            logger.warning("%s stopped; its training checkpoints are kept in %s and the same command continues "
                           "from them", exp_id, work)
        raise
    tmp = own_temp_dir(out, f"{exp_id}-")
    meta = {"id": exp_id, "title": experiment.title, "quick": bool(quick), "size": quick.value, "seed": seed,
            "backend": backend,
            "device": "cpu", "data": "embedded 5,000-image MNIST subset" if data is None else str(data),
            "wall_time_s": round(elapsed(), 3), "jobs": jobs, "versions": versions(), "provenance": provenance}
    record = training_record(ledger)
    if record is not None:
        meta["training"] = record
        # training + the evaluations of train_grid, every session summed (issue #33's cost measure)
        meta["cost"] = {"seconds_all_sessions": round(record["train_seconds_all_sessions"]
                                                      + record["eval_seconds_all_sessions"], 1)}
        resumed, reused = record["resumed"], record["reused_measurements"]
        if resumed or reused:
            parts = []
            if resumed:
                parts.append(f"{resumed} resumed from checkpoints of earlier sessions")
            if reused:
                parts.append(f"{reused} read from the finished-training records (*.result.json) of another "
                             "process or session")
            meta["wall_time_note"] = (f"wall_time_s is this process's; of {record['trainings']} trainings, "
                                      + " and ".join(parts)
                                      + " (training.train_seconds_all_sessions counts them all)")
    logger.info("%s: computed in %.1f s; writing its files", exp_id, meta["wall_time_s"])
    save_output(output, tmp, meta)
    commit_directory(tmp, final, overwrite)
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(out, WORK_DIR))             # only when no other experiment's work is left
    logger.info("%s done in %.1f s -> %s", exp_id, meta["wall_time_s"], final)
    return final


def _git(*args):
    """``git <args>`` in the source tree of this linvae (its stripped output; None outside a checkout)."""
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run(["git", "-C", os.path.dirname(here), *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _provenance(quick, kind):
    """``{"commit", "clean"}``: the git commit this run's code is at and whether ``linvae/`` is unchanged
    from it (both None when linvae is not run from a git checkout, for example when installed).

    Raises
    ------
    RuntimeError
        For a full-size (not quick) torch experiment run from a checkout whose ``linvae/`` has
        uncommitted changes: its results could not be traced to any commit.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    top = _git("rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(top) != os.path.realpath(os.path.dirname(here)):
        return {"commit": None, "clean": None, "note": "not run from a git checkout of linvae"}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", "linvae")
    clean = status == ""
    if not clean and not quick and kind == "torch":
        raise RuntimeError(f"linvae/ has uncommitted changes ({len((status or '').splitlines())} files); a full "
                           "torch run records the commit it ran at, so commit (or stash) them first")
    return {"commit": commit, "clean": clean}


@contextlib.contextmanager
def _helpers(exp_id, work, store, quick, seed, backend, data, jobs):
    """``jobs - 1`` helper processes sharing the work directory, and this process's torch threads
    cut to ``cpu_count // jobs`` while they run; on exit the helpers are stopped (by then every
    training has its record, or this process failed and the checkpoints stay for a resume)."""
    if jobs == 1:
        yield
        return
    import multiprocessing

    from ._nonlinear_common import torch_threads

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_helper, args=(exp_id, work, store, quick.value, seed, backend, data, threads),
                             name=f"linvae-{exp_id}-helper-{i + 1}", daemon=True) for i in range(jobs - 1)]
    for p in procs:
        p.start()
    logger.info("%s: %d helper processes share the trainings (%d torch threads each)", exp_id, len(procs), threads)
    try:
        with torch_threads(threads):
            yield
    finally:
        for p in procs:
            if p.exitcode not in (None, 0):
                logger.warning("%s: helper %s stopped with exit code %s; its unfinished training was "
                               "taken over", exp_id, p.name, p.exitcode)
            p.terminate()
            p.join()


def _helper(exp_id, work, store, quick, seed, backend, data, threads):
    """A helper process of :func:`run_experiment` with ``jobs > 1``: trains what it can claim."""
    os.environ.setdefault("TQDM_DISABLE", "1")             # one progress display: the main process's
    from ._nonlinear_common import torch_threads, work_directory

    with work_directory(work, store), torch_threads(threads):
        Experiment(exp_id).compute(quick=quick, seed=seed, backend=backend, data=data)


def run_all(out="results", *, quick=False, seed=0, backend="auto", data=None, overwrite=False, ids=None,
            progress=False, scheduler=None, jobs=1):
    """Run every experiment whose results are missing (all of them with ``overwrite``).

    Parameters
    ----------
    scheduler : None, "threads", "processes", "local", address or distributed.Client
        Run the experiments as Dask tasks (see :mod:`linvae.distributed`); each task runs in a
        private directory on its worker and ships its files back, and this process writes them
        into ``out`` atomically, so resuming works across schedulers.
    jobs : int
        Without a scheduler: processes per experiment for those of :data:`SHAREABLE` (see
        :func:`run_experiment`); the others run in this process alone.

    Returns
    -------
    list of str
        The ids that were run (the others already had results).
    """
    quick = RunSize.of(quick)
    jobs = check_jobs(jobs)
    if jobs > 1 and scheduler is not None:
        raise ValueError(f"jobs={jobs} runs helper processes here; with scheduler={scheduler!r} leave jobs=1 "
                         "(the scheduler's workers already run experiments side by side)")
    with DirectoryLock(out, purpose="linvae reproduce all"):
        _remove_partial(out)
        return _run_all_locked(out, quick, seed, backend, data, overwrite, ids, progress, scheduler, jobs)


def _remove_partial(out):
    """Delete temporary directories a killed run left behind (we hold the lock: nobody writes).

    Only linvae's own (``.linvae-tmp-`` name and marker file) are removed; anything else, such as
    a user's ``.tmp-build/``, is left alone.
    """
    for name in os.listdir(out):
        if is_own_temp_dir(os.path.join(out, name)):
            logger.info("removing %s left by an interrupted run", name)
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)


def _run_all_locked(out, quick, seed, backend, data, overwrite, ids, progress, scheduler, jobs=1):
    todo = [e for e in (ids or REGISTRY)
            if overwrite or not os.path.exists(os.path.join(out, e, "meta.json"))]
    bar = None
    if progress:
        from .._deps import import_optional

        bar = import_optional("tqdm.auto").tqdm(total=len(todo), desc="reproduce", unit="exp")
    try:
        if scheduler is None:
            for exp_id in todo:
                run_experiment(exp_id, out, quick=quick, seed=seed, backend=backend, data=data,
                               overwrite=overwrite, jobs=jobs if exp_id in SHAREABLE else 1)
                if bar is not None:
                    bar.update(1)
        else:
            _run_on_dask(todo, out, quick, seed, backend, data, overwrite, scheduler, bar)
    finally:
        if bar is not None:
            bar.close()
    return todo


def _experiment_files(exp_id, quick, seed, backend, data):
    """Run one experiment in a private temporary directory; return its files as bytes (a Dask task)."""
    with tempfile.TemporaryDirectory(prefix=f"linvae-{exp_id}-") as tmp:
        final = run_experiment(exp_id, tmp, quick=quick, seed=seed, backend=backend, data=data)
        files = {}
        for name in os.listdir(final):
            with open(os.path.join(final, name), "rb") as f:
                files[name] = f.read()
    return files


def _run_on_dask(todo, out, quick, seed, backend, data, overwrite, scheduler, bar):
    """Farm experiments out as Dask tasks; the caller writes each result directory atomically."""
    from ..distributed import SweepChunkError, map_tasks

    def finish(exp_id, files):
        tmp = own_temp_dir(out, f"{exp_id}-")
        for name, blob in files.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(blob)
        commit_directory(tmp, os.path.join(out, exp_id), overwrite)
        logger.info("%s done -> %s", exp_id, os.path.join(out, exp_id))
        if bar is not None:
            bar.update(1)

    tasks = [(e, (e, quick, seed, backend, data)) for e in todo]
    failures = map_tasks(scheduler, _experiment_files, tasks, finish)
    if failures:
        first = next(iter(failures))
        raise SweepChunkError(f"{len(failures)} of {len(todo)} experiments failed (first: {first}: "
                              f"{failures[first]!r}); the others finished", failures)


#: first line of every REPORT.md linvae writes; a REPORT.md without it is the user's and is kept
REPORT_MARKER = "<!-- written by linvae (`linvae reproduce report`); replaced on every run -->"


def _is_own_report(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().rstrip("\n")
    except OSError:
        return False
    return first in (REPORT_MARKER, "# linvae reproduction report")   # the latter: reports of linvae <= 0.x


def write_report(out="results"):
    """Write ``<out>/REPORT.md``: every claim, the theory's prediction, the measurement, a verdict."""
    from ._report import build_report

    path = os.path.join(out, "REPORT.md")
    if not os.path.isdir(out):
        raise FileNotFoundError(f"results directory {out!r} does not exist; run `linvae reproduce` into it first")
    if os.path.exists(path) and not _is_own_report(path):
        raise FileExistsError(f"{path} was not written by linvae (its first line is not {REPORT_MARKER!r}); "
                              "move it away, or write the results to another --out directory")
    text = REPORT_MARKER + "\n" + build_report(out, REGISTRY, PART_OF)
    # a private temporary name per call (mkstemp), so concurrent calls never collide
    atomic_write_bytes(path, text.encode())
    return path
