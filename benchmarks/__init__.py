"""asv benchmark suites (``asv run``); ratio scripts live in ``compare.py`` and ``scripts/``."""
