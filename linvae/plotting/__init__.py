"""Figures with the shipped style (matplotlib is optional: ``pip install "linvae[plot]"``)."""
import contextlib
import os

from .._deps import import_optional

STYLE = os.path.join(os.path.dirname(__file__), "linvae.mplstyle")

__all__ = ["STYLE", "pyplot", "style"]


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend."""
    mpl = import_optional("matplotlib")
    mpl.use("Agg")
    return import_optional("matplotlib.pyplot")


@contextlib.contextmanager
def style():
    """Context manager applying the linvae style."""
    plt = pyplot()
    with plt.style.context(STYLE):
        yield plt
