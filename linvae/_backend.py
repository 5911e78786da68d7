"""Array backends: which one trains, and moving arrays between the host and the GPU.

``backend=`` is resolved once, by :func:`resolve`, into a :class:`Backend` that knows its array
module (``xp``) and how to move arrays (:meth:`Backend.to_device`, :func:`to_host`). Every other
module asks :func:`is_cupy` whether an array lives on the GPU; nothing else tests for CuPy.

This module imports nothing from the rest of the package except the leaf modules
:mod:`linvae._deps` and :mod:`linvae._validation`, so any module may import it. CuPy is imported only when a CuPy array or ``backend="cupy"`` is in use.
"""
from dataclasses import dataclass

import numpy as np

from ._deps import MissingDependencyError, import_optional
from ._validation import check_choice

__all__ = ["BACKENDS", "CHOICES", "Backend", "resolve", "is_cupy", "to_host", "array_module", "get_cupy",
           "cupy_available"]

#: The training backends: Numba kernels (CPU), the array kernels on NumPy, the array kernels on CuPy.
BACKENDS = ("numba", "numpy", "cupy")
#: What ``backend=`` accepts: a backend, or ``"auto"`` (CuPy for CuPy input, else Numba).
CHOICES = ("auto",) + BACKENDS


def is_cupy(a):
    """True when ``a`` is a GPU array: a CuPy array, or any array CuPy adopts without a copy
    (it exposes ``__cuda_array_interface__``, e.g. a Numba device array). The package's one CuPy test."""
    return hasattr(a, "__cuda_array_interface__")


def get_cupy():
    """Import CuPy and check that a GPU is usable, or raise with the install line."""
    cp = import_optional("cupy")
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise MissingDependencyError(
            f"CuPy is installed but no usable NVIDIA GPU was found ({exc}); backend='cupy' needs a "
            'CUDA 12 GPU and pip install "linvae[cuda12]"') from exc
    if n < 1:
        raise MissingDependencyError(
            'no NVIDIA GPU found; backend="cupy" needs a CUDA 12 GPU and pip install "linvae[cuda12]"')
    return cp


def cupy_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        get_cupy()
    except MissingDependencyError:
        return False
    return True


def array_module(a):
    """``cupy`` for GPU arrays (see :func:`is_cupy`), else ``numpy``."""
    return get_cupy() if is_cupy(a) else np


def to_host(a):
    """A NumPy array of a GPU array (one device-to-host copy); anything else passes through."""
    if not is_cupy(a):
        return a
    if hasattr(a, "get"):
        return a.get()
    return get_cupy().asnumpy(a)


@dataclass(frozen=True)
class Backend:
    """A resolved training backend.

    Attributes
    ----------
    name : {"numba", "numpy", "cupy"}
    """

    name: str

    @property
    def xp(self):
        """The array module the kernels' state lives in (``cupy`` for ``"cupy"``, else ``numpy``)."""
        return get_cupy() if self.name == "cupy" else np

    @property
    def on_device(self):
        """True when the kernels' arrays live on the GPU."""
        return self.name == "cupy"

    def to_device(self, a, dtype=None):
        """``a`` as an array of :attr:`xp` (a host-to-device copy for host data on ``"cupy"``)."""
        return self.xp.asarray(a, dtype=dtype)

    @staticmethod
    def to_host(a):
        """See :func:`to_host`."""
        return to_host(a)


def resolve(backend="auto", *, device_input=False):
    """Resolve ``backend=`` once.

    Parameters
    ----------
    backend : {"auto", "numba", "numpy", "cupy"} or Backend
        ``"auto"`` is ``"cupy"`` when the data is on the GPU (``device_input``), else ``"numba"``.
    device_input : bool
        The caller's data are GPU arrays (:func:`is_cupy`).

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        For an unknown name.
    MissingDependencyError
        For ``"cupy"`` without CuPy or a GPU, with the ``pip install`` line.
    """
    if isinstance(backend, Backend):
        return backend
    check_choice(backend, "backend", CHOICES)
    if backend == "auto":
        backend = "cupy" if device_input else "numba"
    if backend == "cupy":
        get_cupy()   # clear error with the install line when CuPy or the GPU is missing
    return Backend(backend)
