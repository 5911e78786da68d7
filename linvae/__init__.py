"""linvae — predict, train, measure and reproduce posterior collapse in VAEs.

Implements Dang, Tran, Nguyen & Ho, *Beyond Vanilla Variational Autoencoders: Detecting
Posterior Collapse in Conditional and Hierarchical VAEs*, ICLR 2024 (arXiv 2306.05023).

Main entry points
-----------------
fit               closed-form (or trained) linear VAE / CVAE / MHVAE
predict_collapse  which latent dims collapse, over hyperparameter grids, before training
LinearVAE, LinearCVAE, LinearMHVAE
                  scikit-learn estimators (``pip install "linvae[sklearn]"``; loaded on first use)
Moments           sufficient statistics of the data
"""
from . import metrics
from ._version import __version__
from .api import CollapseTable, SweepResult, fit, predict_collapse, sweep
from .exceptions import (CheckpointWarning, ConvergenceWarning, CorruptCheckpointError, IllConditionedWarning,
                         MissingDependencyError, TrainingDivergedError)
from .stats import Moments
from .theory import CVAEFit, MHVAEFit, VAEFit

__all__ = [
    "__version__",
    "fit",
    "predict_collapse",
    "sweep",
    "SweepResult",
    "TrainingDivergedError",
    "ConvergenceWarning",
    "IllConditionedWarning",
    "CollapseTable",
    "LinearVAE",
    "LinearCVAE",
    "LinearMHVAE",
    "Moments",
    "VAEFit",
    "CVAEFit",
    "MHVAEFit",
    "MissingDependencyError",
    "CorruptCheckpointError",
    "CheckpointWarning",
    "metrics",
    "data",
]


_LAZY = {"LinearVAE": "estimators", "LinearCVAE": "estimators", "LinearMHVAE": "estimators"}
#: submodules loaded on first attribute access, so ``import linvae`` stays light (``data``) or works
#: without their optional dependencies (``estimators`` needs scikit-learn, ``monitor`` torch)
_LAZY_SUBMODULES = {"data", "estimators", "monitor"}


def __getattr__(name):
    """Load the optional submodules and the scikit-learn estimators on first use."""
    import importlib

    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _LAZY_SUBMODULES)
