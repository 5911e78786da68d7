"""Long work is safe: checkpointed sweeps, kill-and-resume, locks, concurrent runs (issue: reliability)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import linvae
from linvae import _sweep, experiments
from linvae._store import LOCK_NAME, DirectoryLock
from linvae.exceptions import OutputLockedError, SweepMismatchError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = np.random.default_rng(0).normal(size=(300, 5)) * [3.0, 2.0, 1.0, 0.5, 0.2]
BETAS = np.linspace(0.2, 3.0, 8)
SWEEP = dict(beta=BETAS, solver="adam", max_iter=3000)


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.W, rb.W)
        np.testing.assert_array_equal(ra.sigma, rb.sigma)
        assert ra.loss == rb.loss


@pytest.fixture(scope="module")
def reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.ConvergenceWarning)
        return linvae.sweep(X, **SWEEP)


def _counting(monkeypatch):
    calls = []
    original = _sweep.run_chunk

    def counted(spec, cols):
        calls.append(len(cols["beta"]))
        return original(spec, cols)

    monkeypatch.setattr(_sweep, "run_chunk", counted)
    return calls


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_checkpointed_sweep_equals_in_memory_and_reloads(tmp_path, reference):
    out = tmp_path / "sweep"
    res = linvae.sweep(X, **SWEEP, out=out, chunk_size=3)
    _same(res, reference)
    names = sorted(os.listdir(out))
    assert names == ["chunk-00000.npz", "chunk-00001.npz", "chunk-00002.npz", "sweep.json", "table.csv"]
    _same(linvae.SweepResult.load(out), reference)
    rows = (out / "table.csv").read_text().splitlines()
    assert len(rows) == 1 + len(BETAS) and rows[0].startswith("beta,eta_enc,eta_dec,seed")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_resume_recomputes_only_missing_chunks(tmp_path, monkeypatch, reference):
    out = tmp_path / "sweep"
    linvae.sweep(X, **SWEEP, out=out, chunk_size=2)
    os.unlink(out / "chunk-00001.npz")
    os.unlink(out / "chunk-00003.npz")
    with pytest.raises(ValueError, match="incomplete: 2 of 4"):
        linvae.SweepResult.load(out)
    calls = _counting(monkeypatch)
    _same(linvae.sweep(X, **SWEEP, out=out, chunk_size=2), reference)
    assert calls == [2, 2]                    # chunks 1 and 3 only
    calls.clear()
    linvae.sweep(X, **SWEEP, out=out, chunk_size=2)
    assert calls == []                        # complete: nothing recomputed


@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_a_different_sweep_in_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "sweep"
    linvae.sweep(X, **SWEEP, out=out, chunk_size=4)
    before = (out / "chunk-00000.npz").read_bytes()
    for change in (dict(beta=BETAS[:5]), dict(eta_dec=0.5), dict(max_iter=100)):
        with pytest.raises(SweepMismatchError, match="different sweep"):
            linvae.sweep(X, **{**SWEEP, **change}, out=out, chunk_size=4)
    with pytest.raises(SweepMismatchError):
        linvae.sweep(X * 1.01, **SWEEP, out=out, chunk_size=4)         # other data
    assert (out / "chunk-00000.npz").read_bytes() == before              # nothing was touched
    res = linvae.sweep(X, **{**SWEEP, "beta": BETAS[:5]}, out=out, chunk_size=4, overwrite=True)
    assert len(linvae.SweepResult.load(out)) == len(res) == 5


_SLOW_SWEEP = textwrap.dedent("""
    import sys, time, warnings
    import numpy as np
    import linvae
    from linvae import _sweep
    original = _sweep.run_chunk
    def slow(spec, cols):
        out = original(spec, cols)
        time.sleep(0.4)
        return out
    _sweep.run_chunk = slow
    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).normal(size=(300, 5)) * [3.0, 2.0, 1.0, 0.5, 0.2]
    linvae.sweep(X, beta=np.linspace(0.2, 3.0, 8), solver="adam", max_iter=3000, out=sys.argv[1], chunk_size=1)
""")


_STARTED = []


@pytest.fixture(autouse=True)
def _close_workers():
    """Every worker a test started is stopped and its pipes closed (no leaked file descriptors)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()


