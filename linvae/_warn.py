"""Warnings that point at the user's line, not at linvae's internals."""
import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message, category=UserWarning):
    """``warnings.warn`` with the stack level of the first frame outside the linvae package.

    (Python 3.12's ``skip_file_prefixes`` does the same; this works on every supported version.)
    """
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
