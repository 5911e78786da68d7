"""Exceptions and warnings of linvae."""


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
