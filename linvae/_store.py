"""Safe files for long work: atomic writes and a lock per output directory.

Every result file is written to a temporary name in the same directory and moved into place with
:func:`os.replace`, so a reader (or a resumed run) sees either the old file or the complete new
one, never a torn write. A run that writes into a directory holds :class:`DirectoryLock` on it,
so a second run into the same directory refuses instead of interleaving; a lock left behind by a
killed process on this host is detected (its pid is gone) and taken over with a warning.
"""
import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time

from ._warn import warn as _warn
from .exceptions import OutputLockedError

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_npz", "commit_directory", "DirectoryLock", "LOCK_NAME", "claim"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".linvae.lock"


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file in the same directory + ``os.replace``)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".linvae-tmp-", dir=directory)
    try:
        with contextlib.suppress(OSError, AttributeError):
            os.fchmod(fd, 0o666 & ~current_umask())      # mkstemp makes 0600; follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def current_umask():
    """The process umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: name prefix and marker file of the temporary directories linvae creates; only directories
#: carrying both are ever cleaned up (a user's ``.tmp-build/`` is never touched)
OWN_PREFIX = ".linvae-tmp-"
OWN_MARKER = ".linvae-owned"


def own_temp_dir(parent, label=""):
    """A new temporary directory in ``parent`` marked as linvae's (prefix + marker file), mode
    ``0o777 & ~umask`` (``mkdtemp`` makes 0700)."""
    path = tempfile.mkdtemp(prefix=f"{OWN_PREFIX}{label}", dir=parent)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o777 & ~current_umask())
    with open(os.path.join(path, OWN_MARKER), "w") as f:
        f.write("created by linvae; removed with its directory\n")
    return path


def is_own_temp_dir(path):
    """Whether ``path`` is a temporary directory made by :func:`own_temp_dir`."""
    return (os.path.basename(path).startswith(OWN_PREFIX) and os.path.isdir(path)
            and not os.path.islink(path) and os.path.isfile(os.path.join(path, OWN_MARKER)))


#: File in each directory :func:`commit_directory` puts in place, naming the files linvae wrote there
#: (one per line), so that a later ``overwrite`` replaces those and keeps everything else
MANIFEST = ".linvae-files"


def _written_by_linvae(final, new_names):
    """Names in an existing ``final`` that linvae wrote: its manifest's, or (a directory from a
    version without a manifest) the names the new run writes. Anything else is the user's."""
    try:
        with open(os.path.join(final, MANIFEST)) as f:
            return {line.strip() for line in f if line.strip()} | {MANIFEST}
    except (FileNotFoundError, NotADirectoryError):
        return set(new_names) | {MANIFEST}


def commit_directory(tmp, final, overwrite):
    """Move a finished temporary directory ``tmp`` (from :func:`own_temp_dir`) into place as ``final``.

    Each step is an atomic rename on the same file system, so ``final`` is never a partly written
    directory. An existing ``final`` is replaced only when ``overwrite`` is true; otherwise ``tmp``
    is removed and :class:`FileExistsError` names the path and the option.

    ``overwrite`` replaces only what linvae wrote (the names in ``final``'s :data:`MANIFEST`):
    files and folders a user put into ``final`` are moved into the new directory unchanged and
    logged. A user's file whose name the new run also writes is never replaced: the commit is
    refused with :class:`FileExistsError` listing those names, and ``final`` is left as it was.
    """
    with contextlib.suppress(FileNotFoundError):   # from here on a crash leaves tmp alone (it may
        os.unlink(os.path.join(tmp, OWN_MARKER))    # hold a user's files): no cleanup removes it
    new_names = sorted(name for name in os.listdir(tmp) if name != MANIFEST)
    with open(os.path.join(tmp, MANIFEST), "w") as f:
        f.write("".join(name + "\n" for name in new_names))
    if not os.path.lexists(final):
        os.replace(tmp, final)
        return
    if not overwrite:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{final} exists; pass --overwrite (overwrite=True) to replace it")
    if os.path.islink(final) or not os.path.isdir(final):
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{final} exists and is not a directory linvae wrote; --overwrite replaces only "
                              "linvae's result directories: move it away or choose another output directory")
    ours = _written_by_linvae(final, new_names)
    foreign = sorted(set(os.listdir(final)) - ours)
    clash = sorted(set(foreign) & set(new_names))
    if clash:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{final} holds files linvae did not write that the new run would replace: "
                              f"{', '.join(clash)}; move them away (nothing was changed)")
    for name in foreign:
        os.replace(os.path.join(final, name), os.path.join(tmp, name))
    if foreign:
        logger.warning("kept %d file(s) linvae did not write in %s: %s", len(foreign), final, ", ".join(foreign))
    trash = own_temp_dir(os.path.dirname(final), "old-")
    os.replace(final, os.path.join(trash, "old"))
    os.replace(tmp, final)
    shutil.rmtree(trash, ignore_errors=True)


