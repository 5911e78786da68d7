"""Shared machinery of the reproduction: output directories, metadata, CSV, claims."""
import csv
import enum
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .._version import __version__

__all__ = ["Claim", "Output", "RunSize", "load_data", "versions", "write_csv", "verdict", "size"]

CONFIRMED, NOT_CONFIRMED, NOT_RUN = "confirmed", "not confirmed", "not run"
#: the other two outcomes of the seed rules (``_verdict``); a deterministic check that fails is a
#: contradiction. "not confirmed" is what results judged before the three-outcome rules carry.
CONTRADICTED, INCONCLUSIVE = "contradicted", "inconclusive"
#: a per-coordinate and a rotation-invariant measure disagree (fig2a, Σ = I)
BASIS_DEPENDENT = "basis-dependent"
#: the verdict of a "beyond the paper" row: a measurement, not a test of a claim
MEASURED = "measured"

#: what a claim row is: a claim of the paper tested by a measurement; a check of this package
#: (an estimator, a trained-vs-closed-form agreement); a theory-only statement (computed from a
#: closed form, nothing trained — never counted as a confirmation); a question beyond the paper
CATEGORIES = ("paper", "check", "theory", "beyond")


@dataclass
class Claim:
    """One row of the report: a claim of the paper, the theory's prediction, the measurement."""

    claim: str
    prediction: str
    measured: str
    verdict: str
    note: str = ""
    category: str = "paper"

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {list(CATEGORIES)}, got {self.category!r}")


@dataclass
class Output:
    """What an experiment produced (the runner writes it)."""

    figure: object = None
    tables: dict = field(default_factory=dict)      # name -> dict of equal-length columns
    claims: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


class RunSize(str, enum.Enum):
    """How large an experiment runs: the paper's size, ``--quick``, or the test suite's tiny runs.

    Every experiment accepts ``quick=`` as ``False`` / ``"full"`` (:attr:`FULL`), ``True`` /
    ``"quick"`` (:attr:`QUICK`) or ``"tiny"`` (:attr:`TINY`, seconds-long smoke runs) and turns it
    into a :class:`RunSize` with :meth:`of`. ``bool(size)`` is False only for :attr:`FULL`, so
    "is this a reduced run?" reads ``if quick:``.
    """

    FULL = "full"
    QUICK = "quick"
    TINY = "tiny"

    def __bool__(self):
        return self is not RunSize.FULL

    @classmethod
    def of(cls, quick):
        """The :class:`RunSize` of a ``quick=`` argument (bool, name or :class:`RunSize`)."""
        if isinstance(quick, cls):
            return quick
        if isinstance(quick, (bool, np.bool_)):
            return cls.QUICK if quick else cls.FULL
        if isinstance(quick, str):
            try:
                return cls(quick)
            except ValueError:
                pass
        raise ValueError(f"quick must be True, False, 'full', 'quick' or 'tiny', got {quick!r}")


def size(quick, full, quick_value, tiny_value=None):
    """Pick a size: ``full`` for full runs, ``quick_value`` for ``--quick`` and ``tiny_value`` for
    ``quick="tiny"`` (the test suite's seconds-long smoke runs; defaults to ``quick_value``)."""
    quick = RunSize.of(quick)
    if quick is RunSize.TINY:
        return quick_value if tiny_value is None else tiny_value
    return quick_value if quick is RunSize.QUICK else full


def verdict(ok):
    """The verdict of a deterministic check (no seed noise): confirmed, or contradicted."""
    return CONFIRMED if ok else CONTRADICTED


def versions():
    """Versions of the packages that produced a result."""
    out = {"linvae": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for name in ("scipy", "numba", "torch", "matplotlib", "cupy"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out


def load_data(data=None, digits=None):
    """Images (n, 784), labels and meta: the embedded subset, or full MNIST from ``data``."""
    from ..data import load_mnist, load_mnist_subset

    if data is None:
        return load_mnist_subset(digits=digits)
    X, y, meta = load_mnist(data, split="train")
    if digits is not None:
        keep = np.isin(y, np.atleast_1d(digits))
        X, y = X[keep], y[keep]
        meta = dict(meta, N=int(len(X)))
    return X, y, meta


def write_csv(path, columns):
    """Write a dict of equal-length columns as CSV."""
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for i in range(n):
            w.writerow([_cell(columns[k][i]) for k in names])


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def save_output(output, directory, meta):
    """Write figure.png, one CSV per table and meta.json into ``directory``."""
    if output.figure is not None:
        output.figure.savefig(os.path.join(directory, "figure.png"), dpi=150, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(output.figure)
    for name, columns in output.tables.items():
        write_csv(os.path.join(directory, f"{name}.csv"), columns)
    meta = dict(meta)
    meta.update(output.meta)
    meta["claims"] = [c.__dict__ for c in output.claims]
    with open(os.path.join(directory, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def timer():
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
