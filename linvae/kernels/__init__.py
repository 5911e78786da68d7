"""Training kernels, one contract (:mod:`.contract`) and three backends.

- :mod:`.cpu`: hand-written Numba kernels (``backend="numba"``);
- :mod:`.array`: whole-batch array code on NumPy (``backend="numpy"``);
- :mod:`.gpu`: the same array code on CuPy with a fused update (``backend="cupy"``).

Each backend has the entries ``train_vae`` (VAE and CVAE) and ``train_mhvae`` with the signature
``entry(problem, state, options, n_steps, *, parallel=None)``; :func:`entry` looks one up.
"""
import importlib

__all__ = ["entry", "FAMILIES"]

#: Kernel families with an entry in every backend (the minibatch family is Numba only).
FAMILIES = ("vae", "mhvae")

_MODULES = {"numba": "cpu", "numpy": "array", "cupy": "gpu"}


def entry(backend, family):
    """The kernel entry training ``family`` ("vae" or "mhvae") on ``backend`` ("numba", "numpy", "cupy")."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    name = getattr(backend, "name", backend)
    module = importlib.import_module(f".{_MODULES[name]}", __name__)
    return getattr(module, f"train_{family}")