def atomic_write_json(path, obj):
    """:func:`atomic_write_bytes` of ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def atomic_write_npz(path, arrays):
    """:func:`atomic_write_bytes` of ``numpy.savez`` of ``arrays`` (a dict of plain arrays).

    Object arrays are refused: the file must load with ``numpy.load(allow_pickle=False)``.
    """
    import io

    import numpy as np

    for name, a in arrays.items():
        if np.asarray(a).dtype.hasobject:
            raise TypeError(f"{path}: array {name!r} has dtype object, which only pickle can store")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def claim(path, *, wait=True):
    """Exclusive claim on one piece of shared work: a :class:`filelock.FileLock` (``flock``) on ``path``.

    Processes (and threads) that share a work directory take a task's claim before doing it, so
    each task is done once. The operating system releases the claim when its holder dies, so a
    killed process never blocks the others.

    Parameters
    ----------
    path : str
        The claim file (created if missing; its content means nothing).
    wait : bool
        Block until the claim is free (True), or give up at once (False).

    Yields
    ------
    bool
        True while the claim is held; False (only with ``wait=False``) when another holds it.
    """
    import filelock

    lock = filelock.FileLock(path, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # exists, owned by someone else
        return True
    return True


def _host_lock_path(directory):
    """Where the host-wide ``filelock`` guarding ``directory`` lives (outside it, so the directory
    holds nothing of the lock once it is released)."""
    import getpass
    import hashlib

    try:
        user = str(os.getuid())
    except AttributeError:                     # pragma: no cover - Windows
        user = getpass.getuser()
    root = os.path.join(tempfile.gettempdir(), f"linvae-locks-{user}")
    os.makedirs(root, mode=0o700, exist_ok=True)
    key = hashlib.sha256(os.path.realpath(directory).encode()).hexdigest()[:32]
    return os.path.join(root, key + ".lock")


class DirectoryLock:
    """Exclusive lock on an output directory, held across threads and processes.

    Parameters
    ----------
    directory : str
        Created if missing.
    purpose : str
        What the holder is doing; shown to a second run that finds the lock.

    Raises
    ------
    OutputLockedError
        On entry, when another thread or live process holds the lock.

    Notes
    -----
    Two layers: a :class:`filelock.FileLock` (``flock``) on a per-directory file in the temporary
    directory excludes every other thread and process of this host (the kernel drops it when a
    process dies), and ``.linvae.lock`` in the directory, created with ``O_EXCL``, names the
    holder (pid, host, purpose) and excludes other hosts sharing the directory. The lock is
    re-entrant within one thread only (``run_all`` -> ``run_experiment``); another thread of the
    same process is refused like another process. A ``.linvae.lock`` whose process is gone (this
    host), or that is empty or unreadable while nobody holds the host lock, is stale: it is
    replaced with a :class:`UserWarning`. Locks from another host are never broken automatically;
    delete the file by hand once that run is known to be gone.
    """

    #: per thread: lock files held -> nesting depth
    _owned = threading.local()

    def __init__(self, directory, purpose="linvae run"):
        self.directory = os.fspath(directory)
        self.path = os.path.abspath(os.path.join(self.directory, LOCK_NAME))
        self.purpose = purpose
        self._held = False
        self._host_lock = None

    @classmethod
    def _depths(cls):
        if not hasattr(cls._owned, "depth"):
            cls._owned.depth = {}
        return cls._owned.depth

    def _info(self):
        return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "purpose": self.purpose, "thread": threading.get_ident()}

    def _refuse(self, holder):
        raise OutputLockedError(
            f"{self.directory} is in use by another run ({_describe(holder)}); wait for it to finish "
            f"or write to another directory. If that run is gone, delete {self.path}",
            path=self.path, holder=holder) from None

    def acquire(self):
        depths = self._depths()
        if depths.get(self.path):
            depths[self.path] += 1
            self._held = True
            return self
        import filelock

        os.makedirs(self.directory, exist_ok=True)
        host_lock = filelock.FileLock(_host_lock_path(self.directory), timeout=0)
        try:
            host_lock.acquire()
        except filelock.Timeout:
            holder = self._read()
            for _ in range(20):              # the holder is writing its record right now
                if holder is not None:
                    break
                time.sleep(0.05)
                holder = self._read()
            self._refuse(holder)
        try:
            self._take()
        except BaseException:
            host_lock.release()
            raise
        self._host_lock = host_lock
        self._held = True
        depths[self.path] = 1
        return self

    def _take(self):
        """Create ``.linvae.lock`` (we hold the host lock: no other thread or process here competes)."""
        for _ in range(3):
            info = json.dumps(self._info()).encode()
            fd, tmp = tempfile.mkstemp(prefix=".linvae-tmp-lock-", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(info)
                try:
                    os.link(tmp, self.path)          # appears complete, fails if it exists
                    return
                except FileExistsError:
                    pass
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            holder = self._read()
            if holder is None:
                _warn(f"removing empty or unreadable lock file {self.path} (no run on this host holds it)")
            elif holder.get("host") != socket.gethostname():
                self._refuse(holder)
            elif self._stale(holder):
                _warn(f"removing stale lock {self.path} left by {holder} (that process is gone)")
            else:
                self._refuse(holder)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        raise OutputLockedError(f"could not take the lock {self.path}", path=self.path, holder=None)

    def _read(self):
        try:
            with open(self.path) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    @staticmethod
    def _stale(holder):
        if not holder or holder.get("host") != socket.gethostname():
            return False
        pid = holder.get("pid")
        # our own pid: a record this process left behind (we hold the host lock, so no thread of
        # ours holds it now)
        return isinstance(pid, int) and (pid == os.getpid() or not _pid_alive(pid))

    def release(self):
        depths = self._depths()
        if self._held and depths.get(self.path, 0) > 1:
            depths[self.path] -= 1
            self._held = False
            return
        if self._held:
            depths.pop(self.path, None)
            holder = self._read()
            if holder is None or (holder.get("pid") == os.getpid()
                                  and holder.get("host") == socket.gethostname()):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            if self._host_lock is not None:
                self._host_lock.release()
                self._host_lock = None
            self._held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def _describe(holder):
    if not holder:
        return "unknown process"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}: {holder.get('purpose')}"
