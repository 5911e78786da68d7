"""Keep freed memory in the process heap during long training (glibc only).

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB at first, adjusted upwards at
run time) with fresh ``mmap`` pages and returns them to the kernel when freed, and it trims the
heap top back to the kernel past a threshold.  A training step of a stacked small network
allocates and frees dozens of activation tensors of 0.3–4 MB, so each step pays their page faults
again: the forward pass of fig2b's stack of 21 two-branch CVAEs took 12 ms with glibc's defaults
and 5.5 ms with the thresholds below (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
set the same values from the environment).  The cost is that the process keeps its peak heap
until it exits, which is what a training run does anyway.
"""
import ctypes
import logging
import os

logger = logging.getLogger(__name__)

#: mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX): 32 MiB
MMAP_THRESHOLD = 32 * 1024 * 1024
#: keep up to 2 GiB of free heap top before trimming it
TRIM_THRESHOLD = 2**31 - 1

_done = None


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds once per process; returns whether they are set.

    A no-op (``False``) where the C library is not glibc.  Called by the experiment runner before
    it trains (:func:`linvae.experiments._nonlinear_common.train_grid`) and by the roofline
    benchmarks; a library user may call it before a long :class:`linvae.nn.BatchedTrainer` run.
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    logger.debug("glibc malloc thresholds raised: %s", _done)
    return _done
