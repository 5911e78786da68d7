"""The one contract every training backend implements, written once.

A kernel entry trains a batch of B configurations of one problem in place::

    entry(problem, state, options, n_steps, *, parallel=None)

- ``problem`` (:class:`KernelProblem`): what is trained — the whitened target ``Z``, the
  hyperparameter rows, the dimensions, the :data:`LAYOUTS` offsets, which σ blocks are learned.
- ``state`` (:class:`TrainState`): everything a step changes — packed parameters ``params``,
  gradient, Adam moments, step size, step count, losses, gradient norm and :data:`status
  <RUNNING>` per configuration. Arrays of one module (NumPy, or CuPy for ``backend="cupy"``).
- ``options`` (:class:`KernelOptions`): the optimizer and the stopping rule.
- ``n_steps``: run up to this many steps per running configuration; a configuration stops early
  when it converges or diverges (its ``status``), so the driver intervenes every ``n_steps``.
- ``parallel``: Numba only (serial or ``prange`` variant; default: chosen from the sizes).

The entries, one per kernel family and backend, have this signature: ``train_vae`` (the VAE and
the CVAE: the CVAE is the VAE with the condition blocks ``A``, ``C``, empty for q = 0) and
``train_mhvae``, in :mod:`linvae.kernels.cpu` (Numba), :mod:`linvae.kernels.array` (NumPy) and
:mod:`linvae.kernels.gpu` (CuPy); :func:`linvae.kernels.entry` looks one up.

The stopping rule and the step-size rules (:func:`make_rules`) are written once, for scalars
(compiled by Numba, per configuration) and arrays (NumPy/CuPy, a batch at a time).
"""
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from .. import _config

__all__ = ["RUNNING", "CONVERGED", "DIVERGED", "HYPER", "LAYOUTS", "DIMS", "block_shapes", "offsets", "size",
           "unpack", "pack", "KernelProblem", "TrainState", "KernelOptions", "make_rules"]

#: Status codes of :attr:`TrainState.status`.
RUNNING, CONVERGED, DIVERGED = 0, 1, 2

#: Each model's own hyperparameters: the leading columns of the kernels' hyperparameter rows
#: (before ``c²`` and ``η_dec²``) and the model registry's grid axes before η_enc, η_dec.
HYPER = {"vae": ("beta",), "cvae": ("beta",), "mhvae": ("beta1", "beta2")}

#: Kernel families and the names of their ``dims`` entries.
DIMS = {
    "vae": ("d", "k", "r", "q"),          # VAE (q = 0) and CVAE in whitened coordinates
    "mhvae": ("d", "k1", "r", "k2"),      # two-latent MHVAE in whitened coordinates
    "minibatch": ("dx", "dy", "k"),       # VAE (dx = 0) and CVAE on raw data
}

#: The packed parameter vector of each family: row-major blocks, in this order, as
#: ``(name, rows, cols)`` (``cols`` None: a vector) in terms of :data:`DIMS`.
LAYOUTS = {
    "vae": (("U", "d", "k"), ("V", "k", "r"), ("A", "k", "q"), ("C", "d", "q"), ("log_sigma", "k", None)),
    "mhvae": (("U1", "d", "k1"), ("V1", "k1", "r"), ("U2", "k1", "k2"), ("W2", "k2", "k1"),
              ("log_sigma1", "k1", None), ("log_sigma2", "k2", None)),
    "minibatch": (("W1", "k", "dx"), ("W2", "k", "dy"), ("U1", "dy", "k"), ("U2", "dy", "dx"),
                  ("log_sigma", "k", None)),
}


def block_shapes(family, dims):
    """``[(name, shape), ...]`` of the packed blocks of ``family`` for ``dims``."""
    named = dict(zip(DIMS[family], (int(x) for x in dims)))
    return [(name, (named[rows],) if cols is None else (named[rows], named[cols]))
            for name, rows, cols in LAYOUTS[family]]


