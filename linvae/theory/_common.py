"""Pieces shared by the closed forms: Gaussian KL per dim, padding, result base class."""
import dataclasses

import numpy as np

__all__ = ["gaussian_kl", "pad", "sqrt_pos", "FitResultMixin"]


def gaussian_kl(mean_sq, var, prior_var):
    """Data-mean KL of ``N(m, var)`` to ``N(0, prior_var)`` per dimension (nats).

    ``½[(E[m²] + var)/prior_var − 1 − log(var/prior_var)]`` (SPEC §1), written with
    ``log1p``-free terms that stay finite for any positive ``var``.
    """
    ratio = var / prior_var
    return 0.5 * (mean_sq / prior_var + ratio - 1.0 - np.log(ratio))


def pad(values, size):
    """First ``size`` entries of ``values``, zero-padded when there are fewer (surplus latents)."""
    out = np.zeros(np.shape(values)[:-1] + (size,))
    k = min(size, np.shape(values)[-1])
    out[..., :k] = values[..., :k]
    return out


def sqrt_pos(x):
    """``√max(0, x)`` without warnings."""
    return np.sqrt(np.maximum(x, 0.0))


def safe_div(a, b):
    """``a / b`` with 0 where ``b == 0``."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    out = np.zeros(a.shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


class FitResultMixin:
    """Behaviour shared by the fit results of every linear model."""

    @property
    def n_collapsed(self):
        """Number of latent dims whose posterior equals the prior."""
        return int(np.count_nonzero(self.collapsed))

    @property
    def n_active(self):
        """Number of latent dims that are not collapsed."""
        return int(np.size(self.collapsed) - self.n_collapsed)

    def to_dict(self):
        """All fields as a plain ``dict`` (arrays are copied)."""
        return {
            f.name: (np.array(getattr(self, f.name)) if isinstance(getattr(self, f.name), np.ndarray)
                     else getattr(self, f.name))
            for f in dataclasses.fields(self)
        }

    def kl_per_example(self, X, Y=None):
        """Closed-form per-example, per-dim KL (n_samples, latent_dim) of this fit (nats).

        See :func:`linvae.metrics.kl_per_example`.
        """
        from ..metrics import kl_per_example

        return kl_per_example(self, X, Y)

    def _summary(self):
        return (
            f"{type(self).__name__}(model={self.model!r}, theorem={self.theorem!r}, "
            f"latent={np.size(self.collapsed)}, n_collapsed={self.n_collapsed}, loss={self.loss:.6g})"
        )

    def __repr__(self):
        return self._summary()
