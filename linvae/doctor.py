"""``linvae doctor``: what a bug report needs — versions, threading, GPU, optional packages.

Nothing here raises: every probe reports its failure as text.
"""
import importlib
import os
import platform
import sys

__all__ = ["diagnose", "format_report"]

_OPTIONAL = [
    ("torch", "torch"), ("cupy", "cuda12"), ("matplotlib", "plot"), ("tqdm", "plot"),
    ("dask", "distributed"), ("distributed", "distributed"), ("asv", "bench"),
    ("hypothesis", "test"), ("sklearn", "sklearn"), ("pandas", "pandas"), ("lightning", "lightning"),
    ("sphinx", "docs"),
]


def _version(name):
    try:
        mod = importlib.import_module(name)
    except Exception as exc:   # noqa: BLE001 — report any import failure as text
        return None, f"not installed ({type(exc).__name__})"
    return mod, getattr(mod, "__version__", "?")


def _numba_threading():
    """Run a tiny parallel kernel so Numba picks (and reports) its threading layer."""
    try:
        import numba
        import numpy as np

        @numba.njit(parallel=True, cache=False)
        def _probe(a):
            s = 0.0
            for i in numba.prange(a.shape[0]):
                s += a[i]
            return s

        _probe(np.ones(64))
        return f"{numba.threading_layer()} ({numba.get_num_threads()} threads)"
    except Exception as exc:   # noqa: BLE001
        return f"unavailable: {exc}"


def _blas():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl to report it)"
    info = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in threadpool_info() if p.get("user_api") == "blas"]
    return ", ".join(info) or "none found"


def _torch(mod):
    if mod is None:
        return "not installed: pip install \"linvae[torch]\""
    cuda = mod.cuda.is_available()
    return f"{mod.__version__}, CUDA {'available: ' + mod.cuda.get_device_name(0) if cuda else 'not available'}"


def _cupy(mod):
    if mod is None:
        return "not installed: pip install \"linvae[cuda12]\" (needs an NVIDIA GPU)"
    try:
        n = mod.cuda.runtime.getDeviceCount()
        names = [mod.cuda.runtime.getDeviceProperties(i)["name"].decode() for i in range(n)]
        return f"{mod.__version__}, {n} GPU(s): {', '.join(names)}"
    except Exception as exc:   # noqa: BLE001
        return f"{mod.__version__}, no usable GPU ({exc})"


def diagnose(check_kernels=True):
    """Everything ``linvae doctor`` reports, as an ordered list of ``(item, value)`` pairs.

    Parameters
    ----------
    check_kernels : bool
        Also run a 3-dim closed form against a short Numba Adam fit (compiles or loads the
        kernels; seconds on a cold cache).
    """
    from . import __version__, _config

    rows = [("linvae", f"{__version__} ({os.path.dirname(os.path.abspath(__file__))})"),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", f"{platform.platform()}, {os.cpu_count()} CPUs")]
    for name in ("numpy", "scipy", "numba"):
        rows.append((name, _version(name)[1]))
    rows.append(("BLAS", _blas()))
    rows.append(("numba threading layer", _numba_threading()))
    rows.append(("numba cache dir", os.environ.get("NUMBA_CACHE_DIR", "(default: next to the kernels)")))
    rows.append(("linvae config", f"FASTMATH={_config.FASTMATH}, PARALLEL={_config.PARALLEL}, "
                                  f"RANK_RTOL={_config.RANK_RTOL:g}"))
    for name, extra in _OPTIONAL:
        mod, ver = _version(name)
        if name == "torch":
            ver = _torch(mod)
        elif name == "cupy":
            ver = _cupy(mod)
        elif mod is None:
            ver = f'{ver}: pip install "linvae[{extra}]"'
        rows.append((name, ver))
    if check_kernels:
        rows.append(("kernel self-check", _self_check()))
    return rows


def _self_check():
    try:
        import warnings

        import numpy as np

        from .api import fit
        from .exceptions import ConvergenceWarning

        X = np.random.default_rng(0).normal(size=(200, 3)) * [2.0, 1.0, 0.3]
        exact = fit(X, beta=1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            trained = fit(X, beta=1.0, solver="adam", max_iter=4000, backend="numba")
        gap = abs(trained.loss - exact.loss)
        return f"{'ok' if gap < 1e-4 else 'MISMATCH'}: Numba Adam loss - closed form = {gap:.1e}"
    except Exception as exc:   # noqa: BLE001
        return f"FAILED: {type(exc).__name__}: {exc}"


def format_report(rows):
    """The rows of :func:`diagnose` as aligned text."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
