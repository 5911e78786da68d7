"""Every exception and warning class of linvae, declared here once.

The modules that raise them re-export them under their old names (``linvae._deps``,
``linvae.distributed``), so existing imports keep working. The one exception declared elsewhere
is :class:`linvae.estimators.NotFittedError`: it subclasses scikit-learn's ``NotFittedError``, an
optional dependency this module must not import.
"""

__all__ = ["TrainingDivergedError", "ConvergenceWarning", "IllConditionedWarning", "OutputLockedError",
           "SweepMismatchError", "SweepChunkError", "MissingDependencyError", "CorruptCheckpointError",
           "CheckpointWarning"]


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss or gradient.

    Attributes
    ----------
    config : dict
        Hyperparameters of the configuration that diverged.
    index : int
        Its position in the batch.
    step : int
        Optimizer step at which the non-finite value appeared.
    """

    def __init__(self, message, config=None, index=None, step=None):
        super().__init__(message)
        self.config = config
        self.index = index
        self.step = step


class ConvergenceWarning(UserWarning):
    """Training stopped at ``max_iter`` before meeting its tolerances."""


class OutputLockedError(RuntimeError):
    """Another run is writing into the same output directory.

    Attributes
    ----------
    path : str
        The lock file.
    holder : dict or None
        pid, host, start time and purpose recorded by the run that holds the lock.
    """

    def __init__(self, message, path=None, holder=None):
        super().__init__(message)
        self.path = path
        self.holder = holder


class SweepMismatchError(ValueError):
    """An output directory holds checkpoints of a different sweep (other data or settings)."""


class IllConditionedWarning(UserWarning):
    """Second-moment directions were dropped as numerically zero although float64 resolves them."""


class CorruptCheckpointError(SweepMismatchError):
    """A checkpoint file (a sweep's ``sweep.json`` manifest) cannot be read or is not linvae's.

    Attributes
    ----------
    path : str
        The file.
    """

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class CheckpointWarning(UserWarning):
    """A checkpoint chunk was unreadable, garbled, truncated or belongs elsewhere; it is recomputed."""


class SweepChunkError(RuntimeError):
    """Some chunks of a distributed sweep failed; the others finished (and were checkpointed).

    Attributes
    ----------
    failures : dict of int -> BaseException
        Chunk index -> the exception it raised.
    """

    def __init__(self, message, failures):
        super().__init__(message)
        self.failures = failures


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message holds the ``pip install`` line."""
