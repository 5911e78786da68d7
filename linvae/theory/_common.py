"""Pieces shared by the closed forms: Gaussian KL per dim, padding, result base class."""
import dataclasses

import numpy as np

from .._backend import array_module, to_host  # re-exported; _backend holds the one CuPy check
from ..objectives import gaussian_kl as _gaussian_kl

__all__ = ["gaussian_kl", "pad", "sqrt_pos", "FitResultMixin", "array_module", "to_host"]


def gaussian_kl(mean_sq, var, prior_var):
    """Data-mean KL of ``N(m, var)`` to ``N(0, prior_var)`` per dimension (nats).

    ``½[(E[m²] + var)/prior_var − 1 − log(var/prior_var)]`` (SPEC §1), evaluated by
    :func:`linvae.objectives.gaussian_kl` (the precise ``expm1`` form).
    """
    return _gaussian_kl(mean_sq / prior_var, np.log(var / prior_var))


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




_LOG_2PI = np.log(2 * np.pi)


def log_normal(x, mean, var):
    """Log density of ``N(mean, var I)`` at the rows of ``x`` (summed over the last axis)."""
    return -0.5 * (np.sum((x - mean) ** 2 / var + np.log(var), axis=-1) + x.shape[-1] * _LOG_2PI)


class FitResultMixin:
    """Behaviour shared by the fit results of every linear model.

    Array fields live on one device: NumPy for host data, CuPy when the fit was computed from
    CuPy input (``fit(cupy_X)``); :meth:`to_numpy` / :meth:`to_device` move a result, and the
    methods (``encode``, ``decode``, ``sample``) compute with the array module of the fields.
    """

    @property
    def xp(self):
        """The array module of this result's arrays (``numpy`` or ``cupy``)."""
        return array_module(self.collapsed)

    def _map_arrays(self, fn):
        changes = {f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if type(getattr(self, f.name)).__name__ == "ndarray"}
        return dataclasses.replace(self, **changes)

    def to_numpy(self):
        """This result with every array field as a NumPy array (a no-op on the host)."""
        return self if self.xp is np else self._map_arrays(to_host)

    def to_device(self, xp):
        """This result with every array field converted by ``xp.asarray`` (e.g. ``cupy``)."""
        if xp is np:
            return self.to_numpy()
        return self._map_arrays(xp.asarray)

    @property
    def n_collapsed(self):
        """Number of latent dims whose posterior equals the prior."""
        return int(np.count_nonzero(to_host(self.collapsed)))

    @property
    def n_active(self):
        """Number of latent dims that are not collapsed."""
        return int(np.size(self.collapsed) - self.n_collapsed)

    def to_dict(self, json_safe=True):
        """All fields as a plain ``dict`` (arrays are copied to NumPy arrays).

        Parameters
        ----------
        json_safe : bool, default True
            Lists and Python scalars, so that ``json.dumps`` accepts the result (non-finite floats
            become ``None``); ``False`` gives NumPy arrays instead.

        Returns
        -------
        dict
            Field name → value.
        """
        if json_safe:
            from .._tables import jsonable

            return jsonable(self.to_dict(json_safe=False))
        return {
            f.name: (np.array(to_host(getattr(self, f.name)))
                     if type(getattr(self, f.name)).__name__ == "ndarray" else getattr(self, f.name))
            for f in dataclasses.fields(self)
        }

    def check_inputs(self, X, Y=None):
        """``(X, None)`` validated for this fit: an unconditional model (the CVAE overrides it)."""
        from .._validation import check_data

        if Y is not None:
            raise ValueError(f"a {self.model.upper()} fit takes no Y")
        X = check_data(X)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} features, got {X.shape[1]}")
        return X, None

    def _encoder_log_weights(self, target, mean, z, mu, std):
        """``log p(target|z) + log p(z) − log q(z|·)``: one latent, the encoder as proposal."""
        return (log_normal(target, mean, self.eta_dec**2) + log_normal(z, 0.0, self.eta_enc**2)
                - log_normal(z, mu, std**2))

    def kl_per_example(self, X, Y=None):
        """Closed-form per-example, per-dim KL (n_samples, latent_dim) of this fit (nats).

        See :func:`linvae.metrics.kl_per_example`.
        """
        from .._kl import kl_per_example

        return kl_per_example(self, X, Y)

    def _summary(self):
        return (
            f"{type(self).__name__}(model={self.model!r}, theorem={self.theorem!r}, "
            f"latent={np.size(self.collapsed)}, n_collapsed={self.n_collapsed}, loss={self.loss:.6g}"
            f"{', on the GPU' if self.xp is not np else ''})"
        )

    def __repr__(self):
        return self._summary()


def as_float(xp, a):
    """``a`` as a float64 array of module ``xp`` (host data is copied to the device for CuPy,
    device data to the host for NumPy)."""
    return xp.asarray(to_host(a) if xp is np else a, dtype=xp.float64)


def normal(xp, rng, scale, size):
    """Seeded normal draws (host generator, so samples agree across devices), on ``xp``."""
    return xp.asarray(rng.normal(scale=scale, size=size))
