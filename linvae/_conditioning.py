"""Ill-conditioning diagnostics: warn when the rank cut of the moments changes a theorem's answer.

:class:`linvae.stats.Moments` drops eigen-directions of a second moment below
``rtol·max`` (``_config.RANK_RTOL``). That is exact when the dropped directions would collapse
anyway and wrong when they would be active. Given a predicate that says which modes are
active at the caller's hyperparameters (each model's registry entry, :mod:`linvae._models`, builds
it from its theorem), it raises :class:`~linvae.IllConditionedWarning` when a dropped direction
that float64 still resolves is one of them. The moments and their spectra (:mod:`linvae.stats`)
know nothing of the theorems.
"""
import numpy as np

from ._warn import warn as _warn
from .exceptions import IllConditionedWarning
from .stats import _cut, _cvae_parts, _resolved, _rtol, resolved_eigh

__all__ = ["warn_if_dropped_matters", "warn_if_cvae_drop_matters", "dropped_resolved"]


def dropped_resolved(S, rtol=None, scale=None):
    """Modes of PSD ``S`` that the rank cut drops although float64 resolves them.

    Those with eigenvalue at most ``rtol·ref`` (``ref``: ``scale``, as in
    :func:`linvae.stats.range_eigh_scaled`, or the largest eigenvalue, as in :func:`linvae.stats.range_eigh`) but
    resolved by :func:`linvae.stats.resolved_eigh`: real directions that a condition number above ``1/rtol``
    pushes out of the numerical range.

    Returns
    -------
    values : ndarray (m,), descending
    vectors : ndarray (d, m)
    ref : float
    """
    values, vectors = resolved_eigh(S)
    ref = float(scale) if scale is not None else (float(values[0]) if values.size else 0.0)
    return (*_cut(values, vectors, _rtol(rtol), ref)[2:], ref)


def warn_if_dropped_matters(moments, active, rtol=None):
    """:class:`IllConditionedWarning` when a dropped-but-resolved mode of ``E[xxᵀ]`` would be active.

    Parameters
    ----------
    moments : Moments
    active : callable
        ``active(theta) -> bool array``: which modes with these θ = √φ are not collapsed under
        the caller's hyperparameters (e.g. Thm 4: θ above the βη_dec² threshold). Dropping modes
        that would collapse anyway is exact; dropping an active one changes the answer.
    rtol : float, optional
    """
    rtol = _rtol(rtol)
    values, vectors = _resolved(moments, ("xx",), moments.xx)
    _, _, dropped, _ = _cut(values, vectors, rtol)
    theta = np.sqrt(dropped)
    if theta.size and np.any(active(theta)):
        _warn(
            f"ill-conditioned data: mode(s) of E[xxᵀ] with θ up to {theta[0]:.3g} (condition number "
            f"{values[0] / theta[0] ** 2:.2g}) lie below rtol·max and are treated as zero, but at these "
            f"hyperparameters they would be active; pass a smaller rtol (e.g. rtol={min(rtol, 0.1 * theta[-1] ** 2 / values[0]):.0e}) "
            "to keep them (they are resolved in float64), or rescale the data",
            IllConditionedWarning)


def warn_if_cvae_drop_matters(moments, threshold, rtol=None):
    """:class:`IllConditionedWarning` when ill-conditioning changes the CVAE's key matrix E.

    Two places drop resolved directions: modes of the equilibrated ``E[xxᵀ]`` below ``rtol·max``
    are left out of the regression of y on x (their share of y, ``BᵀB`` of those modes, stays in
    E), and eigenvalues of E below ``rtol·tr E[yyᵀ]`` are treated as zero. Either matters when it
    exceeds ``threshold`` = the smallest βη_dec² of the call (Thm 2: a mode of E is active iff
    θ > βη_dec²).
    """
    parts = _cvae_parts(moments, _rtol(rtol))
    share, e_drop = parts["share"], parts["e_drop"]
    if share > threshold:
        _warn(f"ill-conditioned condition x: modes of E[xxᵀ] below rtol·max are left out of the regression "
              f"of y on x, but they explain y-variance up to {share:.3g} > βη_dec² = {threshold:.3g}, which "
              "stays in E and can keep modes active; pass a smaller rtol (or rescale the data) to keep them",
              IllConditionedWarning)
    if e_drop > threshold:
        _warn(f"ill-conditioned CVAE key matrix: eigenvalue(s) of E up to {e_drop:.3g} lie below "
              f"rtol·tr E[yyᵀ] and are treated as zero, but exceed βη_dec² = {threshold:.3g} (they would be "
              "active); pass a smaller rtol to keep them", IllConditionedWarning)
