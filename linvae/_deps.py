"""Lazy imports of optional dependencies with the exact install line on failure."""
import importlib

from .exceptions import MissingDependencyError  # noqa: F401  (re-exported: its old home)

#: module name -> (extra name, what it is needed for)
_EXTRAS = {
    "torch": ("torch", "the PyTorch backend (nonlinear models)"),
    "cupy": ("cuda12", "the CuPy GPU backend"),
    "matplotlib": ("plot", "plotting"),
    "tqdm": ("plot", "progress bars"),
    "dask": ("distributed", "Dask sweeps and dask.array moments"),
    "distributed": ("distributed", "Dask cluster sweeps"),
    "sklearn": ("sklearn", "the scikit-learn estimators LinearVAE, LinearCVAE and LinearMHVAE"),
    "pandas": ("pandas", "tables as pandas DataFrames (to_frame)"),
}


def import_optional(name):
    """Import an optional module or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    name : str
        Top-level module name, e.g. ``"torch"``.

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra, purpose = _EXTRAS.get(name.split(".")[0], (None, name))
        hint = f'pip install "linvae[{extra}]"' if extra else f"pip install {name}"
        raise MissingDependencyError(
            f"{name!r} is required for {purpose} but could not be imported ({exc}). "
            f"Install it with: {hint}"
        ) from exc
