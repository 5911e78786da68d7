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
import pickle
import socket
import tempfile
import time

from ._warn import warn as _warn
from .exceptions import OutputLockedError

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_pickle", "DirectoryLock", "LOCK_NAME"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".linvae.lock"


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file in the same directory + ``os.replace``)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj):
    """:func:`atomic_write_bytes` of ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def atomic_pickle(path, obj):
    """:func:`atomic_write_bytes` of ``pickle.dumps(obj)``."""
    atomic_write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # exists, owned by someone else
        return True
    return True


class DirectoryLock:
    """Exclusive lock on an output directory (a ``.linvae.lock`` file created with ``O_EXCL``).

    Parameters
    ----------
    directory : str
        Created if missing.
    purpose : str
        What the holder is doing; shown to a second run that finds the lock.

    Raises
    ------
    OutputLockedError
        On entry, when another live process holds the lock.

    Notes
    -----
    A lock whose process no longer exists on this host (killed with SIGKILL, machine crash) is
    stale: it is replaced with a :class:`UserWarning`. Locks from another host are never
    broken automatically; delete the file by hand once that run is known to be gone.
    """

    #: lock files this process holds -> nesting depth (a run that locks a directory may call
    #: code that locks it again, e.g. ``run_all`` -> ``run_experiment``)
    _owned = {}

    def __init__(self, directory, purpose="linvae run"):
        self.directory = directory
        self.path = os.path.abspath(os.path.join(directory, LOCK_NAME))
        self.purpose = purpose
        self._held = False

    def _info(self):
        return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "purpose": self.purpose}

    def acquire(self):
        if self._owned.get(self.path):
            self._owned[self.path] += 1
            self._held = True
            return self
        os.makedirs(self.directory, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if holder is None:           # being written right now, or unreadable: look again
                    time.sleep(0.05)
                    holder = self._read()
                if self._stale(holder):
                    _warn(f"removing stale lock {self.path} left by {holder} (that process is gone)")
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path)
                    continue
                raise OutputLockedError(
                    f"{self.directory} is in use by another run ({_describe(holder)}); wait for it to finish "
                    f"or write to another directory. If that run is gone, delete {self.path}",
                    path=self.path, holder=holder) from None
            with os.fdopen(fd, "w") as f:
                json.dump(self._info(), f)
            self._held = True
            self._owned[self.path] = 1
            return self
        raise OutputLockedError(f"could not take the lock {self.path}", path=self.path, holder=None)

    def _read(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @staticmethod
    def _stale(holder):
        if not holder or holder.get("host") != socket.gethostname():
            return False
        pid = holder.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)

    def release(self):
        if self._held and self._owned.get(self.path, 0) > 1:
            self._owned[self.path] -= 1
            self._held = False
            return
        if self._held:
            self._owned.pop(self.path, None)
            holder = self._read()
            if holder is None or holder.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
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
