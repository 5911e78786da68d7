"""linvae — predict, train, measure and reproduce posterior collapse in VAEs.

Implements Dang, Tran, Nguyen & Ho, *Beyond Vanilla Variational Autoencoders: Detecting
Posterior Collapse in Conditional and Hierarchical VAEs*, ICLR 2024 (arXiv 2306.05023).

Main entry points
-----------------
fit               closed-form (or trained) linear VAE / CVAE / MHVAE
predict_collapse  which latent dims collapse, over hyperparameter grids, before training
LinearVAE, LinearCVAE, LinearMHVAE
                  scikit-learn style estimators
Moments           sufficient statistics of the data
"""
from . import metrics
from ._deps import MissingDependencyError
from ._version import __version__
from .api import CollapseTable, SweepResult, fit, predict_collapse, sweep
from .exceptions import ConvergenceWarning, IllConditionedWarning, TrainingDivergedError
from .estimators import LinearCVAE, LinearMHVAE, LinearVAE
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
    "metrics",
    "data",
]

#: Submodules loaded on first attribute access (``linvae.data``), so ``import linvae`` stays light.
_LAZY_SUBMODULES = {"data"}


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
