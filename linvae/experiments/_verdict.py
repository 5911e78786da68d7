"""Verdicts from several seeds: the rules a claim must pass, written once and quoted in the report.

Nonlinear training is seed-sensitive (one configuration's collapsed-dim count can range 3 … 14 over
three seeds), so a nonlinear claim is judged on the distribution over seeds, never on one run, and
it has three outcomes:

*confirmed*
    the claimed direction, beyond seed noise;
*contradicted*
    the opposite direction, beyond seed noise;
*inconclusive*
    within seed noise, or the measure does not separate the settings (the same value on every seed
    of both), or one seed only (no noise estimate).

``NOISE_RULE``
    A difference of seed means ``Δ = mean(b) − mean(a)`` between two settings is *beyond seed
    noise* when ``|Δ| > 2·SE``, with ``SE = √(s_a²/n_a + s_b²/n_b)`` from the seeds' standard
    deviations (ddof = 1). Seeds are not paired across settings: each setting's seeds are its own
    sample. With SE = 0 (every seed equal) any non-zero Δ is beyond noise.

``TREND_RULE``
    A claimed trend over an ordered list of settings (e.g. "larger β ⇒ more collapse") is
    *confirmed* when the first → last change goes the claimed way beyond noise and no adjacent step
    goes the other way beyond noise; *contradicted* when the first → last change or any adjacent
    step goes against the claim beyond noise; *inconclusive* otherwise.

``GREATER_RULE``
    "A exceeds B": the difference of seed means, by the same noise rule.

Every reason states the effect (Δ) beside the noise (2·SE), so a reader sees how far each verdict
is from the line. The measure a claim is decided on is the paper's own (:data:`PAPER_MEASURES`);
the package's collapse score is shown beside it and judged by the same rule, never instead of it.
"""
import numpy as np

from ._common import CONFIRMED, CONTRADICTED, INCONCLUSIVE

__all__ = ["NOISE_RULE", "TREND_RULE", "GREATER_RULE", "RULES", "NOISE_FACTOR", "trend", "greater", "mean_sd",
           "difference"]

#: how many standard errors a difference of seed means must exceed to be beyond seed noise
NOISE_FACTOR = 2.0

NOISE_RULE = ("noise rule: a difference of seed means Δ is beyond seed noise when |Δ| > 2·SE, "
              "SE = √(s_a²/n_a + s_b²/n_b) from the seeds' sd (ddof 1; settings' seeds unpaired)")
TREND_RULE = ("trend rule: confirmed when first → last goes the claimed way beyond seed noise and no adjacent step "
              "goes the other way beyond noise; contradicted when first → last or any adjacent step goes against "
              "the claim beyond noise; inconclusive otherwise")
GREATER_RULE = ("comparison rule: A − B by seed mean; confirmed beyond seed noise the claimed way, contradicted "
                "beyond noise the other way, inconclusive within noise")
#: the rules as one list (what an experiment's meta.json records as ``verdict_rules``)
RULES = [NOISE_RULE, TREND_RULE, GREATER_RULE]


def _per_seed(values):
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] < 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"values must be a finite (seeds, settings) array with ≥ 2 settings, got shape {a.shape}")
    return a


def mean_sd(values):
    """Seed mean and standard deviation (ddof = 0 for one seed) per setting, and ``"m ± s"`` strings."""
    a = np.asarray(values, dtype=float)
    a = a[None] if a.ndim == 1 else a
    mean, sd = a.mean(axis=0), a.std(axis=0, ddof=1 if len(a) > 1 else 0)
    return mean, sd, [f"{m:.2f} ± {s:.2f}" for m, s in zip(mean, sd)]


def difference(a, b):
    """``(Δ, SE)``: the difference of seed means ``mean(b) − mean(a)`` and its standard error
    (:data:`NOISE_RULE`); SE is NaN when either side has one seed."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    delta = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return delta, float("nan")
    return delta, float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


def _side(delta, se):
    """+1 beyond noise in the positive direction, −1 beyond noise negative, 0 within noise."""
    if not np.isfinite(se):
        return 0
    if abs(delta) > NOISE_FACTOR * se and delta != 0:
        return 1 if delta > 0 else -1
    return 0


def _effect(delta, se):
    noise = "unknown (one seed)" if not np.isfinite(se) else f"{NOISE_FACTOR * se:.3g}"
    return f"Δ = {delta:+.3g} (noise 2·SE = {noise})"


def _spearman(x, y):
    """Spearman's ρ (average ranks for ties); NaN when ``y`` is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def trend(values, increasing=True):
    """Judge a claimed trend from per-seed values under :data:`TREND_RULE`.

    Parameters
    ----------
    values : array_like, shape (n_seeds, n_settings)
        The measurement for each seed (rows) at each setting, in the claim's order.
    increasing : bool
        The claimed direction.

    Returns
    -------
    verdict : str
        "confirmed", "contradicted" or "inconclusive".
    reason : str
        The first → last effect against the noise, and what decided the verdict.
    """
    a = _per_seed(values)
    if not isinstance(increasing, (bool, np.bool_)):
        raise TypeError(f"increasing must be a bool, got {increasing!r}")
    sign = 1 if increasing else -1
    delta, se = difference(a[:, 0], a[:, -1])
    overall = sign * _side(delta, se)
    head = f"first → last {_effect(delta, se)}"
    if len(a) < 2:
        return INCONCLUSIVE, f"{head}: one seed, so no seed noise to judge against"
    against = []
    for i in range(a.shape[1] - 1):
        d, s = difference(a[:, i], a[:, i + 1])
        if sign * _side(d, s) < 0:
            against.append(f"step {i + 1} → {i + 2} goes against the claim beyond noise ({_effect(d, s)})")
    if overall < 0 or against:
        parts = ([f"{head}: against the claim beyond noise"] if overall < 0 else [head]) + against
        return CONTRADICTED, "; ".join(parts)
    if overall > 0:
        return CONFIRMED, head
    if np.all(a == a[0, 0]):
        return INCONCLUSIVE, f"{head}: the measure does not separate the settings (the same value on every seed)"
    return INCONCLUSIVE, f"{head}: within seed noise"


def greater(a, b):
    """Judge "a exceeds b" from per-seed values (1-D; seeds unpaired) under :data:`GREATER_RULE`.

    Returns ``(verdict, reason)`` as :func:`trend` does; the reason states ``Δ = mean(a) − mean(b)``
    against the noise.
    """
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    if a.ndim != 1 or b.ndim != 1 or not (len(a) and len(b)) or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"a and b must be finite 1-D per-seed values, got shapes {a.shape} and {b.shape}")
    delta, se = difference(b, a)
    shown = f"{a.mean():.3g} ± {a.std(ddof=1) if len(a) > 1 else 0:.2g} vs {b.mean():.3g} ± " \
            f"{b.std(ddof=1) if len(b) > 1 else 0:.2g}"
    head = f"{shown}, {_effect(delta, se)}"
    side = _side(delta, se)
    if side > 0:
        return CONFIRMED, head
    if side < 0:
        return CONTRADICTED, f"{head}: reversed beyond seed noise"
    if not np.isfinite(se):
        return INCONCLUSIVE, f"{head}: one seed, so no seed noise to judge against"
    if np.all(a == a[0]) and np.all(b == a[0]):
        return INCONCLUSIVE, f"{head}: the measure does not separate the arms (the same value on every seed)"
    return INCONCLUSIVE, f"{head}: within seed noise"