def _start(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stdout = open(os.devnull, "rb")         # a closable stand-in: nothing reads the worker's stdout
    _STARTED.append(proc)
    return proc


def _wait_for(predicate, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for the worker")


def _chunks(out):
    return sorted(n for n in os.listdir(out) if n.startswith("chunk-")) if os.path.isdir(out) else []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_killed_sweep_resumes_without_recomputing_or_losing_chunks(tmp_path, monkeypatch, reference, sig):
    out = tmp_path / "sweep"
    proc = _start(_SLOW_SWEEP, out)
    _wait_for(lambda: len(_chunks(out)) >= 2, proc)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    done = _chunks(out)
    assert 2 <= len(done) < len(BETAS)
    calls = _counting(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = linvae.sweep(X, **SWEEP, out=out, chunk_size=1)
    assert any("stale lock" in str(w.message) for w in caught)      # the killed run's lock was detected
    assert len(calls) == len(BETAS) - len(done)                     # finished chunks were not recomputed
    _same(res, reference)                                           # and none was lost or corrupted
    assert not os.path.exists(out / LOCK_NAME)


@pytest.mark.slow
def test_concurrent_run_into_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "sweep"
    proc = _start(_SLOW_SWEEP, out)
    try:
        _wait_for(lambda: os.path.exists(out / LOCK_NAME), proc)
        with pytest.raises(OutputLockedError, match=f"pid {proc.pid}") as info:
            linvae.sweep(X, **SWEEP, out=out, chunk_size=1)
        assert info.value.holder["pid"] == proc.pid
        with pytest.raises(OutputLockedError):
            experiments.run_all(str(out), quick="tiny", ids=["table1"])
    finally:
        proc.kill()
        proc.wait()


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
    with DirectoryLock(tmp_path, "outer"):
        with DirectoryLock(tmp_path, "inner"):
            assert os.path.exists(tmp_path / LOCK_NAME)
        assert os.path.exists(tmp_path / LOCK_NAME)          # still held by the outer block
    assert not os.path.exists(tmp_path / LOCK_NAME)


def test_lock_of_another_host_is_never_broken(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "purpose": "x"}))
    with pytest.raises(OutputLockedError, match="elsewhere"):
        DirectoryLock(tmp_path).acquire()


_SLOW_REPRODUCE = textwrap.dedent("""
    import sys, time
    from linvae import experiments
    original = experiments.Experiment.compute
    def slow(self, **kw):
        out = original(self, **kw)
        time.sleep(0.5)
        return out
    experiments.Experiment.compute = slow
    from linvae.cli import main
    experiments.run_all(sys.argv[1], quick="tiny", ids=sys.argv[2].split(","))
""")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_killed_reproduce_all_resumes_with_the_missing_experiments(tmp_path):
    out = tmp_path / "results"
    ids = ["fig1", "table1", "app_verify", "fig2a"]
    proc = _start(_SLOW_REPRODUCE, out, ",".join(ids))
    _wait_for(lambda: os.path.exists(out / "table1" / "meta.json"), proc)
    proc.kill()
    proc.wait(timeout=30)
    finished = [e for e in ids if os.path.exists(out / e / "meta.json")]
    assert set(finished) >= {"fig1", "table1"} and len(finished) < len(ids)
    for e in ids:        # an experiment directory is either complete or absent
        assert os.path.exists(out / e / "meta.json") == os.path.isdir(out / e)
    stamps = {e: os.stat(out / e / "meta.json").st_mtime_ns for e in finished}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ran = experiments.run_all(str(out), quick="tiny", ids=ids)
    assert ran == [e for e in ids if e not in finished]
    assert {e: os.stat(out / e / "meta.json").st_mtime_ns for e in finished} == stamps
    assert not [n for n in os.listdir(out) if n.startswith((".tmp-", ".old-"))]
    assert not os.path.exists(out / LOCK_NAME)


@pytest.mark.slow
def test_cli_turns_sigterm_into_a_clean_interrupt(tmp_path):
    out = tmp_path / "results"
    script = _SLOW_REPRODUCE.replace(
        'experiments.run_all(sys.argv[1], quick="tiny", ids=sys.argv[2].split(","))',
        'experiments.REGISTRY = {k: experiments.REGISTRY[k] for k in ("fig1", "table1", "table2")}\n'
        'original_run_all = experiments.run_all\n'
        'experiments.run_all = lambda *a, **k: original_run_all(*a, **dict(k, quick="tiny"))\n'
        'sys.exit(main(["reproduce", "all", "--out", sys.argv[1]]))')
    proc = _start(script, out, "")
    _wait_for(lambda: os.path.exists(out / "fig1" / "meta.json"), proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 130, proc.stderr.read().decode()[-2000:]
    assert b"interrupted" in proc.stderr.read()
    assert not os.path.exists(out / LOCK_NAME)               # released, not left stale


@pytest.mark.slow
def test_doctor_reports_versions_threading_and_optional_packages(capsys):
    from linvae.cli import main

    assert main(["doctor", "--no-check"]) == 0
    text = capsys.readouterr().out
    import numba

    for item in ("linvae", "python", "numpy", "numba", "numba threading layer", "torch", "cupy", "dask"):
        assert any(line.startswith(item + " ") for line in text.splitlines()), item
    assert numba.__version__ in text
    assert numba.threading_layer() in text          # the layer the probe kernel actually used
    assert 'pip install "linvae[cuda12]"' in text or "GPU" in text


@pytest.mark.slow
def test_doctor_self_check_runs_the_kernels():
    from linvae.doctor import diagnose

    rows = dict(diagnose(check_kernels=True))
    assert rows["kernel self-check"].startswith("ok"), rows["kernel self-check"]


def test_lock_holds_between_threads_of_one_process(tmp_path):
    import threading

    got = []
    with DirectoryLock(tmp_path, "main thread"):
        def other():
            try:
                DirectoryLock(tmp_path, "second thread").acquire()
                got.append("acquired")
            except OutputLockedError as exc:
                got.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(got) == 1 and isinstance(got[0], OutputLockedError), got
    assert got[0].holder["pid"] == os.getpid()
    assert not os.path.exists(tmp_path / LOCK_NAME)
    with DirectoryLock(tmp_path, "after release"):             # free again once released
        assert os.path.exists(tmp_path / LOCK_NAME)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_two_threads_sweeping_into_one_directory_do_not_mix(tmp_path, reference):
    import threading

    out = tmp_path / "sweep"
    outcomes = []

    def run(betas):
        try:
            outcomes.append(len(linvae.sweep(X, **{**SWEEP, "beta": betas}, out=out, chunk_size=1)))
        except OutputLockedError:
            outcomes.append("locked")

    threads = [threading.Thread(target=run, args=(b,)) for b in (BETAS, BETAS[:3])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, outcomes)) in (["3", "locked"], ["8", "locked"]), outcomes
    loaded = linvae.SweepResult.load(out)                      # one consistent sweep, not a mix
    n = len(loaded)
    if n == len(BETAS):
        _same(loaded, reference)
    else:
        np.testing.assert_array_equal(loaded.columns["beta"], BETAS[:3])


def test_an_empty_lock_file_does_not_lock_forever(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.warns(UserWarning, match="empty or unreadable lock"):
        with DirectoryLock(tmp_path, "x"):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not os.path.exists(tmp_path / LOCK_NAME)


def test_concurrent_write_report_calls_all_succeed(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: experiments.write_report(str(tmp_path)), range(200)))
    assert set(paths) == {os.path.join(str(tmp_path), "REPORT.md")}
    assert (tmp_path / "REPORT.md").read_text().splitlines()[1] == "# linvae reproduction report"
    assert sorted(os.listdir(tmp_path)) == ["REPORT.md"]       # no temporaries left behind
    with pytest.raises(FileNotFoundError, match="does not exist"):
        experiments.write_report(str(tmp_path / "missing"))


def test_new_files_follow_the_umask(tmp_path):
    from linvae._store import atomic_write_bytes

    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "f").st_mode & 0o777) == 0o640