def offsets(family, dims):
    """int64 array of the blocks' start offsets followed by the total size ``P``."""
    sizes = [int(np.prod(shape)) for _, shape in block_shapes(family, dims)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def size(family, dims):
    """Length ``P`` of the packed parameter vector."""
    return int(offsets(family, dims)[-1])


def unpack(family, params, dims):
    """Views of the blocks of packed parameters ``params`` (B, P), with the leading config axis."""
    B = params.shape[0]
    out, o = [], 0
    for _, shape in block_shapes(family, dims):
        n = int(np.prod(shape))
        out.append(params[:, o:o + n].reshape((B,) + shape))
        o += n
    return out


def pack(blocks):
    """One packed vector of the blocks of one configuration, in :data:`LAYOUTS` order."""
    return np.concatenate([np.ravel(b) for b in blocks])


class KernelProblem(NamedTuple):
    """What a kernel trains (read only).

    Attributes
    ----------
    Z : ndarray (d, r)
        Whitened target (empty for the minibatch family, which trains on raw data).
    hyper : ndarray (B, H)
        Hyperparameter rows: ``(β, c², η_dec²)`` for ``"vae"``/``"minibatch"``,
        ``(β₁, β₂, c², η_dec²)`` for ``"mhvae"`` (see :func:`linvae.train.hyper_rows`).
    dims : int64 ndarray
        :data:`DIMS` of the family.
    offsets : int64 ndarray
        :func:`offsets` of the family for ``dims``.
    learn : bool ndarray
        Which σ blocks are learned (``(σ,)``, or ``(σ₁, σ₂)`` for the MHVAE).
    """

    Z: np.ndarray
    hyper: np.ndarray
    dims: np.ndarray
    offsets: np.ndarray
    learn: np.ndarray

    @classmethod
    def build(cls, family, Z, hyper, dims, learn, xp=np, dtype=np.float64):
        """The problem with ``Z`` and ``hyper`` as contiguous ``dtype`` arrays of ``xp``."""
        dims = np.asarray(dims, dtype=np.int64)
        return cls(xp.ascontiguousarray(xp.asarray(Z, dtype=dtype)), xp.ascontiguousarray(xp.asarray(hyper, dtype=dtype)),
                   dims, offsets(family, dims), np.asarray(learn, dtype=np.bool_))


class TrainState(NamedTuple):
    """Everything a training step changes, per configuration (updated in place by the kernels).

    Attributes
    ----------
    params : (B, P)
        Packed parameters (:data:`LAYOUTS`).
    grad : (B, P)
        Gradient at the last evaluated point.
    adam_m, adam_v : (B, P)
        Adam's first and second moments (GD with momentum keeps its velocity in ``adam_m``).
    lr : (B,)
        Step size (changed by the bold driver, GD with ``adapt > 0``).
    step : int64 (B,)
        Steps taken (Adam's bias correction, the lr decay).
    prev_loss : (B,)
        Loss before the last step (``inf`` at the start).
    loss : (B,)
        Loss at the last evaluated point (minibatch: mean stochastic loss of the last epoch).
    grad_norm : (B,)
        Gradient norm at the last evaluated point.
    status : int64 (B,)
        :data:`RUNNING`, :data:`CONVERGED` or :data:`DIVERGED`; only running configs are stepped.
    """

    params: np.ndarray
    grad: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray
    lr: np.ndarray
    step: np.ndarray
    prev_loss: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    status: np.ndarray

    @classmethod
    def start(cls, params, lr, xp=np, dtype=None):
        """The state at step 0 of ``params`` (B, P) with step sizes ``lr`` (scalar or (B,)),
        as arrays of ``xp`` (one host-to-device copy of ``params`` for CuPy)."""
        params = xp.ascontiguousarray(xp.asarray(params, dtype=dtype))
        dtype = params.dtype
        B = params.shape[0]
        return cls(params=params, grad=xp.zeros_like(params), adam_m=xp.zeros_like(params),
                   adam_v=xp.zeros_like(params), lr=xp.asarray(np.broadcast_to(np.asarray(lr, dtype), (B,)).copy()),
                   step=xp.zeros(B, dtype=np.int64), prev_loss=xp.full(B, np.inf, dtype=dtype),
                   loss=xp.full(B, np.nan, dtype=dtype), grad_norm=xp.full(B, np.nan, dtype=dtype),
                   status=xp.full(B, RUNNING, dtype=np.int64))


class KernelOptions(NamedTuple):
    """Optimizer and stopping rule of a kernel call (scalars; see :func:`make_rules`).

    Attributes
    ----------
    adam : bool
        Adam (True) or plain gradient descent.
    b1, b2, eps : float
        Adam constants.
    clip : float
        Clip the gradient to this global norm (0: off).
    tol, gtol : float
        A config converges when its loss changes by at most ``tol·max(1, |L|)`` in a step and its
        gradient norm is at most ``gtol·max(1, |L|)``.
    lr_decay : float
        ``lr_t = lr / (1 + lr_decay·t)``.
    adapt : float
        GD only: the bold driver (0: fixed step).
    momentum : float
        GD only: heavy-ball momentum μ (0: plain GD), ``m ← μm + g, θ ← θ − lr·m``; the
        velocity restarts from zero after a step that increased the loss.
    """

    adam: bool = True
    b1: float = _config.ADAM_B1
    b2: float = _config.ADAM_B2
    eps: float = _config.ADAM_EPS
    clip: float = 0.0
    tol: float = 0.0
    gtol: float = 0.0
    lr_decay: float = 0.0
    adapt: float = 0.0
    momentum: float = 0.0

    @classmethod
    def of(cls, **kwargs):
        """Options with every field of its declared type (Numba compiles one variant per type)."""
        o = cls(**kwargs)
        return cls(bool(o.adam), *(float(x) for x in o[1:]))

    @classmethod
    def from_train_options(cls, options):
        """The kernel options of a :class:`linvae.train.TrainOptions` (every field but ``adam`` has
        the same name there)."""
        return cls.of(adam=options.solver == "adam", **{f: getattr(options, f) for f in cls._fields[1:]})


def make_rules(xp):
    """The stopping and step-size rules on scalars or arrays of module ``xp`` (written once).

    With ``xp = numpy`` the functions are also valid Numba code on scalars (the CPU kernels
    compile them per configuration); on arrays they act per configuration of a batch.
    Returns a namespace with:

    ``stopped(loss, grad_norm, prev_loss, tol, gtol) -> (diverged, converged)``
        Diverged: a non-finite loss or gradient norm. Converged (and finite): the loss changed by
        at most ``tol·max(1, |L|)`` and the gradient norm is at most ``gtol·max(1, |L|)``.
    ``bold_driver(lr, loss, prev_loss, adapt) -> lr``
        GD step adaptation: halve the step after a step that increased the loss, else multiply it
        by ``1 + adapt``.
    ``velocity_kept(loss, prev_loss) -> factor``
        GD momentum's restart: 0 after a step that increased the loss (the velocity is dropped),
        else 1.
    ``decayed_lr(lr, lr_decay, step) -> lr_t``
        ``lr / (1 + lr_decay·step)``.
    ``clip_factor(grad_norm, clip) -> factor``
        The factor that scales the gradient to global norm at most ``clip`` (1 when ``clip = 0``).
    """

    def stopped(loss, grad_norm, prev_loss, tol, gtol):
        finite = xp.logical_and(xp.isfinite(loss), xp.isfinite(grad_norm))
        scale = xp.maximum(1.0, xp.abs(loss))
        small = xp.logical_and(xp.abs(prev_loss - loss) <= tol * scale, grad_norm <= gtol * scale)
        return xp.logical_not(finite), xp.logical_and(finite, small)

    def bold_driver(lr, loss, prev_loss, adapt):
        rose = loss > prev_loss
        return lr * (rose * 0.5 + xp.logical_not(rose) * (1.0 + adapt))    # exactly 0.5·lr or (1 + adapt)·lr

    def velocity_kept(loss, prev_loss):
        return 1.0 - (loss > prev_loss)                            # exactly 0.0 or 1.0

    def decayed_lr(lr, lr_decay, step):
        return lr / (1.0 + lr_decay * step)

    def clip_factor(grad_norm, clip):
        if clip > 0.0:
            return clip / xp.maximum(grad_norm, clip)               # exactly 1 when within the norm
        return 1.0

    return SimpleNamespace(stopped=stopped, bold_driver=bold_driver, velocity_kept=velocity_kept,
                           decayed_lr=decayed_lr, clip_factor=clip_factor)
