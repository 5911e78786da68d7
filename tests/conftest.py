"""Shared fixtures and helpers of the test suite.

* ``tests/`` is put on ``sys.path`` so every test file can ``import naive`` (the independent
  NumPy oracle, which does not import linvae) under any pytest import mode.
* ``rng``: a fresh seeded generator per test.
* torch: the ``float64`` fixture runs a test with torch's default dtype set to float64 (and
  restores it); it skips the test when torch is missing.
* The ``slow`` marker (declared in ``pyproject.toml``) marks the tests measured above ~2 s on a
  busy 2-core machine (timings there were inflated several-fold). A plain ``pytest`` (the
  README's test command) skips them; ``pytest --run-slow`` runs them too, and ``.ci/run`` runs
  ``pytest --run-slow -m slow`` after the README's command, so CI covers everything.
"""
import os
import sys

import numpy as np
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture
def rng():
    """A seeded ``numpy.random.Generator`` (seed 0), fresh for every test."""
    return np.random.default_rng(0)


@pytest.fixture
def float64():
    """torch's default dtype set to float64 for the test (restored after); skips without torch."""
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (skipped by default; .ci/run runs them)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