@pytest.mark.slow
def test_two_trainers_in_one_run_directory_do_not_race_on_history(tmp_path):
    torch = pytest.importorskip("torch")
    import threading

    from linvae import nn as lnn

    errors = []

    def train(seed):
        try:
            model = lnn.VAE(6, 2, hidden=4)
            lnn.Trainer(model, epochs=3, batch_size=16, seed=seed, run_dir=tmp_path, overwrite=True,
                        device="cpu").fit(np.random.default_rng(seed).random((64, 6)))
        except OutputLockedError:
            errors.append("locked")
        except Exception as exc:                                # noqa: BLE001 - the race we test for
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(e == "locked" for e in errors), errors
    assert len(errors) < 4
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1, 2, 3]
    del torch


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::linvae.ConvergenceWarning")
def test_reproduce_never_touches_what_linvae_did_not_write(tmp_path):
    out = tmp_path / "o"
    (out / ".tmp-build").mkdir(parents=True)
    (out / ".tmp-build" / "keep.txt").write_text("mine")
    (out / ".old-notes").mkdir()
    (out / ".linvae-tmp-fake").mkdir()                  # our prefix but no marker file: not ours
    experiments.run_all(str(out), quick="tiny", ids=["table1"])
    assert (out / ".tmp-build" / "keep.txt").read_text() == "mine"
    assert (out / ".old-notes").is_dir() and (out / ".linvae-tmp-fake").is_dir()
    assert not [n for n in os.listdir(out) if n.startswith(".linvae-tmp-") and n != ".linvae-tmp-fake"]
    assert not os.path.exists(out / "table1" / ".linvae-owned")
    # a REPORT.md the user wrote is kept; linvae's own is replaced
    (out / "REPORT.md").write_text("my own notes\n")
    with pytest.raises(FileExistsError, match="not written by linvae"):
        experiments.write_report(str(out))
    assert (out / "REPORT.md").read_text() == "my own notes\n"
    os.unlink(out / "REPORT.md")
    experiments.write_report(str(out))
    experiments.write_report(str(out))                   # its own report: replaced without asking
    # result directories follow the umask (mkdtemp alone makes them 0700)
    assert (os.stat(out / "table1").st_mode & 0o777) == 0o777 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
