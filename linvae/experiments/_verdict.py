"""Verdicts from several seeds: the rules a claim must pass, written once and quoted in the report.

Nonlinear training is seed-sensitive (one configuration's collapsed-dim count can range 3 … 14 over
three seeds), so a nonlinear claim is judged on the distribution over seeds, never on one run.

``TREND_RULE``
    A claimed trend over an ordered list of settings (e.g. "larger β ⇒ more collapse") is
    *confirmed* only when all three hold:

    1. the seed mean is ordered in the claimed direction at every step (ties allowed);
    2. it is not flat: the mean ± 1 sd intervals of the first and the last setting do not overlap;
    3. on every seed, Spearman's rank correlation between the setting and the value has the
       claimed sign.

    Otherwise it is *not confirmed*, and the reason names the rule that failed (a flat or
    unordered measurement never confirms a trend).

``GREATER_RULE``
    "A exceeds B": confirmed when A > B on every seed and the mean ± 1 sd intervals do not overlap.
"""
import numpy as np

from ._common import CONFIRMED, NOT_CONFIRMED

__all__ = ["TREND_RULE", "GREATER_RULE", "trend", "greater", "mean_sd"]

TREND_RULE = ("trend rule: seed mean ordered in the claimed direction at every step, first and last "
              "settings' mean ± 1 sd intervals disjoint, and Spearman ρ of the claimed sign on every seed")
GREATER_RULE = "comparison rule: larger on every seed and mean ± 1 sd intervals disjoint"


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
        "confirmed" or "not confirmed".
    reason : str
        Empty when confirmed; otherwise the part of the rule that failed, with the numbers.
    """
    a = _per_seed(values)
    sign = 1.0 if increasing else -1.0
    mean, sd, _ = mean_sd(a)
    steps = sign * np.diff(mean)
    reasons = []
    if np.all(np.abs(mean - mean[0]) <= 1e-12):
        reasons.append("flat: the seed mean does not change")
    elif np.any(steps < -1e-12):
        i = int(np.argmax(steps < -1e-12))
        reasons.append(f"seed mean not ordered: setting {i + 1} → {i + 2} goes {mean[i]:.3g} → {mean[i + 1]:.3g}")
    if not reasons:
        lo_first, hi_first = mean[0] - sd[0], mean[0] + sd[0]
        lo_last, hi_last = mean[-1] - sd[-1], mean[-1] + sd[-1]
        overlap = (lo_last <= hi_first) if increasing else (hi_last >= lo_first)
        if overlap:
            reasons.append(f"first and last settings overlap within 1 sd ({mean[0]:.3g} ± {sd[0]:.2g} vs "
                           f"{mean[-1]:.3g} ± {sd[-1]:.2g})")
    levels = np.arange(a.shape[1])
    rho = [_spearman(levels, row) for row in a]
    against = [s for s, r in enumerate(rho) if not (sign * r > 0)]
    if against:
        reasons.append("Spearman ρ not of the claimed sign on seed(s) " + ", ".join(
            f"{s} (ρ = {rho[s]:.2f})" for s in against))
    return (CONFIRMED, "") if not reasons else (NOT_CONFIRMED, "; ".join(reasons))


def greater(a, b):
    """Judge "a exceeds b" from per-seed values (1-D, paired by seed) under :data:`GREATER_RULE`."""
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"a and b must be finite and paired by seed, got shapes {a.shape} and {b.shape}")
    ddof = 1 if len(a) > 1 else 0
    reasons = []
    if not np.all(a > b):
        reasons.append(f"not larger on seed(s) {[int(i) for i in np.nonzero(~(a > b))[0]]}")
    sa, sb = a.std(ddof=ddof), b.std(ddof=ddof)
    intervals = f"({a.mean():.3g} ± {sa:.2g} vs {b.mean():.3g} ± {sb:.2g})"
    if a.mean() + sa < b.mean() - sb:
        reasons.append(f"reversed: the mean ± 1 sd intervals are disjoint the other way {intervals}")
    elif a.mean() - sa <= b.mean() + sb:
        reasons.append(f"mean ± 1 sd intervals overlap {intervals}")
    return (CONFIRMED, "") if not reasons else (NOT_CONFIRMED, "; ".join(reasons))
